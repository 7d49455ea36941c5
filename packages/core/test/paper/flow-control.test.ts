/**
 * How the leader streams its log (§5.3 in practice; dissertation §10.2, etcd-raft's
 * Progress): proposals batch, AppendEntries pipeline up to maxInflight in replicate state,
 * a follower whose log end is unknown is probed one message at a time, and batches respect
 * maxBatchEntries and maxBatchBytes.
 */
import { describe, expect, it } from 'vitest';
import type { AppendEntriesMessage } from '../../src/types.js';
import {
  Cluster,
  accept,
  appendsIn,
  bytes,
  drain,
  isAppend,
  makeLeader,
  newRaft,
  PAPER,
  persistAndAdvance,
  steadyLeader,
  text,
} from '../protocol-driver.js';

const propose = (r: ReturnType<typeof steadyLeader>['raft'], ...data: string[]) =>
  r.propose(data.map((d) => ({ type: 'command' as const, data: bytes(d) })));

describe('Replication flow control: batching and pipelining (replicate state)', () => {
  it('proposals of one step go out as one AppendEntries per follower', () => {
    const { raft: r } = steadyLeader();
    propose(r, 'x', 'y', 'z');
    const sent = appendsIn(persistAndAdvance(r).messages);
    expect(sent.map((m) => [m.to, m.prevLogIndex, m.entries.map((e) => text(e.data))])).toEqual([
      ['b', 2, ['x', 'y', 'z']],
      ['c', 2, ['x', 'y', 'z']],
    ]);
  });

  it('streams AppendEntries without waiting for answers, up to maxInflight unacknowledged, then waits', () => {
    const { raft: r } = steadyLeader({ options: { maxInflight: 2 } });
    for (const v of ['v3', 'v4', 'v5', 'v6', 'v7']) propose(r, v);
    const toB = appendsIn(persistAndAdvance(r).messages, 'b');
    expect(toB.map((m) => m.entries.map((e) => e.index))).toEqual([[3], [4]]);
    expect(r.progressOf('b')).toMatchObject({ state: 'replicate', matchIndex: 2, nextIndex: 5 });
    // One answer frees one slot: what waited goes out as one batch.
    r.step(accept(toB[0]!));
    const next = appendsIn(persistAndAdvance(r).messages, 'b');
    expect(next.map((m) => [m.prevLogIndex, m.entries.map((e) => e.index)])).toEqual([[4, [5, 6, 7]]]);
    propose(r, 'v8');
    expect(appendsIn(persistAndAdvance(r).messages, 'b')).toEqual([]);
  });

  it('a heartbeat still goes out when the window is full', () => {
    const { raft: r } = steadyLeader({ options: { maxInflight: 1, heartbeatTicks: 1 } });
    propose(r, 'x');
    propose(r, 'y');
    expect(appendsIn(persistAndAdvance(r).messages, 'b').map((m) => m.entries.length)).toEqual([1]);
    r.tick();
    const beat = appendsIn(persistAndAdvance(r).messages, 'b');
    // It carries the position the follower acknowledged, not the one after the entry in flight.
    expect(beat.map((m) => [m.prevLogIndex, m.entries.length])).toEqual([[2, 0]]);
  });

  it('a heartbeat that overtakes entries in flight leaves the follower in replicate state', () => {
    const c = new Cluster(['a', 'b', 'c'], { options: { ...PAPER, heartbeatTicks: 1 } });
    c.campaign('a');
    expect(c.raft('a').role).toBe('leader');
    c.propose('a', 'x');
    c.process('a');
    const entries = c.drop((m) => isAppend(m) && m.entries.length > 0);
    expect(entries.map((m) => m.to)).toEqual(['b', 'c']);
    // The heartbeat reaches the followers first: they do not hold entry 3 yet.
    c.tick('a');
    c.process('a');
    c.deliver();
    c.processAll();
    c.deliver();
    expect(c.raft('a').progressOf('b')).toMatchObject({ state: 'replicate', nextIndex: 4 });
    // The entries arrive late and commit; nothing was sent twice.
    c.inflight.push(...entries);
    const before = c.sent.filter((m) => isAppend(m) && m.entries.some((e) => e.index === 3)).length;
    c.stabilize();
    expect(c.raft('a').log.commitIndex).toBe(3);
    expect(c.sent.filter((m) => isAppend(m) && m.entries.some((e) => e.index === 3)).length).toBe(before);
  });

  it('entries still unacknowledged at the second timer heartbeat are presumed lost: the follower is probed and they are resent', () => {
    const c = new Cluster(['a', 'b', 'c'], { options: { ...PAPER, heartbeatTicks: 1 } });
    c.campaign('a');
    c.propose('a', 'x');
    c.process('a');
    c.drop((m) => isAppend(m) && m.entries.length > 0 && m.to === 'b');
    c.stabilize();
    expect(c.raft('b').log.lastIndex()).toBe(2);
    c.tick('a');
    c.stabilize();
    c.tick('a');
    c.stabilize();
    expect(c.raft('b').log.lastIndex()).toBe(3);
    expect(c.raft('a').progressOf('b')).toMatchObject({ state: 'replicate', matchIndex: 3 });
  });

  it('a follower in replicate state that refuses (an AppendEntries was lost) is probed again from its matchIndex', () => {
    const { raft: r } = steadyLeader();
    propose(r, 'lost');
    persistAndAdvance(r); // its AppendEntries never arrive
    propose(r, 'y');
    const [toB] = appendsIn(persistAndAdvance(r).messages, 'b');
    expect(toB!.prevLogIndex).toBe(3);
    r.step({
      type: 'AppendEntriesResponse',
      term: 2,
      from: 'b',
      to: 'a',
      success: false,
      matchIndex: 0,
      prevLogIndex: 3,
      conflictIndex: 3,
      conflictTerm: 0,
      seq: toB!.seq,
    });
    expect(r.progressOf('b')).toMatchObject({ state: 'probe', nextIndex: 3 });
    const retry = appendsIn(persistAndAdvance(r).messages, 'b');
    expect(retry.map((m) => [m.prevLogIndex, m.entries.map((e) => text(e.data))])).toEqual([
      [2, ['lost', 'y']],
    ]);
  });
});

