import type { LogEntry } from '@raft/core';
import { describe, expect, it } from 'vitest';
import {
  decodeConfiguration,
  describeConfiguration,
  isFinal,
  isInConfiguration,
  isVoter,
  sameConfiguration,
  voterSets,
} from './configuration.js';

const entry = (json: string, type: LogEntry['type'] = 'config'): LogEntry => ({
  index: 1,
  term: 1,
  type,
  data: new TextEncoder().encode(json),
});

describe('configurations as the checker reads them', () => {
  it('decodes a config entry (sorted, empty lists left out), and nothing else', () => {
    expect(decodeConfiguration(entry('{"members":["b","a"],"learners":[],"outgoing":["c","a"]}'))).toEqual({
      members: ['a', 'b'],
      outgoing: ['a', 'c'],
    });
    expect(decodeConfiguration(entry('{"members":["a"]}', 'command'))).toBeUndefined();
    expect(decodeConfiguration(entry('not json'))).toBeUndefined();
    expect(decodeConfiguration(entry('{"members":[1]}'))).toBeUndefined();
  });

  it('knows the voters of a joint configuration, and who is in it at all', () => {
    const joint = { members: ['a', 'd'], outgoing: ['a', 'b', 'c'] };
    expect(voterSets(joint)).toEqual([
      ['a', 'd'],
      ['a', 'b', 'c'],
    ]);
    expect(voterSets({ members: ['a'] })).toEqual([['a']]);
    expect(isVoter(joint, 'b')).toBe(true);
    expect(isVoter({ members: ['a'], learners: ['e'] }, 'e')).toBe(false);
    expect(isInConfiguration({ members: ['a'], learners: ['e'] }, 'e')).toBe(true);
    expect(isInConfiguration(joint, 'e')).toBe(false);
    expect(isFinal(joint)).toBe(false);
    expect(isFinal({ members: ['a'], learners: ['e'] })).toBe(false);
    expect(isFinal({ members: ['a', 'b'] })).toBe(true);
  });

  it('compares configurations as sets, and renders them for traces', () => {
    expect(sameConfiguration({ members: ['a', 'b'] }, { members: ['b', 'a'], learners: [] })).toBe(true);
    expect(sameConfiguration({ members: ['a', 'b'] }, { members: ['a', 'b'], outgoing: ['a'] })).toBe(false);
    expect(sameConfiguration(null, null)).toBe(true);
    expect(sameConfiguration(null, { members: ['a'] })).toBe(false);
    expect(describeConfiguration({ members: ['a', 'd'], learners: ['e'], outgoing: ['a', 'b'] })).toBe(
      '{a,d | learners e | outgoing a,b}',
    );
    expect(describeConfiguration(null)).toBe('none');
  });
});
