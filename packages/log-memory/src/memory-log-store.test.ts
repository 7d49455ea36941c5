import { describe, expect, it } from 'vitest';
import { RaftError } from '@raft/core';
import type { LogEntry, Snapshot } from '@raft/core';
import { MemoryLogStore, memoryLogStore } from './index.js';

function entry(index: number, term: number, bytes: number[] = [index & 0xff]): LogEntry {
  return { index, term, type: 'command', data: new Uint8Array(bytes) };
}

function snap(index: number, term: number, data: number[] = [index]): Snapshot {
  return {
    meta: { index, term, configuration: { members: ['n1', 'n2', 'n3'] } },
    data: new Uint8Array(data),
  };
}

function run(from: number, to: number, term: number): LogEntry[] {
  const out: LogEntry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term));
  return out;
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (error) {
    expect(RaftError.isInstance(error)).toBe(true);
    return (error as RaftError).code;
  }
}

describe('MemoryLogStore', () => {
  it('is created by the factory and by new', async () => {
    for (const store of [memoryLogStore(), new MemoryLogStore()]) {
      expect(await store.open()).toStrictEqual({
        hardState: { term: 0, votedFor: null },
        firstIndex: 1,
        lastIndex: 0,
      });
    }
  });

  it('copies entry data when writing: changes the caller makes afterwards do not reach the log', async () => {
    const store = memoryLogStore();
    await store.open();
    const e = entry(1, 1, [1, 2, 3]);
    const p = store.write({ entries: [e] });
    e.data[0] = 99; // before the write resolved
    e.term = 7;
    await p;
    e.data[1] = 99;
    const [stored] = await store.entries(1, 2);
    expect(stored).toEqual({ index: 1, term: 1, type: 'command', data: new Uint8Array([1, 2, 3]) });
  });

  it('copies entry data when reading: changing a returned entry changes nothing stored', async () => {
    const store = memoryLogStore();
    await store.open();
    await store.write({ entries: [entry(1, 1, [1, 2, 3])] });
    const [first] = await store.entries(1, 2);
    first!.data[0] = 42;
    first!.term = 9;
    expect(await store.entries(1, 2)).toEqual([entry(1, 1, [1, 2, 3])]);
  });

  it('copies the hard state both ways', async () => {
    const store = memoryLogStore();
    await store.open();
    const hs = { term: 2, votedFor: 'n1' };
    await store.write({ hardState: hs });
    hs.term = 5;
    const state = await store.open();
    state.hardState.term = 6;
    expect((await store.open()).hardState).toEqual({ term: 2, votedFor: 'n1' });
  });

  it('answers open() on an open store with its current state', async () => {
    const store = memoryLogStore();
    await store.open();
    await store.write({ entries: [entry(1, 1), entry(2, 1)] });
    expect(await store.open()).toEqual({
      hardState: { term: 0, votedFor: null },
      firstIndex: 1,
      lastIndex: 2,
    });
  });

  it('accepts infinite bounds and rejects NaN or fractional ones', async () => {
    const store = memoryLogStore();
    await store.open();
    await store.write({ entries: [entry(1, 1), entry(2, 1)] });
    expect((await store.entries(-Infinity, Infinity)).map((e) => e.index)).toEqual([1, 2]);
    expect(await codeOf(store.entries(Number.NaN, 2))).toBe('RAFT_INVALID_ARGUMENT');
    expect(await codeOf(store.entries(1, 1.5))).toBe('RAFT_INVALID_ARGUMENT');
    expect(await codeOf(store.entries('1' as unknown as number, 2))).toBe('RAFT_INVALID_ARGUMENT');
  });

  it('rejects a batch that is not an object', async () => {
    const store = memoryLogStore();
    await store.open();
    expect(await codeOf(store.write(null as never))).toBe('RAFT_INVALID_ARGUMENT');
    expect(await codeOf(store.write({ entries: 'x' as never }))).toBe('RAFT_INVALID_ARGUMENT');
    expect(await codeOf(store.write({ hardState: { term: 1, votedFor: 3 as never } }))).toBe(
      'RAFT_INVALID_ARGUMENT',
    );
  });

  it('applies writes issued together in call order, each against the log the earlier ones left', async () => {
    const store = memoryLogStore();
    await store.open();
    const results = await Promise.allSettled([
      store.write({ entries: [entry(1, 1), entry(2, 1)] }),
      store.write({ entries: [entry(4, 1)] }), // a gap after the first write
      store.write({ entries: [entry(2, 2)] }), // truncates entry 2
      store.write({ hardState: { term: 2, votedFor: null } }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect(await store.entries(1, 10)).toEqual([entry(1, 1), entry(2, 2)]);
  });
});

describe('MemoryLogStore snapshots (beyond the conformance suite)', () => {
  it('refuses a snapshot older than the stored one, and accepts one at the same index', async () => {
    const store = memoryLogStore();
    await store.open();
    await store.write({ entries: run(1, 10, 1) });
    await store.write({ snapshot: snap(6, 1) });
    await store.compact(6);
    expect(await codeOf(store.write({ hardState: { term: 5, votedFor: null }, snapshot: snap(5, 1) }))).toBe(
      'RAFT_INVALID_ARGUMENT',
    );
    expect(await store.open()).toEqual({
      hardState: { term: 0, votedFor: null },
      firstIndex: 7,
      lastIndex: 10,
      snapshot: snap(6, 1).meta,
    });
    // The same point again (its entry is compacted, the snapshot knows its term): the log stays.
    await store.write({ snapshot: snap(6, 1, [9]) });
    expect(await store.open()).toEqual({
      hardState: { term: 0, votedFor: null },
      firstIndex: 7,
      lastIndex: 10,
      snapshot: snap(6, 1).meta,
    });
    expect((await store.loadSnapshot())?.data).toEqual(new Uint8Array([9]));
    expect((await store.entries(1, 20)).map((e) => e.index)).toEqual([7, 8, 9, 10]);
  });

  it('refuses entries that would rewrite what the snapshot covers, even above firstIndex', async () => {
    const store = memoryLogStore();
    await store.open();
    await store.write({ entries: run(1, 10, 1) });
    await store.write({ snapshot: snap(5, 1) });
    expect(await codeOf(store.write({ entries: run(3, 3, 2) }))).toBe('RAFT_INVALID_ARGUMENT');
    expect(await codeOf(store.write({ entries: run(5, 5, 2) }))).toBe('RAFT_INVALID_ARGUMENT');
    expect((await store.entries(1, 20)).map((e) => e.term)).toEqual(run(1, 10, 1).map((e) => e.term));
    await store.write({ entries: run(6, 6, 2) });
    expect(await store.open()).toMatchObject({ firstIndex: 1, lastIndex: 6 });
  });

  it("refuses entries after an emptying snapshot whose term is below the snapshot's", async () => {
    const store = memoryLogStore();
    await store.open();
    expect(await codeOf(store.write({ snapshot: snap(10, 3), entries: run(11, 11, 2) }))).toBe(
      'RAFT_INVALID_ARGUMENT',
    );
    expect(await store.loadSnapshot()).toBeUndefined();
    await store.write({ snapshot: snap(10, 3) });
    expect(await codeOf(store.write({ entries: run(11, 11, 2) }))).toBe('RAFT_INVALID_ARGUMENT');
    await store.write({ entries: run(11, 11, 3) });
    expect(await store.open()).toMatchObject({ firstIndex: 11, lastIndex: 11 });
  });

  it('refuses compact() with no snapshot, even compact(0)', async () => {
    const store = memoryLogStore();
    await store.open();
    expect(await codeOf(store.compact(0))).toBe('RAFT_INVALID_ARGUMENT');
    expect(await codeOf(store.compact('1' as unknown as number))).toBe('RAFT_INVALID_ARGUMENT');
  });

  it('keeps its snapshot and compaction point across close() and open() of the same object', async () => {
    const store = memoryLogStore();
    await store.open();
    await store.write({ hardState: { term: 1, votedFor: 'n1' }, entries: run(1, 4, 1) });
    await store.write({ snapshot: snap(3, 1, [1, 2, 3]) });
    await store.compact(2);
    await store.close();
    expect(await codeOf(store.loadSnapshot())).toBe('RAFT_STORAGE_CLOSED');
    expect(await store.open()).toStrictEqual({
      hardState: { term: 1, votedFor: 'n1' },
      firstIndex: 3,
      lastIndex: 4,
      snapshot: snap(3, 1).meta,
    });
    expect(await store.loadSnapshot()).toStrictEqual(snap(3, 1, [1, 2, 3]));
  });
});
