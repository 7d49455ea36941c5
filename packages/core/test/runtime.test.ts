import { afterEach, describe, expect, it } from 'vitest';
import {
  getEntry,
  leader,
  read,
  RaftError,
  seededRandom,
  setConfiguration,
  startPeer,
  status,
  stopPeer,
  write,
  type Peer,
  type StateMachine,
} from '../src/index.js';
import { TestLogStore, TestNetwork, VirtualClock } from './harness.js';

type Cmd = { op: 'set'; key: string; value: unknown } | { op: 'boom' };
type Q = { op: 'get'; key: string };
type Reply = { ok: true; value?: unknown } | { ok: false; error: string };
type State = Map<string, unknown>;

const machine: StateMachine<State, Cmd, Q, Reply> = {
  init: () => new Map(),
  handleWrite(cmd, state) {
    if (cmd.op === 'boom') throw new Error('poison');
    state.set(cmd.key, cmd.value);
    return [{ ok: true, value: cmd.value }, state];
  },
  handleRead(q, state) {
    return state.has(q.key) ? { ok: true, value: state.get(q.key) } : { ok: false, error: 'key_not_found' };
  },
};

let started: Peer<Cmd, Q, Reply>[] = [];
afterEach(async () => {
  await Promise.all(started.map((p) => p.stop()));
  started = [];
});

async function cluster(names: string[], seed = 1) {
  const clock = new VirtualClock();
  const net = new TestNetwork(clock);
  const stores = new Map<string, TestLogStore>();
  const rand = seededRandom(seed);
  const peers = new Map<string, Peer<Cmd, Q, Reply>>();
  for (const name of names) {
    const store = new TestLogStore();
    stores.set(name, store);
    const p = await startPeer(machine, { name, log: store, transport: net.join(name), clock, random: rand });
    peers.set(name, p);
    started.push(p);
  }
  return { clock, net, stores, peers };
}

/** Expect a promise to reject with a RaftError of `code`. */
async function rejectsWith(p: Promise<unknown>, code: string): Promise<RaftError> {
  const err = await p.then(
    () => {
      throw new Error(`expected ${code}, but it resolved`);
    },
    (e: unknown) => e,
  );
  expect(RaftError.isInstance(err)).toBe(true);
  expect((err as RaftError).code).toBe(code);
  return err as RaftError;
}

describe('the Elixir walkthrough through the API', () => {
  it('configures, elects, writes, redirects, fails over', async () => {
    const { clock, peers } = await cluster(['a', 'b', 'c']);
    // Fresh peers know no one and never campaign.
    await clock.advance(2000);
    expect(leader('a')).toBeNull();
    expect(status('a').role).toBe('follower');
    expect(status('a').term).toBe(0);

    const configured = setConfiguration('a', ['a', 'b', 'c']);
    await clock.until(() => leader('a') !== null && leader('b') !== null && leader('c') !== null);
    expect(await configured).toEqual({ members: ['a', 'b', 'c'] });
    const l = leader('a')!;
    expect(leader('b')).toBe(l);

    const missing = read<Reply>(l, { op: 'get', key: 'k' });
    await clock.advance(50);
    expect(await missing).toEqual({ ok: false, error: 'key_not_found' });

    const w = write<Reply>(l, { op: 'set', key: 'k', value: 42 });
    await clock.advance(50);
    expect(await w).toEqual({ ok: true, value: 42 });
    const r = read<Reply>(l, { op: 'get', key: 'k' });
    await clock.advance(50);
    expect(await r).toEqual({ ok: true, value: 42 });

    const follower = ['a', 'b', 'c'].find((n) => n !== l)!;
    const err = await rejectsWith(write(follower, { op: 'set', key: 'k', value: 1 }), 'RAFT_NOT_LEADER');
    expect((err as unknown as { leader: string }).leader).toBe(l);

    await stopPeer(l);
    started = started.filter((p) => p.name !== l);
    await clock.until(() => {
      const nl = leader(follower);
      return nl !== null && nl !== l && status(nl).role === 'leader';
    });
    const nl = leader(follower)!;
    const r2 = read<Reply>(nl, { op: 'get', key: 'k' });
    await clock.advance(100);
    expect(await r2).toEqual({ ok: true, value: 42 });
    const entry = await getEntry(nl, 3);
    expect(entry?.type).toBe('command');
    expect(entry?.command).toEqual({ op: 'set', key: 'k', value: 42 });
    void peers;
  });

  it('a single-node cluster elects itself and serves reads and writes', async () => {
    const { clock } = await cluster(['solo']);
    const c = setConfiguration('solo', ['solo']);
    await clock.advance(10);
    expect(await c).toEqual({ members: ['solo'] });
    expect(leader('solo')).toBe('solo');
    const w = write<Reply>('solo', { op: 'set', key: 'x', value: 'y' });
    await clock.advance(1);
    expect(await w).toEqual({ ok: true, value: 'y' });
    const r = read<Reply>('solo', { op: 'get', key: 'x' });
    await clock.advance(1);
    expect(await r).toEqual({ ok: true, value: 'y' });
  });
});

