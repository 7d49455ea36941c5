// The @raft/testkit LogStore conformance suite against the store of this test project.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe } from 'vitest';
import { logStoreSuite } from '@raft/testkit/log-store';
import { JsonFileLogStore } from './json-file-log-store.mjs';

describe('JsonFileLogStore', () =>
  logStoreSuite(
    {
      setup: () => mkdtemp(join(tmpdir(), 'json-log-')),
      create: (dir) => new JsonFileLogStore(dir),
      teardown: (dir) => rm(dir, { recursive: true, force: true }),
    },
    { largeBatch: 2000, timeout: 60_000 },
  ));
