import { describe, expect, it } from 'vitest';
import { Fifo } from './fifo.js';

describe('Fifo', () => {
  it('gives items back in order across its compactions, interleaved with pushes', () => {
    const q = new Fifo<number>();
    expect(q.shift()).toBeUndefined();
    const out: number[] = [];
    let next = 0;
    // Bursts of pushes and shifts of varying sizes, crossing the 1024-item compaction point.
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 100 + round * 37; i++) q.push(next++);
      for (let i = 0; i < 90 + round * 35; i++) out.push(q.shift()!);
      expect(q.length).toBe(next - out.length);
    }
    while (q.length > 0) out.push(q.shift()!);
    expect(out).toEqual(Array.from({ length: next }, (_, i) => i));
    expect(q.shift()).toBeUndefined();
  });
});
