import { InvalidArgumentError, RaftError } from '@raft/core';
import { UNKNOWN, type Operation } from './types.js';

/** What became of a call that threw: no effect for sure, or perhaps an effect. */
export type FailureKind = 'fail' | 'unknown';

/** Options of {@link createHistoryRecorder}. */
export interface HistoryRecorderOptions {
  /**
   * The clock that stamps calls and returns; a simulator passes its virtual clock.
   *
   * @default `performance.now`
   */
  now?: () => number;
  /**
   * Classifies an error thrown by the call that {@link HistoryRecorder.record} wraps.
   * Saying `fail` for a call that may have taken effect makes the checker report false
   * violations; when in doubt, say `unknown`.
   *
   * @default {@link classifyRaftError}
   */
  classify?: (error: unknown) => FailureKind;
}

/** Collects a concurrent history as clients make calls. */
export interface HistoryRecorder<I, O> {
  /** Stamps the call of an operation and returns its id, to complete it with later. */
  invoke(clientId: string | number, input: I): number;
  /**
   * The operation returned `output`. `ok`, `fail` and `unknown` throw
   * `RAFT_INVALID_ARGUMENT` for an id that is not in flight.
   */
  ok(id: number, output: O): void;
  /** The operation failed without effect: it leaves the history. */
  fail(id: number): void;
  /** The outcome is unknown (a timeout, a lost connection): it may take effect later, or never. */
  unknown(id: number): void;
  /**
   * Runs `call` as one operation: stamps it, awaits it, records its output or, when it
   * throws, classifies the error (see {@link HistoryRecorderOptions.classify}) and
   * rethrows it.
   */
  record(clientId: string | number, input: I, call: () => Promise<O>): Promise<O>;
  /** The history so far. Operations still in flight are included with an unknown outcome. */
  operations(): Operation<I, O>[];
}

/**
 * The default classification of a failed call of `@raft/core`: `fail` (no effect) only
 * for errors raised before anything reached the log (`RAFT_NOT_LEADER` that is not
 * `indeterminate`, `RAFT_ELECTION_IN_PROGRESS`, `RAFT_NO_PEER`, `RAFT_INVALID_ARGUMENT`),
 * `unknown` for everything else (`RAFT_TIMEOUT`, `RAFT_ABORTED`, `RAFT_STOPPED`, ...).
 */
export function classifyRaftError(error: unknown): FailureKind {
  if (!RaftError.isInstance(error)) return 'unknown';
  switch (error.code) {
    case 'RAFT_NOT_LEADER':
      return (error as { indeterminate?: unknown }).indeterminate === true ? 'unknown' : 'fail';
    case 'RAFT_ELECTION_IN_PROGRESS':
    case 'RAFT_NO_PEER':
    case 'RAFT_INVALID_ARGUMENT':
      return 'fail';
    default:
      return 'unknown';
  }
}

interface Slot<I, O> {
  op: Operation<I, O>;
  state: 'pending' | 'done' | 'failed';
}

/**
 * Creates a {@link HistoryRecorder}. Record the call just before sending a request and
 * the return just after the answer arrives, so that each interval contains the moment
 * the operation took effect.
 *
 * @example
 * ```ts
 * const history = createHistoryRecorder<KVModelInput, KVModelOutput>();
 * await history.record('client-1', { op: 'set', key: 'x', value: 1 }, () => set(leader, 'x', 1));
 * expect(checkOperations(kvModel, history.operations()).ok).toBe(true);
 * ```
 */
export function createHistoryRecorder<I, O>(options: HistoryRecorderOptions = {}): HistoryRecorder<I, O> {
  const now = options.now ?? (() => performance.now());
  const classify = options.classify ?? classifyRaftError;
  const slots: Slot<I, O>[] = [];

  const pending = (id: number): Slot<I, O> => {
    const slot = slots[id];
    if (slot === undefined || slot.state !== 'pending') {
      throw new InvalidArgumentError(`operation ${id} is not in flight`);
    }
    return slot;
  };

  const recorder: HistoryRecorder<I, O> = {
    invoke(clientId, input) {
      slots.push({ op: { clientId, input, call: now(), output: UNKNOWN }, state: 'pending' });
      return slots.length - 1;
    },
    ok(id, output) {
      const slot = pending(id);
      slot.op.output = output;
      slot.op.return = now();
      slot.state = 'done';
    },
    fail(id) {
      pending(id).state = 'failed';
    },
    unknown(id) {
      const slot = pending(id);
      slot.op.return = now();
      slot.state = 'done';
    },
    async record(clientId, input, call) {
      const id = recorder.invoke(clientId, input);
      let output: O;
      try {
        output = await call();
      } catch (error) {
        if (classify(error) === 'fail') recorder.fail(id);
        else recorder.unknown(id);
        throw error;
      }
      recorder.ok(id, output);
      return output;
    },
    operations() {
      return slots.filter((slot) => slot.state !== 'failed').map((slot) => ({ ...slot.op }));
    },
  };
  return recorder;
}
