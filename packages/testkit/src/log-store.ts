/**
 * The `LogStore` conformance suite: every behaviour `@raft/core`'s runtime relies on,
 * as vitest tests any implementation can run in five lines.
 *
 * The contract it checks:
 *
 * - `open()` resolves to `{ hardState, firstIndex, lastIndex }`: `{ term: 0, votedFor: null }`,
 *   1 and 0 for a new store. Any other method before `open()` or after `close()` rejects
 *   with `RAFT_STORAGE_CLOSED`. `close()` is idempotent, also before `open()`. A closed store
 *   opens again with the same contents, whether through the same object or a new one over
 *   the same location.
 * - `write({ hardState?, entries? })` is atomic and durable once it resolves. Entries are
 *   consecutive (indexes step by 1), terms never decrease (also against the stored entry
 *   before the first one), and the first index lies in `[firstIndex, lastIndex + 1]`.
 *   Writing entries from index `i` first removes every stored entry at `i` or above (a
 *   conflicting suffix, Raft §5.3). A malformed batch (a gap, non-consecutive entries, an
 *   index or term that is not a safe integer in range, a bad type, data that is not a
 *   `Uint8Array`, a malformed hard state) rejects with `RAFT_INVALID_ARGUMENT` and changes
 *   nothing, not even the hard state it carries. An empty batch is a no-op.
 * - Writes issued without awaiting the previous one apply in call order, each validated
 *   against the log the earlier ones left.
 * - `entries(from, to)` resolves to the stored entries with `from <= index < to`, in order,
 *   clamped to the log (`from >= to` gives `[]`). What it returns shares no memory with the
 *   store, and the store keeps no reference to what a write passed in.
 * - Entry data round-trips byte for byte, empty data and views into larger buffers included.
 *
 * Snapshots and log compaction (Raft §7), checked only when the store has `loadSnapshot`
 * and `compact` (optional in `LogStore`, as a pair: a store without them runs its peer with
 * snapshots off, and these tests are skipped with a note saying so):
 *
 * - `open()` also reports `snapshot`, the metadata of the latest snapshot, when there is one;
 *   `loadSnapshot()` returns it with its data, or `undefined`. Both survive a reopen, the
 *   metadata exactly as written (configuration `learners` and `outgoing` present or absent as
 *   given) and the data byte for byte.
 * - A `snapshot` in a write is applied before its entries and replaces the stored one. If
 *   the log holds an entry at the snapshot's index with the snapshot's term, every entry
 *   stays; otherwise every entry goes and the log continues after the snapshot:
 *   `firstIndex = index + 1`, `lastIndex = index`. A write is atomic with its snapshot too.
 * - `compact(upTo)` removes every entry with index `<= upTo` and moves `firstIndex` to
 *   `upTo + 1` (nothing happens when `upTo < firstIndex`); reads skip compacted indexes;
 *   `upTo` beyond the snapshot's index, or any `upTo` with no snapshot stored, rejects with
 *   `RAFT_INVALID_ARGUMENT` and changes nothing. A `compact()` issued without awaiting the
 *   write of its snapshot applies after it.
 * - A crash between a snapshot write and the compaction (the runtime's two steps) leaves
 *   both the snapshot and the entries it covers, which is consistent: a reopened store
 *   reports `firstIndex <= snapshot.index + 1 <= lastIndex + 1`.
 *
 * @module
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TestContext } from 'vitest';
import { RaftError } from '@raft/core';
import type {
  Configuration,
  EntryType,
  HardState,
  LogEntry,
  LogStore,
  LogStoreState,
  LogWrite,
  Snapshot,
} from '@raft/core';

/**
 * How the suite makes stores. A location is whatever identifies a store's data: a
 * directory, a key prefix, an in-memory object.
 */
export interface LogStoreHarness<Location = unknown> {
  /** Creates a fresh, empty location for one test. */
  setup(): Location | Promise<Location>;
  /**
   * Returns a new, unopened store over `location`. The suite calls it again after closing
   * a store to check that a store over the same location sees the same data.
   */
  create(location: Location): LogStore | Promise<LogStore>;
  /** Releases a location after its test; every store over it is closed by then. */
  teardown?(location: Location): void | Promise<void>;
}

/** Options of {@link logStoreSuite}. */
export interface LogStoreSuiteOptions {
  /**
   * Entries in the large-batch test.
   * @default 10000
   */
  largeBatch?: number;
  /**
   * Timeout of each test, in milliseconds.
   * @default 30000
   */
  timeout?: number;
  /**
   * Bytes of snapshot data in the large-snapshot test (run only for stores with snapshots).
   * @default 16777216 (16 MiB)
   */
  largeSnapshot?: number;
}

/** A store with the optional snapshot methods of `LogStore`. */
type SnapshotStore = LogStore & Required<Pick<LogStore, 'loadSnapshot' | 'compact'>>;

/** Why the snapshot tests are skipped for a store without them. */
export const NO_SNAPSHOTS_NOTE =
  'the store under test has no loadSnapshot()/compact() (optional in LogStore, as a pair): it runs with snapshots off, so the snapshot and compaction tests do not apply';

function hasSnapshots(store: LogStore): store is SnapshotStore {
  return typeof store.loadSnapshot === 'function' && typeof store.compact === 'function';
}

type Opened = { store: LogStore; state: LogStoreState };

function entry(
  index: number,
  term: number,
  data?: Uint8Array | number[],
  type: EntryType = 'command',
): LogEntry {
  const bytes =
    data === undefined
      ? new Uint8Array([index & 0xff, (index >>> 8) & 0xff, term & 0xff])
      : data instanceof Uint8Array
        ? data
        : new Uint8Array(data);
  return { index, term, type, data: bytes };
}

/** Entries `from..to` (inclusive) of term `term`, with data derived from the index. */
function run(from: number, to: number, term: number): LogEntry[] {
  const out: LogEntry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term));
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Compares entries field by field and byte by byte, with a readable failure. */
function expectEntries(actual: LogEntry[], expected: LogEntry[]): void {
  const view = (es: LogEntry[]) =>
    es.map((e) => ({ index: e.index, term: e.term, type: e.type, bytes: e.data.length }));
  expect(view(actual)).toEqual(view(expected));
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    expect(a.data, `entry ${a.index}: data is a Uint8Array`).toBeInstanceOf(Uint8Array);
    expect(sameBytes(a.data, expected[i]!.data), `entry ${a.index}: data round-trips`).toBe(true);
  }
}

/** The code of the RaftError a promise rejects with (fails when it resolves or rejects with anything else). */
async function rejection(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(RaftError.isInstance(error), `rejects with a RaftError, got ${String(error)}`).toBe(true);
    return (error as RaftError).code;
  }
  expect.fail('expected the promise to reject');
}

