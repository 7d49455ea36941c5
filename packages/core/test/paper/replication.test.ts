/**
 * Raft §5.3 (log replication), one claim of the paper per test, after etcd-raft's
 * raft_paper_test.go, plus Figure 7 and the conflict hint ("a term at a time").
 */
import { describe, expect, it } from 'vitest';
import type { LogEntry, PeerId } from '../../src/types.js';
import {
  accept,
  appendEntries,
  appendResponse,
  appendsIn,
  bytes,
  Cluster,
  command,
  configEntry,
  drain,
  isAppend,
  isAppendResponse,
  logOf,
  logOfTerms,
  makeLeader,
  newRaft,
  PAPER,
  persistAndAdvance,
  steadyLeader,
  termsOf,
  text,
} from '../protocol-driver.js';

const ABC = ['a', 'b', 'c'];

describe('§5.3 Log replication: the leader', () => {
  it('appends a proposal to its log, persists it, and sends it to every follower with the index and term that precede it (TestLeaderStartReplication)', () => {
    const { raft: r } = steadyLeader();
    const li = r.log.lastIndex();
    const result = r.propose([{ type: 'command', data: bytes('some data') }]);
    expect(result).toEqual({ index: li + 1, term: 2 });
    expect(r.log.lastIndex()).toBe(li + 1);
    expect(r.log.commitIndex).toBe(li);
    const rd = r.ready();
    const entry: LogEntry = { index: li + 1, term: 2, type: 'command', data: bytes('some data') };
    expect(rd.entries).toEqual([entry]);
    expect(rd.messages).toEqual([
      appendEntries({
        term: 2,
        from: 'a',
        to: 'b',
        prevLogIndex: li,
        prevLogTerm: 2,
        entries: [entry],
        leaderCommit: li,
        seq: expect.any(Number) as number,
      }),
      appendEntries({
        term: 2,
        from: 'a',
        to: 'c',
        prevLogIndex: li,
        prevLogTerm: 2,
        entries: [entry],
        leaderCommit: li,
        seq: expect.any(Number) as number,
      }),
    ]);
  });

  it('commits an entry once it is safely replicated, hands it out to apply, and tells followers the new commitIndex in later AppendEntries (TestLeaderCommitEntry)', () => {
    const { raft: r } = steadyLeader({ options: { heartbeatTicks: 1 } });
    const li = r.log.lastIndex();
    r.propose([{ type: 'command', data: bytes('some data') }]);
    const sent = persistAndAdvance(r).messages.filter(isAppend);
    for (const m of sent) r.step(accept(m));
    expect(r.log.commitIndex).toBe(li + 1);
    const rd = persistAndAdvance(r);
    expect(rd.committed).toEqual([{ index: li + 1, term: 2, type: 'command', data: bytes('some data') }]);
    r.tick();
    const beats = persistAndAdvance(r).messages.filter(isAppend);
    expect(beats.map((m) => [m.to, m.leaderCommit])).toEqual([
      ['b', li + 1],
      ['c', li + 1],
    ]);
  });

  // cluster size, followers that acknowledge, committed — TestLeaderAcknowledgeCommit.
  const acks: [number, string[], boolean][] = [
    [1, [], true],
    [3, [], false],
    [3, ['n2'], true],
    [3, ['n2', 'n3'], true],
    [5, [], false],
    [5, ['n2'], false],
    [5, ['n2', 'n3'], true],
    [5, ['n2', 'n3', 'n4'], true],
    [5, ['n2', 'n3', 'n4', 'n5'], true],
  ];
  for (const [size, ackers, committed] of acks) {
    it(`commits an entry replicated on a majority: ${size} peers, acknowledged by [${ackers.join(', ')}] -> ${committed ? '' : 'not '}committed (TestLeaderAcknowledgeCommit)`, () => {
      const members = Array.from({ length: size }, (_, i) => `n${i + 1}`);
      const { raft: r } = newRaft('n1', { members, options: PAPER });
      for (const m of makeLeader(r).filter(isAppend)) r.step(accept(m));
      drain(r);
      const li = r.log.lastIndex();
      expect(r.log.commitIndex).toBe(li);
      r.propose([{ type: 'command', data: bytes('x') }]);
      for (const m of persistAndAdvance(r).messages.filter(isAppend))
        if (ackers.includes(m.to)) r.step(accept(m));
      expect(r.log.commitIndex > li).toBe(committed);
    });
  }

  // logs left by earlier leaders (terms, index 1 first) — TestLeaderCommitPrecedingEntries.
  for (const terms of [[1], [1, 2], [1, 1, 2], [2, 2]]) {
    it(`commits every preceding entry with its own, earlier leaders' entries included, and hands them out in log order: log ${JSON.stringify(terms)} (TestLeaderCommitPrecedingEntries)`, () => {
      const log = logOfTerms(ABC, terms);
      const { raft: r } = newRaft('a', { log, hardState: { term: 2, votedFor: null }, options: PAPER });
      const first = makeLeader(r);
      expect(r.term).toBe(3);
      r.propose([{ type: 'command', data: bytes('some data') }]);
      for (const m of first.filter(isAppend)) r.step(accept(m));
      const committed: LogEntry[] = [];
      for (let i = 0; i < 10; i++) {
        const rd = persistAndAdvance(r);
        committed.push(...rd.committed);
        for (const m of rd.messages.filter(isAppend)) r.step(accept(m));
      }
      const li = terms.length;
      expect(committed).toEqual([
        ...log,
        { index: li + 1, term: 3, type: 'noop', data: new Uint8Array(0) },
        { index: li + 2, term: 3, type: 'command', data: bytes('some data') },
      ]);
    });
  }
});

