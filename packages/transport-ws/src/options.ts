import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { InvalidArgumentError } from '@raft/core';
import type { PeerId } from '@raft/core';
import type { WebSocketTransportEvent } from './metrics.js';

/** Where a transport listens when it runs its own server. */
export interface ListenOptions {
  /**
   * Interface to bind. Use `'0.0.0.0'` or `'::'` for every interface.
   * @default '127.0.0.1'
   */
  host?: string;
  /** TCP port; 0 picks a free one (see `transport.address()`). */
  port: number;
}

/** PEM certificate material. */
export type Pem = string | Buffer;

/** TLS (`wss://`): this peer's certificate and key, and the CA that signs its peers'. */
export interface TlsOptions {
  /** This peer's certificate chain (PEM), shown as server and, with mutual TLS, as client. */
  cert: Pem;
  /** The private key of `cert` (PEM). */
  key: Pem;
  /**
   * CA certificates (PEM) trusted to sign peers' certificates.
   * @default Node's bundled public CAs
   */
  ca?: Pem | Pem[];
  /**
   * Mutual TLS: a peer that dials this one must present a certificate signed by `ca`
   * (applies when this transport runs its own server through `listen`).
   * @default false
   */
  requestCert?: boolean;
  /**
   * Bind certificates to peer names: the certificate a peer presents must name it, in its
   * subject CN or in a DNS or URI subjectAltName equal to its peer name (exact match, no
   * wildcards), or the connection is refused (`refused.identity`, close code 4001). Checked
   * on every `wss://` peer this one dials, and on every inbound connection when `requestCert`
   * is true (with `server`, set `requestCert: true` to say that the server requests and
   * verifies client certificates). Without it, any holder of a certificate signed by `ca`
   * could claim to be any peer.
   * @default true
   */
  verifyPeerName?: boolean;
}

/** How a dialing peer retries: exponential backoff with jitter. */
export interface ReconnectOptions {
  /**
   * Delay before the first retry, in ms.
   * @default 100
   */
  initialDelayMs?: number;
  /**
   * Longest delay between retries, in ms.
   * @default 5000
   */
  maxDelayMs?: number;
  /**
   * Factor applied to the delay after each failed attempt.
   * @default 2
   */
  multiplier?: number;
  /**
   * Fraction of each delay that is random, in [0, 1]: the delay is drawn from
   * `[base * (1 - jitter), base]`, so peers that lost a connection together do not retry in step.
   * @default 0.5
   */
  jitter?: number;
}

/** When a connection that keeps sending malformed frames is closed. */
export interface MalformedLimitOptions {
  /**
   * Malformed frames tolerated within `windowMs`; the next one closes the connection.
   * @default 10
   */
  count?: number;
  /**
   * The window, in ms.
   * @default 10000
   */
  windowMs?: number;
}

