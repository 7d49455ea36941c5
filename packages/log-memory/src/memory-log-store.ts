import { InvalidArgumentError, RaftError } from '@raft/core';
import type { HardState, LogEntry, LogStore, LogStoreState, LogWrite, Snapshot } from '@raft/core';
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

/** Options of {@link MemoryLogStore}. None are needed today; the type exists so options can be added without a breaking change. */
export type MemoryLogStoreOptions = Record<never, never>;

function copyEntry(e: LogEntry): LogEntry {
  // A fresh object and a fresh byte array: neither the caller's later changes nor
  // changes to what a read returned reach the stored entry.
  return { index: e.index, term: e.term, type: e.type, data: new Uint8Array(e.data) };
}

function copySnapshot(s: Snapshot): Snapshot {
  return { meta: copySnapshotMeta(s.meta), data: new Uint8Array(s.data) };
}

function closedError(): RaftError {
  return new RaftError('RAFT_STORAGE_CLOSED', 'the log store is not open: call open() first');
}

/**
 * A {@link LogStore} held in memory: for tests, examples and ephemeral clusters. It
 * survives `close()` and `open()` on the same object, not the end of the process.
 *
 * The log is an array of the entries from `firstIndex` on, next to the latest
 * snapshot; reads and writes copy entry and snapshot data, so no caller can change
 * what is stored through a reference it holds. Writes apply in the order they are
 * called, each validated against the log as the writes before it left it.
 *
 * @example
 * ```ts
 * const log = new MemoryLogStore();
 * await log.open();
 * await log.write({ hardState: { term: 1, votedFor: 'n1' }, entries: [{ index: 1, term: 1, type: 'noop', data: new Uint8Array() }] });
 * ```
 */
export class MemoryLogStore implements LogStore {
  #open = false;
  #hardState: HardState = { term: 0, votedFor: null };
  /** Index of `#log[0]`: 1, or the index after the compaction point or the snapshot that emptied the log. */
  #firstIndex = 1;
  /** `#log[i]` holds the entry of index `#firstIndex + i`. */
  #log: LogEntry[] = [];
  /** The latest snapshot (the store's own copy), if any. */
  #snapshot: Snapshot | undefined;

  /** @param _options reserved; see {@link MemoryLogStoreOptions}. */
  constructor(_options: MemoryLogStoreOptions = {}) {}

