/**
 * Raft §5.4 (safety): the election restriction (§5.4.1), committing entries from previous
 * terms (§5.4.2, Figure 8), and the safety properties of Figure 3 under a seeded,
 * hostile network.
 */
import { describe, expect, it } from 'vitest';
import type { LogEntry, PeerId } from '../../src/types.js';
import {
  appendEntries,
  appendResponse,
  Cluster,
  command,
  drain,
  isAppend,
  isVote,
  logOf,
  logOfTerms,
  makeLeader,
  newRaft,
  PAPER,
  persistAndAdvance,
  requestVote,
  termsOf,
  tickUntil,
  tickUntilCampaign,
  chaos,
} from '../protocol-driver.js';

describe('§5.4.1 Election restriction', () => {
  // entries learned from a leader in term (want - 1), the RequestVote's term — TestVoteRequest.
  const cases: [LogEntry[], number][] = [
    [[command(2, 1)], 2],
    [[command(2, 1), command(3, 2)], 3],
  ];
  for (const [entries, term] of cases) {
    it(`a RequestVote carries the index and term of the candidate's last entry, to every peer: log ends at (${entries.length + 1}, ${term - 1}) (TestVoteRequest)`, () => {
      const { raft: r } = newRaft('a', { options: PAPER });
      r.step(appendEntries({ term: term - 1, from: 'b', to: 'a', prevLogIndex: 1, prevLogTerm: 1, entries }));
      drain(r);
      tickUntilCampaign(r);
      const votes = persistAndAdvance(r).messages.filter(isVote);
      const last = entries[entries.length - 1]!;
      expect(votes).toEqual([
        requestVote({ term, from: 'a', to: 'b', lastLogIndex: last.index, lastLogTerm: last.term }),
        requestVote({ term, from: 'a', to: 'c', lastLogIndex: last.index, lastLogTerm: last.term }),
      ]);
    });
  }

  // voter's log (terms), candidate's lastLogTerm and lastLogIndex, granted — TestVoter.
  const voters: [number[], number, number, boolean][] = [
    // same last term: the longer log wins, a tie grants
    [[1], 1, 1, true],
    [[1], 1, 2, true],
    [[1, 1], 1, 1, false],
    // candidate's last term higher: granted whatever the lengths
    [[1], 2, 1, true],
    [[1], 2, 2, true],
    [[1, 1], 2, 1, true],
    // voter's last term higher: refused whatever the lengths
    [[2], 1, 1, false],
    [[2], 1, 2, false],
    [[2, 2], 1, 1, false],
    [[1, 2], 1, 5, false],
  ];
  for (const [terms, lastLogTerm, lastLogIndex, granted] of voters) {
    it(`a voter with log ${JSON.stringify(terms)} ${granted ? 'grants' : 'refuses'} a candidate whose log ends at (${lastLogIndex}, ${lastLogTerm}) (TestVoter)`, () => {
      const { raft: r } = newRaft('a', { members: null, log: logOfTerms(null, terms), options: PAPER });
      r.step(requestVote({ term: 3, from: 'b', to: 'a', lastLogIndex, lastLogTerm }));
      const rd = r.ready();
      expect(rd.messages).toEqual([
        { type: 'RequestVoteResponse', term: 3, from: 'a', to: 'b', voteGranted: granted, preVote: false },
      ]);
      expect(r.votedFor).toBe(granted ? 'b' : null);
    });
  }
});

