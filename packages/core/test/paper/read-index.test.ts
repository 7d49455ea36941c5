/**
 * Linearizable reads without the log: ReadIndex (Ongaro's dissertation §6.4; the paper §8).
 * The leader records its commitIndex, confirms it still leads with a heartbeat round
 * acknowledged by a majority, and only then releases the read (to be served once the state
 * machine has applied that index).
 */
import { describe, expect, it } from 'vitest';
import type { Raft } from '../../src/protocol/raft.js';
import type { AppendEntriesMessage } from '../../src/types.js';
import {
  accept,
  appendResponse,
  appendsIn,
  bytes,
  Cluster,
  DEFAULTS,
  drain,
  makeLeader,
  newRaft,
  PAPER,
  persistAndAdvance,
  steadyLeader,
} from '../protocol-driver.js';

/** Takes one Ready; returns its reads and the heartbeats (AppendEntries) it sends. */
function turn(r: Raft): { reads: { context: number; index: number }[]; beats: AppendEntriesMessage[] } {
  const rd = persistAndAdvance(r);
  return { reads: rd.reads, beats: appendsIn(rd.messages) };
}

describe('§6.4 (dissertation) ReadIndex', () => {
  it('a single-voter leader releases a read in the very next Ready, sending nothing', () => {
    const { raft: r } = newRaft('a', { members: ['a'], options: PAPER });
    makeLeader(r);
    drain(r);
    expect(r.readIndex(7)).toBe('ok');
    const rd = persistAndAdvance(r);
    expect(rd.reads).toEqual([{ context: 7, index: 2 }]);
    expect(rd.messages).toEqual([]);
  });

  it('a read is released only once a majority acknowledges a heartbeat round started after it', () => {
    const { raft: r } = steadyLeader({ members: ['a', 'b', 'c', 'd', 'e'] });
    expect(r.readIndex(1)).toBe('ok');
    const { reads, beats } = turn(r);
    expect(reads).toEqual([]);
    expect(beats.map((m) => [m.to, m.entries.length])).toEqual([
      ['b', 0],
      ['c', 0],
      ['d', 0],
      ['e', 0],
    ]);
    r.step(accept(beats[0]!)); // the leader and b: two of five
    expect(turn(r).reads).toEqual([]);
    r.step(accept(beats[1]!)); // and c: three of five
    expect(turn(r).reads).toEqual([{ context: 1, index: 2 }]);
  });

  it('a refusal in the current term confirms leadership as well as an acceptance', () => {
    const { raft: r } = steadyLeader();
    r.readIndex(1);
    const { beats } = turn(r);
    const b = beats[0]!;
    r.step(
      appendResponse({
        term: 2,
        from: 'b',
        to: 'a',
        success: false,
        prevLogIndex: b.prevLogIndex,
        conflictIndex: 1,
        seq: b.seq,
      }),
    );
    expect(turn(r).reads).toEqual([{ context: 1, index: 2 }]);
  });

  it('the read index is the commitIndex when the read was asked, though commits move on before it is confirmed', () => {
    const { raft: r } = steadyLeader();
    r.readIndex(1);
    turn(r); // the round goes out; its answers are lost
    r.propose([{ type: 'command', data: bytes('x') }]);
    const appends = turn(r).beats;
    for (const m of appends) r.step(accept(m)); // x commits (index 3), acknowledging the round too
    expect(r.log.commitIndex).toBe(3);
    expect(turn(r).reads).toEqual([{ context: 1, index: 2 }]);
  });

  it('acknowledgements of AppendEntries sent before the read do not confirm it', () => {
    const { raft: r } = steadyLeader();
    r.propose([{ type: 'command', data: bytes('x') }]);
    const before = turn(r).beats;
    r.readIndex(1);
    const round = turn(r).beats;
    for (const m of before) r.step(accept(m));
    expect(turn(r).reads).toEqual([]);
    r.step(accept(round[0]!));
    expect(turn(r).reads).toEqual([{ context: 1, index: 2 }]);
  });

  it('one heartbeat round serves every read asked in the same turn', () => {
    const { raft: r } = steadyLeader();
    r.readIndex(1);
    r.readIndex(2);
    r.readIndex(3);
    const { beats } = turn(r);
    expect(beats.map((m) => m.to)).toEqual(['b', 'c']);
    r.step(accept(beats[0]!));
    expect(turn(r).reads).toEqual([
      { context: 1, index: 2 },
      { context: 2, index: 2 },
      { context: 3, index: 2 },
    ]);
  });

  it("a later round's acknowledgements confirm the reads still waiting on earlier rounds", () => {
    const { raft: r } = steadyLeader();
    r.readIndex(1);
    const first = turn(r).beats;
    r.readIndex(2);
    const second = turn(r).beats;
    expect(second[0]!.seq).toBeGreaterThan(first[0]!.seq);
    r.step(accept(second[0]!));
    expect(turn(r).reads.map((x) => x.context)).toEqual([1, 2]);
  });

  it('a new leader holds reads until its no-op commits, then confirms them with a fresh round', () => {
    const { raft: r } = newRaft('a', { options: PAPER });
    const noops = appendsIn(makeLeader(r));
    expect(r.readIndex(1)).toBe('ok');
    // Until an entry of its term commits, its commitIndex may be stale (§8): no round yet.
    const waiting = persistAndAdvance(r);
    expect([waiting.reads, waiting.messages]).toEqual([[], []]);
    expect(r.pendingReadContexts()).toEqual([1]);
    r.step(accept(noops[0]!)); // the no-op (index 2) commits
    expect(r.log.commitIndex).toBe(2);
    const { reads, beats } = turn(r);
    expect(reads).toEqual([]);
    expect(beats.map((m) => [m.to, m.seq > noops[0]!.seq])).toEqual([
      ['b', true],
      ['c', true],
    ]);
    r.step(accept(beats[0]!));
    expect(turn(r).reads).toEqual([{ context: 1, index: 2 }]);
  });

  it('a leader deposed by a higher term never releases its pending reads, whatever acknowledgements arrive later', () => {
    const { raft: r } = steadyLeader();
    r.readIndex(1);
    const { beats } = turn(r);
    r.step(appendResponse({ term: 3, from: 'c', to: 'a', success: false }));
    expect(r.role).toBe('follower');
    expect(r.pendingReadContexts()).toEqual([]);
    for (const m of beats) r.step(accept(m));
    expect(turn(r).reads).toEqual([]);
  });

  it('a leader deposed by check-quorum (same term) never releases its pending reads either', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.campaign('a');
    c.run(3);
    const a = c.raft('a');
    expect(a.readIndex(1)).toBe('ok');
    c.process('a');
    const round = c.inflight.filter((m) => m.from === 'a');
    c.isolate('a');
    for (let i = 0; i < 3 * DEFAULTS.electionTicks[0] && a.role === 'leader'; i++) c.run(1);
    expect([a.role, a.term]).toEqual(['follower', 2]);
    // The answers to its round, delayed until now, come from peers still in term 2.
    c.heal();
    for (const m of round) if (m.type === 'AppendEntries') a.step(accept(m));
    expect(c.process('a')?.reads ?? []).toEqual([]);
    expect(c.peer('a').reads).toEqual([]);
  });

  it('a peer that is not the leader refuses a read', () => {
    const { raft: r } = newRaft('b');
    expect(r.readIndex(1)).toBe('not_leader');
  });
});
