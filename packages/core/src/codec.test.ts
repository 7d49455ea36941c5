import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { msgpackCodec } from './codec.js';

/** msgpackr alone, configured as the codec configures it, without the codec's check. */
function msgpackrRoundTrip(v: unknown): unknown {
  const p = new Packr({ useRecords: false, moreTypes: true });
  return p.unpack(p.pack(v));
}

describe('msgpackCodec', () => {
  const codec = msgpackCodec();
  const roundTrip = (v: unknown): unknown => codec.decode(codec.encode(v));

  it('gives back what it was given: JSON of every shape, bytes, sets, dates', () => {
    const values: unknown[] = [
      {
        op: 'set',
        key: 'k',
        value: { nested: [1, 2.5, -3, null, true, 'é😀'], constructor: 'x', toString: 1 },
      },
      ['a', { b: [{}] }],
      new Uint8Array([0, 1, 255]),
      'a surrogate pair: 😀',
      new Date(0),
    ];
    for (const v of values) expect(roundTrip(v)).toEqual(v);
    expect(roundTrip(new Set([1, 2]))).toEqual(new Set([1, 2]));
    // A Map is a MessagePack map: it comes back as a plain object.
    expect(roundTrip(new Map([['a', 1]]))).toEqual({ a: 1 });
  });

  it('refuses, rather than changes, a key "__proto__" and unpaired surrogates, at any depth', () => {
    const proto = JSON.parse('{"value": {"list": [{"__proto__": {"polluted": true}}]}}') as unknown;
    expect(() => codec.encode(proto)).toThrow(/__proto__/);
    expect(() => codec.encode({ value: ['ok', '\ud800'] })).toThrow(/surrogate/);
    expect(() => codec.encode({ ['\udc00']: 1 })).toThrow(/surrogate/);
    expect(() => codec.encode(new Map([['k', 'x\udbff']]))).toThrow(/surrogate/);
    // What it would do otherwise: msgpackr renames the key.
    expect(Object.keys(msgpackrRoundTrip(JSON.parse('{"__proto__": 1}')) as object)).toEqual(['__proto_']);
  });
});
