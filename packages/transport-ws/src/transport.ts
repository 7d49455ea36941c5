import { createServer as createHttpServer } from 'node:http';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { WebSocket, WebSocketServer } from 'ws';
import type { ClientOptions, RawData } from 'ws';
import { InvalidArgumentError, RaftError, validateMessage } from '@raft/core';
import type { PeerId, RaftMessage, Transport } from '@raft/core';
import { backoffDelay } from './backoff.js';
import { copyMetrics, emptyMetrics } from './metrics.js';
import type {
  DropCause,
  RefusalReason,
  WebSocketTransportEvent,
  WebSocketTransportMetrics,
} from './metrics.js';
import { addressKey, addressesOfUrl, certificateNamesPeer } from './identity.js';
import { checkPeerName, checkPeerUrl, resolveOptions } from './options.js';
import type { ResolvedOptions, WebSocketTransportOptions } from './options.js';
import {
  CloseCode,
  MAX_HANDSHAKE_FRAME,
  MessageCodec,
  PROTOCOL_VERSION,
  TRY_AGAIN_LATER,
  decodeAuth,
  decodeHello,
  decodeWelcome,
  encodeHandshake,
  handshakeMac,
  macMatches,
  newNonce,
  refusalOf,
  versionOf,
} from './protocol.js';

/** How long a closing connection may take to finish the close handshake before it is cut. */
const CLOSE_GRACE_MS = 1000;

/**
 * Without a secret or a verified certificate, how long an open connection has to answer a
 * ping before a second connection claiming the same peer may replace it.
 */
const DUPLICATE_PROBE_MS = 1000;

/** A fixed key for the MAC computed for an unknown name, so that refusing it takes as long as a wrong MAC. */
const DUMMY_KEY = Buffer.alloc(32);

/** Bytes an inbound connection may send before it authenticates: the handshake needs < 1 KiB. */
const MAX_PREAUTH_BYTES = 4 * MAX_HANDSHAKE_FRAME;

type Phase = 'handshake' | 'open' | 'closing' | 'closed';

/** One WebSocket, from its first byte to its close. */
class Connection {
  phase: Phase = 'handshake';
  /** The peer: the one dialed (outbound), or the one authenticated (inbound, once open). */
  peer: PeerId | null;
  /** Our handshake nonce. */
  nonce: Buffer | null = null;
  /** The acceptor's nonce, once its hello arrived (outbound only). */
  remoteNonce: Uint8Array | null = null;
  /** Authenticated, waiting to learn whether the open connection it would replace is alive. */
  probing = false;
  /** Set when this side refused the handshake, so the close is not counted twice. */
  refused = false;
  /** Still counted among the pending handshakes (inbound only). */
  pending: boolean;
  /** Answered since the last ping. */
  alive = true;
  /** Times of recent malformed frames. */
  strikes: number[] = [];
  handshakeTimer: ReturnType<typeof setTimeout> | null = null;
  /** The certificate the other side presented over TLS (authorized by the CA), or null. */
  cert: PeerCertificate | null = null;
  /** The source address, as a key (inbound only). */
  readonly addressKey: string;
  /** When the connection was accepted (`performance.now()`), to evict the oldest first. */
  readonly since = performance.now();
  /** Stops counting the bytes of an inbound connection still unauthenticated. */
  releaseGuard: () => void = () => {};
  readonly closed: Promise<void>;
  resolveClosed!: () => void;

  constructor(
    readonly ws: WebSocket,
    readonly direction: 'inbound' | 'outbound',
    peer: PeerId | null,
    readonly remoteAddress: string | undefined,
  ) {
    this.peer = peer;
    this.pending = direction === 'inbound';
    this.addressKey = addressKey(direction === 'inbound' ? remoteAddress : undefined);
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
  }
}

interface DialState {
  conn: Connection | null;
  timer: ReturnType<typeof setTimeout> | null;
  /** Failed attempts since the last successful handshake. */
  attempt: number;
}

type State = 'new' | 'starting' | 'started' | 'closed';

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

function pathOf(url: string | undefined): string {
  const q = (url ?? '/').indexOf('?');
  return q === -1 ? (url ?? '/') : (url ?? '/').slice(0, q);
}

