/**
 * Raft §5.1 (terms) and §5.2 (leader election), one claim of the paper per test, after
 * etcd-raft's raft_paper_test.go. These run the protocol as the paper describes it
 * (PAPER: no pre-vote, no check-quorum); the extensions have their own file.
 */
import { describe, expect, it } from 'vitest';
import type { Raft } from '../../src/protocol/raft.js';
import type { RaftMessage } from '../../src/types.js';
import {
  appendEntries,
  appendResponse,
  Cluster,
  drain,
  isAppend,
  isVote,
  makeLeader,
  newRaft,
  PAPER,
  persistAndAdvance,
  requestVote,
  tickUntil,
  tickUntilCampaign,
  voteResponse,
} from '../protocol-driver.js';

/** A peer of a three-peer cluster {a, b, c} in the given role, at term 2 unless a role needs more. */
function inRole(role: 'follower' | 'candidate' | 'precandidate' | 'leader'): Raft {
  const { raft } = newRaft('a', {
    hardState: { term: 2, votedFor: null },
    options: { ...PAPER, preVote: role === 'precandidate' },
  });
  if (role === 'follower') {
    raft.step(appendEntries({ term: 2, from: 'b', to: 'a', prevLogIndex: 1, prevLogTerm: 1 }));
  } else if (role === 'leader') {
    makeLeader(raft);
  } else {
    tickUntilCampaign(raft);
  }
  drain(raft);
  expect(raft.role).toBe(role);
  return raft;
}

describe('§5.1 Raft basics: terms', () => {
  const higher: Record<
    'AppendEntries' | 'AppendEntriesResponse' | 'RequestVote' | 'RequestVoteResponse',
    (term: number) => RaftMessage
  > = {
    AppendEntries: (term) => appendEntries({ term, from: 'b', to: 'a', prevLogIndex: 99, prevLogTerm: 99 }),
    AppendEntriesResponse: (term) => appendResponse({ term, from: 'b', to: 'a', success: false }),
    // A log behind ours, so the vote is refused and votedFor stays empty.
    RequestVote: (term) => requestVote({ term, from: 'b', to: 'a', lastLogIndex: 0, lastLogTerm: 0 }),
    RequestVoteResponse: (term) => voteResponse({ term, from: 'b', to: 'a', voteGranted: false }),
  };

  for (const role of ['follower', 'precandidate', 'candidate', 'leader'] as const) {
    for (const [type, make] of Object.entries(higher)) {
      it(`a ${role} that receives ${type} with a higher term adopts it and becomes a follower (TestUpdateTermFromMessage)`, () => {
        const r = inRole(role);
        const term = r.term + 3;
        r.step(make(term));
        expect(r.term).toBe(term);
        expect(r.role).toBe('follower');
        expect(r.votedFor).toBeNull();
        // Only AppendEntries names the new term's leader.
        expect(r.leader).toBe(type === 'AppendEntries' ? 'b' : null);
        // The new term is durable before anything is sent in it.
        const rd = r.ready();
        expect(rd.hardState).toEqual({ term, votedFor: null });
      });
    }
  }

  it('an AppendEntries with a stale term is rejected with the current term, and changes nothing (TestRejectStaleTermMessage)', () => {
    const { raft: r } = newRaft('a', { hardState: { term: 3, votedFor: null }, options: PAPER });
    r.step(appendEntries({ term: 3, from: 'c', to: 'a', prevLogIndex: 1, prevLogTerm: 1 }));
    drain(r);
    const before = { term: r.term, leader: r.leader, last: r.log.lastIndex(), commit: r.log.commitIndex };
    r.step(
      appendEntries({
        term: 2,
        from: 'b',
        to: 'a',
        prevLogIndex: 1,
        prevLogTerm: 1,
        leaderCommit: 2,
        entries: [{ index: 2, term: 2, type: 'command', data: new Uint8Array(1) }],
        seq: 7,
      }),
    );
    expect({ term: r.term, leader: r.leader, last: r.log.lastIndex(), commit: r.log.commitIndex }).toEqual(
      before,
    );
    const rd = persistAndAdvance(r);
    expect(rd.entries).toEqual([]);
    expect(rd.messages).toEqual([
      appendResponse({
        term: 3,
        from: 'a',
        to: 'b',
        success: false,
        matchIndex: 0,
        prevLogIndex: 1,
        conflictIndex: 0,
        conflictTerm: 0,
        seq: 7,
      }),
    ]);
  });

  it('a RequestVote with a stale term gets no vote', () => {
    const { raft: r } = newRaft('a', { hardState: { term: 3, votedFor: null }, options: PAPER });
    r.step(requestVote({ term: 2, from: 'b', to: 'a', lastLogIndex: 5, lastLogTerm: 2 }));
    expect(r.votedFor).toBeNull();
    expect(r.term).toBe(3);
    const rd = persistAndAdvance(r);
    expect(rd.hardState).toBeUndefined();
    expect(rd.messages.filter((m) => m.type === 'RequestVoteResponse' && m.voteGranted)).toEqual([]);
  });

  it('a vote granted in a stale term does not count toward the current election', () => {
    const { raft: r } = newRaft('a', { hardState: { term: 3, votedFor: null }, options: PAPER });
    tickUntilCampaign(r);
    expect(r.term).toBe(4);
    r.step(voteResponse({ term: 3, from: 'b', to: 'a', voteGranted: true }));
    r.step(voteResponse({ term: 3, from: 'c', to: 'a', voteGranted: true }));
    expect(r.role).toBe('candidate');
  });

  it("an acknowledgement from a stale term does not advance the leader's matchIndex", () => {
    const { raft: r } = newRaft('a', { hardState: { term: 3, votedFor: null }, options: PAPER });
    makeLeader(r);
    expect(r.term).toBe(4);
    r.step(appendResponse({ term: 3, from: 'b', to: 'a', success: true, matchIndex: 2 }));
    expect(r.progressOf('b')?.matchIndex).toBe(0);
    expect(r.log.commitIndex).toBe(0);
  });
});

