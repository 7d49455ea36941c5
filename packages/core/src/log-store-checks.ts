/**
 * Argument checks for `LogStore` implementations (`@raft/core/log-store-checks`): every
 * store validates what it is given the same way, throwing `RAFT_INVALID_ARGUMENT`, so
 * `@raft/testkit/log-store` can hold them all to one contract.
 */
import { InvalidArgumentError } from './errors.js';
import {
  isEntryIndex,
  type Configuration,
  type EntryType,
  type HardState,
  type LogEntry,
  type Snapshot,
  type SnapshotMeta,
} from './types.js';

const ENTRY_TYPES: ReadonlySet<string> = new Set<EntryType>(['command', 'noop', 'config']);

function isTerm(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Checks the shape of a hard state; returns a copy. */
export function checkHardState(value: unknown): HardState {
  if (typeof value !== 'object' || value === null)
    throw new InvalidArgumentError('hardState must be an object { term, votedFor }');
  const { term, votedFor } = value as Record<string, unknown>;
  if (!isTerm(term))
    throw new InvalidArgumentError(`hardState.term must be a non-negative safe integer, got ${String(term)}`);
  if (votedFor !== null && typeof votedFor !== 'string')
    throw new InvalidArgumentError('hardState.votedFor must be a peer name or null');
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
    if (!isEntryIndex(index))
      throw new InvalidArgumentError(
        `entries[${i}].index must be a positive safe integer, got ${String(index)}`,
      );
    if (!isTerm(term))
      throw new InvalidArgumentError(
        `entries[${i}].term must be a non-negative safe integer, got ${String(term)}`,
      );
    if (typeof type !== 'string' || !ENTRY_TYPES.has(type))
      throw new InvalidArgumentError(`entries[${i}].type must be 'command', 'noop' or 'config'`);
    if (!(data instanceof Uint8Array))
      throw new InvalidArgumentError(`entries[${i}].data must be a Uint8Array`);
    if (prev !== undefined) {
      if (index !== prev.index + 1)
        throw new InvalidArgumentError(`entries are not consecutive: index ${index} follows ${prev.index}`);
      if (term < prev.term)
        throw new InvalidArgumentError(
          `entry ${index} has term ${term}, below the term ${prev.term} of the entry before it`,
        );
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
export function checkFits(
  first: Pick<LogEntry, 'index' | 'term'>,
  firstIndex: number,
  lastIndex: number,
  prevTerm: number | undefined,
): void {
  if (first.index < firstIndex || first.index > lastIndex + 1) {
    throw new InvalidArgumentError(
      `entries must start within [${firstIndex}, ${lastIndex + 1}], got index ${first.index}`,
    );
  }
  if (prevTerm !== undefined && first.term < prevTerm) {
    throw new InvalidArgumentError(
      `entry ${first.index} has term ${first.term}, below the term ${prevTerm} of entry ${first.index - 1}`,
    );
  }
}

/** Checks the bounds given to `entries(from, to)`: numbers, integral or infinite. */
export function checkRange(from: unknown, to: unknown): void {
  for (const [name, v] of [
    ['from', from],
    ['to', to],
  ] as const) {
    if (typeof v !== 'number' || Number.isNaN(v) || (Number.isFinite(v) && !Number.isInteger(v))) {
      throw new InvalidArgumentError(`${name} must be an integer, got ${String(v)}`);
    }
  }
}

function checkNames(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || !(value as unknown[]).every((n) => typeof n === 'string')) {
    throw new InvalidArgumentError(`${what} must be an array of peer names`);
  }
  return (value as string[]).slice();
}

/** Checks the shape of a configuration; returns a copy with exactly the fields given. */
export function checkConfiguration(value: unknown, what: string): Configuration {
  if (typeof value !== 'object' || value === null)
    throw new InvalidArgumentError(`${what} must be an object { members, learners?, outgoing? }`);
  const { members, learners, outgoing } = value as Record<string, unknown>;
  const copy: Configuration = { members: checkNames(members, `${what}.members`) };
  if (learners !== undefined) copy.learners = checkNames(learners, `${what}.learners`);
  if (outgoing !== undefined) copy.outgoing = checkNames(outgoing, `${what}.outgoing`);
  return copy;
}

/** Checks the shape of a snapshot's metadata; returns a copy. */
export function checkSnapshotMeta(value: unknown): SnapshotMeta {
  if (typeof value !== 'object' || value === null)
    throw new InvalidArgumentError('snapshot.meta must be an object { index, term, configuration }');
  const { index, term, configuration } = value as Record<string, unknown>;
  if (!isEntryIndex(index))
    throw new InvalidArgumentError(
      `snapshot.meta.index must be a positive safe integer, got ${String(index)}`,
    );
  if (!isTerm(term))
    throw new InvalidArgumentError(
      `snapshot.meta.term must be a non-negative safe integer, got ${String(term)}`,
    );
  return { index, term, configuration: checkConfiguration(configuration, 'snapshot.meta.configuration') };
}

/** Checks the shape of a snapshot; returns a copy of its metadata and its data (not copied). */
export function checkSnapshot(value: unknown): Snapshot {
  if (typeof value !== 'object' || value === null)
    throw new InvalidArgumentError('snapshot must be an object { meta, data }');
  const { meta, data } = value as Record<string, unknown>;
  if (!(data instanceof Uint8Array)) throw new InvalidArgumentError('snapshot.data must be a Uint8Array');
  return { meta: checkSnapshotMeta(meta), data };
}

/** A copy of a snapshot's metadata, its configuration included. */
export function copySnapshotMeta(meta: SnapshotMeta): SnapshotMeta {
  const { members, learners, outgoing } = meta.configuration;
  const configuration: Configuration = { members: members.slice() };
  if (learners !== undefined) configuration.learners = learners.slice();
  if (outgoing !== undefined) configuration.outgoing = outgoing.slice();
  return { index: meta.index, term: meta.term, configuration };
}

/**
 * Checks `compact(upTo)` against the stored snapshot: `upTo` is a safe integer no
 * greater than the snapshot's index (a store with no snapshot cannot compact).
 */
export function checkCompact(upTo: unknown, snapshotIndex: number | undefined): number {
  if (typeof upTo !== 'number' || !Number.isSafeInteger(upTo))
    throw new InvalidArgumentError(`compact(upTo): upTo must be a safe integer, got ${String(upTo)}`);
  if (snapshotIndex === undefined)
    throw new InvalidArgumentError(
      'compact(upTo): the store holds no snapshot, so no entry may be compacted',
    );
  if (upTo > snapshotIndex)
    throw new InvalidArgumentError(
      `compact(upTo): upTo ${upTo} is beyond the snapshot's index ${snapshotIndex}`,
    );
  return upTo;
}

/**
 * Checks a snapshot to store against the one stored: it may not go back (an older
 * snapshot than the stored one would leave the compacted entries between them nowhere).
 */
export function checkSnapshotOrder(meta: SnapshotMeta, storedIndex: number | undefined): void {
  if (storedIndex !== undefined && meta.index < storedIndex) {
    throw new InvalidArgumentError(
      `snapshot at index ${meta.index} is older than the stored one at index ${storedIndex}`,
    );
  }
}

/**
 * Checks that entries starting at `first` do not rewrite what the snapshot covers: those
 * entries are committed (Raft §7), and a log shorter than its snapshot would be inconsistent.
 */
export function checkAfterSnapshot(first: Pick<LogEntry, 'index'>, snapshotIndex: number | undefined): void {
  if (snapshotIndex !== undefined && first.index <= snapshotIndex) {
    throw new InvalidArgumentError(
      `entries must start after the snapshot's index ${snapshotIndex}, got index ${first.index}`,
    );
  }
}
