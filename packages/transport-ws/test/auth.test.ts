import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { webSocketTransport } from '../src/index.js';
import type { WebSocketTransport, WebSocketTransportEvent } from '../src/index.js';
import {
  CloseCode,
  MessageCodec,
  PROTOCOL_VERSION,
  TRY_AGAIN_LATER,
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

// ---- before authentication: what a stranger can do with the handshake slots, the names,
// and a connected peer's name. None of it may keep a real peer out.

async function stranger(url: string, localAddress?: string): Promise<RawPeer> {
  const peer = await RawPeer.connect(url, localAddress === undefined ? {} : { localAddress });
  cleanup.push(() => peer.close());
  return peer;
}

async function dialer(url: string, secret: string | null = SECRET): Promise<WebSocketTransport> {
  const t = webSocketTransport({
    name: 'n1',
    listen: { port: 0 },
    peers: { n2: url },
    ...(secret === null ? {} : { secret }),
    pingIntervalMs: 0,
    reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
  });
  cleanup.push(() => t.close());
  await t.start(() => {});
  return t;
}

describe('pre-auth limits', () => {
  it('64 idle strangers holding every handshake slot cannot lock out a restarted peer', async () => {
    // n2 waits for n1 (n1 dials), and lets a handshake idle for a minute.
    const c = await cluster(
      ['n2'],
      { secret: SECRET, handshakeTimeoutMs: 60_000 },
      {},
      { n1: 'ws://127.0.0.1:9' },
    );
    const n2 = c.node('n2').transport;
    // 64 strangers from eight loopback addresses (none a configured peer's), eight each.
    for (let i = 0; i < 64; i++) await stranger(c.urls.n2!, `127.0.0.${2 + (i % 8)}`);
    await waitFor(() => n2.metrics().refused.busy === 0, 'the strangers to be admitted');
    // n1 (re)starts, from 127.0.0.1: the address of a configured peer.
    const n1 = await dialer(c.urls.n2!);
    await waitFor(
      () => n2.connectedPeers().includes('n1') && n1.connectedPeers().includes('n2'),
      'n1 to get in',
      10_000,
    );
    expect(n2.metrics().refused.busy).toBeGreaterThanOrEqual(1); // a stranger gave way
  }, 30_000);

  it('a newcomer beyond the per-address limit evicts that address’s oldest pending handshake (1013)', async () => {
    const c = await cluster(
      ['n2'],
      { secret: SECRET, maxPendingHandshakesPerAddress: 2 },
      {},
      {
        n1: 'ws://127.0.0.1:9',
      },
    );
    const a = await stranger(c.urls.n2!, '127.0.0.2');
    await stranger(c.urls.n2!, '127.0.0.2');
    const other = await stranger(c.urls.n2!, '127.0.0.3');
    await stranger(c.urls.n2!, '127.0.0.2');
    expect(await a.closed).toBe(TRY_AGAIN_LATER);
    expect(c.node('n2').transport.metrics().refused.busy).toBe(1);
    expect(other.closeCode).toBeNull();
  });

  it('when every slot is taken, a configured peer’s address takes a stranger’s slot', async () => {
    const c = await cluster(
      ['n2'],
      { secret: SECRET, maxPendingHandshakes: 2 },
      {},
      {
        n1: 'ws://127.0.0.1:9',
      },
    );
    const first = await stranger(c.urls.n2!, '127.0.0.2');
    await stranger(c.urls.n2!, '127.0.0.3');
    await expect(RawPeer.connect(c.urls.n2!, { localAddress: '127.0.0.4' })).rejects.toThrow(/503/);
    const n1 = await dialer(c.urls.n2!);
    await waitFor(() => n1.connectedPeers().includes('n2'), 'n1 to get in');
    expect(await first.closed).toBe(TRY_AGAIN_LATER);
  });
});

describe('no name enumeration', () => {
  it('an unknown name and a wrong MAC get the same close code', async () => {
    const c = await cluster(['n2'], { secret: SECRET }, {}, { n1: 'ws://127.0.0.1:9' });
    const codes: number[] = [];
    for (const name of ['n1', 'mallory']) {
      const peer = await stranger(c.urls.n2!);
      await waitFor(() => peer.frames.length > 0, 'hello');
      expect(decodeHello(peer.frames[0]!.data)).not.toBeNull();
      peer.send(
        encodeHandshake({ t: 'auth', v: PROTOCOL_VERSION, name, nonce: newNonce(), mac: Buffer.alloc(32) }),
      );
      codes.push(await peer.closed);
    }
    expect(codes).toEqual([CloseCode.AUTH_FAILED, CloseCode.AUTH_FAILED]);
    expect(c.node('n2').transport.metrics().refused).toMatchObject({ auth: 1, unknownPeer: 1 });
  });
});

describe('a stranger claiming to be a connected peer', () => {
  it('with a secret: refused, and the real peer keeps its connection', async () => {
    const c = await cluster(['n1', 'n2'], { secret: SECRET });
    await c.connected();
    await expect(RawPeer.authenticated(c.urls.n2!, 'n1', 'n2', 'not-the-secret')).rejects.toThrow(
      `refused (${CloseCode.AUTH_FAILED})`,
    );
    await c.exchange('n1', 'n2', 1);
    expect(c.node('n2').transport.metrics().connectionsOpened).toBe(1);
  });

  it('without a secret: refused while the real peer answers pings; the live connection stays', async () => {
    const c = await cluster(['n1', 'n2'], {});
    await c.connected();
    await expect(RawPeer.authenticated(c.urls.n2!, 'n1', 'n2', null)).rejects.toThrow(
      `refused (${CloseCode.AUTH_FAILED})`,
    );
    expect(c.node('n2').transport.metrics().refused.duplicate).toBe(1);
    expect(c.node('n2').transport.metrics().connectionsOpened).toBe(1);
    await c.exchange('n1', 'n2', 2);
  });

  it('without a secret: a peer whose old connection is dead (no pong) takes over', async () => {
    // n1 does not dial (no peers): raw connections authenticate as n1 toward n2.
    const c = await cluster(['n1', 'n2'], {}, { n1: { peers: {} } }, {});
    const old = await RawPeer.authenticated(c.urls.n2!, 'n1', 'n2', null);
    cleanup.push(() => old.close());
    old.ws.pause(); // reads nothing, so answers no ping: as good as dead
    const fresh = await RawPeer.authenticated(c.urls.n2!, 'n1', 'n2', null);
    cleanup.push(() => fresh.close());
    expect(fresh.closeCode).toBeNull();
    expect(c.node('n2').transport.metrics().connectionsOpened).toBe(2);
  });
});
