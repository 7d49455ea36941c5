/**
 * Membership behaviours checked in review and found right: kept as
 * regression tests next to the failing ones.
 */
import { describe, expect, it } from 'vitest';
import { Raft } from '../../src/protocol/raft.js';
import { encodeConfiguration } from '../../src/protocol/membership.js';
import type { LogEntry } from '../../src/types.js';
import { appendEntries, command, configEntry, raftOptions } from '../protocol-driver.js';
import { Net } from './net.js';

const cfg = (
  index: number,
  term: number,
  c: { members: string[]; learners?: string[]; outgoing?: string[] },
): LogEntry => ({
  index,
  term,
  type: 'config',
  data: encodeConfiguration(c),
});

describe('membership: configurations in the log', () => {
  it('a follower reverts to the configuration of its snapshot when the config entry after it is truncated', () => {
    const snapConfig = { members: ['a', 'b', 'c'] };
    const r = new Raft(raftOptions('c', 1), {
      hardState: { term: 2, votedFor: null },
      entries: [command(6, 2), cfg(7, 2, { members: ['a', 'b', 'c', 'd'], outgoing: ['a', 'b', 'c'] })],
      snapshot: { meta: { index: 5, term: 2, configuration: snapConfig }, data: new Uint8Array() },
    });
    expect(r.config).toEqual({ members: ['a', 'b', 'c', 'd'], outgoing: ['a', 'b', 'c'] });
    // A leader of term 3 that never had entry 7 overwrites it.
    r.step(
      appendEntries({
        term: 3,
        from: 'a',
        to: 'c',
        prevLogIndex: 6,
        prevLogTerm: 2,
        entries: [command(7, 3)],
        leaderCommit: 6,
      }),
    );
    expect(r.config).toEqual(snapConfig);
  });

  it('a joint configuration travels in snapshot metadata; the peer restored from it finishes the change when elected', () => {
    const joint = { members: ['a', 'b', 'd'], outgoing: ['a', 'b', 'c'] };
    const r = new Raft(raftOptions('d', 1, { preVote: false, checkQuorum: false }), {
      hardState: { term: 2, votedFor: null },
      entries: [],
      snapshot: { meta: { index: 9, term: 2, configuration: joint }, data: new Uint8Array() },
    });
    expect(r.config).toEqual(joint);
    expect(r.promotable()).toBe(true);
    for (let i = 0; i < 100 && r.role === 'follower'; i++) r.tick();
    expect(r.role).toBe('candidate');
    const rd = r.ready();
    r.advance(rd);
    const votes = rd.messages
      .filter((m) => m.type === 'RequestVote')
      .map((m) => m.to)
      .sort();
    expect(votes).toEqual(['a', 'b', 'c']); // both sets
    // a and b grant: a majority of {a,b,d} (with d) and of {a,b,c}.
    for (const from of ['a', 'b'])
      r.step({ type: 'RequestVoteResponse', term: r.term, from, to: 'd', voteGranted: true, preVote: false });
    expect(r.role).toBe('leader');
    r.advance(r.ready());
    // Its no-op commits with a and b (d's own entry is durable after advance) ...
    const noop = r.log.lastIndex();
    for (const from of ['a', 'b'])
      r.step({
        type: 'AppendEntriesResponse',
        term: r.term,
        from,
        to: 'd',
        success: true,
        matchIndex: noop,
        prevLogIndex: 9,
        conflictIndex: 0,
        conflictTerm: 0,
        seq: 0,
      });
    // ... and then it appends the final configuration.
    expect(r.config).toEqual({ members: ['a', 'b', 'd'] });
  });
});

