import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FORWARD_CLOCK_SKEW_MS, Forwarder, forwardKey, ForwardVerifier, signForward } from './forward.js';
import type { HttpReply, KvOp } from './ops.js';
import { peerApi } from './peer-api.js';

const PUT: KvOp = { kind: 'put', key: 'k', value: 1 };
const GET: KvOp = { kind: 'get', key: 'k' };
const logger = { warn: vi.fn(), error: vi.fn() };

const servers: Server[] = [];
const forwarders: Forwarder[] = [];

afterEach(async () => {
  for (const f of forwarders.splice(0)) f.close();
  await Promise.all(
    servers.splice(0).map(
      (s) =>
        new Promise((r) => {
          s.close(r);
          s.closeAllConnections();
        }),
    ),
  );
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const s = createServer(handler);
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `ws://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

function forwarder(leaderUrl: string, secret: string | null = 'k'): Forwarder {
  const f = new Forwarder('n1', new Map([['n2', leaderUrl]]), secret, logger);
  forwarders.push(f);
  return f;
}

/** A leader's peer port: the real forward route, running ops with `execute`. */
function leader(
  secret: string | null,
  execute: (op: KvOp, deadline: number, hops: number) => Promise<HttpReply>,
): Promise<string> {
  return serve(
    peerApi({
      execute,
      verifier: new ForwardVerifier(secret === null ? null : forwardKey(secret), new Set(['n1', 'n2']), 'n2'),
      closing: () => false,
      requestTimeoutMs: 5000,
      onInternalError: () => undefined,
      onRefused: () => undefined,
    }),
  );
}

describe('ForwardVerifier', () => {
  const key = forwardKey('s3cret');
  const body = Buffer.from('{"op":1}');

  const started = Date.now() - 10_000;

  it('accepts a signed, fresh request once', () => {
    const v = new ForwardVerifier(key, new Set(['n1']), 'n2', started);
    const headers = signForward(key, 'n1', 'n2', body);
    expect(v.verify(headers, body)).toBeUndefined();
    expect(v.verify(headers, body)).toBe('replayed');
  });

  it('refuses unsigned, tampered, stale, foreign and wrongly keyed requests', () => {
    const v = new ForwardVerifier(key, new Set(['n1']), 'n2', started);
    expect(v.verify(signForward(null, 'n1', 'n2', body), body)).toBe('unsigned');
    expect(v.verify(signForward(key, 'n1', 'n2', body), Buffer.from('{"op":2}'))).toBe('bad signature');
    expect(v.verify(signForward(forwardKey('other'), 'n1', 'n2', body), body)).toBe('bad signature');
    expect(
      v.verify(signForward(key, 'n1', 'n2', body, Date.now() - FORWARD_CLOCK_SKEW_MS - 1000), body),
    ).toBe('stale or future timestamp');
    expect(v.verify(signForward(key, 'n9', 'n2', body), body)).toBe('unknown sender');
  });

  it('refuses a request signed for another node: captured on its way to one leader, it must not run on the next', () => {
    const headers = signForward(key, 'n1', 'n2', body);
    expect(new ForwardVerifier(key, new Set(['n1']), 'n2', started).verify(headers, body)).toBeUndefined();
    expect(new ForwardVerifier(key, new Set(['n1']), 'n3', started).verify(headers, body)).toBe(
      'bad signature',
    );
  });

  it('refuses a request signed before it started: its memory of nonces does not survive a restart', () => {
    const headers = signForward(key, 'n1', 'n2', body, Date.now() - 1000);
    expect(new ForwardVerifier(key, new Set(['n1']), 'n2', started).verify(headers, body)).toBeUndefined();
    // The same node, restarted since: a replay of the request it ran before.
    expect(new ForwardVerifier(key, new Set(['n1']), 'n2', Date.now()).verify(headers, body)).toBe(
      'signed before this node started',
    );
  });

  it('refuses everything without a secret: an unsigned request could come from anyone', () => {
    const v = new ForwardVerifier(null, new Set(['n1']), 'n2');
    expect(v.verify(signForward(null, 'n1', 'n2', body), body)).toContain('forwarding is disabled');
    expect(v.precheck(signForward(null, 'n1', 'n2', body))).toContain('forwarding is disabled');
  });
});

describe('the forward route', () => {
  it('without a secret, an unsigned put is refused (401) and never runs', async () => {
    const execute = vi.fn(() => Promise.resolve<HttpReply>({ status: 200, body: {} }));
    const url = (await leader(null, execute)).replace(/^ws/, 'http');
    const payload = JSON.stringify({
      op: { kind: 'put', key: 'x', value: 'pwned' },
      hops: 1,
      timeoutMs: 1000,
    });
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${url}/_raft/forward`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end(payload);
    });
    expect(status).toBe(401);
    expect(execute).not.toHaveBeenCalled();
  });

  it('checks the signature headers before reading the body', async () => {
    const execute = vi.fn(() => Promise.resolve<HttpReply>({ status: 200, body: {} }));
    const verifier = new ForwardVerifier(forwardKey('k'), new Set(['n1']), 'n2');
    const url = (
      await serve(
        peerApi({
          execute,
          verifier,
          closing: () => false,
          requestTimeoutMs: 600_000,
          onInternalError: () => undefined,
          onRefused: () => undefined,
        }),
      )
    ).replace(/^ws/, 'http');
    // Announces 4 MiB and sends 1 byte: answered at once, not after reading (or waiting for) the rest.
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${url}/_raft/forward`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': 4 * 1024 * 1024 },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      req.on('error', () => undefined);
      req.write('{', (err) => {
        if (err) reject(err);
      });
    });
    expect(status).toBe(401);
    expect(execute).not.toHaveBeenCalled();
  });
});

describe('Forwarder', () => {
  it('forwards nothing without a secret: 503 not_leader naming the leader', async () => {
    const execute = vi.fn(() => Promise.resolve<HttpReply>({ status: 200, body: {} }));
    const f = forwarder(await leader(null, execute), null);
    expect(await f.forward('n2', PUT, 1, performance.now() + 2000)).toMatchObject({
      status: 503,
      body: { error: 'not_leader', leader: 'n2' },
    });
    expect(execute).not.toHaveBeenCalled();
  });

  it('answers 400 for an operation too deeply nested to encode, and sends nothing', async () => {
    let deep: unknown = 1;
    for (let i = 0; i < 20_000; i++) deep = [deep];
    const execute = vi.fn(() => Promise.resolve<HttpReply>({ status: 200, body: {} }));
    const f = forwarder(await leader('k', execute), 'k');
    const op = { kind: 'put', key: 'k', value: deep } as KvOp;
    expect(await f.forward('n2', op, 1, performance.now() + 2000)).toMatchObject({ status: 400 });
    expect(execute).not.toHaveBeenCalled();
  });

  it('relays the leader answer, and the leader runs the op with one more hop', async () => {
    const execute = vi.fn((_op: KvOp, _deadline: number, _hops: number) =>
      Promise.resolve<HttpReply>({ status: 409, body: { error: 'cas_mismatch', value: 3 } }),
    );
    const f = forwarder(await leader('k', execute), 'k');
    expect(await f.forward('n2', PUT, 1, performance.now() + 2000)).toEqual({
      status: 409,
      body: { error: 'cas_mismatch', value: 3 },
    });
    expect(execute).toHaveBeenCalledWith(PUT, expect.any(Number), 1);
    // The leader gives up a little before the follower does, so its answer arrives.
    const deadline = execute.mock.calls[0]![1];
    expect(deadline).toBeLessThan(performance.now() + 2000);
  });

  it('answers 503 when the leader refuses our signature (a different secret)', async () => {
    const execute = vi.fn(() => Promise.resolve<HttpReply>({ status: 200, body: {} }));
    const f = forwarder(await leader('one', execute), 'two');
    expect(await f.forward('n2', PUT, 1, performance.now() + 2000)).toMatchObject({
      status: 503,
      body: { error: 'leader_unreachable', leader: 'n2' },
    });
    expect(execute).not.toHaveBeenCalled();
  });

  it('signs afresh and tries once more when the leader refuses a request signed before it started', async () => {
    // The leader's process starts 100 ms from now, and takes 150 ms to read each request:
    // the first try, signed now, predates it (401); the second, signed after the refusal, does not.
    const verifier = new ForwardVerifier(forwardKey('k'), new Set(['n1']), 'n2', Date.now() + 100);
    const execute = vi.fn(() => Promise.resolve<HttpReply>({ status: 200, body: { value: 1 } }));
    const api = peerApi({
      execute,
      verifier,
      closing: () => false,
      requestTimeoutMs: 5000,
      onInternalError: () => undefined,
      onRefused: () => undefined,
    });
    let tries = 0;
    const url = await serve((req, res) => {
      tries++;
      setTimeout(() => api(req, res), 150);
    });
    expect(await forwarder(url, 'k').forward('n2', PUT, 1, performance.now() + 2000)).toEqual({
      status: 200,
      body: { value: 1 },
    });
    expect(tries).toBe(2);
    expect(execute).toHaveBeenCalledTimes(1);
  });

  it('answers 503 when nothing reached the leader (connection refused)', async () => {
    const url = await serve(() => undefined);
    await new Promise((r) => servers.pop()!.close(r));
    expect(await forwarder(url).forward('n2', PUT, 1, performance.now() + 2000)).toMatchObject({
      status: 503,
      body: { error: 'leader_unreachable' },
    });
  });

  it('answers 504 for a write the leader got but never answered', async () => {
    const url = await serve((req) => req.resume());
    expect(await forwarder(url).forward('n2', PUT, 1, performance.now() + 300)).toEqual({
      status: 504,
      body: { error: 'timeout' },
    });
    expect(await forwarder(url).forward('n2', GET, 1, performance.now() + 300)).toEqual({
      status: 504,
      body: { error: 'timeout' },
    });
  });

  it('answers 504 for a write whose connection died after it was sent, 503 for a read', async () => {
    const url = await serve((req) => {
      req.resume();
      req.on('end', () => req.socket.destroy());
    });
    expect(await forwarder(url).forward('n2', PUT, 1, performance.now() + 2000)).toEqual({
      status: 504,
      body: { error: 'timeout' },
    });
    expect(await forwarder(url).forward('n2', GET, 1, performance.now() + 2000)).toMatchObject({
      status: 503,
    });
  });

  it('answers 503 for an unknown leader', async () => {
    expect(await forwarder('ws://127.0.0.1:1').forward('n7', PUT, 1, performance.now() + 2000)).toMatchObject(
      { status: 503 },
    );
  });
});
