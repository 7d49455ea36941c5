import { afterEach, describe, expect, it } from 'vitest';
import {
  LATENCY_BUCKETS_SECONDS,
  leader,
  metrics,
  seededRandom,
  setConfiguration,
  startPeer,
  status,
  transferLeadership,
  write,
  read,
  type Peer,
  type StateMachine,
} from '../src/index.js';
import { eventLoopDelay, FixedHistogram, watchEventLoop } from '../src/runtime/metrics.js';
import { TestLogStore, TestNetwork, VirtualClock } from './harness.js';

type Cmd = { key: string; value: number };
type State = Map<string, number>;
const machine: StateMachine<State, Cmd, string, number | null> = {
  init: () => new Map(),
  handleWrite(cmd, state) {
    state.set(cmd.key, cmd.value);
    return [cmd.value, state];
  },
  handleRead: (key, state) => state.get(key) ?? null,
  snapshot: (state) => new TextEncoder().encode(JSON.stringify([...state])),
  restore: (data) => new Map(JSON.parse(new TextDecoder().decode(data)) as [string, number][]),
};

let started: Peer<Cmd, string, number | null>[] = [];
afterEach(async () => {
  await Promise.all(started.map((p) => p.stop()));
  started = [];
});

async function cluster(names: string[], extra: { snapshotEvery?: number } = {}) {
  const clock = new VirtualClock();
  const net = new TestNetwork(clock);
  const rand = seededRandom(7);
  for (const name of names) {
    started.push(
      await startPeer(machine, {
        name,
        log: new TestLogStore(),
        transport: net.join(name),
        clock,
        random: rand,
        ...extra,
      }),
    );
  }
  await clock.advance(10);
  const configured = setConfiguration(names[0]!, names);
  await clock.until(() => names.every((n) => leader(n) !== null));
  await configured;
  return { clock, net, leader: leader(names[0]!)! };
}

describe('FixedHistogram', () => {
  it('counts cumulatively per bound, like a Prometheus histogram', () => {
    const h = new FixedHistogram([1, 5, 10]);
    for (const v of [0.5, 1, 3, 7, 12]) h.observe(v);
    expect(h.figures()).toEqual({ bounds: [1, 5, 10], counts: [2, 3, 4], count: 5, sum: 23.5 });
  });
});

