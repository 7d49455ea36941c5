import { constants as fsConstants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { ClassicLevel } from 'classic-level';
import type { ChainedBatch } from 'classic-level';
import { InvalidArgumentError, RaftError } from '@raft/core';
import type {
  HardState,
  LogEntry,
  LogStore,
  LogStoreState,
  LogWrite,
  Snapshot,
  SnapshotMeta,
} from '@raft/core';
import { closedError, openError, StorageCorruptError } from './errors.js';
import {
  chunkKey,
  dataOf,
  decodeEntry,
  decodeHardState,
  decodeMeta,
  decodeSnapshot,
  decodeSnapshotMeta,
  decodeWatermark,
  encodeEntry,
  encodeHardState,
  encodeMeta,
  encodeSnapshot,
  encodeWatermark,
  ENTRY_KEYS_END,
  ENTRY_KEYS_START,
  entryKey,
  HARD_STATE_KEY,
  indexOfKey,
  META_KEY,
  SNAPSHOT_KEY,
  SNAPSHOT_KEYS_END,
  WATERMARK_KEY,
} from './format.js';
import type { EncodedSnapshot, StoredEntry, StoredSnapshotMeta, Watermark } from './format.js';
import { AckFile, readAcked } from './ack-file.js';
import { TailCache } from './tail-cache.js';
import {
  checkAfterSnapshot,
  checkCompact,
  checkEntries,
  checkFits,
  checkHardState,
  checkRange,
  checkSnapshot,
  checkSnapshotOrder,
  copySnapshotMeta,
} from '@raft/core/log-store-checks';

/** LevelDB settings passed through to `classic-level`. */
export interface LevelDbOptions {
  /**
   * Size in bytes of LevelDB's cache of uncompressed blocks.
   * @default 8388608 (8 MiB)
   */
  cacheSize?: number;
  /**
   * Bytes LevelDB buffers in memory (and in its write-ahead log) before writing a sorted table.
   * @default 4194304 (4 MiB)
   */
  writeBufferSize?: number;
  /**
   * Approximate size in bytes of LevelDB's table blocks.
   * @default 4096
   */
  blockSize?: number;
  /**
   * Most files LevelDB keeps open.
   * @default 1000
   */
  maxOpenFiles?: number;
  /**
   * Compress tables with Snappy.
   * @default true
   */
  compression?: boolean;
}

/** Options of {@link levelLogStore} and {@link LevelLogStore}. */
export interface LevelLogStoreOptions {
  /** The directory of the LevelDB database. Its parent directory must exist. */
  location: string;
  /**
   * Create the directory itself (not its parents) when it does not exist. Set it to
   * `false` when restarting a peer whose data must already be there: a peer that comes
   * back with an empty log has forgotten its vote.
   * @default true
   */
  createIfMissing?: boolean;
  /**
   * Most entries of the tail of the log kept in memory to serve reads.
   * @default 1024
   */
  tailCacheEntries?: number;
  /**
   * Most bytes of entry data the tail cache holds.
   * @default 4194304 (4 MiB)
   */
  tailCacheBytes?: number;
  /**
   * How many entries at the end of the log `open()` reads back and checks (checksum,
   * index, contiguity, terms in order) before accepting the store. `Infinity` checks the
   * whole log. Entries read later are checked as they are read.
   * @default 1024
   */
  verifyOnOpen?: number;
  /** LevelDB settings. */
  leveldb?: LevelDbOptions;
}

/** Counters of a {@link LevelLogStore}, since it was created. */
export interface LevelLogStoreStats {
  /** `write()` calls that resolved. */
  writes: number;
  /** Synced LevelDB batches: with group commit, at most one per write and often far fewer. */
  syncs: number;
  /** Entries stored. */
  entriesWritten: number;
  /** `entries()` calls answered from the tail cache. */
  cacheHits: number;
  /** `entries()` calls that read LevelDB. */
  cacheMisses: number;
  /** Writes with a snapshot that were accepted (a newer one in the same batch supersedes an older one before it reaches the disk). */
  snapshotsWritten: number;
  /** `compact()` calls that removed entries. */
  compactions: number;
  /** Entries the tail cache holds now. */
  cachedEntries: number;
  /** Bytes of entry data the tail cache holds now. */
  cachedBytes: number;
}

type Db = ClassicLevel<Uint8Array, Uint8Array>;
type Batch = ChainedBatch<Db, Uint8Array, Uint8Array>;

/**
 * What a committed batch left for LevelDB to drop: the superseded chunks of a replaced
 * snapshot, and the entries below `entriesBelow` (compacted, or removed by a snapshot
 * that emptied the log; 0 for none).
 */
interface ReclaimRange {
  snapshot: boolean;
  entriesBelow: number;
}

/** A write (or a compaction) waiting for its batch. */
interface Pending {
  hardState: HardState | undefined;
  hardValue: Uint8Array | undefined;
  snapshot: EncodedSnapshot | undefined;
  entries: StoredEntry[];
  /** For `compact(upTo)`: `upTo`. */
  compactTo: number | undefined;
  error?: Error;
  resolve(): void;
  reject(error: Error): void;
}

const DEFAULTS = {
  createIfMissing: true,
  tailCacheEntries: 1024,
  tailCacheBytes: 4 * 1024 * 1024,
  verifyOnOpen: 1024,
};

function checkCount(name: string, value: unknown, allowInfinity = false): void {
  if (value === undefined) return;
  const ok =
    typeof value === 'number' &&
    value >= 0 &&
    (Number.isSafeInteger(value) || (allowInfinity && value === Infinity));
  if (!ok)
    throw new InvalidArgumentError(
      `${name} must be a non-negative integer${allowInfinity ? ' or Infinity' : ''}, got ${typeof value === 'number' ? value : typeof value}`,
    );
}

function checkOptions(
  options: LevelLogStoreOptions,
): Required<Omit<LevelLogStoreOptions, 'leveldb'>> & { leveldb: LevelDbOptions } {
  if (typeof options !== 'object' || options === null)
    throw new InvalidArgumentError('options must be an object or a location string');
  if (typeof options.location !== 'string' || options.location.length === 0)
    throw new InvalidArgumentError('location must be a non-empty path to a directory');
  if (options.createIfMissing !== undefined && typeof options.createIfMissing !== 'boolean')
    throw new InvalidArgumentError('createIfMissing must be a boolean');
  checkCount('tailCacheEntries', options.tailCacheEntries);
  checkCount('tailCacheBytes', options.tailCacheBytes);
  checkCount('verifyOnOpen', options.verifyOnOpen, true);
  const leveldb = options.leveldb ?? {};
  if (typeof leveldb !== 'object' || leveldb === null)
    throw new InvalidArgumentError('leveldb must be an object');
  return { ...DEFAULTS, ...options, leveldb: { ...leveldb } };
}

/** Validates a write and encodes it at once: the encoding is the store's own copy. */
function prepare(batch: LogWrite): Omit<Pending, 'resolve' | 'reject'> {
  if (typeof batch !== 'object' || batch === null)
    throw new InvalidArgumentError('a write must be an object { hardState?, snapshot?, entries? }');
  const hardState = batch.hardState === undefined ? undefined : checkHardState(batch.hardState);
  const snapshot = batch.snapshot === undefined ? undefined : encodeSnapshot(checkSnapshot(batch.snapshot));
  const entries = batch.entries === undefined ? [] : checkEntries(batch.entries).map(encodeEntry);
  return {
    hardState,
    hardValue: hardState && encodeHardState(hardState),
    snapshot,
    entries,
    compactTo: undefined,
  };
}

function toLogEntry(e: StoredEntry, copy: boolean): LogEntry {
  // Cached values are the store's own and must not leak: copy. A value read from
  // LevelDB for this call alone is the caller's to keep: a view (a plain Uint8Array,
  // not a Buffer, so callers get back the type they wrote).
  const data = dataOf(e);
  return { index: e.index, term: e.term, type: e.type, data: copy ? data.slice() : data };
}

/** Rejects a location that cannot hold a store before LevelDB tries (and, for a missing parent, creates it). */
async function checkLocation(location: string, createIfMissing: boolean): Promise<void> {
  const unavailable = (why: string, cause: unknown) =>
    new RaftError('RAFT_STORAGE_UNAVAILABLE', `cannot open the log store at ${location}: ${why}`, { cause });
  const parent = dirname(resolve(location));
  try {
    if (!(await stat(parent)).isDirectory()) throw new Error(`${parent} is not a directory`);
  } catch (error) {
    throw unavailable('its parent directory is missing or unreadable', error);
  }
  let exists = true;
  try {
    if (!(await stat(location)).isDirectory()) throw unavailable('it is not a directory', undefined);
  } catch (error) {
    if (RaftError.isInstance(error)) throw error;
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw unavailable('it cannot be read', error);
    if (!createIfMissing) throw unavailable('the directory does not exist (createIfMissing is false)', error);
    exists = false;
  }
  try {
    await access(exists ? location : parent, fsConstants.R_OK | fsConstants.W_OK | fsConstants.X_OK);
  } catch (error) {
    throw unavailable(
      exists ? 'the directory is not readable and writable' : 'its parent directory is not writable',
      error,
    );
  }
}

/**
 * Whether LevelDB failed on damaged data: a corruption it detected, or a read past the end
 * of one of its files (its POSIX environment reports that as `EINVAL`, "Invalid argument":
 * a table shorter than LevelDB recorded, i.e. truncated). A real disk failure is `EIO`.
 */
function levelCorruption(error: unknown): boolean {
  for (let e = error; typeof e === 'object' && e !== null; e = (e as { cause?: unknown }).cause) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (code === 'LEVEL_CORRUPTION') return true;
    if (
      code === 'LEVEL_IO_ERROR' &&
      typeof message === 'string' &&
      /\.(ldb|sst|log): Invalid argument$/.test(message)
    )
      return true;
  }
  return false;
}

