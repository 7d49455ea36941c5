import { RaftError } from '@raft/core';
import type { RaftErrorOptions } from '@raft/core';

/**
 * The store found corrupt data: a checksum that does not match, a missing entry, an
 * entry stored under the wrong index. Code `RAFT_STORAGE_CORRUPT`; `index` names the
 * entry when one is to blame.
 */
export class StorageCorruptError extends RaftError {
  /** The index of the corrupt or missing entry; undefined when the hard state or the metadata is to blame. */
  readonly index: number | undefined;

  constructor(message: string, options: RaftErrorOptions & { index?: number }) {
    super('RAFT_STORAGE_CORRUPT', message, options);
    this.name = 'StorageCorruptError';
    this.index = options.index;
  }
}

export function closedError(): RaftError {
  return new RaftError('RAFT_STORAGE_CLOSED', 'the log store is not open: call open() first');
}

function levelCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Turns a failure of `ClassicLevel.open` into a RaftError. abstract-level reports
 * every open failure as LEVEL_DATABASE_NOT_OPEN with the reason (LEVEL_LOCKED,
 * LEVEL_CORRUPTION, LEVEL_IO_ERROR, ...) as its cause; that reason becomes ours.
 */
export function openError(location: string, error: unknown): RaftError {
  const reason = (error as { cause?: unknown } | null)?.cause ?? error;
  switch (levelCode(reason)) {
    case 'LEVEL_LOCKED':
      return new RaftError(
        'RAFT_STORAGE_LOCKED',
        `the log store at ${location} is locked: another process (or another store in this one) has it open`,
        { cause: reason },
      );
    case 'LEVEL_CORRUPTION':
      return new StorageCorruptError(`LevelDB found the log store at ${location} corrupt`, { cause: reason });
    default:
      return new RaftError(
        'RAFT_STORAGE_UNAVAILABLE',
        `cannot open the log store at ${location}: ${reason instanceof Error ? reason.message : String(reason)}`,
        { cause: reason },
      );
  }
}
