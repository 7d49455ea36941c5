/**
 * The simulator's only source of randomness: mulberry32, a small, fast 32-bit
 * generator. One instance per run, seeded from the run's seed; everything random in a
 * run (election jitter, network, faults, clients) draws from it or from a generator
 * forked from it, so a seed replays the same run.
 */
export class Prng {
  private a: number;

  constructor(seed: number) {
    // splitmix32 of the seed, so that neighbouring seeds start far apart.
    let z = (seed + 0x9e3779b9) >>> 0;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    this.a = (z ^ (z >>> 16)) >>> 0;
  }

  /** A number in [0, 1). */
  next(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max], inclusive. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** A number in [min, max). */
  range(min: number, max: number): number {
    return min + this.next() * (max - min);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return p > 0 && this.next() < p;
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** A new generator whose seed is drawn from this one: an independent, reproducible stream. */
  fork(): Prng {
    return new Prng(Math.floor(this.next() * 4294967296));
  }

  /** `fork()` as a plain function, for `PeerOptions.random`. */
  forkFunction(): () => number {
    const p = this.fork();
    return () => p.next();
  }

  /** A shuffled copy. */
  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      const t = out[i]!;
      out[i] = out[j]!;
      out[j] = t;
    }
    return out;
  }
}
