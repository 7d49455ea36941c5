import { describe, expect, it } from 'vitest';
import { RaftError } from '@raft/core';
import { dataOf, decodeEntry, decodeHardState, decodeMeta, encodeEntry, encodeHardState, encodeMeta, entryKey, indexOfKey } from './format.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    return RaftError.isInstance(error) ? error.code : 'not a RaftError';
  }
}

describe('on-disk format', () => {
  it('round-trips entries, including the largest index and term', () => {
    for (const [index, term] of [
      [1, 0],
      [2 ** 32 + 5, 7],
      [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
    ] as const) {
      const data = new Uint8Array([0, 255, 1, 128]);
      const stored = encodeEntry({ index, term, type: 'config', data });
      const decoded = decodeEntry(stored.value, index);
      expect({ ...decoded, value: undefined }).toEqual({ index, term, type: 'config', value: undefined });
      expect(dataOf(decoded)).toEqual(data);
      expect(indexOfKey(entryKey(index))).toBe(index);
    }
  });

  it('orders keys by index', () => {
    const keys = [3, 2 ** 32, 1, 256, 2 ** 40, 255].map(entryKey).sort(Buffer.compare);
    expect(keys.map(indexOfKey)).toEqual([1, 3, 255, 256, 2 ** 32, 2 ** 40]);
  });

  it('detects a flip of any bit of a stored entry, hard state or metadata', () => {
    const entry = encodeEntry({ index: 9, term: 3, type: 'command', data: new Uint8Array([1, 2, 3]) }).value;
    const hard = encodeHardState({ term: 4, votedFor: 'n1' });
    const meta = encodeMeta(1);
    for (const [value, decode] of [
      [entry, (v: Uint8Array) => decodeEntry(v, 9)],
      [hard, decodeHardState],
      [meta, decodeMeta],
    ] as const) {
      expect(code(() => decode(value))).toBeUndefined();
      for (let byte = 0; byte < value.length; byte++) {
        for (let bit = 0; bit < 8; bit++) {
          const bad = Uint8Array.from(value);
          bad[byte]! ^= 1 << bit;
          expect(code(() => decode(bad)), `byte ${byte} bit ${bit}`).toBe('RAFT_STORAGE_CORRUPT');
        }
      }
    }
  });

  it('refuses an entry found under another index, naming the expected one', () => {
    const value = encodeEntry({ index: 5, term: 1, type: 'noop', data: new Uint8Array() }).value;
    let index: number | undefined;
    try {
      decodeEntry(value, 6);
    } catch (error) {
      index = (error as { index?: number }).index;
    }
    expect(index).toBe(6);
  });

  it('round-trips hard states', () => {
    for (const hs of [
      { term: 0, votedFor: null },
      { term: 12, votedFor: '' },
      { term: 12, votedFor: 'nœud-节点' },
    ]) {
      expect(decodeHardState(encodeHardState(hs))).toEqual(hs);
    }
  });
});
