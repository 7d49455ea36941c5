import { InvalidArgumentError, seededRandom } from '@raft/core';
import { show } from './show.js';
import {
  UNKNOWN,
  type Candidate,
  type CheckOptions,
  type CheckResult,
  type Counterexample,
  type Model,
  type Operation,
  type Unknown,
} from './types.js';

/*
 * The search is Wing and Gong's (1993) with the memoization of Lowe (2017), as in
 * Porcupine: walk the history's calls and returns in time order as a linked list; try to
 * linearize each operation whose call comes before the first pending return; on success
 * remove it and start over; when a return is reached whose operation is not linearized,
 * undo the last choice. A set of (linearized operations, state) pairs already explored
 * prunes the search: the same pair always leads to the same outcome.
 */

/** Where the search of one part ended. */
type PartResult = { kind: 'ok' } | { kind: 'timeout' } | { kind: 'fail'; longest: number[] };

/**
 * A (linearized set, state) pair the search reached. The set is kept as its count of
 * leading full words and the words after them up to the last non-zero one: operations
 * are numbered by call time, so the set is mostly a prefix and an entry stays small.
 */
interface CacheEntry<S> {
  lead: number;
  tail: Uint32Array;
  stateKey: string;
  state: S;
}

const noKey = (): string => '';
const alwaysEqual = (): boolean => true;

function isPending<I, O>(op: Operation<I, O>): boolean {
  return op.output === UNKNOWN;
}

/** The time the checker uses as the operation's return: Infinity when the outcome is unknown. */
function effectiveReturn<I, O>(op: Operation<I, O>): number {
  return isPending(op) ? Infinity : (op.return as number);
}

function validate<I, O>(history: readonly Operation<I, O>[]): void {
  if (!Array.isArray(history)) throw new InvalidArgumentError('history must be an array of operations');
  history.forEach((item: unknown, i) => {
    if (typeof item !== 'object' || item === null)
      throw new InvalidArgumentError(`operation ${i} is not an object`);
    const op = item as Operation<I, O>;
    if (typeof op.call !== 'number' || !Number.isFinite(op.call)) {
      throw new InvalidArgumentError(`operation ${i}: call must be a finite number`);
    }
    const ret = op.return;
    if (ret === undefined || ret === Infinity) {
      if (op.output !== UNKNOWN) {
        throw new InvalidArgumentError(`operation ${i} has no return time, so its output must be UNKNOWN`);
      }
    } else if (typeof ret !== 'number' || Number.isNaN(ret) || ret < op.call) {
      throw new InvalidArgumentError(`operation ${i}: return must be a number >= call, or undefined`);
    }
  });
}

/**
 * Searches for a linearization of one part. Returns the longest linearizable prefix
 * found (as indexes into `part`) when there is none.
 */
