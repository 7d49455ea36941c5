import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { webSocketTransport } from '../src/index.js';
import type { WebSocketTransportEvent } from '../src/index.js';
import {
  CloseCode,
  MessageCodec,
  PROTOCOL_VERSION,
  decodeHello,
  encodeHandshake,
  handshakeMac,
  newNonce,
} from '../src/protocol.js';
import { RawPeer, TestCluster, heartbeat, listeningServer, closeServer, waitFor } from './helpers.js';

const SECRET = 'a-long-random-cluster-secret-0123456789';

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const release of cleanup.reverse()) await release();
  cleanup = [];
});

async function cluster(...args: Parameters<typeof TestCluster.create>): Promise<TestCluster> {
  const c = await TestCluster.create(...args);
  cleanup.push(() => c.close());
  return c;
}

async function raw(promise: Promise<RawPeer>): Promise<RawPeer> {
  const peer = await promise;
  cleanup.push(() => peer.close());
  return peer;
}

describe('authentication with the cluster secret', () => {
  it('lets peers that share the secret in, in both directions', async () => {
    const c = await cluster(['n1', 'n2', 'n3'], { secret: SECRET });
    await c.connected();
    await c.exchange('n1', 'n2', 1);
    await c.exchange('n1', 'n3', 2);
    await c.exchange('n2', 'n3', 3);
    expect(c.node('n2').transport.metrics().refused.auth).toBe(0);
  });

  it('refuses a dialer with another secret, and counts it on both sides', async () => {
    const c = await cluster(['n1', 'n2'], { secret: SECRET }, { n1: { secret: 'not-the-secret' } });
    await waitFor(
      () =>
        c.node('n2').transport.metrics().refused.auth >= 1 &&
        c.node('n1').transport.metrics().refused.auth >= 1,
      'refusals',
    );
    expect(c.node('n2').transport.connectedPeers()).toEqual([]);
    expect(c.node('n1').transport.connectedPeers()).toEqual([]);
  });

  it('refuses a dialer without a secret', async () => {
    const c = await cluster(['n1', 'n2'], { secret: SECRET }, { n1: { secret: undefined } });
    await waitFor(() => c.node('n2').transport.metrics().refused.auth >= 1, 'a refusal');
    expect(c.node('n2').transport.connectedPeers()).toEqual([]);
  });

  it('refuses an acceptor that cannot prove it knows the secret (the dialer checks too)', async () => {
    const c = await cluster(['n1', 'n2'], { secret: SECRET }, { n2: { secret: undefined } });
    await waitFor(() => c.node('n1').transport.metrics().refused.auth >= 1, 'the dialer to refuse');
    expect(c.node('n1').transport.connectedPeers()).toEqual([]);
  });

  it('refuses a name not in the configuration with the close code of a wrong MAC (4001), even with the right secret', async () => {
    const events: WebSocketTransportEvent[] = [];
    const c = await cluster(['n1', 'n2'], { secret: SECRET, onEvent: (e) => events.push(e) });
    const mallory = await raw(RawPeer.connect(c.urls.n2!));
    await waitFor(() => mallory.frames.length > 0, 'hello');
    const hello = decodeHello(mallory.frames[0]!.data)!;
    const nonce = newNonce();
    mallory.send(
      encodeHandshake({
        t: 'auth',
        v: PROTOCOL_VERSION,
        name: 'mallory',
        nonce,
        mac: handshakeMac(Buffer.from(SECRET), 'dialer', 'mallory', 'n2', hello.nonce, nonce),
      }),
    );
    expect(await mallory.closed).toBe(CloseCode.AUTH_FAILED);
    expect(c.node('n2').transport.metrics().refused.unknownPeer).toBe(1);
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'refused', reason: 'unknownPeer', peer: 'mallory' }),
    );
    await c.exchange('n1', 'n2', 1);
  });

  it('refuses a configured peer that must not dial this one (the greater name accepts)', async () => {
    const c = await cluster(['n1', 'n2'], { secret: SECRET });
    await expect(RawPeer.authenticated(c.urls.n1!, 'n2', 'n1', SECRET)).rejects.toThrow(
      `refused (${CloseCode.AUTH_FAILED})`,
    );
    expect(c.node('n1').transport.metrics().refused.unknownPeer).toBe(1);
  });

  it('refuses a replayed answer: the acceptor’s nonce is fresh on every connection', async () => {
    const c = await cluster(['n1', 'n2'], { secret: SECRET });
    const first = await raw(RawPeer.connect(c.urls.n2!));
    await waitFor(() => first.frames.length > 0, 'hello');
    const hello = decodeHello(first.frames[0]!.data)!;
    const nonce = newNonce();
    const auth = encodeHandshake({
      t: 'auth',
      v: PROTOCOL_VERSION,
      name: 'n1',
      nonce,
      mac: handshakeMac(Buffer.from(SECRET), 'dialer', 'n1', 'n2', hello.nonce, nonce),
    });
    const second = await raw(RawPeer.connect(c.urls.n2!));
    second.send(auth);
    expect(await second.closed).toBe(CloseCode.AUTH_FAILED);
  });

  it('refuses another protocol version (close code 4002)', async () => {
    const c = await cluster(['n1', 'n2']);
    const peer = await raw(RawPeer.connect(c.urls.n2!));
    peer.send(
      encodeHandshake({ t: 'auth', v: PROTOCOL_VERSION + 1, name: 'n1', nonce: newNonce(), mac: null }),
    );
    expect(await peer.closed).toBe(CloseCode.VERSION_MISMATCH);
    expect(c.node('n2').transport.metrics().refused.version).toBe(1);
  });

  it('refuses an acceptor that is not the peer its URL names', async () => {
    const c = await cluster(['n2']);
    // m1 believes n3 lives at n2's address; n2's hello says otherwise.
    const server = await listeningServer();
    cleanup.push(() => closeServer(server.server));
    const m1 = webSocketTransport({
      name: 'm1',
      server: server.server,
      peers: { n3: c.urls.n2! },
      reconnect: { initialDelayMs: 20 },
    });
    cleanup.push(() => m1.close());
    await m1.start(() => {});
    await waitFor(() => m1.metrics().refused.unknownPeer >= 1, 'the dialer to notice');
    expect(m1.connectedPeers()).toEqual([]);
  });

  it('keeps one connection per pair: a newer connection from the same peer replaces the older (4006)', async () => {
    const c = await cluster(['n1', 'n2'], { secret: SECRET }, { n1: { peers: {} } }, {});
    // n1 does not dial (no peers); two raw connections authenticate as n1 toward n2.
    const first = await raw(RawPeer.authenticated(c.urls.n2!, 'n1', 'n2', SECRET));
    const second = await raw(RawPeer.authenticated(c.urls.n2!, 'n1', 'n2', SECRET));
    expect(await first.closed).toBe(CloseCode.REPLACED);
    expect(c.node('n2').transport.connectedPeers()).toEqual(['n1']);
    second.send(new MessageCodec().encode(heartbeat('n1', 'n2', 5)));
    await waitFor(
      () => c.node('n2').inbox.some((m) => m.type === 'AppendEntries' && m.seq === 5),
      'delivery on the newer connection',
    );
  });

  it('never puts the secret on the wire', async () => {
    // A TCP proxy between n1 and n2 records every byte both ways.
    const recorded: Buffer[] = [];
    const target = await listeningServer();
    cleanup.push(() => closeServer(target.server));
    const proxy = createServer((client: Socket) => {
      const upstream = connect((target.server.address() as AddressInfo).port, '127.0.0.1');
      client.on('data', (d: Buffer) => recorded.push(Buffer.from(d)));
      upstream.on('data', (d: Buffer) => recorded.push(Buffer.from(d)));
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => proxy.close(() => resolve())));
    const proxyUrl = `ws://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const n1Server = await listeningServer();
    cleanup.push(() => closeServer(n1Server.server));
    const peers = { n1: n1Server.url, n2: proxyUrl };
    const n2 = webSocketTransport({ name: 'n2', server: target.server, peers, secret: SECRET });
    const n1 = webSocketTransport({ name: 'n1', server: n1Server.server, peers, secret: SECRET });
    cleanup.push(
      () => n2.close(),
      () => n1.close(),
    );
    const got: number[] = [];
    await n2.start((m) => m.type === 'AppendEntries' && got.push(m.seq));
    await n1.start(() => {});
    await waitFor(() => n1.connectedPeers().includes('n2'), 'the connection through the proxy');
    n1.send('n2', heartbeat('n1', 'n2', 1));
    await waitFor(() => got.includes(1), 'a message through the proxy');
    const wire = Buffer.concat(recorded);
    expect(wire.length).toBeGreaterThan(100);
    expect(wire.includes(Buffer.from(SECRET))).toBe(false);
    expect(wire.includes(Buffer.from(SECRET.slice(0, 12)))).toBe(false);
  });
});
