/**
 * Forwarding in the protocol (etcd's MsgProp and MsgReadIndex): a follower hands commands
 * and reads to the leader over the peer connection; the leader always answers, with the
 * index it appended them at (or the read index), or a refusal. Nothing else appends.
 */
import { describe, expect, it } from 'vitest';
import { msgpackCodec } from '../src/codec.js';
import { validateMessage } from '../src/messages.js';
import type { RaftMessage } from '../src/types.js';
import { bytes, Cluster, PAPER, steadyLeader, text, tickUntilCampaign } from './protocol-driver.js';

/** A 3-peer cluster with `a` leading at term 2 and its no-op committed everywhere. */
function cluster(ids = ['a', 'b', 'c']): Cluster {
  const c = new Cluster(ids, { options: PAPER });
  c.campaign('a');
  c.stabilize();
  expect(c.raft('a').role).toBe('leader');
  return c;
}

describe('forwarded proposals', () => {
  it('the leader appends a Propose as one batch, answers with the first index in its term, and the commands commit in order', () => {
    const c = cluster();
    const before = c.raft('a').log.lastIndex();
    expect(c.raft('b').forward(7, [bytes('x'), bytes('y')])).toBe('ok');
    c.stabilize();
    c.run(PAPER_HEARTBEAT); // the commit index reaches the followers
    expect(c.peer('b').forwarded).toEqual([
      { kind: 'propose', id: 7, from: 'a', refused: false, index: before + 1, term: 2, leader: null },
    ]);
    const applied = c.peer('b').applied.filter((e) => e.type === 'command');
    expect(applied.map((e) => [e.index, e.term, text(e.data)])).toEqual([
      [before + 1, 2, 'x'],
      [before + 2, 2, 'y'],
    ]);
    // One append for the batch: both entries went out in the same AppendEntries.
    const appends = c.sent.filter(
      (m) => m.type === 'AppendEntries' && m.to === 'c' && m.entries.some((e) => e.type === 'command'),
    );
    expect(appends).toHaveLength(1);
  });

  it('a follower refuses a Propose, naming the leader it knows, and appends nothing', () => {
    const c = cluster();
    const last = c.raft('b').log.lastIndex();
    c.raft('b').step({ type: 'Propose', term: 2, from: 'c', to: 'b', id: 3, commands: [bytes('x')] });
    c.stabilize();
    expect(c.raft('b').log.lastIndex()).toBe(last);
    expect(c.raft('a').log.lastIndex()).toBe(last);
    expect(c.peer('c').forwarded).toEqual([
      { kind: 'propose', id: 3, from: 'b', refused: true, index: 0, term: 2, leader: 'a' },
    ]);
  });

  it('the leader refuses (and counts) a Propose from a peer outside its configuration, appending nothing', () => {
    const { raft: a } = steadyLeader();
    const last = a.log.lastIndex();
    a.step({ type: 'Propose', term: 2, from: 'mallory', to: 'a', id: 1, commands: [bytes('evil')] });
    expect(a.log.lastIndex()).toBe(last);
    expect(a.stats.forwardsFromStrangers).toBe(1);
    const answers = a.ready().messages.filter((m) => m.type === 'ProposeResult');
    expect(answers).toEqual([
      { type: 'ProposeResult', term: 2, from: 'a', to: 'mallory', id: 1, refused: true, index: 0 },
    ]);
  });

  it('a leader handing over leadership refuses a Propose', () => {
    const { raft: a } = steadyLeader();
    expect(a.transferLeadership('b')).toBe('ok');
    const last = a.log.lastIndex();
    a.step({ type: 'Propose', term: 2, from: 'c', to: 'a', id: 1, commands: [bytes('x')] });
    expect(a.log.lastIndex()).toBe(last);
    const answer = a.ready().messages.find((m) => m.type === 'ProposeResult');
    expect(answer).toMatchObject({ refused: true, index: 0 });
  });

  it('a Propose of an earlier term is refused with the current term, and nothing is appended', () => {
    const { raft: a } = steadyLeader();
    const last = a.log.lastIndex();
    a.step({ type: 'Propose', term: 1, from: 'b', to: 'a', id: 9, commands: [bytes('x')] });
    expect(a.log.lastIndex()).toBe(last);
    const answer = a.ready().messages.find((m) => m.type === 'ProposeResult');
    expect(answer).toMatchObject({ term: 2, to: 'b', id: 9, refused: true, index: 0 });
  });

  it('a duplicated Propose (the network may duplicate) gets the same answer, and is appended once', () => {
    const { raft: a } = steadyLeader();
    const last = a.log.lastIndex();
    const m = { type: 'Propose', term: 2, from: 'b', to: 'a', id: 11, commands: [bytes('x')] } as const;
    a.step({ ...m, commands: [bytes('x')] });
    a.step({ ...m, commands: [bytes('x')] });
    expect(a.log.lastIndex()).toBe(last + 1);
    const answers = a.ready().messages.filter((x) => x.type === 'ProposeResult');
    expect(answers.map((x) => (x as { index: number }).index)).toEqual([last + 1, last + 1]);
  });

  it('a duplicate of a refused Propose stays refused, even once the leader could take it', () => {
    const { raft: a } = steadyLeader();
    a.transferLeadership('b');
    const m = { type: 'Propose', term: 2, from: 'c', to: 'a', id: 5, commands: [bytes('x')] } as const;
    a.step({ ...m, commands: [bytes('x')] });
    // The transfer times out: a takes proposals again.
    for (let i = 0; i < 30 && a.status().transferee !== null; i++) a.tick();
    expect(a.status().transferee).toBeNull();
    const last = a.log.lastIndex();
    a.step({ ...m, commands: [bytes('x')] });
    expect(a.log.lastIndex()).toBe(last);
    const answers = a.ready().messages.filter((x) => x.type === 'ProposeResult');
    expect(answers.every((x) => (x as { refused: boolean }).refused)).toBe(true);
  });

  it('a follower that knows no leader does not forward', () => {
    const c = new Cluster(['a', 'b', 'c'], { options: PAPER });
    expect(c.raft('b').forward(1, [bytes('x')])).toBe('not_leader');
    expect(c.raft('b').forwardReadIndex(1)).toBe('not_leader');
  });

  it('an answer from a leader of an earlier term still reaches the runtime (its index and term identify the entry for good)', () => {
    const c = cluster();
    c.raft('b').step({ type: 'ProposeResult', term: 1, from: 'a', to: 'b', id: 4, refused: false, index: 9 });
    c.stabilize();
    expect(c.peer('b').forwarded).toEqual([
      { kind: 'propose', id: 4, from: 'a', refused: false, index: 9, term: 1, leader: null },
    ]);
  });

  it('a Propose answered by an old leader whose entries a new leader overwrote: the promised (index, term) is not what commits there', () => {
    const c = cluster(['a', 'b', 'c', 'd', 'e']);
    // a is cut off with b: it appends b's commands, which never reach a majority.
    c.partition(['a', 'b'], ['c', 'd', 'e']);
    expect(c.raft('b').forward(1, [bytes('lost')])).toBe('ok');
    c.stabilize();
    const promised = c.peer('b').forwarded[0]!;
    expect(promised).toMatchObject({ refused: false, term: 2 });
    // The majority elects c, which commits its own entries at those indexes.
    c.campaign('c');
    c.propose('c', 'winner');
    c.stabilize();
    c.heal();
    c.run(20);
    const at = c.peer('b').applied.find((e) => e.index === promised.index);
    expect(at).toBeDefined();
    expect(at!.term).not.toBe(promised.term);
    expect(c.peer('b').applied.some((e) => text(e.data) === 'lost')).toBe(false);
  });
});

