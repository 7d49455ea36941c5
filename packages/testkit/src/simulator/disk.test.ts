import type { LogEntry, Snapshot } from '@raft/core';
import { describe, expect, it } from 'vitest';
import { SimLogStore, type DiskBehaviour } from './disk.js';
import { testWorld } from '../../test/sim-world.js';
import { Incarnation, type World } from './world.js';

/** One node, n1, with an empty disk. */
const world = (): { w: World; failures: string[] } => testWorld(1);

const entry = (index: number, term: number): LogEntry => ({
  index,
  term,
  type: 'command',
  data: new Uint8Array([index]),
});

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
    const p = store
      .write({ hardState: { term: 2, votedFor: 'n1' }, entries: [entry(1, 1), entry(2, 2)] })
      .then(() => (done = true));
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
    await expect(store.write({ entries: [entry(3, 1)] })).rejects.toMatchObject({
      code: 'RAFT_INVALID_ARGUMENT',
    });
    expect(failures).toHaveLength(1);
  });

  const snap = (index: number, term: number): Snapshot => ({
    meta: { index, term, configuration: { members: ['n1'] } },
    data: new Uint8Array([9, index]),
  });

  it('keeps the log under a matching snapshot until compact, and compaction survives only once synced', async () => {
    const { w, failures } = world();
    const node = w.nodes[0]!;
    const inc = new Incarnation(node, 1);
    const store = new SimLogStore(w, inc, node.disk, honest, () => undefined);
    await store.open();
    const written = store.write({ entries: [entry(1, 1), entry(2, 1), entry(3, 2), entry(4, 2)] });
    drain(w);
    await written;
    const snapped = store.write({ snapshot: snap(3, 2) });
    drain(w);
    await snapped;
    expect(node.disk.lastIndex()).toBe(4);
    expect(node.disk.firstIndex()).toBe(1);
    const compacted = store.compact(2);
    drain(w);
    await compacted;
    expect(node.disk.firstIndex()).toBe(3);
    expect((await store.entries(1, 5)).map((e) => e.index)).toEqual([3, 4]);
    // A compaction not yet synced when the peer crashes leaves the entries.
    void store.compact(3);
    inc.alive = false;
    drain(w);
    const next = new SimLogStore(w, new Incarnation(node, 2), node.disk, honest, () => undefined);
    const state = await next.open();
    expect(state).toMatchObject({ firstIndex: 3, lastIndex: 4, snapshot: { index: 3, term: 2 } });
    const loaded = await next.loadSnapshot();
    expect(loaded?.meta.index).toBe(3);
    expect([...loaded!.data]).toEqual([9, 3]);
    expect(failures).toEqual([]);
  });

  it('empties the log under a snapshot that does not match it, and loses an unsynced snapshot on a crash', async () => {
    const { w, failures } = world();
    const node = w.nodes[0]!;
    const inc = new Incarnation(node, 1);
    const store = new SimLogStore(w, inc, node.disk, honest, () => undefined);
    await store.open();
    const written = store.write({ entries: [entry(1, 1), entry(2, 1)] });
    drain(w);
    await written;
    void store.write({ snapshot: snap(6, 3) });
    inc.alive = false;
    drain(w);
    expect(node.disk.snapshot).toBeUndefined();
    expect(node.disk.lastIndex()).toBe(2);
    const inc2 = new Incarnation(node, 2);
    const store2 = new SimLogStore(w, inc2, node.disk, honest, () => undefined);
    await store2.open();
    const landed = store2.write({ snapshot: snap(6, 3), entries: [entry(7, 3)] });
    drain(w);
    await landed;
    expect(await store2.open()).toMatchObject({
      firstIndex: 7,
      lastIndex: 7,
      snapshot: { index: 6, term: 3 },
    });
    // Entries at or below the snapshot, and compaction beyond it, break the store's contract.
    await expect(store2.write({ entries: [entry(6, 3)] })).rejects.toMatchObject({
      code: 'RAFT_INVALID_ARGUMENT',
    });
    await expect(store2.compact(7)).rejects.toMatchObject({ code: 'RAFT_INVALID_ARGUMENT' });
    expect(failures).toHaveLength(2);
  });
});
