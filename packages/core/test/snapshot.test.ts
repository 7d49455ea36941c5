import { afterEach, describe, expect, it } from 'vitest';
import { inspectPeer, seededRandom, startPeer, status, type Peer, type StateMachine } from '../src/index.js';
import { TestLogStore, TestNetwork, VirtualClock } from './harness.js';

type Cmd = { op: 'set'; key: string; value: number };
type Q = { op: 'get'; key: string };
type State = Map<string, number>;

const enc = new TextEncoder();
const dec = new TextDecoder();
/** The state each peer incarnation holds, by name, to compare replicas. */
const states = new Map<string, () => State>();

function machine(): StateMachine<State, Cmd, Q, number | null> {
  return {
    init: (name) => {
      const s = new Map<string, number>();
      states.set(name, () => s);
      return s;
    },
    handleWrite(cmd, state) {
      state.set(cmd.key, cmd.value);
      return [cmd.value, state];
    },
    handleRead: (q, state) => state.get(q.key) ?? null,
    snapshot: (state) => enc.encode(JSON.stringify([...state])),
    restore: (bytes, name) => {
      const s = new Map<string, number>(JSON.parse(dec.decode(bytes)) as [string, number][]);
      states.set(name, () => s);
      return s;
    },
  };
}

let peers: Peer<Cmd, Q, number | null>[] = [];
afterEach(async () => {
  await Promise.all(peers.map((p) => p.stop()));
  peers = [];
  states.clear();
});

const opts = { snapshotEvery: 20, snapshotTrailingEntries: 5, snapshotChunkBytes: 64 };

async function cluster(names: string[]) {
  const clock = new VirtualClock();
  const net = new TestNetwork(clock);
  const stores = new Map<string, TestLogStore>();
  const rand = seededRandom(3);
  for (const name of names) {
    const store = new TestLogStore();
    stores.set(name, store);
    peers.push(
      await startPeer(machine(), {
        name,
        log: store,
        transport: net.join(name),
        clock,
        random: rand,
        register: false,
        ...opts,
      }),
    );
  }
  const boot = peers[0]!.setConfiguration(names);
  await clock.until(() => peers.every((p) => p.leader() !== null));
  await boot;
  return { clock, net, stores, rand };
}

function leaderPeer(): Peer<Cmd, Q, number | null> {
  const l = peers.find((p) => p.status().role === 'leader');
  if (!l) throw new Error('no leader');
  return l;
}

async function writeMany(clock: VirtualClock, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++) {
    const w = leaderPeer().write({ op: 'set', key: `k${i % 7}`, value: i });
    await clock.advance(5);
    await w;
  }
}