/** Options of {@link webSocketTransport} and `new WebSocketTransport`. */
export interface WebSocketTransportOptions {
  /** This peer's name, as the other peers know it. At most 256 characters. */
  name: PeerId;
  /**
   * Every peer of the cluster and its URL (`ws://host:port[/path]` or `wss://…`). It may
   * include this peer (ignored). Only the peers listed here may connect.
   */
  peers: Record<PeerId, string>;
  /** Run an own HTTP(S) server on this host and port. Give `listen` or `server`, not both. */
  listen?: ListenOptions;
  /**
   * Attach to an existing HTTP or HTTPS server (it handles TLS itself, and `close`
   * leaves it running). Give `listen` or `server`, not both.
   */
  server?: HttpServer | HttpsServer;
  /**
   * Accept WebSocket upgrades only on this path, leaving others to other listeners of the server.
   * @default every path
   */
  path?: string;
  /**
   * The cluster secret. Peers prove they know it with an HMAC-SHA256 challenge-response;
   * it never crosses the wire. Use 32 random bytes or more. Without it, any client that
   * can reach the port and names a configured peer is let in.
   * @default none
   */
  secret?: string | Uint8Array;
  /** TLS for `listen` and for dialing `wss://` peers. */
  tls?: TlsOptions;
  /**
   * Largest frame, in bytes, sent or accepted. A larger incoming frame closes its
   * connection; a larger outgoing message is dropped. Use the same value on every peer.
   * @default 16777216 (16 MiB)
   */
  maxPayload?: number;
  /**
   * When a connection has more than this many bytes waiting to be written, messages to
   * that peer are dropped (and counted) until it drains. Raft retries.
   * @default 8388608 (8 MiB)
   */
  highWaterMark?: number;
  /**
   * Interval of the ping/pong heartbeat, in ms: a connection silent for a whole interval
   * after a ping is terminated (and redialed). 0 disables it.
   * @default 5000
   */
  pingIntervalMs?: number;
  /**
   * Time allowed for the WebSocket upgrade plus the authentication handshake, in ms.
   * @default 5000
   */
  handshakeTimeoutMs?: number;
  /** Backoff of the peer that dials. */
  reconnect?: ReconnectOptions;
  /** When a connection sending malformed frames is closed. */
  malformedLimit?: MalformedLimitOptions;
  /**
   * Incoming connections allowed to be mid-handshake at once; more are refused.
   * @default 64
   */
  maxPendingHandshakes?: number;
  /**
   * Incoming connections from one source address allowed to be mid-handshake at once. A
   * newcomer beyond it evicts that address's oldest pending handshake (closed with 1013), so
   * idle connections can never lock a peer out. When `maxPendingHandshakes` is reached, a
   * newcomer from the address of a configured peer evicts the oldest pending handshake of a
   * stranger's address (slots kept for peers); a stranger's newcomer is refused (`busy`).
   * @default 8
   */
  maxPendingHandshakesPerAddress?: number;
  /**
   * Source of the reconnect jitter, returning numbers in [0, 1). Inject a seeded one in tests.
   * @default Math.random
   */
  random?: () => number;
  /** Called on connections, disconnections, refusals and malformed input (for logs). Must not throw. */
  onEvent?: (event: WebSocketTransportEvent) => void;
}

/** Options with every default applied. */
export interface ResolvedOptions {
  name: PeerId;
  peers: Map<PeerId, string>;
  listen: { host: string; port: number } | null;
  server: HttpServer | HttpsServer | null;
  path: string | null;
  secret: Buffer | null;
  tls: TlsOptions | null;
  maxPayload: number;
  highWaterMark: number;
  pingIntervalMs: number;
  handshakeTimeoutMs: number;
  reconnect: Required<ReconnectOptions>;
  malformedLimit: Required<MalformedLimitOptions>;
  maxPendingHandshakes: number;
  maxPendingHandshakesPerAddress: number;
  random: () => number;
  onEvent: ((event: WebSocketTransportEvent) => void) | null;
}

/** The documented defaults. */
export const DEFAULTS = {
  host: '127.0.0.1',
  maxPayload: 16 * 1024 * 1024,
  highWaterMark: 8 * 1024 * 1024,
  pingIntervalMs: 5000,
  handshakeTimeoutMs: 5000,
  reconnect: { initialDelayMs: 100, maxDelayMs: 5000, multiplier: 2, jitter: 0.5 },
  malformedLimit: { count: 10, windowMs: 10_000 },
  maxPendingHandshakes: 64,
  maxPendingHandshakesPerAddress: 8,
} as const;

/** Longest peer name, as in `validateMessage`. */
export const MAX_NAME_LENGTH = 256;

