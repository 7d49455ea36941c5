import { afterEach, describe, expect, it } from 'vitest';
import { webSocketTransport } from '../src/index.js';
import type { WebSocketTransport } from '../src/index.js';
import {
  CloseCode,
  TRY_AGAIN_LATER,
  decodeHello,
  encodeHandshake,
  newNonce,
  PROTOCOL_VERSION,
} from '../src/protocol.js';
import { RawPeer, TestCluster, waitFor } from './helpers.js';

/**
 * What a stranger can do before it authenticates: hold handshake slots, probe names, or
 * claim to be a peer. None of it may keep a real peer out.
 */
const SECRET = 'preauth-tests-secret-0123456789abcdef';

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