function checkPart<S, I, O>(
  model: Model<S, I, O>,
  part: readonly Operation<I, O>[],
  deadline: number,
): PartResult {
  const n = part.length;
  if (n === 0) return { kind: 'ok' };
  // Number operations by call time (see CacheEntry); `order` maps back to `part`.
  const order = Array.from({ length: n }, (_, i) => i).sort(
    (a, b) => (part[a] as Operation<I, O>).call - (part[b] as Operation<I, O>).call || a - b,
  );
  const ops = order.map((i) => part[i] as Operation<I, O>);

  // Events in time order: event 2i is the call of operation i, 2i + 1 its return. At
  // equal times calls come first, so operations that touch are concurrent (as in Porcupine).
  const returns = ops.map(effectiveReturn);
  const events = Array.from({ length: 2 * n }, (_, e) => e);
  const timeOf = (e: number): number =>
    (e & 1) === 0 ? (ops[e >> 1] as Operation<I, O>).call : (returns[e >> 1] as number);
  events.sort((a, b) => timeOf(a) - timeOf(b) || (a & 1) - (b & 1) || a - b);

  // A doubly linked list over nodes 1..2n in event order; node 0 is the head, -1 the end.
  const size = 2 * n + 1;
  const next = new Int32Array(size);
  const prev = new Int32Array(size);
  const nodeOp = new Int32Array(size);
  const isCall = new Uint8Array(size);
  const match = new Int32Array(size); // call node -> its return node
  const returnNode = new Int32Array(n);
  for (let p = 1; p < size; p++) {
    const e = events[p - 1] as number;
    nodeOp[p] = e >> 1;
    if ((e & 1) === 0) isCall[p] = 1;
    else returnNode[e >> 1] = p;
  }
  for (let p = 1; p < size; p++) if (isCall[p] === 1) match[p] = returnNode[nodeOp[p] as number] as number;
  for (let p = 0; p < size; p++) {
    next[p] = p + 1 < size ? p + 1 : -1;
    prev[p] = p - 1;
  }

  // Removes a call and its return from the list; undone in reverse order by unlift.
  const lift = (p: number): void => {
    next[prev[p] as number] = next[p] as number;
    prev[next[p] as number] = prev[p] as number;
    const m = match[p] as number;
    next[prev[m] as number] = next[m] as number;
    if (next[m] !== -1) prev[next[m] as number] = prev[m] as number;
  };
  const unlift = (p: number): void => {
    const m = match[p] as number;
    next[prev[m] as number] = m;
    if (next[m] !== -1) prev[next[m] as number] = m;
    next[prev[p] as number] = p;
    prev[next[p] as number] = p;
  };

  // The linearized set as a bitset, with a 30-bit Zobrist hash (a small integer, which
  // Map hashes fastest) kept up to date. `lead` counts the leading full words, `high`
  // is the last non-zero word; buckets compare the words in between.
  const words = (n + 31) >>> 5;
  const bits = new Uint32Array(words);
  let lead = 0;
  let high = -1;
  const setBit = (i: number): void => {
    const w = i >>> 5;
    bits[w] = (bits[w] as number) | (1 << (i & 31));
    if (w > high) high = w;
    if (w === lead) while (lead < words && bits[lead] === 0xffffffff) lead++;
  };
  const clearBit = (i: number): void => {
    const w = i >>> 5;
    bits[w] = (bits[w] as number) & ~(1 << (i & 31));
    if (w < lead) lead = w;
    if (w === high) while (high >= 0 && bits[high] === 0) high--;
  };
  const sameSet = (entry: CacheEntry<S>): boolean => {
    if (entry.lead !== lead || entry.tail.length !== Math.max(0, high + 1 - lead)) return false;
    for (let k = 0; k < entry.tail.length; k++) if (entry.tail[k] !== bits[lead + k]) return false;
    return true;
  };
  // Fixed Zobrist keys for the bitset's hash (30 bits each).
  const random = seededRandom(0x5eed);
  const zobrist = new Int32Array(n).map(() => Math.floor(random() * 0x40000000));
  let hash = 0;

  // Without a hash, states are told apart by `equal` alone (Object.is by default).
  const stateKeyOf = model.hash ? (s: S): string => (model.hash as (state: S) => string)(s) : noKey;
  const statesEqual = model.equal
    ? (a: S, b: S): boolean => (model.equal as (x: S, y: S) => boolean)(a, b)
    : model.hash
      ? alwaysEqual
      : Object.is;
  const cache = new Map<number, CacheEntry<S>[]>();

  const stackNode = new Int32Array(n);
  const stackState: S[] = new Array<S>(n);
  let top = 0;
  // The deepest stack seen, copied incrementally: entries below `unchangedBelow` have
  // not been popped since the last copy, so only the rest is copied (no O(n²)).
  const longest = new Int32Array(n);
  let longestLength = 0;
  let unchangedBelow = 0;

  let state = model.init();
  let p = next[0] as number;
  let iterations = 0;
  while (next[0] !== -1) {
    if ((++iterations & 0x3ff) === 0 && deadline !== Infinity && performance.now() > deadline)
      return { kind: 'timeout' };
    if (isCall[p] === 1) {
      const op = nodeOp[p] as number;
      const operation = ops[op] as Operation<I, O>;
      const [ok, newState] = model.step(state, operation.input, operation.output);
      let advanced = false;
      if (ok) {
        setBit(op);
        const newHash = hash ^ (zobrist[op] as number);
        const stateKey = stateKeyOf(newState);
        let bucket = cache.get(newHash);
        let seen = false;
        if (bucket !== undefined) {
          for (const entry of bucket) {
            if (entry.stateKey === stateKey && sameSet(entry) && statesEqual(entry.state, newState)) {
              seen = true;
              break;
            }
          }
        }
        if (!seen) {
          if (bucket === undefined) cache.set(newHash, (bucket = []));
          bucket.push({ lead, tail: bits.slice(lead, Math.max(lead, high + 1)), stateKey, state: newState });
          stackNode[top] = p;
          stackState[top] = state;
          top++;
          state = newState;
          hash = newHash;
          lift(p);
          p = next[0] as number;
          advanced = true;
        } else {
          clearBit(op);
        }
      }
      if (!advanced) p = next[p] as number;
    } else {
      // A return whose operation is not linearized yet: this order is a dead end.
      if (top > longestLength) {
        for (let k = unchangedBelow; k < top; k++)
          longest[k] = order[nodeOp[stackNode[k] as number] as number] as number;
        longestLength = top;
        unchangedBelow = top;
      }
      if (top === 0) return { kind: 'fail', longest: Array.from(longest.subarray(0, longestLength)) };
      top--;
      if (top < unchangedBelow) unchangedBelow = top;
      const node = stackNode[top] as number;
      state = stackState[top] as S;
      stackState[top] = undefined as S; // let the garbage collector have it
      const op = nodeOp[node] as number;
      clearBit(op);
      hash ^= zobrist[op] as number;
      unlift(node);
      p = next[node] as number;
    }
  }
  return { kind: 'ok' };
}