describe('§7 log compaction', () => {
  it('takes snapshots by the policy and compacts the log behind them, keeping trailing entries', async () => {
    const { clock, stores } = await cluster(['a', 'b', 'c']);
    await writeMany(clock, 0, 60);
    await clock.until(() => peers.every((p) => p.status().snapshotIndex >= 40));
    for (const p of peers) {
      const st = p.status();
      expect(st.metrics.snapshotsTaken).toBeGreaterThanOrEqual(2);
      // Compaction keeps snapshotTrailingEntries entries behind the snapshot.
      expect(st.firstLogIndex).toBe(st.snapshotIndex - 5 + 1);
      const store = stores.get(p.name)!;
      expect(store.snapshot?.meta.index).toBe(st.snapshotIndex);
      expect(store.offset).toBe(st.snapshotIndex - 5);
      expect(store.snapshot?.meta.configuration.members).toEqual(['a', 'b', 'c']);
    }
  });

  it('a restart loads the latest snapshot and replays only the tail', async () => {
    const { clock, stores, rand } = await cluster(['a', 'b', 'c']);
    await writeMany(clock, 0, 50);
    const victim = peers.find((p) => p.status().role !== 'leader')!;
    await clock.until(() => victim.status().snapshotIndex >= 40);
    const snapIndex = victim.status().snapshotIndex;
    await victim.stop();
    peers = peers.filter((p) => p !== victim);
    const store = stores.get(victim.name)!;
    const net2 = new TestNetwork(clock); // not connected: only what is on disk counts
    const again = await startPeer(machine(), {
      name: victim.name,
      log: store,
      transport: net2.join(victim.name),
      clock,
      random: rand,
      register: false,
      ...opts,
    });
    peers.push(again);
    const st = again.status();
    expect(st.lastApplied).toBe(snapIndex);
    expect(st.snapshotIndex).toBe(snapIndex);
    expect(inspectPeer(again).firstLogIndex).toBeGreaterThan(1);
    expect(states.get(victim.name)!().get('k0')).toBeDefined();
  });

  it('InstallSnapshot catches up a follower behind the compaction point, in chunks', async () => {
    const { clock, net } = await cluster(['a', 'b', 'c']);
    const lagging = peers.find((p) => p.status().role !== 'leader')!;
    net.isolate(
      lagging.name,
      ['a', 'b', 'c'].filter((n) => n !== lagging.name),
    );
    await writeMany(clock, 0, 80);
    const l = leaderPeer();
    await clock.until(() => l.status().firstLogIndex > lagging.status().lastLogIndex + 1);
    net.heal();
    await clock.until(() => lagging.status().lastApplied === l.status().lastApplied, 20_000);
    expect(lagging.status().metrics.snapshotsInstalled).toBeGreaterThanOrEqual(1);
    expect([...states.get(lagging.name)!()].sort()).toEqual([...states.get(l.name)!()].sort());
    // It goes on replicating normally afterwards.
    await writeMany(clock, 80, 3);
    await clock.until(() => lagging.status().lastApplied === l.status().lastApplied);
    expect(states.get(lagging.name)!().get(`k${82 % 7}`)).toBe(82);
    expect(status(l).configuration.members).toEqual(['a', 'b', 'c']);
  });
});

