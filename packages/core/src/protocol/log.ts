import type { LogEntry } from '../types.js';

/**
 * The protocol's view of the replicated log: every entry since the last snapshot,
 * which of them are durable (`stableIndex`), how far they are committed, and how far
 * committed entries have been handed to the runtime to apply.
 *
 * Invariants: `stableIndex <= lastIndex`, `appliedIndex <= commitIndex <= lastIndex`,
 * and no entry at or below `commitIndex` is ever truncated (Raft §5.4).
 */
export class RaftLog {
  private entries: LogEntry[];
  /** Index of the entry just before `entries[0]` (0, or a snapshot's last index). */
  private offset: number;
  private offsetTerm: number;
  #stableIndex: number;
  /** Lowest index whose content is not yet durable, or `lastIndex + 1`. */
  private unstableFrom: number;
  #commitIndex = 0;
  #appliedIndex = 0;

  constructor(stored: LogEntry[], offset = 0, offsetTerm = 0) {
    this.offset = offset;
    this.offsetTerm = offsetTerm;
    this.entries = stored.slice();
    this.#stableIndex = this.lastIndex();
    this.unstableFrom = this.lastIndex() + 1;
    this.#commitIndex = offset;
    this.#appliedIndex = offset;
  }

  /** Highest index known to be durable with the content held here. */
  get stableIndex(): number {
    return this.#stableIndex;
  }

  /** Highest index known committed. */
  get commitIndex(): number {
    return this.#commitIndex;
  }

  /** Highest index handed to the runtime to apply. */
  get appliedIndex(): number {
    return this.#appliedIndex;
  }

  /** Drops entries up to `index` (log compaction, §7); they must be applied already. */
  compact(index: number): void {
    const upTo = Math.min(index, this.#appliedIndex, this.lastIndex());
    if (upTo <= this.offset) return;
    this.offsetTerm = this.term(upTo)!;
    this.entries = this.entries.slice(upTo - this.offset);
    this.offset = upTo;
  }

  /**
   * Installs a snapshot from the leader (§7): entries it covers go; if our log held
   * its last entry, the suffix after it stays, otherwise the whole log goes.
   */
  restore(index: number, term: number): void {
    if (this.matchTerm(index, term) && index <= this.lastIndex()) {
      this.offsetTerm = term;
      this.entries = this.entries.slice(index - this.offset);
      this.offset = index;
    } else {
      this.entries = [];
      this.offset = index;
      this.offsetTerm = term;
      this.#stableIndex = index;
      this.unstableFrom = index + 1;
    }
    if (this.#stableIndex < index) this.#stableIndex = index;
    if (this.unstableFrom < index + 1) this.unstableFrom = index + 1;
    if (this.#commitIndex < index) this.#commitIndex = index;
    if (this.#appliedIndex < index) this.#appliedIndex = index;
  }

  firstIndex(): number {
    return this.offset + 1;
  }

  lastIndex(): number {
    return this.offset + this.entries.length;
  }

  lastTerm(): number {
    const last = this.entries[this.entries.length - 1];
    return last === undefined ? this.offsetTerm : last.term;
  }

  /** The term of the entry at `index`, or undefined when the log does not hold it. */
  term(index: number): number | undefined {
    if (index === this.offset) return this.offsetTerm;
    if (index < this.offset || index > this.lastIndex()) return undefined;
    return this.entries[index - this.offset - 1]?.term;
  }

  entry(index: number): LogEntry | undefined {
    if (index <= this.offset) return undefined;
    return this.entries[index - this.offset - 1];
  }

  /** Entries with `from <= index < to`, clamped to the log. */
  slice(from: number, to: number): LogEntry[] {
    const lo = Math.max(from, this.offset + 1) - this.offset - 1;
    const hi = Math.min(to, this.lastIndex() + 1) - this.offset - 1;
    return lo >= hi ? [] : this.entries.slice(lo, hi);
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /**
   * The election restriction (§5.4.1): a candidate's log is at least as up-to-date as
   * ours if its last term is higher, or equal with an index at least as high.
   */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** The first index of the term held at `index`, scanning back no further than the commit index. */
  firstIndexOfTerm(index: number): number {
    const t = this.term(index);
    let i = index;
    while (i - 1 > this.#commitIndex && i - 1 > this.offset && this.term(i - 1) === t) i--;
    return i;
  }

  /** The last index whose term is `term`, or 0 when the log holds no entry of that term. */
  lastIndexOfTerm(term: number): number {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i]!;
      if (e.term === term) return e.index;
      if (e.term < term) return 0;
    }
    return 0;
  }

  /** Appends at the end (the leader's own proposals). */
  append(entries: LogEntry[]): void {
    for (const e of entries) this.entries.push(e);
  }

  /**
   * Appends entries that follow `prevLogIndex` (already checked to match), skipping
   * those already held and truncating our log at the first conflict (§5.3). Throws if
   * that would remove a committed entry: that can only be a bug, and continuing would
   * break State Machine Safety.
   */
  appendAfter(prevLogIndex: number, incoming: LogEntry[]): void {
    let i = 0;
    for (; i < incoming.length; i++) {
      const e = incoming[i]!;
      const mine = this.term(e.index);
      if (mine === undefined || mine !== e.term) break;
    }
    if (i === incoming.length) return;
    const from = prevLogIndex + 1 + i;
    if (from <= this.#commitIndex) {
      throw new Error(
        `raft: refusing to truncate committed entry ${from} (commitIndex ${this.#commitIndex})`,
      );
    }
    this.truncateFrom(from);
    for (let j = i; j < incoming.length; j++) this.entries.push(incoming[j]!);
  }

  private truncateFrom(index: number): void {
    if (index > this.lastIndex()) return;
    this.entries.length = index - this.offset - 1;
    if (this.#stableIndex >= index) this.#stableIndex = index - 1;
    if (this.unstableFrom > index) this.unstableFrom = index;
  }

  /** Entries that must still be persisted. */
  unstable(): LogEntry[] {
    return this.slice(this.unstableFrom, this.lastIndex() + 1);
  }

  hasUnstable(): boolean {
    return this.unstableFrom <= this.lastIndex();
  }

  /** Records that entries up to `index` (as handed out by `unstable()`) are durable. */
  stableTo(index: number): void {
    if (index > this.lastIndex()) index = this.lastIndex();
    if (index > this.#stableIndex) this.#stableIndex = index;
    if (this.unstableFrom <= index) this.unstableFrom = index + 1;
  }

  commitTo(index: number): boolean {
    const to = Math.min(index, this.lastIndex());
    if (to <= this.#commitIndex) return false;
    this.#commitIndex = to;
    return true;
  }

  hasNextCommitted(): boolean {
    return this.#appliedIndex < this.#commitIndex;
  }

  /** Committed entries not yet handed out to apply. */
  nextCommitted(): LogEntry[] {
    return this.slice(this.#appliedIndex + 1, this.#commitIndex + 1);
  }

  appliedTo(index: number): void {
    if (index > this.#appliedIndex) this.#appliedIndex = Math.min(index, this.#commitIndex);
  }
}
