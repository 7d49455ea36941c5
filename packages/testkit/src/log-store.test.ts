import { describe } from 'vitest';
import { memoryLogStore } from '@raft/log-memory';
import type { MemoryLogStore } from '@raft/log-memory';
import { logStoreSuite } from './log-store.js';

// The in-memory store is its own location: create() hands back the same object, which
// keeps its contents across close() and open().
describe('MemoryLogStore', () => {
  logStoreSuite<MemoryLogStore>({ setup: () => memoryLogStore(), create: (store) => store });
});
