import { InvalidArgumentError } from '@raft/core';
import type { PeerId } from '@raft/core';
import { ID_PATTERN, normalizePeerUrl } from './machine.js';

/** Log levels of `--log-level` (pino's). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** One of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A host and a TCP port, as given to `--listen` and `--http`. */
export interface HostPort {
  /**
   * A host name or an IP address (IPv6 without brackets); `''` (from `:PORT`) listens on
   * every interface, and connects to this machine.
   */
  host: string;
  port: number;
}

/** The options of `raft-kv node`, validated. */
export interface NodeOptions {
  /** This node's id: one of the keys of `peers`. */
  id: PeerId;
  /** Where the peer port listens: Raft traffic (WebSocket) and forwarded client requests. */
  listen: HostPort;
  /** Where the client HTTP API listens. */
  http: HostPort;
  /** The data directory (a LevelDB database). */
  data: string;
  /** Every member of the cluster (this node included) and its peer URL. */
  peers: Map<PeerId, string>;
  /** The cluster secret, or null for none. */
  secret: string | null;
  /**
   * Longest time a client request may take before it is answered 504.
   * @default 5000
   */
  requestTimeoutMs: number;
  /**
   * Log level.
   * @default 'info'
   */
  logLevel: LogLevel;
  /**
   * Take a snapshot after this many applied entries, then compact the log (`@raft/core`'s
   * `snapshotEvery`); 0 turns snapshots off.
   * @default 10000
   */
  snapshotEvery: number;
  /** Raft timing (`--election-timeout`, `--heartbeat-interval`). */
  timing: Timing;
  /**
   * Never bootstrap: this node waits to be added to a running cluster
   * (`POST /cluster/members`), even if its id sorts first in `peers`.
   * @default false
   */
  join: boolean;
  /**
   * `--insecure`: allow listening on a non-loopback address without a secret.
   * @default false
   */
  insecure: boolean;
  /** Mutual TLS on the peer port (`--peer-cert-file`, `--peer-key-file`, `--peer-trusted-ca-file`), or null. */
  peerTls: PeerTlsFiles | null;
  /** HTTPS for the client API (`--cert-file`, `--key-file`, `--trusted-ca-file`), or null. */
  clientTls: ClientTlsFiles | null;
  /**
   * Host names (lowercase, IPv6 without brackets) the client API answers to, besides the
   * defaults (the `--http` host, `localhost`, `127.0.0.1`, `::1`); `*` allows any.
   */
  allowedHosts: string[];
  /** The token `/cluster/*` changes need (`--admin-token`, `RAFT_KV_ADMIN_TOKEN`), or null. */
  adminToken: string | null;
}

/** Files of the peer port's mutual TLS. */
export interface PeerTlsFiles {
  /** This node's certificate (PEM): its CN or a DNS subjectAltName must be its `--id`. */
  certFile: string;
  keyFile: string;
  /** The CA that signs every member's certificate. */
  caFile: string;
}

/** Files of the client API's HTTPS. */
export interface ClientTlsFiles {
  certFile: string;
  keyFile: string;
  /** When set, clients must present a certificate this CA signed. */
  caFile: string | null;
}

/** The options of `raft-kv cluster`, validated. */
export interface ClusterOptions {
  /** How many nodes to run, 1 to {@link MAX_NODES}. */
  nodes: number;
  /** The parent directory of the nodes' data directories (`DIR/n1`, ...). */
  data: string;
  /**
   * The interface every node listens on.
   * @default '127.0.0.1'
   */
  host: string;
  /**
   * The peer port of n1; n2 gets the next one, and so on.
   * @default 7001
   */
  peerPort: number;
  /**
   * The HTTP port of n1; n2 gets the next one, and so on.
   * @default 8001
   */
  httpPort: number;
  /** The cluster secret, or null for none. */
  secret: string | null;
  /** @default 5000 */
  requestTimeoutMs: number;
  /** @default 'info' */
  logLevel: LogLevel;
  /** Passed to every node. @default 10000 */
  snapshotEvery: number;
  /** Passed to every node. */
  timing: Timing;
  /** The admin token, or null to generate one (`DIR/admin-token`). */
  adminToken: string | null;
}

