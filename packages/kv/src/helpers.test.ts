import { msgpackCodec, RaftError, TimeoutError, type PeerRef } from '@raft/core';
import { describe, expect, it } from 'vitest';
import { cas, del, get, set, type KVCallOptions } from './helpers.js';
import { KVStore } from './kv-store.js';
import type { KVReply, KVState } from './types.js';

interface Call {
  kind: 'write' | 'read';
  payload: unknown;
  opts: KVCallOptions | undefined;
}

/**
 * A stand-in for a leader: `write` and `read` of `@raft/core` accept any `Peer`, and
 * this one applies commands to a KVStore after a MessagePack round trip, as the runtime
 * applies log entries. It records what the helpers sent.
 */
function fakePeer(options: { reply?: KVReply; error?: Error } = {}): {
  peer: PeerRef;
  calls: Call[];
  state: KVState;
} {
  const codec = msgpackCodec();
  const calls: Call[] = [];
  let state = KVStore.init('n1');
  const answer = (reply: () => KVReply): Promise<KVReply> => {
    if (options.error !== undefined) return Promise.reject(options.error);
    return Promise.resolve(options.reply ?? reply());
  };
  const peer = {
    name: 'n1',
    write(command: unknown, opts?: KVCallOptions): Promise<KVReply> {
      calls.push({ kind: 'write', payload: command, opts });
      return answer(() => {
        const [reply, next] = KVStore.handleWrite(codec.decode(codec.encode(command)) as never, state);
        state = next;
        return reply;
      });
    },
    read(query: unknown, opts?: KVCallOptions): Promise<KVReply> {
      calls.push({ kind: 'read', payload: query, opts });
      return answer(() => KVStore.handleRead(codec.decode(codec.encode(query)) as never, state));
    },
    leader: () => 'n1',
    status: () => ({ name: 'n1', role: 'leader' }),
    setConfiguration: () => Promise.resolve({ members: ['n1'] }),
    getEntry: () => Promise.resolve(undefined),
    stop: () => Promise.resolve(),
  };
  return {
    peer: peer as unknown as PeerRef,
    calls,
    get state() {
      return state;
    },
  };
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    return RaftError.isInstance(err) ? err.code : `not a RaftError: ${String(err)}`;
  }
}

describe('helpers', () => {
  it('set, get, cas and del send the documented commands and return the replies', async () => {
    const { peer, calls } = fakePeer();
    expect(await get(peer, 'k')).toEqual({ ok: false, error: 'key_not_found' });
    expect(await set(peer, 'k', { n: 1 })).toEqual({ ok: true, value: { n: 1 } });
    expect(await get(peer, 'k')).toEqual({ ok: true, value: { n: 1 } });
    expect(await cas(peer, 'k', { n: 2 }, 'x')).toEqual({
      ok: false,
      error: 'cas_mismatch',
      value: { n: 1 },
    });
    expect(await cas(peer, 'k', { n: 1 }, 'x')).toEqual({ ok: true, value: 'x' });
    expect(await cas(peer, 'other', 1, 2)).toEqual({ ok: false, error: 'key_not_found' });
    expect(await del(peer, 'k')).toEqual({ ok: true });
    expect(await del(peer, 'k')).toEqual({ ok: false, error: 'key_not_found' });
    expect(calls.map((c) => [c.kind, c.payload])).toEqual([
      ['read', { op: 'get', key: 'k' }],
      ['write', { op: 'set', key: 'k', value: { n: 1 } }],
      ['read', { op: 'get', key: 'k' }],
      ['write', { op: 'cas', key: 'k', expected: { n: 2 }, value: 'x' }],
      ['write', { op: 'cas', key: 'k', expected: { n: 1 }, value: 'x' }],
      ['write', { op: 'cas', key: 'other', expected: 1, value: 2 }],
      ['write', { op: 'delete', key: 'k' }],
      ['write', { op: 'delete', key: 'k' }],
    ]);
  });

  it('pass timeout and signal through', async () => {
    const { peer, calls } = fakePeer();
    const opts = { timeout: 50, signal: new AbortController().signal };
    await set(peer, 'k', 1, opts);
    await get(peer, 'k', opts);
    await cas(peer, 'k', 1, 2, opts);
    await del(peer, 'k', opts);
    for (const call of calls) expect(call.opts).toBe(opts);
  });

  it('reject bad arguments with RAFT_INVALID_ARGUMENT before sending anything', async () => {
    const { peer, calls } = fakePeer();
    expect(await codeOf(set(peer, 1 as unknown as string, 1))).toBe('RAFT_INVALID_ARGUMENT');
    expect(await codeOf(set(peer, 'k', undefined as unknown as null))).toBe('RAFT_INVALID_ARGUMENT');
    expect(await codeOf(set(peer, 'k', new Date() as unknown as null))).toBe('RAFT_INVALID_ARGUMENT');
    expect(await codeOf(get(peer, null as unknown as string))).toBe('RAFT_INVALID_ARGUMENT');
    expect(await codeOf(del(peer, {} as unknown as string))).toBe('RAFT_INVALID_ARGUMENT');
    expect(await codeOf(cas(peer, 'k', NaN, 1))).toBe('RAFT_INVALID_ARGUMENT');
    expect(await codeOf(cas(peer, 'k', 1, (() => 1) as unknown as null))).toBe('RAFT_INVALID_ARGUMENT');
    expect(calls).toEqual([]);
  });

  it('raise a bad_command reply (a peer running another version) as RAFT_INVALID_ARGUMENT', async () => {
    const { peer } = fakePeer({ reply: { ok: false, error: 'bad_command', message: 'unknown op' } });
    expect(await codeOf(set(peer, 'k', 1))).toBe('RAFT_INVALID_ARGUMENT');
    expect(await codeOf(get(peer, 'k'))).toBe('RAFT_INVALID_ARGUMENT');
  });

  it('pass errors of write and read through unchanged', async () => {
    const error = new TimeoutError();
    const { peer } = fakePeer({ error });
    await expect(set(peer, 'k', 1)).rejects.toBe(error);
    await expect(get(peer, 'k')).rejects.toBe(error);
    await expect(del(peer, 'k')).rejects.toBe(error);
    await expect(cas(peer, 'k', 1, 2)).rejects.toBe(error);
  });

  it('reject with RAFT_NO_PEER for a name that runs no peer', async () => {
    expect(await codeOf(get('no-such-peer-in-this-process', 'k'))).toBe('RAFT_NO_PEER');
  });
});
