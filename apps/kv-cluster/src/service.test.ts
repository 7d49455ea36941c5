import { ElectionInProgressError, NotLeaderError, RaftError, StoppedError, TimeoutError } from '@raft/core';
import type { Peer } from '@raft/core';
import type { KVCommand, KVQuery, KVReply } from '@raft/kv';
import { describe, expect, it, vi } from 'vitest';
import type { Forwarder } from './forward.js';
import type { HttpReply, KvOp } from './ops.js';
import { KvService } from './service.js';

/** A peer whose every call answers `outcome` (a reply, or an error to throw). */
function fakePeer(outcome: KVReply | Error): Peer<KVCommand, KVQuery, KVReply> {
  const answer = (): Promise<KVReply> => (outcome instanceof Error ? Promise.reject(outcome) : Promise.resolve(outcome));
  return { name: 'n1', write: vi.fn(answer), read: vi.fn(answer) } as unknown as Peer<KVCommand, KVQuery, KVReply>;
}

function service(outcome: KVReply | Error, forwarded: HttpReply = { status: 200, body: { value: 'from leader' } }) {
  const forward = vi.fn((_leader: string, _op: KvOp, _hops: number, _deadline: number) => Promise.resolve(forwarded));
  const logger = { error: vi.fn() };
  const svc = new KvService(fakePeer(outcome), { forward } as unknown as Forwarder, logger);
  return { svc, forward, logger };
}

const PUT: KvOp = { kind: 'put', key: 'k', value: 1 };
const GET: KvOp = { kind: 'get', key: 'k' };
const soon = (): number => performance.now() + 1000;

describe('KvService: replies', () => {
  it('maps the state machine replies to API.md', async () => {
    expect(await service({ ok: true, value: 1 }).svc.execute(PUT, soon(), 0)).toEqual({ status: 200, body: { value: 1 } });
    expect(await service({ ok: true }).svc.execute({ kind: 'delete', key: 'k' }, soon(), 0)).toEqual({ status: 200, body: {} });
    expect(await service({ ok: false, error: 'key_not_found' }).svc.execute(GET, soon(), 0)).toEqual({ status: 404, body: { error: 'key_not_found' } });
    expect(await service({ ok: false, error: 'cas_mismatch', value: 7 }).svc.execute({ kind: 'cas', key: 'k', expected: 1, value: 2 }, soon(), 0)).toEqual({
      status: 409,
      body: { error: 'cas_mismatch', value: 7 },
    });
    expect(await service({ ok: false, error: 'bad_command', message: 'too deep' }).svc.execute(PUT, soon(), 0)).toEqual({
      status: 400,
      body: { error: 'bad_request', message: 'too deep' },
    });
  });
});

describe('KvService: errors', () => {
  it('forwards to the leader a follower knows, once', async () => {
    const { svc, forward } = service(new NotLeaderError('n2'));
    expect(await svc.execute(PUT, soon(), 0)).toEqual({ status: 200, body: { value: 'from leader' } });
    expect(forward).toHaveBeenCalledWith('n2', PUT, 1, expect.any(Number));
    // An operation that was already forwarded is never forwarded again: no loops.
    forward.mockClear();
    expect(await svc.execute(PUT, soon(), 1)).toEqual({ status: 503, body: { error: 'election_in_progress' } });
    expect(forward).not.toHaveBeenCalled();
  });

  it('answers 504, never 503, for a write that may still commit', async () => {
    expect(await service(new NotLeaderError('n2', { indeterminate: true })).svc.execute(PUT, soon(), 0)).toMatchObject({ status: 504 });
    expect(await service(new NotLeaderError(null, { indeterminate: true })).svc.execute(PUT, soon(), 0)).toMatchObject({ status: 504 });
    expect(await service(new TimeoutError()).svc.execute(PUT, soon(), 0)).toEqual({ status: 504, body: { error: 'timeout' } });
    expect(await service(new RaftError('RAFT_ABORTED', 'aborted')).svc.execute(PUT, soon(), 0)).toMatchObject({ status: 504 });
    expect(await service(new StoppedError()).svc.execute(PUT, soon(), 0)).toMatchObject({ status: 504 });
  });

  it('answers 503 when nothing happened', async () => {
    expect(await service(new ElectionInProgressError()).svc.execute(PUT, soon(), 0)).toEqual({ status: 503, body: { error: 'election_in_progress' } });
    expect(await service(new NotLeaderError(null)).svc.execute(PUT, soon(), 0)).toEqual({ status: 503, body: { error: 'election_in_progress' } });
    expect(await service(new StoppedError()).svc.execute(GET, soon(), 0)).toEqual({ status: 503, body: { error: 'shutting_down' } });
    const closing = service({ ok: true, value: 1 });
    closing.svc.closing = true;
    expect(await closing.svc.execute(PUT, soon(), 0)).toEqual({ status: 503, body: { error: 'shutting_down' } });
  });

  it('answers 504 at once when the deadline has passed', async () => {
    expect(await service({ ok: true, value: 1 }).svc.execute(PUT, performance.now() - 1, 0)).toEqual({ status: 504, body: { error: 'timeout' } });
  });

  it('answers 500 without details for a bug, and logs it', async () => {
    const { svc, logger } = service(new TypeError('boom'));
    expect(await svc.execute(PUT, soon(), 0)).toEqual({ status: 500, body: { error: 'internal' } });
    expect(logger.error).toHaveBeenCalledTimes(1);
  });
});
