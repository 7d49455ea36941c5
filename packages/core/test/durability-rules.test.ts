/**
 * The runtime's durability rules (issue 19), through the public API only: a log store
 * whose writes complete when the test says so, and a transport that records what leaves.
 *
 * - Persist before you promise: a vote, and an acknowledgement of entry i, leave only
 *   after the write holding that vote (and its term), or entry i, has completed.
 * - The hard state is written with the vote, so a restarted peer does not vote twice.
 * - A restart from a snapshot and a log tail applies each command exactly once, and so
 *   does a restart that replays the whole log.
 * - A leader cut off from the majority never answers a read from its stale state.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  read,
  seededRandom,
  setConfiguration,
  startPeer,
  write,
  type LogWrite,
  type Peer,
  type RaftMessage,
  type StateMachine,
  type Transport,
} from '../src/index.js';
import { TestLogStore, TestNetwork, VirtualClock, flush } from './harness.js';
import { appendEntries, command, configEntry, requestVote } from './protocol-driver.js';

/** A log store whose writes land (and resolve) only when the test releases them. */
class DelayedStore extends TestLogStore {
  pending: { batch: LogWrite; done: () => void }[] = [];
  override write(batch: LogWrite): Promise<void> {
    return new Promise((resolve) => {
      this.pending.push({
        batch,
        done: () => {
          void super.write(batch).then(resolve);
        },
      });
    });
  }
  /** Completes every write issued so far. */
  async release(): Promise<void> {
    while (this.pending.length > 0) {
      for (const w of this.pending.splice(0)) w.done();
      await flush();
    }
  }
  /** The last index durable in the store. */
  get durableLast(): number {
    return this.offset + this.log.length;
  }
}

/** A transport played by the test: it records every message sent, with the store's durable state at that moment. */
function recordingTransport(store: DelayedStore): {
  transport: Transport;
  sent: { m: RaftMessage; votedFor: string | null; term: number; durableLast: number }[];
  deliver: (m: RaftMessage) => void;
} {
  let handler: ((m: RaftMessage) => void) | null = null;
  const sent: { m: RaftMessage; votedFor: string | null; term: number; durableLast: number }[] = [];
  return {
    transport: {
      start: async (onMessage) => {
        handler = onMessage;
      },
      send: (_to, m) => {
        sent.push({
          m: structuredClone(m),
          votedFor: store.hardState.votedFor,
          term: store.hardState.term,
          durableLast: store.durableLast,
        });
      },
      close: async () => {
        handler = null;
      },
    },
    sent,
    deliver: (m) => handler?.(m),
  };
}

type Counter = string[];
/** Records every command applied, in order: a command applied twice shows twice. */
const recorder: StateMachine<Counter, string, null, Counter> = {
  init: () => [],
  handleWrite: (cmd, state) => {
    const next = [...state, cmd];
    return [next, next];
  },
  handleRead: (_q, state) => state,
  snapshot: (state) => new TextEncoder().encode(JSON.stringify(state)),
  restore: (data) => JSON.parse(new TextDecoder().decode(data)) as Counter,
};

let running: Peer<unknown, unknown, unknown>[] = [];
afterEach(async () => {
  await Promise.all(running.map((p) => p.stop()));
  running = [];
});

async function lonePeer(store: DelayedStore) {
  const clock = new VirtualClock();
  const t = recordingTransport(store);
  const peer = await startPeer(recorder, {
    name: 'n1',
    log: store,
    transport: t.transport,
    clock,
    random: seededRandom(1),
    register: false,
  });
  running.push(peer);
  return { peer, clock, ...t };
}

/** A follower n1 of [n1,n2,n3] holding the configuration at index 1, term 1. */
function followerStore(): DelayedStore {
  const store = new DelayedStore();
  store.log = [configEntry(1, 1, ['n1', 'n2', 'n3'])];
  store.hardState = { term: 1, votedFor: null };
  return store;
}

describe('persist before you promise (runtime)', () => {
  it('a vote leaves only after the write holding it completes, and that write holds the vote', async () => {
    const store = followerStore();
    const { deliver, sent, peer } = await lonePeer(store);
    deliver(requestVote({ term: 2, from: 'n2', to: 'n1', lastLogIndex: 1, lastLogTerm: 1, preVote: false }));
    await flush();
    expect(store.pending.length).toBeGreaterThan(0);
    expect(sent.filter((s) => s.m.type === 'RequestVoteResponse')).toEqual([]);
    await store.release();
    const votes = sent.filter((s) => s.m.type === 'RequestVoteResponse');
    expect(votes.map((s) => s.m)).toMatchObject([{ term: 2, voteGranted: true, to: 'n2' }]);
    // When it left, the disk already held the term and the vote.
    expect(votes[0]).toMatchObject({ term: 2, votedFor: 'n2' });
    expect(store.hardState).toEqual({ term: 2, votedFor: 'n2' });

    // Restarted from that disk, it does not vote for another candidate in term 2.
    await peer.stop();
    running = [];
    const again = await lonePeer(store);
    again.deliver(
      requestVote({ term: 2, from: 'n3', to: 'n1', lastLogIndex: 1, lastLogTerm: 1, preVote: false }),
    );
    await flush();
    await store.release();
    const answers = again.sent.filter((s) => s.m.type === 'RequestVoteResponse').map((s) => s.m);
    expect(answers).toMatchObject([{ voteGranted: false, to: 'n3' }]);
  });

  it('an acknowledgement of entry i leaves only after the write holding entry i completes', async () => {
    const store = followerStore();
    const { deliver, sent } = await lonePeer(store);
    // A heartbeat of the leader of term 2 first (its term is written and acknowledged).
    deliver(appendEntries({ term: 2, from: 'n2', to: 'n1', prevLogIndex: 1, prevLogTerm: 1, seq: 1 }));
    await flush();
    await store.release();
    sent.length = 0;
    // Then entries 2 and 3: no new term, only the entries to write.
    deliver(
      appendEntries({
        term: 2,
        from: 'n2',
        to: 'n1',
        prevLogIndex: 1,
        prevLogTerm: 1,
        entries: [command(2, 2), command(3, 2)],
        leaderCommit: 1,
        seq: 2,
      }),
    );
    await flush();
    expect(store.pending.length).toBeGreaterThan(0);
    const acks = () =>
      sent.filter((s) => s.m.type === 'AppendEntriesResponse' && s.m.success && s.m.matchIndex >= 2);
    expect(acks()).toEqual([]);
    await store.release();
    expect(acks().length).toBeGreaterThan(0);
    // Every acknowledgement of entry i left when the disk held entry i.
    for (const s of sent)
      if (s.m.type === 'AppendEntriesResponse' && s.m.success)
        expect(s.durableLast).toBeGreaterThanOrEqual(s.m.matchIndex);
  });
});