function describeWith<S, I, O>(model: Model<S, I, O>): (op: Operation<I, O>) => string {
  const describe = model.describeOperation
    ? (input: I, output: O | Unknown): string =>
        (model.describeOperation as (i: I, o: O | Unknown) => string)(input, output)
    : (input: I, output: O | Unknown): string => `${show(input)} -> ${show(output)}`;
  return (op) => {
    const client = op.clientId === undefined ? '' : `client ${String(op.clientId)}: `;
    const end = isPending(op) ? 'unknown outcome' : `return ${op.return as number}`;
    return `${client}${describe(op.input, op.output)}   [call ${op.call}, ${end}]`;
  };
}

/** Builds the counterexample of a failed part from the longest prefix the search found. */
function counterexample<S, I, O>(
  model: Model<S, I, O>,
  partition: number,
  ops: Operation<I, O>[],
  longest: number[],
): Counterexample<S, I, O> {
  const describeOp = describeWith(model);
  const describeState = model.describeState
    ? (s: S): string => (model.describeState as (state: S) => string)(s)
    : (s: S): string => show(s);

  const longestPrefix = longest.map((i) => ops[i] as Operation<I, O>);
  let state = model.init();
  for (const op of longestPrefix) state = model.step(state, op.input, op.output)[1];

  const inPrefix = new Set(longest);
  const remaining = ops.filter((_, i) => !inPrefix.has(i));
  const firstReturn = remaining.reduce((min, op) => Math.min(min, effectiveReturn(op)), Infinity);
  const candidates: Candidate<I, O>[] = remaining
    .filter((op) => op.call <= firstReturn)
    .map((operation) => ({ operation, accepted: model.step(state, operation.input, operation.output)[0] }));

  const lines = [
    `Not linearizable: part ${partition} (${ops.length} operations) has no linearization.`,
    `Longest linearizable prefix found (${longestPrefix.length} operations):`,
    ...(longestPrefix.length === 0
      ? ['  (none)']
      : longestPrefix.map((op, i) => `  ${i + 1}. ${describeOp(op)}`)),
    `State after it: ${describeState(state)}`,
    'None of the operations that may come next works:',
    ...candidates.map(
      (c) =>
        `  - ${describeOp(c.operation)}: ${c.accepted ? 'possible here, but no order of the rest works after it' : 'impossible in this state'}`,
    ),
  ];
  return {
    partition,
    operations: ops,
    longestPrefix,
    stateAfterPrefix: state,
    candidates,
    description: lines.join('\n'),
  };
}

/**
 * Drops pending operations that can always be linearized last, where they affect no
 * answered operation: reads (the model says which), and any operation called after the
 * last answer of the part. Each pending operation dropped halves the worst-case search.
 */
function prune<S, I, O>(model: Model<S, I, O>, ops: readonly Operation<I, O>[]): Operation<I, O>[] {
  let lastReturn = -Infinity;
  for (const op of ops) if (!isPending(op)) lastReturn = Math.max(lastReturn, op.return as number);
  return ops.filter((op) => !isPending(op) || (op.call <= lastReturn && model.readOnly?.(op.input) !== true));
}

/**
 * Checks that a history is linearizable with respect to `model`: that its operations
 * can be put in one order, consistent with real time (an operation that returned before
 * another was called comes first), in which `model.step` accepts every output.
 *
 * An operation whose output is {@link UNKNOWN} may take effect at any time after its
 * call, or never. One whose output is known takes effect between its call and return.
 * Operations that touch (one's return equals another's call) count as concurrent.
 *
 * Synchronous; parts ({@link Model.partition}) are checked one after the other, and the
 * first that fails is reported.
 *
 * @throws `RAFT_INVALID_ARGUMENT` when an operation is malformed: `call` not a finite
 *   number, `return` before `call`, or no `return` with an output other than UNKNOWN.
 */
export function checkOperations<S, I, O>(
  model: Model<S, I, O>,
  history: readonly Operation<I, O>[],
  options: CheckOptions = {},
): CheckResult<S, I, O> {
  validate(history);
  const timeoutMs = options.timeoutMs ?? Infinity;
  if (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs) || timeoutMs < 0) {
    throw new InvalidArgumentError('timeoutMs must be a number >= 0');
  }
  const deadline = timeoutMs === Infinity ? Infinity : performance.now() + timeoutMs;
  const parts = model.partition ? model.partition(history) : [history.slice()];
  let timedOut = false;
  for (let i = 0; i < parts.length; i++) {
    const ops = prune(model, parts[i] ?? []);
    const result = checkPart(model, ops, timedOut ? -Infinity : deadline);
    if (result.kind === 'fail')
      return { ok: false, counterexample: counterexample(model, i, ops, result.longest) };
    // Later parts still run (each stops at its first time check), since one that fails
    // quickly is a definite answer.
    if (result.kind === 'timeout') timedOut = true;
  }
  return timedOut ? { ok: 'unknown', reason: 'timeout' } : { ok: true };
}
