import type { LogEntry } from '@raft/core';
import { describe, expect, it } from 'vitest';
import { SimDisk, SimLogStore, type DiskBehaviour } from './disk.js';
import { Prng } from './prng.js';
import { Scheduler } from './scheduler.js';
import { Trace } from './trace.js';
import { Incarnation, SimNode, type World } from './world.js';

function world(): { w: World; failures: string[] } {
  const failures: string[] = [];
  const nodes: SimNode[] = [];
  const w: World = {
    sched: new Scheduler(),
    rng: new Prng(1),
    trace: new Trace(10),
    activity: 0,
    touch(node) {
      this.activity++;
      node.dirty = true;
    },
    fail: (check, message) => failures.push(`${check}: ${message}`),
    nodes,
    node: (name) => nodes.find((n) => n.name === name)!,
  };
  nodes.push(new SimNode('n1', 0, new SimDisk(), 1));
  return { w, failures };
}

const entry = (index: number, term: number): LogEntry => ({ index, term, type: 'command', data: new Uint8Array([index]) });

function drain(w: World): void {
  for (let ev = w.sched.pop(); ev !== undefined; ev = w.sched.pop()) ev.run();
}

describe('the simulated disk', () => {
  const honest: DiskBehaviour = { syncMs: [1, 5], lying: false };

  it('makes a write durable, and resolves it, only once synced', async () => {
    const { w } = world();
    const node = w.nodes[0]!;
    const inc = new Incarnation(node, 1);
    const store = new SimLogStore(w, inc, node.disk, honest, () => undefined);
    await store.open();
    let done = false;
    const p = store.write({ hardState: { term: 2, votedFor: 'n1' }, entries: [entry(1, 1), entry(2, 2)] }).then(() => (done = true));
    await Promise.resolve();
    expect(done).toBe(false);
    expect(node.disk.lastIndex()).toBe(0);
    drain(w);
    await p;
    expect(done).toBe(true);
    expect(node.disk.hardState).toEqual({ term: 2, votedFor: 'n1' });
    expect((await store.entries(1, 3)).map((e) => e.term)).toEqual([1, 2]);
  });

  it('loses a write that was not synced when its incarnation crashed', async () => {
    const { w } = world();
    const node = w.nodes[0]!;
    const inc = new Incarnation(node, 1);
    const store = new SimLogStore(w, inc, node.disk, honest, () => undefined);
    await store.open();
    let settled = false;
    void store.write({ entries: [entry(1, 1)] }).then(() => (settled = true));
    inc.alive = false; // the crash
    drain(w);
    await Promise.resolve();
    expect(settled).toBe(false);
    expect(node.disk.lastIndex()).toBe(0);
    // The next life opens what the disk kept.
    const next = new SimLogStore(w, new Incarnation(node, 2), node.disk, honest, () => undefined);
    expect((await next.open()).lastIndex).toBe(0);
  });

  it('a lying disk acknowledges at once and loses the write on a crash', async () => {
    const { w } = world();
    const node = w.nodes[0]!;
    const inc = new Incarnation(node, 1);
    const store = new SimLogStore(w, inc, node.disk, { syncMs: [1, 5], lying: true }, () => undefined);
    await store.open();
    await store.write({ entries: [entry(1, 1)] });
    inc.alive = false;
    drain(w);
    expect(node.disk.lastIndex()).toBe(0);
  });

  it('rejects a write that would leave a gap, and reports it', async () => {
    const { w, failures } = world();
    const node = w.nodes[0]!;
    const store = new SimLogStore(w, new Incarnation(node, 1), node.disk, honest, () => undefined);
    await store.open();
    await expect(store.write({ entries: [entry(3, 1)] })).rejects.toMatchObject({ code: 'RAFT_INVALID_ARGUMENT' });
    expect(failures).toHaveLength(1);
  });
});
