import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  msgpackCodec,
  RaftError,
  unwrapOutcome,
  withSessions,
  type SessionCommand,
  type SessionOutcome,
  type SessionState,
  type StateMachine,
} from '../src/index.js';

/** A log of tags: applying a command twice shows as a tag twice. Not idempotent. */
type Cmd = { tag: string } | { boom: string };
type State = string[];
const log: StateMachine<State, Cmd, 'all', string[] | number> = {
  init: () => [],
  handleWrite(cmd, state) {
    if ('boom' in cmd) throw new Error(cmd.boom);
    state.push(cmd.tag);
    return [state.length, state];
  },
  handleRead: (_q, state) => [...state],
  snapshot: (state) => new TextEncoder().encode(JSON.stringify(state)),
  restore: (bytes) => JSON.parse(new TextDecoder().decode(bytes)) as State,
};

type M = ReturnType<typeof withSessions<State, Cmd, 'all', string[] | number>>;
type S = SessionState<State, string[] | number>;
type Out = string[] | number | SessionOutcome<string[] | number>;

async function apply(m: M, state: S, command: Cmd | SessionCommand<Cmd>): Promise<Out> {
  const [reply] = await m.handleWrite(command, state);
  return reply;
}

async function register(m: M, state: S): Promise<number> {
  const out = (await apply(m, state, { raftSession: 'register' })) as SessionOutcome<unknown>;
  if (out.raftSession !== 'registered') throw new Error('not registered');
  return out.client;
}