/**
 * A {@link Transport} over WebSockets for one peer of a cluster whose peers run in
 * other processes or on other hosts. It listens (or attaches to your HTTP server),
 * dials every peer whose name is greater than its own, authenticates each connection
 * with the cluster secret, validates every inbound message, drops messages under
 * backpressure, detects silent connections with ping/pong and redials with backoff.
 * Nothing happens until `start`.
 *
 * `new WebSocketTransport(options)` and {@link webSocketTransport}`(options)` are the
 * same: the factory calls this constructor.
 *
 * @example
 * ```ts
 * const transport = new WebSocketTransport({ name: 'n1', listen: { port: 7001 }, peers, secret });
 * const peer = await startPeer(KVStore, { name: 'n1', log, transport }); // calls start
 * ```
 */
export class WebSocketTransport implements Transport {
  /** This peer's name. */
  readonly name: PeerId;
  readonly #o: ResolvedOptions;
  readonly #codec = new MessageCodec();
  readonly #metrics = emptyMetrics();
  readonly #sockets = new Set<Connection>();
  readonly #links = new Map<PeerId, Connection>();
  readonly #dials = new Map<PeerId, DialState>();
  #state: State = 'new';
  #handler: ((message: RaftMessage) => void) | null = null;
  #wss: WebSocketServer | null = null;
  #server: HttpServer | HttpsServer | null = null;
  #ownServer = false;
  #pingTimer: ReturnType<typeof setInterval> | null = null;
  #starting: Promise<void> | null = null;
  #closing: Promise<void> | null = null;

  /**
   * Checks the options; nothing is bound or dialed until `start`.
   *
   * @throws RaftError `RAFT_INVALID_ARGUMENT` naming the bad option.
   */
  constructor(options: WebSocketTransportOptions) {
    this.#o = resolveOptions(options);
    this.name = this.#o.name;
  }

