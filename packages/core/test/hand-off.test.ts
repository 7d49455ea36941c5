/**
 * stopPeer with handOff (issue 13): a stopping leader hands leadership to its most up-to-date
 * voter, so the cluster has a leader again without waiting for an election timeout.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { leader, seededRandom, startPeer, status, type Peer, type StateMachine } from '../src/index.js';
import { TestLogStore, TestNetwork, VirtualClock } from './harness.js';

const machine: StateMachine<number, number, null, number> = {
  init: () => 0,
  handleWrite: (n, s) => [s + n, s + n],
  handleRead: (_q, s) => s,
};

let started: Peer<number, null, number>[] = [];
afterEach(async () => {
  await Promise.all(started.map((p) => p.stop()));
  started = [];
});

async function cluster(names: string[]) {
  const clock = new VirtualClock();
  const net = new TestNetwork(clock);
  const rand = seededRandom(13);
  for (const name of names) {
    const p = await startPeer(machine, {
      name,
      log: new TestLogStore(),
      transport: net.join(name),
      clock,
      random: rand,
      electionTimeoutMs: [1000, 2000],
      heartbeatIntervalMs: 100,
    });
    started.push(p);
  }
  const first = started[0]!;
  const configured = first.setConfiguration(names);
  await clock.until(() => names.every((n) => leader(n) !== null));
  await configured;
  return { clock };
}

describe('stopPeer with handOff', () => {
  it('a stopping leader hands over to a voter, well within one election timeout', async () => {
    const { clock } = await cluster(['a', 'b', 'c']);
    const l = leader('a')!;
    const old = started.find((p) => p.name === l)!;
    let answered: number | null = null;
    void old.write(5).then((r) => (answered = r));
    await clock.until(() => answered !== null);
    expect(answered).toBe(5);
    const term = status(l).term;
    const rest = started.filter((p) => p !== old);
    const t0 = clock.now();
    const stopping = old.stop({ handOff: true });
    // The hand-off completes before the peer stops: another voter leads in the next term.
    await clock.until(() => rest.some((p) => p.status().role === 'leader'), 5000, 5);
    const elapsed = clock.now() - t0;
    await clock.until(() => old.status().stopped, 5000, 5);
    await stopping;
    started = rest;
    const next = rest.find((p) => p.status().role === 'leader')!;
    expect(next.status().term).toBe(term + 1);
    // An election would have waited at least the minimum election timeout (1000 ms) after the
    // last heartbeat; the hand-off needs a few message delays.
    expect(elapsed).toBeLessThan(500);
    // The new leader serves writes, on top of the state the old one acknowledged.
    let after: number | null = null;
    void next.write(1).then((r) => (after = r));
    await clock.until(() => after !== null);
    expect(after).toBe(6);
  });

  it('without handOff, the others wait for an election timeout', async () => {
    const { clock } = await cluster(['a', 'b', 'c']);
    const l = leader('a')!;
    const old = started.find((p) => p.name === l)!;
    const rest = started.filter((p) => p !== old);
    const t0 = clock.now();
    await old.stop();
    started = rest;
    await clock.until(() => rest.some((p) => p.status().role === 'leader'), 10_000, 5);
    // At least the minimum election timeout (1000 ms) after the last heartbeat (100 ms apart).
    expect(clock.now() - t0).toBeGreaterThanOrEqual(900);
  });

  it('a follower, or a sole voter, just stops', async () => {
    const { clock } = await cluster(['a', 'b', 'c']);
    const f = started.find((p) => p.status().role !== 'leader')!;
    const stopping = f.stop({ handOff: true });
    await clock.advance(10);
    await stopping;
    expect(f.status().stopped).toBe(true);
    started = started.filter((p) => p !== f);
  });
});

describe('a leader that removes itself', () => {
  it('hands over to the most up-to-date remaining voter as it steps down: no election timeout without a leader', async () => {
    const { clock } = await cluster(['a', 'b', 'c']);
    const l = leader('a')!;
    const old = started.find((p) => p.name === l)!;
    const rest = started.filter((p) => p !== old);
    const term = status(l).term;
    let removed = false;
    void old.setConfiguration(rest.map((p) => p.name)).then(() => (removed = true));
    await clock.until(() => removed, 10_000, 5);
    const t0 = clock.now();
    await clock.until(() => rest.some((p) => p.status().role === 'leader'), 10_000, 5);
    const next = rest.find((p) => p.status().role === 'leader')!;
    expect(next.status().term).toBe(term + 1);
    // Without the hand-off the remaining voters wait for their election timeout
    // (at least 1000 ms after the last heartbeat); with it, a few message delays.
    expect(clock.now() - t0).toBeLessThan(500);
    expect(next.status().configuration.members).not.toContain(l);
    let after: number | null = null;
    void next.write(2).then((r) => (after = r));
    await clock.until(() => after !== null, 10_000, 5);
    expect(after).toBe(2);
  });
});
