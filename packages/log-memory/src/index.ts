export { MemoryLogStore, memoryLogStore } from './memory-log-store.js';
export type { MemoryLogStoreOptions } from './memory-log-store.js';