describe('metrics(peer)', () => {
  it('counts elections, leader changes, calls and their latency, log-store writes', async () => {
    const { clock, leader: l } = await cluster(['a', 'b', 'c']);
    const follower = ['a', 'b', 'c'].find((n) => n !== l)!;
    const writes = [1, 2, 3].map((v) => write(l, { key: 'k', value: v }));
    await clock.advance(20);
    await Promise.all(writes);
    const r = read(l, 'k');
    await clock.advance(20);
    expect(await r).toBe(3);
    await expect(write(follower, { key: 'k', value: 9 })).rejects.toThrow();

    const m = metrics(l);
    expect(m.role).toBe('leader');
    expect(m.leader).toBe(l);
    expect(m.electionsWon).toBe(1);
    expect(m.electionsStarted).toBeGreaterThanOrEqual(1);
    expect(m.leaderChanges).toBe(1);
    expect(m.proposals.total).toBe(3);
    expect(m.proposals.failed).toBe(0);
    expect(m.proposals.latencySeconds.count).toBe(3);
    expect(m.proposals.latencySeconds.bounds).toEqual(LATENCY_BUCKETS_SECONDS);
    // On virtual time a write takes a few ms of network latency: more than 0, under 1 s.
    expect(m.proposals.latencySeconds.sum).toBeGreaterThan(0);
    expect(m.proposals.latencySeconds.counts.at(-1)).toBe(3);
    expect(m.reads).toMatchObject({ total: 1, failed: 0 });
    expect(m.reads.latencySeconds.count).toBe(1);
    expect(m.commitIndex).toBe(m.lastLogIndex);
    expect(m.logStore.writes).toBeGreaterThan(0);
    expect(m.logStore.writeSeconds.count).toBe(m.logStore.writes);
    // The three writes were proposed in one turn: one write carried all three entries.
    expect(m.logStore.entriesPerWrite.sum).toBe(m.lastLogIndex);
    const kinds = m.events.map((e) => e.kind);
    expect(kinds).toContain('election');
    expect(kinds).toContain('leader');
    expect(kinds).toContain('configuration');

    const f = metrics(follower);
    expect(f.role).toBe('follower');
    expect(f.followers).toEqual([]);
    expect(f.proposals).toMatchObject({ total: 1, failed: 1 });
    expect(f.proposals.latencySeconds.count).toBe(0);
    expect(f.electionsWon).toBe(0);
    expect(f.leaderChanges).toBe(1);
  });

  it('reports each follower’s lag in entries and time since its last answer', async () => {
    const { clock, net, leader: l } = await cluster(['a', 'b', 'c']);
    const [b, c] = ['a', 'b', 'c'].filter((n) => n !== l) as [string, string];
    await clock.advance(200);
    let fs = metrics(l).followers;
    expect(fs.map((x) => x.peer)).toEqual([b, c].sort());
    for (const x of fs) {
      expect(x.lagEntries).toBe(0);
      expect(x.learner).toBe(false);
      expect(x.state).toBe('replicate');
      expect(x.msSinceAck).not.toBeNull();
      // Heartbeats are answered every interval.
      expect(x.msSinceAck!).toBeLessThan(200);
      expect(x.maxInflight).toBeGreaterThan(0);
    }
    // Cut one follower off: it falls behind and stops answering.
    net.isolate(c, [l, b]);
    const writes = [1, 2, 3, 4].map((v) => write(l, { key: 'k', value: v }));
    await clock.advance(20);
    await Promise.all(writes);
    await clock.advance(500);
    fs = metrics(l).followers;
    const lagging = fs.find((x) => x.peer === c)!;
    const healthy = fs.find((x) => x.peer === b)!;
    expect(lagging.lagEntries).toBe(4);
    expect(lagging.msSinceAck!).toBeGreaterThanOrEqual(500);
    expect(healthy.lagEntries).toBe(0);
    expect(healthy.msSinceAck!).toBeLessThan(200);
    expect(lagging.inflight).toBeLessThanOrEqual(lagging.maxInflight);
    net.heal();
    await clock.until(() => metrics(l).followers.every((x) => x.lagEntries === 0));
  });

  it('records snapshots taken and a leadership transfer in the timeline', async () => {
    const { clock, leader: l } = await cluster(['a', 'b', 'c'], { snapshotEvery: 5 });
    for (let i = 0; i < 8; i++) {
      const w = write(l, { key: `k${i}`, value: i });
      await clock.advance(5);
      await w;
    }
    await clock.until(() => metrics(l).snapshots.taken >= 1);
    const m = metrics(l);
    expect(m.snapshots.bytesTaken).toBeGreaterThan(0);
    expect(m.snapshots.durationSeconds.count).toBe(m.snapshots.taken);
    const snap = m.events.find((e) => e.kind === 'snapshot');
    expect(snap).toMatchObject({ kind: 'snapshot', source: 'taken' });

    const target = ['a', 'b', 'c'].find((n) => n !== l)!;
    const t = transferLeadership(l, target);
    await clock.until(() => leader(l) === target);
    await t;
    const events = metrics(l).events;
    expect(events).toContainEqual(expect.objectContaining({ kind: 'transfer', from: l, to: target }));
    expect(events.at(-1)).toMatchObject({ kind: 'leader', leader: target });
    expect(metrics(target).electionsWon).toBe(1);
    expect(metrics(l).leaderChanges).toBe(2);
    // Ages on the peer's clock.
    for (const e of events) expect(e.at).toBeLessThanOrEqual(metrics(l).now);
  });
});

describe('event-loop delay', () => {
  it('is measured per window while a user holds the monitor, and in status()', async () => {
    // No peer runs here (afterEach stopped them): this call starts the process's monitor.
    const release = watchEventLoop(20);
    try {
      const deadline = Date.now() + 5000;
      while (eventLoopDelay() === null) {
        if (Date.now() > deadline) throw new Error('no event-loop window within 5 s');
        await new Promise((r) => setImmediate(r));
      }
      const d = eventLoopDelay()!;
      expect(d.windowMs).toBe(20);
      expect(d.maxMs).toBeGreaterThanOrEqual(d.p50Ms);
      expect(d.meanMs).toBeGreaterThan(0);
    } finally {
      release();
    }
    expect(eventLoopDelay()).toBeNull();
  });

  it('status() carries the figure of the process (null before the first window)', async () => {
    await cluster(['solo']);
    const s = status('solo');
    expect(s).toHaveProperty('eventLoopDelay');
    expect(s.eventLoopDelay === null || typeof s.eventLoopDelay.p99Ms === 'number').toBe(true);
  });
});
