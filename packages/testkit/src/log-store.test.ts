import { describe } from 'vitest';
import type { LogStore } from '@raft/core';
import { memoryLogStore } from '@raft/log-memory';
import type { MemoryLogStore } from '@raft/log-memory';
import { logStoreSuite } from './log-store.js';

// The in-memory store is its own location: create() hands back the same object, which
// keeps its contents across close() and open().
describe('MemoryLogStore', () => {
  logStoreSuite<MemoryLogStore>({ setup: () => memoryLogStore(), create: (store) => store });
});

/** The same store seen through the required methods of LogStore only: snapshots off. */
function withoutSnapshots(store: MemoryLogStore): LogStore {
  return {
    open: () => store.open(),
    write: (batch) => store.write(batch),
    entries: (from, to) => store.entries(from, to),
    close: () => store.close(),
  };
}

// loadSnapshot/compact are optional as a pair: the snapshot tests skip, with a note, and
// every other test still runs.
describe('a LogStore without loadSnapshot/compact', () => {
  logStoreSuite<MemoryLogStore>({ setup: () => memoryLogStore(), create: withoutSnapshots });
});
