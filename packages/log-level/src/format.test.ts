import { describe, expect, it } from 'vitest';
import { RaftError } from '@raft/core';
import {
  chunkKey,
  dataOf,
  decodeEntry,
  decodeHardState,
  decodeMeta,
  decodeSnapshot,
  decodeSnapshotMeta,
  encodeEntry,
  encodeHardState,
  encodeMeta,
  encodeSnapshot,
  entryKey,
  indexOfKey,
  SNAPSHOT_CHUNK_BYTES,
  SNAPSHOT_KEY,
} from './format.js';
import type { EncodedSnapshot } from './format.js';

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
          expect(
            code(() => decode(bad)),
            `byte ${byte} bit ${bit}`,
          ).toBe('RAFT_STORAGE_CORRUPT');
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

  describe('snapshots', () => {
    const rows = (e: EncodedSnapshot): Array<[Uint8Array, Uint8Array]> => [
      [SNAPSHOT_KEY, e.metaValue],
      ...e.chunkValues.map((v, k): [Uint8Array, Uint8Array] => [chunkKey(k), v]),
    ];

    it('round-trips a snapshot: metadata exactly, data across chunk boundaries', () => {
      for (const size of [
        0,
        1,
        SNAPSHOT_CHUNK_BYTES - 1,
        SNAPSHOT_CHUNK_BYTES,
        SNAPSHOT_CHUNK_BYTES + 1,
        2 * SNAPSHOT_CHUNK_BYTES + 5,
      ]) {
        const data = new Uint8Array(size).map((_, i) => (i * 7 + (i >>> 9)) & 0xff);
        for (const configuration of [
          { members: ['b', 'a'] },
          { members: [], learners: [] },
          { members: ['a'], learners: ['c'], outgoing: ['a', 'd'] },
        ]) {
          const meta = { index: 2 ** 40 + 3, term: 9, configuration };
          const encoded = encodeSnapshot({ meta, data });
          expect(encoded.chunks).toBe(Math.ceil(size / SNAPSHOT_CHUNK_BYTES));
          const decoded = decodeSnapshot(rows(encoded));
          expect(decoded?.meta).toStrictEqual(meta);
          expect(Buffer.from(decoded!.data).equals(data)).toBe(true);
          expect(decodeSnapshotMeta(encoded.metaValue)).toStrictEqual({
            meta,
            dataLength: size,
            chunks: encoded.chunks,
          });
        }
      }
      expect(decodeSnapshot([])).toBeUndefined();
    });

    it('detects a flip of any bit of the metadata, and of a chunk', () => {
      const encoded = encodeSnapshot({
        meta: { index: 4, term: 2, configuration: { members: ['n1'] } },
        data: new Uint8Array([1, 2, 3]),
      });
      for (const which of ['meta', 'chunk'] as const) {
        const value = which === 'meta' ? encoded.metaValue : encoded.chunkValues[0]!;
        for (let byte = 0; byte < value.length; byte++) {
          for (let bit = 0; bit < 8; bit++) {
            const bad = Uint8Array.from(value);
            bad[byte]! ^= 1 << bit;
            const damaged =
              which === 'meta'
                ? { ...encoded, metaValue: Buffer.from(bad) }
                : { ...encoded, chunkValues: [Buffer.from(bad)] };
            expect(
              code(() => decodeSnapshot(rows(damaged))),
              `${which} byte ${byte} bit ${bit}`,
            ).toBe('RAFT_STORAGE_CORRUPT');
          }
        }
      }
    });

    it('refuses chunks without metadata', () => {
      const encoded = encodeSnapshot({
        meta: { index: 4, term: 2, configuration: { members: ['n1'] } },
        data: new Uint8Array([1]),
      });
      expect(code(() => decodeSnapshot(rows(encoded).slice(1)))).toBe('RAFT_STORAGE_CORRUPT');
    });
  });
});