const CONFIGURATION: Configuration = { members: ['n1', 'n2', 'n3'] };

function snapshot(
  index: number,
  term: number,
  data: Uint8Array | number[] = [index & 0xff, term & 0xff, 0xaa],
  configuration: Configuration = CONFIGURATION,
): Snapshot {
  return {
    meta: { index, term, configuration },
    data: data instanceof Uint8Array ? data : new Uint8Array(data),
  };
}

/** Checks a loaded snapshot: the metadata exactly (no field added or dropped), the data byte for byte. */
function expectSnapshot(actual: Snapshot | undefined, expected: Snapshot): void {
  expect(actual, 'a snapshot is stored').toBeDefined();
  expect(actual!.meta).toStrictEqual(expected.meta);
  expect(actual!.data, 'snapshot data is a Uint8Array').toBeInstanceOf(Uint8Array);
  expect(actual!.data.length, 'snapshot data length').toBe(expected.data.length);
  expect(sameBytes(actual!.data, expected.data), 'snapshot data round-trips').toBe(true);
}

/** What a store is expected to hold, for {@link logStoreSuite}'s snapshot tests. */
interface Held {
  hardState: HardState;
  firstIndex: number;
  lastIndex: number;
  snapshot?: Snapshot;
  /** Every entry still held, from firstIndex to lastIndex. */
  log: LogEntry[];
}

/**
 * Registers the `LogStore` conformance tests (see the module documentation for the
 * contract). Call it inside your own `describe`:
 *
 * ```ts
 * describe('MyLogStore', () => logStoreSuite({ setup: () => mkdtemp(dir), create: (d) => new MyLogStore(d) }));
 * ```
 */
