import { show } from './show.js';
import { UNKNOWN, type Model, type Operation, type Unknown } from './types.js';

/**
 * An operation on a key-value store, shaped like `@raft/kv`'s commands and query (its
 * `KVCommand` and `KVQuery` values fit). Values are JSON values or `Uint8Array`s.
 */
export type KVModelInput =
  | { op: 'get'; key: string }
  | { op: 'set'; key: string; value: unknown }
  | { op: 'delete'; key: string }
  | { op: 'cas'; key: string; expected: unknown; value: unknown };

/**
 * A reply, shaped like `@raft/kv`'s (its `KVReply` values fit):
 * `{ ok: true, value }` for get, set and cas (`value` may be left out for set and cas),
 * `{ ok: true }` for delete, `{ ok: false, error: 'key_not_found' }`, and
 * `{ ok: false, error: 'cas_mismatch', value }` (`value`, the current value, may be
 * left out). Any other error, such as `bad_command`, is never a valid output: record
 * operations that failed without effect as absent from the history instead.
 */
export interface KVModelOutput {
  ok: boolean;
  value?: unknown;
  error?: string;
}

/** One key's state: absent, or present with a value. */
export type KVModelState = { present: false } | { present: true; value: unknown };

const ABSENT: KVModelState = Object.freeze({ present: false });

const canonicalCache = new WeakMap<object, string>();

/**
 * A canonical encoding: two values get the same string exactly when they are
 * structurally equal as `@raft/kv` compares them (`0` and `-0` equal, byte arrays by
 * content, object keys in any order). Each kind of value has its own prefix and strings
 * are JSON-quoted, so the encoding is injective. Memoized per object, since a
 * history's states share their values with its inputs.
 */
function canonical(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return `d${value === 0 ? 0 : value}`;
    case 'boolean':
      return value ? 't' : 'f';
    case 'undefined':
      return 'u';
    case 'bigint':
      return `i${value}`;
    case 'object': {
      if (value === null) return 'n';
      const cached = canonicalCache.get(value);
      if (cached !== undefined) return cached;
      let encoded: string;
      if (value instanceof Uint8Array) {
        encoded = `b${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')};`;
      } else if (Array.isArray(value)) {
        encoded = `[${value.map(canonical).join(',')}]`;
      } else {
        const record = value as Record<string, unknown>;
        const keys = Object.keys(record).sort();
        encoded = `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(record[k])}`).join(',')}}`;
      }
      canonicalCache.set(value, encoded);
      return encoded;
    }
    default:
      // Functions and symbols are not values of a store; compare them by identity-ish name.
      return `x${String(value)}`;
  }
}

/** Structural equality, defined by the canonical encoding so that it agrees with `hash`. */
function same(a: unknown, b: unknown): boolean {
  return a === b || canonical(a) === canonical(b);
}

function present(value: unknown): KVModelState {
  return { present: true, value };
}

/** The value a successful reply carries, if it carries one. */
function hasValue(output: KVModelOutput): boolean {
  return output.value !== undefined;
}

function step(
  state: KVModelState,
  input: KVModelInput,
  output: KVModelOutput | Unknown,
): [boolean, KVModelState] {
  const unknown = output === UNKNOWN;
  const out = output as KVModelOutput;
  switch (input.op) {
    case 'get':
      if (unknown) return [true, state];
      if (out.ok) return [state.present && same(state.value, out.value), state];
      return [out.error === 'key_not_found' && !state.present, state];
    case 'set': {
      if (unknown) return [true, present(input.value)];
      return [out.ok && (!hasValue(out) || same(out.value, input.value)), present(input.value)];
    }
    case 'delete':
      if (unknown) return [true, ABSENT];
      if (out.ok) return [state.present, ABSENT];
      return [out.error === 'key_not_found' && !state.present, state];
    case 'cas': {
      const matches = state.present && same(state.value, input.expected);
      const after = matches ? present(input.value) : state;
      if (unknown) return [true, after];
      if (out.ok) return [matches && (!hasValue(out) || same(out.value, input.value)), after];
      if (out.error === 'key_not_found') return [!state.present, state];
      if (out.error === 'cas_mismatch')
        return [state.present && !matches && (!hasValue(out) || same(out.value, state.value)), state];
      return [false, state];
    }
    default:
      return [false, state];
  }
}

function describeOperation(input: KVModelInput, output: KVModelOutput | Unknown): string {
  const key = show(input.key);
  const call =
    input.op === 'set'
      ? `set(${key}, ${show(input.value)})`
      : input.op === 'cas'
        ? `cas(${key}, ${show(input.expected)}, ${show(input.value)})`
        : `${String((input as { op: unknown }).op)}(${key})`;
  if (output === UNKNOWN) return `${call} -> unknown`;
  if (output.ok) return input.op === 'get' ? `${call} -> ${show(output.value)}` : `${call} -> ok`;
  const current =
    output.error === 'cas_mismatch' && output.value !== undefined ? ` (current ${show(output.value)})` : '';
  return `${call} -> ${String(output.error)}${current}`;
}

function partitionByKey(
  history: readonly Operation<KVModelInput, KVModelOutput>[],
): Operation<KVModelInput, KVModelOutput>[][] {
  const byKey = new Map<string, Operation<KVModelInput, KVModelOutput>[]>();
  for (const op of history) {
    const key = op.input.key;
    let part = byKey.get(key);
    if (part === undefined) byKey.set(key, (part = []));
    part.push(op);
  }
  return [...byKey.values()];
}

/**
 * The model of a key-value store such as `@raft/kv`: get, set, delete and
 * compare-and-set on independent keys. Histories are split by key (keys never affect
 * each other), each key starts absent, and values are compared structurally.
 * Unanswered gets are dropped; an unanswered set, delete or cas may take effect at any
 * time after its call, or never.
 *
 * @example
 * ```ts
 * const result = checkOperations(kvModel, history, { timeoutMs: 10_000 });
 * if (result.ok === false) throw new Error(result.counterexample.description);
 * ```
 */
export const kvModel: Model<KVModelState, KVModelInput, KVModelOutput> = Object.freeze({
  init: (): KVModelState => ABSENT,
  step,
  partition: partitionByKey,
  hash: (state: KVModelState): string => (state.present ? `p${canonical(state.value)}` : 'a'),
  readOnly: (input: KVModelInput): boolean => input.op === 'get',
  describeOperation,
  describeState: (state: KVModelState): string => (state.present ? show(state.value) : 'absent'),
});
