import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ClassicLevel } from 'classic-level';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RaftError, seededRandom } from '@raft/core';
import type { LogEntry, LogWrite, Snapshot } from '@raft/core';
import {
  chunkKey,
  decodeMeta,
  encodeEntry,
  encodeMeta,
  encodeSnapshot,
  ENTRY_KEYS_END,
  ENTRY_KEYS_START,
  entryKey,
  HARD_STATE_KEY,
  indexOfKey,
  META_KEY,
  SNAPSHOT_CHUNK_BYTES,
  SNAPSHOT_KEY,
  SNAPSHOT_KEYS_END,
} from './format.js';
import { LevelLogStore, levelLogStore, StorageCorruptError } from './index.js';
import type { LevelLogStoreOptions } from './index.js';

const dirs: string[] = [];
const stores: LevelLogStore[] = [];

afterEach(async () => {
  vi.restoreAllMocks();
  for (const s of stores.splice(0)) await s.close().catch(() => undefined);
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'raft-log-level-'));
  dirs.push(dir);
  return dir;
}

function store(options: LevelLogStoreOptions): LevelLogStore {
  const s = levelLogStore(options);
  stores.push(s);
  return s;
}

async function openStore(options: Partial<LevelLogStoreOptions> = {}): Promise<LevelLogStore> {
  const s = store({ location: join(await tempDir(), 'db'), ...options });
  await s.open();
  return s;
}

function entry(index: number, term = 1, size = 8): LogEntry {
  return { index, term, type: 'command', data: new Uint8Array(size).fill(index & 0xff) };
}

function run(from: number, to: number, term = 1, size = 8): LogEntry[] {
  const out: LogEntry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term, size));
  return out;
}

async function failure(promise: Promise<unknown>): Promise<RaftError> {
  try {
    await promise;
  } catch (error) {
    expect(RaftError.isInstance(error)).toBe(true);
    return error as RaftError;
  }
  return expect.fail('expected a rejection');
}

/** Opens the database directly, as a disk fault or a bug elsewhere would see it. */
async function withRaw(
  location: string,
  fn: (db: ClassicLevel<Uint8Array, Uint8Array>) => Promise<void>,
): Promise<void> {
  const db = new ClassicLevel<Uint8Array, Uint8Array>(location, {
    keyEncoding: 'view',
    valueEncoding: 'view',
  });
  await db.open();
  try {
    await fn(db);
  } finally {
    await db.close();
  }
}

type ChainedBatchLike = { length: number; write(options?: { sync?: boolean }): Promise<void> };
let chainedBatchPrototype: ChainedBatchLike | undefined;

/** The prototype of classic-level's chained batch: every batch of the store ends in its write(). */
async function chainedBatch(): Promise<ChainedBatchLike> {
  if (chainedBatchPrototype === undefined) {
    const db = new ClassicLevel(join(await tempDir(), 'probe'));
    await db.open();
    const batch = db.batch();
    chainedBatchPrototype = Object.getPrototypeOf(batch) as ChainedBatchLike;
    await batch.close();
    await db.close();
  }
  return chainedBatchPrototype;
}

/** A store at a fresh location holding entries 1..n (term 1) and a hard state, closed. */
async function closedStoreWith(
  n: number,
  options: Partial<LevelLogStoreOptions> = {},
): Promise<LevelLogStore> {
  const s = await openStore(options);
  await s.write({ hardState: { term: 1, votedFor: 'n1' }, entries: run(1, n) });
  await s.close();
  return s;
}

describe('options', () => {
  it('accepts a location string or options, and names the location', () => {
    expect(new LevelLogStore('/tmp/x').location).toBe('/tmp/x');
    expect(levelLogStore({ location: '/tmp/y' }).location).toBe('/tmp/y');
    expect(levelLogStore('/tmp/z').location).toBe('/tmp/z');
  });

  it('refuses bad options at once with RAFT_INVALID_ARGUMENT', () => {
    const bad: unknown[] = [
      '',
      {},
      { location: 3 },
      { location: '/tmp/x', tailCacheEntries: -1 },
      { location: '/tmp/x', tailCacheBytes: 1.5 },
      { location: '/tmp/x', verifyOnOpen: Number.NaN },
      { location: '/tmp/x', createIfMissing: 'yes' },
      { location: '/tmp/x', leveldb: 5 },
      null,
    ];
    for (const options of bad) {
      let code: string | undefined;
      try {
        new LevelLogStore(options as LevelLogStoreOptions);
      } catch (error) {
        code = (error as RaftError).code;
      }
      expect(code, JSON.stringify(options)).toBe('RAFT_INVALID_ARGUMENT');
    }
    expect(() => new LevelLogStore({ location: '/tmp/x', verifyOnOpen: Infinity })).not.toThrow();
  });
});