/**
 * Raft timing of a node. The defaults are etcd's order of magnitude rather than the
 * library's (150-300 ms): separate processes on a busy machine pause for GC, fsync and
 * snapshots, and a spurious election costs more than a slower failover.
 */
export interface Timing {
  /**
   * Election timeout range in milliseconds, drawn anew for every wait (`--election-timeout MIN-MAX`).
   * @default [1000, 2000]
   */
  electionTimeoutMs: [min: number, max: number];
  /**
   * Milliseconds between a leader's heartbeats (`--heartbeat-interval MS`); below MIN.
   * @default 100
   */
  heartbeatIntervalMs: number;
}

/** The default {@link Timing}. */
export const DEFAULT_TIMING: Readonly<Timing> = Object.freeze({
  electionTimeoutMs: [1000, 2000] as [number, number],
  heartbeatIntervalMs: 100,
});

/** Most nodes `raft-kv cluster` runs. */
export const MAX_NODES = 15;

/** The default of `--snapshot-every` (`@raft/core`'s). */
export const DEFAULT_SNAPSHOT_EVERY = 10_000;

/** The largest `--snapshot-every`. */
export const MAX_SNAPSHOT_EVERY = 1_000_000_000;

function fail(option: string, what: string): never {
  throw new InvalidArgumentError(`${option} ${what}`);
}

/** Checks a node id. */
export function parseId(option: string, value: string): PeerId {
  if (!ID_PATTERN.test(value))
    fail(
      option,
      `must be 1 to 64 letters, digits, '_', '.' or '-' (starting with a letter or digit), got ${JSON.stringify(value)}`,
    );
  return value;
}

/** Parses a decimal integer within [min, max]. */
export function parseInteger(option: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value))
    fail(option, `must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min || n > max)
    fail(option, `must be an integer from ${min} to ${max}, got ${value}`);
  return n;
}

/**
 * Parses `HOST:PORT` (`[::1]:PORT` for IPv6), or `:PORT` (host `''`: every interface to
 * listen on, this machine to connect to, as in etcd, rqlite and Go); the port is 1 to 65535.
 */
export function parseHostPort(option: string, value: string): HostPort {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]*)):(\d+)$/.exec(value);
  if (m === null)
    fail(
      option,
      `must be HOST:PORT or :PORT (e.g. 127.0.0.1:8001, [::1]:8001, or :8001 for every interface), got ${JSON.stringify(value)}`,
    );
  const host = m[1] ?? m[2] ?? '';
  return { host, port: parseInteger(`${option} (port)`, m[3] ?? '', 1, 65535) };
}

/** Parses `--peers`: `ID=ws://HOST:PORT` items separated by commas. */
export function parsePeers(option: string, value: string): Map<PeerId, string> {
  const peers = new Map<PeerId, string>();
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (items.length === 0) fail(option, 'must list every member as ID=ws://HOST:PORT, separated by commas');
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) fail(option, `must list members as ID=ws://HOST:PORT, got ${JSON.stringify(item)}`);
    const id = parseId(`${option}: member id`, item.slice(0, eq));
    const url = normalizePeerUrl(item.slice(eq + 1));
    if (typeof url !== 'string') fail(option, `member ${id}: ${url.problem}`);
    if (peers.has(id)) fail(option, `names ${id} twice`);
    peers.set(id, url);
  }
  return peers;
}

/** Checks a log level. */
export function parseLogLevel(option: string, value: string): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(value))
    fail(option, `must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(value)}`);
  return value as LogLevel;
}

