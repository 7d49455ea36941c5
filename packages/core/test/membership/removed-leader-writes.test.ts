/**
 * A leader that removes itself steps down in the same protocol turn in which the final
 * configuration commits (advanceChange -> becomeFollower), and that turn's Ready carries
 * both the committed entries and softState 'follower'. RaftPeer.afterReady handles the
 * soft state first: onSoftState rejects *every* pending write with RAFT_NOT_LEADER, then
 * the committed entries apply, but their callers are gone. A write that this very peer
 * committed and applied is reported as not done (indeterminate); a client that retries
 * applies it twice. The same happens whenever a leader commits and steps down in one turn
 * (a higher term arriving in the same batch as an acknowledgement), but self-removal under
 * load makes it systematic. A slow disk (3 ms per durable write) batches acknowledgements
 * into one turn, as a real disk does.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startCluster, watch, type Setup } from './runtime-kit.js';

let s: Setup | undefined;
afterEach(async () => {
  await s?.stopAll();
  s = undefined;
});

describe('membership: a leader that removes itself under load', () => {
  it('does not reject writes that it committed and applied before stepping down', async () => {
    s = await startCluster(['a', 'b', 'c']);
    const l = s.leader();
    s.net.latency = () => 2;
    s.disk.ms = 3;
    const rest = ['a', 'b', 'c'].filter((n) => n !== l.name);
    const change = watch(l.setConfiguration(rest));
    const writes: { value: number; w: ReturnType<typeof watch> }[] = [];
    for (let i = 0; i < 100 && change.outcome() === 'pending'; i++) {
      writes.push({ value: i, w: watch(l.write({ op: 'set', key: 'k', value: i })) });
      await s.clock.advance(1);
    }
    await s.clock.advance(3500);
    expect(change.outcome()).toBe('resolved');
    expect(l.status().role).toBe('follower');
    const appliedHere = s.states.get(l.name)!.applied;
    const reportedFailedButApplied = writes.filter(
      ({ value, w }) => w.outcome() !== 'resolved' && appliedHere.includes(value),
    );
    expect(reportedFailedButApplied.map(({ value, w }) => `${value}: ${w.outcome()}`)).toEqual([]);
  });
});