describe('locations', () => {
  it('creates the directory itself when missing', async () => {
    const dir = await tempDir();
    const s = store({ location: join(dir, 'db') });
    expect(await s.open()).toEqual({ hardState: { term: 0, votedFor: null }, firstIndex: 1, lastIndex: 0 });
  });

  it('refuses a missing parent directory with RAFT_STORAGE_UNAVAILABLE (and creates nothing)', async () => {
    const dir = await tempDir();
    const err = await failure(store({ location: join(dir, 'missing', 'db') }).open());
    expect(err.code).toBe('RAFT_STORAGE_UNAVAILABLE');
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
    await expect(store({ location: join(dir, 'missing') }).open()).resolves.toBeDefined(); // the parent was not created behind our back
  });

  it('refuses a missing directory when createIfMissing is false, and opens an existing one', async () => {
    const dir = await tempDir();
    expect((await failure(store({ location: join(dir, 'db'), createIfMissing: false }).open())).code).toBe(
      'RAFT_STORAGE_UNAVAILABLE',
    );
    const s = store({ location: join(dir, 'db') });
    await s.open();
    await s.write({ entries: run(1, 2) });
    await s.close();
    expect((await store({ location: join(dir, 'db'), createIfMissing: false }).open()).lastIndex).toBe(2);
  });

  it('refuses a location that is a file, or whose parent is a file', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'file'), 'x');
    expect((await failure(store({ location: join(dir, 'file') }).open())).code).toBe(
      'RAFT_STORAGE_UNAVAILABLE',
    );
    expect((await failure(store({ location: join(dir, 'file', 'db') }).open())).code).toBe(
      'RAFT_STORAGE_UNAVAILABLE',
    );
  });

  it.skipIf(process.getuid?.() === 0)('refuses an unreadable directory', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'db'));
    await chmod(join(dir, 'db'), 0o000);
    try {
      expect((await failure(store({ location: join(dir, 'db') }).open())).code).toBe(
        'RAFT_STORAGE_UNAVAILABLE',
      );
    } finally {
      await chmod(join(dir, 'db'), 0o700);
    }
  });

  it('refuses a directory another store has open with RAFT_STORAGE_LOCKED and the LevelDB error as cause', async () => {
    const first = await openStore();
    const second = store({ location: first.location });
    const err = await failure(second.open());
    expect(err.code).toBe('RAFT_STORAGE_LOCKED');
    expect((err.cause as { code?: string }).code).toBe('LEVEL_LOCKED');
    await first.close();
    expect((await second.open()).lastIndex).toBe(0);
  });

  it('refuses a directory another process has open with RAFT_STORAGE_LOCKED', async () => {
    const location = join(await tempDir(), 'db');
    const holder = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { ClassicLevel } from 'classic-level'; const db = new ClassicLevel(${JSON.stringify(location)}); await db.open(); console.log('ready'); process.stdin.resume();`,
      ],
      { cwd: join(import.meta.dirname, '..'), stdio: ['pipe', 'pipe', 'inherit'] },
    );
    try {
      const lines = createInterface({ input: holder.stdout });
      for await (const line of lines) if (line === 'ready') break;
      const err = await failure(store({ location }).open());
      expect(err.code).toBe('RAFT_STORAGE_LOCKED');
    } finally {
      holder.kill('SIGKILL');
    }
  });
});

describe('group commit', () => {
  it('writes a burst of writes issued together as one synced batch', async () => {
    const s = await openStore();
    const write = vi.spyOn(await chainedBatch(), 'write');
    await Promise.all(run(1, 64).map((e) => s.write({ entries: [e] })));
    expect(write).toHaveBeenCalledTimes(1);
    expect(s.stats).toMatchObject({ writes: 64, syncs: 1, entriesWritten: 64 });
    expect((await s.entries(1, 65)).map((e) => e.index)).toEqual(run(1, 64).map((e) => e.index));
  });

  it('sends writes arriving while a sync is in flight down together in the next batch, each resolving after its own batch', async () => {
    const s = await openStore();
    const proto = await chainedBatch();
    const original = proto.write;
    const events: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let calls = 0;
    vi.spyOn(proto, 'write').mockImplementation(async function (this: ChainedBatchLike, options) {
      const call = ++calls;
      events.push(`batch ${call} started (${this.length} ops)`);
      if (call === 1) await gate; // hold the first sync in flight
      await original.call(this, options);
      events.push(`batch ${call} durable`);
    });

    const a = s.write({ entries: run(1, 1) }).then(() => events.push('write 1 resolved'));
    await vi.waitFor(() => expect(calls).toBe(1));
    const rest = [2, 3, 4].map((i) =>
      s.write({ entries: run(i, i) }).then(() => events.push(`write ${i} resolved`)),
    );
    release();
    await Promise.all([a, ...rest]);
    expect(events).toEqual([
      'batch 1 started (2 ops)', // entry 1, and the watermark
      'batch 1 durable',
      'write 1 resolved',
      'batch 2 started (4 ops)', // entries 2, 3 and 4, and the watermark
      'batch 2 durable',
      'write 2 resolved',
      'write 3 resolved',
      'write 4 resolved',
    ]);
    expect(s.stats.syncs).toBe(2);
  });

  it('syncs every batch', async () => {
    const s = await openStore();
    const write = vi.spyOn(await chainedBatch(), 'write');
    await s.write({ hardState: { term: 1, votedFor: 'n1' } });
    await s.write({ entries: run(1, 3) });
    await Promise.all([s.write({ entries: run(4, 4) }), s.write({ entries: run(2, 2, 2) })]);
    expect(write).toHaveBeenCalledTimes(3);
    for (const call of write.mock.calls) expect(call[0]).toMatchObject({ sync: true });
  });

  it('costs no sync for an empty write, and resolves it in order', async () => {
    const s = await openStore();
    const write = vi.spyOn(await chainedBatch(), 'write');
    await s.write({});
    await s.write({ entries: [] });
    expect(write).not.toHaveBeenCalled();
    const order: number[] = [];
    await Promise.all([
      s.write({ entries: run(1, 1) }).then(() => order.push(1)),
      s.write({}).then(() => order.push(2)),
    ]);
    expect(order).toEqual([1, 2]);
  });

  it('takes its own copy of the entries when write() is called', async () => {
    const s = await openStore();
    const e = entry(1);
    const p = s.write({ entries: [e] });
    e.data.fill(0xee);
    e.term = 5;
    await p;
    expect(await s.entries(1, 2)).toEqual([entry(1)]);
  });
});

describe('tail cache', () => {
  it('serves recent entries from memory and older ones from LevelDB', async () => {
    const s = await openStore({ tailCacheEntries: 32 });
    await s.write({ entries: run(1, 100) });
    expect(await s.entries(90, 101)).toEqual(run(90, 100));
    expect(s.stats).toMatchObject({ cacheHits: 1, cacheMisses: 0 });
    expect(await s.entries(1, 101)).toEqual(run(1, 100));
    expect(s.stats).toMatchObject({ cacheHits: 1, cacheMisses: 1 });
  });

  it('holds no more entry bytes than allowed', async () => {
    const s = await openStore({ tailCacheBytes: 1000 });
    await s.write({ entries: run(1, 50, 1, 100) });
    await s.entries(46, 51);
    expect(s.stats.cacheHits).toBe(1);
    await s.entries(31, 51);
    expect(s.stats.cacheMisses).toBe(1);
  });

  it('is filled again on open from the verified tail', async () => {
    const s = await closedStoreWith(10);
    await s.open();
    expect(await s.entries(1, 11)).toEqual(run(1, 10));
    expect(s.stats.cacheMisses).toBe(0);
  });

  it('is filled on open from the tail after a compaction point', async () => {
    const s = await openStore();
    await s.write({ entries: run(1, 10) });
    await s.write({
      snapshot: { meta: { index: 6, term: 1, configuration: { members: ['n1'] } }, data: new Uint8Array() },
    });
    await s.compact(6);
    await s.close();
    await s.open();
    expect(s.stats).toMatchObject({ cachedEntries: 4 });
    expect(await s.entries(1, 11)).toEqual(run(7, 10));
    expect(s.stats.cacheMisses).toBe(0);
  });

  it('follows truncations below its window', async () => {
    const s = await openStore({ tailCacheEntries: 4 });
    await s.write({ entries: run(1, 20) });
    await s.write({ entries: run(3, 5, 2) });
    expect(await s.entries(1, 100)).toEqual([...run(1, 2), ...run(3, 5, 2)]);
    await s.write({ entries: run(6, 6, 2) });
    expect(await s.entries(4, 7)).toEqual(run(4, 6, 2));
  });

  it('returns copies from the cache', async () => {
    const s = await openStore();
    await s.write({ entries: run(1, 1) });
    const [a] = await s.entries(1, 2);
    a!.data.fill(0);
    expect(await s.entries(1, 2)).toEqual(run(1, 1));
  });
});

/** The error `open()` refuses a damaged store with: `RAFT_STORAGE_CORRUPT`. */
async function refusal(s: LevelLogStore): Promise<StorageCorruptError> {
  const err = await failure(s.open());
  expect(err.code).toBe('RAFT_STORAGE_CORRUPT');
  expect(err).toBeInstanceOf(StorageCorruptError);
  return err as StorageCorruptError;
}

describe('corruption', () => {
  it('refuses to open on a flipped byte in the tail, naming the entry, and changes nothing on disk', async () => {
    const s = await closedStoreWith(20);
    let original!: Uint8Array;
    await withRaw(s.location, async (db) => {
      original = (await db.get(entryKey(17)))!;
      const bad = Uint8Array.from(original);
      bad[bad.length - 1]! ^= 0x01;
      await db.put(entryKey(17), bad);
    });
    expect((await refusal(s)).index).toBe(17);
    // Nothing was trimmed or rewritten: restoring the byte restores the store.
    await withRaw(s.location, (db) => db.put(entryKey(17), original));
    expect(await s.open()).toMatchObject({ lastIndex: 20 });
    expect(await s.entries(1, 21)).toEqual(run(1, 20));
  });

  it('refuses an entry stored under another index', async () => {
    const s = await closedStoreWith(10);
    await withRaw(s.location, async (db) => db.put(entryKey(6), (await db.get(entryKey(5)))!));
    expect((await refusal(s)).index).toBe(6);
  });

  it('refuses a gap in the tail', async () => {
    const s = await closedStoreWith(10);
    await withRaw(s.location, (db) => db.del(entryKey(7)));
    expect((await refusal(s)).index).toBe(7);
  });

  it('refuses a log that lost its first entries', async () => {
    const s = await closedStoreWith(10);
    await withRaw(s.location, async (db) => {
      await db.del(entryKey(1));
      await db.del(entryKey(2));
    });
    expect((await refusal(s)).index).toBe(1);
  });

  it('refuses a stray entry after the end of the log', async () => {
    const s = await closedStoreWith(10);
    await withRaw(s.location, async (db) => db.put(entryKey(11), (await db.get(entryKey(10)))!));
    expect((await refusal(s)).index).toBe(11);
  });

  it('refuses terms that go down', async () => {
    const s = await openStore();
    await s.write({ entries: run(1, 5, 3) });
    await s.close();
    const other = await openStore();
    await other.write({ entries: run(1, 5, 1) });
    await other.close();
    let low!: Uint8Array;
    await withRaw(other.location, async (db) => void (low = (await db.get(entryKey(4)))!));
    await withRaw(s.location, (db) => db.put(entryKey(4), low));
    expect((await refusal(s)).index).toBe(4);
  });

  it('refuses a corrupt hard state or metadata, with no index', async () => {
    for (const key of [HARD_STATE_KEY, META_KEY]) {
      const s = await closedStoreWith(3);
      await withRaw(s.location, async (db) => {
        const v = Uint8Array.from((await db.get(key))!);
        v[6]! ^= 0x80;
        await db.put(key, v);
      });
      expect((await refusal(s)).index).toBeUndefined();
    }
  });

  it('refuses data without metadata', async () => {
    const s = await closedStoreWith(3);
    await withRaw(s.location, (db) => db.del(META_KEY));
    expect((await refusal(s)).index).toBe(1);
  });

  it('checks entries outside the verified tail when it reads them', async () => {
    const s = await closedStoreWith(100, { verifyOnOpen: 10, tailCacheEntries: 10 });
    await withRaw(s.location, async (db) => {
      const v = Uint8Array.from((await db.get(entryKey(42)))!);
      v[25]! ^= 0xff; // a data byte
      await db.put(entryKey(42), v);
    });
    await s.open();
    expect(await s.entries(90, 101)).toEqual(run(90, 100));
    const err = await failure(s.entries(40, 50));
    expect(err.code).toBe('RAFT_STORAGE_CORRUPT');
    expect((err as StorageCorruptError).index).toBe(42);
    await s.close();
    const full = store({ location: s.location, verifyOnOpen: Infinity });
    expect((await refusal(full)).index).toBe(42);
  });

  it('finds a missing entry outside the verified tail when it reads it', async () => {
    const s = await closedStoreWith(100, { verifyOnOpen: 10, tailCacheEntries: 10 });
    await withRaw(s.location, (db) => db.del(entryKey(30)));
    await s.open();
    expect(((await failure(s.entries(20, 40))) as StorageCorruptError).index).toBe(30);
  });

  it('refuses a store written by a newer format with RAFT_STORAGE_UNAVAILABLE', async () => {
    const s = await closedStoreWith(3);
    await withRaw(s.location, async (db) => {
      // A future layout, longer than today's, with version 2.
      const v = Buffer.concat([Buffer.from(encodeMeta(1)), Buffer.alloc(8)]);
      v[4] = 2;
      const { crc32 } = await import('./crc32.js');
      v.writeUInt32BE(crc32(v.subarray(4)), 0);
      await db.put(META_KEY, v);
    });
    expect((await failure(s.open())).code).toBe('RAFT_STORAGE_UNAVAILABLE');
  });
});

describe('failed writes', () => {
  it('rejects the batch and everything after it with RAFT_STORAGE_UNAVAILABLE until reopened', async () => {
    const s = await openStore();
    await s.write({ hardState: { term: 1, votedFor: 'n1' }, entries: run(1, 3) });
    const ioError = Object.assign(new Error('IO error: disk on fire'), { code: 'LEVEL_IO_ERROR' });
    const spy = vi.spyOn(await chainedBatch(), 'write').mockRejectedValueOnce(ioError);
    const [a, b] = await Promise.allSettled([
      s.write({ entries: run(4, 4) }),
      s.write({ entries: run(5, 5) }),
    ]);
    for (const r of [a, b]) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toMatchObject({
        code: 'RAFT_STORAGE_UNAVAILABLE',
        cause: ioError,
      });
    }
    expect((await failure(s.write({ entries: run(4, 4) }))).code).toBe('RAFT_STORAGE_UNAVAILABLE');
    expect((await failure(s.entries(1, 2))).code).toBe('RAFT_STORAGE_UNAVAILABLE');
    spy.mockRestore();
    await s.close();
    expect(await s.open()).toEqual({ hardState: { term: 1, votedFor: 'n1' }, firstIndex: 1, lastIndex: 3 });
    await s.write({ entries: run(4, 4) });
    expect(await s.entries(1, 10)).toEqual(run(1, 4));
  });
});

describe('lifecycle', () => {
  it('lets writes issued before close() finish, then closes', async () => {
    const s = await openStore();
    const writes = [s.write({ entries: run(1, 2) }), s.write({ entries: run(3, 3) })];
    const closed = s.close();
    expect((await failure(s.write({ entries: run(4, 4) }))).code).toBe('RAFT_STORAGE_CLOSED');
    await Promise.all(writes);
    await closed;
    expect((await s.open()).lastIndex).toBe(3);
  });

  it('answers open() on an open store with its state, and shares one open between concurrent calls', async () => {
    const s = store({ location: join(await tempDir(), 'db') });
    const [a, b] = await Promise.all([s.open(), s.open()]);
    expect(a).toEqual(b);
    await s.write({ hardState: { term: 2, votedFor: null }, entries: run(1, 2) });
    expect(await s.open()).toEqual({ hardState: { term: 2, votedFor: null }, firstIndex: 1, lastIndex: 2 });
  });

  it('closes while opening, and opens while closing', async () => {
    const s = store({ location: join(await tempDir(), 'db') });
    const opening = s.open();
    await s.close();
    await opening;
    expect((await failure(s.entries(1, 2))).code).toBe('RAFT_STORAGE_CLOSED');
    await s.open();
    const closing = s.close();
    expect(await s.open()).toMatchObject({ lastIndex: 0 });
    await closing;
  });

  it('keeps serving writes in order across many groups', async () => {
    const s = await openStore();
    const writes: Promise<void>[] = [];
    const batches: LogWrite[] = [];
    for (let i = 1; i <= 300; i++)
      batches.push(
        i % 50 === 0
          ? { hardState: { term: i, votedFor: null }, entries: [entry(i, i)] }
          : { entries: [entry(i, i - (i % 50))] },
      );
    for (const [k, b] of batches.entries()) {
      writes.push(s.write(b));
      if (k % 7 === 0) await Promise.resolve(); // let some groups form mid-stream
    }
    await Promise.all(writes);
    expect(s.stats.syncs).toBeLessThan(300);
    const got = await s.entries(1, 301);
    expect(got.map((e) => e.index)).toEqual(batches.map((_, k) => k + 1));
    expect((await s.open()).hardState).toEqual({ term: 300, votedFor: null });
  });
});

describe('snapshots and compaction', () => {
  const members = ['n1', 'n2', 'n3'];
  function snap(index: number, term: number, data: Uint8Array | number[] = [index & 0xff]): Snapshot {
    return {
      meta: { index, term, configuration: { members } },
      data: data instanceof Uint8Array ? data : new Uint8Array(data),
    };
  }

  /** Keys LevelDB holds in [gte, lt), read raw. */
  async function rawKeys(location: string, gte: Uint8Array, lt: Uint8Array): Promise<Uint8Array[]> {
    let keys: Uint8Array[] = [];
    await withRaw(location, async (db) => void (keys = await db.keys({ gte, lt }).all()));
    return keys;
  }

  describe('beyond the conformance suite', () => {
    it('refuses a snapshot older than the stored one, and keeps the log for one at the same point', async () => {
      const s = await openStore();
      await s.write({ entries: run(1, 10) });
      await s.write({ snapshot: snap(6, 1) });
      await s.compact(6);
      expect(
        (await failure(s.write({ hardState: { term: 5, votedFor: null }, snapshot: snap(5, 1) }))).code,
      ).toBe('RAFT_INVALID_ARGUMENT');
      await s.write({ snapshot: snap(6, 1, [9]) }); // entry 6 is compacted; the snapshot knows its term
      await s.close();
      expect(await s.open()).toEqual({
        hardState: { term: 0, votedFor: null },
        firstIndex: 7,
        lastIndex: 10,
        snapshot: snap(6, 1).meta,
      });
      expect((await s.loadSnapshot())?.data).toEqual(new Uint8Array([9]));
      expect(await s.entries(1, 20)).toEqual(run(7, 10));
    });

    it('refuses entries that would rewrite what the snapshot covers, even above firstIndex', async () => {
      const s = await openStore();
      await s.write({ entries: run(1, 10) });
      await s.write({ snapshot: snap(5, 1) });
      expect((await failure(s.write({ entries: run(3, 3, 2) }))).code).toBe('RAFT_INVALID_ARGUMENT');
      expect((await failure(s.write({ entries: run(5, 5, 2) }))).code).toBe('RAFT_INVALID_ARGUMENT');
      await s.write({ entries: run(6, 6, 2) });
      expect(await s.entries(1, 20)).toEqual([...run(1, 5), ...run(6, 6, 2)]);
    });

    it("refuses entries after an emptying snapshot whose term is below the snapshot's", async () => {
      const s = await openStore();
      expect((await failure(s.write({ snapshot: snap(10, 3), entries: run(11, 11, 2) }))).code).toBe(
        'RAFT_INVALID_ARGUMENT',
      );
      expect(await s.loadSnapshot()).toBeUndefined();
      await s.write({ snapshot: snap(10, 3) });
      expect((await failure(s.write({ entries: run(11, 11, 2) }))).code).toBe('RAFT_INVALID_ARGUMENT');
      await s.write({ entries: run(11, 11, 3) });
      expect(await s.open()).toMatchObject({ firstIndex: 11, lastIndex: 11 });
    });

    it('refuses compact() with no snapshot, even compact(0), and a compact() that is not an integer', async () => {
      const s = await openStore();
      expect((await failure(s.compact(0))).code).toBe('RAFT_INVALID_ARGUMENT');
      expect((await failure(s.compact('1' as unknown as number))).code).toBe('RAFT_INVALID_ARGUMENT');
    });
  });

  describe('one synced batch', () => {
    it('writes a snapshot with hard state and entries in one synced batch, and a compaction in another', async () => {
      const s = await openStore();
      await s.write({ entries: run(1, 10) });
      const write = vi.spyOn(await chainedBatch(), 'write');
      await s.write({
        hardState: { term: 3, votedFor: 'n2' },
        snapshot: snap(12, 3),
        entries: run(13, 14, 3),
      });
      expect(write).toHaveBeenCalledTimes(1);
      await s.compact(12); // below firstIndex (13): nothing to write
      expect(write).toHaveBeenCalledTimes(1);
      await s.write({ snapshot: snap(14, 3) });
      await s.compact(13);
      expect(write).toHaveBeenCalledTimes(3);
      for (const call of write.mock.calls) expect(call[0]).toMatchObject({ sync: true });
      expect(s.stats).toMatchObject({ snapshotsWritten: 2, compactions: 1 });
      await s.close();
      expect(await s.open()).toEqual({
        hardState: { term: 3, votedFor: 'n2' },
        firstIndex: 14,
        lastIndex: 14,
        snapshot: snap(14, 3).meta,
      });
    });

    it('group-commits a snapshot, its compaction and the next entries issued together', async () => {
      const s = await openStore();
      await s.write({ entries: run(1, 10) });
      const write = vi.spyOn(await chainedBatch(), 'write');
      await Promise.all([s.write({ snapshot: snap(8, 1) }), s.compact(8), s.write({ entries: run(11, 12) })]);
      expect(write).toHaveBeenCalledTimes(1);
      await s.close();
      expect(await s.open()).toMatchObject({ firstIndex: 9, lastIndex: 12, snapshot: { index: 8, term: 1 } });
      expect(await s.entries(1, 20)).toEqual(run(9, 12));
    });

    it('deletes the compacted entries from LevelDB and records the new firstIndex', async () => {
      const s = await openStore();
      await s.write({ entries: run(1, 10) });
      await s.write({ snapshot: snap(8, 1) });
      await s.compact(6);
      await s.close();
      const keys = await rawKeys(s.location, ENTRY_KEYS_START, ENTRY_KEYS_END);
      expect(keys.map(indexOfKey)).toEqual([7, 8, 9, 10]);
      let firstIndex = 0;
      await withRaw(
        s.location,
        async (db) => void (firstIndex = decodeMeta((await db.get(META_KEY))!).firstIndex),
      );
      expect(firstIndex).toBe(7);
    });
  });

  describe('tail cache', () => {
    it('drops compacted entries and keeps serving the rest from memory', async () => {
      const s = await openStore({ tailCacheEntries: 32 });
      await s.write({ entries: run(1, 20) });
      await s.write({ snapshot: snap(15, 1) });
      expect(s.stats).toMatchObject({ cachedEntries: 20, cachedBytes: 160 });
      await s.compact(15);
      expect(s.stats).toMatchObject({ cachedEntries: 5, cachedBytes: 40 });
      expect(await s.entries(1, 21)).toEqual(run(16, 20));
      expect(await s.entries(16, 21)).toEqual(run(16, 20));
      expect(s.stats).toMatchObject({ cacheMisses: 0 });
      await s.write({ snapshot: snap(20, 1) });
      await s.compact(20);
      expect(s.stats).toMatchObject({ cachedEntries: 0, cachedBytes: 0 });
    });

    it('forgets every entry of a log a snapshot emptied', async () => {
      const s = await openStore({ tailCacheEntries: 32 });
      await s.write({ entries: run(1, 20) });
      await s.write({ snapshot: snap(10, 2) }); // entry 10 has term 1: the log goes
      expect(s.stats).toMatchObject({ cachedEntries: 0, cachedBytes: 0 });
      expect(await s.entries(1, 21)).toEqual([]);
      await s.write({ entries: run(11, 12, 2) });
      expect(await s.entries(1, 21)).toEqual(run(11, 12, 2));
      expect(s.stats.cacheMisses).toBe(0);
    });
  });

  it('reads a range while a compaction is in flight without mistaking the newer log for a loss', async () => {
    const s = await openStore({ tailCacheEntries: 2 });
    await s.write({ entries: run(1, 20) });
    await s.write({ snapshot: snap(10, 1) });
    const proto = await chainedBatch();
    const original = proto.write;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let landed = false;
    vi.spyOn(proto, 'write').mockImplementation(async function (this: ChainedBatchLike, options) {
      await original.call(this, options);
      landed = true;
      await gate; // in LevelDB, not yet acknowledged
    });
    const compaction = s.compact(10);
    await vi.waitFor(() => expect(landed).toBe(true));
    // The store still says firstIndex 1; LevelDB already starts at 11.
    expect(await s.entries(1, 21)).toEqual(run(11, 20));
    release();
    await compaction;
    expect(await s.entries(1, 21)).toEqual(run(11, 20));
  });

  it(
    `stores tens of megabytes of snapshot data in chunks, and drops the chunks of a replaced snapshot`,
    { timeout: 60_000 },
    async () => {
      const s = await openStore();
      await s.write({ entries: run(1, 3) });
      const size = 40 * 1024 * 1024 + 123;
      const data = new Uint8Array(size);
      for (let i = 0; i < size; i += 65_536) data.fill((i >>> 16) * 7 + 1, i, i + 65_536);
      await s.write({ snapshot: snap(2, 1, data) });
      await s.compact(2);
      await s.close();
      expect(await rawKeys(s.location, SNAPSHOT_KEY, SNAPSHOT_KEYS_END)).toHaveLength(
        1 + Math.ceil(size / SNAPSHOT_CHUNK_BYTES),
      );
      expect(await s.open()).toEqual({
        hardState: { term: 0, votedFor: null },
        firstIndex: 3,
        lastIndex: 3,
        snapshot: snap(2, 1).meta,
      });
      const loaded = await s.loadSnapshot();
      expect(loaded?.data.length).toBe(size);
      expect(
        Buffer.from(loaded!.data.buffer, loaded!.data.byteOffset, loaded!.data.byteLength).equals(data),
      ).toBe(true);
      await s.write({ snapshot: snap(3, 1, [1, 2, 3]) });
      await s.close();
      expect(await rawKeys(s.location, SNAPSHOT_KEY, SNAPSHOT_KEYS_END)).toHaveLength(2);
      await s.open();
      expect(await s.loadSnapshot()).toEqual(snap(3, 1, [1, 2, 3]));
    },
  );

  describe('disk space', () => {
    /** Bytes of every file in `dir` (LevelDB keeps no subdirectories). */
    async function du(dir: string): Promise<number> {
      let total = 0;
      for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size;
      return total;
    }

    it(
      'stays near the latest snapshot plus the retained log while snapshots of megabytes replace each other',
      { timeout: 30_000 },
      async () => {
        // Incompressible data (LevelDB compresses tables with Snappy), from a seeded generator.
        const random = seededRandom(7);
        const noise = new Uint8Array(4 * 1024 * 1024);
        for (let i = 0; i < noise.length; i++) noise[i] = Math.floor(random() * 256);
        const SNAPSHOT_BYTES = 3 * 1024 * 1024;
        const ROUNDS = 8;
        const ENTRIES_PER_ROUND = 2000;
        const TRAILING = 100;
        const s = await openStore();
        let last = 0;
        for (let round = 0; round < ROUNDS; round++) {
          // A growing log of 100-byte entries, then a snapshot of it and a compaction that
          // keeps TRAILING entries, as @raft/core's runtime does (Raft §7).
          for (let k = 0; k < ENTRIES_PER_ROUND; k += 100) {
            const entries = run(last + 1, last + 100, 1, 100).map((e) => ({
              ...e,
              data: noise.subarray((e.index * 101) % 1_000_000, ((e.index * 101) % 1_000_000) + 100),
            }));
            await s.write({ entries });
            last += 100;
          }
          // Each snapshot its own bytes: a window of the noise that moves every round.
          await s.write({
            snapshot: snap(last, 1, noise.subarray(round * 100_000, round * 100_000 + SNAPSHOT_BYTES)),
          });
          await s.compact(last - TRAILING);
        }
        await s.close();
        const onDisk = await du(s.location);
        // What the store must keep: the latest snapshot and the retained entries (their data).
        const live = SNAPSHOT_BYTES + TRAILING * 100;
        // Measured: 1.01x `live`. Before the store compacted the ranges it superseded, LevelDB
        // kept most of the eight snapshots (level-0 tables and the write-ahead log): 10.9x.
        expect(onDisk).toBeLessThan(1.5 * live + 1024 * 1024);
        const state = await s.open();
        expect(state).toMatchObject({
          firstIndex: last - TRAILING + 1,
          lastIndex: last,
          snapshot: { index: last, term: 1 },
        });
        const loaded = (await s.loadSnapshot())!.data;
        // Buffer.equals: vitest's deep equality walks megabytes byte by byte, slowly.
        expect(
          Buffer.from(loaded.buffer, loaded.byteOffset, loaded.byteLength).equals(
            noise.subarray((ROUNDS - 1) * 100_000, (ROUNDS - 1) * 100_000 + SNAPSHOT_BYTES),
          ),
        ).toBe(true);
        expect(await s.entries(1, last + 1)).toHaveLength(TRAILING);
      },
    );

    it('compacts in the background, one request at a time, merging those that arrive meanwhile; writes go on, and close() waits', async () => {
      const events: string[] = [];
      const ranges: Array<[Uint8Array, Uint8Array]> = [];
      type Db = ClassicLevel<Uint8Array, Uint8Array>;
      const original = ClassicLevel.prototype.compactRange as (
        this: Db,
        start: Uint8Array,
        end: Uint8Array,
      ) => Promise<void>;
      const originalClose = ClassicLevel.prototype.close;
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      vi.spyOn(ClassicLevel.prototype, 'compactRange').mockImplementation(async function (
        this: Db,
        start: Uint8Array,
        end: Uint8Array,
      ) {
        const n = ranges.push([start, end]);
        events.push(`compact ${n}`);
        if (n === 1) await gate;
        await original.call(this, start, end);
        events.push(`compacted ${n}`);
      } as typeof ClassicLevel.prototype.compactRange);
      const s = await openStore();
      vi.spyOn(ClassicLevel.prototype, 'close').mockImplementation(function (this: Db) {
        events.push('db closed');
        return originalClose.call(this);
      });
      await s.write({ entries: run(1, 30) });
      expect(ranges).toHaveLength(0); // appends leave nothing to reclaim
      await s.write({ snapshot: snap(10, 1) });
      await vi.waitFor(() => expect(ranges).toHaveLength(1));
      expect(ranges[0]).toEqual([SNAPSHOT_KEY, SNAPSHOT_KEYS_END]);
      // While that compaction is held up: writes, compactions and a snapshot all go through.
      await s.compact(10);
      await s.write({ entries: run(31, 40) });
      await s.write({ snapshot: snap(35, 1) });
      await s.compact(30);
      expect(ranges).toHaveLength(1);
      const closing = s.close();
      // Turns enough for a close() that did not wait to reach LevelDB's close.
      await new Promise((r) => setImmediate(r));
      events.push('released');
      release();
      await closing;
      // The three requests made meanwhile became one: the snapshot's chunks and the entries up to 30.
      expect(ranges[1]).toEqual([SNAPSHOT_KEY, entryKey(31)]);
      expect(events).toEqual([
        'compact 1',
        'released',
        'compacted 1',
        'compact 2',
        'compacted 2',
        'db closed',
      ]);
      vi.restoreAllMocks();
      expect(await s.open()).toMatchObject({
        firstIndex: 31,
        lastIndex: 40,
        snapshot: { index: 35, term: 1 },
      });
      expect(await s.entries(1, 41)).toEqual(run(31, 40));
    });
  });

  describe('corruption', () => {
    /** A closed store: entries 1..10 (term 1), a snapshot at 8 of 2.5 chunks, compacted up to 6. */
    async function compactedStore(options: Partial<LevelLogStoreOptions> = {}): Promise<LevelLogStore> {
      const s = await openStore(options);
      await s.write({ hardState: { term: 1, votedFor: 'n1' }, entries: run(1, 10) });
      await s.write({ snapshot: snap(8, 1, new Uint8Array(SNAPSHOT_CHUNK_BYTES * 2.5).fill(0x42)) });
      await s.compact(6);
      await s.close();
      return s;
    }

    it('refuses to open on damaged snapshot metadata', async () => {
      const s = await compactedStore();
      await withRaw(s.location, async (db) => {
        const v = Uint8Array.from((await db.get(SNAPSHOT_KEY))!);
        v[v.length - 2]! ^= 0x01; // inside the configuration
        await db.put(SNAPSHOT_KEY, v);
      });
      expect((await refusal(s)).index).toBeUndefined();
    });

    it('refuses to load a snapshot whose data is damaged, missing, stray or from another snapshot (and opens)', async () => {
      const damages: Array<[string, (db: ClassicLevel<Uint8Array, Uint8Array>) => Promise<void>]> = [
        [
          'a flipped data byte',
          async (db) => {
            const v = Uint8Array.from((await db.get(chunkKey(1)))!);
            v[1000]! ^= 0x10;
            await db.put(chunkKey(1), v);
          },
        ],
        ['a missing chunk', (db) => db.del(chunkKey(1))],
        ['a missing last chunk', (db) => db.del(chunkKey(2))],
        ['a stray chunk', async (db) => db.put(chunkKey(3), (await db.get(chunkKey(2)))!)],
        ['a chunk out of place', async (db) => db.put(chunkKey(1), (await db.get(chunkKey(0)))!)],
        [
          'a chunk of another snapshot',
          async (db) => {
            const other = encodeSnapshot(snap(7, 1, new Uint8Array(SNAPSHOT_CHUNK_BYTES * 2.5).fill(0x42)));
            await db.put(chunkKey(0), other.chunkValues[0]!);
          },
        ],
      ];
      for (const [what, damage] of damages) {
        const s = await compactedStore();
        await withRaw(s.location, damage);
        expect(await s.open(), what).toMatchObject({ firstIndex: 7, lastIndex: 10, snapshot: { index: 8 } });
        const err = await failure(s.loadSnapshot());
        expect(err.code, what).toBe('RAFT_STORAGE_CORRUPT');
        expect(err, what).toBeInstanceOf(StorageCorruptError);
      }
    });

    it('refuses a compacted log whose snapshot is gone', async () => {
      const s = await compactedStore();
      await withRaw(s.location, (db) => db.clear({ gte: SNAPSHOT_KEY, lt: SNAPSHOT_KEYS_END }));
      expect((await refusal(s)).index).toBe(6);
    });

    it('refuses a log that starts after its snapshot', async () => {
      const s = await compactedStore();
      await withRaw(s.location, async (db) => {
        await db.batch([
          { type: 'del', key: entryKey(7) },
          { type: 'del', key: entryKey(8) },
          { type: 'del', key: entryKey(9) },
          { type: 'put', key: META_KEY, value: encodeMeta(10) },
        ]);
      });
      expect((await refusal(s)).index).toBe(9);
    });

    it('refuses a log that ends before its snapshot', async () => {
      const s = await compactedStore();
      await withRaw(s.location, (db) => db.clear({ gte: entryKey(8), lt: ENTRY_KEYS_END }));
      expect((await refusal(s)).index).toBe(8);
    });

    it("refuses an entry at the snapshot's index with another term", async () => {
      const s = await compactedStore();
      await withRaw(s.location, (db) => db.put(entryKey(8), encodeEntry(entry(8, 2)).value));
      expect((await refusal(s)).index).toBe(8);
    });

    it("checks the tail after a snapshot: damage, and terms below the snapshot's", async () => {
      const s = await compactedStore();
      await withRaw(s.location, async (db) => {
        const v = Uint8Array.from((await db.get(entryKey(9)))!);
        v[v.length - 1]! ^= 0x01;
        await db.put(entryKey(9), v);
      });
      expect((await refusal(s)).index).toBe(9);

      const emptied = await openStore();
      await emptied.write({ snapshot: snap(10, 3), entries: run(11, 12, 3) });
      await emptied.close();
      await withRaw(emptied.location, (db) => db.put(entryKey(11), encodeEntry(entry(11, 2)).value));
      expect((await refusal(emptied)).index).toBe(11);
    });
  });
});