/** The secret from the option, else from `RAFT_SECRET`, else null. An empty one is an error. */
export function resolveSecret(flag: string | undefined, env: NodeJS.ProcessEnv): string | null {
  if (flag !== undefined) {
    if (flag.length === 0) fail('--secret', 'must not be empty');
    return flag;
  }
  const fromEnv = env['RAFT_SECRET'];
  if (fromEnv === undefined) return null;
  if (fromEnv.length === 0) fail('RAFT_SECRET', 'must not be empty when set');
  return fromEnv;
}

/** The admin token from the option, else from `RAFT_KV_ADMIN_TOKEN`, else null. An empty one is an error. */
export function resolveAdminToken(flag: string | undefined, env: NodeJS.ProcessEnv): string | null {
  if (flag !== undefined) {
    if (flag.length === 0) fail('--admin-token', 'must not be empty');
    return flag;
  }
  const fromEnv = env['RAFT_KV_ADMIN_TOKEN'];
  if (fromEnv === undefined) return null;
  if (fromEnv.length === 0) fail('RAFT_KV_ADMIN_TOKEN', 'must not be empty when set');
  return fromEnv;
}

/** True for a loopback host: `localhost`, 127.0.0.0/8, `::1` (and `::ffff:127.x.y.z`). */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return (
    h === 'localhost' ||
    h === '::1' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) ||
    /^::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)
  );
}

/** Parses `--allowed-hosts`: host names separated by commas (IPv6 with or without brackets), or `*`. */
export function parseAllowedHosts(option: string, value: string | undefined): string[] {
  if (value === undefined) return [];
  const hosts = value
    .split(',')
    .map((h) =>
      h
        .trim()
        .toLowerCase()
        .replace(/^\[|\]$/g, ''),
    )
    .filter((h) => h.length > 0);
  if (hosts.length === 0) fail(option, 'must list host names separated by commas (or *)');
  for (const h of hosts)
    if (h !== '*' && !/^[a-z0-9_.:-]+$/.test(h))
      fail(option, `must list host names (no ports, no schemes), got ${JSON.stringify(h)}`);
  return hosts;
}

/** Raw values of the options `raft-kv cluster` passes on to every node, as strings. */
export interface RawPassedOptions {
  secret?: string;
  'request-timeout'?: string;
  'log-level'?: string;
  'snapshot-every'?: string;
  'election-timeout'?: string;
  'heartbeat-interval'?: string;
}

/** Raw values of `raft-kv node`, as strings from the command line. */
export interface RawNodeOptions extends RawPassedOptions {
  id?: string;
  listen?: string;
  http?: string;
  data?: string;
  peers?: string;
  join?: boolean;
  insecure?: boolean;
  'peer-cert-file'?: string;
  'peer-key-file'?: string;
  'peer-trusted-ca-file'?: string;
  'cert-file'?: string;
  'key-file'?: string;
  'trusted-ca-file'?: string;
  'allowed-hosts'?: string;
  'admin-token'?: string;
}

function required(option: string, value: string | undefined, example: string): string {
  if (value === undefined || value.length === 0)
    fail(`--${option}`, `is required (e.g. --${option} ${example})`);
  return value;
}

/**
 * Validates the options of `raft-kv node`.
 * @throws `RAFT_INVALID_ARGUMENT` naming the option and what it allows.
 */
