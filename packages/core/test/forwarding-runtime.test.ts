/**
 * Requests through any node, on virtual time: a follower's writes and reads go to the
 * leader over the peer connection (one Propose and one ReadIndexRequest per turn) and are
 * answered from the follower's own state machine; failures are definite when nothing can
 * have been appended, indeterminate otherwise, and a read is never stale.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { RaftError } from '../src/index.js';
import {
  NotLeaderError,
  seededRandom,
  setConfiguration,
  startPeer,
  writeIdempotent,
  withSessions,
  type Peer,
  type PeerOptions,
  type RaftMessage,
  type StateMachine,
  type Transport,
} from '../src/index.js';
import { TestLogStore, TestNetwork, VirtualClock } from './harness.js';

type Cmd = { op: 'set'; key: string; value: number };
type Q = { op: 'get'; key: string };
type State = Map<string, number>;

/** Replies with the peer that applied the command, to show who answered. */
const machine: StateMachine<State, Cmd, Q, { value: number | null; by: string }> & {
  names: Map<State, string>;
} = {
  names: new Map(),
  init(name) {
    const s = new Map<string, number>();
    machine.names.set(s, name);
    return s;
  },
  handleWrite(cmd, state) {
    state.set(cmd.key, cmd.value);
    return [{ value: cmd.value, by: machine.names.get(state)! }, state];
  },
  handleRead(q, state) {
    return { value: state.get(q.key) ?? null, by: machine.names.get(state)! };
  },
};

type P = Peer<Cmd, Q, { value: number | null; by: string }>;
let started: Peer[] = [];
afterEach(async () => {
  await Promise.all(started.map((p) => p.stop()));
  started = [];
});

/**
 * A transport that lets a test hold back what one peer receives or sends: `hold` keeps
 * matching inbound messages until `release()`; `drop` loses matching outbound ones.
 */
function controlled(inner: Transport) {
  let deliver: (m: RaftMessage) => void = () => undefined;
  const held: RaftMessage[] = [];
  const ctl = {
    hold: (_m: RaftMessage): boolean => false,
    drop: (_m: RaftMessage): boolean => false,
    release(): void {
      for (const m of held.splice(0)) deliver(m);
    },
    transport: {
      start: (onMessage) => {
        deliver = onMessage;
        return inner.start((m) => (ctl.hold(m) ? held.push(m) : onMessage(m)));
      },
      send: (to, m) => {
        if (!ctl.drop(m)) inner.send(to, m);
      },
      close: () => inner.close(),
    } satisfies Transport,
  };
  return ctl;
}

async function cluster(names: string[], options: Partial<PeerOptions> = {}, wrapped: string[] = []) {
  const clock = new VirtualClock();
  const net = new TestNetwork(clock);
  const rand = seededRandom(7);
  const peers = new Map<string, P>();
  const ctl = new Map<string, ReturnType<typeof controlled>>();
  for (const name of names) {
    let transport = net.join(name);
    if (wrapped.includes(name)) {
      const c = controlled(transport);
      ctl.set(name, c);
      transport = c.transport;
    }
    const p = await startPeer(machine, {
      name,
      log: new TestLogStore(),
      transport,
      clock,
      random: rand,
      ...options,
    });
    peers.set(name, p);
    started.push(p);
  }
  const configured = setConfiguration(names[0]!, names);
  await clock.until(() => names.every((n) => peers.get(n)!.leader() === names[0]));
  await configured;
  const peer = (n: string): P => peers.get(n)!;
  /** Settles `p` while virtual time runs, up to `limitMs`. */
  async function settle<T>(
    p: Promise<T>,
    limitMs = 5_000,
  ): Promise<{ ok: true; value: T } | { ok: false; err: RaftError }> {
    let out: { ok: true; value: T } | { ok: false; err: RaftError } | undefined;
    p.then(
      (value) => (out = { ok: true, value }),
      (err: RaftError) => (out = { ok: false, err }),
    );
    await clock.until(() => out !== undefined, limitMs, 1);
    return out!;
  }
  return { clock, net, peer, ctl, settle };
}

const sent = (net: TestNetwork, type: RaftMessage['type'], from: string): number =>
  net.delivered.filter((m) => m.type === type && m.from === from).length;

