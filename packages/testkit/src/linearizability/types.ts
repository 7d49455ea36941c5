/**
 * The output of an operation whose outcome is unknown: a write that timed out, a call
 * whose connection dropped. The checker lets such an operation take effect at any time
 * after its call, or never, and passes this marker to {@link Model.step} as its output.
 * A `Symbol.for` symbol, so two copies of this package agree on it.
 */
export const UNKNOWN: unique symbol = Symbol.for('@raft/testkit/linearizability.unknown');

/** The type of {@link UNKNOWN}. */
export type Unknown = typeof UNKNOWN;

/** One call of a client on the system under test, as observed by that client. */
export interface Operation<I, O> {
  /** Who made the call. Only shown in counterexamples. */
  clientId?: string | number;
  /** What the client asked for. */
  input: I;
  /** When the call was made: any clock, as long as all operations share it. */
  call: number;
  /**
   * What came back, or {@link UNKNOWN} when the client cannot know whether the operation
   * took effect. An operation with an unknown outcome may be linearized anywhere after
   * its call, or never, whatever its `return`.
   */
  output: O | Unknown;
  /**
   * When the answer came back (`>= call`). `undefined` or `Infinity` means no answer,
   * and then `output` must be {@link UNKNOWN}.
   */
  return?: number;
}

/**
 * The sequential specification of an object, which the checker tries to reproduce every
 * history with. `step` is the whole specification; the rest are optional refinements.
 *
 * @typeParam S - the object's state. `step` must not change a state it is given (the
 *   search goes back to earlier states): return a new one.
 * @typeParam I - an operation's input.
 * @typeParam O - an operation's output.
 */
export interface Model<S, I, O> {
  /** The state before any operation. */
  init(): S;
  /**
   * Applies `input` to `state` and says whether `output` is what the object would answer.
   * `output` is {@link UNKNOWN} for an operation whose outcome is unknown: accept it, in
   * any state, and return the state the operation would produce (the checker relies on
   * such an operation being possible at any time, and drops those that can only come
   * last). Deterministic, and must not throw.
   *
   * @returns `[ok, newState]`; `newState` is ignored when `ok` is false.
   */
  step(state: S, input: I, output: O | Unknown): [ok: boolean, newState: S];
  /**
   * Splits a history into independent parts (such as one per key) that are checked
   * separately, which is much faster. Sound when operations of different parts never
   * affect each other: linearizability is then local (Herlihy and Wing, 1990).
   *
   * @default the whole history as one part
   */
  partition?(history: readonly Operation<I, O>[]): Operation<I, O>[][];
  /**
   * A string that identifies a state, for memoization. Without {@link Model.equal},
   * states with equal hashes are taken as equal, so the hash must then be a canonical
   * encoding; with `equal`, it may be any function consistent with it.
   *
   * @default none: states are compared with `equal`, or `Object.is` (which finds fewer
   *   repeated states when states are objects)
   */
  hash?(state: S): string;
  /**
   * Whether two states are the same.
   *
   * @default `Object.is`, or hash equality when {@link Model.hash} is given
   */
  equal?(a: S, b: S): boolean;
  /**
   * True for an input that never changes the state (a read). The checker drops such
   * operations when their outcome is unknown: they can always be linearized without
   * effect, and dropping them keeps the search small.
   *
   * @default every input may change the state
   */
  readOnly?(input: I): boolean;
  /**
   * One line for an operation in a counterexample, such as `get("x") -> 1`.
   *
   * @default the input and output as JSON
   */
  describeOperation?(input: I, output: O | Unknown): string;
  /**
   * A state in a counterexample.
   *
   * @default the state as JSON
   */
  describeState?(state: S): string;
}

/** Options of {@link checkOperations}. */
export interface CheckOptions {
  /**
   * Give up after this many milliseconds and answer `{ ok: 'unknown' }`. The search is
   * exponential in the worst case: its cost grows with the number of operations in
   * flight at once in a part, and above all with the number of writes with an unknown
   * outcome in it (each may or may not have taken effect). Thousands of operations from
   * a few clients check in milliseconds; a part that is not linearizable and holds more
   * than about a dozen unanswered writes can take seconds or more. Spread operations
   * over many keys to keep parts small.
   *
   * @default Infinity (no limit)
   */
  timeoutMs?: number;
}

/** What the checker found about one operation that could come after the prefix. */
export interface Candidate<I, O> {
  operation: Operation<I, O>;
  /**
   * False: the model rejects this operation's output in the state after the prefix.
   * True: it accepts it, but no order of the remaining operations works after it.
   */
  accepted: boolean;
}

/** Why a history is not linearizable: the evidence for one part of it. */
export interface Counterexample<S, I, O> {
  /** Index of the failing part among those {@link Model.partition} returned. */
  partition: number;
  /**
   * That part's operations, as checked: pending operations that can always go last are
   * dropped first (those of read-only inputs, see {@link Model.readOnly}, and those
   * called after the part's last answer).
   */
  operations: Operation<I, O>[];
  /** The longest prefix of a linearization that the search found, in order. */
  longestPrefix: Operation<I, O>[];
  /** The model's state after {@link Counterexample.longestPrefix}. */
  stateAfterPrefix: S;
  /**
   * The operations that may come next after the prefix in real-time order (none of
   * them returned before another remaining one was called). None of them leads to a
   * linearization.
   */
  candidates: Candidate<I, O>[];
  /** All of the above, for people: one operation per line. */
  description: string;
}

/** What {@link checkOperations} found. */
export type CheckResult<S, I, O> =
  /** The history is linearizable. */
  | { ok: true }
  /** It is not; the counterexample shows where. */
  | { ok: false; counterexample: Counterexample<S, I, O> }
  /** The search ran out of time ({@link CheckOptions.timeoutMs}) before an answer. */
  | { ok: 'unknown'; reason: 'timeout' };