describe('forwarded reads', () => {
  it('the leader answers a ReadIndexRequest with its commit index once a quorum confirms a round started after it', () => {
    const c = cluster();
    c.propose('a', 'v');
    c.stabilize();
    const commit = c.raft('a').log.commitIndex;
    expect(c.raft('b').forwardReadIndex(5)).toBe('ok');
    // The request reaches a; its round's heartbeats go out, but no acknowledgement comes back yet.
    c.processAll();
    c.deliver((m) => m.type === 'ReadIndexRequest');
    c.processAll();
    c.drop((m) => m.type === 'AppendEntries');
    c.stabilize();
    expect(c.peer('b').forwarded).toEqual([]);
    // The next heartbeat round is acknowledged: the read is answered.
    c.run(PAPER_HEARTBEAT);
    expect(c.peer('b').forwarded).toEqual([
      { kind: 'read', id: 5, from: 'a', refused: false, index: commit, term: 2, leader: null },
    ]);
  });

  it('a new leader answers only once an entry of its term committed', () => {
    const c = cluster();
    c.crash('a');
    const b = c.raft('b');
    tickUntilCampaign(b);
    for (let i = 0; i < 10 && b.role !== 'leader'; i++) {
      c.processAll();
      c.deliver();
    }
    expect(b.role).toBe('leader');
    c.processAll();
    c.drop((m) => m.type === 'AppendEntries'); // its no-op does not reach c yet
    // c asks b before b's no-op commits: b cannot know its commit index is current.
    b.step({ type: 'ReadIndexRequest', term: b.term, from: 'c', to: 'b', id: 2 });
    c.stabilize();
    expect(c.sent.some((m) => m.type === 'ReadIndexResult')).toBe(false);
    c.run(2 * PAPER_HEARTBEAT);
    const answer = c.sent.find((m) => m.type === 'ReadIndexResult');
    expect(answer).toMatchObject({ id: 2, refused: false });
    expect(b.log.term((answer as { index: number }).index)).toBe(b.term);
  });

  it('a leader that steps down refuses the reads it had not confirmed, at once', () => {
    const c = cluster();
    c.partition(['a'], ['b', 'c']);
    c.raft('a').step({ type: 'ReadIndexRequest', term: 2, from: 'b', to: 'a', id: 8 });
    c.stabilize();
    expect(c.sent.some((m) => m.type === 'ReadIndexResult')).toBe(false);
    // A higher term reaches a: it steps down and says so.
    c.raft('a').step({
      type: 'RequestVote',
      term: 3,
      from: 'c',
      to: 'a',
      lastLogIndex: 99,
      lastLogTerm: 2,
      preVote: false,
    });
    const answers = c
      .raft('a')
      .ready()
      .messages.filter((m) => m.type === 'ReadIndexResult');
    expect(answers).toEqual([
      { type: 'ReadIndexResult', term: 3, from: 'a', to: 'b', id: 8, refused: true, index: 0 },
    ]);
  });

  it('a follower refuses a ReadIndexRequest, naming the leader', () => {
    const c = cluster();
    c.raft('b').step({ type: 'ReadIndexRequest', term: 2, from: 'c', to: 'b', id: 1 });
    c.stabilize();
    expect(c.peer('c').forwarded).toEqual([
      { kind: 'read', id: 1, from: 'b', refused: true, index: 0, term: 2, leader: 'a' },
    ]);
  });

  it('the leader refuses (and counts) a ReadIndexRequest from a peer outside its configuration', () => {
    const { raft: a } = steadyLeader();
    a.step({ type: 'ReadIndexRequest', term: 2, from: 'mallory', to: 'a', id: 1 });
    expect(a.stats.forwardsFromStrangers).toBe(1);
    expect(a.ready().messages.filter((m) => m.type === 'ReadIndexResult')).toEqual([
      { type: 'ReadIndexResult', term: 2, from: 'a', to: 'mallory', id: 1, refused: true, index: 0 },
    ]);
  });
});