describe('applying', () => {
  it('a long run of applies yields to timers every 10 ms, so heartbeats and requests are not starved', async () => {
    const clock = new VirtualClock();
    const net = new TestNetwork(clock);
    let applied = 0;
    // Each command costs 10 ms of (virtual) CPU: the apply loop must give timers a turn after each one.
    const slow: StateMachine<State, Cmd, Q, Reply> = {
      ...machine,
      handleWrite(cmd, state) {
        clock.pass(10);
        applied++;
        return machine.handleWrite(cmd, state);
      },
    };
    const p = await startPeer(slow, {
      name: 'solo',
      log: new TestLogStore(),
      transport: net.join('solo'),
      clock,
      random: seededRandom(1),
    });
    started.push(p);
    const configured = setConfiguration('solo', ['solo']);
    await clock.advance(10);
    await configured;
    // A timer that keeps re-arming itself while the writes apply, and notes what it saw.
    const seen: number[] = [];
    const probe = (): void => {
      seen.push(applied);
      if (applied < 50) clock.setTimeout(probe, 0);
    };
    const writes = Array.from({ length: 50 }, (_, i) => write('solo', { op: 'set', key: `k${i}`, value: i }));
    clock.setTimeout(probe, 0);
    await clock.advance(1000);
    expect(await Promise.all(writes)).toHaveLength(50);
    // The probe ran between every two applies (without the yield it runs only when
    // the microtask queue happens to drain, a handful of times over the 50).
    const during = seen.filter((n) => n > 0 && n < 50);
    expect(new Set(during).size).toBe(49);
  });
});

