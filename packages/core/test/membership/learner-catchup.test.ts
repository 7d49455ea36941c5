/**
 * advanceChange promotes learners only when, at the moment it runs, every learner's
 * matchIndex >= the leader's commitIndex. Under steady load a new peer with a little more
 * latency than the voters (another zone) is always a few entries behind the commit index
 * at every acknowledgement and every commit, so the change never leaves the learner phase
 * and setConfiguration times out, although the learner is healthy and keeps up.
 * (Dissertation §4.2.1 promotes after a replication round that completes within an
 * election timeout, exactly to avoid this.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startCluster, watch, type Setup } from './runtime-kit.js';

let s: Setup | undefined;
afterEach(async () => {
  await s?.stopAll();
  s = undefined;
});

describe('membership: a learner under steady load', () => {
  it('a healthy learner 2 ms farther away than the voters is promoted while writes keep coming', async () => {
    s = await startCluster(['a', 'b', 'c'], ['d']);
    const { clock, net } = s;
    // One-way latency: 1 ms between the voters, 3 ms to and from d.
    net.latency = (from, to) => (from === 'd' || to === 'd' ? 3 : 1);
    const l = s.leader();
    const change = watch(l.setConfiguration(['a', 'b', 'c', 'd'], { timeout: 2500 }));
    // A modest steady load: one write every 2 ms for 3 s of virtual time.
    let value = 0;
    const writes: ReturnType<typeof watch>[] = [];
    for (let t = 0; t < 3000 && change.outcome() === 'pending'; t += 2) {
      writes.push(watch(l.write({ op: 'set', key: 'k', value: value++ })));
      await clock.advance(2);
    }
    await clock.advance(50);
    // d kept up the whole time: it is only a few entries behind the leader.
    const d = s.peers.get('d')!.status();
    expect(l.status().lastLogIndex - d.lastLogIndex).toBeLessThan(10);
    expect(writes.every((w) => w.outcome() === 'resolved')).toBe(true);
    expect(change.outcome()).toBe('resolved');
    expect(l.status().configuration).toEqual({ members: ['a', 'b', 'c', 'd'] });
  });
});
