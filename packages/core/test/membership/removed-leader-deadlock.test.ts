/**
 * Permanent loss of availability when the leader removes itself and loses leadership
 * after appending the final configuration, before the new voters stored it.
 *
 * A peer uses the latest configuration in its log, committed or not, and `promotable()`
 * is false for a peer that is not a voter of it. The removed leader holds C_new (without
 * itself) uncommitted: it never campaigns again, even after a restart. The members of
 * C_new do not hold C_new: they are still in C_old,new and need a majority of C_old too,
 * which includes the removed leader, whose log is longer (it holds C_new), so it refuses
 * them its vote (§5.4.1), forever. 2 -> 1 removing the leader: C_old = {a, b},
 * C_new = {b}; b needs a's vote; a will not give it and will not run. Nobody can ever be
 * elected again, on a healthy network. (etcd does not have this: a conf change takes
 * effect there when applied, so the old leader stays promotable until it commits.)
 *
 * The trigger here is a short partition between a and b right after the final entry is
 * appended: check-quorum makes a step down (C_new's only voter is silent). A crash of a
 * at that moment has the same outcome (a restarts with C_new in its log).
 */
import { describe, expect, it } from 'vitest';
import { Net } from './net.js';
import { startCluster, watch } from './runtime-kit.js';

/** Steps the network one message batch at a time (the leader `a` ticking) until `cond` holds right after a delivery. */
function stepUntil(net: Net, cond: () => boolean, limit = 1000): void {
  for (let i = 0; i < limit; i++) {
    net.raft('a').tick();
    net.processAll();
    net.deliver();
    if (cond()) return;
  }
  throw new Error('condition never held');
}

describe('membership: a leader that removes itself and loses leadership before C_new is stored elsewhere', () => {
  it('2 -> 1 removing the leader: the cluster elects a leader again once the partition heals', () => {
    const net = new Net(['a', 'b']);
    net.elect('a');
    const a = net.raft('a');
    expect(a.proposeConfiguration(['b'])).toBe('ok'); // joint {b} + {a, b}
    // Run until the joint entry commits and a appends the final configuration {b} ...
    stepUntil(net, () => a.config?.outgoing === undefined && a.config?.members.length === 1);
    expect(a.config).toEqual({ members: ['b'] });
    // ... and cut b off before that entry reaches it.
    net.isolate('b');
    for (let i = 0; i < 40 && a.role === 'leader'; i++) net.run(1, ['a']);
    expect(a.role).toBe('follower'); // check-quorum: C_new's only voter is silent
    expect(net.raft('b').config).toEqual({ members: ['b'], outgoing: ['a', 'b'] });
    net.heal('b');
    // A healthy network, plenty of time: somebody must lead again.
    for (let i = 0; i < 500 && ![...net.peers.values()].some((r) => r.role === 'leader'); i++) net.run(1);
    expect([...net.peers.values()].filter((r) => r.role === 'leader').map((r) => r.id)).toEqual(['b']);
  });

  it('1 -> 1 replacing the only voter: the new voter leads once the partition heals', () => {
    const net = new Net(['a'], ['b']);
    net.elect('a');
    const a = net.raft('a');
    expect(a.proposeConfiguration(['b'])).toBe('ok'); // learner b, then joint, then final
    stepUntil(net, () => a.config?.outgoing === undefined && a.config?.members[0] === 'b');
    net.isolate('b');
    for (let i = 0; i < 40 && a.role === 'leader'; i++) net.run(1, ['a']);
    expect(a.role).toBe('follower');
    net.heal('b');
    for (let i = 0; i < 500 && ![...net.peers.values()].some((r) => r.role === 'leader'); i++) net.run(1);
    expect([...net.peers.values()].filter((r) => r.role === 'leader').map((r) => r.id)).toEqual(['b']);
  });
});

describe('membership: the same through the public API', () => {
  it('setConfiguration([b]) on leader a of {a, b}, a 300 ms partition at the wrong moment: b leads again afterwards', async () => {
    const s = await startCluster(['a', 'b']);
    try {
      const a = s.leader();
      const b = s.peers.get(a.name === 'a' ? 'b' : 'a')!;
      const change = watch(a.setConfiguration([b.name]));
      await s.clock.until(
        () => JSON.stringify(a.status().configuration) === JSON.stringify({ members: [b.name] }),
        2000,
        1,
      );
      s.net.isolate(b.name); // the final configuration's AppendEntries is still on the wire: lost
      await s.clock.advance(300);
      s.net.heal(b.name);
      await s.clock.advance(5000);
      expect(b.status().role).toBe('leader');
      expect(change.outcome()).not.toBe('pending');
    } finally {
      await s.stopAll();
    }
  });
});
