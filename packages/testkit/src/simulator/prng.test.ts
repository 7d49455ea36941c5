import { describe, expect, it } from 'vitest';
import { Prng } from './prng.js';

describe('Prng', () => {
  it('repeats its sequence for a seed, and differs between seeds', () => {
    const a = new Prng(42);
    const b = new Prng(42);
    const c = new Prng(43);
    const sa = Array.from({ length: 20 }, () => a.next());
    expect(Array.from({ length: 20 }, () => b.next())).toEqual(sa);
    expect(Array.from({ length: 20 }, () => c.next())).not.toEqual(sa);
  });

  it('draws in range', () => {
    const p = new Prng(1);
    for (let i = 0; i < 1000; i++) {
      const x = p.next();
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThan(1);
      const n = p.int(3, 5);
      expect([3, 4, 5]).toContain(n);
    }
    expect(p.chance(0)).toBe(false);
  });

  it('forks independent, reproducible streams', () => {
    const a = new Prng(9).fork();
    const b = new Prng(9).fork();
    expect(a.next()).toBe(b.next());
  });
});
