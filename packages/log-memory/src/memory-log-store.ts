import { InvalidArgumentError, RaftError } from '@raft/core';
import type { HardState, LogEntry, LogStore, LogStoreState, LogWrite } from '@raft/core';
import { checkEntries, checkFits, checkHardState, checkRange } from './validate.js';

/** Options of {@link MemoryLogStore}. None are needed today; the type exists so options can be added without a breaking change. */
export type MemoryLogStoreOptions = Record<never, never>;

function copyEntry(e: LogEntry): LogEntry {
  // A fresh object and a fresh byte array: neither the caller's later changes nor
  // changes to what a read returned reach the stored entry.
  return { index: e.index, term: e.term, type: e.type, data: new Uint8Array(e.data) };
}

function closedError(): RaftError {
  return new RaftError('RAFT_STORAGE_CLOSED', 'the log store is not open: call open() first');
}

/**
 * A {@link LogStore} held in memory: for tests, examples and ephemeral clusters. It
 * survives `close()` and `open()` on the same object, not the end of the process.
 *
 * The log is an array; reads and writes copy entry data, so no caller can change
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
  /** `#log[i]` holds the entry of index `i + 1`: this store never compacts, so `firstIndex` is 1. */
  readonly #log: LogEntry[] = [];

  /** @param _options reserved; see {@link MemoryLogStoreOptions}. */
  constructor(_options: MemoryLogStoreOptions = {}) {}

  /** Opens the store (again, after `close`, with the same contents) and returns what it holds. */
  open(): Promise<LogStoreState> {
    this.#open = true;
    return Promise.resolve(this.#state());
  }

  /**
   * Applies a batch: the hard state, if given, then the entries, which first remove
   * every entry at or after the first one's index. Rejects with
   * `RAFT_INVALID_ARGUMENT`, changing nothing, when the batch is malformed or would
   * leave a gap.
   */
  write(batch: LogWrite): Promise<void> {
    // A throw inside the executor becomes the rejection.
    return new Promise((resolve) => {
      this.#write(batch);
      resolve();
    });
  }

  /** The entries with `from <= index < to`, in order, as copies. */
  entries(from: number, to: number): Promise<LogEntry[]> {
    return new Promise((resolve) => {
      if (!this.#open) throw closedError();
      checkRange(from, to);
      const lo = Math.max(from, 1);
      const hi = Math.min(to, this.#log.length + 1);
      const out: LogEntry[] = [];
      for (let i = lo; i < hi; i++) out.push(copyEntry(this.#log[i - 1]!));
      resolve(out);
    });
  }

  /** Closes the store; its contents stay in this object for the next `open`. Idempotent. */
  close(): Promise<void> {
    this.#open = false;
    return Promise.resolve();
  }

  #state(): LogStoreState {
    return { hardState: { ...this.#hardState }, firstIndex: 1, lastIndex: this.#log.length };
  }

  #write(batch: LogWrite): void {
    if (!this.#open) throw closedError();
    if (typeof batch !== 'object' || batch === null) throw new InvalidArgumentError('a write must be an object { hardState?, entries? }');
    // Validate everything before changing anything: a rejected batch leaves no trace.
    const hardState = batch.hardState === undefined ? undefined : checkHardState(batch.hardState);
    const entries = batch.entries === undefined ? [] : checkEntries(batch.entries);
    const first = entries[0];
    if (first !== undefined) checkFits(first, 1, this.#log.length, this.#log[first.index - 2]?.term);

    if (hardState !== undefined) this.#hardState = hardState;
    if (first !== undefined) {
      // Raft §5.3: a conflicting suffix goes before the new entries are stored.
      this.#log.length = first.index - 1;
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