function fail(option: string, what: string): never {
  throw new InvalidArgumentError(`WebSocketTransport: option ${option} ${what}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkName(option: string, v: unknown): PeerId {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_NAME_LENGTH)
    fail(option, `must be a peer name: a string of 1 to ${MAX_NAME_LENGTH} characters`);
  return v;
}

/**
 * Checks a peer's name, as in `peers` and `setPeer`.
 * @throws RaftError `RAFT_INVALID_ARGUMENT` naming `option`.
 */
export function checkPeerName(option: string, v: unknown): PeerId {
  return checkName(option, v);
}

/**
 * Checks a peer's URL (`ws://` or `wss://`) and returns it normalized (`URL.href`).
 * @throws RaftError `RAFT_INVALID_ARGUMENT` naming `option`.
 */
export function checkPeerUrl(option: string, url: unknown): string {
  let parsed: URL | null = null;
  try {
    parsed = typeof url === 'string' ? new URL(url) : null;
  } catch {
    parsed = null;
  }
  if (parsed === null || (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:'))
    fail(option, `must be a ws:// or wss:// URL, got ${JSON.stringify(url)}`);
  return parsed.href;
}

function integer(
  option: string,
  v: unknown,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
    fail(option, `must be an integer from ${min} to ${max}, got ${JSON.stringify(v) ?? typeof v}`);
  return v;
}

function number(option: string, v: unknown, fallback: number, min: number, max: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !(v >= min && v <= max))
    fail(option, `must be a number from ${min} to ${max}, got ${JSON.stringify(v) ?? typeof v}`);
  return v;
}

function isPem(v: unknown): v is Pem {
  return (typeof v === 'string' && v.length > 0) || Buffer.isBuffer(v);
}

function checkTls(v: unknown): TlsOptions | null {
  if (v === undefined) return null;
  if (!isRecord(v)) fail('tls', 'must be an object { cert, key, ca?, requestCert?, verifyPeerName? }');
  if (!isPem(v.cert)) fail('tls.cert', 'must be a PEM certificate (string or Buffer)');
  if (!isPem(v.key)) fail('tls.key', 'must be a PEM private key (string or Buffer)');
  const ca = v.ca;
  if (ca !== undefined && !isPem(ca) && !(Array.isArray(ca) && ca.every(isPem)))
    fail('tls.ca', 'must be PEM certificates (a string, a Buffer or an array of them)');
  if (v.requestCert !== undefined && typeof v.requestCert !== 'boolean')
    fail('tls.requestCert', 'must be a boolean');
  if (v.verifyPeerName !== undefined && typeof v.verifyPeerName !== 'boolean')
    fail('tls.verifyPeerName', 'must be a boolean');
  return {
    cert: v.cert,
    key: v.key,
    ...(ca === undefined ? {} : { ca: ca }),
    requestCert: v.requestCert === true,
    verifyPeerName: v.verifyPeerName !== false,
  };
}

/**
 * Checks every option and applies the defaults.
 * @throws RaftError `RAFT_INVALID_ARGUMENT` whose message names the option.
 */
export function resolveOptions(options: WebSocketTransportOptions): ResolvedOptions {
  if (!isRecord(options)) fail('(options)', 'must be an object');
  const o = options as unknown as Record<string, unknown>;
  const name = checkName('name', o.name);

  if (!isRecord(o.peers)) fail('peers', 'must be an object mapping peer names to ws:// or wss:// URLs');
  const peers = new Map<PeerId, string>();
  for (const [peer, url] of Object.entries(o.peers)) {
    checkName(`peers[${JSON.stringify(peer)}]`, peer);
    const href = checkPeerUrl(`peers.${peer}`, url);
    if (peer !== name) peers.set(peer, href);
  }

  if ((o.listen === undefined) === (o.server === undefined))
    fail(
      'listen/server',
      'exactly one of them is required: listen: { host, port } or server: an http(s).Server',
    );
  let listen: ResolvedOptions['listen'] = null;
  if (o.listen !== undefined) {
    if (!isRecord(o.listen)) fail('listen', 'must be an object { host?, port }');
    const host = o.listen.host ?? DEFAULTS.host;
    if (typeof host !== 'string' || host.length === 0) fail('listen.host', 'must be a non-empty string');
    if (o.listen.port === undefined) fail('listen.port', 'is required (0 picks a free port)');
    listen = { host, port: integer('listen.port', o.listen.port, 0, 0, 65535) };
  }
  let server: ResolvedOptions['server'] = null;
  if (o.server !== undefined) {
    const s = o.server as Record<string, unknown> | null;
    if (
      s === null ||
      typeof s !== 'object' ||
      typeof s.on !== 'function' ||
      typeof s.removeListener !== 'function' ||
      typeof s.listen !== 'function'
    ) {
      fail('server', 'must be an http.Server or https.Server');
    }
    server = o.server as HttpServer | HttpsServer;
  }
  let path: string | null = null;
  if (o.path !== undefined) {
    if (typeof o.path !== 'string' || !o.path.startsWith('/'))
      fail('path', "must be a string starting with '/'");
    path = o.path;
  }

  let secret: Buffer | null = null;
  if (o.secret !== undefined) {
    if (typeof o.secret === 'string' && o.secret.length > 0) secret = Buffer.from(o.secret, 'utf8');
    else if (o.secret instanceof Uint8Array && o.secret.byteLength > 0) secret = Buffer.from(o.secret);
    else fail('secret', 'must be a non-empty string or Uint8Array');
  }

  const reconnectIn = o.reconnect ?? {};
  if (!isRecord(reconnectIn)) fail('reconnect', 'must be an object');
  const initialDelayMs = number(
    'reconnect.initialDelayMs',
    reconnectIn.initialDelayMs,
    DEFAULTS.reconnect.initialDelayMs,
    1,
    3_600_000,
  );
  const maxDelayMs = number(
    'reconnect.maxDelayMs',
    reconnectIn.maxDelayMs,
    Math.max(DEFAULTS.reconnect.maxDelayMs, initialDelayMs),
    initialDelayMs,
    3_600_000,
  );
  const reconnect = {
    initialDelayMs,
    maxDelayMs,
    multiplier: number('reconnect.multiplier', reconnectIn.multiplier, DEFAULTS.reconnect.multiplier, 1, 100),
    jitter: number('reconnect.jitter', reconnectIn.jitter, DEFAULTS.reconnect.jitter, 0, 1),
  };

  const malformedIn = o.malformedLimit ?? {};
  if (!isRecord(malformedIn)) fail('malformedLimit', 'must be an object');
  const malformedLimit = {
    count: integer('malformedLimit.count', malformedIn.count, DEFAULTS.malformedLimit.count, 1),
    windowMs: integer('malformedLimit.windowMs', malformedIn.windowMs, DEFAULTS.malformedLimit.windowMs, 1),
  };

  if (o.random !== undefined && typeof o.random !== 'function')
    fail('random', 'must be a function returning numbers in [0, 1)');
  if (o.onEvent !== undefined && typeof o.onEvent !== 'function') fail('onEvent', 'must be a function');

  return {
    name,
    peers,
    listen,
    server,
    path,
    secret,
    tls: checkTls(o.tls),
    maxPayload: integer('maxPayload', o.maxPayload, DEFAULTS.maxPayload, 1024, 2 ** 31 - 1),
    highWaterMark: integer('highWaterMark', o.highWaterMark, DEFAULTS.highWaterMark, 0),
    pingIntervalMs: integer('pingIntervalMs', o.pingIntervalMs, DEFAULTS.pingIntervalMs, 0, 2 ** 31 - 1),
    handshakeTimeoutMs: integer(
      'handshakeTimeoutMs',
      o.handshakeTimeoutMs,
      DEFAULTS.handshakeTimeoutMs,
      1,
      2 ** 31 - 1,
    ),
    reconnect,
    malformedLimit,
    maxPendingHandshakes: integer(
      'maxPendingHandshakes',
      o.maxPendingHandshakes,
      DEFAULTS.maxPendingHandshakes,
      1,
    ),
    maxPendingHandshakesPerAddress: integer(
      'maxPendingHandshakesPerAddress',
      o.maxPendingHandshakesPerAddress,
      DEFAULTS.maxPendingHandshakesPerAddress,
      1,
    ),
    random: (o.random as (() => number) | undefined) ?? Math.random,
    onEvent: (o.onEvent as ((event: WebSocketTransportEvent) => void) | undefined) ?? null,
  };
}
