/**
 * Protocol rules the paper's suite did not pin down (issue 19): the joint majority of a
 * configuration change, in commits and in elections (dissertation §4.3), and a snapshot
 * from the leader that conflicts with the follower's log (§7: the log is discarded).
 */
import { describe, expect, it } from 'vitest';
import { encodeConfiguration } from '../src/protocol/membership.js';
import type { InstallSnapshotMessage, LogEntry } from '../src/types.js';
import {
  PAPER,
  acceptAll,
  bytes,
  drain,
  isAppend,
  logOfTerms,
  newRaft,
  termsOf,
  logOf,
  tickUntilCampaign,
  voteResponse,
} from './protocol-driver.js';

/** Entry 1: the joint configuration of a change from {a,b,c} to {a,d,e}. */
function jointEntry(): LogEntry {
  return {
    index: 1,
    term: 1,
    type: 'config',
    data: encodeConfiguration({ members: ['a', 'd', 'e'], outgoing: ['a', 'b', 'c'] }),
  };
}

describe('joint consensus', () => {
  it('a candidate needs a majority of the old voters too: the new voters alone do not elect it', () => {
    const { raft, store } = newRaft('a', { log: [jointEntry()], options: PAPER });
    tickUntilCampaign(raft);
    expect(raft.role).toBe('candidate');
    drain(raft, store);
    const term = raft.term;
    // a, d and e: a majority of {a,d,e}, but only one of {a,b,c}.
    for (const v of ['d', 'e'])
      raft.step(voteResponse({ term, from: v, to: 'a', voteGranted: true, preVote: false }));
    expect(raft.role).toBe('candidate');
    raft.step(voteResponse({ term, from: 'b', to: 'a', voteGranted: true, preVote: false }));
    expect(raft.role).toBe('leader');
  });

  it('a leader commits only once a majority of the old voters holds the entry too', () => {
    const { raft, store } = newRaft('a', { log: [jointEntry()], options: PAPER });
    tickUntilCampaign(raft);
    drain(raft, store);
    for (const v of ['b', 'd', 'e'])
      raft.step(voteResponse({ term: raft.term, from: v, to: 'a', voteGranted: true, preVote: false }));
    expect(raft.role).toBe('leader');
    const noop = raft.log.lastIndex();
    // The new voters acknowledge everything; the old ones hear nothing.
    acceptAll(raft, store, (p) => p === 'd' || p === 'e');
    expect(raft.log.lastIndex()).toBeGreaterThanOrEqual(noop);
    expect(raft.log.commitIndex).toBeLessThan(noop);
    // Now b (with a, a majority of {a,b,c}) holds it as well: it commits.
    let sent = 0;
    for (let i = 0; i < 20 && sent === 0; i++) {
      raft.tick();
      sent = acceptAll(raft, store, (p) => p === 'b').filter(isAppend).length;
    }
    expect(raft.log.commitIndex).toBeGreaterThanOrEqual(noop);
  });
});

describe('InstallSnapshot against a conflicting log', () => {
  it('discards the whole log when its entry at the snapshot index has another term', () => {
    // b holds 1..4 with terms 1,1,2,2; the leader's snapshot covers 1..3 and its entry 3 is of term 3.
    const { raft, store } = newRaft('b', {
      log: logOfTerms(['a', 'b', 'c'], [1, 1, 2, 2]),
      hardState: { term: 3, votedFor: null },
      options: PAPER,
    });
    const m: InstallSnapshotMessage = {
      type: 'InstallSnapshot',
      term: 3,
      from: 'a',
      to: 'b',
      meta: { index: 3, term: 3, configuration: { members: ['a', 'b', 'c'] } },
      offset: 0,
      data: bytes('state at 3'),
      done: true,
      seq: 1,
    };
    raft.step(m);
    drain(raft, store);
    // Entry 4 (term 2) followed a conflicting entry 3: it must not survive.
    expect(raft.log.lastIndex()).toBe(3);
    expect(raft.log.term(3)).toBe(3);
    expect(raft.log.entry(4)).toBeUndefined();
    expect(termsOf(logOf(raft))).toEqual([]);
    expect(raft.log.commitIndex).toBe(3);
  });

  it('keeps the suffix after the snapshot when its entry at the snapshot index matches', () => {
    const { raft, store } = newRaft('b', {
      log: logOfTerms(['a', 'b', 'c'], [1, 1, 2, 2]),
      hardState: { term: 3, votedFor: null },
      options: PAPER,
    });
    raft.step({
      type: 'InstallSnapshot',
      term: 3,
      from: 'a',
      to: 'b',
      meta: { index: 3, term: 2, configuration: { members: ['a', 'b', 'c'] } },
      offset: 0,
      data: bytes('state at 3'),
      done: true,
      seq: 1,
    });
    drain(raft, store);
    expect(raft.log.lastIndex()).toBe(4);
    expect(termsOf(logOf(raft))).toEqual([2]);
  });
});