describe('a received snapshot can only be refused, never break the peer', () => {
  it('maxSnapshotBytes must be a positive integer: RAFT_INVALID_ARGUMENT naming it', async () => {
    const clock = new VirtualClock();
    const net = new TestNetwork(clock);
    for (const bad of [0, -1, 1.5, '1'] as unknown[]) {
      const started = startPeer(machine(), {
        name: 'x',
        log: new TestLogStore(),
        transport: net.join('x'),
        clock,
        register: false,
        maxSnapshotBytes: bad as number,
      });
      await expect(started).rejects.toMatchObject({ code: 'RAFT_INVALID_ARGUMENT' });
      await expect(started).rejects.toThrow(/option maxSnapshotBytes/);
    }
  });

  it('a transfer growing past maxSnapshotBytes is dropped with its memory, counted, and the peer goes on', async () => {
    const clock = new VirtualClock();
    const net = new TestNetwork(clock);
    const p = await startPeer(machine(), {
      name: 'f',
      log: new TestLogStore(),
      transport: net.join('f'),
      clock,
      register: false,
      maxSnapshotBytes: 1000,
    });
    peers.push(p);
    const chunk = (offset: number, bytes: number, done = false) => ({
      type: 'InstallSnapshot',
      term: 1,
      from: 'evil',
      to: 'f',
      meta: { index: 100, term: 1, configuration: { members: ['evil', 'f'] } },
      offset,
      data: new Uint8Array(bytes),
      done,
      seq: 1,
    });
    net.inject('f', chunk(0, 600));
    await clock.advance(1);
    expect(inspectPeer(p).snapshotBytesReceiving).toBe(600);
    net.inject('f', chunk(600, 600));
    await clock.advance(1);
    expect(inspectPeer(p).snapshotBytesReceiving).toBe(0);
    expect(p.status().metrics.messagesDroppedByReason.snapshot_too_large).toBe(1);
    // The rest of that transfer finds nothing to continue; no snapshot was installed.
    net.inject('f', chunk(1200, 10, true));
    await clock.advance(1);
    expect(p.status().snapshotIndex).toBe(0);
    expect(p.status().stopped).toBe(false);
    // A transfer left half done is freed when the term moves on.
    net.inject('f', chunk(0, 600));
    await clock.advance(1);
    expect(inspectPeer(p).snapshotBytesReceiving).toBe(600);
    net.inject('f', {
      ...chunk(0, 0),
      type: 'AppendEntriesResponse',
      term: 2,
      success: false,
      matchIndex: 0,
      prevLogIndex: 0,
      conflictIndex: 0,
      conflictTerm: 0,
    });
    await clock.advance(1);
    expect(p.status().term).toBe(2);
    expect(inspectPeer(p).snapshotBytesReceiving).toBe(0);
  });

  it('a snapshot the state machine cannot restore is refused before it is persisted; the peer runs on and restarts', async () => {
    const poisoned = new Set<string>();
    const fragile = (): StateMachine<State, Cmd, Q, number | null> => {
      const m = machine();
      return {
        ...m,
        restore: (bytes, name) => {
          if (poisoned.has(name) && dec.decode(bytes).includes('poison')) throw new Error('cannot restore');
          return m.restore!(bytes, name);
        },
      };
    };
    const clock = new VirtualClock();
    const net = new TestNetwork(clock);
    const stores = new Map<string, TestLogStore>();
    const rand = seededRandom(5);
    const start = (name: string, store: TestLogStore, transport = net.join(name)) =>
      startPeer(fragile(), { name, log: store, transport, clock, random: rand, register: false, ...opts });
    for (const name of ['a', 'b', 'c']) {
      stores.set(name, new TestLogStore());
      peers.push(await start(name, stores.get(name)!));
    }
    const boot = peers[0]!.setConfiguration(['a', 'b', 'c']);
    await clock.until(() => peers.every((p) => p.leader() !== null));
    await boot;
    await writeMany(clock, 0, 3);
    const lagging = peers.find((p) => p.status().role !== 'leader')!;
    const others = ['a', 'b', 'c'].filter((n) => n !== lagging.name);
    await clock.until(() => lagging.status().lastApplied === leaderPeer().status().lastApplied);
    poisoned.add(lagging.name);
    net.isolate(lagging.name, others);
    const w = leaderPeer().write({ op: 'set', key: 'poison', value: 1 });
    await clock.advance(5);
    await w;
    await writeMany(clock, 10, 60);
    const l = leaderPeer();
    await clock.until(() => l.status().firstLogIndex > lagging.status().lastLogIndex + 1);
    const store = stores.get(lagging.name)!;
    const before = {
      status: lagging.status(),
      log: store.log.map((e) => e.index),
      hardState: { ...store.hardState },
      state: [...states.get(lagging.name)!()],
    };
    net.heal();
    await clock.until(
      () => (lagging.status().metrics.messagesDroppedByReason.snapshot_restore_failed ?? 0) >= 2,
    );
    // Nothing changed: not the store (no snapshot written), not the state machine, not the log.
    expect(store.snapshot).toBeUndefined();
    expect(store.log.map((e) => e.index)).toEqual(before.log);
    expect([...states.get(lagging.name)!()]).toEqual(before.state);
    const now = lagging.status();
    expect(now.stopped).toBe(false);
    expect(now.lastApplied).toBe(before.status.lastApplied);
    expect(now.snapshotIndex).toBe(0);
    expect(now.lastLogIndex).toBe(before.status.lastLogIndex);
    // The rest of the cluster goes on.
    await writeMany(clock, 100, 2);
    // It restarts from its store, unharmed.
    await lagging.stop();
    peers = peers.filter((p) => p !== lagging);
    const again = await start(lagging.name, store, new TestNetwork(clock).join(lagging.name));
    peers.push(again);
    expect(again.status().lastApplied).toBe(0);
    expect(again.status().lastLogIndex).toBe(before.status.lastLogIndex);
    // Once its machine can restore the snapshot, it catches up from the leader.
    await again.stop();
    peers = peers.filter((p) => p !== again);
    poisoned.clear();
    const healed = await start(lagging.name, store);
    peers.push(healed);
    await clock.until(() => healed.status().lastApplied === leaderPeer().status().lastApplied, 20_000);
    expect(healed.status().metrics.snapshotsInstalled).toBe(1);
    expect(states.get(lagging.name)!().get('poison')).toBe(1);
  });
});
