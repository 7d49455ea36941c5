import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { testCertificates } from '@raft/testkit/tls';
import { WebSocket } from 'ws';
import type { PeerId, RaftMessage } from '@raft/core';
import { webSocketTransport } from '../src/index.js';
import type { TlsOptions, WebSocketTransport, WebSocketTransportOptions } from '../src/index.js';
import { heartbeat, waitFor } from './helpers.js';

// TEST-ONLY certificates: a throwaway CA and one certificate per peer name, made now with
// openssl; the rogue CA's from test/fixtures/README.md.
const fixture = (name: string): Buffer => readFileSync(new URL(`./fixtures/${name}`, import.meta.url));
const pki = testCertificates(['n0', 'n1', 'n2']);
afterAll(() => pki.remove());
const ca = pki.ca;
const as = (name: string): TlsOptions => ({ cert: pki.certs[name]!.cert, key: pki.certs[name]!.key, ca });
const good = as('n2');
const rogue: TlsOptions = { cert: fixture('rogue.crt'), key: fixture('rogue.key'), ca };
const SECRET = 'tls-tests-secret-0123456789abcdef';

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const release of cleanup.reverse()) await release();
  cleanup = [];
});

/** The acceptor n2 on its own wss server (port 0), then returns its URL. */
async function acceptor(
  tls: TlsOptions,
  extra: Partial<WebSocketTransportOptions> = {},
): Promise<{ t: WebSocketTransport; url: string; inbox: RaftMessage[] }> {
  const t = webSocketTransport({
    name: 'n2',
    listen: { port: 0 },
    tls,
    peers: { n0: 'wss://127.0.0.1:9', n1: 'wss://127.0.0.1:9' },
    secret: SECRET,
    ...extra,
  });
  cleanup.push(() => t.close());
  const inbox: RaftMessage[] = [];
  await t.start((m) => inbox.push(m));
  return { t, url: `wss://127.0.0.1:${t.address()!.port}`, inbox };
}

async function dialer(name: PeerId, url: string, tls: TlsOptions): Promise<WebSocketTransport> {
  const t = webSocketTransport({
    name,
    listen: { port: 0 },
    tls,
    peers: { n2: url },
    secret: SECRET,
    reconnect: { initialDelayMs: 20, maxDelayMs: 100 },
  });
  cleanup.push(() => t.close());
  await t.start(() => {});
  return t;
}

describe('TLS (wss://)', () => {
  it('carries messages over TLS with a certificate, key and CA', async () => {
    const n2 = await acceptor(good);
    const n1 = await dialer('n1', n2.url, as('n1'));
    await waitFor(() => n1.connectedPeers().includes('n2'), 'the TLS connection');
    n1.send('n2', heartbeat('n1', 'n2', 1));
    await waitFor(() => n2.inbox.length === 1, 'a message over TLS');
  });

  it('refuses to dial a server whose certificate its CA did not sign', async () => {
    const n2 = await acceptor(good);
    const n1 = await dialer('n1', n2.url, { ...good, ca: fixture('rogue-ca.crt') });
    await waitFor(() => n1.metrics().dialFailures >= 2, 'failed dials');
    expect(n1.connectedPeers()).toEqual([]);
    expect(n2.t.metrics().connectionsOpened).toBe(0);
  });

  it('attaches to an existing https server', async () => {
    const server = createServer({ cert: good.cert, key: good.key });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const n2 = webSocketTransport({ name: 'n2', server, peers: { n1: 'wss://127.0.0.1:9' }, secret: SECRET });
    cleanup.push(() => n2.close());
    await n2.start(() => {});
    const n1 = await dialer('n1', `wss://127.0.0.1:${(server.address() as AddressInfo).port}`, as('n1'));
    await waitFor(() => n1.connectedPeers().includes('n2'), 'the connection');
  });
});

describe('mutual TLS (requestCert)', () => {
  it('lets in a dialer with a certificate signed by the CA', async () => {
    const n2 = await acceptor({ ...good, requestCert: true });
    const n1 = await dialer('n1', n2.url, as('n1'));
    await waitFor(() => n1.connectedPeers().includes('n2'), 'the connection');
    n1.send('n2', heartbeat('n1', 'n2', 1));
    await waitFor(() => n2.inbox.length === 1, 'a message');
  });

  it('refuses a client without a certificate, or with one from another CA, and counts it', async () => {
    const n2 = await acceptor({ ...good, requestCert: true });
    // No client certificate at all.
    const error = await new Promise<Error>((resolve) => {
      const ws = new WebSocket(n2.url, { ca });
      ws.on('error', resolve);
      ws.on('open', () => resolve(new Error('unexpectedly open')));
    });
    expect(error.message).not.toBe('unexpectedly open');
    // A dialer whose certificate the acceptor's CA did not sign.
    const n1 = await dialer('n1', n2.url, rogue);
    await waitFor(() => n2.t.metrics().refused.tls >= 2 && n1.metrics().dialFailures >= 1, 'refusals');
    expect(n2.t.connectedPeers()).toEqual([]);
    // The acceptor still serves good peers.
    const n0 = await dialer('n0', n2.url, as('n0'));
    await waitFor(() => n0.connectedPeers().includes('n2'), 'a good peer');
  });
});

describe('certificates bound to peer names (verifyPeerName)', () => {
  it('refuses a dialer whose valid certificate names another peer (4001, refused.identity)', async () => {
    const n2 = await acceptor({ ...good, requestCert: true });
    // n0's certificate, signed by the trusted CA, but presented by a dialer claiming to be n1.
    const n1 = await dialer('n1', n2.url, as('n0'));
    await waitFor(() => n2.t.metrics().refused.identity >= 1, 'the refusal');
    await waitFor(() => n1.metrics().refused.auth >= 1, 'the dialer to see 4001');
    expect(n2.t.connectedPeers()).toEqual([]);
  });

  it('refuses an acceptor whose valid certificate names another peer', async () => {
    const n2 = await acceptor({ ...as('n0'), requestCert: true });
    const n1 = await dialer('n1', n2.url, as('n1'));
    await waitFor(() => n1.metrics().refused.identity >= 1, 'the dialer to refuse');
    expect(n1.connectedPeers()).toEqual([]);
  });

  it('verifyPeerName: false lets one shared certificate serve every peer', async () => {
    const shared = { ...as('n0'), verifyPeerName: false };
    const n2 = await acceptor({ ...shared, requestCert: true });
    const n1 = await dialer('n1', n2.url, shared);
    await waitFor(() => n1.connectedPeers().includes('n2'), 'the connection');
  });
});
