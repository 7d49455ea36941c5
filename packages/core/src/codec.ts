import { Packr } from 'msgpackr';
import type { Codec } from './types.js';

/** With the `u` flag, a surrogate pair is one code point: this matches only unpaired halves. */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Why msgpackr would not give `value` back as it was, or undefined. Its decoder renames
 * an object key `__proto__` to `__proto_` (its guard against prototype pollution), and a
 * string with an unpaired surrogate is not Unicode text: UTF-8 cannot carry it, and it
 * comes back as replacement characters. An acknowledged write must store exactly what was
 * written, so the codec refuses such values rather than change them.
 */
function notRoundTripping(value: unknown): string | undefined {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') {
      if (LONE_SURROGATE.test(v)) return 'a string holds an unpaired UTF-16 surrogate (not Unicode text)';
    } else if (typeof v === 'object' && v !== null && !ArrayBuffer.isView(v)) {
      if (Array.isArray(v)) {
        for (const item of v) stack.push(item);
      } else if (v instanceof Map) {
        for (const [k, item] of v) stack.push(k, item);
      } else if (v instanceof Set) {
        for (const item of v) stack.push(item);
      } else if (!(v instanceof Date) && !(v instanceof RegExp) && !(v instanceof Error)) {
        for (const key of Object.keys(v)) {
          if (key === '__proto__') return 'an object has a key "__proto__"';
          if (LONE_SURROGATE.test(key))
            return 'an object key holds an unpaired UTF-16 surrogate (not Unicode text)';
          stack.push((v as Record<string, unknown>)[key]);
        }
      }
    }
  }
  return undefined;
}

/**
 * The default {@link Codec}: MessagePack through `msgpackr`, which keeps `Uint8Array`,
 * `Date` and `Set` intact (a `Map` comes back as a plain object) and is several times
 * smaller and faster than JSON.
 *
 * `encode` throws for a value it would not give back exactly: an object with a key
 * `"__proto__"`, or a string (or key) with an unpaired UTF-16 surrogate. `write` then
 * rejects with `RAFT_INVALID_ARGUMENT` and nothing reaches the log.
 */
export function msgpackCodec(): Codec {
  const packr = new Packr({ useRecords: false, moreTypes: true });
  return {
    encode: (value) => {
      const problem = notRoundTripping(value);
      if (problem !== undefined) throw new TypeError(`this value cannot be stored exactly: ${problem}`);
      return packr.pack(value);
    },
    decode: (bytes) => packr.unpack(bytes) as unknown,
  };
}
