import { RaftError } from '@raft/core';
import { describe, expect, it } from 'vitest';
import { appMachine, normalizePeerUrl, type AppCommand, type AppState } from './machine.js';

const PEERS = new Map([
  ['n2', 'ws://127.0.0.1:7002/'],
  ['n1', 'ws://127.0.0.1:7001/'],
]);

/** A machine and the calls its observer got. */
function machine() {
  const calls: unknown[] = [];
  const m = appMachine(PEERS, {
    changed: (id, url, peers) => calls.push(['changed', id, url, Object.fromEntries(peers)]),
    restored: (peers) => calls.push(['restored', Object.fromEntries(peers)]),
  });
  return { m, calls };
}

function apply(
  m: ReturnType<typeof machine>['m'],
  commands: AppCommand[],
  state: AppState = m.init('n1'),
): { replies: unknown[]; state: AppState } {
  const replies: unknown[] = [];
  for (const c of commands) {
    const out = m.handleWrite(c, state);
    if (out instanceof Promise) throw new Error('handleWrite must be synchronous');
    replies.push(out[0]);
    state = out[1];
  }
  return { replies, state };
}

describe('the app state machine: KVStore plus a replicated peer directory', () => {
  it('starts from --peers (sorted by id) and an empty map, and delegates key-value commands and queries to KVStore', () => {
    const { m, calls } = machine();
    const { replies, state } = apply(m, [
      { op: 'set', key: 'a', value: { x: 1 } },
      { op: 'cas', key: 'a', expected: { x: 1 }, value: 2 },
      { op: 'delete', key: 'missing' },
    ]);
    expect([...state.peers.keys()]).toEqual(['n1', 'n2']);
    expect(replies).toEqual([
      { ok: true, value: { x: 1 } },
      { ok: true, value: 2 },
      { ok: false, error: 'key_not_found' },
    ]);
    expect(m.handleRead({ op: 'get', key: 'a' }, state)).toEqual({ ok: true, value: 2 });
    expect(calls).toEqual([]);
  });

  it('sets and forgets peer URLs, telling the observer of each change and only of changes', () => {
    const { m, calls } = machine();
    const { replies, state } = apply(m, [
      { op: 'peer', id: 'n4', url: 'ws://127.0.0.1:7004' },
      { op: 'peer', id: 'n4', url: 'ws://127.0.0.1:7004/' },
      { op: 'peer', id: 'n0', url: 'ws://10.0.0.1:7000' },
      { op: 'peer', id: 'n1', url: null },
      { op: 'peer', id: 'n1', url: null },
    ]);
    expect(replies).toEqual([{ ok: true }, { ok: true }, { ok: true }, { ok: true }, { ok: true }]);
    expect([...state.peers]).toEqual([
      ['n0', 'ws://10.0.0.1:7000/'],
      ['n2', 'ws://127.0.0.1:7002/'],
      ['n4', 'ws://127.0.0.1:7004/'],
    ]);
    expect(calls.map((c) => (c as unknown[]).slice(0, 3))).toEqual([
      ['changed', 'n4', 'ws://127.0.0.1:7004/'],
      ['changed', 'n0', 'ws://10.0.0.1:7000/'],
      ['changed', 'n1', null],
    ]);
  });

  it('refuses a malformed peer command with bad_command, changing nothing (the same on every node)', () => {
    const { m, calls } = machine();
    const bad = [
      { op: 'peer', id: 'has space', url: 'ws://h:1' },
      { op: 'peer', id: 'n4', url: 'http://h:1' },
      { op: 'peer', id: 'n4', url: 'ws://h' },
      { op: 'peer', id: 'n4', url: 7 },
      { op: 'peer', id: 4, url: 'ws://h:1' },
      { op: 'peer', id: 'n4' },
    ] as unknown as AppCommand[];
    const { replies, state } = apply(m, bad);
    for (const r of replies)
      expect(r).toMatchObject({ ok: false, error: 'bad_command', message: expect.any(String) as string });
    expect([...state.peers.keys()]).toEqual(['n1', 'n2']);
    expect(calls).toEqual([]);
  });

  it('snapshots both parts and restores them, telling the observer', async () => {
    const { m, calls } = machine();
    const { state } = apply(m, [
      { op: 'set', key: 'k', value: [1, 'two'] },
      { op: 'peer', id: 'n4', url: 'ws://127.0.0.1:7004' },
    ]);
    const bytes = await m.snapshot!(state);
    // Same state, same bytes: every node's snapshot of one index is identical.
    expect(
      Buffer.from(
        await m.snapshot!(
          apply(machine().m, [
            { op: 'peer', id: 'n4', url: 'ws://127.0.0.1:7004/' },
            { op: 'set', key: 'k', value: [1, 'two'] },
          ]).state,
        ),
      ),
    ).toEqual(Buffer.from(bytes));
    calls.length = 0;
    const restored = await m.restore!(bytes, 'n3');
    expect(m.handleRead({ op: 'get', key: 'k' }, restored)).toEqual({ ok: true, value: [1, 'two'] });
    expect(Object.fromEntries(restored.peers)).toEqual({
      n1: 'ws://127.0.0.1:7001/',
      n2: 'ws://127.0.0.1:7002/',
      n4: 'ws://127.0.0.1:7004/',
    });
    expect(calls).toEqual([['restored', Object.fromEntries(restored.peers)]]);
  });

  it('refuses bytes that are not its snapshot with RAFT_INVALID_ARGUMENT', async () => {
    const { m } = machine();
    const good = Buffer.from(await m.snapshot!(m.init('n1')));
    const truncated = Buffer.from(good);
    truncated.writeUInt32BE(1_000_000, 4);
    for (const bytes of [
      new Uint8Array(0),
      Buffer.from('RKV2\0\0\0\0'),
      truncated,
      Buffer.concat([Buffer.from('RKV1\0\0\0\x02{]'), good.subarray(8)]),
    ]) {
      let caught: unknown;
      try {
        await m.restore!(bytes, 'n1');
      } catch (err) {
        caught = err;
      }
      expect(RaftError.isInstance(caught) && caught.code).toBe('RAFT_INVALID_ARGUMENT');
    }
  });

  it('normalizes peer URLs as --peers does', () => {
    expect(normalizePeerUrl('ws://127.0.0.1:7001')).toBe('ws://127.0.0.1:7001/');
    expect(normalizePeerUrl('ws://[::1]:7001')).toBe('ws://[::1]:7001/');
    expect(normalizePeerUrl('wss://h:1')).toBe('wss://h:1/');
    expect(normalizePeerUrl('wss://h')).toMatchObject({
      problem: expect.stringContaining('port') as string,
    });
    expect(normalizePeerUrl('ws://h:1/?q=1')).toMatchObject({ problem: expect.any(String) as string });
    expect(normalizePeerUrl(`ws://h:1/${'x'.repeat(600)}`)).toMatchObject({
      problem: expect.any(String) as string,
    });
  });
});
