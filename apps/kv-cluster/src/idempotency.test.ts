import type { Peer } from '@raft/core';
import { describe, expect, it, vi } from 'vitest';
import { idempotencyOf } from './client-api.js';
import type { Forwarder } from './forward.js';
import { parseIdempotencyKey, parseOp, type KvOp } from './ops.js';
import { KvService, type AppPeer } from './service.js';

const req = (method: string, url: string, key?: string) => ({
  method,
  url,
  headers: key === undefined ? {} : { 'idempotency-key': key },
});

describe('Idempotency-Key', () => {
  it('takes an sf-string or a bare key of visible ASCII, up to 255 characters', () => {
    expect(parseIdempotencyKey('"8e03978e-40d5"')).toBe('8e03978e-40d5');
    expect(parseIdempotencyKey('abc')).toBe('abc');
    for (const bad of ['', '""', 'a b', 'x'.repeat(256), 'é', '"a"b"'])
      expect(parseIdempotencyKey(bad), bad).toHaveProperty('problem');
  });

  it('fingerprints the method, the path (not the query) and the body', () => {
    const body = Buffer.from('{"value":1}');
    const fp = (method: string, url: string, b = body) =>
      (idempotencyOf(req(method, url, 'k'), b) as { fingerprint: string }).fingerprint;
    expect(idempotencyOf(req('PUT', '/kv/a'), body)).toBeUndefined();
    expect(fp('PUT', '/kv/a')).toBe(fp('PUT', '/kv/a?x=1'));
    expect(fp('PUT', '/kv/a')).not.toBe(fp('PUT', '/kv/b'));
    expect(fp('PUT', '/kv/a')).not.toBe(fp('DELETE', '/kv/a'));
    expect(fp('PUT', '/kv/a')).not.toBe(fp('PUT', '/kv/a', Buffer.from('{"value":2}')));
    expect(idempotencyOf(req('PUT', '/kv/a', 'a b'), body)).toHaveProperty('problem');
  });

  it('travels with a forwarded write, and a bad one is refused', () => {
    const idempotency = { key: 'k', fingerprint: 'f' };
    expect(parseOp({ kind: 'put', key: 'a', value: 1, idempotency })).toEqual({
      kind: 'put',
      key: 'a',
      value: 1,
      idempotency,
    });
    expect(parseOp({ kind: 'delete', key: 'a', idempotency })).toEqual({
      kind: 'delete',
      key: 'a',
      idempotency,
    });
    expect(
      typeof parseOp({ kind: 'put', key: 'a', value: 1, idempotency: { key: '', fingerprint: 'f' } }),
    ).toBe('string');
    expect(typeof parseOp({ kind: 'put', key: 'a', value: 1, idempotency: 'k' })).toBe('string');
  });

  it('maps replayed answers to a header and a reused key to 422', async () => {
    const outcomes: unknown[] = [
      { raftSession: 'applied', reply: { ok: true, value: 1 } },
      { raftSession: 'replayed', reply: { ok: true, value: 1 } },
      { raftSession: 'mismatch' },
    ];
    const write = vi.fn(() => Promise.resolve(outcomes.shift()));
    const peer = { name: 'n1', write, status: vi.fn() } as unknown as AppPeer & Peer<never, never, unknown>;
    const svc = new KvService(peer, { forward: vi.fn() } as unknown as Forwarder, { error: vi.fn() });
    const op: KvOp = { kind: 'put', key: 'a', value: 1, idempotency: { key: 'k', fingerprint: 'f' } };
    const deadline = performance.now() + 1000;
    expect(await svc.execute(op, deadline, 0)).toEqual({ status: 200, body: { value: 1 } });
    expect(await svc.execute(op, deadline, 0)).toEqual({
      status: 200,
      body: { value: 1 },
      headers: { 'idempotent-replayed': 'true' },
    });
    expect(await svc.execute(op, deadline, 0)).toMatchObject({ status: 422 });
    expect(write).toHaveBeenCalledWith(
      { raftSession: 'key', key: 'k', fingerprint: 'f', command: { op: 'set', key: 'a', value: 1 } },
      expect.anything(),
    );
  });
});