describe('§5.4.2 Committing entries from previous terms', () => {
  // the follower's matchIndex, the leader's commitIndex after — TestLeaderOnlyCommitsLogFromCurrentTerm.
  const cases: [number, number][] = [
    [1, 0],
    [2, 0],
    [3, 3],
  ];
  for (const [matchIndex, commit] of cases) {
    it(`a leader commits by counting replicas only an entry of its own term: follower matches up to ${matchIndex} -> commitIndex ${commit} (TestLeaderOnlyCommitsLogFromCurrentTerm)`, () => {
      // Two peers: the follower's acknowledgement alone makes a majority with the leader.
      const { raft: r } = newRaft('a', {
        members: ['a', 'b'],
        log: logOfTerms(['a', 'b'], [1, 2]),
        hardState: { term: 2, votedFor: null },
        options: PAPER,
      });
      const [noop] = makeLeader(r).filter(isAppend);
      expect(r.term).toBe(3);
      expect(r.log.lastIndex()).toBe(3);
      r.step(
        appendResponse({
          term: 3,
          from: 'b',
          to: 'a',
          success: true,
          matchIndex,
          prevLogIndex: noop!.prevLogIndex,
          seq: noop!.seq,
        }),
      );
      expect(r.log.commitIndex).toBe(commit);
    });
  }

  /** Elects `id` with the votes of `voters` alone (everyone else hears nothing), campaigning as often as needed. */
  function electWith(c: Cluster, id: PeerId, voters: PeerId[]): void {
    for (let attempt = 0; attempt < 5; attempt++) {
      const term = c.raft(id).term;
      tickUntil(c.raft(id), () => c.raft(id).term !== term);
      c.process(id);
      c.deliver((m) => m.from === id && voters.includes(m.to));
      c.drop((m) => m.from === id);
      for (const v of voters) c.process(v);
      c.deliver((m) => m.to === id);
      if (c.raft(id).role === 'leader') return;
    }
    throw new Error(`${id} was not elected`);
  }

  /**
   * Figure 8, (a) to (c): S1 led term 2 and placed index 2 on S2; S5 led term 3 and placed
   * its own index 2 on itself alone; S1 leads again in term 4 and places its index 2 (term
   * 2) on S3 as well: a majority, yet an entry of an earlier term.
   */
  function figure8(): Cluster {
    const ids = ['s1', 's2', 's3', 's4', 's5'];
    const c = new Cluster(ids, { options: { ...PAPER, maxBatchEntries: 1 } });
    // (a) S1 is elected in term 2 by S2 and S3; its no-op (index 2) reaches S2 only.
    electWith(c, 's1', ['s2', 's3']);
    expect(c.raft('s1').term).toBe(2);
    c.process('s1');
    c.deliver((m) => m.to === 's2');
    c.drop();
    c.process('s2');
    c.deliver();
    c.process('s1');
    expect(termsOf(logOf(c.raft('s2')))).toEqual([1, 2]);
    expect(c.raft('s1').log.commitIndex).toBe(0);
    // (b) S1 crashes; S5 is elected in term 3 by S3 and S4, stores its own index 2, and crashes.
    c.crash('s1');
    electWith(c, 's5', ['s3', 's4']);
    expect(c.raft('s5').term).toBe(3);
    c.process('s5');
    c.drop();
    c.crash('s5');
    expect(c.peer('s5').store.entries.map((e) => [e.index, e.term])).toEqual([
      [1, 1],
      [2, 3],
    ]);
    // (c) S1 restarts and is elected in term 4 by S2 and S3. Its index 2 reaches S3.
    c.restart('s1');
    electWith(c, 's1', ['s2', 's3']);
    expect(c.raft('s1').term).toBe(4);
    // S2 takes the no-op (index 3, term 4); S3 lacks index 2, so the leader backs up and sends it.
    for (let i = 0; i < 10; i++) {
      c.process('s1');
      c.process('s2');
      c.process('s3');
      // The no-op (term 4) may reach S3 only while S3 would refuse it for lacking index 2.
      c.drop(
        (m) =>
          m.to === 's3' &&
          isAppend(m) &&
          m.entries.some((e) => e.term === 4) &&
          c.raft('s3').log.lastIndex() >= 2,
      );
      c.deliver((m) => ['s1', 's2', 's3'].includes(m.to));
      c.drop();
    }
    expect(termsOf(logOf(c.raft('s1')))).toEqual([1, 2, 4]);
    expect(termsOf(logOf(c.raft('s2')))).toEqual([1, 2, 4]);
    expect(termsOf(logOf(c.raft('s3')))).toEqual([1, 2]);
    return c;
  }

  it('an entry of an earlier term stored on a majority is not committed by counting replicas (Figure 8, c)', () => {
    const c = figure8();
    // Index 2 (term 2) is on S1, S2 and S3: three of five.
    expect(['s1', 's2', 's3', 's4', 's5'].filter((id) => c.peer(id).store.entries[1]?.term === 2)).toEqual([
      's1',
      's2',
      's3',
    ]);
    expect(c.raft('s1').log.commitIndex).toBe(0);
    expect(c.peer('s1').applied.map((e) => e.index)).toEqual([]);
  });

  it('...which is right: S5 can still be elected and replace it everywhere, and no peer ever applied it (Figure 8, d)', () => {
    const c = figure8();
    c.crash('s1');
    c.restart('s5');
    electWith(c, 's5', ['s3', 's4']);
    expect(c.raft('s5').term).toBe(5);
    c.stabilize();
    for (const id of ['s2', 's3', 's4', 's5']) expect(termsOf(logOf(c.raft(id)))).toEqual([1, 3, 5]);
    expect(c.raft('s5').log.commitIndex).toBe(3);
    for (const p of c.peers.values())
      for (const life of p.lifetimes)
        expect(life.filter((e) => e.index === 2).map((e) => e.term)).not.toContain(2);
  });

  it('once the leader stores an entry of its own term on a majority, both commit, and S5 can never be elected (Figure 8, e)', () => {
    const c = figure8();
    // The no-op of term 4 now reaches S3 too: its AppendEntries is still unacknowledged at
    // the second heartbeat, which probes S3 again (the first one only proves leadership).
    c.tick('s1', 4);
    for (let i = 0; i < 10; i++) {
      for (const id of ['s1', 's2', 's3']) c.process(id);
      c.deliver((m) => ['s1', 's2', 's3'].includes(m.to));
      c.drop();
    }
    expect(termsOf(logOf(c.raft('s3')))).toEqual([1, 2, 4]);
    expect(c.raft('s1').log.commitIndex).toBe(3);
    expect(c.peer('s1').applied.map((e) => [e.index, e.term])).toEqual([
      [1, 1],
      [2, 2],
      [3, 4],
    ]);
    c.crash('s1');
    c.restart('s5');
    for (let i = 0; i < 300; i++) {
      c.run(1);
      expect(c.raft('s5').role).not.toBe('leader');
    }
    const [leader] = c.leaders();
    expect(['s2', 's3']).toContain(leader?.id);
    for (const id of ['s2', 's3', 's4', 's5'])
      expect(termsOf(logOf(c.raft(id))).slice(0, 3)).toEqual([1, 2, 4]);
  });
});

