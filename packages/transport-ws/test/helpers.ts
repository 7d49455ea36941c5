import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket } from 'ws';
import type { ClientOptions, RawData } from 'ws';
import type { AppendEntriesMessage, PeerId, RaftMessage } from '@raft/core';
import { webSocketTransport } from '../src/index.js';
import type { WebSocketTransport, WebSocketTransportOptions } from '../src/index.js';
import {
  PROTOCOL_VERSION,
  decodeHello,
  decodeWelcome,
  encodeHandshake,
  handshakeMac,
  newNonce,
} from '../src/protocol.js';

/** Polls `predicate` until it holds, or fails after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** An HTTP server on a free loopback port. */
export async function listeningServer(): Promise<{ server: Server; port: number; url: string }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { server, port, url: `ws://127.0.0.1:${port}` };
}

export async function closeServer(server: Server): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export function heartbeat(from: PeerId, to: PeerId, seq: number): AppendEntriesMessage {
  return {
    type: 'AppendEntries',
    term: 1,
    from,
    to,
    prevLogIndex: 0,
    prevLogTerm: 0,
    entries: [],
    leaderCommit: 0,
    seq,
  };
}

/** A started transport and what it received. */
export interface Node {
  name: PeerId;
  transport: WebSocketTransport;
  inbox: RaftMessage[];
}

/**
 * A cluster of transports on their own HTTP servers (port 0), in this process. Every
 * option in `options` applies to every peer; `perPeer` overrides per name.
 */
export class TestCluster {
  readonly nodes = new Map<PeerId, Node>();
  readonly servers = new Map<PeerId, Server>();
  readonly urls: Record<PeerId, string> = {};
  readonly #extra: (() => Promise<void>)[] = [];

  static async create(
    names: PeerId[],
    options: Partial<WebSocketTransportOptions> = {},
    perPeer: Record<PeerId, Partial<WebSocketTransportOptions>> = {},
    extraPeers: Record<PeerId, string> = {},
  ): Promise<TestCluster> {
    const cluster = new TestCluster();
    for (const name of names) {
      const { server, url } = await listeningServer();
      cluster.servers.set(name, server);
      cluster.urls[name] = url;
    }
    Object.assign(cluster.urls, extraPeers);
    for (const name of names) {
      const transport = webSocketTransport({
        name,
        server: cluster.servers.get(name)!,
        peers: cluster.urls,
        pingIntervalMs: 0,
        reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
        ...options,
        ...perPeer[name],
      });
      const node: Node = { name, transport, inbox: [] };
      cluster.nodes.set(name, node);
      await transport.start((m) => node.inbox.push(m));
    }
    return cluster;
  }

  node(name: PeerId): Node {
    const node = this.nodes.get(name);
    if (node === undefined) throw new Error(`no node ${name}`);
    return node;
  }

  /** Registers something to release in `close`. */
  defer(release: () => Promise<void>): void {
    this.#extra.push(release);
  }

  /** Waits until every pair of nodes has an authenticated connection. */
  async connected(timeoutMs = 5000): Promise<void> {
    const names = [...this.nodes.keys()];
    await waitFor(
      () =>
        [...this.nodes.values()].every((n) =>
          names.every((x) => x === n.name || n.transport.connectedPeers().includes(x)),
        ),
      'every pair to connect',
      timeoutMs,
    );
  }

  /** Sends `a` → `b` and back, and waits for both: proves the link is healthy. */
  async exchange(a: PeerId, b: PeerId, seq: number): Promise<void> {
    const na = this.node(a);
    const nb = this.node(b);
    na.transport.send(b, heartbeat(a, b, seq));
    nb.transport.send(a, heartbeat(b, a, seq));
    const got = (n: Node, from: PeerId): boolean =>
      n.inbox.some((m) => m.from === from && m.type === 'AppendEntries' && m.seq === seq);
    await waitFor(() => got(nb, a) && got(na, b), `an exchange ${a} <-> ${b} (seq ${seq})`);
  }

  async close(): Promise<void> {
    for (const node of this.nodes.values()) await node.transport.close();
    for (const release of this.#extra) await release();
    for (const server of this.servers.values()) await closeServer(server);
  }
}

/** A raw WebSocket client that speaks the handshake itself: a stranger, or a peer gone bad. */
export class RawPeer {
  readonly frames: { data: Buffer; isBinary: boolean }[] = [];
  closeCode: number | null = null;
  readonly closed: Promise<number>;

  private constructor(readonly ws: WebSocket) {
    this.closed = new Promise((resolve) => {
      ws.on('close', (code) => {
        this.closeCode = code;
        resolve(code);
      });
    });
    ws.on('error', () => {});
    ws.on('message', (data: RawData, isBinary: boolean) =>
      this.frames.push({ data: data as Buffer, isBinary }),
    );
  }

  /** Connects without any handshake. */
  static async connect(url: string, options: ClientOptions = {}): Promise<RawPeer> {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...options });
    const peer = new RawPeer(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return peer;
  }

  /** Connects and completes the handshake as `name` toward `acceptor`. */
  static async authenticated(
    url: string,
    name: PeerId,
    acceptor: PeerId,
    secret: string | null,
    options: ClientOptions = {},
  ): Promise<RawPeer> {
    const peer = await RawPeer.connect(url, options);
    await waitFor(() => peer.frames.length >= 1, 'hello');
    const hello = decodeHello(peer.frames[0]!.data);
    if (hello === null) throw new Error('no hello');
    const nonce = newNonce();
    const mac =
      secret === null
        ? null
        : handshakeMac(Buffer.from(secret), 'dialer', name, acceptor, hello.nonce, nonce);
    peer.ws.send(encodeHandshake({ t: 'auth', v: PROTOCOL_VERSION, name, nonce, mac }));
    await waitFor(() => peer.frames.length >= 2 || peer.closeCode !== null, 'welcome');
    if (peer.closeCode !== null || decodeWelcome(peer.frames[1]!.data) === null)
      throw new Error(`refused (${peer.closeCode})`);
    return peer;
  }

  send(data: Uint8Array | string, binary = typeof data !== 'string'): void {
    this.ws.send(data, { binary });
  }

  async close(): Promise<void> {
    if (this.closeCode === null) {
      this.ws.terminate();
      await this.closed;
    }
  }
}