/** Heartbeat rounds to run so one is sent and acknowledged (PAPER's heartbeat interval). */
const PAPER_HEARTBEAT = 3;

describe('forwarding messages on the wire', () => {
  const propose = { type: 'Propose', term: 2, from: 'b', to: 'a', id: 1, commands: [bytes('x')] };

  it('validation accepts the four kinds and keeps only their fields', () => {
    const msgs: unknown[] = [
      { ...propose, extra: 1 },
      { type: 'ProposeResult', term: 2, from: 'a', to: 'b', id: 1, refused: false, index: 5 },
      { type: 'ProposeResult', term: 2, from: 'a', to: 'b', id: 1, refused: true, index: 0, leader: 'c' },
      { type: 'ReadIndexRequest', term: 2, from: 'b', to: 'a', id: 3 },
      { type: 'ReadIndexResult', term: 2, from: 'a', to: 'b', id: 3, refused: false, index: 4 },
    ];
    for (const m of msgs) expect(validateMessage(m).ok).toBe(true);
    const v = validateMessage(msgs[0]);
    expect(v.ok && 'extra' in v.message).toBe(false);
  });

  it.each([
    ['an id of 0', { ...propose, id: 0 }, 'malformed'],
    ['a fractional id', { ...propose, id: 1.5 }, 'malformed'],
    ['a string id', { ...propose, id: '1' }, 'malformed'],
    ['no commands', { ...propose, commands: [] }, 'malformed'],
    ['a command that is not bytes', { ...propose, commands: ['x'] }, 'malformed'],
    ['commands that are not an array', { ...propose, commands: bytes('x') }, 'malformed'],
    [
      'an accepted result at index 0',
      { type: 'ProposeResult', term: 2, from: 'a', to: 'b', id: 1, refused: false, index: 0 },
      'malformed',
    ],
    [
      'a refusal with an index',
      { type: 'ReadIndexResult', term: 2, from: 'a', to: 'b', id: 1, refused: true, index: 3 },
      'malformed',
    ],
    [
      'an acceptance naming a leader',
      { type: 'ReadIndexResult', term: 2, from: 'a', to: 'b', id: 1, refused: false, index: 3, leader: 'c' },
      'malformed',
    ],
    [
      'an index beyond MAX_INDEX',
      { type: 'ReadIndexResult', term: 2, from: 'a', to: 'b', id: 1, refused: false, index: 2 ** 53 },
      'malformed',
    ],
  ])('validation refuses %s', (_what, m, refusal) => {
    const v = validateMessage(m);
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.refusal).toBe(refusal);
  });

  it('validation refuses a Propose with more commands than the limit', () => {
    const v = validateMessage(
      { ...propose, commands: [bytes('a'), bytes('b'), bytes('c')] },
      { maxEntries: 2 },
    );
    expect(v).toMatchObject({ ok: false, refusal: 'too_many_entries' });
    expect(validateMessage({ ...propose, commands: new Array(65537).fill(bytes('a')) })).toMatchObject({
      ok: false,
      refusal: 'too_many_entries',
    });
  });

  it('the default codec carries them intact', () => {
    const codec = msgpackCodec();
    const m: RaftMessage = {
      type: 'Propose',
      term: 2,
      from: 'b',
      to: 'a',
      id: 1,
      commands: [bytes('x'), bytes('')],
    };
    const back = validateMessage(codec.decode(codec.encode(m)));
    expect(back).toEqual({ ok: true, message: m });
  });
});