describe('§5.2 Leader election', () => {
  it('a peer starts as a follower, with no leader, in the term it persisted (TestStartAsFollower)', () => {
    const { raft: fresh } = newRaft('a');
    expect([fresh.role, fresh.leader, fresh.term]).toEqual(['follower', null, 1]);
    const { raft: restarted } = newRaft('a', { hardState: { term: 5, votedFor: 'c' } });
    expect([restarted.role, restarted.leader, restarted.term, restarted.votedFor]).toEqual([
      'follower',
      null,
      5,
      'c',
    ]);
    expect(restarted.hasReady()).toBe(false);
  });

  it('a leader sends an empty AppendEntries heartbeat to every follower each heartbeat interval (TestLeaderBcastBeat)', () => {
    const { raft: r } = newRaft('a', { options: { ...PAPER, heartbeatTicks: 3 } });
    for (const m of makeLeader(r).filter(isAppend))
      r.step(
        appendResponse({ term: m.term, from: m.to, to: 'a', matchIndex: 2, prevLogIndex: 1, seq: m.seq }),
      );
    drain(r);
    expect(r.log.commitIndex).toBe(2);
    r.tick();
    r.tick();
    expect(r.hasReady()).toBe(false);
    r.tick();
    const rd = persistAndAdvance(r);
    expect(rd.messages).toEqual([
      appendEntries({
        term: 2,
        from: 'a',
        to: 'b',
        prevLogIndex: 2,
        prevLogTerm: 2,
        entries: [],
        leaderCommit: 2,
        seq: expect.any(Number) as number,
      }),
      appendEntries({
        term: 2,
        from: 'a',
        to: 'c',
        prevLogIndex: 2,
        prevLogTerm: 2,
        entries: [],
        leaderCommit: 2,
        seq: expect.any(Number) as number,
      }),
    ]);
  });

  it('a follower that hears nothing for an election timeout becomes a candidate: term + 1, votes for itself, asks every peer (TestFollowerStartElection)', () => {
    const { raft: r } = newRaft('a', { options: PAPER });
    r.step(appendEntries({ term: 1, from: 'b', to: 'a', prevLogIndex: 1, prevLogTerm: 1 }));
    drain(r);
    const ticks = tickUntilCampaign(r);
    expect(ticks).toBeGreaterThanOrEqual(10);
    expect(ticks).toBeLessThanOrEqual(20);
    expect([r.role, r.term, r.votedFor, r.leader]).toEqual(['candidate', 2, 'a', null]);
    const rd = persistAndAdvance(r);
    // Term and self-vote are durable before the requests go out (Figure 2, persistent state).
    expect(rd.hardState).toEqual({ term: 2, votedFor: 'a' });
    expect(rd.messages).toEqual([
      requestVote({ term: 2, from: 'a', to: 'b', lastLogIndex: 1, lastLogTerm: 1 }),
      requestVote({ term: 2, from: 'a', to: 'c', lastLogIndex: 1, lastLogTerm: 1 }),
    ]);
  });

  it("a follower stays follower as long as it hears from the current leader; a stale leader's AppendEntries do not count", () => {
    const { raft: r } = newRaft('a', { hardState: { term: 3, votedFor: null }, options: PAPER });
    for (let tick = 1; tick <= 1000; tick++) {
      r.tick();
      if (tick % 5 === 0)
        r.step(appendEntries({ term: 3, from: 'b', to: 'a', prevLogIndex: 1, prevLogTerm: 1 }));
      drain(r);
    }
    expect([r.role, r.term, r.leader]).toEqual(['follower', 3, 'b']);
    // Only a stale leader (term 2) keeps talking now: within one election timeout, a campaigns.
    const ticks = tickUntil(r, () => {
      r.step(appendEntries({ term: 2, from: 'c', to: 'a', prevLogIndex: 1, prevLogTerm: 1 }));
      return r.role !== 'follower';
    });
    expect(ticks).toBeLessThanOrEqual(20);
    expect([r.role, r.term]).toEqual(['candidate', 4]);
  });

  it('a candidate that neither wins nor loses starts a new election in the next term when its timeout elapses (TestCandidateStartNewElection)', () => {
    const { raft: r } = newRaft('a', { options: PAPER });
    tickUntilCampaign(r);
    drain(r);
    expect([r.role, r.term]).toEqual(['candidate', 2]);
    const ticks = tickUntil(r, () => r.term !== 2);
    expect(ticks).toBeGreaterThanOrEqual(10);
    expect(ticks).toBeLessThanOrEqual(20);
    expect([r.role, r.term, r.votedFor]).toEqual(['candidate', 3, 'a']);
    const rd = persistAndAdvance(r);
    expect(rd.hardState).toEqual({ term: 3, votedFor: 'a' });
    expect(rd.messages.filter(isVote).map((m) => [m.to, m.term])).toEqual([
      ['b', 3],
      ['c', 3],
    ]);
  });

  // size, votes received (true: granted), outcome — TestLeaderElectionInOneRoundRPC.
  const rounds: [number, Record<string, boolean>, 'leader' | 'follower' | 'candidate'][] = [
    // wins with a majority of the cluster, its own vote included
    [1, {}, 'leader'],
    [3, { n2: true, n3: true }, 'leader'],
    [3, { n2: true }, 'leader'],
    [5, { n2: true, n3: true, n4: true, n5: true }, 'leader'],
    [5, { n2: true, n3: true, n4: true }, 'leader'],
    [5, { n2: true, n3: true }, 'leader'],
    // loses when a majority refuses: back to follower
    [3, { n2: false, n3: false }, 'follower'],
    [5, { n2: false, n3: false, n4: false, n5: false }, 'follower'],
    [5, { n2: true, n3: false, n4: false, n5: false }, 'follower'],
    // neither: stays candidate
    [3, {}, 'candidate'],
    [5, { n2: true }, 'candidate'],
    [5, { n2: false, n3: false }, 'candidate'],
    [5, {}, 'candidate'],
    [4, { n2: true }, 'candidate'],
    [4, { n2: true, n3: true }, 'leader'],
  ];
  for (const [size, votes, outcome] of rounds) {
    it(`a candidate of a ${size}-peer cluster with votes ${JSON.stringify(votes)} ends as ${outcome} (TestLeaderElectionInOneRoundRPC)`, () => {
      const members = Array.from({ length: size }, (_, i) => `n${i + 1}`);
      const { raft: r } = newRaft('n1', { members, options: PAPER });
      tickUntilCampaign(r);
      drain(r);
      for (const [from, granted] of Object.entries(votes))
        r.step(voteResponse({ term: 2, from, to: 'n1', voteGranted: granted }));
      expect(r.role).toBe(outcome);
      expect(r.term).toBe(2);
    });
  }

  // votedFor at term 1, candidate asking in term 1, granted — TestFollowerVote.
  const votes: [string | null, string, boolean][] = [
    [null, 'b', true],
    [null, 'c', true],
    ['b', 'b', true],
    ['c', 'c', true],
    ['b', 'c', false],
    ['c', 'b', false],
  ];
  for (const [votedFor, candidate, granted] of votes) {
    it(`a follower that voted for ${String(votedFor)} ${granted ? 'grants' : 'refuses'} ${candidate} in the same term: one vote per term, first come first served (TestFollowerVote)`, () => {
      const { raft: r } = newRaft('a', { hardState: { term: 1, votedFor } });
      r.step(requestVote({ term: 1, from: candidate, to: 'a', lastLogIndex: 1, lastLogTerm: 1 }));
      expect(r.ready().messages).toEqual([
        voteResponse({ term: 1, from: 'a', to: candidate, voteGranted: granted }),
      ]);
      expect(r.votedFor).toBe(votedFor ?? candidate);
    });
  }

  for (const term of [2, 3]) {
    it(`a candidate at term 2 that receives AppendEntries from a leader of term ${term} becomes its follower (TestCandidateFallback)`, () => {
      const { raft: r } = newRaft('a', { options: PAPER });
      tickUntilCampaign(r);
      drain(r);
      expect([r.role, r.term]).toEqual(['candidate', 2]);
      r.step(appendEntries({ term, from: 'b', to: 'a', prevLogIndex: 1, prevLogTerm: 1 }));
      expect([r.role, r.term, r.leader]).toEqual(['follower', term, 'b']);
      // It answers as a follower: the consistency check passed.
      expect(r.ready().messages).toEqual([
        appendResponse({ term, from: 'a', to: 'b', success: true, matchIndex: 1, prevLogIndex: 1 }),
      ]);
    });
  }

  it('election timeouts are drawn at random from [min, max], each value in use (TestFollowerElectionTimeoutRandomized)', () => {
    const { raft: r } = newRaft('a', { options: PAPER });
    const seen = new Map<number, number>();
    for (let round = 0; round < 500; round++) {
      // A heartbeat of a newer term: the follower resets its timer and draws a new timeout.
      r.step(appendEntries({ term: r.term + 1, from: 'b', to: 'a', prevLogIndex: 1, prevLogTerm: 1 }));
      drain(r);
      const ticks = tickUntilCampaign(r);
      seen.set(ticks, (seen.get(ticks) ?? 0) + 1);
      drain(r);
    }
    expect([...seen.keys()].sort((x, y) => x - y)).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
  });

  it("a candidate's timeouts are randomized too (TestCandidateElectionTimeoutRandomized)", () => {
    const { raft: r } = newRaft('a', { options: PAPER });
    tickUntilCampaign(r);
    const seen = new Set<number>();
    for (let round = 0; round < 500; round++) {
      const term = r.term;
      seen.add(tickUntil(r, () => r.term !== term));
    }
    expect([...seen].sort((x, y) => x - y)).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
  });

  it('randomized timeouts make it rare for two of five peers to time out on the same tick (TestFollowersElectionTimeoutNonconflict)', () => {
    const ids = ['a', 'b', 'c', 'd', 'e'];
    const peers = ids.map((id) => newRaft(id, { members: ids, options: PAPER }).raft);
    let conflicts = 0;
    const rounds = 1000;
    for (let round = 0; round < rounds; round++) {
      for (const r of peers) {
        r.step(
          appendEntries({
            term: r.term + 1,
            from: r.id === 'a' ? 'b' : 'a',
            to: r.id,
            prevLogIndex: 1,
            prevLogTerm: 1,
          }),
        );
        drain(r);
      }
      let timedOut = 0;
      for (let tick = 0; timedOut === 0; tick++) {
        if (tick > 1000) throw new Error('no peer timed out');
        for (const r of peers) {
          r.tick();
          if (r.role !== 'follower') timedOut++;
        }
      }
      if (timedOut > 1) conflicts++;
      for (const r of peers) drain(r);
    }
    // Uniform over 11 values, P(a tie at the minimum of 5 draws) is 0.21; a fixed timeout gives 1.
    expect(conflicts / rounds).toBeLessThanOrEqual(0.3);
  });

  it('a candidate that wins asserts leadership at once: a no-op of its term (§8) in AppendEntries to every peer', () => {
    const { raft: r } = newRaft('a', { options: PAPER });
    tickUntilCampaign(r);
    drain(r);
    r.step(voteResponse({ term: 2, from: 'b', to: 'a' }));
    expect([r.role, r.leader]).toEqual(['leader', 'a']);
    const rd = persistAndAdvance(r);
    expect(rd.entries.map((e) => [e.index, e.term, e.type])).toEqual([[2, 2, 'noop']]);
    expect(
      rd.messages
        .filter(isAppend)
        .map((m) => [m.to, m.prevLogIndex, m.prevLogTerm, m.entries.map((e) => e.type)]),
    ).toEqual([
      ['b', 1, 1, ['noop']],
      ['c', 1, 1, ['noop']],
    ]);
    expect(rd.softState).toEqual({ role: 'leader', leader: 'a' });
  });

  it('a three-peer cluster elects exactly one leader, which every peer knows', () => {
    const c = new Cluster(['a', 'b', 'c'], { options: PAPER });
    for (let i = 0; i < 100 && c.leaders().length === 0; i++) c.run(1);
    const [leader, ...others] = c.leaders();
    expect(leader).toBeDefined();
    expect(others).toEqual([]);
    for (const p of c.peers.values()) {
      expect(p.raft.leader).toBe(leader!.id);
      expect(p.raft.term).toBe(leader!.raft.term);
    }
  });
});
