import { describe, expect, it } from 'vitest';
import { show } from './show.js';
import { UNKNOWN } from './types.js';

describe('show', () => {
  it.each<[string, unknown, string]>([
    ['strings as JSON', 'a"b', '"a\\"b"'],
    ['numbers, keeping -0', -0, '-0'],
    ['bigints', 12n, '12n'],
    ['undefined', undefined, 'undefined'],
    ['null', null, 'null'],
    ['the UNKNOWN marker', UNKNOWN, 'unknown'],
    ['other symbols', Symbol('s'), 'Symbol(s)'],
    ['functions', () => 1, '<function>'],
    ['byte arrays in hex', new Uint8Array([0, 15, 255]), '<00 0f ff>'],
    ['nested values', { a: [1, { b: true }] }, '{"a": [1, {"b": true}]}'],
  ])('renders %s', (_name, value, expected) => {
    expect(show(value)).toBe(expected);
  });

  it('shortens long byte arrays', () => {
    expect(show(new Uint8Array(40))).toMatch(/^<00( 00){31} …\(40 bytes\)>$/);
  });

  it('cuts cycles and never throws', () => {
    const cyclic: unknown[] = [];
    cyclic.push(cyclic);
    expect(show(cyclic)).toContain('…');
    const hostile = Object.defineProperty({}, 'x', {
      enumerable: true,
      get() {
        throw new Error('no');
      },
    });
    expect(show(hostile)).toBe('<unprintable>');
  });
});
