export { LevelLogStore, levelLogStore } from './level-log-store.js';
export type { LevelLogStoreOptions, LevelLogStoreStats, LevelDbOptions } from './level-log-store.js';
export { StorageCorruptError } from './errors.js';