export function nodeOptions(raw: RawNodeOptions, env: NodeJS.ProcessEnv = {}): NodeOptions {
  const id = parseId('--id', required('id', raw.id, 'n1'));
  const listen = parseHostPort('--listen', required('listen', raw.listen, '127.0.0.1:7001'));
  const http = parseHostPort('--http', required('http', raw.http, '127.0.0.1:8001'));
  const data = required('data', raw.data, './data/n1');
  const peers = parsePeers(
    '--peers',
    required('peers', raw.peers, 'n1=ws://127.0.0.1:7001,n2=ws://127.0.0.1:7002,n3=ws://127.0.0.1:7003'),
  );
  if (!peers.has(id))
    fail('--peers', `must include this node (--id ${id}); it lists ${[...peers.keys()].join(', ')}`);
  if (listen.host === http.host && listen.port === http.port) fail('--http', 'must differ from --listen');
  const peerTls = peerTlsFiles(raw);
  const tlsUrls = [...peers.values()].filter((u) => u.startsWith('wss:'));
  if (peerTls !== null && tlsUrls.length !== peers.size)
    fail(
      '--peers',
      'must use wss:// URLs only when --peer-cert-file is given (mutual TLS on every peer port)',
    );
  if (peerTls === null && tlsUrls.length > 0)
    fail(
      '--peer-cert-file',
      'is required with wss:// peer URLs (with --peer-key-file and --peer-trusted-ca-file)',
    );
  const clientTls = clientTlsFiles(raw);
  const passed = passedToNodes(raw, env);
  const insecure = raw.insecure === true;
  if (passed.secret === null && !insecure) {
    for (const [flag, where] of [
      ['--listen', listen],
      ['--http', http],
    ] as const) {
      if (!isLoopbackHost(where.host))
        fail(
          '--secret',
          `(or RAFT_SECRET) is required to listen on ${authority(where)} (${flag}), which is not a loopback address: without it, anyone who can reach the node can join as a peer. Give a secret of 32 random bytes or more (e.g. openssl rand -hex 32), or --insecure to accept the risk`,
        );
    }
  }
  return {
    id,
    listen,
    http,
    data,
    peers,
    ...passed,
    join: raw.join === true,
    insecure,
    peerTls,
    clientTls,
    allowedHosts: parseAllowedHosts('--allowed-hosts', raw['allowed-hosts']),
    adminToken: resolveAdminToken(raw['admin-token'], env),
  };
}

function nonEmpty(option: string, value: string | undefined): string | undefined {
  if (value !== undefined && value.length === 0) fail(option, 'must not be empty');
  return value;
}

function peerTlsFiles(raw: RawNodeOptions): PeerTlsFiles | null {
  const certFile = nonEmpty('--peer-cert-file', raw['peer-cert-file']);
  const keyFile = nonEmpty('--peer-key-file', raw['peer-key-file']);
  const caFile = nonEmpty('--peer-trusted-ca-file', raw['peer-trusted-ca-file']);
  if (certFile === undefined && keyFile === undefined && caFile === undefined) return null;
  if (certFile === undefined || keyFile === undefined || caFile === undefined)
    fail(
      '--peer-cert-file',
      'needs --peer-key-file and --peer-trusted-ca-file too: the peer port runs mutual TLS',
    );
  return { certFile, keyFile, caFile };
}

function clientTlsFiles(raw: RawNodeOptions): ClientTlsFiles | null {
  const certFile = nonEmpty('--cert-file', raw['cert-file']);
  const keyFile = nonEmpty('--key-file', raw['key-file']);
  const caFile = nonEmpty('--trusted-ca-file', raw['trusted-ca-file']);
  if (certFile === undefined && keyFile === undefined) {
    if (caFile !== undefined) fail('--trusted-ca-file', 'needs --cert-file and --key-file (HTTPS)');
    return null;
  }
  if (certFile === undefined || keyFile === undefined)
    fail('--cert-file', 'and --key-file go together (HTTPS for the client API)');
  return { certFile, keyFile, caFile: caFile ?? null };
}

function parseSnapshotEvery(value: string | undefined): number {
  return value === undefined
    ? DEFAULT_SNAPSHOT_EVERY
    : parseInteger('--snapshot-every', value, 0, MAX_SNAPSHOT_EVERY);
}

