import { describe, expect, it } from 'vitest';
import { seededRandom } from '@raft/core';
import { backoffDelay } from './backoff.js';

const options = { initialDelayMs: 100, maxDelayMs: 5000, multiplier: 2, jitter: 0.5 };

/** mulberry32, for seeded jitter. */
const seeded = seededRandom;

describe('backoffDelay', () => {
  it('grows exponentially up to the cap when the random part is zero', () => {
    const delays = [0, 1, 2, 3, 4, 5, 6, 10].map((attempt) => backoffDelay(attempt, options, () => 0));
    expect(delays).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000]);
  });

  it('takes off at most `jitter` of the delay', () => {
    const random = seeded(1);
    for (let attempt = 0; attempt < 50; attempt++) {
      const base = Math.min(5000, 100 * 2 ** attempt);
      const delay = backoffDelay(attempt, options, random);
      expect(delay).toBeGreaterThanOrEqual(base * 0.5);
      expect(delay).toBeLessThanOrEqual(base);
    }
  });

  it('spreads peers out and is reproducible with the same seed', () => {
    const run = (seed: number) => {
      const random = seeded(seed);
      return Array.from({ length: 10 }, () => backoffDelay(3, options, random));
    };
    expect(run(5)).toEqual(run(5));
    expect(new Set(run(5)).size).toBeGreaterThan(5);
  });

  it('has no randomness with jitter 0, and survives a bad random source', () => {
    expect(backoffDelay(2, { ...options, jitter: 0 }, () => 0.9)).toBe(400);
    expect(backoffDelay(2, options, () => Number.NaN)).toBe(400);
    expect(backoffDelay(2, options, () => 7)).toBe(200);
  });
});