  /** Opens the store (again, after `close`, with the same contents) and returns what it holds. */
  open(): Promise<LogStoreState> {
    this.#open = true;
    return Promise.resolve(this.#state());
  }

  /**
   * Applies a batch: the hard state, if given; then the snapshot, which replaces the
   * stored one and, unless the log holds its last entry (same index and term), empties
   * the log, which goes on after it; then the entries, which first remove every entry
   * at or after the first one's index. Rejects with `RAFT_INVALID_ARGUMENT`, changing
   * nothing, when the batch is malformed or would leave a gap.
   */
  write(batch: LogWrite): Promise<void> {
    // A throw inside the executor becomes the rejection.
    return new Promise((resolve) => {
      this.#write(batch);
      resolve();
    });
  }

  /** The entries with `from <= index < to`, in order, as copies. Compacted indexes are skipped. */
  entries(from: number, to: number): Promise<LogEntry[]> {
    return new Promise((resolve) => {
      if (!this.#open) throw closedError();
      checkRange(from, to);
      const lo = Math.max(from, this.#firstIndex);
      const hi = Math.min(to, this.#lastIndex() + 1);
      const out: LogEntry[] = [];
      for (let i = lo; i < hi; i++) out.push(copyEntry(this.#log[i - this.#firstIndex]!));
      resolve(out);
    });
  }

  /** The latest snapshot (a copy), or undefined when none was written. */
  loadSnapshot(): Promise<Snapshot | undefined> {
    return new Promise((resolve) => {
      if (!this.#open) throw closedError();
      resolve(this.#snapshot === undefined ? undefined : copySnapshot(this.#snapshot));
    });
  }

  /**
   * Removes every entry with index `<= upTo`; `firstIndex` becomes `upTo + 1` (no-op when
   * `upTo < firstIndex`). Rejects with `RAFT_INVALID_ARGUMENT` when `upTo` is beyond the
   * stored snapshot's index, or no snapshot is stored.
   */
  compact(upTo: number): Promise<void> {
    return new Promise((resolve) => {
      if (!this.#open) throw closedError();
      checkCompact(upTo, this.#snapshot?.meta.index);
      if (upTo >= this.#firstIndex) {
        this.#log = this.#log.slice(upTo + 1 - this.#firstIndex);
        this.#firstIndex = upTo + 1;
      }
      resolve();
    });
  }

  /** Closes the store; its contents stay in this object for the next `open`. Idempotent. */
  close(): Promise<void> {
    this.#open = false;
    return Promise.resolve();
  }

  #lastIndex(): number {
    return this.#firstIndex + this.#log.length - 1;
  }

  #state(): LogStoreState {
    const state: LogStoreState = {
      hardState: { ...this.#hardState },
      firstIndex: this.#firstIndex,
      lastIndex: this.#lastIndex(),
    };
    if (this.#snapshot !== undefined) state.snapshot = copySnapshotMeta(this.#snapshot.meta);
    return state;
  }

  /** The term of entry `index` when this log (or its snapshot) knows it. */
  #term(index: number): number | undefined {
    if (index >= this.#firstIndex && index <= this.#lastIndex())
      return this.#log[index - this.#firstIndex]!.term;
    return index === this.#snapshot?.meta.index ? this.#snapshot.meta.term : undefined;
  }

  #write(batch: LogWrite): void {
    if (!this.#open) throw closedError();
    if (typeof batch !== 'object' || batch === null)
      throw new InvalidArgumentError('a write must be an object { hardState?, snapshot?, entries? }');
    // Validate everything before changing anything: a rejected batch leaves no trace.
    const hardState = batch.hardState === undefined ? undefined : checkHardState(batch.hardState);
    const snapshot = batch.snapshot === undefined ? undefined : checkSnapshot(batch.snapshot);
    const entries = batch.entries === undefined ? [] : checkEntries(batch.entries);

    // The log as the snapshot leaves it; the entries are checked against that.
    let firstIndex = this.#firstIndex;
    let lastIndex = this.#lastIndex();
    let snapshotIndex = this.#snapshot?.meta.index;
    let emptied = false;
    if (snapshot !== undefined) {
      checkSnapshotOrder(snapshot.meta, snapshotIndex);
      // Raft §7: a snapshot whose last entry the log holds leaves the log as it is (the
      // entries it covers go with compact()); any other replaces the whole log.
      emptied = this.#term(snapshot.meta.index) !== snapshot.meta.term;
      if (emptied) {
        firstIndex = snapshot.meta.index + 1;
        lastIndex = snapshot.meta.index;
      }
      snapshotIndex = snapshot.meta.index;
    }
    const first = entries[0];
    if (first !== undefined) {
      const prev = first.index - 1;
      const prevTerm = emptied
        ? prev === snapshot!.meta.index
          ? snapshot!.meta.term
          : undefined
        : this.#term(prev);
      checkFits(first, firstIndex, lastIndex, prevTerm);
      checkAfterSnapshot(first, snapshotIndex);
    }

    if (hardState !== undefined) this.#hardState = hardState;
    if (snapshot !== undefined) {
      this.#snapshot = { meta: snapshot.meta, data: new Uint8Array(snapshot.data) };
      if (emptied) {
        this.#log = [];
        this.#firstIndex = firstIndex;
      }
    }
    if (first !== undefined) {
      // Raft §5.3: a conflicting suffix goes before the new entries are stored.
      this.#log.length = first.index - this.#firstIndex;
      for (const e of entries) this.#log.push(copyEntry(e));
    }
  }
}

/**
 * Creates a {@link MemoryLogStore}: a `LogStore` held in memory, for tests, examples
 * and ephemeral clusters.
 */
export function memoryLogStore(options: MemoryLogStoreOptions = {}): MemoryLogStore {
  return new MemoryLogStore(options);
}