const showVote = (h: HardState) =>
  `term ${h.term}, vote ${h.votedFor === null ? 'none' : JSON.stringify(h.votedFor)}`;

/**
 * Checks what LevelDB returned at open against the watermark of the last batch it holds,
 * and that batch against the last one the store acknowledged: anything acknowledged and
 * not there is a loss, refused with `RAFT_STORAGE_CORRUPT` naming it.
 */
function checkWatermark(
  w: Watermark | undefined,
  acked: { batch: number; lastIndex: number } | undefined,
  found: { firstIndex: number; lastIndex: number; snapshotIndex: number; hardState: HardState },
): void {
  const held = w?.batch ?? 0;
  if (acked !== undefined && acked.batch > held) {
    throw new StorageCorruptError(
      `acknowledged writes are missing: the store acknowledged write ${acked.batch} (the log then ended at ${acked.lastIndex}), ` +
        `LevelDB holds only up to write ${held} (the log ends at ${found.lastIndex}); ` +
        `LevelDB dropped damaged records of its write-ahead log or tables`,
      acked.lastIndex > found.lastIndex ? { index: found.lastIndex + 1 } : {},
    );
  }
  if (w === undefined) return;
  if (found.lastIndex < w.lastIndex)
    throw new StorageCorruptError(
      `entries ${found.lastIndex + 1} to ${w.lastIndex} are missing: they were written, LevelDB no longer returns them`,
      { index: found.lastIndex + 1 },
    );
  if (found.lastIndex > w.lastIndex)
    throw new StorageCorruptError(
      `the log ends at ${found.lastIndex}, past ${w.lastIndex} where the last write left it`,
      { index: w.lastIndex + 1 },
    );
  if (found.firstIndex !== w.firstIndex)
    throw new StorageCorruptError(
      `the log starts at ${found.firstIndex}, the last write left it starting at ${w.firstIndex}`,
      { index: Math.min(found.firstIndex, w.firstIndex) },
    );
  if (found.snapshotIndex !== w.snapshotIndex)
    throw new StorageCorruptError(
      `the snapshot is at ${found.snapshotIndex || 'none'}, the last write left it at ${w.snapshotIndex || 'none'}`,
      {},
    );
  if (found.hardState.term !== w.hardState.term || found.hardState.votedFor !== w.hardState.votedFor)
    throw new StorageCorruptError(
      `the hard state (${showVote(found.hardState)}) is not the one last written (${showVote(w.hardState)}): a lost vote could let this peer vote twice`,
      {},
    );
}

