import { describe, expect, it } from 'vitest';
import { Scheduler } from './scheduler.js';

describe('Scheduler', () => {
  it('runs events in time order, and same-time events in scheduling order', () => {
    const s = new Scheduler();
    const order: string[] = [];
    s.at(5, null, () => order.push('b'));
    s.at(1, null, () => order.push('a'));
    s.at(5, null, () => order.push('c'));
    s.at(3, null, () => order.push('x'));
    for (let ev = s.pop(); ev !== undefined; ev = s.pop()) ev.run();
    expect(order).toEqual(['a', 'x', 'b', 'c']);
    expect(s.now).toBe(5);
  });

  it('never schedules in the past', () => {
    const s = new Scheduler();
    s.at(10, null, () => undefined);
    s.pop();
    const ev = s.at(2, null, () => undefined);
    expect(ev.at).toBe(10);
  });
});
