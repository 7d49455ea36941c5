/**
 * A peer that catches up through InstallSnapshot (rather than AppendEntries) never makes
 * the leader re-evaluate a membership change or a leadership transfer that waits for it:
 * handleSnapshotResponse (done) sets matchIndex but calls neither advanceChange nor
 * maybeSendTimeoutNow, and the heartbeats that follow acknowledge the same matchIndex, so
 * `Progress.acknowledge` reports no growth and nothing else calls them. On an idle cluster
 * whose latest snapshot is at the log's end, the change / transfer stalls until some
 * unrelated write commits (or forever).
 */
import { describe, expect, it } from 'vitest';
import { Net } from './net.js';

const data = new TextEncoder().encode('state');

describe('membership: catching up through a snapshot', () => {
  it('a learner that catches up by InstallSnapshot is promoted (learner phase -> joint) on an idle cluster', () => {
    const net = new Net(['a', 'b', 'c'], ['d']);
    net.elect('a');
    const a = net.raft('a');
    net.isolate('d'); // d cannot catch up yet
    expect(a.proposeConfiguration(['a', 'b', 'c', 'd'])).toBe('ok');
    net.stabilize();
    net.propose('a', 3);
    net.run(3, ['a']);
    expect(a.config).toEqual({ members: ['a', 'b', 'c'], learners: ['d'] });
    expect(a.log.commitIndex).toBe(a.log.lastIndex());
    // The leader snapshots everything and compacts it away: d can only catch up by snapshot.
    const last = a.log.lastIndex();
    expect(a.snapshotTaken(last, data, last)).toBe(true);
    net.stabilize();
    expect(a.log.firstIndex()).toBe(last + 1);

    net.heal('d');
    // Less than an election timeout of heartbeats: plenty for d to install and be promoted.
    net.run(8, ['a']);
    expect(net.raft('d').status().snapshotIndex).toBe(last); // d did catch up (snapshot installed) ...
    expect(a.progressOf('d')?.matchIndex).toBeGreaterThanOrEqual(last);
    // ... so the change must move on to the joint configuration (and then the final one).
    expect(a.config?.members).toEqual(['a', 'b', 'c', 'd']);
  });

  it('a transfer target that catches up by InstallSnapshot gets TimeoutNow and takes over', () => {
    const net = new Net(['a', 'b', 'c']);
    net.elect('a');
    const a = net.raft('a');
    net.isolate('c');
    net.propose('a', 5);
    const last = a.log.lastIndex();
    expect(a.snapshotTaken(last, data, last)).toBe(true);
    net.stabilize();
    net.heal('c');
    expect(a.transferLeadership('c')).toBe('ok');
    // Only the leader ticks (so c campaigns only if told to), fewer ticks than the transfer timeout.
    net.run(8, ['a']);
    expect(net.raft('c').log.lastIndex()).toBeGreaterThanOrEqual(last); // c caught up by snapshot
    expect(net.sent.some((m) => m.type === 'TimeoutNow')).toBe(true);
    expect(net.raft('c').role).toBe('leader');
  });
});
