/**
 * Keeping a healthy leader in place (Ongaro's dissertation): pre-vote (§9.6),
 * check-quorum (§6.2) and the leader lease that lets followers ignore disruptive
 * RequestVotes (§4.2.3). The runtime turns all of them on by default.
 */
import { describe, expect, it } from 'vitest';
import {
  appendEntries,
  Cluster,
  drain,
  DEFAULTS,
  isVote,
  isVoteResponse,
  logOfTerms,
  newRaft,
  persistAndAdvance,
  requestVote,
  tickUntilCampaign,
  voteResponse,
} from '../protocol-driver.js';

const [EMIN] = DEFAULTS.electionTicks;

describe('§9.6 (dissertation) Pre-vote', () => {
  it('a follower that times out first asks for pre-votes: its term and vote are unchanged, nothing needs persisting', () => {
    const { raft: a } = newRaft('a', { hardState: { term: 1, votedFor: 'c' } });
    tickUntilCampaign(a);
    expect([a.role, a.term, a.votedFor]).toEqual(['precandidate', 1, 'c']);
    const rd = a.ready();
    expect(rd.hardState).toBeUndefined();
    expect(rd.messages).toEqual([
      requestVote({ term: 2, from: 'a', to: 'b', lastLogIndex: 1, lastLogTerm: 1, preVote: true }),
      requestVote({ term: 2, from: 'a', to: 'c', lastLogIndex: 1, lastLogTerm: 1, preVote: true }),
    ]);
  });

  it('a peer asked for a pre-vote answers for the future term without changing its own term or vote', () => {
    const { raft: b } = newRaft('b', { hardState: { term: 1, votedFor: 'c' } });
    b.step(requestVote({ term: 2, from: 'a', to: 'b', lastLogIndex: 1, lastLogTerm: 1, preVote: true }));
    expect([b.term, b.votedFor]).toEqual([1, 'c']);
    const rd = b.ready();
    expect(rd.hardState).toBeUndefined();
    expect(rd.messages).toEqual([
      voteResponse({ term: 2, from: 'b', to: 'a', voteGranted: true, preVote: true }),
    ]);
  });

  it("a pre-vote is refused to a log that is behind, with the refuser's term", () => {
    const { raft: b } = newRaft('b', { log: logOfTerms(['a', 'b', 'c'], [1, 1]) });
    b.step(requestVote({ term: 2, from: 'a', to: 'b', lastLogIndex: 1, lastLogTerm: 1, preVote: true }));
    expect(b.ready().messages).toEqual([
      voteResponse({ term: 1, from: 'b', to: 'a', voteGranted: false, preVote: true }),
    ]);
  });

  it('a pre-candidate granted pre-votes by a majority starts the real election, at term + 1', () => {
    const { raft: a } = newRaft('a');
    tickUntilCampaign(a);
    drain(a);
    a.step(voteResponse({ term: 2, from: 'b', to: 'a', voteGranted: true, preVote: true }));
    expect([a.role, a.term, a.votedFor]).toEqual(['candidate', 2, 'a']);
    const rd = persistAndAdvance(a);
    expect(rd.hardState).toEqual({ term: 2, votedFor: 'a' });
    expect(rd.messages.filter(isVote).map((m) => [m.to, m.term, m.preVote])).toEqual([
      ['b', 2, false],
      ['c', 2, false],
    ]);
  });

  it('a pre-candidate refused by a majority goes back to follower, its term unchanged', () => {
    const { raft: a } = newRaft('a');
    tickUntilCampaign(a);
    drain(a);
    a.step(voteResponse({ term: 1, from: 'b', to: 'a', voteGranted: false, preVote: true }));
    a.step(voteResponse({ term: 1, from: 'c', to: 'a', voteGranted: false, preVote: true }));
    expect([a.role, a.term]).toEqual(['follower', 1]);
    expect(a.ready().hardState).toBeUndefined();
  });

  it('a partitioned peer that rejoins does not raise the term or depose the leader', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.campaign('a');
    expect([c.raft('a').role, c.raft('a').term]).toEqual(['leader', 2]);
    c.isolate('c');
    c.run(20 * EMIN);
    // Alone, c asked for pre-votes again and again, and never started an election.
    expect([c.raft('c').term, c.raft('c').stats.electionsStarted]).toEqual([2, 0]);
    c.heal();
    c.run(5 * EMIN);
    expect(c.terms()).toEqual({ a: 2, b: 2, c: 2 });
    expect(c.roles()).toEqual({ a: 'leader', b: 'follower', c: 'follower' });
    expect(c.raft('c').leader).toBe('a');
  });

  it('with pre-vote alone (no check-quorum), a rejoining peer whose log fell behind is refused and the term stays', () => {
    const c = new Cluster(['a', 'b', 'c'], { options: { checkQuorum: false } });
    c.campaign('a');
    c.isolate('c');
    c.propose('a', 'x');
    c.run(20 * EMIN);
    expect(c.raft('c').stats.electionsStarted).toBe(0);
    c.heal();
    c.run(5 * EMIN);
    expect(c.terms()).toEqual({ a: 2, b: 2, c: 2 });
    expect(c.leaders().map((p) => p.id)).toEqual(['a']);
  });

  it('control: without pre-vote and check-quorum the same rejoining peer raises the term and deposes the leader', () => {
    const c = new Cluster(['a', 'b', 'c'], { options: { preVote: false, checkQuorum: false } });
    c.campaign('a');
    c.isolate('c');
    c.run(20 * EMIN);
    expect(c.raft('c').term).toBeGreaterThan(2);
    c.heal();
    c.run(DEFAULTS.heartbeatTicks);
    expect(c.raft('a').term).toBeGreaterThan(2);
    expect(c.leaders().filter((p) => p.raft.term === 2)).toEqual([]);
  });
});