describe('§5.3 Log replication: the follower', () => {
  // entries the leader sends after (1, 1), its commitIndex, what the follower commits — TestFollowerCommitEntry.
  const commits: [LogEntry[], number][] = [
    [[command(2, 1, 'some data')], 2],
    [[command(2, 1, 'some data'), command(3, 1, 'some data2')], 3],
    [[command(2, 1, 'some data2'), command(3, 1, 'some data')], 3],
    [[command(2, 1, 'some data'), command(3, 1, 'some data2')], 2],
  ];
  for (const [entries, leaderCommit] of commits) {
    it(`learns the commitIndex from AppendEntries and applies committed entries in log order: new ${JSON.stringify(entries.map((e) => text(e.data)))}, leaderCommit ${leaderCommit} (TestFollowerCommitEntry)`, () => {
      const { raft: r } = newRaft('a');
      r.step(
        appendEntries({
          term: 1,
          from: 'b',
          to: 'a',
          prevLogIndex: 1,
          prevLogTerm: 1,
          entries,
          leaderCommit,
        }),
      );
      expect(r.log.commitIndex).toBe(leaderCommit);
      const rd = r.ready();
      expect(rd.committed).toEqual([configEntry(1, 1, ABC), ...entries].slice(0, leaderCommit));
    });
  }

  // Follower log [1, 2] (terms). prevLogIndex, prevLogTerm, the answer — TestFollowerCheckMsgApp.
  const checks: [
    number,
    number,
    { success: boolean; matchIndex: number; conflictIndex: number; conflictTerm: number },
  ][] = [
    // matches: accepted, and the answer says how far the logs now agree
    [0, 0, { success: true, matchIndex: 0, conflictIndex: 0, conflictTerm: 0 }],
    [1, 1, { success: true, matchIndex: 1, conflictIndex: 0, conflictTerm: 0 }],
    [2, 2, { success: true, matchIndex: 2, conflictIndex: 0, conflictTerm: 0 }],
    // an entry of another term at prevLogIndex: refused, with our term there and where it starts
    [2, 1, { success: false, matchIndex: 0, conflictIndex: 2, conflictTerm: 2 }],
    [1, 2, { success: false, matchIndex: 0, conflictIndex: 1, conflictTerm: 1 }],
    // no entry at prevLogIndex: refused, pointing just past our last entry
    [3, 2, { success: false, matchIndex: 0, conflictIndex: 3, conflictTerm: 0 }],
    [9, 3, { success: false, matchIndex: 0, conflictIndex: 3, conflictTerm: 0 }],
  ];
  for (const [prevLogIndex, prevLogTerm, answer] of checks) {
    it(`refuses AppendEntries unless its log holds (prevLogIndex ${prevLogIndex}, prevLogTerm ${prevLogTerm}) (TestFollowerCheckMsgApp)`, () => {
      const { raft: r } = newRaft('a', {
        log: logOfTerms(ABC, [1, 2]),
        hardState: { term: 2, votedFor: null },
      });
      r.step(appendEntries({ term: 2, from: 'b', to: 'a', prevLogIndex, prevLogTerm, seq: 5 }));
      expect(r.ready().messages).toEqual([
        appendResponse({ term: 2, from: 'a', to: 'b', prevLogIndex, seq: 5, ...answer }),
      ]);
      expect(termsOf(logOf(r))).toEqual([1, 2]);
    });
  }

  it("its conflict hint never points at or below its commitIndex: committed entries match any leader's (§5.4)", () => {
    const { raft: r } = newRaft('a', {
      log: logOfTerms(ABC, [1, 2, 2, 2]),
      hardState: { term: 2, votedFor: null },
    });
    r.step(appendEntries({ term: 2, from: 'b', to: 'a', prevLogIndex: 4, prevLogTerm: 2, leaderCommit: 3 }));
    drain(r);
    expect(r.log.commitIndex).toBe(3);
    // A new leader whose entry 4 is of term 3: the term-2 run starts at 2, but 2 and 3 are committed.
    r.step(appendEntries({ term: 3, from: 'c', to: 'a', prevLogIndex: 4, prevLogTerm: 3, seq: 1 }));
    expect(r.ready().messages).toEqual([
      appendResponse({
        term: 3,
        from: 'a',
        to: 'c',
        success: false,
        matchIndex: 0,
        prevLogIndex: 4,
        conflictIndex: 4,
        conflictTerm: 2,
        seq: 1,
      }),
    ]);
  });

  // Follower log [1, 2] (terms), durable. prev (index, term), entries (terms), log after, entries to persist — TestFollowerAppendEntries.
  const appends: [number, number, number[], number[], number[]][] = [
    [2, 2, [3], [1, 2, 3], [3]],
    [1, 1, [3, 4], [1, 3, 4], [3, 4]],
    [0, 0, [1], [1, 2], []],
    [0, 0, [3], [3], [3]],
  ];
  for (const [prevLogIndex, prevLogTerm, terms, after, unstable] of appends) {
    it(`deletes a conflicting entry and all that follow, appends the new ones, and persists only what changed: after (${prevLogIndex}, ${prevLogTerm}) terms ${JSON.stringify(terms)} -> ${JSON.stringify(after)} (TestFollowerAppendEntries)`, () => {
      const log = logOfTerms(ABC, [1, 2]);
      const { raft: r, store } = newRaft('a', { log, hardState: { term: 2, votedFor: null } });
      const entries = terms.map((t, i) =>
        prevLogIndex + 1 + i === 1 && t === 1 ? log[0]! : command(prevLogIndex + 1 + i, t),
      );
      r.step(appendEntries({ term: 4, from: 'b', to: 'a', prevLogIndex, prevLogTerm, entries }));
      expect(termsOf(logOf(r))).toEqual(after);
      const rd = persistAndAdvance(r, store);
      expect(termsOf(rd.entries)).toEqual(unstable);
      expect(rd.entries.map((e) => e.index)).toEqual(
        unstable.map((_, i) => prevLogIndex + 1 + terms.length - unstable.length + i),
      );
      // What is durable is exactly the log the follower acknowledged.
      expect(store.entries).toEqual(logOf(r));
    });
  }

  it('keeps entries that follow a matching AppendEntries: a delayed, shorter request truncates nothing', () => {
    const { raft: r, store } = newRaft('a', {
      log: logOfTerms(ABC, [1, 2, 2, 2]),
      hardState: { term: 2, votedFor: null },
    });
    r.step(
      appendEntries({
        term: 2,
        from: 'b',
        to: 'a',
        prevLogIndex: 1,
        prevLogTerm: 1,
        entries: [command(2, 2)],
      }),
    );
    expect(termsOf(logOf(r))).toEqual([1, 2, 2, 2]);
    const rd = persistAndAdvance(r, store);
    expect(rd.entries).toEqual([]);
    // It vouches only for what this request proves: up to index 2.
    expect(rd.messages).toEqual([
      appendResponse({ term: 2, from: 'a', to: 'b', success: true, matchIndex: 2, prevLogIndex: 1 }),
    ]);
  });

  it('sets commitIndex = min(leaderCommit, index of the last new entry): an unverified suffix is never committed (Figure 2)', () => {
    // Entries 3 and 4 come from an old term; the leader's log may differ there.
    const { raft: r } = newRaft('a', {
      log: logOfTerms(ABC, [1, 1, 2, 2]),
      hardState: { term: 3, votedFor: null },
    });
    r.step(
      appendEntries({
        term: 3,
        from: 'b',
        to: 'a',
        prevLogIndex: 2,
        prevLogTerm: 1,
        entries: [],
        leaderCommit: 9,
      }),
    );
    expect(r.log.commitIndex).toBe(2);
    expect(r.ready().committed.map((e) => e.index)).toEqual([1, 2]);
  });

  it('re-acknowledges an AppendEntries that precedes its commitIndex with its commitIndex, changing nothing', () => {
    const { raft: r } = newRaft('a', {
      log: logOfTerms(ABC, [1, 2, 2]),
      hardState: { term: 2, votedFor: null },
    });
    r.step(appendEntries({ term: 2, from: 'b', to: 'a', prevLogIndex: 3, prevLogTerm: 2, leaderCommit: 3 }));
    drain(r);
    r.step(
      appendEntries({
        term: 2,
        from: 'b',
        to: 'a',
        prevLogIndex: 1,
        prevLogTerm: 1,
        entries: [command(2, 2)],
        seq: 4,
      }),
    );
    expect(termsOf(logOf(r))).toEqual([1, 2, 2]);
    expect(r.ready().messages).toEqual([
      appendResponse({ term: 2, from: 'a', to: 'b', success: true, matchIndex: 3, prevLogIndex: 1, seq: 4 }),
    ]);
  });
});