describe('Replication flow control: probing a follower whose log end is unknown (probe state)', () => {
  it('sends one AppendEntries at a time, however many proposals come', () => {
    const { raft: r } = newRaft('a', { options: PAPER });
    const first = appendsIn(makeLeader(r), 'b');
    expect(first.map((m) => m.entries.map((e) => e.type))).toEqual([['noop']]);
    expect(r.progressOf('b')).toMatchObject({ state: 'probe' });
    propose(r, 'x');
    propose(r, 'y');
    expect(appendsIn(drain(r), 'b')).toEqual([]);
  });

  it('a heartbeat re-probes a follower that has not answered, with what it lacks', () => {
    const { raft: r } = newRaft('a', { options: { ...PAPER, heartbeatTicks: 3 } });
    makeLeader(r);
    propose(r, 'x');
    drain(r);
    r.tick();
    r.tick();
    expect(appendsIn(drain(r), 'b')).toEqual([]);
    r.tick();
    const probe = appendsIn(drain(r), 'b');
    expect(probe.map((m) => [m.prevLogIndex, m.entries.map((e) => e.index)])).toEqual([[1, [2, 3]]]);
  });

  it('the answer to a probe moves the follower to replicate state and the rest streams at once', () => {
    const { raft: r } = newRaft('a', { options: { ...PAPER, maxBatchEntries: 2 } });
    const [probe] = appendsIn(makeLeader(r), 'b');
    propose(r, 'x', 'y', 'z');
    drain(r);
    r.step(accept(probe!));
    expect(r.progressOf('b')).toMatchObject({ state: 'replicate', matchIndex: 2 });
    const stream = appendsIn(drain(r), 'b');
    expect(stream.map((m) => m.entries.map((e) => e.index))).toEqual([[3, 4], [5]]);
  });
});

describe('Replication flow control: batch limits', () => {
  const batches = (msgs: AppendEntriesMessage[]) => msgs.map((m) => m.entries.map((e) => e.index));

  it('maxBatchEntries caps the entries of one AppendEntries', () => {
    const { raft: r } = steadyLeader({ options: { maxBatchEntries: 3 } });
    propose(r, ...Array.from({ length: 10 }, (_, i) => `v${i}`));
    const toB = appendsIn(persistAndAdvance(r).messages, 'b');
    expect(batches(toB)).toEqual([[3, 4, 5], [6, 7, 8], [9, 10, 11], [12]]);
    expect(toB.map((m) => m.prevLogIndex)).toEqual([2, 5, 8, 11]);
  });

  it('maxBatchBytes caps the bytes of one AppendEntries; an entry bigger than the cap goes alone', () => {
    const { raft: r } = steadyLeader({ options: { maxBatchBytes: 100 } });
    const sizes = [10, 10, 10, 10, 200, 10, 10];
    propose(r, ...sizes.map((n, i) => String(i).repeat(n)));
    const toB = appendsIn(persistAndAdvance(r).messages, 'b');
    // Everything goes, in order, each entry once.
    expect(toB.flatMap((m) => m.entries.map((e) => e.index))).toEqual([3, 4, 5, 6, 7, 8, 9]);
    for (const m of toB) {
      const total = m.entries.reduce((n, e) => n + e.data.length, 0);
      if (m.entries.length > 1) expect(total).toBeLessThanOrEqual(100);
    }
    // The 200-byte entry (index 7) travels alone; small ones share batches.
    expect(toB.filter((m) => m.entries.some((e) => e.index === 7)).map((m) => m.entries.length)).toEqual([1]);
    expect(toB.some((m) => m.entries.length > 1)).toBe(true);
  });

  it('the limits apply to a follower catching up too', () => {
    const { raft: r } = steadyLeader({ options: { maxBatchEntries: 4 } });
    for (let i = 0; i < 10; i++) {
      propose(r, `v${i}`);
      for (const m of persistAndAdvance(r).messages.filter(isAppend)) if (m.to === 'b') r.step(accept(m));
    }
    // c heard nothing; its first answer reveals it is 10 behind.
    r.step({
      type: 'AppendEntriesResponse',
      term: 2,
      from: 'c',
      to: 'a',
      success: false,
      matchIndex: 0,
      prevLogIndex: 12,
      conflictIndex: 3,
      conflictTerm: 0,
      seq: 0,
    });
    const toC = appendsIn(persistAndAdvance(r).messages, 'c');
    expect(toC.map((m) => m.entries.length)).toEqual([4]);
    r.step(accept(toC[0]!));
    expect(batches(appendsIn(persistAndAdvance(r).messages, 'c'))).toEqual([
      [7, 8, 9, 10],
      [11, 12],
    ]);
  });
});
