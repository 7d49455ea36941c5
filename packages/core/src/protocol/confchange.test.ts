import { describe, expect, it } from 'vitest';
import {
  droppedPeers,
  incomingVoters,
  nextConfiguration,
  startChange,
  unfinishedChange,
} from './confchange.js';

const yes = (): boolean => true;
const no = (): boolean => false;

describe('confchange: the next configuration of a membership change', () => {
  it('adding peers: learners first, then joint, then final', () => {
    const start = startChange({ members: ['a', 'b', 'c'] }, ['a', 'b', 'c', 'd']);
    expect(start).toEqual({ kind: 'learners', config: { members: ['a', 'b', 'c'], learners: ['d'] } });
    const learners = { members: ['a', 'b', 'c'], learners: ['d'] };
    expect(nextConfiguration(learners, ['a', 'b', 'c', 'd'], no)).toEqual({ kind: 'wait' });
    const joint = nextConfiguration(learners, ['a', 'b', 'c', 'd'], yes);
    expect(joint).toEqual({
      kind: 'propose',
      config: { members: ['a', 'b', 'c', 'd'], outgoing: ['a', 'b', 'c'] },
    });
    const final = nextConfiguration(
      { members: ['a', 'b', 'c', 'd'], outgoing: ['a', 'b', 'c'] },
      ['a', 'b', 'c', 'd'],
      no,
    );
    expect(final).toEqual({ kind: 'propose', config: { members: ['a', 'b', 'c', 'd'] } });
    expect(nextConfiguration({ members: ['a', 'b', 'c', 'd'] }, ['a', 'b', 'c', 'd'], no)).toEqual({
      kind: 'done',
    });
  });

  it('removing peers needs no learner step and no catch-up', () => {
    expect(startChange({ members: ['a', 'b', 'c'] }, ['a', 'b'])).toEqual({ kind: 'advance' });
    let asked = false;
    const step = nextConfiguration({ members: ['a', 'b', 'c'] }, ['a', 'b'], () => {
      asked = true;
      return true;
    });
    expect(step).toEqual({ kind: 'propose', config: { members: ['a', 'b'], outgoing: ['a', 'b', 'c'] } });
    expect(asked).toBe(true);
    expect(droppedPeers({ members: ['a', 'b', 'c'] }, { members: ['a', 'b'] }, 'a')).toEqual(['c']);
  });

  it('the same voters is no change; a joint configuration must finish first', () => {
    expect(startChange({ members: ['a', 'b'] }, ['b', 'a'])).toEqual({ kind: 'same' });
    expect(startChange({ members: ['a', 'b'], outgoing: ['a'] }, ['a'])).toEqual({ kind: 'in_progress' });
  });

  it('a new change replaces learners no longer wanted', () => {
    const start = startChange({ members: ['a', 'b'], learners: ['c', 'd'] }, ['a', 'b', 'd']);
    expect(start).toEqual({ kind: 'learners', config: { members: ['a', 'b'], learners: ['d'] } });
    // The same voters with leftover learners: the learners go.
    expect(startChange({ members: ['a', 'b'], learners: ['c'] }, ['a', 'b'])).toEqual({
      kind: 'learners',
      config: { members: ['a', 'b'], learners: [] },
    });
  });

  it('a new leader finishes a joint configuration, or one that removed it', () => {
    expect(unfinishedChange({ members: ['a', 'b'], outgoing: ['a', 'b', 'c'] }, 'a')).toEqual(['a', 'b']);
    expect(unfinishedChange({ members: ['b', 'c'] }, 'a')).toEqual(['b', 'c']);
    expect(unfinishedChange({ members: ['a', 'b'] }, 'a')).toBeNull();
    expect(unfinishedChange(null, 'a')).toBeNull();
    expect(incomingVoters({ members: ['a'] }, ['a', 'b', 'c'], 'c')).toEqual(['b']);
  });
});