describe('§5.3 Log replication: the leader brings every follower log into line with its own (Figure 7)', () => {
  // The leader's log of Figure 7 (term 8), and the six follower logs a–f it may meet.
  const leaderTerms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
  const followers: Record<string, number[]> = {
    a: [1, 1, 1, 4, 4, 5, 5, 6, 6],
    b: [1, 1, 1, 4],
    c: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    d: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    e: [1, 1, 1, 4, 4, 4, 4],
    f: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
  };
  for (const [name, terms] of Object.entries(followers)) {
    it(`follower (${name}) ${JSON.stringify(terms)} ends with the leader's log (TestLeaderSyncFollowerLog)`, () => {
      const members = ['ldr', 'flw', 'voter'];
      const c = new Cluster(members, {
        options: PAPER,
        logs: {
          ldr: logOfTerms(members, leaderTerms),
          flw: logOfTerms(members, terms),
          voter: logOfTerms(members, [1]),
        },
        hardStates: {
          ldr: { term: 8, votedFor: null },
          flw: { term: 7, votedFor: null },
          voter: { term: 7, votedFor: null },
        },
      });
      // The follower may hold a more up-to-date log than the leader (c, d), so the third peer's vote decides.
      c.campaign('ldr');
      expect(c.leaders().map((p) => p.id)).toEqual(['ldr']);
      c.propose('ldr', 'x');
      c.stabilize();
      c.tick('ldr', 2); // a heartbeat carries the final commitIndex
      c.stabilize();
      const want = logOf(c.raft('ldr'));
      expect(termsOf(want)).toEqual([...leaderTerms, 9, 9]);
      expect(logOf(c.raft('flw'))).toEqual(want);
      expect(c.peer('flw').store.entries).toEqual(want);
      expect(c.raft('flw').log.commitIndex).toBe(want.length);
      expect(c.raft('ldr').log.commitIndex).toBe(want.length);
    });
  }
});

