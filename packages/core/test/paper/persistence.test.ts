/**
 * Figure 2, "persistent state ... updated on stable storage before responding to RPCs",
 * and the runtime contract of Ready (persist, then send, then apply, then advance): what
 * a peer promises is durable first, and committed entries are applied in order, once.
 */
import { describe, expect, it } from 'vitest';
import type { LogEntry, PeerId } from '../../src/types.js';
import {
  accept,
  appendEntries,
  appendResponse,
  Cluster,
  command,
  drain,
  isAppend,
  newRaft,
  PAPER,
  persistAndAdvance,
  requestVote,
  steadyLeader,
  voteResponse,
} from '../protocol-driver.js';

describe('Figure 2: a vote is durable before it is sent', () => {
  it('a granted vote is in the same Ready as the hard state that records it', () => {
    const { raft: b } = newRaft('b', { options: PAPER });
    b.step(requestVote({ term: 2, from: 'a', to: 'b', lastLogIndex: 1, lastLogTerm: 1 }));
    const rd = b.ready();
    expect(rd.hardState).toEqual({ term: 2, votedFor: 'a' });
    expect(rd.messages).toEqual([voteResponse({ term: 2, from: 'b', to: 'a', voteGranted: true })]);
  });

  it('a vote cast in the current term (no new term to persist) is still in the same Ready as the hard state that records it', () => {
    const { raft: b } = newRaft('b', { hardState: { term: 2, votedFor: null }, options: PAPER });
    b.step(requestVote({ term: 2, from: 'a', to: 'b', lastLogIndex: 1, lastLogTerm: 1 }));
    const rd = b.ready();
    expect(rd.hardState).toEqual({ term: 2, votedFor: 'a' });
    expect(rd.messages).toEqual([voteResponse({ term: 2, from: 'b', to: 'a', voteGranted: true })]);
  });

  it("a candidate's RequestVotes are in the same Ready as its new term and its vote for itself", () => {
    const { raft: a } = newRaft('a', { options: PAPER });
    for (let i = 0; i < 100 && !a.hasReady(); i++) a.tick();
    const rd = a.ready();
    expect(rd.hardState).toEqual({ term: 2, votedFor: 'a' });
    expect(rd.messages.map((m) => m.type)).toEqual(['RequestVote', 'RequestVote']);
  });

  it('a peer that crashes before persisting its vote sent nothing, and after restart may vote for another', () => {
    const c = new Cluster(['a', 'b', 'c'], { options: PAPER });
    c.raft('b').step(requestVote({ term: 2, from: 'a', to: 'b', lastLogIndex: 1, lastLogTerm: 1 }));
    c.raft('b').ready(); // taken, then the crash: neither persisted nor sent
    c.crash('b');
    c.restart('b');
    expect(c.sent).toEqual([]);
    expect(c.raft('b').hardState()).toEqual({ term: 1, votedFor: null });
    c.raft('b').step(requestVote({ term: 2, from: 'c', to: 'b', lastLogIndex: 1, lastLogTerm: 1 }));
    expect(c.process('b')?.messages).toEqual([
      voteResponse({ term: 2, from: 'b', to: 'c', voteGranted: true }),
    ]);
  });

  it('a peer that persisted its vote remembers it after a restart and refuses a second candidate of that term', () => {
    const c = new Cluster(['a', 'b', 'c'], { options: PAPER });
    c.raft('b').step(requestVote({ term: 2, from: 'a', to: 'b', lastLogIndex: 1, lastLogTerm: 1 }));
    c.process('b');
    c.drop();
    c.crash('b');
    c.restart('b');
    expect(c.raft('b').hardState()).toEqual({ term: 2, votedFor: 'a' });
    c.raft('b').step(requestVote({ term: 2, from: 'c', to: 'b', lastLogIndex: 1, lastLogTerm: 1 }));
    expect(c.process('b')?.messages).toEqual([
      voteResponse({ term: 2, from: 'b', to: 'c', voteGranted: false }),
    ]);
  });
});