describe('errors', () => {
  it('unknown names reject with RAFT_NO_PEER', async () => {
    await rejectsWith(write('nobody', { op: 'set', key: 'k', value: 1 }), 'RAFT_NO_PEER');
    expect(() => leader('nobody')).toThrowError(expect.objectContaining({ code: 'RAFT_NO_PEER' }) as Error);
  });

  it('bad options throw RAFT_INVALID_ARGUMENT naming the option', async () => {
    const clock = new VirtualClock();
    const net = new TestNetwork(clock);
    const base = { name: 'x', log: new TestLogStore(), transport: net.join('x'), clock };
    for (const [opts, word] of [
      [{ ...base, electionTimeoutMs: [300, 150] }, 'electionTimeoutMs'],
      [{ ...base, heartbeatIntervalMs: 500 }, 'heartbeatIntervalMs'],
      [{ ...base, name: '' }, 'name'],
      [{ ...base, log: {} }, 'log'],
      [{ ...base, maxInflight: 0 }, 'maxInflight'],
      [{ ...base, maxCommandBytes: 0.5 }, 'maxCommandBytes'],
    ] as const) {
      const err = await rejectsWith(startPeer(machine, opts as never), 'RAFT_INVALID_ARGUMENT');
      expect(err.message).toContain(word);
    }
  });

  it('setConfiguration rejects empty and duplicate member lists', async () => {
    await cluster(['p']);
    await rejectsWith(setConfiguration('p', []), 'RAFT_INVALID_ARGUMENT');
    await rejectsWith(setConfiguration('p', ['p', 'p']), 'RAFT_INVALID_ARGUMENT');
    await rejectsWith(setConfiguration('p', ['q', 'r']), 'RAFT_INVALID_ARGUMENT');
  });

  it('writes with no leader reject with RAFT_ELECTION_IN_PROGRESS', async () => {
    await cluster(['p']);
    await rejectsWith(write('p', { op: 'set', key: 'k', value: 1 }), 'RAFT_ELECTION_IN_PROGRESS');
    await rejectsWith(read('p', { op: 'get', key: 'k' }), 'RAFT_ELECTION_IN_PROGRESS');
  });

  it('a write that cannot commit times out with RAFT_TIMEOUT', async () => {
    const { clock, net } = await cluster(['a', 'b', 'c']);
    const c = setConfiguration('a', ['a', 'b', 'c']);
    await clock.until(() => leader('b') !== null && leader('c') !== null);
    await c;
    const l = leader('a')!;
    net.isolate(
      l,
      ['a', 'b', 'c'].filter((n) => n !== l),
    );
    const w = write(l, { op: 'set', key: 'k', value: 1 }, { timeout: 100 });
    const settled = rejectsWith(w, 'RAFT_TIMEOUT');
    await clock.advance(100);
    await settled;
  });

  it('pending calls reject with RAFT_STOPPED when the peer stops, and calls after stop too', async () => {
    const { clock, net } = await cluster(['a', 'b', 'c']);
    const c = setConfiguration('a', ['a', 'b', 'c']);
    await clock.until(() => leader('b') !== null && leader('c') !== null);
    await c;
    const l = leader('a')!;
    net.isolate(
      l,
      ['a', 'b', 'c'].filter((n) => n !== l),
    );
    const p = started.find((x) => x.name === l)!;
    const w = p.write({ op: 'set', key: 'k', value: 1 });
    const rd = p.read({ op: 'get', key: 'k' });
    await clock.advance(5);
    const stopping = p.stop();
    await rejectsWith(w, 'RAFT_STOPPED');
    await rejectsWith(rd, 'RAFT_STOPPED');
    await stopping;
    await rejectsWith(p.write({ op: 'set', key: 'k', value: 1 }), 'RAFT_STOPPED');
    await rejectsWith(write(l, { op: 'set', key: 'k', value: 1 }), 'RAFT_NO_PEER');
  });

  it('a command larger than maxCommandBytes is refused before it is appended; the leader keeps leading', async () => {
    // Without the bound, one huge command becomes one AppendEntries larger than the
    // transport's largest message: the transport drops it and the leader loses its quorum.
    const clock = new VirtualClock();
    const net = new TestNetwork(clock);
    const names = ['a', 'b', 'c'];
    for (const name of names)
      started.push(
        await startPeer(machine, {
          name,
          log: new TestLogStore(),
          transport: net.join(name),
          clock,
          random: seededRandom(7),
          maxCommandBytes: 1024,
        }),
      );
    const c = setConfiguration('a', names);
    await clock.advance(3000);
    await c;
    const lead = leader('a')!;
    const before = status(lead);
    const err = await rejectsWith(
      write(lead, { op: 'set', key: 'big', value: 'x'.repeat(2000) }),
      'RAFT_INVALID_ARGUMENT',
    );
    expect(err.message).toContain('maxCommandBytes');
    expect(status(lead).lastLogIndex).toBe(before.lastLogIndex);
    const ok = write<Reply>(lead, { op: 'set', key: 'small', value: 'x'.repeat(500) });
    await clock.advance(50);
    expect(await ok).toEqual({ ok: true, value: 'x'.repeat(500) });
    expect(status(lead).term).toBe(before.term);
    expect(leader('a')).toBe(lead);
  });

  it('a command that throws in handleWrite changes nothing and does not wedge the peer', async () => {
    const { clock } = await cluster(['solo']);
    const c = setConfiguration('solo', ['solo']);
    await clock.advance(10);
    await c;
    const bad = write('solo', { op: 'boom' });
    const good = write<Reply>('solo', { op: 'set', key: 'after', value: 1 });
    const badSettled = rejectsWith(bad, 'RAFT_STATE_MACHINE_ERROR');
    await clock.advance(5);
    await badSettled;
    expect(await good).toEqual({ ok: true, value: 1 });
    expect(status('solo').metrics.stateMachineErrors).toBe(1);
  });

  it('malformed messages are dropped and counted, and the peer keeps working', async () => {
    const { clock, net } = await cluster(['solo']);
    const c = setConfiguration('solo', ['solo']);
    await clock.advance(10);
    await c;
    for (const junk of [
      null,
      42,
      'x',
      {},
      { type: 'AppendEntries' },
      { type: 'Nope', term: 1, from: 'z', to: 'solo' },
      { type: 'RequestVote', term: -1, from: 'z', to: 'solo' },
    ]) {
      net.inject('solo', junk);
    }
    expect(status('solo').metrics.messagesDropped).toBe(7);
    const w = write<Reply>('solo', { op: 'set', key: 'k', value: 2 });
    await clock.advance(5);
    expect(await w).toEqual({ ok: true, value: 2 });
  });
});

describe('fail-stop on a log store failure', () => {
  it('a failed durable write stops the peer: pending calls reject, status and whenStopped say why', async () => {
    const clock = new VirtualClock();
    const net = new TestNetwork(clock);
    const store = new TestLogStore();
    const p = await startPeer(machine, {
      name: 'fs',
      log: store,
      transport: net.join('fs'),
      clock,
      register: false,
    });
    started.push(p);
    const c = p.setConfiguration(['fs']);
    await clock.advance(10);
    await c;
    const disk = new Error('EIO: disk on fire');
    store.failNext = disk;
    const w = p.write({ op: 'set', key: 'k', value: 1 });
    const settled = rejectsWith(w, 'RAFT_STOPPED');
    await clock.advance(5);
    await settled;
    const reason = await p.whenStopped();
    expect(reason.code).toBe('RAFT_STOPPED');
    expect(reason.cause).toBe(disk);
    expect(p.status().stopped).toBe(true);
    // Nothing after the failure was acknowledged: the write never reached the store.
    expect(store.log.some((e) => e.type === 'command')).toBe(false);
  });
});

