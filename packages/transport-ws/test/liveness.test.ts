import type { AddressInfo } from 'node:net';
import { seededRandom } from '@raft/core';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import type { RawData, WebSocket } from 'ws';
import type { AppendEntriesMessage, PeerId, RaftMessage } from '@raft/core';
import { webSocketTransport } from '../src/index.js';
import type { WebSocketTransport, WebSocketTransportEvent, WebSocketTransportOptions } from '../src/index.js';
import {
  MessageCodec,
  PROTOCOL_VERSION,
  decodeAuth,
  encodeHandshake,
  handshakeMac,
  newNonce,
} from '../src/protocol.js';
import { RawPeer, TestCluster, closeServer, heartbeat, listeningServer, waitFor } from './helpers.js';

const SECRET = 'liveness-secret-0123456789abcdef';
const codec = new MessageCodec();

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const release of cleanup.reverse()) await release();
  cleanup = [];
});

function later(release: () => Promise<void>): void {
  cleanup.push(release);
}

const seeded = seededRandom;

/** A hand-written acceptor: completes the handshake as `name`, then does what the test says. */
class RawAcceptor {
  readonly received: RaftMessage[] = [];
  socket: WebSocket | null = null;
  private constructor(
    readonly wss: WebSocketServer,
    readonly url: string,
  ) {}

