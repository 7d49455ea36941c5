import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe } from 'vitest';
import { logStoreSuite } from '@raft/testkit/log-store';
import { levelLogStore } from '../src/index.js';

describe('LevelLogStore', () => {
  logStoreSuite({
    setup: () => mkdtemp(join(tmpdir(), 'raft-log-level-')),
    create: (dir) => levelLogStore({ location: join(dir, 'db') }),
    teardown: (dir) => rm(dir, { recursive: true, force: true }),
  });
});

describe('LevelLogStore with a tiny tail cache (reads and term checks go to LevelDB)', () => {
  logStoreSuite({
    setup: () => mkdtemp(join(tmpdir(), 'raft-log-level-')),
    create: (dir) => levelLogStore({ location: join(dir, 'db'), tailCacheEntries: 2, verifyOnOpen: 3 }),
    teardown: (dir) => rm(dir, { recursive: true, force: true }),
  });
});
