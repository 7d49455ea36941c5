import { describe, expect, it } from 'vitest';
import { encodeEntry } from './format.js';
import type { StoredEntry } from './format.js';
import { TailCache } from './tail-cache.js';

function stored(from: number, to: number, term = 1, size = 10): StoredEntry[] {
  const out: StoredEntry[] = [];
  for (let i = from; i <= to; i++)
    out.push(encodeEntry({ index: i, term, type: 'command', data: new Uint8Array(size) }));
  return out;
}

const indexes = (es: StoredEntry[] | undefined) => es?.map((e) => e.index);

describe('TailCache', () => {
  it('serves a range only when all of it is cached', () => {
    const cache = new TailCache(100, 1 << 20);
    cache.replaceFrom(stored(5, 9));
    expect(indexes(cache.range(5, 10))).toEqual([5, 6, 7, 8, 9]);
    expect(indexes(cache.range(7, 8))).toEqual([7]);
    expect(cache.range(4, 6)).toBeUndefined();
    expect(cache.range(9, 11)).toBeUndefined();
    expect(cache.get(4)).toBeUndefined();
    expect(cache.get(9)?.index).toBe(9);
  });

  it('drops a truncated suffix and appends after it', () => {
    const cache = new TailCache(100, 1 << 20);
    cache.replaceFrom(stored(1, 10));
    cache.replaceFrom(stored(4, 5, 2));
    expect(indexes(cache.range(1, 6))).toEqual([1, 2, 3, 4, 5]);
    expect(cache.get(4)?.term).toBe(2);
    expect(cache.get(6)).toBeUndefined();
    cache.replaceFrom(stored(6, 6, 2)); // a plain append
    expect(cache.size).toBe(6);
  });

  it('starts over when new entries begin before it or leave a gap', () => {
    const cache = new TailCache(100, 1 << 20);
    cache.replaceFrom(stored(10, 20));
    cache.replaceFrom(stored(3, 4, 2));
    expect(cache.firstIndex).toBe(3);
    expect(cache.size).toBe(2);
    cache.replaceFrom(stored(8, 9, 2));
    expect(cache.firstIndex).toBe(8);
  });

  it('keeps within its entry budget (with some slack) and its byte budget', () => {
    const byCount = new TailCache(32, 1 << 20);
    for (let i = 1; i <= 1000; i++) byCount.replaceFrom(stored(i, i));
    expect(byCount.size).toBeLessThanOrEqual(32 + 16);
    expect(byCount.get(1000)?.index).toBe(1000);
    const byBytes = new TailCache(1000, 100);
    byBytes.replaceFrom(stored(1, 50, 1, 10));
    expect(byBytes.size).toBe(10);
    expect(byBytes.firstIndex).toBe(41);
  });
});

describe('TailCache.dropBefore', () => {
  it('drops compacted entries, and everything when the compaction point is past its end', () => {
    const cache = new TailCache(100, 1 << 20);
    cache.replaceFrom(stored(5, 9));
    cache.dropBefore(3);
    expect(cache.firstIndex).toBe(5);
    cache.dropBefore(7);
    expect(indexes(cache.range(7, 10))).toEqual([7, 8, 9]);
    expect(cache.get(6)).toBeUndefined();
    cache.dropBefore(20);
    expect(cache.size).toBe(0);
    cache.replaceFrom(stored(20, 21));
    expect(indexes(cache.range(20, 22))).toEqual([20, 21]);
  });

  it('gives back the bytes of what it drops', () => {
    const cache = new TailCache(1000, 100);
    cache.replaceFrom(stored(1, 10, 1, 10)); // exactly the byte budget
    cache.dropBefore(6);
    cache.replaceFrom(stored(11, 15, 1, 10)); // fits again: nothing trimmed
    expect(cache.firstIndex).toBe(6);
    expect(cache.size).toBe(10);
  });
});
