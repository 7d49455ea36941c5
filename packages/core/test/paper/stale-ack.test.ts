import { describe, expect, it } from 'vitest';
import { encodeConfiguration, Raft, type AppendEntriesMessage, type LogEntry } from '../../src/index.js';

const config: LogEntry = {
  index: 1,
  term: 1,
  type: 'config',
  data: encodeConfiguration({ members: ['f', 'l1', 'l2'] }),
};
const entry = (index: number, term: number): LogEntry => ({
  index,
  term,
  type: 'command',
  data: new Uint8Array([term]),
});

function follower(): Raft {
  return new Raft(
    {
      id: 'f',
      electionTicks: [10, 20],
      heartbeatTicks: 2,
      random: () => 0.5,
      maxInflight: 8,
      maxBatchEntries: 64,
      maxBatchBytes: 1 << 20,
      preVote: true,
      checkQuorum: true,
    },
    { hardState: { term: 5, votedFor: null }, entries: [config] },
  );
}

function ae(from: string, term: number, entries: LogEntry[]): AppendEntriesMessage {
  return {
    type: 'AppendEntries',
    term,
    from,
    to: 'f',
    prevLogIndex: 1,
    prevLogTerm: 1,
    entries,
    leaderCommit: 1,
    seq: 0,
  };
}

describe('§5.3, Figure 2: an acknowledgement promises entries that are durable', () => {
  it('a follower never acknowledges, to an earlier leader, entries a later leader truncated in the same turn', () => {
    const f = follower();
    // One turn: the term-5 leader's entry 2, then the term-6 leader's conflicting entry 2.
    f.step(ae('l1', 5, [entry(2, 5)]));
    f.step(ae('l2', 6, [entry(2, 6)]));
    const rd = f.ready();
    // What goes to disk is 2@6; an ack of 2@5 to l1 would let l1 count a replica that
    // does not exist and commit 2@5 while a majority holds 2@6 (State Machine Safety).
    expect(rd.entries.map((e) => `${e.index}@${e.term}`)).toEqual(['2@6']);
    const acks = rd.messages.filter((m) => m.type === 'AppendEntriesResponse' && m.success);
    expect(acks.map((m) => [m.to, m.term])).toEqual([['l2', 6]]);
  });
});
