import * as zlib from 'node:zlib';

let table: Int32Array | undefined;

/** CRC-32 (IEEE 802.3, as zlib and gzip compute it) in plain JavaScript, for Node versions without `zlib.crc32`. */
export function crc32Portable(data: Uint8Array, value = 0): number {
  if (table === undefined) {
    table = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c;
    }
  }
  let crc = ~value;
  for (let i = 0; i < data.length; i++) crc = table[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}

// zlib.crc32 arrived in Node 20.15 and 22.2; this package supports every Node 20.
const native = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

/** CRC-32 of `data`: zlib's native one when the runtime has it, the portable one otherwise. */
export const crc32: (data: Uint8Array, value?: number) => number = native ?? crc32Portable;
