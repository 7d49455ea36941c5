import { mkdir, readFile } from 'node:fs/promises';
import {
  createServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { dirname, resolve } from 'node:path';
import { RaftError, startPeer, withSessions } from '@raft/core';
import { levelLogStore } from '@raft/log-level';
import { webSocketTransport } from '@raft/transport-ws';
import type { WebSocketTransportEvent } from '@raft/transport-ws';
import type { Logger } from 'pino';
import { clientApi } from './client-api.js';
import { PeerDirectory } from './directory.js';
import { Forwarder, ForwardVerifier, forwardKey } from './forward.js';
import { HttpGuard } from './http-guard.js';
import { sendReply } from './http-util.js';
import { appMachine } from './machine.js';
import { authority, isLoopbackHost, type HostPort, type NodeOptions } from './options.js';
import { peerApi } from './peer-api.js';
import { KvService, type AppPeer } from './service.js';
import { observe, type Observe } from './observe.js';

/** A running node, from {@link startNode}. */
export interface RunningNode {
  /** The Raft peer. */
  readonly peer: AppPeer;
  /** The peer URLs this node knows (the replicated peer directory, as applied here). */
  readonly directory: PeerDirectory;
  /** Where the client HTTP API listens. */
  readonly httpAddress: HostPort;
  /** Where the peer port listens. */
  readonly peerAddress: HostPort;
  /**
   * Stops gracefully: refuses new requests (503), lets those in flight finish or fail
   * (bounded by the request timeout), stops the peer (closing its store), closes the ports.
   * Idempotent.
   */
  stop(): Promise<void>;
  /** Resolves if the peer stops by itself (its log store failed): the process should exit non-zero. */
  readonly failed: Promise<void>;
}

type Server = HttpServer | HttpsServer;

/** Reads a PEM file named by an option; a clear error naming the option when it cannot. */
async function readPem(option: string, file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new RaftError(
      'RAFT_INVALID_ARGUMENT',
      `${option} ${file}: cannot read it: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

/** The TLS material of the options, read from their files. */
async function readTls(opts: NodeOptions): Promise<{
  peer: { cert: Buffer; key: Buffer; ca: Buffer } | null;
  client: { cert: Buffer; key: Buffer; ca: Buffer | null } | null;
}> {
  const p = opts.peerTls;
  const c = opts.clientTls;
  return {
    peer:
      p === null
        ? null
        : {
            cert: await readPem('--peer-cert-file', p.certFile),
            key: await readPem('--peer-key-file', p.keyFile),
            ca: await readPem('--peer-trusted-ca-file', p.caFile),
          },
    client:
      c === null
        ? null
        : {
            cert: await readPem('--cert-file', c.certFile),
            key: await readPem('--key-file', c.keyFile),
            ca: c.caFile === null ? null : await readPem('--trusted-ca-file', c.caFile),
          },
  };
}

function listen(server: Server, where: HostPort, option: string): Promise<HostPort> {
  return new Promise((resolveListen, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const why =
        err.code === 'EADDRINUSE'
          ? 'address already in use'
          : err.code === 'EACCES'
            ? 'permission denied'
            : err.code === 'EADDRNOTAVAIL'
              ? 'no such local address'
              : err.message;
      reject(
        new RaftError('RAFT_TRANSPORT_UNAVAILABLE', `${option} ${authority(where)}: cannot listen: ${why}`, {
          cause: err,
        }),
      );
    };
    server.once('error', onError);
    server.listen(where.port, where.host, () => {
      server.removeListener('error', onError);
      const a = server.address() as AddressInfo;
      resolveListen({ host: a.address, port: a.port });
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((done) => {
    if (!server.listening) {
      done();
      return;
    }
    server.close(() => done());
    server.closeAllConnections();
  });
}

/** Counts requests in flight, and tells when there are none. */
class InFlight {
  private count = 0;
  private waiters: (() => void)[] = [];

  track(res: ServerResponse): void {
    this.count++;
    res.once('close', () => {
      this.count--;
      if (this.count === 0) for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Resolves when no request is in flight, or after `ms`. */
  idle(ms: number): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((done) => {
      const timer = setTimeout(done, ms);
      this.waiters.push(() => {
        clearTimeout(timer);
        done();
      });
    });
  }
}

function describeStartError(err: unknown, opts: NodeOptions): Error {
  if (!RaftError.isInstance(err)) return err instanceof Error ? err : new Error(String(err));
  switch (err.code) {
    case 'RAFT_STORAGE_LOCKED':
      return new RaftError(
        err.code,
        `--data ${opts.data}: the data directory is in use by another process (is this node already running?)`,
        { cause: err },
      );
    case 'RAFT_STORAGE_CORRUPT':
    case 'RAFT_STORAGE_UNAVAILABLE':
      return new RaftError(err.code, `--data ${opts.data}: ${err.message}`, { cause: err });
    default:
      return err;
  }
}

/**
 * Starts one node: the peer port (Raft over WebSocket, plus forwarded requests), the
 * client HTTP API, the LevelDB log, and the Raft peer. The member whose id sorts first
 * bootstraps a fresh cluster, unless `opts.join`.
 *
 * @throws `RAFT_TRANSPORT_UNAVAILABLE` when a port cannot be bound, `RAFT_STORAGE_*`
 * when the data directory cannot be used, `RAFT_INVALID_ARGUMENT` for a bad option.
 */
export async function startNode(opts: NodeOptions, logger: Logger): Promise<RunningNode> {
  const inflight = new InFlight();
  let closing = false;
  let service: KvService | null = null;
  const internalError = (err: unknown): void =>
    logger.error({ err }, 'internal error while answering a request');
  const unavailable = (res: ServerResponse): void => {
    res
      .writeHead(503, { 'content-type': 'application/json; charset=utf-8', connection: 'close' })
      .end('{"error":"election_in_progress"}');
  };

  const tls = await readTls(opts);
  const dataDir = resolve(opts.data);
  const directory = await PeerDirectory.open(opts.peers, dataDir, logger);
  // Forwarded requests come from any node of the directory: it grows with the membership.
  const verifier = new ForwardVerifier(
    opts.secret === null ? null : forwardKey(opts.secret),
    directory.known,
    opts.id,
  );
  const once = rateLimiter(60_000);
  const handlePeerRequest = peerApi({
    execute: (op, deadline, hops) =>
      service === null
        ? Promise.resolve({ status: 503, body: { error: 'election_in_progress' } })
        : service.execute(op, deadline, hops),
    verifier,
    closing: () => closing,
    requestTimeoutMs: opts.requestTimeoutMs,
    onInternalError: internalError,
    onRefused: (reason, remote) => {
      if (once(`forward ${reason} ${remote ?? ''}`))
        logger.warn({ reason, remote }, 'refused a forwarded request');
    },
  });
  let obs: Observe | null = null;
  const onPeerRequest = (req: IncomingMessage, res: ServerResponse): void => {
    inflight.track(res);
    obs?.count(req, res, 'peer');
    if (obs?.peer(req, res) === true) return;
    handlePeerRequest(req, res);
  };
  // With TLS, the peer port runs mutual TLS: a client without a certificate from the CA
  // gets no further than the TLS handshake (the transport then checks that the certificate
  // names the peer it claims to be).
  const peerServer: Server =
    tls.peer === null
      ? createServer(onPeerRequest)
      : createHttpsServer(
          {
            cert: tls.peer.cert,
            key: tls.peer.key,
            ca: tls.peer.ca,
            requestCert: true,
            rejectUnauthorized: true,
          },
          onPeerRequest,
        );
  peerServer.keepAliveTimeout = 65_000;
  // Request heads (WebSocket upgrades included) arrive within 5 s, not Node's default minute:
  // a stranger trickling bytes holds a socket no longer than a handshake may take.
  peerServer.headersTimeout = 5000;

  let handleClientRequest: ((req: IncomingMessage, res: ServerResponse) => void) | null = null;
  let guard: HttpGuard | null = null;
  const onClientRequest = (req: IncomingMessage, res: ServerResponse): void => {
    inflight.track(res);
    obs?.count(req, res, 'client');
    // Every route, whatever its path (the probes and /metrics included), answers only to an
    // allowed Host (DNS rebinding).
    const misdirected = guard?.checkHost(req);
    if (misdirected !== undefined) sendReply(res, misdirected, { close: true });
    else if (obs?.client(req, res) === true) return;
    else if (handleClientRequest === null) unavailable(res);
    else handleClientRequest(req, res);
  };
  const clientServer: Server =
    tls.client === null
      ? createServer(onClientRequest)
      : createHttpsServer(
          {
            cert: tls.client.cert,
            key: tls.client.key,
            ...(tls.client.ca === null
              ? {}
              : { ca: tls.client.ca, requestCert: true, rejectUnauthorized: true }),
          },
          onClientRequest,
        );
  clientServer.keepAliveTimeout = 65_000;

  const cleanup = async (): Promise<void> => {
    await Promise.all([closeServer(clientServer), closeServer(peerServer)]);
  };

  let peer: AppPeer;
  let peerAddress: HostPort;
  let httpAddress: HostPort;
  let transport: ReturnType<typeof webSocketTransport>;
  try {
    try {
      await mkdir(dirname(dataDir), { recursive: true });
    } catch (err) {
      throw new RaftError(
        'RAFT_STORAGE_UNAVAILABLE',
        `--data ${opts.data}: cannot create its parent directory: ${(err as Error).message}`,
        { cause: err },
      );
    }
    peerAddress = await listen(peerServer, opts.listen, '--listen');
    httpAddress = await listen(clientServer, opts.http, '--http');
    guard = new HttpGuard({
      allowedHosts: [opts.http.host.toLowerCase(), ...opts.allowedHosts],
      port: httpAddress.port,
      adminToken: opts.adminToken,
    });
    transport = webSocketTransport({
      name: opts.id,
      peers: directory.toJSON(),
      server: peerServer,
      ...(opts.secret === null ? {} : { secret: opts.secret }),
      ...(tls.peer === null ? {} : { tls: { ...tls.peer, requestCert: true } }),
      onEvent: (event: WebSocketTransportEvent) => logTransportEvent(logger, event, once),
    });
    directory.attach(transport);
    // withSessions passes plain commands through, so to the service this is an AppPeer;
    // writes with an Idempotency-Key go through writeIdempotent.
    peer = (await startPeer(withSessions(appMachine(opts.peers, directory)), {
      name: opts.id,
      log: levelLogStore({ location: dataDir }),
      transport,
      logger: logger.child({ component: 'raft' }),
      snapshotEvery: opts.snapshotEvery,
      electionTimeoutMs: opts.timing.electionTimeoutMs,
      heartbeatIntervalMs: opts.timing.heartbeatIntervalMs,
    }).catch((err: unknown) => {
      throw describeStartError(err, opts);
    })) as unknown as AppPeer;
  } catch (err) {
    await cleanup();
    throw err;
  }

  const forwarder = new Forwarder(opts.id, directory.known, opts.secret, logger, tls.peer);
  const httpGuard = guard;
  const svc = new KvService(peer, forwarder, logger, () => directory.known, opts.requestTimeoutMs);
  service = svc;
  handleClientRequest = clientApi({
    execute: (op, deadline, hops) => svc.execute(op, deadline, hops),
    status: () => peer.status(),
    view: () => svc.view(),
    closing: () => closing,
    requestTimeoutMs: opts.requestTimeoutMs,
    onInternalError: internalError,
    guard: httpGuard,
  });

  obs = observe({
    id: opts.id,
    status: () => peer.status(),
    figures: () => peer.figures(),
    transport: () => transport.metrics(),
    members: () => dashboardMembers(peer, directory),
    execute: (op, deadline, hops) => svc.execute(op, deadline, hops),
    closing: () => closing,
  });

  if (opts.join)
    logger.info({}, 'joining: waiting to be added to a running cluster (POST /cluster/members on any node)');
  else bootstrapIfFirst(peer, opts, logger);

  // The runtime stops a peer whose log store or state machine failed (fail-stop); then this process is useless.
  const failed = peer.whenStopped().then((reason) => {
    if (closing) return new Promise<void>(() => undefined);
    logger.fatal(
      { err: reason },
      'the Raft peer stopped by itself (its log store or applying failed); exiting',
    );
    return undefined;
  });

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      closing = true;
      svc.closing = true;
      clientServer.close();
      clientServer.closeIdleConnections();
      await inflight.idle(Math.min(opts.requestTimeoutMs + 500, 10_000));
      // A leader hands leadership over first, so its stop costs the cluster no election.
      await peer.stop({ handOff: true });
      await inflight.idle(1000);
      forwarder.close();
      obs?.stop();
      await cleanup();
      await directory.flushed();
      logger.info({}, 'node stopped');
    })();
    return stopping;
  };

  logSecurityPosture(logger, opts, peerAddress, httpAddress);
  logger.info(
    {
      http: authority(httpAddress),
      listen: authority(peerAddress),
      data: opts.data,
      configuration: peer.status().configuration,
      peers: directory.toJSON(),
      snapshotEvery: opts.snapshotEvery,
    },
    'node started',
  );
  return { peer, directory, httpAddress, peerAddress, stop, failed };
}

/**
 * Logs, at start, what protects this node: the secret, TLS on each port, where it listens,
 * who may change the membership; and warns about what does not.
 */
function logSecurityPosture(logger: Logger, opts: NodeOptions, peer: HostPort, http: HostPort): void {
  const posture = {
    secret: opts.secret !== null,
    peerTls: opts.peerTls !== null,
    clientTls: opts.clientTls !== null,
    clientCertificates: opts.clientTls?.caFile != null,
    listen: authority(peer),
    http: authority(http),
    adminToken: opts.adminToken !== null,
    allowedHosts: [...new Set([opts.http.host, 'localhost', '127.0.0.1', '::1', ...opts.allowedHosts])],
    insecure: opts.insecure,
  };
  logger.info(posture, 'security posture');
  const exposed = !isLoopbackHost(opts.listen.host) || !isLoopbackHost(opts.http.host);
  if (opts.secret === null)
    logger.warn(
      { exposed },
      exposed
        ? 'no cluster secret (--insecure): anyone who can reach the peer port can join as a peer; forwarding /cluster changes to the leader is off (client requests still go through any node, inside Raft)'
        : 'no cluster secret: local processes can join as a peer; forwarding /cluster changes to the leader is off (send those to the leader; client requests still go through any node)',
    );
  if (exposed && opts.peerTls === null)
    logger.warn(
      {},
      'the peer port is not encrypted (no --peer-cert-file): peer traffic can be read and altered on the path',
    );
  if (opts.adminToken === null)
    logger.info(
      {},
      'no --admin-token: membership and leadership changes are accepted from loopback clients only',
    );
}

/**
 * The member whose id sorts first bootstraps the cluster when its log is empty and its
 * term 0 (a node that never ran); the others wait to hear from a leader.
 */
function bootstrapIfFirst(peer: AppPeer, opts: NodeOptions, logger: Logger): void {
  const members = [...opts.peers.keys()].sort();
  if (members[0] !== opts.id) return;
  const s = peer.status();
  if (s.lastLogIndex !== 0 || s.term !== 0) return;
  logger.info({ members }, 'bootstrapping a new cluster');
  // The configuration entry is appended at once; it commits when a majority is up.
  peer.setConfiguration(members, { timeout: 24 * 3600 * 1000 }).then(
    () => logger.info({ members }, 'cluster configured'),
    (err: unknown) => {
      if (RaftError.isInstance(err) && err.code === 'RAFT_STOPPED') return;
      logger.error({ err }, 'bootstrapping the cluster failed');
    },
  );
}

/** The members the dashboard shows (voters and learners, or every known peer before bootstrap) and their peer URLs. */
function dashboardMembers(peer: AppPeer, directory: PeerDirectory): Map<string, string> {
  const c = peer.status().configuration;
  const ids = new Set([...c.members, ...(c.outgoing ?? []), ...(c.learners ?? [])]);
  if (ids.size === 0) return new Map(directory.known);
  return new Map([...directory.known].filter(([id]) => ids.has(id)));
}

/** Returns a function that is true for a key at most once per `ms`: errors are logged once, not per request. */
function rateLimiter(ms: number): (key: string) => boolean {
  const last = new Map<string, number>();
  return (key) => {
    const now = performance.now();
    const prev = last.get(key);
    if (prev !== undefined && now - prev < ms) return false;
    last.set(key, now);
    return true;
  };
}

function logTransportEvent(
  logger: Logger,
  event: WebSocketTransportEvent,
  once: (key: string) => boolean,
): void {
  switch (event.type) {
    case 'connected':
      logger.debug({ peer: event.peer, direction: event.direction }, 'peer connected');
      return;
    case 'disconnected':
      logger.debug({ peer: event.peer, code: event.code }, 'peer disconnected');
      return;
    case 'refused': {
      // Logged once a minute per reason and address: a flood must not flood the log too.
      if (!once(`refused ${event.reason} ${event.remoteAddress ?? event.peer ?? ''}`)) return;
      const fields = { peer: event.peer, reason: event.reason, remote: event.remoteAddress };
      if (event.reason === 'auth') logger.warn(fields, 'refused a peer connection: wrong secret');
      else if (event.reason === 'unknownPeer')
        logger.warn(fields, 'refused a peer connection: unknown peer name');
      else if (event.reason === 'identity')
        logger.warn(fields, 'refused a peer connection: its certificate does not name the peer it claims');
      else if (event.reason === 'duplicate')
        logger.warn(
          fields,
          'refused a second connection claiming a live peer (no secret to tell them apart)',
        );
      else if (event.reason === 'busy')
        logger.warn(fields, 'too many unauthenticated peer connections: refused or evicted one');
      else logger.info(fields, 'refused a peer connection');
      return;
    }
    case 'malformed':
      logger.debug({ peer: event.peer, cause: event.cause }, 'dropped a malformed frame');
      return;
    case 'handlerError':
      logger.error({ err: event.error }, 'the transport handler threw');
      return;
  }
}