describe('§6.2 (dissertation) Check-quorum', () => {
  it('a leader cut off from the majority steps down within one minimum election timeout of its last contact, whenever the cut happens', () => {
    const delays: number[] = [];
    for (let offset = 0; offset < 2 * EMIN; offset++) {
      const c = new Cluster(['a', 'b', 'c']);
      c.campaign('a');
      c.run(offset);
      expect(c.raft('a').role).toBe('leader');
      c.isolate('a');
      let ticks = 0;
      while (c.raft('a').role === 'leader') {
        c.run(1);
        ticks++;
        if (ticks > 10 * EMIN) throw new Error(`offset ${offset}: the isolated leader never stepped down`);
      }
      expect([c.raft('a').role, c.raft('a').leader]).toEqual(['follower', null]);
      delays.push(ticks);
    }
    // Check-quorum runs every tick over each follower's last answer: the step-down comes at
    // most one minimum election timeout after the cut, never before a timeout of silence
    // (the last answers may predate the cut by up to a heartbeat round).
    expect(Math.max(...delays)).toBeLessThanOrEqual(EMIN);
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(EMIN - DEFAULTS.heartbeatTicks - 1);
    // With the runtime's default ratio (max = 2 × min), that is within one (maximum) election timeout.
    expect(Math.max(...delays)).toBeLessThanOrEqual(DEFAULTS.electionTicks[1]);
  });

  it('a leader stepped down by check-quorum refuses proposals and reads', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.campaign('a');
    c.isolate('a');
    c.run(3 * EMIN);
    expect(c.raft('a').propose([{ type: 'command', data: new Uint8Array(1) }])).toBe('not_leader');
    expect(c.raft('a').readIndex(1)).toBe('not_leader');
  });

  it('a leader that hears from a majority stays leader, one follower down or not', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.campaign('a');
    c.crash('c');
    for (let i = 0; i < 50 * EMIN; i++) {
      c.run(1);
      expect(c.raft('a').role).toBe('leader');
    }
    expect(c.raft('a').term).toBe(2);
  });

  it('control: without check-quorum an isolated leader stays leader', () => {
    const c = new Cluster(['a', 'b', 'c'], { options: { checkQuorum: false } });
    c.campaign('a');
    c.isolate('a');
    c.run(50 * EMIN);
    expect([c.raft('a').role, c.raft('a').term]).toEqual(['leader', 2]);
  });
});

describe('§4.2.3 (dissertation) Leader lease: disruptive RequestVotes are ignored', () => {
  function followerOfA() {
    const { raft: b } = newRaft('b');
    b.step(appendEntries({ term: 2, from: 'a', to: 'b', prevLogIndex: 1, prevLogTerm: 1 }));
    drain(b);
    expect([b.role, b.leader, b.term]).toEqual(['follower', 'a', 2]);
    return b;
  }

  for (const preVote of [false, true]) {
    it(`a follower that heard from its leader within the minimum election timeout ignores a ${preVote ? 'pre-vote' : 'RequestVote'} with a higher term`, () => {
      const b = followerOfA();
      for (let i = 0; i < EMIN - 1; i++) b.tick();
      b.step(requestVote({ term: 9, from: 'c', to: 'b', lastLogIndex: 5, lastLogTerm: 2, preVote }));
      expect([b.term, b.votedFor, b.leader, b.role]).toEqual([2, null, 'a', 'follower']);
      expect(b.hasReady()).toBe(false);
    });
  }

  it("the lease does not keep a follower from following a newer leader's AppendEntries", () => {
    const b = followerOfA();
    b.step(appendEntries({ term: 3, from: 'c', to: 'b', prevLogIndex: 1, prevLogTerm: 1 }));
    expect([b.term, b.leader, b.role]).toEqual([3, 'c', 'follower']);
  });

  it('once a minimum election timeout passes without the leader, the same RequestVote is heard', () => {
    const b = followerOfA();
    for (let i = 0; i < EMIN; i++) b.tick();
    b.step(requestVote({ term: 9, from: 'c', to: 'b', lastLogIndex: 5, lastLogTerm: 2 }));
    expect([b.term, b.votedFor]).toEqual([9, 'c']);
    expect(b.ready().messages.filter(isVoteResponse)).toEqual([
      voteResponse({ term: 9, from: 'b', to: 'c', voteGranted: true }),
    ]);
  });

  it('a leader hearing from a majority ignores a RequestVote with a higher term', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.campaign('a');
    c.run(3);
    c.raft('a').step(requestVote({ term: 9, from: 'c', to: 'a', lastLogIndex: 9, lastLogTerm: 2 }));
    expect([c.raft('a').role, c.raft('a').term]).toEqual(['leader', 2]);
  });

  it('control: without check-quorum there is no lease, and the follower adopts the higher term at once', () => {
    const { raft: b } = newRaft('b', { options: { checkQuorum: false } });
    b.step(appendEntries({ term: 2, from: 'a', to: 'b', prevLogIndex: 1, prevLogTerm: 1 }));
    drain(b);
    b.step(requestVote({ term: 9, from: 'c', to: 'b', lastLogIndex: 5, lastLogTerm: 2 }));
    expect([b.term, b.votedFor]).toEqual([9, 'c']);
  });
});
