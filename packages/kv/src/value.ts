/**
 * A value the store holds: anything JSON can carry, plus byte arrays.
 *
 * With `@raft/core`'s default codec, a write whose value has an object key `"__proto__"`
 * or a string with an unpaired UTF-16 surrogate is refused (`RAFT_INVALID_ARGUMENT`):
 * MessagePack would not give it back exactly.
 *
 * Numbers must be finite (JSON has no `NaN` or `Infinity`); objects must be plain
 * (`{}` or `Object.create(null)`), so `Date`, `Map`, class instances and the like are
 * refused. Nesting is limited to {@link MAX_VALUE_DEPTH} levels.
 */
export type KVValue =
  null | boolean | number | string | Uint8Array | readonly KVValue[] | { readonly [key: string]: KVValue };

/**
 * How deeply arrays and objects may nest in a value. A fixed limit, rather than
 * whatever the call stack allows, keeps validation deterministic on every peer.
 */
export const MAX_VALUE_DEPTH = 100;

/** Why a value was refused. */
class BadValue {
  constructor(readonly message: string) {}
}

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Walks `value` once: checks that it is a {@link KVValue} and, when `copy` is set,
 * builds a private copy whose arrays and objects are frozen and whose byte arrays are
 * fresh `Uint8Array`s (never `Buffer`s that share memory with a decoded log entry).
 */
function walk(value: unknown, depth: number, copy: boolean): KVValue | BadValue {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : new BadValue('numbers must be finite');
    case 'object': {
      if (value === null) return null;
      if (value instanceof Uint8Array) return copy ? new Uint8Array(value) : value;
      if (depth >= MAX_VALUE_DEPTH) return new BadValue(`values may nest at most ${MAX_VALUE_DEPTH} levels`);
      if (Array.isArray(value)) {
        const out: KVValue[] = copy ? new Array<KVValue>(value.length) : [];
        for (let i = 0; i < value.length; i++) {
          const item = walk(value[i], depth + 1, copy);
          if (item instanceof BadValue) return item;
          if (copy) out[i] = item;
        }
        return copy ? Object.freeze(out) : (value as KVValue[]);
      }
      if (!isPlainObject(value)) return new BadValue('objects must be plain objects');
      const keys = Object.keys(value);
      const entries: [string, KVValue][] = [];
      for (const key of keys) {
        const item = walk(value[key], depth + 1, copy);
        if (item instanceof BadValue) return item;
        if (copy) entries.push([key, item]);
      }
      // Object.fromEntries defines own properties, so a key such as "__proto__"
      // stays a key instead of replacing the prototype.
      return copy ? Object.freeze(Object.fromEntries(entries)) : (value as Record<string, KVValue>);
    }
    default:
      return new BadValue(`a value may not be ${value === undefined ? 'undefined' : `a ${typeof value}`}`);
  }
}

/** Returns why `value` is not a {@link KVValue}, or `undefined` when it is one. */
export function validateValue(value: unknown): string | undefined {
  const result = walk(value, 0, false);
  return result instanceof BadValue ? result.message : undefined;
}

/**
 * Returns a frozen private copy of `value` for the store, or the reason it is not a
 * {@link KVValue}.
 */
export function copyValue(value: unknown): { value: KVValue } | { error: string } {
  const result = walk(value, 0, true);
  return result instanceof BadValue ? { error: result.message } : { value: result };
}

function isBytes(value: KVValue): value is Uint8Array {
  return value instanceof Uint8Array;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Structural equality of two values, as `cas` compares `expected` with the current
 * value: primitives with `===` (so `0` equals `-0`), arrays element by element, byte
 * arrays byte by byte (a `Buffer` equals a `Uint8Array` of the same bytes), objects by
 * their own enumerable keys in any order. An array never equals an object or a byte
 * array. Deterministic, and does not throw for any two values that passed validation.
 */
export function deepEqual(a: KVValue, b: KVValue): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (isBytes(a) || isBytes(b)) return isBytes(a) && isBytes(b) && bytesEqual(a, b);
  const aIsArray = Array.isArray(a);
  if (aIsArray !== Array.isArray(b)) return false;
  if (aIsArray) {
    const x = a as readonly KVValue[];
    const y = b as readonly KVValue[];
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (!deepEqual(x[i] as KVValue, y[i] as KVValue)) return false;
    return true;
  }
  const x = a as { readonly [key: string]: KVValue };
  const y = b as { readonly [key: string]: KVValue };
  const keys = Object.keys(x);
  if (keys.length !== Object.keys(y).length) return false;
  for (const key of keys) {
    if (!Object.prototype.hasOwnProperty.call(y, key)) return false;
    if (!deepEqual(x[key] as KVValue, y[key] as KVValue)) return false;
  }
  return true;
}
