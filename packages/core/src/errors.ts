import type { PeerId } from './types.js';

const MARKER = Symbol.for('raft.error');

/**
 * Every error code the library throws. Codes are the contract: they never change
 * within a major version; messages may.
 */
export type RaftErrorCode =
  /** This peer is not the leader; `leader` names the leader when known. */
  | 'RAFT_NOT_LEADER'
  /** No leader is known right now. */
  | 'RAFT_ELECTION_IN_PROGRESS'
  /** No answer in time; a write may still commit later. */
  | 'RAFT_TIMEOUT'
  /** No peer of that name runs in this process. */
  | 'RAFT_NO_PEER'
  /** The peer stopped while the call was pending, or was already stopped. */
  | 'RAFT_STOPPED'
  /** Bad input: an option, an argument, a member list. The message names it. */
  | 'RAFT_INVALID_ARGUMENT'
  /** The call was aborted through its `AbortSignal`. A write may still commit later. */
  | 'RAFT_ABORTED'
  /** The user's state machine threw while applying a command or answering a query. */
  | 'RAFT_STATE_MACHINE_ERROR'
  /** A configuration change is already in progress. */
  | 'RAFT_CONFIG_CHANGE_IN_PROGRESS'
  /**
   * Never produced: a message from the network that fails validation is counted and
   * dropped, never turned into an error. Kept so code naming it still compiles.
   * @deprecated
   */
  | 'RAFT_MALFORMED_MESSAGE'
  /** The log store found corrupt data (a bad checksum, a gap); `index` names the entry when known. */
  | 'RAFT_STORAGE_CORRUPT'
  /** The log store's directory is locked by another process. */
  | 'RAFT_STORAGE_LOCKED'
  /** The log store cannot be opened or written: missing or unreadable directory, I/O failure. */
  | 'RAFT_STORAGE_UNAVAILABLE'
  /** The log store is closed (or not yet opened). */
  | 'RAFT_STORAGE_CLOSED'
  /** The transport is closed, or cannot listen (for example, the port is in use). */
  | 'RAFT_TRANSPORT_UNAVAILABLE'
  /**
   * Not produced by any package of this repository yet (transport-ws refuses a peer that
   * fails authentication by closing its connection). Kept so code naming it still compiles.
   * @deprecated
   */
  | 'RAFT_AUTH_FAILED'
  /** A client session (`withSessions`) expired or forgot this seq: the command was not applied. */
  | 'RAFT_SESSION_EXPIRED'
  /** An idempotency key was used before with another request: the command was not applied. */
  | 'RAFT_IDEMPOTENCY_MISMATCH';

/** Options common to every {@link RaftError}. */
export interface RaftErrorOptions {
  /** The underlying failure, when this error wraps one. */
  cause?: unknown;
}

/**
 * The base of every error the library throws. Check `code`, not the message or the
 * class: `RaftError.isInstance(err) && err.code === 'RAFT_NOT_LEADER'`.
 *
 * One way to create each error: a code with a subclass below (`RAFT_NOT_LEADER`,
 * `RAFT_ELECTION_IN_PROGRESS`, `RAFT_TIMEOUT`, `RAFT_NO_PEER`, `RAFT_STOPPED`,
 * `RAFT_INVALID_ARGUMENT`) is only ever created through it; every other code as
 * `new RaftError(code, message, { cause })`.
 */
export class RaftError extends Error {
  /** Stable, machine-readable code. */
  readonly code: RaftErrorCode;
  private readonly [MARKER] = true;

  constructor(code: RaftErrorCode, message: string, options?: RaftErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RaftError';
    this.code = code;
  }

  /** True for any RaftError, even one created by another copy of this package. */
  static isInstance(error: unknown): error is RaftError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[MARKER] === true;
  }
}

/** Thrown when this peer is not the leader. */
export class NotLeaderError extends RaftError {
  /** The leader this peer knows of, or null. */
  readonly leader: PeerId | null;
  /**
   * True when the command had already been appended to the log when this peer lost
   * leadership: it may still commit. Retrying such a write may apply it twice.
   */
  readonly indeterminate: boolean;
  constructor(
    leader: PeerId | null,
    options?: RaftErrorOptions & { indeterminate?: boolean; message?: string },
  ) {
    super(
      'RAFT_NOT_LEADER',
      options?.message ??
        (leader === null
          ? 'this peer is not the leader'
          : `this peer is not the leader; the leader is ${leader}`),
      options,
    );
    this.name = 'NotLeaderError';
    this.leader = leader;
    this.indeterminate = options?.indeterminate ?? false;
  }
}

/** Thrown when no leader is known. */
export class ElectionInProgressError extends RaftError {
  constructor(message = 'no leader is known: an election is in progress', options?: RaftErrorOptions) {
    super('RAFT_ELECTION_IN_PROGRESS', message, options);
    this.name = 'ElectionInProgressError';
  }
}

/** Thrown when a call had no answer in time. A write may still commit. */
export class TimeoutError extends RaftError {
  constructor(message = 'the operation timed out; a write may still commit', options?: RaftErrorOptions) {
    super('RAFT_TIMEOUT', message, options);
    this.name = 'TimeoutError';
  }
}

/** Thrown when no peer of the given name runs in this process. */
export class NoPeerError extends RaftError {
  readonly peer: string;
  constructor(peer: string) {
    super('RAFT_NO_PEER', `no peer named ${JSON.stringify(peer)} runs in this process`);
    this.name = 'NoPeerError';
    this.peer = peer;
  }
}

/** Thrown when the peer stopped while the call was pending, or was already stopped. */
export class StoppedError extends RaftError {
  constructor(message = 'the peer is stopped', options?: RaftErrorOptions) {
    super('RAFT_STOPPED', message, options);
    this.name = 'StoppedError';
  }
}

/** Thrown for bad input. The message names the option or argument. */
export class InvalidArgumentError extends RaftError {
  constructor(message: string, options?: RaftErrorOptions) {
    super('RAFT_INVALID_ARGUMENT', message, options);
    this.name = 'InvalidArgumentError';
  }
}
