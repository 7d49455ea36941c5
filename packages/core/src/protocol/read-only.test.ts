import { describe, expect, it } from 'vitest';
import { ReadOnly } from './read-only.js';

describe('ReadOnly: ReadIndex bookkeeping', () => {
  it('reads wait for the first commit, then for a quorum of their round, in order', () => {
    const r = new ReadOnly();
    r.waitForCommit(1);
    expect(r.pendingContexts()).toEqual([1]);
    expect(r.takeWaitingForCommit()).toEqual([1]);
    expect(r.hasWaitingForCommit()).toBe(false);
    r.waitForQuorum(1, 5, 1);
    r.waitForQuorum(2, 6, 2);
    r.confirm(0);
    expect(r.hasReady()).toBe(false);
    r.confirm(1);
    expect(r.takeReady()).toEqual([{ context: 1, index: 5 }]);
    expect(r.pendingContexts()).toEqual([2]);
    r.confirm(5);
    expect(r.takeReady()).toEqual([{ context: 2, index: 6 }]);
    expect(r.hasWaitingForQuorum()).toBe(false);
  });

  it('a reset forgets unconfirmed reads but keeps confirmed ones', () => {
    const r = new ReadOnly();
    r.waitForQuorum(1, 3, 1);
    r.confirm(1);
    r.waitForQuorum(2, 3, 2);
    r.waitForCommit(3);
    r.reset();
    expect(r.pendingContexts()).toEqual([]);
    expect(r.takeReady()).toEqual([{ context: 1, index: 3 }]);
  });
});