describe('requests through any node', () => {
  it('a follower forwards writes and reads and answers them from its own state machine', async () => {
    const { peer, settle } = await cluster(['a', 'b', 'c']);
    const w = await settle(peer('b').write({ op: 'set', key: 'k', value: 1 }, { forward: true }));
    expect(w).toEqual({ ok: true, value: { value: 1, by: 'b' } });
    // Another follower's read sees it, served by that follower.
    const r = await settle(peer('c').read({ op: 'get', key: 'k' }, { forward: true }));
    expect(r).toEqual({ ok: true, value: { value: 1, by: 'c' } });
    expect(peer('b').status().lastApplied).toBe(peer('a').status().lastApplied);
  });

  it('without forward (the default) a follower still answers RAFT_NOT_LEADER naming the leader', async () => {
    const { peer, settle } = await cluster(['a', 'b', 'c']);
    const w = await settle(peer('b').write({ op: 'set', key: 'k', value: 1 }));
    expect(w.ok).toBe(false);
    expect(!w.ok && w.err).toBeInstanceOf(NotLeaderError);
    expect(!w.ok && (w.err as NotLeaderError).leader).toBe('a');
    await expect(
      peer('b').read({ op: 'get', key: 'k' }, { forward: 'yes' as unknown as boolean }),
    ).rejects.toThrow('option forward must be a boolean');
  });

  it('the peer option turns it on for every call; a call can turn it off', async () => {
    const { peer, settle } = await cluster(['a', 'b', 'c'], { forward: true });
    expect(await settle(peer('c').write({ op: 'set', key: 'k', value: 2 }))).toMatchObject({ ok: true });
    const off = await settle(peer('c').write({ op: 'set', key: 'k', value: 3 }, { forward: false }));
    expect(!off.ok && off.err.code).toBe('RAFT_NOT_LEADER');
  });

  it('the writes and reads of one turn go in one Propose and one ReadIndexRequest', async () => {
    const { peer, net, settle } = await cluster(['a', 'b', 'c']);
    const writes = Array.from({ length: 20 }, (_, i) =>
      peer('b').write({ op: 'set', key: `k${i}`, value: i }, { forward: true }),
    );
    const reads = Array.from({ length: 10 }, () =>
      peer('b').read({ op: 'get', key: 'k0' }, { forward: true }),
    );
    const out = await settle(Promise.all([...writes, ...reads]));
    expect(out.ok).toBe(true);
    expect(sent(net, 'Propose', 'b')).toBe(1);
    expect(sent(net, 'ReadIndexRequest', 'b')).toBe(1);
    const replies = (out as { value: { value: number | null; by: string }[] }).value;
    expect(replies.slice(0, 20).map((r) => r.value)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    // The reads started before the writes committed; each saw some state: no more is promised.
    for (const r of replies.slice(20)) expect(r.by).toBe('b');
  });

  it('a leader that dies with a write in flight: the write fails indeterminate; the next leader takes forwarded writes', async () => {
    const { peer, clock, settle } = await cluster(['a', 'b', 'c']);
    const inflight = peer('b').write({ op: 'set', key: 'k', value: 1 }, { forward: true, timeout: 60_000 });
    await peer('a').stop(); // the Propose is on the wire to a peer that is gone
    const out = await settle(inflight, 30_000);
    expect(out.ok).toBe(false);
    const err = (out as { err: RaftError }).err;
    expect(err.code).toBe('RAFT_NOT_LEADER');
    expect((err as NotLeaderError).indeterminate).toBe(true);
    // Once b and c have a new leader, forwarded writes go there.
    await clock.until(() => peer('b').leader() !== null && peer('b').leader() === peer('c').leader());
    const leader = peer('b').leader()!;
    const follower = leader === 'b' ? 'c' : 'b';
    expect(
      await settle(peer(follower).write({ op: 'set', key: 'k', value: 2 }, { forward: true })),
    ).toMatchObject({
      ok: true,
    });
  });

  it('a write with no leader known fails at once with RAFT_ELECTION_IN_PROGRESS (nothing was sent)', async () => {
    const { peer, net, clock } = await cluster(['a', 'b', 'c'], { checkQuorum: true });
    net.isolate('b', ['a', 'c']);
    await clock.until(() => peer('b').leader() === null, 10_000);
    await expect(peer('b').write({ op: 'set', key: 'k', value: 1 }, { forward: true })).rejects.toMatchObject(
      {
        code: 'RAFT_ELECTION_IN_PROGRESS',
      },
    );
  });

  it('an answer that comes after the follower applied the index still gives the caller its reply', async () => {
    const { peer, ctl, clock, settle } = await cluster(['a', 'b', 'c'], {}, ['b']);
    const b = ctl.get('b')!;
    b.hold = (m) => m.type === 'ProposeResult';
    const w = peer('b').write({ op: 'set', key: 'late', value: 5 }, { forward: true });
    await clock.until(
      () =>
        peer('b').status().lastApplied === peer('a').status().lastApplied &&
        peer('a').status().commitIndex > 0,
    );
    await clock.advance(200); // b has applied the entry before it knows it is its own
    b.hold = () => false;
    b.release();
    expect(await settle(w)).toEqual({ ok: true, value: { value: 5, by: 'b' } });
  });

  it('an entry of another term applied at the promised index fails the write definitely', async () => {
    const { peer, ctl, net, clock, settle } = await cluster(['a', 'b', 'c'], {}, ['a']);
    // a appends b's command and answers, but the entry never leaves a.
    ctl.get('a')!.drop = (m) => m.type === 'AppendEntries' && m.entries.some((e) => e.type === 'command');
    const w = peer('b').write({ op: 'set', key: 'k', value: 1 }, { forward: true, timeout: 60_000 });
    await clock.until(() => net.delivered.some((m) => m.type === 'ProposeResult' && m.to === 'b'));
    net.isolate('a', ['b', 'c']);
    const out = await settle(w, 30_000);
    expect(out.ok).toBe(false);
    const err = (out as { err: RaftError }).err;
    expect(err.code === 'RAFT_NOT_LEADER' || err.code === 'RAFT_ELECTION_IN_PROGRESS').toBe(true);
    expect((err as Partial<NotLeaderError>).indeterminate ?? false).toBe(false);
    expect((await settle(peer('b').read({ op: 'get', key: 'k' }, { forward: true }))).ok).toBe(true);
  });

  it('a follower partitioned with a deposed leader never serves a read from it', async () => {
    // No check-quorum: the old leader keeps believing it leads, and its follower with it.
    const names = ['a', 'b', 'c', 'd', 'e'];
    const { peer, net, clock, settle } = await cluster(names, { checkQuorum: false, preVote: false });
    expect(await settle(peer('a').write({ op: 'set', key: 'k', value: 1 }))).toMatchObject({ ok: true });
    await clock.until(() =>
      names.every((n) => peer(n).status().lastApplied === peer('a').status().lastApplied),
    );
    for (const x of ['a', 'b']) net.isolate(x, ['c', 'd', 'e']);
    // The majority elects a new leader and overwrites k.
    await clock.until(() => ['c', 'd', 'e'].some((n) => peer(n).status().role === 'leader'), 20_000);
    const fresh = ['c', 'd', 'e'].find((n) => peer(n).status().role === 'leader')!;
    expect(await settle(peer(fresh).write({ op: 'set', key: 'k', value: 2 }))).toMatchObject({ ok: true });
    // b still follows a, which cannot confirm its leadership with a quorum: no answer.
    expect(peer('b').leader()).toBe('a');
    expect(peer('a').status().role).toBe('leader');
    const r = await settle(peer('b').read({ op: 'get', key: 'k' }, { forward: true, timeout: 2_000 }));
    expect(r.ok).toBe(false);
    expect((r as { err: RaftError }).err.code).toBe('RAFT_TIMEOUT');
    // Healed, b's reads see the new value.
    net.heal();
    await clock.until(() => peer('b').leader() === fresh, 20_000);
    expect(await settle(peer('b').read({ op: 'get', key: 'k' }, { forward: true }))).toEqual({
      ok: true,
      value: { value: 2, by: 'b' },
    });
  });

  it('stopping a follower rejects its forwarded calls with RAFT_STOPPED', async () => {
    const { peer, net } = await cluster(['a', 'b', 'c']);
    net.isolate('a', ['b', 'c']); // the answers will not come
    const w = peer('b').write({ op: 'set', key: 'k', value: 1 }, { forward: true });
    const r = peer('b').read({ op: 'get', key: 'k' }, { forward: true });
    await Promise.resolve();
    await peer('b').stop();
    await expect(w).rejects.toMatchObject({ code: 'RAFT_STOPPED' });
    await expect(r).rejects.toMatchObject({ code: 'RAFT_STOPPED' });
  });
});

describe('idempotent writes through a follower', () => {
  it('writeIdempotent forwards, and a retry with the same key is not applied twice', async () => {
    const clock = new VirtualClock();
    const net = new TestNetwork(clock);
    const rand = seededRandom(3);
    const counter: StateMachine<number, string, null, number> = {
      init: () => 0,
      handleWrite: (_c, n) => [n + 1, n + 1],
      handleRead: (_q, n) => n,
    };
    const names = ['x', 'y', 'z'];
    for (const name of names)
      started.push(
        await startPeer(withSessions(counter), {
          name,
          log: new TestLogStore(),
          transport: net.join(name),
          clock,
          random: rand,
        }),
      );
    void setConfiguration('x', names);
    const y = started[1]!;
    await clock.until(() => y.leader() === 'x');
    const once = writeIdempotent<number>('y', 'key-1', 'fp', 'inc', { forward: true });
    await clock.until(() => y.status().lastApplied >= 3);
    await clock.advance(50);
    expect(await once).toEqual({ reply: 1, replayed: false });
    const again = writeIdempotent<number>('y', 'key-1', 'fp', 'inc', { forward: true });
    await clock.advance(50);
    expect(await again).toEqual({ reply: 1, replayed: true });
  });
});
