/**
 * The acknowledgement file: the number of the last batch the store acknowledged, and the
 * log's last index then, kept outside LevelDB in `RAFT-ACKED` in the store's directory.
 *
 * A damaged write-ahead log loses its last records whole, watermark included: what
 * LevelDB returns then is an older, consistent store, and nothing inside LevelDB can tell.
 * This file can. It is overwritten in place after each synced batch, before the batch's
 * writes resolve, and never synced itself: it survives a process crash (`kill -9`), and
 * after a power loss it may be older than LevelDB, never newer, so it never reports a
 * loss that did not happen. A torn or unreadable file is ignored (it proves nothing).
 */
import { closeSync, openSync, readFileSync, writeSync, constants } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from './crc32.js';

export const ACK_FILE = 'RAFT-ACKED';
const LENGTH = 24;
const MAGIC = 0x52414b31; // 'RAK1'

/** The last acknowledged batch: its number and the log's last index after it. */
export interface Acked {
  batch: number;
  lastIndex: number;
}

function encode(a: Acked): Buffer {
  const buf = Buffer.alloc(LENGTH);
  buf.writeUInt32BE(MAGIC, 4);
  buf.writeBigUInt64BE(BigInt(a.batch), 8);
  buf.writeBigUInt64BE(BigInt(a.lastIndex), 16);
  buf.writeUInt32BE(crc32(buf.subarray(4)), 0);
  return buf;
}

/** Reads the file in `location`: undefined when it is absent, torn or not ours. */
export function readAcked(location: string): Acked | undefined {
  let buf: Buffer;
  try {
    buf = readFileSync(join(location, ACK_FILE));
  } catch {
    return undefined;
  }
  if (
    buf.length < LENGTH ||
    buf.readUInt32BE(4) !== MAGIC ||
    buf.readUInt32BE(0) !== crc32(buf.subarray(4, LENGTH))
  )
    return undefined;
  const batch = Number(buf.readBigUInt64BE(8));
  const lastIndex = Number(buf.readBigUInt64BE(16));
  return Number.isSafeInteger(batch) && Number.isSafeInteger(lastIndex) ? { batch, lastIndex } : undefined;
}

/** The open file, written after each batch. */
export class AckFile {
  readonly #fd: number;
  constructor(location: string) {
    this.#fd = openSync(join(location, ACK_FILE), constants.O_RDWR | constants.O_CREAT, 0o644);
  }
  /** Overwrites the record in place (one small write, no sync: see the module comment). */
  write(acked: Acked): void {
    writeSync(this.#fd, encode(acked), 0, LENGTH, 0);
  }
  close(): void {
    closeSync(this.#fd);
  }
}
