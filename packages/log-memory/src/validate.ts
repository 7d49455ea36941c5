import { InvalidArgumentError } from '@raft/core';
import type { EntryType, HardState, LogEntry } from '@raft/core';

const ENTRY_TYPES: ReadonlySet<string> = new Set<EntryType>(['command', 'noop', 'config']);

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
}

function isTerm(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Checks the shape of a hard state; returns a copy. */
export function checkHardState(value: unknown): HardState {
  if (typeof value !== 'object' || value === null) throw new InvalidArgumentError('hardState must be an object { term, votedFor }');
  const { term, votedFor } = value as Record<string, unknown>;
  if (!isTerm(term)) throw new InvalidArgumentError(`hardState.term must be a non-negative safe integer, got ${String(term)}`);
  if (votedFor !== null && typeof votedFor !== 'string') throw new InvalidArgumentError('hardState.votedFor must be a peer name or null');
  return { term, votedFor };
}

/**
 * Checks the shape of a batch of entries, alone: every field typed, indexes
 * consecutive, terms never decreasing. Whether the batch fits the log is checked by
 * {@link checkFits}. Returns the entries array (not copied).
 */
export function checkEntries(value: unknown): LogEntry[] {
  if (!Array.isArray(value)) throw new InvalidArgumentError('entries must be an array');
  const entries = value as unknown[];
  let prev: LogEntry | undefined;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (typeof e !== 'object' || e === null) throw new InvalidArgumentError(`entries[${i}] is not an object`);
    const { index, term, type, data } = e as Record<string, unknown>;
    if (!isIndex(index)) throw new InvalidArgumentError(`entries[${i}].index must be a positive safe integer, got ${String(index)}`);
    if (!isTerm(term)) throw new InvalidArgumentError(`entries[${i}].term must be a non-negative safe integer, got ${String(term)}`);
    if (typeof type !== 'string' || !ENTRY_TYPES.has(type)) throw new InvalidArgumentError(`entries[${i}].type must be 'command', 'noop' or 'config'`);
    if (!(data instanceof Uint8Array)) throw new InvalidArgumentError(`entries[${i}].data must be a Uint8Array`);
    if (prev !== undefined) {
      if (index !== prev.index + 1) throw new InvalidArgumentError(`entries are not consecutive: index ${index} follows ${prev.index}`);
      if (term < prev.term) throw new InvalidArgumentError(`entry ${index} has term ${term}, below the term ${prev.term} of the entry before it`);
    }
    prev = e as LogEntry;
  }
  return entries as LogEntry[];
}

/**
 * Checks that entries starting with `first` can be written to a log holding
 * `firstIndex..lastIndex`: no gap, and a term no smaller than that of the entry
 * before (`prevTerm`, undefined when there is none).
 */
export function checkFits(first: Pick<LogEntry, 'index' | 'term'>, firstIndex: number, lastIndex: number, prevTerm: number | undefined): void {
  if (first.index < firstIndex || first.index > lastIndex + 1) {
    throw new InvalidArgumentError(`entries must start within [${firstIndex}, ${lastIndex + 1}], got index ${first.index}`);
  }
  if (prevTerm !== undefined && first.term < prevTerm) {
    throw new InvalidArgumentError(`entry ${first.index} has term ${first.term}, below the term ${prevTerm} of entry ${first.index - 1}`);
  }
}

/** Checks the bounds given to `entries(from, to)`: numbers, integral or infinite. */
export function checkRange(from: unknown, to: unknown): void {
  for (const [name, v] of [['from', from], ['to', to]] as const) {
    if (typeof v !== 'number' || Number.isNaN(v) || (Number.isFinite(v) && !Number.isInteger(v))) {
      throw new InvalidArgumentError(`${name} must be an integer, got ${String(v)}`);
    }
  }
}
