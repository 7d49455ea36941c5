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
 * @module
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RaftError } from '@raft/core';
import type { EntryType, HardState, LogEntry, LogStore, LogStoreState, LogWrite } from '@raft/core';

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
}

type Opened = { store: LogStore; state: LogStoreState };

function entry(index: number, term: number, data?: Uint8Array | number[], type: EntryType = 'command'): LogEntry {
  const bytes = data === undefined ? new Uint8Array([index & 0xff, (index >>> 8) & 0xff, term & 0xff]) : data instanceof Uint8Array ? data : new Uint8Array(data);
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
  const view = (es: LogEntry[]) => es.map((e) => ({ index: e.index, term: e.term, type: e.type, bytes: e.data.length }));
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

/**
 * Registers the `LogStore` conformance tests (see the module documentation for the
 * contract). Call it inside your own `describe`:
 *
 * ```ts
 * describe('MyLogStore', () => logStoreSuite({ setup: () => mkdtemp(dir), create: (d) => new MyLogStore(d) }));
 * ```
 */
export function logStoreSuite<Location>(harness: LogStoreHarness<Location>, options: LogStoreSuiteOptions = {}): void {
  const largeBatch = options.largeBatch ?? 10_000;
  const timeout = options.timeout ?? 30_000;

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
        expect(await rejection(store.write({ hardState: { term: 9, votedFor: 'n9' }, entries: run(4, 5, 9) }))).toBe('RAFT_INVALID_ARGUMENT');
        expect(await rejection(store.write({ hardState: { term: 9, votedFor: 'n9' }, entries: [entry(3, 9), entry(5, 9)] }))).toBe('RAFT_INVALID_ARGUMENT');
        expect(await rejection(store.write({ hardState: { term: -1, votedFor: 'n9' }, entries: run(3, 3, 1) }))).toBe('RAFT_INVALID_ARGUMENT');
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
        expect(await again.open()).toEqual({ hardState: { term: 2, votedFor: 'n1' }, firstIndex: 1, lastIndex: 6 });
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
        ['an index that is a string', (last) => ({ entries: [{ ...entry(last + 1, 5), index: String(last + 1) as unknown as number }] })],
        ['a negative term', (last) => ({ entries: [entry(last + 1, -1)] })],
        ['a NaN term', (last) => ({ entries: [entry(last + 1, Number.NaN)] })],
        ['a fractional term', (last) => ({ entries: [entry(last + 1, 2.5)] })],
        ['a term that decreases within the batch', (last) => ({ entries: [entry(last + 1, 5), entry(last + 2, 4)] })],
        ['a term below the stored entry before it', (last) => ({ entries: [entry(last + 1, 1)] })],
        ['an unknown entry type', (last) => ({ entries: [{ ...entry(last + 1, 5), type: 'bogus' as EntryType }] })],
        ['data that is not a Uint8Array', (last) => ({ entries: [{ ...entry(last + 1, 5), data: 'abc' as unknown as Uint8Array }] })],
        ['an entry that is not an object', () => ({ entries: [null as unknown as LogEntry] })],
        ['a hard state with a fractional term', () => ({ hardState: { term: 1.5, votedFor: null } })],
        ['a hard state with a negative term', () => ({ hardState: { term: -1, votedFor: null } })],
        ['a hard state whose vote is not a string', () => ({ hardState: { term: 3, votedFor: 7 as unknown as string } })],
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
        expect(await rejection(store.write({ hardState: { term: 1, votedFor: null } }))).toBe('RAFT_STORAGE_CLOSED');
        expect(await rejection(store.entries(1, 2))).toBe('RAFT_STORAGE_CLOSED');
        expect(await store.open()).toEqual({ hardState: { term: 0, votedFor: null }, firstIndex: 1, lastIndex: 0 });
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
        for (let i = 1; i <= largeBatch; i++) log.push(entry(i, 1 + Math.floor(i / 1000), new Uint8Array(100).fill(i & 0xff)));
        await store.write({ hardState: { term: log.at(-1)!.term, votedFor: 'n1' }, entries: log });
        expectEntries(await store.entries(1, largeBatch + 1), log);
        const mid = Math.floor(largeBatch / 2);
        expectEntries(await store.entries(mid, mid + 10), log.slice(mid - 1, mid + 9));
        const { store: again, state } = await reopen(store);
        expect(state.lastIndex).toBe(largeBatch);
        expectEntries(await again.entries(1, largeBatch + 1), log);
        // Truncating most of it in one batch.
        await again.write({ entries: run(2, 2, log.at(-1)!.term) });
        await expectDurable(again, [log[0]!, ...run(2, 2, log.at(-1)!.term)], { term: log.at(-1)!.term, votedFor: 'n1' });
      });
    });

    describe('binary data', () => {
      it('round-trips every byte value, empty data, large data and views into larger buffers', { timeout }, async () => {
        const { store } = await fresh();
        const all = new Uint8Array(256).map((_, i) => i);
        const big = new Uint8Array(1 << 20).map((_, i) => (i * 31 + 7) & 0xff);
        const backing = new Uint8Array([9, 9, 9, 1, 2, 3, 9, 9]);
        const view = backing.subarray(3, 6);
        const log = [entry(1, 1, all), entry(2, 1, new Uint8Array(0)), entry(3, 1, big), entry(4, 1, view), entry(5, 1, Buffer.from('héllo', 'utf8'))];
        await store.write({ entries: log });
        const expected = [...log.slice(0, 3), entry(4, 1, [1, 2, 3]), entry(5, 1, new Uint8Array(Buffer.from('héllo', 'utf8')))];
        expectEntries(await store.entries(1, 6), expected);
        await expectDurable(store, expected, { term: 0, votedFor: null });
      });
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
        expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
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
  });
}