  static async start(
    name: PeerId,
    secret: string,
    options: { autoPong?: boolean } = {},
  ): Promise<RawAcceptor> {
    const wss = new WebSocketServer({
      port: 0,
      host: '127.0.0.1',
      perMessageDeflate: false,
      autoPong: options.autoPong ?? true,
    });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    const acceptor = new RawAcceptor(wss, `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
    wss.on('connection', (ws) => {
      ws.on('error', () => {});
      const nonce = newNonce();
      let open = false;
      ws.send(encodeHandshake({ t: 'hello', v: PROTOCOL_VERSION, name, nonce }));
      ws.on('message', (data: RawData) => {
        if (open) {
          acceptor.received.push(codec.decode(data as Buffer) as RaftMessage);
          return;
        }
        const auth = decodeAuth(data as Buffer)!;
        ws.send(
          encodeHandshake({
            t: 'welcome',
            mac: handshakeMac(Buffer.from(secret), 'acceptor', auth.name, name, nonce, auth.nonce),
          }),
        );
        open = true;
        acceptor.socket = ws;
      });
    });
    return acceptor;
  }

  async close(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

/** A transport named `name` on its own server (port 0), dialing `peers`. */
async function transport(
  name: PeerId,
  peers: Record<PeerId, string>,
  options: Partial<WebSocketTransportOptions> = {},
): Promise<{ t: WebSocketTransport; inbox: RaftMessage[]; url: string }> {
  const { server, url } = await listeningServer();
  const t = webSocketTransport({
    name,
    server,
    peers,
    secret: SECRET,
    pingIntervalMs: 0,
    reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
    ...options,
  });
  later(async () => {
    await t.close();
    await closeServer(server);
  });
  const inbox: RaftMessage[] = [];
  await t.start((m) => inbox.push(m));
  return { t, inbox, url };
}

describe('ping/pong', () => {
  it('the acceptor terminates a dialer that stops answering pings', async () => {
    const c = await TestCluster.create(
      ['n2'],
      { secret: SECRET, pingIntervalMs: 30 },
      {},
      { n1: 'ws://127.0.0.1:9' },
    );
    later(() => c.close());
    const silent = await RawPeer.authenticated(c.urls.n2!, 'n1', 'n2', SECRET, { autoPong: false });
    later(() => silent.close());
    expect(await silent.closed).toBe(1006);
    expect(c.node('n2').transport.metrics().pingTimeouts).toBe(1);
    expect(c.node('n2').transport.connectedPeers()).toEqual([]);
  });

  it('the dialer terminates a silent acceptor and dials again', async () => {
    const acceptor = await RawAcceptor.start('n2', SECRET, { autoPong: false });
    later(() => acceptor.close());
    const { t } = await transport('n1', { n2: acceptor.url }, { pingIntervalMs: 30 });
    await waitFor(
      () => t.metrics().pingTimeouts >= 1 && t.metrics().connectionsOpened >= 2,
      'a ping timeout and a new connection',
    );
    expect(t.metrics().reconnects).toBeGreaterThanOrEqual(1);
  });

  it('keeps a connection that answers pings open across many intervals', async () => {
    const c = await TestCluster.create(
      ['n2'],
      { secret: SECRET, pingIntervalMs: 20 },
      {},
      { n1: 'ws://127.0.0.1:9' },
    );
    later(() => c.close());
    const peer = await RawPeer.authenticated(c.urls.n2!, 'n1', 'n2', SECRET);
    later(() => peer.close());
    let pings = 0;
    peer.ws.on('ping', () => pings++);
    await waitFor(() => pings >= 6, 'six pings');
    expect(peer.closeCode).toBeNull();
    expect(c.node('n2').transport.metrics().pingTimeouts).toBe(0);
    expect(c.node('n2').transport.connectedPeers()).toEqual(['n1']);
  });
});

describe('reconnect', () => {
  it('redials with backoff until the acceptor comes up, then resets', async () => {
    // The acceptor's server is up but answers 503 until its transport starts: every dial fails.
    const n2Server = await listeningServer();
    n2Server.server.on('request', (_req, res) => res.writeHead(503).end());
    later(() => closeServer(n2Server.server));
    const { t: n1, url: n1Url } = await transport('n1', { n2: n2Server.url }, { random: seeded(1) });
    await waitFor(() => n1.metrics().dialFailures >= 3, 'three failed dials');
    expect(n1.metrics().reconnects).toBeGreaterThanOrEqual(2);
    const n2 = webSocketTransport({
      name: 'n2',
      server: n2Server.server,
      peers: { n1: n1Url },
      secret: SECRET,
    });
    later(() => n2.close());
    const got: RaftMessage[] = [];
    await n2.start((m) => got.push(m));
    await waitFor(() => n1.connectedPeers().includes('n2'), 'the connection');
    n1.send('n2', heartbeat('n1', 'n2', 1));
    await waitFor(() => got.length === 1, 'a message');
  });

  it('a dialer that restarts is let in again (its new connection replaces the old)', async () => {
    const c = await TestCluster.create(['n1', 'n2'], { secret: SECRET });
    later(() => c.close());
    await c.connected();
    await c.node('n1').transport.close();
    const again = webSocketTransport({
      name: 'n1',
      server: c.servers.get('n1')!,
      peers: c.urls,
      secret: SECRET,
    });
    later(() => again.close());
    const got: RaftMessage[] = [];
    await again.start((m) => got.push(m));
    await waitFor(() => again.connectedPeers().includes('n2'), 'the new connection');
    c.node('n2').transport.send('n1', heartbeat('n2', 'n1', 3));
    await waitFor(() => got.length === 1, 'a message to the restarted dialer');
  });
});

describe('backpressure', () => {
  it('drops messages to a peer that does not read, counts them, and recovers when it drains', async () => {
    const acceptor = await RawAcceptor.start('n2', SECRET);
    later(() => acceptor.close());
    const { t } = await transport('n1', { n2: acceptor.url }, { highWaterMark: 256 * 1024 });
    await waitFor(() => t.connectedPeers().includes('n2') && acceptor.socket !== null, 'the connection');
    acceptor.socket!.pause();
    const data = Buffer.alloc(64 * 1024, 1);
    const big = (seq: number): AppendEntriesMessage => ({
      ...heartbeat('n1', 'n2', seq),
      entries: [{ index: 1, term: 1, type: 'command', data }],
    });
    let seq = 0;
    while (t.metrics().dropped.backpressure === 0 && seq < 5000) t.send('n2', big(seq++));
    expect(t.metrics().dropped.backpressure).toBe(1);
    const sent = t.metrics().messagesSent;
    expect(sent).toBeGreaterThan(0);
    expect(sent).toBeLessThan(seq);
    acceptor.socket!.resume();
    await waitFor(() => acceptor.received.length === sent, 'everything written to arrive');
    t.send('n2', heartbeat('n1', 'n2', 999_999));
    await waitFor(
      () => acceptor.received.some((m) => m.type === 'AppendEntries' && m.seq === 999_999),
      'a message after the drain',
    );
  });
});

describe('metrics and events', () => {
  it('count connections, messages and bytes on both sides, and report events', async () => {
    const events: Record<PeerId, WebSocketTransportEvent[]> = { n1: [], n2: [] };
    const c = await TestCluster.create(
      ['n1', 'n2'],
      { secret: SECRET },
      { n1: { onEvent: (e) => events.n1!.push(e) }, n2: { onEvent: (e) => events.n2!.push(e) } },
    );
    later(() => c.close());
    await c.connected();
    for (let i = 0; i < 10; i++) await c.exchange('n1', 'n2', i);
    const m1 = c.node('n1').transport.metrics();
    const m2 = c.node('n2').transport.metrics();
    expect(m1.connections).toBe(1);
    expect(m1.connectionsOpened).toBe(1);
    expect(m1.messagesSent).toBe(10);
    expect(m2.messagesReceived).toBe(10);
    expect(m1.bytesSent).toBe(m2.bytesReceived);
    expect(m2.bytesSent).toBe(m1.bytesReceived);
    expect(m1.bytesSent).toBeGreaterThan(10 * 20);
    expect(events.n1).toContainEqual({ type: 'connected', peer: 'n2', direction: 'outbound' });
    expect(events.n2).toContainEqual({ type: 'connected', peer: 'n1', direction: 'inbound' });
    await c.node('n2').transport.close();
    await waitFor(
      () => events.n1!.some((e) => e.type === 'disconnected' && e.peer === 'n2'),
      'a disconnected event',
    );
    expect(c.node('n1').transport.metrics().connections).toBe(0);
  });

  it('count every outgoing drop by cause, and send never throws', async () => {
    const c = await TestCluster.create(['n1', 'n2', 'n3'], { secret: SECRET, maxPayload: 4096 });
    later(() => c.close());
    await c.connected();
    const n1 = c.node('n1').transport;
    await c.node('n3').transport.close();
    await waitFor(() => !n1.connectedPeers().includes('n3'), 'n3 to be gone');
    n1.send('n3', heartbeat('n1', 'n3', 1)); // configured, but down
    n1.send('zed', heartbeat('n1', 'zed', 1)); // not configured
    n1.send('n2', heartbeat('n1', 'n3', 1)); // to !== addressee
    n1.send('n2', heartbeat('n2', 'n2', 1)); // from !== self
    n1.send('n2', null as unknown as RaftMessage);
    n1.send('n2', {
      ...heartbeat('n1', 'n2', 1),
      entries: [{ index: 1, term: 1, type: 'command', data: Buffer.alloc(8192) }],
    }); // > maxPayload
    n1.send('n2', { ...heartbeat('n1', 'n2', 1), seq: Symbol('x') } as unknown as RaftMessage);
    const dropped = n1.metrics().dropped;
    expect(dropped).toMatchObject({
      notConnected: 1,
      unknownPeer: 1,
      misaddressed: 3,
      tooLarge: 1,
      unencodable: 1,
    });
    await n1.close();
    n1.send('n2', heartbeat('n1', 'n2', 1));
    expect(n1.metrics().dropped.closed).toBe(1);
    expect(n1.metrics().messagesSent).toBe(0);
  });

  it('catch an error thrown by onMessage, count it, and keep delivering', async () => {
    const n2Server = await listeningServer();
    later(() => closeServer(n2Server.server));
    const events: WebSocketTransportEvent[] = [];
    const n2 = webSocketTransport({
      name: 'n2',
      server: n2Server.server,
      peers: { n1: 'ws://127.0.0.1:9' },
      secret: SECRET,
      onEvent: (e) => events.push(e),
    });
    later(() => n2.close());
    const got: number[] = [];
    await n2.start((m) => {
      const seq = (m as AppendEntriesMessage).seq;
      if (seq === 1) throw new Error('bug in the runtime');
      got.push(seq);
    });
    const peer = await RawPeer.authenticated(n2Server.url, 'n1', 'n2', SECRET);
    later(() => peer.close());
    peer.send(codec.encode(heartbeat('n1', 'n2', 1)));
    peer.send(codec.encode(heartbeat('n1', 'n2', 2)));
    await waitFor(() => got.includes(2), 'the second message');
    expect(n2.metrics().handlerErrors).toBe(1);
    expect(events.some((e) => e.type === 'handlerError')).toBe(true);
  });

  it('survive an onEvent callback that throws', async () => {
    const c = await TestCluster.create(['n1', 'n2'], {
      onEvent: () => {
        throw new Error('logger down');
      },
    });
    later(() => c.close());
    await c.connected();
    await c.exchange('n1', 'n2', 1);
  });
});
