/**
 * setConfiguration's promise (runtime/peer.ts, pendingConfigChange) is settled by the
 * *apply* of a config entry with the target's members, while the protocol lets the next
 * change start as soon as the previous final entry is *committed*. When applying lags
 * behind committing (a slow state machine, or the replay after a restart):
 *
 * 1. a change whose final configuration has committed, but not yet applied, is rejected
 *    with RAFT_CONFIG_CHANGE_IN_PROGRESS ("replaced ... before its learners caught up")
 *    as soon as the next change starts: a successful change is reported as failed;
 * 2. a new change resolves when an *older* config entry with the same members applies:
 *    the caller is told the cluster is `members` while the change has not even committed
 *    its joint configuration (here it cannot: a voter of the new set is cut off).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startCluster, watch, type Setup } from './runtime-kit.js';

let s: Setup | undefined;
afterEach(async () => {
  await s?.stopAll();
  s = undefined;
});

const long = { timeout: 20_000 };

/** Leader l, followers f1 (to be removed) and f2; a backlog of slow applies on every peer. */
async function withBacklog() {
  s = await startCluster(['a', 'b', 'c']);
  const { clock } = s;
  const l = s.leader();
  const [f1, f2] = ['a', 'b', 'c'].filter((n) => n !== l.name) as [string, string];
  s.slow.ms = 20;
  // 50 writes that take 20 virtual ms each to apply: about a second of apply backlog.
  const writes = Array.from({ length: 50 }, (_, i) =>
    watch(l.write({ op: 'set', key: 'k', value: i }, long)),
  );
  await clock.advance(5);
  return { clock, l, f1, f2, writes };
}

/** Waits until the leader's latest configuration is `members` (final) and committed. */
async function committedFinal(setup: Setup, members: string[]): Promise<void> {
  const l = setup.leader();
  await setup.clock.until(
    () => {
      const st = l.status();
      return (
        JSON.stringify(st.configuration) === JSON.stringify({ members: [...members].sort() }) &&
        st.commitIndex === st.lastLogIndex
      );
    },
    2000,
    1,
  );
}

describe('membership: setConfiguration promise while applying lags committing', () => {
  it('a change that committed is not reported failed when the next change starts before it applied', async () => {
    const { clock, l, f1, f2, writes } = await withBacklog();
    const shrink = [l.name, f2].sort();
    const first = watch(l.setConfiguration(shrink, long));
    await committedFinal(s!, shrink);
    expect(l.status().lastApplied).toBeLessThan(l.status().commitIndex); // the backlog is still applying
    expect(first.outcome()).toBe('pending');
    // The final configuration is committed: the protocol accepts the next change.
    const second = watch(l.setConfiguration([l.name, f1, f2], long));
    await clock.advance(1);
    expect(first.outcome()).not.toBe('RAFT_CONFIG_CHANGE_IN_PROGRESS');
    await clock.until(
      () => writes.every((w) => w.outcome() === 'resolved') && second.outcome() !== 'pending',
      5000,
    );
    expect(first.outcome()).toBe('resolved');
    expect(first.value()).toEqual({ members: shrink });
  });

  it('a change does not resolve on the late apply of an older, identical configuration', async () => {
    const { clock, l, f1, f2 } = await withBacklog();
    const shrink = [l.name, f2].sort();
    void watch(l.setConfiguration(shrink, long));
    await committedFinal(s!, shrink);
    void watch(l.setConfiguration([l.name, f1, f2], long)); // f1 back
    await committedFinal(s!, [l.name, f1, f2]);
    expect(l.status().lastApplied).toBeLessThan(l.status().commitIndex); // the first shrink's final entry has not applied yet
    // Shrink again, but f2 (a voter of the new set) is cut off: the joint configuration cannot commit.
    s!.net.isolate(f2);
    const again = watch(l.setConfiguration(shrink, long));
    await clock.advance(1500); // the backlog drains, the old {shrink} entry applies
    expect(l.status().configuration).toEqual({ members: shrink, outgoing: [l.name, f1, f2].sort() });
    expect(l.status().commitIndex).toBeLessThan(l.status().lastLogIndex); // the joint entry is not committed
    expect(again.outcome()).toBe('pending'); // it must not claim the cluster is `shrink`
  });
});

/**
 * setConfiguration(members) where the peer's latest configuration already is `members`
 * answers at once only on the leader and only once that configuration is committed: a
 * follower cannot know whether its configuration is current (an uncommitted entry may be
 * truncated; a removed peer holds a stale one), and an uncommitted final entry may never
 * commit, so the operator would retire peers the cluster still needs. (Found by the
 * simulator: `pnpm sim --seed 76 --nodes 7 --membership --snapshots`.)
 */
describe('membership: setConfiguration with the members the peer already has', () => {
  it('is refused on a follower (RAFT_NOT_LEADER), and on the leader waits until that configuration is committed', async () => {
    s = await startCluster(['a', 'b', 'c']);
    const { clock, disk } = s;
    const l = s.leader();
    const [f1, f2] = ['a', 'b', 'c'].filter((n) => n !== l.name) as [string, string];
    const follower = s.peers.get(f1)!;
    const onFollower = watch(follower.setConfiguration(['a', 'b', 'c']));
    await clock.advance(1);
    expect(onFollower.outcome()).toBe('RAFT_NOT_LEADER');

    // Slow disks: the final configuration of a change stays uncommitted for a while.
    disk.ms = 40;
    const change = watch(l.setConfiguration([l.name, f2]));
    await clock.until(
      () => {
        const st = l.status();
        return (
          JSON.stringify(st.configuration) === JSON.stringify({ members: [l.name, f2].sort() }) &&
          st.commitIndex < st.lastLogIndex
        );
      },
      5000,
      1,
    );
    const again = watch(l.setConfiguration([l.name, f2]));
    try {
      // It settles in the leader's next turn, before the final configuration commits.
      await clock.until(() => again.outcome() !== 'pending', 1000, 1);
      expect(again.outcome()).toBe('RAFT_CONFIG_CHANGE_IN_PROGRESS');
      await committedFinal(s, [l.name, f2]);
      await clock.until(() => change.outcome() !== 'pending', 1000, 1);
      expect(change.outcome()).toBe('resolved');
      const third = watch(l.setConfiguration([l.name, f2]));
      await clock.advance(1);
      expect(third.outcome()).toBe('resolved');
    } finally {
      disk.ms = 0;
      await clock.advance(100);
    }
  });
});
