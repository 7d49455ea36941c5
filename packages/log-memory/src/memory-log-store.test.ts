import { describe, expect, it } from 'vitest';
import { RaftError } from '@raft/core';
import type { LogEntry } from '@raft/core';
import { MemoryLogStore, memoryLogStore } from './index.js';

function entry(index: number, term: number, bytes: number[] = [index & 0xff]): LogEntry {
  return { index, term, type: 'command', data: new Uint8Array(bytes) };
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
      expect(await store.open()).toEqual({ hardState: { term: 0, votedFor: null }, firstIndex: 1, lastIndex: 0 });
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
    expect(await store.open()).toEqual({ hardState: { term: 0, votedFor: null }, firstIndex: 1, lastIndex: 2 });
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
    expect(await codeOf(store.write({ hardState: { term: 1, votedFor: 3 as never } }))).toBe('RAFT_INVALID_ARGUMENT');
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