  /** A snapshot of the counters. */
  metrics(): WebSocketTransportMetrics {
    const m = copyMetrics(this.#metrics);
    m.connections = this.#links.size;
    return m;
  }

  /** Where the server listens (after `start`), or null before start and after close. */
  address(): { host: string; port: number } | null {
    if (this.#state !== 'started' || this.#server === null) return null;
    const a = this.#server.address();
    return a !== null && typeof a === 'object' ? { host: a.address, port: a.port } : null;
  }

  /** The peers with an authenticated connection open now, sorted. */
  connectedPeers(): PeerId[] {
    return [...this.#links.keys()].sort();
  }

  /** The current peer map: every peer's name and URL (this peer excluded). */
  peers(): Record<PeerId, string> {
    return Object.fromEntries([...this.#o.peers].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  /**
   * Adds a peer, or changes its URL, while the transport runs (for membership changes).
   * The design stays: the peer whose name sorts first dials. If this one dials `peer`, it
   * dials at once, or, when the URL changed, closes the connection it has (4007) and
   * redials the new URL; otherwise `peer` may now connect here. Setting this peer's own
   * name, or a peer's current URL, does nothing. Allowed before `start` and after `close`.
   *
   * @throws RaftError `RAFT_INVALID_ARGUMENT` for a bad name or a URL that is not `ws://` or `wss://`.
   */
  setPeer(peer: PeerId, url: string): void {
    checkPeerName('peer (setPeer)', peer);
    const href = checkPeerUrl('url (setPeer)', url);
    if (peer === this.name || this.#o.peers.get(peer) === href) return;
    this.#o.peers.set(peer, href);
    if (this.#state !== 'started' || !(this.name < peer)) return;
    const dial = this.#dials.get(peer);
    if (dial === undefined) {
      this.#dials.set(peer, { conn: null, timer: null, attempt: 0 });
      this.#dial(peer);
      return;
    }
    // The old address is stale: drop whatever goes there, and redial now, without backoff.
    if (dial.timer !== null) clearTimeout(dial.timer);
    dial.timer = null;
    dial.attempt = 0;
    const old = dial.conn;
    dial.conn = null;
    if (old !== null) this.#closeConnection(old, CloseCode.PEER_MOVED, 'the peer moved');
    const link = this.#links.get(peer);
    if (link !== undefined) this.#closeConnection(link, CloseCode.PEER_MOVED, 'the peer moved');
    this.#dial(peer);
  }

  /**
   * Forgets a peer while the transport runs: stops dialing it, closes its connections
   * (4003), and from now on refuses it like any unknown peer; messages to it are dropped
   * (`dropped.unknownPeer`). Forgetting an unknown peer does nothing.
   *
   * @throws RaftError `RAFT_INVALID_ARGUMENT` for a bad name.
   */
  removePeer(peer: PeerId): void {
    checkPeerName('peer (removePeer)', peer);
    if (!this.#o.peers.delete(peer)) return;
    const dial = this.#dials.get(peer);
    if (dial !== undefined) {
      this.#dials.delete(peer);
      if (dial.timer !== null) clearTimeout(dial.timer);
      if (dial.conn !== null) this.#closeConnection(dial.conn, CloseCode.UNKNOWN_PEER, 'removed');
    }
    for (const conn of [...this.#sockets]) {
      if (conn.peer === peer && (conn.phase === 'open' || conn.direction === 'outbound'))
        this.#closeConnection(conn, CloseCode.UNKNOWN_PEER, 'removed');
    }
  }

  /**
   * Listens (or attaches to `server`), then dials the peers whose names sort after this one.
   *
   * @throws RaftError `RAFT_TRANSPORT_UNAVAILABLE` (with `cause`) when it cannot listen or is
   * closed; `RAFT_INVALID_ARGUMENT` when called twice or without a handler.
   */
  async start(onMessage: (message: RaftMessage) => void): Promise<void> {
    if (typeof onMessage !== 'function')
      throw new InvalidArgumentError('start(onMessage): onMessage must be a function');
    if (this.#state === 'closed')
      throw new RaftError('RAFT_TRANSPORT_UNAVAILABLE', `transport ${this.name} is closed`);
    if (this.#state !== 'new')
      throw new InvalidArgumentError(`transport ${this.name}: start was already called`);
    this.#state = 'starting';
    this.#handler = onMessage;
    this.#starting = this.#attach();
    try {
      await this.#starting;
    } catch (error) {
      if (this.#state === 'starting') this.#state = 'new';
      this.#handler = null;
      throw error;
    }
    // close() may have been called while the server was starting.
    if (this.#state !== 'starting')
      throw new RaftError('RAFT_TRANSPORT_UNAVAILABLE', `transport ${this.name} was closed while starting`);
    this.#state = 'started';
    if (this.#o.pingIntervalMs > 0) {
      this.#pingTimer = setInterval(this.#pingAll, this.#o.pingIntervalMs);
      this.#pingTimer.unref();
    }
    // One connection per pair: the peer with the smaller name dials, the other accepts.
    for (const peer of [...this.#o.peers.keys()].sort()) {
      if (this.name < peer) {
        this.#dials.set(peer, { conn: null, timer: null, attempt: 0 });
        this.#dial(peer);
      }
    }
  }

  async #attach(): Promise<void> {
    const o = this.#o;
    const wss = new WebSocketServer({
      noServer: true,
      maxPayload: o.maxPayload,
      perMessageDeflate: false,
      clientTracking: false,
    });
    wss.on('error', () => {}); // only emitted by servers it owns; it owns none
    this.#wss = wss;
    if (o.server !== null) {
      this.#server = o.server;
      o.server.on('upgrade', this.#onUpgrade);
      return;
    }
    const listen = o.listen!;
    const tls = o.tls;
    const server: HttpServer | HttpsServer =
      tls === null
        ? createHttpServer()
        : createHttpsServer({
            cert: tls.cert,
            key: tls.key,
            ...(tls.ca === undefined ? {} : { ca: tls.ca }),
            requestCert: tls.requestCert === true,
            rejectUnauthorized: tls.requestCert === true,
          });
    server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
      res
        .writeHead(426, { 'content-type': 'text/plain', connection: 'close' })
        .end('raft peers speak WebSocket here\n');
    });
    // A stranger sending an upgrade request byte by byte holds no handshake slot, but is cut
    // off at the same deadline as a handshake (Node's default would give it a minute).
    server.headersTimeout = Math.max(1000, o.handshakeTimeoutMs);
    server.on('tlsClientError', () => this.#refusedEvent('tls', undefined, undefined));
    server.on('upgrade', this.#onUpgrade);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(listen.port, listen.host, () => {
          server.removeListener('error', reject);
          resolve();
        });
      });
    } catch (error) {
      server.removeAllListeners();
      wss.close();
      this.#wss = null;
      throw new RaftError(
        'RAFT_TRANSPORT_UNAVAILABLE',
        `transport ${this.name} cannot listen on ${listen.host}:${listen.port}`,
        { cause: error },
      );
    }
    server.on('error', () => {}); // after listen, errors surface on sockets
    this.#server = server;
    this.#ownServer = true;
  }

  /** Sends `message` to `to` if connected; otherwise drops it and counts why. Never throws. */
  send(to: PeerId, message: RaftMessage): void {
    try {
      if (this.#state !== 'started') return this.#drop('closed');
      const conn = this.#links.get(to);
      if (conn === undefined) return this.#drop(this.#o.peers.has(to) ? 'notConnected' : 'unknownPeer');
      // Closing from the other side, not yet reported: a send would be silently lost.
      if (conn.ws.readyState !== WebSocket.OPEN) return this.#drop('notConnected');
      if (message === null || typeof message !== 'object' || message.to !== to || message.from !== this.name)
        return this.#drop('misaddressed');
      if (conn.ws.bufferedAmount > this.#o.highWaterMark) return this.#drop('backpressure');
      let bytes: Buffer;
      try {
        bytes = this.#codec.encode(message);
      } catch {
        return this.#drop('unencodable');
      }
      if (bytes.length > this.#o.maxPayload) return this.#drop('tooLarge');
      conn.ws.send(bytes, { binary: true });
      this.#metrics.messagesSent++;
      this.#metrics.bytesSent += bytes.length;
    } catch {
      // send never throws; a socket failing under us is a lost message, and Raft retries.
      this.#drop('notConnected');
    }
  }

  /** Closes every connection and the server it owns (not one passed as `server`). Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    this.#state = 'closed';
    this.#handler = null;
    if (this.#starting !== null) await this.#starting.catch(() => {});
    if (this.#pingTimer !== null) clearInterval(this.#pingTimer);
    for (const dial of this.#dials.values()) if (dial.timer !== null) clearTimeout(dial.timer);
    this.#server?.removeListener('upgrade', this.#onUpgrade);
    await Promise.all(
      [...this.#sockets].map(async (conn) => {
        this.#closeConnection(conn, CloseCode.GOING_AWAY, 'closing');
        await conn.closed;
      }),
    );
    if (this.#ownServer && this.#server !== null) {
      const server = this.#server;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
    this.#wss?.close();
  }

  // ---- inbound connections -------------------------------------------------------------

  readonly #onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => {});
    if (this.#state !== 'started' || this.#wss === null) {
      socket.destroy();
      return;
    }
    if (this.#o.path !== null && pathOf(req.url) !== this.#o.path) {
      // Not ours. On a server of our own nobody else will answer.
      if (this.#ownServer)
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    if (!this.#admit(addressKey(req.socket.remoteAddress))) {
      this.#refusedEvent('busy', undefined, req.socket.remoteAddress);
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    // Until it authenticates, a stranger may send only a few KiB (maxPayload is for peers):
    // count the raw bytes and cut it off beyond that.
    let preauthBytes = 0;
    let conn: Connection | null = null;
    const remoteAddress = req.socket.remoteAddress;
    const guard = (chunk: Buffer): void => {
      preauthBytes += chunk.length;
      if (preauthBytes <= MAX_PREAUTH_BYTES) return;
      socket.removeListener('data', guard);
      if (conn !== null) {
        // Whatever ws still parses from this chunk is ignored.
        conn.refused = true;
        conn.phase = 'closing';
        this.#endHandshake(conn);
      }
      this.#refusedEvent('protocol', undefined, remoteAddress);
      socket.destroy();
    };
    socket.on('data', guard);
    const tlsSocket = req.socket as Partial<TLSSocket>;
    const cert =
      typeof tlsSocket.getPeerCertificate === 'function' && tlsSocket.authorized === true
        ? tlsSocket.getPeerCertificate()
        : null;
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      conn = this.#accept(ws, remoteAddress, () => socket.removeListener('data', guard));
      conn.cert = cert;
    });
  };

  /**
   * Makes room for a new inbound handshake from `address`, evicting a pending one if need be;
   * false when the newcomer must be refused. Per address: the oldest pending handshake of the
   * address gives way. Overall: a configured peer's address takes the slot of the oldest
   * pending handshake from a stranger's address (or the oldest of all); a stranger is refused.
   */
  #admit(address: string): boolean {
    const pending = [...this.#sockets].filter((c) => c.pending).sort((a, b) => a.since - b.since);
    const mine = pending.filter((c) => c.addressKey === address);
    if (mine.length >= this.#o.maxPendingHandshakesPerAddress) {
      this.#evict(mine[0]!);
      return true;
    }
    if (pending.length < this.#o.maxPendingHandshakes) return true;
    const peerAddresses = new Set([...this.#o.peers.values()].flatMap(addressesOfUrl));
    if (!peerAddresses.has(address)) return false;
    this.#evict(pending.find((c) => !peerAddresses.has(c.addressKey)) ?? pending[0]!);
    return true;
  }

  #evict(conn: Connection): void {
    this.#refuse(conn, 'busy', TRY_AGAIN_LATER);
  }

  #accept(ws: WebSocket, remoteAddress: string | undefined, releaseGuard: () => void): Connection {
    const conn = new Connection(ws, 'inbound', null, remoteAddress);
    conn.releaseGuard = releaseGuard;
    this.#track(conn);
    if (this.#state !== 'started') {
      this.#closeConnection(conn, CloseCode.GOING_AWAY, 'closing');
      return conn;
    }
    conn.nonce = newNonce();
    ws.send(encodeHandshake({ t: 'hello', v: PROTOCOL_VERSION, name: this.name, nonce: conn.nonce }));
    return conn;
  }

  // ---- outbound connections ------------------------------------------------------------

  #dial(peer: PeerId): void {
    const dial = this.#dials.get(peer);
    if (dial === undefined || this.#state !== 'started') return;
    dial.timer = null;
    const o = this.#o;
    const url = o.peers.get(peer)!;
    const options: ClientOptions = {
      maxPayload: o.maxPayload,
      perMessageDeflate: false,
      handshakeTimeout: o.handshakeTimeoutMs,
      followRedirects: false,
    };
    if (o.tls !== null) {
      options.cert = o.tls.cert;
      options.key = o.tls.key;
      if (o.tls.ca !== undefined) options.ca = o.tls.ca;
    }
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, options);
    } catch {
      this.#metrics.dialFailures++;
      this.#scheduleReconnect(peer);
      return;
    }
    const conn = new Connection(ws, 'outbound', peer, url);
    ws.on('upgrade', (res: IncomingMessage) => {
      const socket = res.socket as Partial<TLSSocket>;
      if (typeof socket.getPeerCertificate === 'function') conn.cert = socket.getPeerCertificate();
    });
    dial.conn = conn;
    this.#track(conn);
  }

  #scheduleReconnect(peer: PeerId): void {
    const dial = this.#dials.get(peer);
    if (dial === undefined || dial.timer !== null || dial.conn !== null || this.#state !== 'started') return;
    const delay = backoffDelay(dial.attempt, this.#o.reconnect, this.#o.random);
    dial.attempt++;
    dial.timer = setTimeout(() => {
      this.#metrics.reconnects++;
      this.#dial(peer);
    }, delay);
    dial.timer.unref();
  }

  // ---- every connection ----------------------------------------------------------------

  #track(conn: Connection): void {
    const ws = conn.ws;
    this.#sockets.add(conn);
    ws.on('message', (data: RawData, isBinary: boolean) => this.#onFrame(conn, data, isBinary));
    ws.on('pong', () => {
      conn.alive = true;
    });
    ws.on('error', (error: Error & { code?: string }) => {
      // Without this listener an error would crash the process. ws closes the socket itself.
      // WS_ERR_* codes are WebSocket protocol violations by the other side; others are socket errors.
      const code = error.code;
      if (typeof code !== 'string' || !code.startsWith('WS_ERR_')) return;
      if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') this.#drop('frameTooLarge');
      else if (conn.phase === 'open') this.#drop('undecodable');
      else if (conn.phase === 'handshake' && !conn.refused) {
        conn.refused = true;
        this.#refusedEvent(
          'protocol',
          conn.direction === 'outbound' ? conn.peer! : undefined,
          conn.remoteAddress,
        );
      }
    });
    ws.on('close', (code: number, reason: Buffer) => this.#onClose(conn, code, reason.toString('utf8')));
    conn.handshakeTimer = setTimeout(() => {
      if (conn.phase === 'handshake') this.#refuse(conn, 'timeout', CloseCode.HANDSHAKE_TIMEOUT);
    }, this.#o.handshakeTimeoutMs);
    conn.handshakeTimer.unref();
  }

  #onFrame(conn: Connection, data: RawData, isBinary: boolean): void {
    conn.alive = true;
    if (conn.phase === 'handshake') {
      if (!conn.probing) this.#onHandshakeFrame(conn, toBuffer(data), isBinary);
    } else if (conn.phase === 'open') this.#onData(conn, toBuffer(data), isBinary);
  }

  #onHandshakeFrame(conn: Connection, data: Buffer, isBinary: boolean): void {
    if (!isBinary) return this.#refuse(conn, 'protocol', CloseCode.PROTOCOL_ERROR);
    const version = versionOf(data);
    if (version !== null && version !== PROTOCOL_VERSION)
      return this.#refuse(conn, 'version', CloseCode.VERSION_MISMATCH);
    const secret = this.#o.secret;
    if (conn.direction === 'inbound') {
      const auth = decodeAuth(data);
      if (auth === null) return this.#refuse(conn, 'protocol', CloseCode.PROTOCOL_ERROR);
      // Only a configured peer with a smaller name dials us (one connection per pair). An
      // unknown name gets the same close code as a wrong MAC, after as much work, so that a
      // stranger cannot tell which names exist.
      const known = this.#o.peers.has(auth.name) && auth.name < this.name;
      let mac: Buffer | null = null;
      if (secret !== null || !known) {
        const expected = handshakeMac(
          known ? secret! : DUMMY_KEY,
          'dialer',
          auth.name,
          this.name,
          conn.nonce!,
          auth.nonce,
        );
        if (!known) return this.#refuse(conn, 'unknownPeer', CloseCode.AUTH_FAILED, auth.name);
        if (!macMatches(expected, auth.mac))
          return this.#refuse(conn, 'auth', CloseCode.AUTH_FAILED, auth.name);
        mac = handshakeMac(secret!, 'acceptor', auth.name, this.name, conn.nonce!, auth.nonce);
      }
      if (this.#identityRequired(conn) && !certificateNamesPeer(conn.cert, auth.name))
        return this.#refuse(conn, 'identity', CloseCode.AUTH_FAILED, auth.name);
      const welcome = encodeHandshake({ t: 'welcome', mac });
      const previous = this.#links.get(auth.name);
      if (previous !== undefined && secret === null && !this.#identityRequired(conn))
        return this.#probeBeforeReplacing(conn, previous, auth.name, welcome);
      conn.ws.send(welcome);
      return this.#open(conn, auth.name);
    }
    const peer = conn.peer!;
    if (conn.remoteNonce === null) {
      const hello = decodeHello(data);
      if (hello === null) return this.#refuse(conn, 'protocol', CloseCode.PROTOCOL_ERROR);
      if (hello.name !== peer) return this.#refuse(conn, 'unknownPeer', CloseCode.UNKNOWN_PEER, hello.name);
      if (this.#identityRequired(conn) && !certificateNamesPeer(conn.cert, peer))
        return this.#refuse(conn, 'identity', CloseCode.AUTH_FAILED, peer);
      conn.remoteNonce = hello.nonce;
      conn.nonce = newNonce();
      const mac =
        secret === null ? null : handshakeMac(secret, 'dialer', this.name, peer, hello.nonce, conn.nonce);
      conn.ws.send(
        encodeHandshake({ t: 'auth', v: PROTOCOL_VERSION, name: this.name, nonce: conn.nonce, mac }),
      );
      return;
    }
    const welcome = decodeWelcome(data);
    if (welcome === null) return this.#refuse(conn, 'protocol', CloseCode.PROTOCOL_ERROR);
    if (
      secret !== null &&
      !macMatches(
        handshakeMac(secret, 'acceptor', this.name, peer, conn.remoteNonce, conn.nonce!),
        welcome.mac,
      )
    ) {
      return this.#refuse(conn, 'auth', CloseCode.AUTH_FAILED, peer);
    }
    this.#open(conn, peer);
  }

  /** Whether the other side's certificate must name the peer it claims (`tls.verifyPeerName`). */
  #identityRequired(conn: Connection): boolean {
    const tls = this.#o.tls;
    if (tls === null || tls.verifyPeerName === false) return false;
    if (conn.direction === 'outbound') return this.#o.peers.get(conn.peer!)?.startsWith('wss:') === true;
    return tls.requestCert === true;
  }

  /**
   * Nothing proves who `conn` is (no secret, no certificate): it may replace the open
   * connection `previous` of the same peer only if that one is dead. Probe it with a ping;
   * if it answers within {@link DUPLICATE_PROBE_MS}, the newcomer is refused (a stranger
   * cannot knock a live peer off); otherwise the newcomer takes over (a restarted peer).
   */
  #probeBeforeReplacing(conn: Connection, previous: Connection, peer: PeerId, welcome: Buffer): void {
    conn.probing = true;
    previous.alive = false;
    try {
      previous.ws.ping();
    } catch {
      // A socket failing under us is dead: the newcomer wins below.
    }
    const timer = setTimeout(() => {
      if (conn.phase !== 'handshake') return;
      if (previous.phase === 'open' && previous.alive && this.#links.get(peer) === previous)
        return this.#refuse(conn, 'duplicate', CloseCode.AUTH_FAILED, peer);
      conn.ws.send(welcome);
      this.#open(conn, peer);
    }, DUPLICATE_PROBE_MS);
    timer.unref();
  }

  #open(conn: Connection, peer: PeerId): void {
    this.#endHandshake(conn);
    conn.phase = 'open';
    conn.peer = peer;
    const previous = this.#links.get(peer);
    this.#links.set(peer, conn);
    // A peer that restarted may connect before its old connection is known dead: the newest wins.
    if (previous !== undefined && previous !== conn)
      this.#closeConnection(previous, CloseCode.REPLACED, 'replaced by a newer connection');
    const dial = this.#dials.get(peer);
    if (dial !== undefined && dial.conn === conn) dial.attempt = 0;
    this.#metrics.connectionsOpened++;
    this.#emit({ type: 'connected', peer, direction: conn.direction });
  }

  #onData(conn: Connection, data: Buffer, isBinary: boolean): void {
    const handler = this.#handler;
    if (this.#state !== 'started' || handler === null) return;
    this.#metrics.bytesReceived += data.length;
    if (!isBinary) return this.#malformed(conn, 'nonBinary', 'a text frame');
    let value: unknown;
    try {
      value = this.#codec.decode(data);
    } catch (error) {
      return this.#malformed(
        conn,
        'undecodable',
        error instanceof Error ? error.message.slice(0, 200) : 'not MessagePack',
      );
    }
    const result = validateMessage(value);
    if (!result.ok) return this.#malformed(conn, 'invalid', result.reason);
    const message = result.message;
    if (message.from !== conn.peer)
      return this.#malformed(
        conn,
        'wrongSender',
        `from ${JSON.stringify(message.from.slice(0, 64))} on the connection of ${conn.peer}`,
      );
    if (message.to !== this.name)
      return this.#malformed(conn, 'wrongAddressee', `to ${JSON.stringify(message.to.slice(0, 64))}`);
    this.#metrics.messagesReceived++;
    try {
      handler(message);
    } catch (error) {
      this.#metrics.handlerErrors++;
      this.#emit({ type: 'handlerError', error });
    }
  }

  #malformed(conn: Connection, cause: DropCause, detail: string): void {
    this.#drop(cause);
    this.#emit({ type: 'malformed', peer: conn.peer!, cause, detail });
    const now = Date.now();
    const { count, windowMs } = this.#o.malformedLimit;
    conn.strikes.push(now);
    while (conn.strikes.length > 0 && conn.strikes[0]! <= now - windowMs) conn.strikes.shift();
    if (conn.strikes.length > count) {
      this.#metrics.malformedCloses++;
      this.#closeConnection(conn, CloseCode.TOO_MANY_MALFORMED, 'too many malformed frames');
    }
  }

  #refuse(conn: Connection, reason: RefusalReason, code: number, peer?: PeerId): void {
    conn.refused = true;
    this.#refusedEvent(
      reason,
      peer ?? (conn.direction === 'outbound' ? conn.peer! : undefined),
      conn.remoteAddress,
    );
    this.#closeConnection(conn, code, reason);
  }

  #refusedEvent(reason: RefusalReason, peer: PeerId | undefined, remoteAddress: string | undefined): void {
    this.#metrics.refused[reason]++;
    this.#emit({
      type: 'refused',
      reason,
      ...(peer === undefined ? {} : { peer }),
      ...(remoteAddress === undefined ? {} : { remoteAddress }),
    });
  }

  #endHandshake(conn: Connection): void {
    if (conn.handshakeTimer !== null) clearTimeout(conn.handshakeTimer);
    conn.handshakeTimer = null;
    conn.releaseGuard();
    conn.pending = false;
  }

  /** Starts closing a connection; its `close` event finishes the cleanup. */
  #closeConnection(conn: Connection, code: number, reason: string): void {
    if (conn.phase === 'closing' || conn.phase === 'closed') return;
    const wasOpen = conn.phase === 'open';
    conn.phase = 'closing';
    this.#endHandshake(conn);
    if (wasOpen) this.#unlink(conn, code, reason);
    try {
      conn.ws.close(code, reason);
    } catch {
      conn.ws.terminate();
    }
    // ws waits up to 30 s for the other side's close frame; a peer that does not answer is cut sooner.
    setTimeout(() => conn.ws.terminate(), CLOSE_GRACE_MS).unref();
  }

  #unlink(conn: Connection, code: number, reason: string): void {
    if (conn.peer !== null && this.#links.get(conn.peer) === conn) {
      this.#links.delete(conn.peer);
      this.#emit({ type: 'disconnected', peer: conn.peer, code, reason });
    }
  }

  #onClose(conn: Connection, code: number, reason: string): void {
    const phase = conn.phase;
    conn.phase = 'closed';
    this.#endHandshake(conn);
    this.#sockets.delete(conn);
    if (phase === 'open') this.#unlink(conn, code, reason);
    if (conn.direction === 'outbound') {
      if (phase === 'handshake' && !conn.refused) {
        // The acceptor refused us (its close code says why), or the dial itself failed.
        const refusal = refusalOf(code);
        if (refusal !== null) this.#refusedEvent(refusal, conn.peer!, undefined);
        else this.#metrics.dialFailures++;
      }
      const dial = this.#dials.get(conn.peer!);
      if (dial !== undefined && dial.conn === conn) {
        dial.conn = null;
        this.#scheduleReconnect(conn.peer!);
      }
    }
    conn.resolveClosed();
  }

  readonly #pingAll = (): void => {
    for (const conn of this.#links.values()) {
      if (!conn.alive) {
        // Nothing since the last ping, not even a pong: the connection is dead or stuck.
        this.#metrics.pingTimeouts++;
        this.#unlink(conn, 1006, 'ping timeout');
        conn.ws.terminate();
        continue;
      }
      conn.alive = false;
      try {
        conn.ws.ping();
      } catch {
        conn.ws.terminate();
      }
    }
  };

  #drop(cause: DropCause): void {
    this.#metrics.dropped[cause]++;
  }

  #emit(event: WebSocketTransportEvent): void {
    const onEvent = this.#o.onEvent;
    if (onEvent === null) return;
    try {
      onEvent(event);
    } catch {
      // A logging callback must not break the transport.
    }
  }
}

/**
 * Creates a {@link WebSocketTransport}: `webSocketTransport(options)` is
 * `new WebSocketTransport(options)`, for code that prefers factories.
 *
 * @throws RaftError `RAFT_INVALID_ARGUMENT` naming the bad option. `start` rejects with
 * `RAFT_TRANSPORT_UNAVAILABLE` (with `cause`) when it cannot listen.
 */
export function webSocketTransport(options: WebSocketTransportOptions): WebSocketTransport {
  return new WebSocketTransport(options);
}
