/**
 * A follower removed by a change never learns it was removed, even when it is healthy and
 * connected: the leader appends the final configuration, and appendAsLeader ->
 * syncProgress drops the removed peer's progress *before* the entry is sent, so the final
 * entry never goes to it. The removed peer keeps the joint configuration, in which it is
 * an (outgoing) voter, so `promotable()` stays true and it campaigns forever. With the
 * defaults (pre-vote, check-quorum) that costs messages and a status showing a candidate
 * of a stale joint configuration; with pre-vote and check-quorum off (the options allow
 * it) it deposes the leader of the new cluster every election timeout: the disruption
 * of §4.2.3 that the paper (§6) rules out, since here the server could have known.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startCluster, watch, type Setup } from './runtime-kit.js';
import type { PeerOptions } from '../../src/index.js';

let s: Setup | undefined;
afterEach(async () => {
  await s?.stopAll();
  s = undefined;
});

async function removeOne(options: Partial<PeerOptions>) {
  s = await startCluster(['a', 'b', 'c'], [], options);
  const l = s.leader();
  const victim = ['a', 'b', 'c'].find((n) => n !== l.name)!;
  const rest = ['a', 'b', 'c'].filter((n) => n !== victim);
  const change = watch(l.setConfiguration(rest));
  await s.clock.until(() => change.outcome() !== 'pending');
  expect(change.outcome()).toBe('resolved');
  return { l, v: s.peers.get(victim)!, rest };
}

describe('membership: a connected follower that is removed', () => {
  it('learns the final configuration and stops campaigning (defaults)', async () => {
    const { v, rest } = await removeOne({});
    const roles = new Set<string>();
    for (let i = 0; i < 100; i++) {
      await s!.clock.advance(20);
      roles.add(v.status().role);
    }
    expect(v.status().configuration).toEqual({ members: rest });
    expect([...roles]).toEqual(['follower']);
  });

  it("does not depose the new cluster's leader again and again (pre-vote and check-quorum off)", async () => {
    const { v } = await removeOne({ preVote: false, checkQuorum: false });
    const term = s!.leader().status().term;
    const elections = v.status().metrics.electionsStarted;
    await s!.clock.advance(2000);
    expect(v.status().metrics.electionsStarted).toBe(elections);
    expect(s!.leader().status().term).toBe(term);
  });
});
