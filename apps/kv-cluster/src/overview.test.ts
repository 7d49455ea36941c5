import type { RaftMetrics } from '@raft/core';
import { describe, expect, it } from 'vitest';
import { overview, quantile, type MemberView, type NodeReport } from './overview.js';

const h = (counts: number[], sum = 0) => ({ bounds: [0.001, 0.01, 0.1], counts, count: counts.at(-1)!, sum });

function report(id: string, leader: string | null, over: Partial<NodeReport> = {}): NodeReport {
  return {
    id,
    wallMs: 1000,
    figures: { name: id, role: id === leader ? 'leader' : 'follower', leader, term: 2 } as Omit<
      RaftMetrics,
      'events'
    >,
    events: [],
    history: [],
    ...over,
  };
}
const up = (r: NodeReport): MemberView => ({ id: r.id, url: `ws://${r.id}`, up: true, report: r });

describe('quantile', () => {
  it('interpolates within the bucket, like histogram_quantile', () => {
    expect(quantile(h([0, 0, 0]), 0.5)).toBeNull();
    // 10 observations, all in (0.01, 0.1]: the median is halfway.
    expect(quantile(h([0, 0, 10]), 0.5)).toBeCloseTo(0.055);
    expect(quantile(h([5, 10, 10]), 0.5)).toBeCloseTo(0.001);
    expect(quantile(h([5, 10, 10]), 0.99)).toBeCloseTo(0.01 - 0.009 * 0.02);
  });
});

describe('overview', () => {
  it('names the leader most members that answer agree on, and not a dead one', () => {
    const o = overview('n1', [up(report('n1', 'n2')), up(report('n2', 'n2')), up(report('n3', 'n3'))]);
    expect(o.leader).toBe('n2');
    const dead = overview('n1', [
      up(report('n1', 'n2')),
      { id: 'n2', url: 'ws://n2', up: false, error: 'ECONNREFUSED' },
      up(report('n3', 'n3')),
    ]);
    expect(dead.leader).toBe('n3');
  });

  it('sums the members’ seconds and shows an event seen by several members once', () => {
    const second = (t: number, n: number) => ({ t, writes: h([0, n, n], n * 0.005), reads: h([n, n, n]) });
    const leaderEvent = { kind: 'leader' as const, at: 5, term: 2, leader: 'n1' };
    const o = overview('n1', [
      up(
        report('n1', 'n1', {
          history: [second(10, 4), second(11, 2)],
          events: [{ ...leaderEvent, node: 'n1', wallMs: 500 }],
        }),
      ),
      up(
        report('n2', 'n1', {
          history: [second(11, 1)],
          events: [{ ...leaderEvent, node: 'n2', wallMs: 480 }],
        }),
      ),
    ]);
    expect(o.series.map((p) => [p.t, p.writesPerSec, p.readsPerSec])).toEqual([
      [10, 4, 4],
      [11, 3, 3],
    ]);
    expect(o.series[0]!.writeP50Ms).toBeCloseTo(5.5);
    expect(o.events).toEqual([{ ...leaderEvent, node: 'n2', wallMs: 480 }]);
  });
});