describe('Figure 2: entries are durable before they are acknowledged', () => {
  it("a follower's success answer is in the same Ready as the entries it acknowledges, never in an earlier one", () => {
    const { raft: f } = newRaft('b', { options: PAPER });
    f.step(
      appendEntries({
        term: 1,
        from: 'a',
        to: 'b',
        prevLogIndex: 1,
        prevLogTerm: 1,
        entries: [command(2, 1), command(3, 1)],
      }),
    );
    const rd = f.ready();
    expect(rd.entries.map((e) => e.index)).toEqual([2, 3]);
    expect(rd.messages).toEqual([
      appendResponse({ term: 1, from: 'b', to: 'a', success: true, matchIndex: 3, prevLogIndex: 1 }),
    ]);
  });

  it('a follower that crashes before persisting has acknowledged nothing, and after restart answers from what it holds', () => {
    const c = new Cluster(['a', 'b', 'c'], { options: PAPER });
    const ae = appendEntries({
      term: 1,
      from: 'a',
      to: 'b',
      prevLogIndex: 1,
      prevLogTerm: 1,
      entries: [command(2, 1)],
    });
    c.raft('b').step(ae);
    c.raft('b').ready(); // taken, then the crash
    c.crash('b');
    c.restart('b');
    expect(c.peer('b').store.entries.map((e) => e.index)).toEqual([1]);
    expect(c.sent).toEqual([]);
    // The leader probes again; the restarted follower must ask for index 2.
    c.raft('b').step(appendEntries({ ...ae, prevLogIndex: 2, prevLogTerm: 1, entries: [] }));
    expect(c.process('b')?.messages).toEqual([
      appendResponse({
        term: 1,
        from: 'b',
        to: 'a',
        success: false,
        matchIndex: 0,
        prevLogIndex: 2,
        conflictIndex: 2,
        conflictTerm: 0,
      }),
    ]);
  });

  it("the leader does not count its own new entries toward commit until advance reports them durable, even with a follower's ack", () => {
    const { raft: r } = steadyLeader();
    const li = r.log.lastIndex();
    r.propose([{ type: 'command', data: new Uint8Array([1]) }]);
    const rd = r.ready();
    const [toB] = rd.messages.filter(isAppend);
    r.step(accept(toB!)); // b stored index li + 1; with the leader's copy that would be two of three
    expect(r.log.commitIndex).toBe(li);
    expect(r.ready().committed).toEqual([]);
    r.advance(rd);
    expect(r.log.commitIndex).toBe(li + 1);
  });

  it('a single-voter leader commits its entry only once advance reports it durable', () => {
    const { raft: r } = newRaft('a', { members: ['a'], options: PAPER });
    r.tick();
    for (let i = 0; i < 100 && r.role !== 'leader'; i++) r.tick();
    drain(r);
    const li = r.log.lastIndex();
    expect(r.log.commitIndex).toBe(li);
    r.propose([{ type: 'command', data: new Uint8Array([1]) }]);
    expect(r.log.commitIndex).toBe(li);
    const rd = r.ready();
    expect(rd.committed).toEqual([]);
    expect(r.log.commitIndex).toBe(li);
    r.advance(rd);
    expect(r.log.commitIndex).toBe(li + 1);
    expect(persistAndAdvance(r).committed.map((e) => e.index)).toEqual([li + 1]);
  });

  it('a leader that crashes before persisting its proposal loses it, and nothing of it was committed', () => {
    const c = new Cluster(['a', 'b', 'c'], { options: PAPER });
    c.campaign('a');
    c.propose('a', 'lost');
    c.raft('a').ready(); // taken, then the crash
    c.crash('a');
    c.restart('a');
    expect(c.peer('a').store.entries.map((e) => e.type)).toEqual(['config', 'noop']);
    for (let i = 0; i < 200 && c.leaders().length === 0; i++) c.run(1);
    c.run(5);
    for (const p of c.peers.values()) expect(p.applied.map((e) => e.type)).not.toContain('command');
  });
});

describe('Figure 2: apply only committed entries, in index order, each once', () => {
  it('over a run with a lagging follower, every Ready hands out the next committed entries, never one twice or early', () => {
    const c = new Cluster(['a', 'b', 'c'], { options: PAPER });
    c.campaign('a');
    // What the election's turns already handed out, then every Ready's committed entries.
    const handed = new Map<PeerId, LogEntry[][]>(c.ids().map((id) => [id, [c.peer(id).applied.slice()]]));
    const turn = (id: PeerId): void => {
      const leaderCommit = c.raft('a').log.commitIndex;
      const rd = c.process(id);
      if (rd === undefined) return;
      // Nothing beyond what the leader has committed is ever applied anywhere.
      for (const e of rd.committed)
        expect(e.index).toBeLessThanOrEqual(Math.max(leaderCommit, c.raft('a').log.commitIndex));
      handed.get(id)!.push(rd.committed);
    };
    for (let round = 0; round < 40; round++) {
      c.propose('a', `v${round}`, `w${round}`);
      if (round % 3 === 0) c.tick('a');
      for (const id of c.ids()) turn(id);
      // c hears only every fourth round.
      c.deliver((m) => m.to !== 'c' || round % 4 === 0);
      if (round % 4 === 0) for (const id of c.ids()) turn(id);
    }
    c.drop((m) => m.to === 'c');
    // Heartbeats let c catch up and carry the final commitIndex to everyone.
    for (let beat = 0; beat < 3; beat++) {
      c.tick('a', 2);
      for (let i = 0; i < 20; i++) {
        for (const id of c.ids()) turn(id);
        c.deliver();
      }
    }
    const leaderLog = c.raft('a').log;
    for (const [id, readies] of handed) {
      const indexes = readies.flat().map((e) => e.index);
      expect(indexes, id).toEqual(Array.from({ length: leaderLog.commitIndex }, (_, i) => i + 1));
      for (const e of readies.flat()) expect(e, id).toEqual(leaderLog.entry(e.index));
    }
    expect(leaderLog.commitIndex).toBe(82);
  });

  it('a Ready taken after advance does not hand out the same entries again', () => {
    const { raft: r } = steadyLeader();
    r.propose([{ type: 'command', data: new Uint8Array([1]) }]);
    for (const m of persistAndAdvance(r).messages.filter(isAppend)) r.step(accept(m));
    const first = persistAndAdvance(r);
    expect(first.committed.map((e) => e.index)).toEqual([3]);
    r.tick();
    r.tick();
    expect(persistAndAdvance(r).committed).toEqual([]);
  });

  it('after a restart a peer applies the committed log again from index 1, each entry once (replay, no snapshot)', () => {
    const c = new Cluster(['a', 'b', 'c'], { options: PAPER });
    c.campaign('a');
    c.propose('a', 'x', 'y');
    c.stabilize();
    c.tick('a', 2);
    c.stabilize();
    expect(c.peer('b').applied.map((e) => e.index)).toEqual([1, 2, 3, 4]);
    c.crash('b');
    c.restart('b');
    expect(c.raft('b').log.commitIndex).toBe(0);
    c.tick('a', 2);
    c.stabilize();
    expect(c.peer('b').lifetimes.map((life) => life.map((e) => e.index))).toEqual([
      [1, 2, 3, 4],
      [1, 2, 3, 4],
    ]);
  });
});