describe('§5.3 Log replication: the conflict hint backs the leader up a term at a time, not an entry at a time', () => {
  /** Runs leader `a` (term 6) against follower `b` alone; returns the AppendEntries it sent b and b's answers. */
  function sync(leaderTerms: number[], followerTerms: number[]) {
    const members = ['a', 'b', 'c'];
    const c = new Cluster(members, {
      options: PAPER,
      logs: {
        a: logOfTerms(members, leaderTerms),
        b: logOfTerms(members, followerTerms),
        c: logOfTerms(members, [1]),
      },
      hardStates: {
        a: { term: 5, votedFor: null },
        b: { term: 5, votedFor: null },
        c: { term: 5, votedFor: null },
      },
    });
    c.isolate('b');
    c.campaign('a');
    expect(c.leaders().map((p) => p.id)).toEqual(['a']);
    c.heal();
    const from = c.sent.length;
    const bWritesFrom = c.peer('b').store.writes;
    c.tick('a', 2); // a heartbeat starts the probing
    c.stabilize();
    const toB = c.sent
      .slice(from)
      .filter(isAppend)
      .filter((m) => m.to === 'b');
    const fromB = c.sent
      .slice(from)
      .filter(isAppendResponse)
      .filter((m) => m.from === 'b');
    expect(logOf(c.raft('b'))).toEqual(logOf(c.raft('a')));
    return { c, toB, fromB, bWrites: c.peer('b').store.writes - bWritesFrom };
  }

  it('a follower with 60 divergent entries over three old terms costs four rejections, not sixty', () => {
    const leader = [1, ...Array<number>(70).fill(5)];
    const follower = [
      1,
      ...Array<number>(20).fill(2),
      ...Array<number>(20).fill(3),
      ...Array<number>(20).fill(4),
    ];
    const { fromB } = sync(leader, follower);
    const rejections = fromB.filter((m) => !m.success);
    // One for the length, then one per old term: 4 (term 4 from 42), 3 (from 22), 2 (from 2).
    expect(rejections.map((m) => [m.prevLogIndex, m.conflictIndex, m.conflictTerm])).toEqual([
      [71, 62, 0],
      [61, 42, 4],
      [41, 22, 3],
      [21, 2, 2],
    ]);
  });

  it("when the leader holds the conflicting term too, it resumes just after its own last entry of that term, keeping the follower's matching prefix", () => {
    const leader = [1, ...Array<number>(10).fill(2), ...Array<number>(30).fill(4)];
    const follower = [1, ...Array<number>(30).fill(2)];
    const { toB, fromB } = sync(leader, follower);
    expect(
      fromB.filter((m) => !m.success).map((m) => [m.prevLogIndex, m.conflictIndex, m.conflictTerm]),
    ).toEqual([
      [41, 32, 0],
      [31, 2, 2],
    ]);
    // The accepted probe starts at 12: entries 2..11 of term 2 were kept, not resent.
    const accepted = toB.find(
      (m) => m.entries.length > 0 && fromB.some((r) => r.success && r.prevLogIndex === m.prevLogIndex),
    );
    expect(accepted?.prevLogIndex).toBe(11);
    expect(appendsIn(toB).every((m) => m.prevLogIndex >= 11)).toBe(true);
  });
});

describe('§5.3 Log replication: followers that were down catch up', () => {
  it('a follower that missed many entries receives them all, in order, and commits them', () => {
    const c = new Cluster(['a', 'b', 'c'], { options: PAPER });
    c.campaign('a');
    c.crash('c');
    for (let i = 0; i < 50; i++) {
      c.propose('a', `v${i}`);
      c.stabilize();
    }
    c.restart('c');
    // Two heartbeats: entries still unacknowledged at the second are presumed lost, and c is probed.
    c.tick('a', 4);
    c.stabilize();
    expect(logOf(c.raft('c'))).toEqual(logOf(c.raft('a')));
    const applied = (id: PeerId) => c.peer(id).applied.map((e) => e.index);
    expect(applied('c')).toEqual(applied('a'));
    expect(applied('a')).toHaveLength(52);
  });
});