describe('membership: joint majorities', () => {
  it('a leader only in outgoing does not count itself towards the new set; learners never campaign', () => {
    const net = new Net(['a', 'b', 'c'], ['d', 'e']);
    net.elect('a');
    const a = net.raft('a');
    // {a,b,c} -> {c,d,e}: a is only in outgoing during the joint phase.
    expect(a.proposeConfiguration(['c', 'd', 'e'])).toBe('ok');
    net.run(3, ['a']);
    expect(a.config).toEqual({ members: ['c', 'd', 'e'] });
    expect(a.role).toBe('follower'); // stepped down once C_new committed
    // d and e were learners before: with the learners' config in the log they never campaigned.
    for (let i = 0; i < 100 && ![...net.peers.values()].some((r) => r.role === 'leader'); i++) net.run(1);
    const leader = [...net.peers.values()].find((r) => r.role === 'leader');
    expect(['c', 'd', 'e']).toContain(leader?.id);
  });

  it('commit during joint needs the new set: with d and e cut off, nothing commits even with a, b, c', () => {
    const net = new Net(['a', 'b', 'c'], ['d', 'e']);
    net.elect('a');
    const a = net.raft('a');
    expect(a.proposeConfiguration(['a', 'd', 'e'])).toBe('ok');
    // Let d and e catch up as learners and the joint entry be appended, then cut them off
    // before it reaches them.
    for (let i = 0; i < 500 && a.config?.outgoing === undefined; i++) {
      a.tick();
      net.processAll();
      if (a.config?.outgoing !== undefined) break;
      net.deliver();
    }
    expect(a.config).toEqual({ members: ['a', 'd', 'e'], outgoing: ['a', 'b', 'c'] });
    net.isolate('d');
    net.isolate('e');
    net.inflight = net.inflight.filter((m) => m.to !== 'd' && m.to !== 'e');
    const before = a.log.commitIndex;
    a.propose([{ type: 'command', data: new Uint8Array([1]) }]);
    net.run(3, ['a']);
    expect(a.log.commitIndex).toBe(before);
  });

  it('1 -> 2 -> 1: a single voter adds a second and removes it again', () => {
    const net = new Net(['a'], ['b']);
    net.elect('a');
    const a = net.raft('a');
    expect(a.proposeConfiguration(['a', 'b'])).toBe('ok');
    for (let i = 0; i < 50 && JSON.stringify(a.config) !== JSON.stringify({ members: ['a', 'b'] }); i++)
      net.run(1, ['a']);
    expect(a.config).toEqual({ members: ['a', 'b'] });
    net.run(2, ['a']);
    expect(a.proposeConfiguration(['a'])).toBe('ok');
    for (let i = 0; i < 50 && JSON.stringify(a.config) !== JSON.stringify({ members: ['a'] }); i++)
      net.run(1, ['a']);
    expect(a.config).toEqual({ members: ['a'] });
    net.run(2, ['a']);
    expect(a.log.commitIndex).toBe(a.log.lastIndex());
    expect(a.role).toBe('leader');
  });
});

describe('membership: leadership transfer', () => {
  it('is refused to a learner and to a non-member, refuses proposals and changes meanwhile, and gives up after an election timeout', () => {
    const net = new Net(['a', 'b', 'c'], ['d']);
    net.elect('a');
    const a = net.raft('a');
    net.isolate('d');
    expect(a.proposeConfiguration(['a', 'b', 'c', 'd'])).toBe('ok');
    net.run(2, ['a']);
    expect(a.transferLeadership('d')).toBe('not_voter');
    expect(a.transferLeadership('zz')).toBe('not_voter');
    net.isolate('b'); // the target is dead
    expect(a.transferLeadership('b')).toBe('ok');
    expect(a.propose([{ type: 'command', data: new Uint8Array([1]) }])).toBe('transferring');
    expect(a.proposeConfiguration(['a', 'b', 'c'])).toBe('transferring');
    net.run(10, ['a']);
    expect(a.status().transferee).toBe(null);
    expect(a.role).toBe('leader');
    expect(typeof a.propose([{ type: 'command', data: new Uint8Array([1]) }])).toBe('object');
  });
});

describe('membership: the bootstrap configuration', () => {
  it('a fresh peer with only a bootstrap entry uses it', () => {
    const r = new Raft(raftOptions('a', 1), {
      hardState: { term: 1, votedFor: null },
      entries: [configEntry(1, 1, ['a', 'b'])],
    });
    expect(r.config).toEqual({ members: ['a', 'b'] });
  });
});