describe('fail-stop on a protocol failure', () => {
  it('an exception inside the protocol stops the peer, logs the cause, and rejects pending calls', async () => {
    const clock = new VirtualClock();
    const net = new TestNetwork(clock);
    const store = new TestLogStore();
    const errors: { obj: object; msg: string }[] = [];
    const noop = (): void => undefined;
    const logger = {
      debug: noop,
      info: noop,
      warn: noop,
      error: (obj: object, msg: string) => errors.push({ obj, msg }),
    };
    // The protocol's only outside dependency: make it throw on the next election timeout.
    const broken = new Error('broken protocol assertion');
    let fail = false;
    const rand = seededRandom(7);
    const random = (): number => {
      if (fail) throw broken;
      return rand();
    };
    const p = await startPeer(machine, {
      name: 'px',
      log: store,
      transport: net.join('px'),
      clock,
      random,
      logger,
      register: false,
    });
    started.push(p);
    // 'py' never runs: 'px' campaigns in vain, and the bootstrap entry stays pending.
    const c = p.setConfiguration(['px', 'py'], { timeout: 60_000 });
    const settled = rejectsWith(c, 'RAFT_STOPPED');
    await clock.advance(10);
    expect(p.status().role).toBe('candidate');
    const term = p.status().term;
    fail = true;
    // The next election timeout draws a new random timeout inside `tick`, which throws.
    await clock.until(() => p.status().stopped, 5_000);
    await settled;
    const reason = await p.whenStopped();
    expect(reason.code).toBe('RAFT_STOPPED');
    expect(reason.cause).toBe(broken);
    expect(
      errors.some((e) => (e.obj as { err?: unknown }).err === broken && /protocol threw/.test(e.msg)),
    ).toBe(true);
    // Not counted as a dropped message, and the half-changed term never reached the store.
    expect(p.status().metrics.messagesDropped).toBe(0);
    expect(store.hardState.term).toBe(term);
  });
});

describe('joining a running cluster', () => {
  it('a peer started with join: true refuses to bootstrap, and joins when the leader adds it', async () => {
    const clock = new VirtualClock();
    const net = new TestNetwork(clock);
    const rand = seededRandom(3);
    const start = (name: string, join?: boolean) =>
      startPeer(machine, {
        name,
        log: new TestLogStore(),
        transport: net.join(name),
        clock,
        random: rand,
        register: false,
        ...(join === undefined ? {} : { join }),
      });
    const a = await start('ja');
    const c = await start('jc', true);
    started.push(a, c);
    const boot = a.setConfiguration(['ja']);
    await clock.advance(10);
    expect(await boot).toEqual({ members: ['ja'] });
    // Called on the joining peer by mistake: refused, and it creates no cluster of its own.
    const err = await rejectsWith(c.setConfiguration(['jc']), 'RAFT_INVALID_ARGUMENT');
    expect(err.message).toMatch(/join: true/);
    await clock.advance(1000);
    expect(c.status()).toMatchObject({ term: 0, lastLogIndex: 0, role: 'follower' });
    // The leader adds it.
    const added = a.setConfiguration(['ja', 'jc']);
    await clock.until(() => c.status().configuration.members.length === 2);
    expect(await added).toEqual({ members: ['ja', 'jc'] });
    expect(c.leader()).toBe('ja');
    // Configured now, it is a follower of that cluster: a change must go to the leader.
    await rejectsWith(c.setConfiguration(['jc']), 'RAFT_NOT_LEADER');
  });

  it('join must be a boolean, snapshotWindow a positive integer', async () => {
    const bad = (name: string, extra: object) =>
      startPeer(machine, {
        name,
        log: new TestLogStore(),
        transport: new TestNetwork(new VirtualClock()).join(name),
        ...extra,
      });
    expect((await rejectsWith(bad('jx', { join: 'yes' }), 'RAFT_INVALID_ARGUMENT')).message).toMatch(/join/);
    expect((await rejectsWith(bad('jy', { snapshotWindow: 0 }), 'RAFT_INVALID_ARGUMENT')).message).toMatch(
      /snapshotWindow/,
    );
  });
});