/** The options `raft-kv cluster` passes on to every node, as `raft-kv node` takes them. */
function passedToNodes(
  raw: RawPassedOptions,
  env: NodeJS.ProcessEnv,
): Pick<NodeOptions, 'secret' | 'requestTimeoutMs' | 'logLevel' | 'snapshotEvery' | 'timing'> {
  return {
    secret: resolveSecret(raw.secret, env),
    requestTimeoutMs:
      raw['request-timeout'] === undefined
        ? 5000
        : parseInteger('--request-timeout', raw['request-timeout'], 100, 600_000),
    logLevel: raw['log-level'] === undefined ? 'info' : parseLogLevel('--log-level', raw['log-level']),
    snapshotEvery: parseSnapshotEvery(raw['snapshot-every']),
    timing: parseTiming(raw),
  };
}

/** Parses `--election-timeout MIN-MAX` and `--heartbeat-interval MS`, each against the other. */
function parseTiming(raw: { 'election-timeout'?: string; 'heartbeat-interval'?: string }): Timing {
  let electionTimeoutMs = DEFAULT_TIMING.electionTimeoutMs;
  const election = raw['election-timeout'];
  if (election !== undefined) {
    const m = /^(\d+)-(\d+)$/.exec(election);
    if (m === null)
      fail(
        '--election-timeout',
        `must be MIN-MAX in milliseconds (e.g. 1000-2000), got ${JSON.stringify(election)}`,
      );
    const min = parseInteger('--election-timeout (MIN)', m[1] ?? '', 10, 600_000);
    const max = parseInteger('--election-timeout (MAX)', m[2] ?? '', min, 600_000);
    electionTimeoutMs = [min, max];
  }
  const heartbeat = raw['heartbeat-interval'];
  const heartbeatIntervalMs =
    heartbeat === undefined
      ? Math.min(DEFAULT_TIMING.heartbeatIntervalMs, Math.floor(electionTimeoutMs[0] / 2))
      : parseInteger('--heartbeat-interval', heartbeat, 1, 600_000);
  if (heartbeatIntervalMs >= electionTimeoutMs[0])
    fail(
      '--heartbeat-interval',
      `(${heartbeatIntervalMs} ms) must be below the minimum election timeout (${electionTimeoutMs[0]} ms)`,
    );
  return { electionTimeoutMs: [electionTimeoutMs[0], electionTimeoutMs[1]], heartbeatIntervalMs };
}

/** Raw values of `raft-kv cluster`. */
export interface RawClusterOptions extends RawPassedOptions {
  'admin-token'?: string;
  nodes?: string;
  data?: string;
  host?: string;
  'peer-port'?: string;
  'http-port'?: string;
}

/**
 * Validates the options of `raft-kv cluster`.
 * @throws `RAFT_INVALID_ARGUMENT` naming the option and what it allows.
 */
export function clusterOptions(raw: RawClusterOptions, env: NodeJS.ProcessEnv = {}): ClusterOptions {
  const nodes = parseInteger('--nodes', required('nodes', raw.nodes, '3'), 1, MAX_NODES);
  const data = required('data', raw.data, './data');
  const host = raw.host ?? '127.0.0.1';
  if (host.length === 0 || /[\s[\]]/.test(host))
    fail('--host', `must be a host name or an IP address, got ${JSON.stringify(host)}`);
  const peerPort =
    raw['peer-port'] === undefined ? 7001 : parseInteger('--peer-port', raw['peer-port'], 1, 65536 - nodes);
  const httpPort =
    raw['http-port'] === undefined ? 8001 : parseInteger('--http-port', raw['http-port'], 1, 65536 - nodes);
  if (peerPort < httpPort + nodes && httpPort < peerPort + nodes) {
    fail(
      '--http-port',
      `(${httpPort}..${httpPort + nodes - 1}) must not overlap --peer-port (${peerPort}..${peerPort + nodes - 1})`,
    );
  }
  return {
    nodes,
    data,
    host,
    peerPort,
    httpPort,
    ...passedToNodes(raw, env),
    adminToken: resolveAdminToken(raw['admin-token'], env),
  };
}

/** Formats a host and port as a URL authority (`[::1]:8001` for IPv6). */
export function authority({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