describe('withSessions', () => {
  it('passes plain commands and reads through unchanged', async () => {
    const m = withSessions(log);
    const s = m.init('a');
    expect(await apply(m, s, { tag: 'x' })).toBe(1);
    expect(m.handleRead('all', s)).toEqual(['x']);
  });

  it('applies a registered session write once and replays its reply for a duplicate', async () => {
    const m = withSessions(log);
    const s = m.init('a');
    const client = await register(m, s);
    const w = { raftSession: 'write', client, seq: 1, command: { tag: 'x' } } as const;
    expect(await apply(m, s, w)).toEqual({ raftSession: 'applied', reply: 1 });
    expect(await apply(m, s, { tag: 'y' })).toBe(2);
    expect(await apply(m, s, w)).toEqual({ raftSession: 'replayed', reply: 1 });
    expect(m.handleRead('all', s)).toEqual(['x', 'y']);
  });

  it('accepts seqs out of order within the window', async () => {
    const m = withSessions(log, { window: 4 });
    const s = m.init('a');
    const client = await register(m, s);
    const w = (seq: number) => ({ raftSession: 'write', client, seq, command: { tag: `t${seq}` } }) as const;
    expect(await apply(m, s, w(2))).toMatchObject({ raftSession: 'applied' });
    expect(await apply(m, s, w(1))).toMatchObject({ raftSession: 'applied' });
    expect(await apply(m, s, w(2))).toMatchObject({ raftSession: 'replayed' });
  });

  it('refuses, and never applies, a seq below the window or acknowledged', async () => {
    const m = withSessions(log, { window: 2 });
    const s = m.init('a');
    const client = await register(m, s);
    const w = (seq: number, ackedSeq?: number) =>
      ({ raftSession: 'write', client, seq, ackedSeq, command: { tag: `t${seq}` } }) as const;
    await apply(m, s, w(1));
    await apply(m, s, w(3));
    await apply(m, s, w(4)); // seq 1 leaves the window: its reply is gone
    expect(await apply(m, s, w(1))).toEqual({ raftSession: 'expired', reason: 'seq-discarded' });
    // Seq 2 was never applied (every applied seq above the floor has its reply): it applies,
    // and at once leaves the window (the lowest), so a retry of it is refused.
    expect(await apply(m, s, w(2))).toMatchObject({ raftSession: 'applied' });
    expect(await apply(m, s, w(2))).toEqual({ raftSession: 'expired', reason: 'seq-discarded' });
    await apply(m, s, w(5, 4));
    expect(await apply(m, s, w(4))).toEqual({ raftSession: 'expired', reason: 'seq-discarded' });
    expect(m.handleRead('all', s)).toEqual(['t1', 't3', 't4', 't2', 't5']);
  });

  it('expires an idle session by the command count, never reusing its id', async () => {
    const m = withSessions(log, { sessionTtl: 3 });
    const s = m.init('a');
    const client = await register(m, s);
    for (let i = 0; i < 4; i++) await apply(m, s, { tag: `p${i}` });
    const w = { raftSession: 'write', client, seq: 1, command: { tag: 'late' } } as const;
    expect(await apply(m, s, w)).toEqual({ raftSession: 'expired', reason: 'unknown-session' });
    expect(await register(m, s)).toBe(client + 1);
    expect(m.handleRead('all', s)).not.toContain('late');
    expect(() => unwrapOutcome({ raftSession: 'expired', reason: 'unknown-session' })).toThrow(
      expect.objectContaining({ code: 'RAFT_SESSION_EXPIRED' }) as Error,
    );
  });

  it('evicts the least recently used session beyond maxSessions', async () => {
    const m = withSessions(log, { maxSessions: 2 });
    const s = m.init('a');
    const a = await register(m, s);
    const b = await register(m, s);
    await apply(m, s, { raftSession: 'write', client: a, seq: 1, command: { tag: 'a1' } });
    await register(m, s); // evicts b, the least recently used
    expect(await apply(m, s, { raftSession: 'write', client: b, seq: 1, command: { tag: 'b1' } })).toEqual({
      raftSession: 'expired',
      reason: 'unknown-session',
    });
    expect(
      await apply(m, s, { raftSession: 'write', client: a, seq: 2, command: { tag: 'a2' } }),
    ).toMatchObject({
      raftSession: 'applied',
    });
  });

  it('idempotency keys: replay on the same fingerprint, mismatch on another, apply again after expiry', async () => {
    const m = withSessions(log, { keyTtl: 2 });
    const s = m.init('a');
    const k = (fingerprint: string, tag: string) =>
      ({ raftSession: 'key', key: 'K', fingerprint, command: { tag } }) as const;
    expect(await apply(m, s, k('f', 'x'))).toEqual({ raftSession: 'applied', reply: 1 });
    expect(await apply(m, s, k('f', 'x'))).toEqual({ raftSession: 'replayed', reply: 1 });
    expect(await apply(m, s, k('g', 'y'))).toEqual({ raftSession: 'mismatch' });
    expect(m.handleRead('all', s)).toEqual(['x']);
    for (let i = 0; i < 3; i++) await apply(m, s, { tag: `p${i}` });
    expect(await apply(m, s, k('f', 'x'))).toMatchObject({ raftSession: 'applied' });
    expect(() => unwrapOutcome({ raftSession: 'mismatch' })).toThrow(
      expect.objectContaining({ code: 'RAFT_IDEMPOTENCY_MISMATCH' }) as Error,
    );
  });

  it('remembers a command that threw: its retry throws again and is not applied', async () => {
    const m = withSessions(log);
    const s = m.init('a');
    const client = await register(m, s);
    const w = { raftSession: 'write', client, seq: 1, command: { boom: 'no' } } as const;
    await expect(apply(m, s, w)).rejects.toThrow('no');
    await expect(apply(m, s, w)).rejects.toThrow(/first applied/);
    expect(m.handleRead('all', s)).toEqual([]);
  });

  it('refuses malformed envelopes (the runtime answers RAFT_STATE_MACHINE_ERROR)', async () => {
    const m = withSessions(log);
    const s = m.init('a');
    const bad = { raftSession: 'write', client: 'x', seq: 1, command: { tag: 'x' } } as unknown as Cmd;
    await expect(apply(m, s, bad)).rejects.toThrow(TypeError);
    await expect(apply(m, s, { raftSession: 'nope' } as unknown as Cmd)).rejects.toThrow(TypeError);
    expect(m.handleRead('all', s)).toEqual([]);
  });

  it('names a bad option', () => {
    expect(() => withSessions(log, { window: 0 })).toThrow(/window/);
    try {
      withSessions(log, { maxKeys: 1.5 });
    } catch (err) {
      expect(RaftError.isInstance(err) && err.code).toBe('RAFT_INVALID_ARGUMENT');
    }
  });

  it('restores a snapshot of the unwrapped machine (taken before sessions were on) with no sessions', async () => {
    const m = withSessions(log);
    const s = await m.restore!(await log.snapshot!(['old']), 'a');
    expect(m.handleRead('all', s)).toEqual(['old']);
    expect(s.sessions.size).toBe(0);
    const again = await m.restore!(await m.snapshot!(s), 'a');
    expect(m.handleRead('all', again)).toEqual(['old']);
  });

  it('a large table is snapshotted and restored a frame at a time, giving the event loop back in between', async () => {
    const m = withSessions(log);
    const s = m.init('a');
    const client = await register(m, s);
    await apply(m, s, { raftSession: 'write', client, seq: 1, command: { tag: 'w' } });
    for (let i = 0; i < 5000; i++)
      await apply(m, s, {
        raftSession: 'key',
        key: `k${i}`,
        fingerprint: `f${i}`,
        command: { tag: `t${i}` },
      });
    let fired = false;
    setTimeout(() => (fired = true), 0);
    const bytes = await m.snapshot!(s);
    expect(fired).toBe(true);
    fired = false;
    setTimeout(() => (fired = true), 0);
    const back = await m.restore!(bytes, 'b');
    expect(fired).toBe(true);
    expect(back.keys.size).toBe(5000);
    expect([...back.keys.keys()].slice(0, 2)).toEqual(['k0', 'k1']);
    expect(back.sessions.size).toBe(1);
    expect(back.clock).toBe(s.clock);
    expect(back.nextId).toBe(s.nextId);
    // The restored tables answer replays as the original does, and the bytes are the same.
    const replay = {
      raftSession: 'key',
      key: 'k4999',
      fingerprint: 'f4999',
      command: { tag: 'again' },
    } as const;
    expect(await apply(m, back, replay)).toEqual(await apply(m, s, replay));
    expect(m.handleRead('all', back)).toEqual(m.handleRead('all', s));
    expect(Buffer.from(await m.snapshot!(back)).equals(Buffer.from(await m.snapshot!(s)))).toBe(true);
  });

  it('restores the first layout (RSS1, one MessagePack map)', async () => {
    const m = withSessions(log);
    const inner = await log.snapshot!(['x']);
    const body = msgpackCodec().encode({
      v: 1,
      inner,
      clock: 7,
      nextId: 3,
      sessions: [[2, 6, 0, [[1, { ok: true, reply: 1 }]]]],
      keys: [['key', 7, 'fp', { ok: true, reply: 1 }]],
    });
    const bytes = new Uint8Array([0x00, 0x52, 0x53, 0x53, 0x31, 0x00, ...body]);
    const back = await m.restore!(bytes, 'a');
    expect(m.handleRead('all', back)).toEqual(['x']);
    expect(back.clock).toBe(7);
    expect([...back.keys.keys()]).toEqual(['key']);
    expect([...back.sessions.keys()]).toEqual([2]);
  });

  it('refuses a damaged framed snapshot with RAFT_INVALID_ARGUMENT', async () => {
    const m = withSessions(log);
    const s = m.init('a');
    await apply(m, s, { raftSession: 'key', key: 'k', fingerprint: 'f', command: { tag: 't' } });
    const good = await m.snapshot!(s);
    for (const bad of [good.subarray(0, good.length - 3), good.subarray(0, 9)]) {
      const err: unknown = await Promise.resolve(m.restore!(bad, 'a')).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(RaftError.isInstance(err) && err.code).toBe('RAFT_INVALID_ARGUMENT');
    }
  });

  it('has no snapshot when the wrapped machine has none', () => {
    const { snapshot: _s, restore: _r, ...plain } = log;
    expect(withSessions(plain).snapshot).toBeUndefined();
  });

  // The property: any interleaving of registrations, session writes (duplicated, out of
  // order, acknowledged), idempotent writes and snapshot/restore round trips applies each
  // (client, seq) and each remembered key at most once, and a duplicate gets the first reply.
  it('applies every (client, seq) at most once, across snapshots (property)', async () => {
    type Step =
      | { kind: 'register' }
      | { kind: 'write'; who: number; seq: number; ack: number }
      | { kind: 'key'; key: number; fp: number }
      | { kind: 'plain' }
      | { kind: 'snapshot' };
    const step: fc.Arbitrary<Step> = fc.oneof(
      { weight: 1, arbitrary: fc.constant({ kind: 'register' as const }) },
      {
        weight: 6,
        arbitrary: fc.record({
          kind: fc.constant('write' as const),
          who: fc.nat(3),
          seq: fc.integer({ min: 1, max: 12 }),
          ack: fc.nat(12),
        }),
      },
      {
        weight: 3,
        arbitrary: fc.record({ kind: fc.constant('key' as const), key: fc.nat(4), fp: fc.nat(1) }),
      },
      { weight: 1, arbitrary: fc.constant({ kind: 'plain' as const }) },
      { weight: 1, arbitrary: fc.constant({ kind: 'snapshot' as const }) },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 80 }), async (steps) => {
        const m = withSessions(log, { window: 3, sessionTtl: 25, maxSessions: 3, keyTtl: 15, maxKeys: 3 });
        let s = m.init('a');
        const clients: number[] = [];
        const first = new Map<string, unknown>();
        let plain = 0;
        for (const st of steps) {
          if (st.kind === 'register') clients.push(await register(m, s));
          else if (st.kind === 'plain') await apply(m, s, { tag: `plain${plain++}` });
          else if (st.kind === 'snapshot') s = await m.restore!(await m.snapshot!(s), 'a');
          else {
            const tag = st.kind === 'key' ? `key${st.key}` : `w${clients[st.who]}.${st.seq}`;
            if (st.kind === 'write' && clients[st.who] === undefined) continue;
            const out = (await apply(
              m,
              s,
              st.kind === 'key'
                ? { raftSession: 'key', key: `k${st.key}`, fingerprint: `f${st.fp}`, command: { tag } }
                : {
                    raftSession: 'write',
                    client: clients[st.who]!,
                    seq: st.seq,
                    ackedSeq: Math.min(st.ack, st.seq - 1),
                    command: { tag },
                  },
            )) as SessionOutcome<number>;
            if (out.raftSession === 'replayed') expect(first.get(tag)).toBe(out.reply);
            if (out.raftSession === 'applied' && st.kind === 'write') {
              expect(first.has(tag)).toBe(false);
              first.set(tag, out.reply);
            }
            if (out.raftSession === 'applied' && st.kind === 'key') first.set(tag, out.reply);
          }
        }
        const applied = (m.handleRead('all', s) as string[]).filter((t) => t.startsWith('w'));
        expect(new Set(applied).size).toBe(applied.length);
      }),
      { seed: 18, numRuns: 300 },
    );
  });
});