export function logStoreSuite<Location>(
  harness: LogStoreHarness<Location>,
  options: LogStoreSuiteOptions = {},
): void {
  const largeBatch = options.largeBatch ?? 10_000;
  const timeout = options.timeout ?? 30_000;
  const largeSnapshot = options.largeSnapshot ?? 16 * 1024 * 1024;

  let location: Location;
  let stores: LogStore[] = [];

  /** A new store over this test's location, not yet opened (closed by the suite afterwards). */
  async function create(): Promise<LogStore> {
    const store = await harness.create(location);
    stores.push(store);
    return store;
  }

  async function fresh(): Promise<Opened> {
    const store = await create();
    return { store, state: await store.open() };
  }

  /** Closes `store` and opens a new store over the same location. */
  async function reopen(store: LogStore): Promise<Opened> {
    await store.close();
    return fresh();
  }

  /** A fresh store that has the snapshot methods; skips the test (with a note) when it has not. */
  async function freshWithSnapshots(
    context: TestContext,
  ): Promise<{ store: SnapshotStore; state: LogStoreState }> {
    const { store, state } = await fresh();
    if (!hasSnapshots(store)) return context.skip(NO_SNAPSHOTS_NOTE);
    return { store, state };
  }

  /** Checks what `store` holds now (state, entries, snapshot), without reopening. */
  async function expectHeld(store: SnapshotStore, state: LogStoreState, held: Held): Promise<void> {
    const { snapshot: meta, ...rest } = state;
    expect(rest).toEqual({
      hardState: held.hardState,
      firstIndex: held.firstIndex,
      lastIndex: held.lastIndex,
    });
    if (held.snapshot === undefined) {
      expect(meta, 'open() reports no snapshot').toBeUndefined();
      expect(await store.loadSnapshot()).toBeUndefined();
    } else {
      expect(meta, 'open() reports the snapshot').toStrictEqual(held.snapshot.meta);
      expectSnapshot(await store.loadSnapshot(), held.snapshot);
    }
    // Reads of compacted indexes return nothing for them.
    expectEntries(await store.entries(0, held.lastIndex + 10), held.log);
    expect(await store.entries(0, held.firstIndex)).toEqual([]);
  }

  /** Checks `store` as it is (through `open()` on the open store), then through a reopened one; returns the reopened store. */
  async function expectSnapshotDurable(store: SnapshotStore, held: Held): Promise<SnapshotStore> {
    await expectHeld(store, await store.open(), held);
    const { store: again, state } = await reopen(store);
    if (!hasSnapshots(again)) return expect.fail('a store over the same location lost its snapshot methods');
    await expectHeld(again, state, held);
    return again;
  }

  /** Reopens and checks the log and hard state the new store sees. */
  async function expectDurable(store: LogStore, log: LogEntry[], hardState: HardState): Promise<Opened> {
    const opened = await reopen(store);
    expect(opened.state).toEqual({ hardState, firstIndex: 1, lastIndex: log.length });
    expectEntries(await opened.store.entries(1, log.length + 1), log);
    return opened;
  }

  beforeEach(async () => {
    stores = [];
    location = await harness.setup();
  });

  afterEach(async () => {
    for (const store of stores) await store.close();
    stores = [];
    await harness.teardown?.(location);
  });

  describe('LogStore conformance', () => {
    describe('a new store', () => {
      it('opens empty: term 0, no vote, firstIndex 1, lastIndex 0', async () => {
        const { store, state } = await fresh();
        expect(state).toEqual({ hardState: { term: 0, votedFor: null }, firstIndex: 1, lastIndex: 0 });
        expect(await store.entries(1, 100)).toEqual([]);
        expect(await store.entries(0, 1)).toEqual([]);
      });

      it('reopens empty', async () => {
        const { store } = await fresh();
        await expectDurable(store, [], { term: 0, votedFor: null });
      });
    });

    describe('appending and reading', () => {
      it('returns appended entries in order', async () => {
        const { store } = await fresh();
        const log = run(1, 5, 1);
        await store.write({ entries: log });
        expectEntries(await store.entries(1, 6), log);
        await store.write({ entries: run(6, 8, 2) });
        expectEntries(await store.entries(1, 9), [...log, ...run(6, 8, 2)]);
        expectEntries(await store.entries(4, 7), [...run(4, 5, 1), ...run(6, 6, 2)]);
      });

      it('keeps every entry type', async () => {
        const { store } = await fresh();
        const log = [entry(1, 1, [], 'noop'), entry(2, 1, [1, 2], 'config'), entry(3, 1, [3], 'command')];
        await store.write({ entries: log });
        expectEntries(await store.entries(1, 4), log);
        await expectDurable(store, log, { term: 0, votedFor: null });
      });

      it('clamps entries(from, to) to the log', async () => {
        const { store } = await fresh();
        const log = run(1, 5, 1);
        await store.write({ entries: log });
        expectEntries(await store.entries(-5, 100), log);
        expectEntries(await store.entries(0, 2), log.slice(0, 1));
        expectEntries(await store.entries(4, 5), log.slice(3, 4));
        expectEntries(await store.entries(5, 6), log.slice(4, 5));
        expectEntries(await store.entries(3, 1000), log.slice(2));
        expect(await store.entries(3, 3)).toEqual([]);
        expect(await store.entries(5, 2)).toEqual([]);
        expect(await store.entries(6, 10)).toEqual([]);
        expect(await store.entries(100, 200)).toEqual([]);
      });

      it('returns entries that share nothing with the store', async () => {
        const { store } = await fresh();
        await store.write({ entries: [entry(1, 1, [1, 2, 3])] });
        const [read] = await store.entries(1, 2);
        read!.data[0] = 99;
        read!.term = 42;
        expectEntries(await store.entries(1, 2), [entry(1, 1, [1, 2, 3])]);
      });

      it('keeps no reference to the entries a write passed in', async () => {
        const { store } = await fresh();
        const written = entry(1, 1, [1, 2, 3]);
        await store.write({ entries: [written] });
        written.data[0] = 99;
        written.term = 42;
        written.index = 7;
        expectEntries(await store.entries(1, 2), [entry(1, 1, [1, 2, 3])]);
        const { store: again } = await reopen(store);
        expectEntries(await again.entries(1, 2), [entry(1, 1, [1, 2, 3])]);
      });
    });

    describe('truncation of a conflicting suffix (Raft §5.3)', () => {
      it('removes every entry at or after the first written index', async () => {
        const { store } = await fresh();
        await store.write({ entries: run(1, 5, 1) });
        await store.write({ entries: run(3, 4, 2) });
        const log = [...run(1, 2, 1), ...run(3, 4, 2)];
        expectEntries(await store.entries(1, 10), log);
        expect(await store.entries(5, 6)).toEqual([]);
        await expectDurable(store, log, { term: 0, votedFor: null });
      });

      it('replaces a longer suffix with a shorter one', async () => {
        const { store } = await fresh();
        await store.write({ entries: run(1, 10, 1) });
        await store.write({ entries: run(2, 2, 3) });
        const log = [...run(1, 1, 1), ...run(2, 2, 3)];
        expectEntries(await store.entries(1, 11), log);
        await expectDurable(store, log, { term: 0, votedFor: null });
      });

      it('truncates even when the rewritten entries are the same', async () => {
        const { store } = await fresh();
        await store.write({ entries: run(1, 5, 1) });
        await store.write({ entries: run(3, 3, 1) });
        expectEntries(await store.entries(1, 10), run(1, 3, 1));
        await expectDurable(store, run(1, 3, 1), { term: 0, votedFor: null });
      });

      it('replaces the whole log from index 1', async () => {
        const { store } = await fresh();
        await store.write({ entries: run(1, 4, 1) });
        await store.write({ entries: run(1, 2, 2) });
        expectEntries(await store.entries(1, 10), run(1, 2, 2));
        await expectDurable(store, run(1, 2, 2), { term: 0, votedFor: null });
      });

      it('appends after the truncated log', async () => {
        const { store } = await fresh();
        await store.write({ entries: run(1, 5, 1) });
        await store.write({ entries: run(2, 3, 2) });
        await store.write({ entries: run(4, 6, 3) });
        const log = [...run(1, 1, 1), ...run(2, 3, 2), ...run(4, 6, 3)];
        expectEntries(await store.entries(1, 10), log);
        await expectDurable(store, log, { term: 0, votedFor: null });
      });
    });

    describe('hard state (Figure 2, persistent state)', () => {
      it('persists term and vote written alone', async () => {
        const { store } = await fresh();
        await store.write({ hardState: { term: 3, votedFor: 'n2' } });
        const { store: again } = await expectDurable(store, [], { term: 3, votedFor: 'n2' });
        await again.write({ hardState: { term: 4, votedFor: null } });
        await expectDurable(again, [], { term: 4, votedFor: null });
      });

      it('keeps the hard state across writes of entries alone', async () => {
        const { store } = await fresh();
        await store.write({ hardState: { term: 2, votedFor: 'n1' } });
        await store.write({ entries: run(1, 3, 2) });
        await expectDurable(store, run(1, 3, 2), { term: 2, votedFor: 'n1' });
      });

      it('keeps the log across writes of the hard state alone', async () => {
        const { store } = await fresh();
        await store.write({ entries: run(1, 3, 1) });
        await store.write({ hardState: { term: 5, votedFor: 'n3' } });
        await expectDurable(store, run(1, 3, 1), { term: 5, votedFor: 'n3' });
      });

      it('round-trips any peer name', async () => {
        const { store } = await fresh();
        const name = 'nœud-节点-🚀 with spaces';
        await store.write({ hardState: { term: Number.MAX_SAFE_INTEGER, votedFor: name } });
        await expectDurable(store, [], { term: Number.MAX_SAFE_INTEGER, votedFor: name });
      });
    });

    describe('atomic batches', () => {
      it('writes hard state, truncation and entries of one batch together', async () => {
        const { store } = await fresh();
        await store.write({ hardState: { term: 1, votedFor: 'n1' }, entries: run(1, 4, 1) });
        const { store: again } = await expectDurable(store, run(1, 4, 1), { term: 1, votedFor: 'n1' });
        await again.write({ hardState: { term: 2, votedFor: 'n2' }, entries: run(3, 5, 2) });
        await expectDurable(again, [...run(1, 2, 1), ...run(3, 5, 2)], { term: 2, votedFor: 'n2' });
      });

      it('leaves the hard state unchanged when the entries of its batch are refused', async () => {
        const { store } = await fresh();
        await store.write({ hardState: { term: 1, votedFor: 'n1' }, entries: run(1, 2, 1) });
        expect(
          await rejection(store.write({ hardState: { term: 9, votedFor: 'n9' }, entries: run(4, 5, 9) })),
        ).toBe('RAFT_INVALID_ARGUMENT');
        expect(
          await rejection(
            store.write({ hardState: { term: 9, votedFor: 'n9' }, entries: [entry(3, 9), entry(5, 9)] }),
          ),
        ).toBe('RAFT_INVALID_ARGUMENT');
        expect(
          await rejection(store.write({ hardState: { term: -1, votedFor: 'n9' }, entries: run(3, 3, 1) })),
        ).toBe('RAFT_INVALID_ARGUMENT');
        expectEntries(await store.entries(1, 10), run(1, 2, 1));
        await expectDurable(store, run(1, 2, 1), { term: 1, votedFor: 'n1' });
      });
    });

    describe('reopening', () => {
      it('retains the log and the hard state, through a new store and through the same one', async () => {
        const { store } = await fresh();
        await store.write({ hardState: { term: 2, votedFor: 'n1' }, entries: run(1, 3, 1) });
        await store.write({ entries: run(4, 6, 2) });
        const log = [...run(1, 3, 1), ...run(4, 6, 2)];
        const { store: again } = await expectDurable(store, log, { term: 2, votedFor: 'n1' });
        // The same object, closed and opened again.
        await again.close();
        expect(await again.open()).toEqual({
          hardState: { term: 2, votedFor: 'n1' },
          firstIndex: 1,
          lastIndex: 6,
        });
        expectEntries(await again.entries(1, 7), log);
        await again.write({ entries: run(7, 7, 2) });
        await expectDurable(again, [...log, ...run(7, 7, 2)], { term: 2, votedFor: 'n1' });
      });
    });

    describe('bad arguments', () => {
      const cases: Array<[string, (last: number) => LogWrite]> = [
        ['a gap after the last entry', (last) => ({ entries: run(last + 2, last + 3, 5) })],
        ['an index below firstIndex', () => ({ entries: [entry(0, 5)] })],
        ['non-consecutive entries', (last) => ({ entries: [entry(last + 1, 5), entry(last + 3, 5)] })],
        ['a repeated index', (last) => ({ entries: [entry(last + 1, 5), entry(last + 1, 5)] })],
        ['decreasing indexes', (last) => ({ entries: [entry(last + 1, 5), entry(last, 5)] })],
        ['a negative index', () => ({ entries: [entry(-1, 5)] })],
        ['a NaN index', () => ({ entries: [entry(Number.NaN, 5)] })],
        ['a fractional index', (last) => ({ entries: [entry(last + 0.5, 5)] })],
        ['an infinite index', () => ({ entries: [entry(Infinity, 5)] })],
        [
          'an index that is a string',
          (last) => ({ entries: [{ ...entry(last + 1, 5), index: String(last + 1) as unknown as number }] }),
        ],
        ['a negative term', (last) => ({ entries: [entry(last + 1, -1)] })],
        ['a NaN term', (last) => ({ entries: [entry(last + 1, Number.NaN)] })],
        ['a fractional term', (last) => ({ entries: [entry(last + 1, 2.5)] })],
        [
          'a term that decreases within the batch',
          (last) => ({ entries: [entry(last + 1, 5), entry(last + 2, 4)] }),
        ],
        ['a term below the stored entry before it', (last) => ({ entries: [entry(last + 1, 1)] })],
        [
          'an unknown entry type',
          (last) => ({ entries: [{ ...entry(last + 1, 5), type: 'bogus' as EntryType }] }),
        ],
        [
          'data that is not a Uint8Array',
          (last) => ({ entries: [{ ...entry(last + 1, 5), data: 'abc' as unknown as Uint8Array }] }),
        ],
        ['an entry that is not an object', () => ({ entries: [null as unknown as LogEntry] })],
        ['a hard state with a fractional term', () => ({ hardState: { term: 1.5, votedFor: null } })],
        ['a hard state with a negative term', () => ({ hardState: { term: -1, votedFor: null } })],
        [
          'a hard state whose vote is not a string',
          () => ({ hardState: { term: 3, votedFor: 7 as unknown as string } }),
        ],
      ];

      for (const [name, make] of cases) {
        it(`rejects ${name} with RAFT_INVALID_ARGUMENT and changes nothing`, async () => {
          const { store } = await fresh();
          const log = [...run(1, 2, 1), ...run(3, 3, 2)];
          await store.write({ hardState: { term: 2, votedFor: 'n1' }, entries: log });
          expect(await rejection(store.write(make(log.length)))).toBe('RAFT_INVALID_ARGUMENT');
          expectEntries(await store.entries(1, 10), log);
          // Still writable, and nothing of the refused batch reached the disk.
          await store.write({ entries: run(4, 4, 2) });
          await expectDurable(store, [...log, ...run(4, 4, 2)], { term: 2, votedFor: 'n1' });
        });
      }

      it('rejects a gap in an empty store', async () => {
        const { store } = await fresh();
        expect(await rejection(store.write({ entries: run(2, 3, 1) }))).toBe('RAFT_INVALID_ARGUMENT');
        await expectDurable(store, [], { term: 0, votedFor: null });
      });

      it('treats an empty batch as a no-op', async () => {
        const { store } = await fresh();
        await store.write({ hardState: { term: 1, votedFor: 'n1' }, entries: run(1, 3, 1) });
        await store.write({});
        await store.write({ entries: [] });
        expectEntries(await store.entries(1, 10), run(1, 3, 1));
        await expectDurable(store, run(1, 3, 1), { term: 1, votedFor: 'n1' });
      });
    });

    describe('a closed store', () => {
      it('rejects calls before open() with RAFT_STORAGE_CLOSED', async () => {
        const store = await create();
        expect(await rejection(store.write({ entries: run(1, 1, 1) }))).toBe('RAFT_STORAGE_CLOSED');
        expect(await rejection(store.write({ hardState: { term: 1, votedFor: null } }))).toBe(
          'RAFT_STORAGE_CLOSED',
        );
        expect(await rejection(store.entries(1, 2))).toBe('RAFT_STORAGE_CLOSED');
        expect(await store.open()).toEqual({
          hardState: { term: 0, votedFor: null },
          firstIndex: 1,
          lastIndex: 0,
        });
      });

      it('rejects calls after close() with RAFT_STORAGE_CLOSED', async () => {
        const { store } = await fresh();
        await store.write({ entries: run(1, 2, 1) });
        await store.close();
        expect(await rejection(store.write({ entries: run(3, 3, 1) }))).toBe('RAFT_STORAGE_CLOSED');
        expect(await rejection(store.write({}))).toBe('RAFT_STORAGE_CLOSED');
        expect(await rejection(store.entries(1, 3))).toBe('RAFT_STORAGE_CLOSED');
      });

      it('closes idempotently, also before open()', async () => {
        const unopened = await create();
        await unopened.close();
        await unopened.close();
        const { store } = await fresh();
        await store.close();
        await store.close();
        await Promise.all([store.close(), store.close()]);
      });
    });

    describe('large batches', () => {
      it(`writes ${largeBatch} entries in one batch and reads them back`, { timeout }, async () => {
        const { store } = await fresh();
        const log: LogEntry[] = [];
        for (let i = 1; i <= largeBatch; i++)
          log.push(entry(i, 1 + Math.floor(i / 1000), new Uint8Array(100).fill(i & 0xff)));
        await store.write({ hardState: { term: log.at(-1)!.term, votedFor: 'n1' }, entries: log });
        expectEntries(await store.entries(1, largeBatch + 1), log);
        const mid = Math.floor(largeBatch / 2);
        expectEntries(await store.entries(mid, mid + 10), log.slice(mid - 1, mid + 9));
        const { store: again, state } = await reopen(store);
        expect(state.lastIndex).toBe(largeBatch);
        expectEntries(await again.entries(1, largeBatch + 1), log);
        // Truncating most of it in one batch.
        await again.write({ entries: run(2, 2, log.at(-1)!.term) });
        await expectDurable(again, [log[0]!, ...run(2, 2, log.at(-1)!.term)], {
          term: log.at(-1)!.term,
          votedFor: 'n1',
        });
      });
    });

    describe('binary data', () => {
      it(
        'round-trips every byte value, empty data, large data and views into larger buffers',
        { timeout },
        async () => {
          const { store } = await fresh();
          const all = new Uint8Array(256).map((_, i) => i);
          const big = new Uint8Array(1 << 20).map((_, i) => (i * 31 + 7) & 0xff);
          const backing = new Uint8Array([9, 9, 9, 1, 2, 3, 9, 9]);
          const view = backing.subarray(3, 6);
          const log = [
            entry(1, 1, all),
            entry(2, 1, new Uint8Array(0)),
            entry(3, 1, big),
            entry(4, 1, view),
            entry(5, 1, Buffer.from('héllo', 'utf8')),
          ];
          await store.write({ entries: log });
          const expected = [
            ...log.slice(0, 3),
            entry(4, 1, [1, 2, 3]),
            entry(5, 1, new Uint8Array(Buffer.from('héllo', 'utf8'))),
          ];
          expectEntries(await store.entries(1, 6), expected);
          await expectDurable(store, expected, { term: 0, votedFor: null });
        },
      );
    });

    describe('concurrent writes', () => {
      it('applies writes issued without awaiting in call order', async () => {
        const { store } = await fresh();
        await Promise.all([
          store.write({ entries: run(1, 3, 1) }),
          store.write({ hardState: { term: 2, votedFor: 'n2' } }),
          store.write({ entries: run(4, 5, 1) }),
          store.write({ entries: run(2, 2, 2) }),
          store.write({ hardState: { term: 3, votedFor: null }, entries: run(3, 3, 3) }),
        ]);
        const log = [...run(1, 1, 1), ...run(2, 2, 2), ...run(3, 3, 3)];
        expectEntries(await store.entries(1, 10), log);
        await expectDurable(store, log, { term: 3, votedFor: null });
      });

      it('validates each write against the log the earlier ones left', async () => {
        const { store } = await fresh();
        const results = await Promise.allSettled([
          store.write({ entries: run(1, 3, 1) }),
          store.write({ hardState: { term: 9, votedFor: 'n9' }, entries: run(5, 5, 9) }), // a gap once the first applied
          store.write({ entries: run(4, 4, 2) }), // fits after the first
          store.write({ entries: run(5, 5, 1) }), // term below entry 4's
          store.write({ entries: run(5, 6, 2) }),
        ]);
        expect(results.map((r) => r.status)).toEqual([
          'fulfilled',
          'rejected',
          'fulfilled',
          'rejected',
          'fulfilled',
        ]);
        for (const r of results) {
          if (r.status === 'rejected') expect((r.reason as RaftError).code).toBe('RAFT_INVALID_ARGUMENT');
        }
        const log = [...run(1, 3, 1), ...run(4, 6, 2)];
        expectEntries(await store.entries(1, 10), log);
        await expectDurable(store, log, { term: 0, votedFor: null });
      });

      it('applies many single-entry appends issued together', async () => {
        const { store } = await fresh();
        const log = run(1, 200, 1);
        await Promise.all(log.map((e) => store.write({ entries: [e] })));
        expectEntries(await store.entries(1, 201), log);
        await expectDurable(store, log, { term: 0, votedFor: null });
      });
    });

    describe('snapshots and log compaction (Raft §7)', () => {
      const hs: HardState = { term: 2, votedFor: 'n1' };
      const newStore: HardState = { term: 0, votedFor: null };

      it('has loadSnapshot() and compact() both, or neither (they are optional as a pair)', async () => {
        const store = await create();
        expect(typeof store.loadSnapshot, 'loadSnapshot and compact come as a pair').toBe(
          typeof store.compact,
        );
      });

      it('reports no snapshot for a new store, also after a reopen', async (context) => {
        const { store, state } = await freshWithSnapshots(context);
        expect(state.snapshot).toBeUndefined();
        await expectSnapshotDurable(store, { hardState: newStore, firstIndex: 1, lastIndex: 0, log: [] });
      });

      it('keeps a snapshot across a reopen: the metadata exactly as written, the data byte for byte', async (context) => {
        const { store } = await freshWithSnapshots(context);
        const log = [...run(1, 6, 1), ...run(7, 10, 2)];
        await store.write({ hardState: hs, entries: log });
        const data = new Uint8Array(70_000).map((_, i) => (i * 131 + 7) & 0xff);
        const snap = snapshot(8, 2, data, {
          members: ['n3', 'n1', 'n2'],
          learners: ['n4'],
          outgoing: ['n1', 'n2', 'n5'],
        });
        await store.write({ snapshot: snap });
        await expectSnapshotDurable(store, {
          hardState: hs,
          firstIndex: 1,
          lastIndex: 10,
          snapshot: snap,
          log,
        });
      });

      it('round-trips configurations with and without learners and outgoing, empty data, and only the bytes of a view', async (context) => {
        let { store } = await freshWithSnapshots(context);
        const log = run(1, 10, 1);
        await store.write({ hardState: hs, entries: log });
        const backing = new Uint8Array([9, 9, 1, 2, 3, 9]);
        const cases: Snapshot[] = [
          snapshot(2, 1, new Uint8Array(0), { members: ['n1'] }),
          snapshot(3, 1, [0, 255], { members: ['n1', 'n2'], learners: [] }),
          snapshot(4, 1, backing.subarray(2, 5), { members: ['a', 'b'], outgoing: ['a', 'b', 'c'] }),
          snapshot(5, 1, Buffer.from('état', 'utf8'), {
            members: ['nœud-节点', '🚀 with spaces'],
            learners: ['n9'],
            outgoing: [],
          }),
          snapshot(
            6,
            1,
            new Uint8Array(256).map((_, i) => i),
            { members: [] },
          ),
        ];
        for (const snap of cases) {
          await store.write({ snapshot: snap });
          const expected = { ...snap, data: new Uint8Array(snap.data) };
          store = await expectSnapshotDurable(store, {
            hardState: hs,
            firstIndex: 1,
            lastIndex: 10,
            snapshot: expected,
            log,
          });
        }
      });

      it('replaces the stored snapshot with a newer one, of any size', async (context) => {
        const { store } = await freshWithSnapshots(context);
        const log = run(1, 10, 1);
        await store.write({ entries: log });
        const big = snapshot(3, 1, new Uint8Array(3 * 1024 * 1024 + 17).fill(0x5a));
        await store.write({ snapshot: big });
        expectSnapshot(await store.loadSnapshot(), big);
        const small = snapshot(6, 1, [1, 2, 3], { members: ['n1', 'n2'] });
        await store.write({ snapshot: small });
        const again = await expectSnapshotDurable(store, {
          hardState: newStore,
          firstIndex: 1,
          lastIndex: 10,
          snapshot: small,
          log,
        });
        const bigger = snapshot(7, 1, new Uint8Array(2 * 1024 * 1024).fill(0xa5));
        await again.write({ snapshot: bigger });
        await expectSnapshotDurable(again, {
          hardState: newStore,
          firstIndex: 1,
          lastIndex: 10,
          snapshot: bigger,
          log,
        });
      });

      it('shares nothing with the caller: neither the snapshot a write passed in nor the one it loaded', async (context) => {
        const { store } = await freshWithSnapshots(context);
        await store.write({ entries: run(1, 5, 1) });
        const written = snapshot(4, 1, [1, 2, 3], { members: ['n1', 'n2'], learners: ['n3'] });
        const pending = store.write({ snapshot: written });
        written.data[0] = 99; // before the write resolved
        await pending;
        written.data[1] = 99;
        written.meta.index = 5;
        written.meta.configuration.members.push('n7');
        written.meta.configuration.learners!.length = 0;
        const expected = snapshot(4, 1, [1, 2, 3], { members: ['n1', 'n2'], learners: ['n3'] });
        const loaded = await store.loadSnapshot();
        expectSnapshot(loaded, expected);
        loaded!.data[2] = 42;
        loaded!.meta.term = 9;
        loaded!.meta.configuration.members.length = 0;
        const state = await store.open();
        state.snapshot!.configuration.members.push('n8');
        await expectSnapshotDurable(store, {
          hardState: newStore,
          firstIndex: 1,
          lastIndex: 5,
          snapshot: expected,
          log: run(1, 5, 1),
        });
      });

      it("keeps every entry when the log holds the snapshot's last entry (same index and term)", async (context) => {
        const { store } = await freshWithSnapshots(context);
        const log = [...run(1, 4, 1), ...run(5, 10, 2)];
        await store.write({ hardState: hs, entries: log });
        const snap = snapshot(7, 2);
        await store.write({ snapshot: snap });
        const again = await expectSnapshotDurable(store, {
          hardState: hs,
          firstIndex: 1,
          lastIndex: 10,
          snapshot: snap,
          log,
        });
        // The log goes on as before: a conflicting suffix after the snapshot, then appends.
        await again.write({ entries: run(9, 10, 3) });
        await again.write({ entries: run(11, 11, 3) });
        const last = snapshot(11, 3);
        await again.write({ snapshot: last });
        await expectSnapshotDurable(again, {
          hardState: hs,
          firstIndex: 1,
          lastIndex: 11,
          snapshot: last,
          log: [...log.slice(0, 8), ...run(9, 11, 3)],
        });
      });

      it('empties the log for a snapshot whose index the log holds with another term; the log continues after it', async (context) => {
        const { store } = await freshWithSnapshots(context);
        await store.write({ hardState: hs, entries: run(1, 10, 1) });
        const snap = snapshot(7, 2);
        await store.write({ snapshot: snap });
        const again = await expectSnapshotDurable(store, {
          hardState: hs,
          firstIndex: 8,
          lastIndex: 7,
          snapshot: snap,
          log: [],
        });
        expect(await rejection(again.write({ entries: run(7, 8, 2) }))).toBe('RAFT_INVALID_ARGUMENT'); // below firstIndex
        expect(await rejection(again.write({ entries: run(9, 9, 2) }))).toBe('RAFT_INVALID_ARGUMENT'); // a gap
        await again.write({ entries: run(8, 9, 2) });
        await expectSnapshotDurable(again, {
          hardState: hs,
          firstIndex: 8,
          lastIndex: 9,
          snapshot: snap,
          log: run(8, 9, 2),
        });
      });

      it('empties the log for a snapshot beyond its end; the log continues from index + 1', async (context) => {
        const { store } = await freshWithSnapshots(context);
        await store.write({ hardState: hs, entries: run(1, 5, 1) });
        const snap = snapshot(20, 3);
        await store.write({ snapshot: snap });
        expect(await store.entries(1, 30)).toEqual([]);
        const again = await expectSnapshotDurable(store, {
          hardState: hs,
          firstIndex: 21,
          lastIndex: 20,
          snapshot: snap,
          log: [],
        });
        expect(await rejection(again.write({ entries: run(5, 5, 3) }))).toBe('RAFT_INVALID_ARGUMENT');
        expect(await rejection(again.write({ entries: run(20, 21, 3) }))).toBe('RAFT_INVALID_ARGUMENT');
        expect(await rejection(again.write({ entries: run(22, 23, 3) }))).toBe('RAFT_INVALID_ARGUMENT');
        await again.write({ entries: run(21, 23, 3) });
        await expectSnapshotDurable(again, {
          hardState: hs,
          firstIndex: 21,
          lastIndex: 23,
          snapshot: snap,
          log: run(21, 23, 3),
        });
      });

      it('empties a new store for a snapshot, which a follower receives before any entry', async (context) => {
        const { store } = await freshWithSnapshots(context);
        const snap = snapshot(100, 4, [7, 7, 7], { members: ['n1', 'n2', 'n3'], learners: ['n4'] });
        await store.write({ hardState: { term: 4, votedFor: null }, snapshot: snap });
        await expectSnapshotDurable(store, {
          hardState: { term: 4, votedFor: null },
          firstIndex: 101,
          lastIndex: 100,
          snapshot: snap,
          log: [],
        });
      });

      it('writes a snapshot, hard state and entries of one batch together, the entries after the snapshot', async (context) => {
        const { store } = await freshWithSnapshots(context);
        await store.write({ hardState: hs, entries: run(1, 10, 1) });
        // A snapshot from the leader replacing a diverged log, with what follows it.
        const snap = snapshot(12, 3);
        const next: HardState = { term: 3, votedFor: null };
        await store.write({ hardState: next, snapshot: snap, entries: run(13, 15, 3) });
        let again = await expectSnapshotDurable(store, {
          hardState: next,
          firstIndex: 13,
          lastIndex: 15,
          snapshot: snap,
          log: run(13, 15, 3),
        });
        // A matching snapshot with entries that extend the log.
        const matching = snapshot(14, 3);
        await again.write({ hardState: hs, snapshot: matching, entries: run(16, 17, 3) });
        again = await expectSnapshotDurable(again, {
          hardState: hs,
          firstIndex: 13,
          lastIndex: 17,
          snapshot: matching,
          log: run(13, 17, 3),
        });
      });

      it('changes nothing when a write with a snapshot is refused: not the hard state, not the snapshot, not the log', async (context) => {
        const { store } = await freshWithSnapshots(context);
        const log = run(1, 10, 1);
        const snap = snapshot(4, 1);
        await store.write({ hardState: hs, entries: log });
        await store.write({ snapshot: snap });
        const held: Held = { hardState: hs, firstIndex: 1, lastIndex: 10, snapshot: snap, log };
        const other: HardState = { term: 9, votedFor: 'n9' };
        const refused: LogWrite[] = [
          { hardState: other, snapshot: snapshot(20, 3), entries: run(22, 23, 3) }, // a gap after the snapshot
          { hardState: other, snapshot: snapshot(20, 3), entries: run(5, 6, 3) }, // below the log the snapshot leaves
          { hardState: other, snapshot: snapshot(8, 1), entries: run(12, 12, 1) }, // a gap in the log the snapshot keeps
          {
            hardState: other,
            snapshot: { meta: { index: -1, term: 1, configuration: CONFIGURATION }, data: new Uint8Array(1) },
            entries: run(11, 11, 1),
          },
          { hardState: { term: -1, votedFor: null }, snapshot: snapshot(8, 1) },
          { snapshot: snapshot(8, 1), entries: [entry(11, 1), entry(13, 1)] },
        ];
        for (const batch of refused) {
          expect(
            await rejection(store.write(batch)),
            JSON.stringify(batch, (_, v: unknown) => (v instanceof Uint8Array ? `<${v.length} bytes>` : v)),
          ).toBe('RAFT_INVALID_ARGUMENT');
          await expectHeld(store, await store.open(), held);
        }
        const again = await expectSnapshotDurable(store, held);
        // Still writable.
        const next = snapshot(8, 1);
        await again.write({ snapshot: next, entries: run(11, 11, 1) });
        await expectSnapshotDurable(again, { ...held, lastIndex: 11, snapshot: next, log: run(1, 11, 1) });
      });

      const malformed: Array<[string, unknown]> = [
        ['a snapshot that is not an object', null],
        ['a snapshot without meta', { data: new Uint8Array(1) }],
        [
          'an index of 0',
          { meta: { index: 0, term: 1, configuration: CONFIGURATION }, data: new Uint8Array(1) },
        ],
        [
          'a negative index',
          { meta: { index: -3, term: 1, configuration: CONFIGURATION }, data: new Uint8Array(1) },
        ],
        [
          'a fractional index',
          { meta: { index: 4.5, term: 1, configuration: CONFIGURATION }, data: new Uint8Array(1) },
        ],
        [
          'a NaN index',
          { meta: { index: Number.NaN, term: 1, configuration: CONFIGURATION }, data: new Uint8Array(1) },
        ],
        [
          'an index that is a string',
          { meta: { index: '4', term: 1, configuration: CONFIGURATION }, data: new Uint8Array(1) },
        ],
        [
          'a negative term',
          { meta: { index: 4, term: -1, configuration: CONFIGURATION }, data: new Uint8Array(1) },
        ],
        [
          'a fractional term',
          { meta: { index: 4, term: 1.5, configuration: CONFIGURATION }, data: new Uint8Array(1) },
        ],
        ['no configuration', { meta: { index: 4, term: 1 }, data: new Uint8Array(1) }],
        [
          'members that are not an array',
          { meta: { index: 4, term: 1, configuration: { members: 'n1' } }, data: new Uint8Array(1) },
        ],
        [
          'a member that is not a string',
          { meta: { index: 4, term: 1, configuration: { members: ['n1', 2] } }, data: new Uint8Array(1) },
        ],
        [
          'learners that are not an array',
          {
            meta: { index: 4, term: 1, configuration: { members: ['n1'], learners: 'n2' } },
            data: new Uint8Array(1),
          },
        ],
        [
          'outgoing voters that are not names',
          {
            meta: { index: 4, term: 1, configuration: { members: ['n1'], outgoing: [null] } },
            data: new Uint8Array(1),
          },
        ],
        [
          'data that is not a Uint8Array',
          { meta: { index: 4, term: 1, configuration: CONFIGURATION }, data: [1, 2, 3] },
        ],
        ['no data', { meta: { index: 4, term: 1, configuration: CONFIGURATION } }],
      ];
      for (const [name, bad] of malformed) {
        it(`rejects ${name} with RAFT_INVALID_ARGUMENT and changes nothing`, async (context) => {
          const { store } = await freshWithSnapshots(context);
          const snap = snapshot(2, 1);
          await store.write({ hardState: hs, entries: run(1, 5, 1) });
          await store.write({ snapshot: snap });
          expect(
            await rejection(
              store.write({
                hardState: { term: 7, votedFor: null },
                snapshot: bad as Snapshot,
                entries: run(6, 6, 1),
              }),
            ),
          ).toBe('RAFT_INVALID_ARGUMENT');
          await expectSnapshotDurable(store, {
            hardState: hs,
            firstIndex: 1,
            lastIndex: 5,
            snapshot: snap,
            log: run(1, 5, 1),
          });
        });
      }

      it('compacts: compact(upTo) removes the entries up to upTo, moves firstIndex, and reads skip them', async (context) => {
        const { store } = await freshWithSnapshots(context);
        const log = [...run(1, 5, 1), ...run(6, 10, 2)];
        const snap = snapshot(8, 2);
        await store.write({ hardState: hs, entries: log });
        await store.write({ snapshot: snap });
        await store.compact(4);
        expectEntries(await store.entries(1, 6), log.slice(4, 5));
        let again = await expectSnapshotDurable(store, {
          hardState: hs,
          firstIndex: 5,
          lastIndex: 10,
          snapshot: snap,
          log: log.slice(4),
        });
        await again.compact(8);
        again = await expectSnapshotDurable(again, {
          hardState: hs,
          firstIndex: 9,
          lastIndex: 10,
          snapshot: snap,
          log: log.slice(8),
        });
        // The log goes on after the compaction point: appends, and a conflicting suffix.
        await again.write({ entries: run(11, 12, 2) });
        await again.write({ entries: run(10, 10, 3) });
        await expectSnapshotDurable(again, {
          hardState: hs,
          firstIndex: 9,
          lastIndex: 10,
          snapshot: snap,
          log: [log[8]!, ...run(10, 10, 3)],
        });
      });

      it('does nothing for compact(upTo) below firstIndex', async (context) => {
        const { store } = await freshWithSnapshots(context);
        const snap = snapshot(8, 1);
        await store.write({ entries: run(1, 10, 1) });
        await store.write({ snapshot: snap });
        await store.compact(6);
        for (const upTo of [6, 3, 0, -10]) await store.compact(upTo);
        await expectSnapshotDurable(store, {
          hardState: newStore,
          firstIndex: 7,
          lastIndex: 10,
          snapshot: snap,
          log: run(7, 10, 1),
        });
      });

      it('leaves an empty log, firstIndex = lastIndex + 1, when it compacts up to the last entry', async (context) => {
        const { store } = await freshWithSnapshots(context);
        const snap = snapshot(5, 1);
        await store.write({ hardState: hs, entries: run(1, 5, 1) });
        await store.write({ snapshot: snap });
        await store.compact(5);
        const again = await expectSnapshotDurable(store, {
          hardState: hs,
          firstIndex: 6,
          lastIndex: 5,
          snapshot: snap,
          log: [],
        });
        expect(await rejection(again.write({ entries: run(5, 6, 1) }))).toBe('RAFT_INVALID_ARGUMENT');
        expect(await rejection(again.write({ entries: run(7, 7, 1) }))).toBe('RAFT_INVALID_ARGUMENT');
        await again.write({ entries: run(6, 7, 2) });
        await expectSnapshotDurable(again, {
          hardState: hs,
          firstIndex: 6,
          lastIndex: 7,
          snapshot: snap,
          log: run(6, 7, 2),
        });
      });

      it("rejects compact(upTo) beyond the snapshot's index, or with no snapshot, with RAFT_INVALID_ARGUMENT and changes nothing", async (context) => {
        const { store } = await freshWithSnapshots(context);
        await store.write({ hardState: hs, entries: run(1, 10, 1) });
        for (const upTo of [1, 3, 10])
          expect(await rejection(store.compact(upTo)), `compact(${upTo}) with no snapshot`).toBe(
            'RAFT_INVALID_ARGUMENT',
          );
        await expectHeld(store, await store.open(), {
          hardState: hs,
          firstIndex: 1,
          lastIndex: 10,
          log: run(1, 10, 1),
        });
        const snap = snapshot(5, 1);
        await store.write({ snapshot: snap });
        for (const upTo of [6, 10, 11, Number.NaN, 2.5, Infinity])
          expect(await rejection(store.compact(upTo)), `compact(${upTo})`).toBe('RAFT_INVALID_ARGUMENT');
        await expectSnapshotDurable(store, {
          hardState: hs,
          firstIndex: 1,
          lastIndex: 10,
          snapshot: snap,
          log: run(1, 10, 1),
        });
      });

      it('applies compact() and writes issued without awaiting in call order', async (context) => {
        const { store } = await freshWithSnapshots(context);
        await store.write({ entries: run(1, 10, 1) });
        const snap = snapshot(6, 1);
        const results = await Promise.allSettled([
          store.compact(6), // before the snapshot's write: no snapshot yet
          store.write({ snapshot: snap }),
          store.compact(6),
          store.write({ entries: run(11, 12, 1) }),
          store.compact(7), // beyond the snapshot
          store.write({ entries: run(6, 6, 2) }), // below firstIndex once compacted
        ]);
        expect(results.map((r) => r.status)).toEqual([
          'rejected',
          'fulfilled',
          'fulfilled',
          'fulfilled',
          'rejected',
          'rejected',
        ]);
        for (const r of results)
          if (r.status === 'rejected') expect((r.reason as RaftError).code).toBe('RAFT_INVALID_ARGUMENT');
        await expectSnapshotDurable(store, {
          hardState: newStore,
          firstIndex: 7,
          lastIndex: 12,
          snapshot: snap,
          log: run(7, 12, 1),
        });
      });

      it('is consistent after a crash between the snapshot write and the compaction: snapshot and old entries both there', async (context) => {
        const { store } = await freshWithSnapshots(context);
        const log = [...run(1, 6, 1), ...run(7, 10, 2)];
        await store.write({ hardState: hs, entries: log });
        // The runtime persists the snapshot, then compacts; the "crash" comes between the two.
        const snap = snapshot(8, 2, new Uint8Array(10_000).fill(3));
        await store.write({ snapshot: snap });
        const { store: again, state } = await reopen(store);
        if (!hasSnapshots(again))
          return expect.fail('a store over the same location lost its snapshot methods');
        expect(state.firstIndex).toBeLessThanOrEqual(state.snapshot!.index + 1);
        expect(state.snapshot!.index).toBeLessThanOrEqual(state.lastIndex);
        await expectHeld(again, state, { hardState: hs, firstIndex: 1, lastIndex: 10, snapshot: snap, log });
        // The restarted peer compacts later; that works as usual.
        await again.compact(8);
        await expectSnapshotDurable(again, {
          hardState: hs,
          firstIndex: 9,
          lastIndex: 10,
          snapshot: snap,
          log: log.slice(8),
        });
      });

      it(
        `stores a snapshot of ${largeSnapshot} bytes and loads it back, also after a reopen`,
        { timeout },
        async (context) => {
          const { store } = await freshWithSnapshots(context);
          await store.write({ hardState: hs, entries: run(1, 3, 1) });
          const data = new Uint8Array(largeSnapshot);
          for (let i = 0; i < data.length; i += 4096) data.fill((i >>> 12) & 0xff, i, i + 4096);
          data[data.length - 1] = 0x7f;
          const big = snapshot(3, 1, data);
          await store.write({ snapshot: big });
          await store.compact(3);
          await expectSnapshotDurable(store, {
            hardState: hs,
            firstIndex: 4,
            lastIndex: 3,
            snapshot: big,
            log: [],
          });
        },
      );

      it('rejects loadSnapshot() and compact() before open() and after close() with RAFT_STORAGE_CLOSED', async (context) => {
        const unopened = await create();
        if (!hasSnapshots(unopened)) return context.skip(NO_SNAPSHOTS_NOTE);
        expect(await rejection(unopened.loadSnapshot())).toBe('RAFT_STORAGE_CLOSED');
        expect(await rejection(unopened.compact(0))).toBe('RAFT_STORAGE_CLOSED');
        expect(await rejection(unopened.write({ snapshot: snapshot(1, 1) }))).toBe('RAFT_STORAGE_CLOSED');
        await unopened.open();
        await unopened.write({ entries: run(1, 2, 1) });
        await unopened.write({ snapshot: snapshot(1, 1) });
        await unopened.close();
        expect(await rejection(unopened.loadSnapshot())).toBe('RAFT_STORAGE_CLOSED');
        expect(await rejection(unopened.compact(1))).toBe('RAFT_STORAGE_CLOSED');
      });
    });
  });
}
