/**
 * Starting a cluster (Raft §6: the configuration lives in the log). An unconfigured peer
 * waits to be told; `bootstrap` makes one peer write the first configuration and
 * campaign, and the others learn it by replication. A single peer is a cluster too.
 */
import { describe, expect, it } from 'vitest';
import { bytes, Cluster, drain, logOf, newRaft, persistAndAdvance } from '../protocol-driver.js';
import { decodeConfiguration } from '../../src/protocol/membership.js';

describe('§6 Cluster configuration: bootstrap', () => {
  it('an unconfigured peer never campaigns, however long it ticks', () => {
    const { raft: r } = newRaft('a', { members: null });
    for (let i = 0; i < 10_000; i++) r.tick();
    expect([r.role, r.term, r.config, r.stats.electionsStarted]).toEqual(['follower', 0, null, 0]);
    expect(r.hasReady()).toBe(false);
  });

  it('a configured peer outside the configuration never campaigns either', () => {
    const { raft: r } = newRaft('a', { members: ['b', 'c', 'd'] });
    for (let i = 0; i < 10_000; i++) r.tick();
    expect([r.role, r.term, r.stats.electionsStarted]).toEqual(['follower', 1, 0]);
  });

  it('bootstrap on one peer: it writes the configuration and campaigns at once, and every peer learns the configuration', () => {
    const c = new Cluster(['a', 'b', 'c'], { members: null });
    expect(c.raft('a').bootstrap(['c', 'b', 'a'])).toBe(true);
    expect(c.raft('a').role).not.toBe('follower');
    c.stabilize();
    expect(c.leaders().map((p) => p.id)).toEqual(['a']);
    c.tick('a', 2); // a heartbeat carries the commitIndex
    c.stabilize();
    const want = logOf(c.raft('a'));
    expect(want.map((e) => [e.index, e.type])).toEqual([
      [1, 'config'],
      [2, 'noop'],
    ]);
    expect(decodeConfiguration(want[0]!.data)).toEqual({ members: ['a', 'b', 'c'] });
    for (const id of ['a', 'b', 'c']) {
      expect(c.raft(id).config, id).toEqual({ members: ['a', 'b', 'c'] });
      expect(logOf(c.raft(id)), id).toEqual(want);
      expect(c.peer(id).store.entries, id).toEqual(want);
      expect(
        c.peer(id).applied.map((e) => e.index),
        id,
      ).toEqual([1, 2]);
    }
  });

  it('after bootstrap, the peers that learned the configuration can elect a new leader without the first one', () => {
    const c = new Cluster(['a', 'b', 'c'], { members: null });
    c.raft('a').bootstrap(['a', 'b', 'c']);
    c.stabilize();
    c.crash('a');
    for (let i = 0; i < 200 && c.leaders().length === 0; i++) c.run(1);
    expect(['b', 'c']).toContain(c.leaders()[0]?.id);
  });

  it('bootstrap is refused by a peer that already has a configuration, a log or a term', () => {
    expect(newRaft('a').raft.bootstrap(['a', 'b', 'c'])).toBe(false);
    expect(
      newRaft('a', { members: null, hardState: { term: 3, votedFor: null } }).raft.bootstrap(['a']),
    ).toBe(false);
    const { raft: once } = newRaft('a', { members: null });
    expect(once.bootstrap(['a', 'b'])).toBe(true);
    expect(once.bootstrap(['a', 'b'])).toBe(false);
  });
});

describe('§5.3 A single-peer cluster commits on its own', () => {
  it('bootstrapped alone, a peer leads at once and commits its entries as soon as they are durable, sending nothing', () => {
    const { raft: r, store } = newRaft('a', { members: null });
    expect(r.bootstrap(['a'])).toBe(true);
    expect([r.role, r.term]).toEqual(['leader', 2]);
    const boot = persistAndAdvance(r, store);
    expect(boot.entries.map((e) => e.type)).toEqual(['config', 'noop']);
    expect(boot.hardState).toEqual({ term: 2, votedFor: 'a' });
    expect(boot.messages).toEqual([]);
    expect(persistAndAdvance(r, store).committed.map((e) => e.type)).toEqual(['config', 'noop']);
    expect(r.propose([{ type: 'command', data: bytes('x') }])).toEqual({ index: 3, term: 2 });
    const sent = drain(r, store);
    expect(sent).toEqual([]);
    expect(r.log.commitIndex).toBe(3);
    expect(store.entries.map((e) => e.index)).toEqual([1, 2, 3]);
  });

  it('a configured single peer elects itself when its election timeout elapses', () => {
    const { raft: r } = newRaft('a', { members: ['a'] });
    for (let i = 0; i < 20 && r.role !== 'leader'; i++) r.tick();
    expect([r.role, r.term]).toEqual(['leader', 2]);
  });
});
