import {
  ElectionInProgressError,
  InvalidArgumentError,
  NotLeaderError,
  RaftError,
  StoppedError,
  TimeoutError,
} from '../errors.js';
import { normalizeMembers } from '../protocol/membership.js';
import { isPeerId, type Clock, type Configuration, type PeerId, type TimerHandle } from '../types.js';
import type { CallOptions } from './types.js';

/**
 * The call machinery of a peer: every public operation is a pending call that settles
 * exactly once, by the runtime, by its timeout, by its abort signal, or when the peer stops.
 */

/** A call waiting for the runtime to settle it. */
export interface PendingCall {
  /** For writes: the term the entry was appended in (an entry of another term at its index means it lost). */
  term: number;
  /** Whether the call has settled (its result is out; later settlements are ignored). */
  settled: boolean;
  resolve: (reply: unknown) => void;
  reject: (err: RaftError) => void;
  /** Runs once when the call settles, however: removes it from the runtime's tables. */
  done: () => void;
}

/**
 * Starts a call: checks its options, arms its timeout and abort signal, then runs `start`
 * with the pending call. Whatever `start` throws rejects the call.
 */
export function startCall<T>(
  clock: Clock,
  defaultTimeoutMs: number,
  stopped: boolean,
  opts: CallOptions | undefined,
  start: (pending: PendingCall) => void,
): Promise<T> {
  if (stopped) return Promise.reject(new StoppedError());
  let timeoutMs = defaultTimeoutMs;
  if (opts !== undefined) {
    if (typeof opts !== 'object' || opts === null)
      return Promise.reject(new InvalidArgumentError('options must be an object'));
    if (opts.timeout !== undefined) {
      if (typeof opts.timeout !== 'number' || !(opts.timeout > 0) || !Number.isFinite(opts.timeout)) {
        return Promise.reject(
          new InvalidArgumentError(
            `option timeout must be a positive number of milliseconds, got ${String(opts.timeout)}`,
          ),
        );
      }
      timeoutMs = opts.timeout;
    }
    if (opts.forward !== undefined && typeof opts.forward !== 'boolean')
      return Promise.reject(new InvalidArgumentError('option forward must be a boolean'));
    if (opts.signal !== undefined && !(opts.signal instanceof AbortSignal)) {
      return Promise.reject(new InvalidArgumentError('option signal must be an AbortSignal'));
    }
  }
  const signal = opts?.signal;
  if (signal?.aborted === true)
    return Promise.reject(new RaftError('RAFT_ABORTED', 'the call was aborted', { cause: signal.reason }));
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    let timer: TimerHandle | null = null;
    const onAbort = (): void =>
      fail(
        new RaftError('RAFT_ABORTED', 'the call was aborted; a write may still commit', {
          cause: signal?.reason,
        }),
      );
    const cleanup = (): void => {
      if (timer !== null) clock.clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const pending: PendingCall = {
      term: 0,
      get settled() {
        return settled;
      },
      resolve: (v) => {
        if (settled) return;
        settled = true;
        cleanup();
        pending.done();
        resolve(v as T);
      },
      reject: (e) => fail(e),
      done: () => undefined,
    };
    const fail = (e: RaftError): void => {
      if (settled) return;
      settled = true;
      cleanup();
      pending.done();
      reject(e);
    };
    timer = clock.setTimeout(() => fail(new TimeoutError()), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      start(pending);
    } catch (err) {
      fail(RaftError.isInstance(err) ? err : new InvalidArgumentError(String(err), { cause: err }));
    }
  });
}

/** Throws unless this peer leads: `RAFT_NOT_LEADER` naming the leader, or `RAFT_ELECTION_IN_PROGRESS`. */
export function checkLeader(isLeader: boolean, leader: PeerId | null): void {
  if (isLeader) return;
  if (leader !== null) throw new NotLeaderError(leader);
  throw new ElectionInProgressError();
}

/**
 * The error of a call this peer cannot serve as leader. `indeterminate`: a write was
 * already appended when leadership was lost, and may still commit.
 */
export function notLeaderError(self: PeerId, leader: PeerId | null, indeterminate: boolean): RaftError {
  if (leader === null || leader === self) {
    return indeterminate
      ? new NotLeaderError(null, {
          indeterminate,
          message: 'this peer lost leadership; the write may still commit',
        })
      : new ElectionInProgressError();
  }
  return new NotLeaderError(leader, {
    indeterminate,
    ...(indeterminate
      ? { message: `this peer lost leadership to ${leader}; the write may still commit` }
      : {}),
  });
}

/** Checks a member list of `setConfiguration`: non-empty, peer names, no duplicates. Returns it sorted. */
export function validateMembers(members: unknown): Configuration {
  if (!Array.isArray(members) || members.length === 0)
    throw new InvalidArgumentError('members must be a non-empty array of peer names');
  const seen = new Set<string>();
  for (const m of members) {
    if (!isPeerId(m)) throw new InvalidArgumentError(`members: ${JSON.stringify(m)} is not a peer name`);
    if (seen.has(m)) throw new InvalidArgumentError(`members: ${m} appears twice`);
    seen.add(m);
  }
  return normalizeMembers(members as PeerId[]);
}
