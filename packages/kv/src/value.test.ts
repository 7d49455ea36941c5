import { describe, expect, it } from 'vitest';
import { copyValue, deepEqual, MAX_VALUE_DEPTH, validateValue, type KVValue } from './value.js';

function nested(depth: number): KVValue {
  let value: KVValue = 1;
  for (let i = 0; i < depth; i++) value = [value];
  return value;
}

describe('validateValue', () => {
  it.each<[string, unknown]>([
    ['null', null],
    ['true', true],
    ['a number', 1.5],
    ['zero', -0],
    ['a string', ''],
    ['bytes', new Uint8Array([1, 2])],
    ['a Buffer', Buffer.from([1])],
    ['an array', [1, 'a', null, [true]]],
    ['a plain object', { a: 1, b: { c: [] } }],
    ['a prototype-free object', Object.assign(Object.create(null) as object, { a: 1 })],
    [`nesting of ${MAX_VALUE_DEPTH} levels`, nested(MAX_VALUE_DEPTH)],
  ])('accepts %s', (_name, value) => {
    expect(validateValue(value)).toBeUndefined();
  });

  it.each<[string, unknown]>([
    ['undefined', undefined],
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['a bigint', 1n],
    ['a function', () => 1],
    ['a symbol', Symbol('x')],
    ['a Date', new Date(0)],
    ['a Map', new Map()],
    ['a class instance', new (class Point {})()],
    ['an array holding undefined', [1, undefined]],
    ['a sparse array', [1, , 3]], // eslint-disable-line no-sparse-arrays
    ['an object holding a function', { f: () => 1 }],
    [`nesting deeper than ${MAX_VALUE_DEPTH} levels`, nested(MAX_VALUE_DEPTH + 1)],
  ])('refuses %s', (_name, value) => {
    expect(validateValue(value)).toEqual(expect.any(String));
  });

  it('refuses a cyclic value instead of overflowing the stack', () => {
    const cyclic: unknown[] = [];
    cyclic.push(cyclic);
    expect(validateValue(cyclic)).toMatch(/nest/);
  });
});

describe('copyValue', () => {
  it('returns an equal, deeply frozen copy that shares nothing with the input', () => {
    const input = { a: [1, { b: 'x' }], bytes: Buffer.from([7, 8]) };
    const result = copyValue(input);
    if (!('value' in result)) throw new Error(result.error);
    const copy = result.value as { a: [number, { b: string }]; bytes: Uint8Array };
    expect(deepEqual(copy, input)).toBe(true);
    expect(copy).not.toBe(input);
    expect(Object.isFrozen(copy)).toBe(true);
    expect(Object.isFrozen(copy.a)).toBe(true);
    expect(Object.isFrozen(copy.a[1])).toBe(true);
    // Bytes are copied into a plain Uint8Array, not a view of the (decoded) input.
    expect(copy.bytes.constructor).toBe(Uint8Array);
    input.bytes[0] = 0;
    expect(copy.bytes[0]).toBe(7);
  });

  it('keeps "__proto__" as an ordinary key', () => {
    const input = JSON.parse('{"__proto__": {"polluted": true}, "x": 1}') as unknown;
    const result = copyValue(input);
    if (!('value' in result)) throw new Error(result.error);
    const copy = result.value as Record<string, unknown>;
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype);
    expect(Object.keys(copy)).toEqual(['__proto__', 'x']);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('reports why a value is refused', () => {
    expect(copyValue({ a: [1, NaN] })).toEqual({ error: expect.stringMatching(/finite/) as unknown });
  });
});

describe('deepEqual', () => {
  it.each<[string, KVValue, KVValue]>([
    ['equal primitives', 'a', 'a'],
    ['0 and -0', 0, -0],
    ['objects with keys in another order', { a: 1, b: [1, 2] }, { b: [1, 2], a: 1 }],
    ['nested arrays', [[1], [2, [3]]], [[1], [2, [3]]]],
    ['a Buffer and a Uint8Array of the same bytes', Buffer.from([1, 2]), new Uint8Array([1, 2])],
    ['empty object and empty prototype-free object', {}, Object.create(null) as Record<string, KVValue>],
  ])('holds for %s', (_name, a, b) => {
    expect(deepEqual(a, b)).toBe(true);
    expect(deepEqual(b, a)).toBe(true);
  });

  it.each<[string, KVValue, KVValue]>([
    ['1 and "1"', 1, '1'],
    ['null and an empty object', null, {}],
    ['an array and an object with index keys', [1], { 0: 1 }],
    ['an array and bytes', [1, 2], new Uint8Array([1, 2])],
    ['bytes of different lengths', new Uint8Array([1]), new Uint8Array([1, 0])],
    ['bytes that differ', new Uint8Array([1, 2]), new Uint8Array([1, 3])],
    ['arrays in another order', [1, 2], [2, 1]],
    ['objects with a missing key', { a: 1 }, { a: 1, b: 2 }],
    ['objects with the same count of different keys', { a: 1 }, { b: 1 }],
    ['objects with a different value', { a: { b: 1 } }, { a: { b: 2 } }],
  ])('fails for %s', (_name, a, b) => {
    expect(deepEqual(a, b)).toBe(false);
    expect(deepEqual(b, a)).toBe(false);
  });
});
