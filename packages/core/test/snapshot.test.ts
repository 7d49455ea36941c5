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