/**
 * A durable {@link LogStore} on LevelDB (`classic-level`): what it acknowledged
 * survives `kill -9` and power loss.
 *
 * - Each write (hard state, snapshot, truncation of a conflicting suffix, new entries)
 *   goes down as one atomic LevelDB batch with `sync: true`; so does each compaction
 *   (the deleted entries and the new `firstIndex` together).
 * - Group commit: writes issued while a batch is being synced go down together in the
 *   next batch; each write resolves once its batch is durable. Syncs per second stay
 *   bounded while throughput grows with load.
 * - Reads of the recent tail come from memory.
 * - Every entry, and every chunk of snapshot data, carries a CRC-32; `open()` checks the
 *   tail of the log and the snapshot's metadata and refuses to start on corruption
 *   (`RAFT_STORAGE_CORRUPT`, with the index), reads check what they read.
 * - After a failed write the store refuses further calls with `RAFT_STORAGE_UNAVAILABLE`
 *   until it is closed and opened again: the outcome of a failed sync is unknown.
 * - Disk use stays near the latest snapshot plus the log: after a batch that replaced the
 *   snapshot or removed entries, the store has LevelDB compact those key ranges in the
 *   background (one at a time, never holding up writes), so the versions they superseded
 *   do not linger.
 */
export class LevelLogStore implements LogStore {
  readonly #options: ReturnType<typeof checkOptions>;
  #status: 'closed' | 'opening' | 'open' | 'closing' = 'closed';
  #db: Db | undefined;
  #opening: Promise<LogStoreState> | undefined;
  #closing: Promise<void> | undefined;
  /** Set when a batch failed; every call rejects with it until the store is reopened. */
  #failure: RaftError | undefined;
  #hardState: HardState = { term: 0, votedFor: null };
  #firstIndex = 1;
  #lastIndex = 0;
  /** The durable snapshot's metadata and layout, if any. */
  #snapshot: StoredSnapshotMeta | undefined;
  /** Batches written since the store was created (the watermark's number). */
  #batch = 0;
  #ack: AckFile | undefined;
  #tail: TailCache;
  #queue: Pending[] = [];
  #flushing: Promise<void> | undefined;
  /** True while a batch is in LevelDB's hands: its effects may be visible there before they are here. */
  #batchInFlight = false;
  /** Key ranges whose superseded versions wait for {@link LevelLogStore.#reclaim}; merged while one runs. */
  #reclaimPending: ReclaimRange | undefined;
  /** The running reclamation, if any: one at a time, awaited by close(). */
  #reclaiming: Promise<void> | undefined;
  readonly #stats: Omit<LevelLogStoreStats, 'cachedEntries' | 'cachedBytes'> = {
    writes: 0,
    syncs: 0,
    entriesWritten: 0,
    cacheHits: 0,
    cacheMisses: 0,
    snapshotsWritten: 0,
    compactions: 0,
  };

  /**
   * @param options the directory of the database (`new LevelLogStore('./data/n1')`), or the
   * options (`new LevelLogStore({ location: './data/n1', ... })`); see {@link LevelLogStoreOptions}.
   * Bad options throw `RAFT_INVALID_ARGUMENT` at once.
   */
  constructor(options: string | LevelLogStoreOptions) {
    this.#options = checkOptions(typeof options === 'string' ? { location: options } : options);
    this.#tail = new TailCache(this.#options.tailCacheEntries, this.#options.tailCacheBytes);
  }

  /** The directory of the database. */
  get location(): string {
    return this.#options.location;
  }

  /** Counters since this object was created, and what the tail cache holds now (a copy). */
  get stats(): LevelLogStoreStats {
    return { ...this.#stats, cachedEntries: this.#tail.size, cachedBytes: this.#tail.bytes };
  }

  /**
   * Opens (creating it if allowed) the database, checks the tail of the log and the
   * snapshot's metadata, and returns what the store holds. On an open store, returns its
   * current state.
   *
   * Rejects with `RAFT_STORAGE_LOCKED` when another process (or another store object)
   * has the directory open, `RAFT_STORAGE_UNAVAILABLE` when the directory or its parent
   * is missing or unreadable, `RAFT_STORAGE_CORRUPT` when the data fails its checks.
   */
  open(): Promise<LogStoreState> {
    switch (this.#status) {
      case 'open':
        return Promise.resolve(this.#state());
      case 'opening':
        return this.#opening!;
      case 'closing':
        return this.#closing!.then(() => this.open());
      case 'closed':
        break;
    }
    this.#status = 'opening';
    this.#opening = this.#open().then(
      (state) => {
        this.#status = 'open';
        return state;
      },
      (error: unknown) => {
        this.#status = 'closed';
        throw error;
      },
    );
    return this.#opening;
  }

  /**
   * Writes a batch atomically and resolves once it is on disk: the hard state; then the
   * snapshot, which replaces the stored one and, unless the log holds its last entry
   * (same index and term), empties the log, which goes on after it; then the entries.
   * Writes apply in call order; one issued while others are pending is validated against
   * the log they leave.
   */
  write(batch: LogWrite): Promise<void> {
    return this.#enqueue(() => prepare(batch));
  }

  /**
   * The entries with `from <= index < to`, in order; compacted indexes are skipped. The
   * tail comes from memory (as copies); older entries from LevelDB, checked against their
   * checksums.
   */
  entries(from: number, to: number): Promise<LogEntry[]> {
    return new Promise<LogEntry[]>((resolve) => {
      this.#checkUsable();
      checkRange(from, to);
      const lo = Math.max(from, this.#firstIndex);
      const hi = Math.min(to, this.#lastIndex + 1);
      if (lo >= hi) {
        resolve([]);
        return;
      }
      const cached = this.#tail.range(lo, hi);
      if (cached !== undefined) {
        this.#stats.cacheHits++;
        resolve(cached.map((e) => toLogEntry(e, true)));
        return;
      }
      this.#stats.cacheMisses++;
      resolve(this.#read(lo, hi));
    });
  }

  /**
   * The latest snapshot, read from LevelDB and checked chunk by chunk, or undefined.
   * Rejects with `RAFT_STORAGE_CORRUPT` when its data fails its checks.
   */
  loadSnapshot(): Promise<Snapshot | undefined> {
    return new Promise<Snapshot | undefined>((resolve) => {
      this.#checkUsable();
      resolve(this.#loadSnapshot());
    });
  }

  /**
   * Removes every entry with index `<= upTo` and moves `firstIndex` to `upTo + 1`, in one
   * synced batch (no-op when `upTo < firstIndex`). Applies in call order with writes.
   * Rejects with `RAFT_INVALID_ARGUMENT` when `upTo` is beyond the stored snapshot's index,
   * or no snapshot is stored.
   */
  compact(upTo: number): Promise<void> {
    return this.#enqueue(() => {
      if (typeof upTo !== 'number' || !Number.isSafeInteger(upTo))
        throw new InvalidArgumentError(`compact(upTo): upTo must be a safe integer, got ${String(upTo)}`);
      return {
        hardState: undefined,
        hardValue: undefined,
        snapshot: undefined,
        entries: [],
        compactTo: upTo,
      };
    });
  }

  /**
   * Waits for pending writes and for the compaction of what they superseded (see the
   * class), then closes the database. Idempotent.
   */
  close(): Promise<void> {
    switch (this.#status) {
      case 'closed':
        return Promise.resolve();
      case 'closing':
        return this.#closing!;
      case 'opening':
        return this.#opening!.then(
          () => this.close(),
          () => undefined,
        );
      case 'open':
        break;
    }
    this.#status = 'closing';
    this.#closing = this.#close();
    return this.#closing;
  }

  #enqueue(make: () => Omit<Pending, 'resolve' | 'reject'>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#checkUsable();
      const pending: Pending = { ...make(), resolve, reject };
      this.#queue.push(pending);
      // Start the flush on a microtask: writes issued in the same synchronous run
      // join the first batch instead of waiting for a second one.
      this.#flushing ??= Promise.resolve().then(() => this.#flush());
    });
  }

  async #close(): Promise<void> {
    const db = this.#db!;
    try {
      // Writes issued before close() still get their outcome.
      await this.#flushing;
      // Then the space reclamation those writes asked for (at most the one running and one
      // more that merges every request since): a store closed right after a snapshot is
      // left as small on disk as a store that ran on.
      await this.#reclaiming;
      await db.close();
    } catch (error) {
      throw new RaftError('RAFT_STORAGE_UNAVAILABLE', `closing the log store at ${this.location} failed`, {
        cause: error,
      });
    } finally {
      try {
        this.#ack?.close();
      } catch {
        // Nothing was pending in it.
      }
      this.#ack = undefined;
      this.#db = undefined;
      this.#tail.clear();
      this.#failure = undefined;
      this.#status = 'closed';
    }
  }

  #checkUsable(): void {
    if (this.#status !== 'open') throw closedError();
    if (this.#failure !== undefined) throw this.#failure;
  }

  #state(): LogStoreState {
    const state: LogStoreState = {
      hardState: { ...this.#hardState },
      firstIndex: this.#firstIndex,
      lastIndex: this.#lastIndex,
    };
    if (this.#snapshot !== undefined) state.snapshot = copySnapshotMeta(this.#snapshot.meta);
    return state;
  }

  async #open(): Promise<LogStoreState> {
    const { location, createIfMissing, leveldb } = this.#options;
    await checkLocation(location, createIfMissing);
    const db: Db = new ClassicLevel<Uint8Array, Uint8Array>(location, {
      ...leveldb,
      createIfMissing,
      keyEncoding: 'view',
      valueEncoding: 'view',
    });
    try {
      await db.open();
    } catch (error) {
      throw openError(location, error);
    }
    try {
      await this.#load(db);
      this.#ack = new AckFile(location);
    } catch (error) {
      await db.close().catch(() => undefined);
      if (RaftError.isInstance(error)) throw error;
      if (levelCorruption(error))
        throw new StorageCorruptError(`LevelDB found the log store at ${location} corrupt while reading it`, {
          cause: error,
        });
      throw new RaftError('RAFT_STORAGE_UNAVAILABLE', `cannot read the log store at ${location}`, {
        cause: error,
      });
    }
    this.#db = db;
    this.#failure = undefined;
    return this.#state();
  }

  /** Reads the metadata, hard state, snapshot metadata and tail, checking them, into memory. */
  async #load(db: Db): Promise<void> {
    const [metaRaw, hardRaw, snapshotRaw, watermarkRaw] = await db.getMany([
      META_KEY,
      HARD_STATE_KEY,
      SNAPSHOT_KEY,
      WATERMARK_KEY,
    ]);
    const acked = readAcked(this.#options.location);
    const [lastKey] = await db
      .keys({ gte: ENTRY_KEYS_START, lt: ENTRY_KEYS_END, reverse: true, limit: 1 })
      .all();
    const [firstKey] = await db.keys({ gte: ENTRY_KEYS_START, lt: ENTRY_KEYS_END, limit: 1 }).all();
    this.#tail.clear();

    if (metaRaw === undefined) {
      if (
        hardRaw !== undefined ||
        firstKey !== undefined ||
        snapshotRaw !== undefined ||
        watermarkRaw !== undefined
      ) {
        const index = firstKey === undefined ? undefined : indexOfKey(firstKey);
        throw new StorageCorruptError(
          'the store holds data but no metadata',
          index === undefined ? {} : { index },
        );
      }
      if (acked !== undefined && acked.batch > 0)
        throw new StorageCorruptError(
          `the store is empty, but it acknowledged ${acked.batch} writes (the log up to ${acked.lastIndex}): LevelDB lost them all`,
          {},
        );
      // A new store: the metadata marks the directory as ours from the start.
      const hardState = { term: 0, votedFor: null };
      await db.batch(
        [
          { type: 'put', key: META_KEY, value: encodeMeta(1) },
          {
            type: 'put',
            key: WATERMARK_KEY,
            value: encodeWatermark({ batch: 0, firstIndex: 1, lastIndex: 0, snapshotIndex: 0, hardState }),
          },
        ],
        { sync: true },
      );
      this.#batch = 0;
      this.#hardState = { term: 0, votedFor: null };
      this.#firstIndex = 1;
      this.#lastIndex = 0;
      this.#snapshot = undefined;
      return;
    }

    const meta = decodeMeta(metaRaw);
    const hardState = hardRaw === undefined ? { term: 0, votedFor: null } : decodeHardState(hardRaw);
    const snapshot = snapshotRaw === undefined ? undefined : decodeSnapshotMeta(snapshotRaw);
    const firstIndex = meta.firstIndex;
    // Keys sort by index: the first and last keys are the ends of the log.
    const lastIndex = lastKey === undefined ? firstIndex - 1 : indexOfKey(lastKey);
    if (firstKey !== undefined && indexOfKey(firstKey) !== firstIndex) {
      const first = indexOfKey(firstKey);
      throw new StorageCorruptError(`the log starts at ${first}, its metadata says ${firstIndex}`, {
        index: Math.min(first, firstIndex),
      });
    }
    // Entries go only behind a snapshot (compaction, or a snapshot that empties the log),
    // and never from under it: firstIndex - 1 <= snapshot index <= lastIndex.
    const snapshotIndex = snapshot?.meta.index ?? 0;
    if (firstIndex - 1 > snapshotIndex) {
      throw new StorageCorruptError(
        snapshot === undefined
          ? `the log starts at ${firstIndex}, but no snapshot covers the entries before it`
          : `the log starts at ${firstIndex}, after its snapshot at ${snapshotIndex}`,
        { index: firstIndex - 1 },
      );
    }
    if (lastIndex < snapshotIndex)
      throw new StorageCorruptError(`the log ends at ${lastIndex}, before its snapshot at ${snapshotIndex}`, {
        index: lastIndex + 1,
      });
    // A store written before the watermark existed has none: its first batch writes one.
    const watermark = watermarkRaw === undefined ? undefined : decodeWatermark(watermarkRaw);
    checkWatermark(watermark, acked, { firstIndex, lastIndex, snapshotIndex, hardState });

    // Check the tail: every entry there, each intact, under its own index, terms in order
    // (from the snapshot's term when the tail starts right after it).
    const from = Math.max(firstIndex, lastIndex - this.#options.verifyOnOpen + 1);
    const tail: StoredEntry[] = [];
    if (from <= lastIndex) {
      const keep = Math.min(this.#options.tailCacheEntries, lastIndex - from + 1);
      let expected = from;
      let prevTerm = snapshot !== undefined && from === snapshotIndex + 1 ? snapshot.meta.term : 0;
      for await (const raw of db.values({ gte: entryKey(from), lte: entryKey(lastIndex) })) {
        const e = decodeEntry(raw, expected);
        if (e.term < prevTerm)
          throw new StorageCorruptError(
            `entry ${e.index} has term ${e.term}, below the term ${prevTerm} before it`,
            { index: e.index },
          );
        if (e.index === snapshotIndex && e.term !== snapshot!.meta.term) {
          throw new StorageCorruptError(
            `entry ${e.index} has term ${e.term}, its snapshot says ${snapshot!.meta.term}`,
            { index: e.index },
          );
        }
        prevTerm = e.term;
        if (lastIndex - expected < keep) tail.push(e);
        expected++;
      }
      if (expected !== lastIndex + 1)
        throw new StorageCorruptError(`entry ${expected} is missing`, { index: expected });
    }
    this.#hardState = hardState;
    this.#firstIndex = firstIndex;
    this.#lastIndex = lastIndex;
    this.#snapshot = snapshot;
    this.#batch = watermark?.batch ?? 0;
    this.#tail.replaceFrom(tail);
  }

  /** Reads `lo <= index < hi` from LevelDB, from one snapshot. */
  async #read(lo: number, hi: number): Promise<LogEntry[]> {
    const db = this.#db!;
    // The iterator reads from a snapshot taken now. If a batch is in flight, LevelDB may
    // already hold a newer log than this object knows (shorter after a truncation, starting
    // later after a compaction, empty after a snapshot); otherwise the snapshot holds
    // exactly [firstIndex, lastIndex] and a short read is a loss.
    const exact = !this.#batchInFlight;
    let rows: Array<[Uint8Array, Uint8Array]>;
    try {
      rows = await db.iterator({ gte: entryKey(lo), lt: entryKey(hi) }).all();
    } catch (error) {
      if (this.#status !== 'open') throw closedError();
      if (levelCorruption(error))
        throw new StorageCorruptError(`LevelDB found entries ${lo} to ${hi - 1} corrupt`, {
          index: lo,
          cause: error,
        });
      throw new RaftError('RAFT_STORAGE_UNAVAILABLE', `reading the log store at ${this.location} failed`, {
        cause: error,
      });
    }
    const start = exact || rows[0] === undefined ? lo : indexOfKey(rows[0][0]);
    const out = rows.map(([key, raw], k) => {
      const index = start + k;
      // A key out of place is an entry missing before it (the value under a key is checked by decodeEntry).
      if (indexOfKey(key) !== index) throw new StorageCorruptError(`entry ${index} is missing`, { index });
      return toLogEntry(decodeEntry(raw, index), false);
    });
    if (exact && out.length !== hi - lo)
      throw new StorageCorruptError(`entry ${lo + out.length} is missing`, { index: lo + out.length });
    return out;
  }

  async #loadSnapshot(): Promise<Snapshot | undefined> {
    const db = this.#db!;
    // One iterator: the metadata and every chunk from the same LevelDB snapshot, so a
    // batch replacing the snapshot meanwhile cannot mix two of them.
    let rows: Array<[Uint8Array, Uint8Array]>;
    try {
      rows = await db.iterator({ gte: SNAPSHOT_KEY, lt: SNAPSHOT_KEYS_END }).all();
    } catch (error) {
      if (this.#status !== 'open') throw closedError();
      if (levelCorruption(error))
        throw new StorageCorruptError('LevelDB found the snapshot corrupt', { cause: error });
      throw new RaftError(
        'RAFT_STORAGE_UNAVAILABLE',
        `reading the snapshot of the log store at ${this.location} failed`,
        { cause: error },
      );
    }
    const snapshot = decodeSnapshot(rows);
    if (snapshot === undefined && this.#snapshot !== undefined) {
      throw new StorageCorruptError(`the snapshot at index ${this.#snapshot.meta.index} is missing`, {});
    }
    return snapshot;
  }

  /** The term of entry `index` as LevelDB holds it. */
  async #storedTerm(index: number): Promise<number> {
    const raw = await this.#db!.get(entryKey(index));
    if (raw === undefined) throw new StorageCorruptError(`entry ${index} is missing`, { index });
    return decodeEntry(raw, index).term;
  }

  /**
   * Asks LevelDB to drop, soon, what a committed batch superseded. Merges with a request
   * not started yet; starts the reclamation unless one runs (it picks the request up).
   */
  #scheduleReclaim(range: ReclaimRange): void {
    const pending = this.#reclaimPending;
    this.#reclaimPending =
      pending === undefined
        ? range
        : {
            snapshot: pending.snapshot || range.snapshot,
            entriesBelow: Math.max(pending.entriesBelow, range.entriesBelow),
          };
    this.#reclaiming ??= this.#reclaim();
  }

  /**
   * Compacts the key ranges a snapshot or a log compaction superseded, one request at a
   * time, until none is left. close() waits for it.
   *
   * A snapshot rewrites every chunk key (`c` + chunk number) and a compaction turns the
   * log's prefix into tombstones; both are atomic with their batch (Raft §7), but LevelDB
   * keeps every older version until its own compactions merge that key's tables. A
   * snapshot larger than the write buffer becomes a level-0 table of its own, and level 0
   * is merged only at four tables: several whole superseded snapshots sit on disk at once
   * (measured: 65 MiB for a 21 MiB snapshot). `compactRange` flushes the memtable and
   * merges every level of the range into the lowest one holding it, which keeps one
   * version of each live key and drops the tombstones with what they shadow. It changes
   * no key's value, so every crash guarantee stays with the batches; it runs on LevelDB's
   * thread while batches go on. A range already merged costs only the memtable flush.
   *
   * Why not a chunk prefix per snapshot, deleting the old prefix in the same batch: the
   * deleted chunks would linger just the same until compacted, so the compaction is
   * needed anyway, and the on-disk format would change for nothing.
   */
  async #reclaim(): Promise<void> {
    const db = this.#db!;
    // Yielding first means the loop ends (and clears #reclaiming) only after an await,
    // never inside the `??=` that starts it. The check for more work and the clearing
    // happen in one turn, so no request is left behind with nothing running.
    await Promise.resolve();
    for (;;) {
      const range = this.#reclaimPending;
      this.#reclaimPending = undefined;
      if (range === undefined || (this.#status !== 'open' && this.#status !== 'closing')) {
        this.#reclaiming = undefined;
        return;
      }
      // One call covers both ranges (no other key lies between the chunks and the
      // entries): one memtable flush.
      const start = range.snapshot ? SNAPSHOT_KEY : ENTRY_KEYS_START;
      const end = range.entriesBelow > 0 ? entryKey(range.entriesBelow) : SNAPSHOT_KEYS_END;
      try {
        await db.compactRange(start, end);
      } catch {
        // Reclaiming space is housekeeping: the data is intact either way. A failure of
        // LevelDB's compaction also fails the next write, which reports it.
      }
    }
  }

  /** Writes everything queued, batch after batch, until the queue is empty. */
  async #flush(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const group = this.#queue;
        this.#queue = [];
        try {
          await this.#commit(group);
        } catch (error) {
          // Not expected (#commit settles every write itself); fail safe rather than hang.
          this.#failure = new RaftError(
            'RAFT_STORAGE_UNAVAILABLE',
            `the log store at ${this.location} failed; close and reopen it`,
            { cause: error },
          );
          for (const p of [...group, ...this.#queue]) p.reject(this.#failure);
          this.#queue = [];
        }
      }
    } finally {
      this.#flushing = undefined;
    }
  }

  /**
   * Validates a group of writes and compactions in order, each against the log the ones
   * before it leave, and writes the accepted ones as one synced batch. Never throws:
   * each gets its own outcome, in call order.
   */
  async #commit(group: Pending[]): Promise<void> {
    const db = this.#db!;
    // The chained-batch API builds the same single atomic WriteBatch as
    // db.batch(array), at a fraction of the CPU per operation (the array form clones
    // and re-validates every operation object).
    let batch: Batch | undefined;
    // The log as the group leaves it so far: [first, last], behind `snapshot`.
    let first = this.#firstIndex;
    let last = this.#lastIndex;
    let snapshot: SnapshotMeta | undefined = this.#snapshot?.meta;
    // Entries this group writes: staged[k] is entry stagedStart + k, up to `last`.
    let staged: StoredEntry[] = [];
    let stagedStart = last + 1;
    /** The newest snapshot of the group: the only one that reaches LevelDB. */
    let newSnapshot: EncodedSnapshot | undefined;
    /** A snapshot of the group emptied the log: the tail cache starts over. */
    let emptied = false;
    let hardValue: Uint8Array | undefined;
    let hardState: HardState | undefined;
    /** Entries below this index were deleted by a compaction or an emptying snapshot. */
    let deletedBelow = 0;
    let accepted = 0;
    let entriesWritten = 0;
    let snapshotsWritten = 0;
    let compactions = 0;

    /** The term of entry `index` in the log as the group leaves it so far, or undefined when the log does not know it. */
    const termAt = async (index: number): Promise<number | undefined> => {
      if (index >= first && index <= last) {
        // Usually staged or cached; an await here would delay every batch by a turn.
        if (index >= stagedStart) return staged[index - stagedStart]!.term;
        return this.#tail.get(index)?.term ?? (await this.#storedTerm(index));
      }
      return index === snapshot?.index ? snapshot.term : undefined;
    };

    try {
      for (const p of group) {
        const firstEntry = p.entries[0];
        let empties = false;
        try {
          // Check everything this write does against the log as the ones before it left it
          // (the entries against the log its snapshot leaves), before staging any of it.
          let after = snapshot;
          if (p.snapshot !== undefined) {
            const { meta } = p.snapshot;
            checkSnapshotOrder(meta, snapshot?.index);
            // Raft §7: a snapshot whose last entry the log holds leaves the log as it is
            // (the entries it covers go with compact()); any other replaces the whole log.
            empties = (await termAt(meta.index)) !== meta.term;
            after = meta;
          }
          if (firstEntry !== undefined) {
            const prev = firstEntry.index - 1;
            if (empties) {
              checkFits(
                firstEntry,
                after!.index + 1,
                after!.index,
                prev === after!.index ? after!.term : undefined,
              );
            } else {
              checkFits(firstEntry, first, last, await termAt(prev));
            }
            checkAfterSnapshot(firstEntry, after?.index);
          }
          if (p.compactTo !== undefined) checkCompact(p.compactTo, snapshot?.index);
        } catch (error) {
          p.error = RaftError.isInstance(error)
            ? error
            : new RaftError('RAFT_STORAGE_UNAVAILABLE', `reading the log store at ${this.location} failed`, {
                cause: error,
              });
          continue;
        }

        if (p.snapshot !== undefined) {
          const { meta } = p.snapshot;
          if (empties) {
            // Every entry goes, staged ones included (a later operation on a key wins).
            batch ??= db.batch();
            for (let i = first; i <= last; i++) batch.del(entryKey(i));
            if (last >= first) deletedBelow = Math.max(deletedBelow, last + 1);
            first = meta.index + 1;
            last = meta.index;
            staged = [];
            stagedStart = first;
            emptied = true;
          }
          snapshot = meta;
          newSnapshot = p.snapshot;
          snapshotsWritten++;
        }
        if (firstEntry !== undefined) {
          batch ??= db.batch();
          const end = firstEntry.index + p.entries.length - 1;
          // Raft §5.3: the conflicting suffix goes in the same batch as the new entries.
          for (let i = end + 1; i <= last; i++) batch.del(entryKey(i));
          for (const e of p.entries) batch.put(entryKey(e.index), e.value);
          if (firstEntry.index < stagedStart) {
            staged = p.entries.slice();
            stagedStart = firstEntry.index;
          } else {
            staged.length = firstEntry.index - stagedStart;
            for (const e of p.entries) staged.push(e);
          }
          last = end;
          entriesWritten += p.entries.length;
        }
        if (p.compactTo !== undefined && p.compactTo >= first) {
          // Log compaction (§7): the entries and the new firstIndex in one batch.
          batch ??= db.batch();
          for (let i = first; i <= p.compactTo; i++) batch.del(entryKey(i));
          deletedBelow = Math.max(deletedBelow, p.compactTo + 1);
          first = p.compactTo + 1;
          if (first > stagedStart) {
            staged = staged.slice(Math.min(staged.length, first - stagedStart));
            stagedStart = first;
          }
          compactions++;
        }
        if (p.hardState !== undefined) {
          hardState = p.hardState;
          hardValue = p.hardValue;
        }
        accepted++;
      }
      if (hardValue !== undefined) (batch ??= db.batch()).put(HARD_STATE_KEY, hardValue);
      if (first !== this.#firstIndex) (batch ??= db.batch()).put(META_KEY, encodeMeta(first));
      if (newSnapshot !== undefined) {
        batch ??= db.batch();
        batch.put(SNAPSHOT_KEY, newSnapshot.metaValue);
        for (const [k, value] of newSnapshot.chunkValues.entries()) batch.put(chunkKey(k), value);
        // Chunks of the replaced snapshot beyond the new one's go too.
        for (let k = newSnapshot.chunks; k < (this.#snapshot?.chunks ?? 0); k++) batch.del(chunkKey(k));
      }

      if (batch !== undefined) {
        // What the store holds once this batch is in, checked at open (see format.ts).
        batch.put(
          WATERMARK_KEY,
          encodeWatermark({
            batch: this.#batch + 1,
            firstIndex: first,
            lastIndex: last,
            snapshotIndex: snapshot?.index ?? 0,
            hardState: hardState ?? this.#hardState,
          }),
        );
        this.#batchInFlight = true;
        await batch.write({ sync: true });
        this.#stats.syncs++;
        this.#batch++;
        // Before any of its writes resolve: the batch is acknowledged from here on.
        this.#ack!.write({ batch: this.#batch, lastIndex: last });
        if (hardState !== undefined) this.#hardState = hardState;
        if (newSnapshot !== undefined)
          this.#snapshot = {
            meta: newSnapshot.meta,
            dataLength: newSnapshot.dataLength,
            chunks: newSnapshot.chunks,
          };
        this.#firstIndex = first;
        this.#lastIndex = last;
        if (emptied) this.#tail.clear();
        this.#tail.replaceFrom(staged);
        this.#tail.dropBefore(first);
      }
      this.#stats.writes += accepted;
      this.#stats.entriesWritten += entriesWritten;
      this.#stats.snapshotsWritten += snapshotsWritten;
      this.#stats.compactions += compactions;
      if (batch !== undefined && (newSnapshot !== undefined || deletedBelow > 0))
        this.#scheduleReclaim({ snapshot: newSnapshot !== undefined, entriesBelow: deletedBelow });
    } catch (error) {
      // The outcome of a failed sync is unknown (the data may or may not be on disk):
      // nothing more is accepted until the store is reopened and reads the truth.
      await batch?.close().catch(() => undefined);
      this.#failure = new RaftError(
        'RAFT_STORAGE_UNAVAILABLE',
        `a write to the log store at ${this.location} failed; close and reopen the store`,
        { cause: error },
      );
      for (const p of group) p.error ??= this.#failure;
      for (const p of this.#queue) p.error = this.#failure;
      group.push(...this.#queue);
      this.#queue = [];
    } finally {
      this.#batchInFlight = false;
    }
    for (const p of group) {
      if (p.error === undefined) p.resolve();
      else p.reject(p.error);
    }
  }
}

/**
 * Creates a durable {@link LogStore} on LevelDB in `options.location` (or in the directory
 * given as a string). Open it with `open()` (the runtime does) and close it with `close()`.
 *
 * @example
 * ```ts
 * const log = levelLogStore({ location: './data/n1' });
 * const peer = await startPeer(machine, { name: 'n1', log, transport });
 * ```
 */
export function levelLogStore(options: string | LevelLogStoreOptions): LevelLogStore {
  return new LevelLogStore(options);
}