describe('restarts apply each command exactly once', () => {
  async function singleVoter(store: TestLogStore, snapshotEvery: number) {
    const clock = new VirtualClock();
    const net = new TestNetwork(clock);
    const peer = await startPeer(recorder, {
      name: 'solo',
      log: store,
      transport: net.join('solo'),
      clock,
      random: seededRandom(7),
      snapshotEvery,
      snapshotTrailingEntries: 0,
      register: false,
    });
    running.push(peer);
    return { peer, clock };
  }

  async function writeAll(peer: Peer<string, null, Counter>, clock: VirtualClock, cmds: string[]) {
    for (const c of cmds) {
      const p = write(peer, c);
      await clock.advance(50);
      await p;
    }
  }

  async function runScenario(snapshotEvery: number) {
    const store = new TestLogStore();
    const first = await singleVoter(store, snapshotEvery);
    const boot = setConfiguration(first.peer, ['solo']);
    await first.clock.advance(100);
    await boot;
    await first.clock.until(() => first.peer.leader() === 'solo');
    await writeAll(first.peer, first.clock, ['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7']);
    await first.peer.stop();
    running = [];
    const second = await singleVoter(store, snapshotEvery);
    await second.clock.until(() => second.peer.leader() === 'solo');
    await writeAll(second.peer, second.clock, ['c8']);
    const state = read(second.peer, null);
    await second.clock.advance(50);
    return { store, state: await state };
  }

  it('from a snapshot and a log tail', async () => {
    const { store, state } = await runScenario(4);
    // The restart did load a snapshot, and entries after it.
    expect(store.snapshot).toBeDefined();
    expect(store.offset).toBeGreaterThan(0);
    expect(store.snapshot!.meta.index).toBeLessThan(store.offset + store.log.length);
    expect(state).toEqual(['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8']);
  });

  it('replaying the whole log, without snapshots', async () => {
    const { store, state } = await runScenario(0);
    expect(store.snapshot).toBeUndefined();
    expect(state).toEqual(['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8']);
  });
});

describe('reads on a leader cut off from the majority', () => {
  type KV = Map<string, number>;
  const kv: StateMachine<KV, { k: string; v: number }, string, number | undefined> = {
    init: () => new Map(),
    handleWrite: (c, s) => {
      const next = new Map(s).set(c.k, c.v);
      return [c.v, next];
    },
    handleRead: (k, s) => s.get(k),
  };

  it('never answers from its stale state', async () => {
    const clock = new VirtualClock();
    const net = new TestNetwork(clock);
    const names = ['r1', 'r2', 'r3'];
    const rand = seededRandom(3);
    const peers = new Map<string, Peer<{ k: string; v: number }, string, number | undefined>>();
    for (const name of names) {
      // No check-quorum: the cut-off leader keeps believing it leads.
      const p = await startPeer(kv, {
        name,
        log: new TestLogStore(),
        transport: net.join(name),
        clock,
        random: rand,
        checkQuorum: false,
        register: false,
      });
      peers.set(name, p);
      running.push(p);
    }
    const boot = setConfiguration(peers.get('r1')!, names);
    await clock.advance(50);
    await boot;
    await clock.until(() => peers.get('r1')!.leader() === 'r1');
    const w1 = write(peers.get('r1')!, { k: 'x', v: 1 });
    await clock.advance(50);
    await w1;
    net.isolate('r1', ['r2', 'r3']);
    await clock.until(() => ['r2', 'r3'].some((n) => peers.get(n)!.leader() === n));
    const next = ['r2', 'r3'].find((n) => peers.get(n)!.leader() === n)!;
    const w2 = write(peers.get(next)!, { k: 'x', v: 2 });
    await clock.advance(50);
    await w2;
    expect(peers.get('r1')!.leader()).toBe('r1');
    const stale = read(peers.get('r1')!, 'x', { timeout: 500 }).then(
      (value) => ({ value }),
      (err: unknown) => ({ err }),
    );
    await clock.advance(1000);
    expect(await stale).toHaveProperty('err');
  });
});
