import { describe, expect, it } from 'vitest';
import { crc32, crc32Portable } from './crc32.js';

describe('crc32', () => {
  it('matches the standard check value', () => {
    const check = new TextEncoder().encode('123456789');
    expect(crc32Portable(check)).toBe(0xcbf43926);
    expect(crc32(check)).toBe(0xcbf43926);
    expect(crc32Portable(new Uint8Array(0))).toBe(0);
  });

  it('agrees with the native one on seeded random input, in one call and in pieces', () => {
    let seed = 7;
    const next = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    for (let round = 0; round < 50; round++) {
      const data = new Uint8Array(Math.floor(next() * 2000)).map(() => Math.floor(next() * 256));
      const cut = Math.floor(next() * data.length);
      expect(crc32Portable(data)).toBe(crc32(data));
      expect(crc32Portable(data.subarray(cut), crc32Portable(data.subarray(0, cut)))).toBe(crc32(data));
    }
  });
});
