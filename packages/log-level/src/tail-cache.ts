import { dataLength } from './format.js';
import type { StoredEntry } from './format.js';

/**
 * The most recent entries of the log, in memory, so that the leader's replication
 * loop and the runtime's term lookups rarely read LevelDB. It holds a contiguous run
 * of entries ending at the store's `lastIndex`, within a count and a byte budget.
 * Only durable entries enter it.
 */
export class TailCache {
  #entries: StoredEntry[] = [];
  #bytes = 0;
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  /** Trimming waits for this many extra entries, so its cost is spread over many appends. */
  readonly #slack: number;

  constructor(maxEntries: number, maxBytes: number) {
    this.#maxEntries = maxEntries;
    this.#maxBytes = maxBytes;
    this.#slack = Math.max(16, maxEntries >>> 3);
  }

  /** Number of cached entries. */
  get size(): number {
    return this.#entries.length;
  }

  /** Bytes of entry data cached. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Index of the first cached entry, or undefined when empty. */
  get firstIndex(): number | undefined {
    return this.#entries[0]?.index;
  }

  clear(): void {
    this.#entries = [];
    this.#bytes = 0;
  }

  /**
   * Records that `entries` (consecutive) are now the end of the log: cached entries
   * at or after the first of them go (a truncated suffix), then they are appended.
   */
  replaceFrom(entries: readonly StoredEntry[]): void {
    const start = entries[0]?.index;
    if (start === undefined) return;
    const first = this.firstIndex;
    if (first === undefined || start < first || start > first + this.#entries.length) {
      this.clear();
    } else {
      for (let i = start - first; i < this.#entries.length; i++) this.#bytes -= dataLength(this.#entries[i]!);
      this.#entries.length = start - first;
    }
    for (const e of entries) {
      this.#entries.push(e);
      this.#bytes += dataLength(e);
    }
    this.#trim();
  }

  /** Drops every cached entry below `index` (compacted entries). */
  dropBefore(index: number): void {
    const first = this.firstIndex;
    if (first === undefined || index <= first) return;
    const drop = Math.min(index - first, this.#entries.length);
    for (let i = 0; i < drop; i++) this.#bytes -= dataLength(this.#entries[i]!);
    this.#entries.splice(0, drop);
  }

  /** The cached entry of `index`, if any. */
  get(index: number): StoredEntry | undefined {
    const first = this.firstIndex;
    return first === undefined || index < first ? undefined : this.#entries[index - first];
  }

  /** The entries `lo <= index < hi` when every one is cached, else undefined. */
  range(lo: number, hi: number): StoredEntry[] | undefined {
    const first = this.firstIndex;
    if (first === undefined || lo < first || hi > first + this.#entries.length) return undefined;
    return this.#entries.slice(lo - first, hi - first);
  }

  #trim(): void {
    const n = this.#entries.length;
    if (n <= this.#maxEntries + this.#slack && this.#bytes <= this.#maxBytes) return;
    let drop = Math.max(0, n - this.#maxEntries);
    for (let i = 0; i < drop; i++) this.#bytes -= dataLength(this.#entries[i]!);
    while (drop < n && this.#bytes > this.#maxBytes) this.#bytes -= dataLength(this.#entries[drop++]!);
    this.#entries.splice(0, drop);
  }
}