describe('§5.4.3 Safety argument: Figure 3 properties hold on a seeded, hostile network', () => {
  // More seeds for a hunt: RAFT_CHAOS_SEEDS=2000 pnpm exec vitest run test/paper/safety.test.ts
  const SEEDS = Number(process.env.RAFT_CHAOS_SEEDS ?? 20);

  for (const [name, options] of [
    ['the paper (no pre-vote, no check-quorum)', PAPER],
    ['pre-vote and check-quorum', {}],
    ['small batches and window', { maxInflight: 2, maxBatchEntries: 2 }],
  ] as const) {
    it(
      `Election Safety, Log Matching, Leader Completeness, State Machine Safety and linearizable ReadIndex hold over ${SEEDS} seeded runs: ${name}`,
      () => {
        let commits = 0;
        let reads = 0;
        for (let seed = 1; seed <= SEEDS; seed++) {
          const run = chaos(seed, 1500, { options });
          commits += run.commits;
          reads += run.reads;
        }
        // The runs did make progress: the properties were not checked on empty logs.
        expect(commits).toBeGreaterThan(SEEDS * 20);
        expect(reads).toBeGreaterThan(SEEDS * 2);
      },
      Math.max(120_000, SEEDS * 1000),
    ); // a budget for a loaded CI box, not a speed bound
  }
});
