/**
 * The on-disk layout. Every key starts with one byte naming what it holds; every value
 * starts with a CRC-32 of the rest of the value and a format version.
 *
 * | key                          | value                                                                    |
 * |------------------------------|--------------------------------------------------------------------------|
 * | `c`                          | crc32, version 1, index (u64), term (u64), data length (u64), chunks (u32), configuration (JSON) |
 * | `c` + chunk number (u32 BE)  | crc32, version 1, snapshot index (u64), snapshot term (u64), chunk number (u32), data |
 * | `e` + index (u64 big-endian) | crc32, version 1, type (u8), index (u64), term (u64), data               |
 * | `h`                          | crc32, version 1, term (u64), has vote (u8), vote (UTF-8)                 |
 * | `m`                          | crc32, version 1, firstIndex (u64)                                       |
 * | `w`                          | crc32, version 1, batch number (u64), firstIndex, lastIndex, snapshot index (u64 each), hard state as under `h` |
 *
 * Big-endian indexes sort in LevelDB's bytewise order, so a range of keys is a range of
 * the log and the last key is the last entry. The index repeated inside the entry's value
 * lets a read detect a value stored under the wrong key.
 *
 * The latest snapshot (Raft §7) is its metadata under `c` and its data cut into chunks of
 * {@link SNAPSHOT_CHUNK_BYTES} under the keys after it, so one LevelDB iterator over `c..d`
 * reads a snapshot whole and consistent, and no single value grows to tens of megabytes.
 * Each chunk names its snapshot and its place, so a chunk left from another snapshot or
 * out of place is detected; each carries its own CRC-32.
 *
 * The watermark `w` goes down in every batch: what the store holds once that batch is in
 * (batch number, ends of the log, snapshot, hard state). `open()` checks what LevelDB
 * returns against it, and against the batch number last acknowledged, which the store
 * also keeps outside LevelDB (see `ack-file.ts`): LevelDB recovers a damaged write-ahead
 * log or table by dropping records, and what it drops must not go unnoticed. It is the one
 * key every batch rewrites (the cost the paragraph below avoids for the others): a small
 * value, and it keeps a lost acknowledged write from passing for a shorter log.
 *
 * The metadata is written when the store is created and again only when `firstIndex`
 * moves (compaction, or a snapshot that empties the log), the hard state only when it changes: a key
 * rewritten by every batch would land in every table LevelDB flushes, make every
 * table's key range overlap every other's, and turn compactions that now merely move
 * tables of ascending entry keys down a level into merges that rewrite them.
 */
import { RaftError } from '@raft/core';
import type { Configuration, EntryType, HardState, LogEntry, Snapshot, SnapshotMeta } from '@raft/core';
import { crc32 } from './crc32.js';
import { StorageCorruptError } from './errors.js';

/** The format this version writes, and the newest it reads. */
export const FORMAT_VERSION = 1;

const SNAPSHOT_TAG = 0x63; // 'c'
const ENTRY_TAG = 0x65; // 'e'
const HARD_STATE_TAG = 0x68; // 'h'
const META_TAG = 0x6d; // 'm'
const WATERMARK_TAG = 0x77; // 'w'

/** Bytes before an entry's data. */
export const ENTRY_HEADER = 22;
const HARD_STATE_HEADER = 14;
const META_LENGTH = 13;
const SNAPSHOT_HEADER = 33;
const CHUNK_HEADER = 25;

/** Bytes of snapshot data per stored chunk. */
export const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;

const TWO_32 = 0x1_0000_0000;

const TYPE_CODES: Record<EntryType, number> = { command: 0, noop: 1, config: 2 };
const TYPES: readonly EntryType[] = ['command', 'noop', 'config'];

export const HARD_STATE_KEY: Uint8Array = Uint8Array.of(HARD_STATE_TAG);
export const META_KEY: Uint8Array = Uint8Array.of(META_TAG);
export const WATERMARK_KEY: Uint8Array = Uint8Array.of(WATERMARK_TAG);
/** Every entry key is at or above this one, and below {@link ENTRY_KEYS_END}. */
export const ENTRY_KEYS_START: Uint8Array = Uint8Array.of(ENTRY_TAG);
export const ENTRY_KEYS_END: Uint8Array = Uint8Array.of(ENTRY_TAG + 1);
/** The snapshot's metadata; its chunks' keys follow it, all below {@link SNAPSHOT_KEYS_END}. */
export const SNAPSHOT_KEY: Uint8Array = Uint8Array.of(SNAPSHOT_TAG);
export const SNAPSHOT_KEYS_END: Uint8Array = Uint8Array.of(SNAPSHOT_TAG + 1);

/** Writes a safe integer as 8 bytes, big-endian (plain byte stores: the hot path of every append). */
function writeU64(buf: Uint8Array, value: number, offset: number): void {
  const hi = Math.floor(value / TWO_32);
  const lo = value >>> 0;
  buf[offset] = hi >>> 24;
  buf[offset + 1] = (hi >>> 16) & 0xff;
  buf[offset + 2] = (hi >>> 8) & 0xff;
  buf[offset + 3] = hi & 0xff;
  buf[offset + 4] = lo >>> 24;
  buf[offset + 5] = (lo >>> 16) & 0xff;
  buf[offset + 6] = (lo >>> 8) & 0xff;
  buf[offset + 7] = lo & 0xff;
}

function readU64(buf: Buffer, offset: number): number {
  return buf.readUInt32BE(offset) * TWO_32 + buf.readUInt32BE(offset + 4);
}

function asBuffer(view: Uint8Array): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

/** Writes the version, then the checksum of everything after the checksum itself. */
function seal(buf: Buffer): Buffer {
  buf[4] = FORMAT_VERSION;
  const crc = crc32(buf.subarray(4));
  buf[0] = crc >>> 24;
  buf[1] = (crc >>> 16) & 0xff;
  buf[2] = (crc >>> 8) & 0xff;
  buf[3] = crc & 0xff;
  return buf;
}

/** True when the stored checksum matches the rest of the value. */
function intact(buf: Buffer, minLength: number): boolean {
  return buf.length >= minLength && buf.readUInt32BE(0) === crc32(buf.subarray(4));
}

export function entryKey(index: number): Buffer {
  const key = Buffer.allocUnsafe(9);
  key[0] = ENTRY_TAG;
  writeU64(key, index, 1);
  return key;
}

export function indexOfKey(key: Uint8Array): number {
  return readU64(asBuffer(key), 1);
}

/** An entry as the store keeps it: its fields, and its encoded value (what LevelDB stores), which holds the data. */
export interface StoredEntry {
  index: number;
  term: number;
  type: EntryType;
  /** The encoded value; the entry's data is its bytes from {@link ENTRY_HEADER} on. */
  value: Uint8Array;
}

/** The data of a stored entry: a view into its value, as a plain Uint8Array. */
export function dataOf(e: StoredEntry): Uint8Array {
  return new Uint8Array(e.value.buffer, e.value.byteOffset + ENTRY_HEADER, e.value.byteLength - ENTRY_HEADER);
}

/** Bytes of data a stored entry holds. */
export function dataLength(e: StoredEntry): number {
  return e.value.byteLength - ENTRY_HEADER;
}

/** Encodes an entry (copying its data: the caller keeps no handle on what is stored). */
export function encodeEntry(entry: LogEntry): StoredEntry {
  const value = Buffer.allocUnsafe(ENTRY_HEADER + entry.data.length);
  value[5] = TYPE_CODES[entry.type];
  writeU64(value, entry.index, 6);
  writeU64(value, entry.term, 14);
  value.set(entry.data, ENTRY_HEADER);
  seal(value);
  return { index: entry.index, term: entry.term, type: entry.type, value };
}

/**
 * Decodes the value stored for entry `index`, checking its checksum, version and
 * fields. Throws {@link StorageCorruptError} naming `index`.
 */
export function decodeEntry(raw: Uint8Array, index: number): StoredEntry {
  const buf = asBuffer(raw);
  if (!intact(buf, ENTRY_HEADER))
    throw new StorageCorruptError(`entry ${index} fails its checksum`, { index });
  if (buf[4] !== FORMAT_VERSION)
    throw new StorageCorruptError(`entry ${index} has unknown format version ${buf[4]}`, { index });
  const type = TYPES[buf[5]!];
  const storedIndex = readU64(buf, 6);
  const term = readU64(buf, 14);
  if (storedIndex !== index)
    throw new StorageCorruptError(
      `entry ${index} is missing: the value found in its place is entry ${storedIndex}'s`,
      { index },
    );
  if (type === undefined || !Number.isSafeInteger(term))
    throw new StorageCorruptError(`entry ${index} is malformed`, { index });
  return { index, term, type, value: raw };
}

export function encodeHardState(hs: HardState): Buffer {
  const vote = hs.votedFor === null ? null : Buffer.from(hs.votedFor, 'utf8');
  const buf = Buffer.allocUnsafe(HARD_STATE_HEADER + (vote?.length ?? 0));
  writeU64(buf, hs.term, 5);
  buf[13] = vote === null ? 0 : 1;
  if (vote !== null) vote.copy(buf, HARD_STATE_HEADER);
  return seal(buf);
}

export function decodeHardState(raw: Uint8Array): HardState {
  const buf = asBuffer(raw);
  if (!intact(buf, HARD_STATE_HEADER) || buf[4] !== FORMAT_VERSION || buf[13]! > 1) {
    throw new StorageCorruptError('the stored hard state (term and vote) fails its checksum', {});
  }
  const term = readU64(buf, 5);
  if (!Number.isSafeInteger(term)) throw new StorageCorruptError('the stored hard state is malformed', {});
  return { term, votedFor: buf[13] === 0 ? null : buf.toString('utf8', HARD_STATE_HEADER) };
}

/** What the store records about itself. */
export interface Meta {
  version: number;
  /** Index of the first entry the log holds, or will hold when empty. */
  firstIndex: number;
}

export function encodeMeta(firstIndex: number): Buffer {
  const buf = Buffer.allocUnsafe(META_LENGTH);
  writeU64(buf, firstIndex, 5);
  return seal(buf);
}

/** Decodes the metadata. Throws `RAFT_STORAGE_UNAVAILABLE` for a newer format, {@link StorageCorruptError} for damage. */
export function decodeMeta(raw: Uint8Array): Meta {
  const buf = asBuffer(raw);
  if (!intact(buf, 5)) throw new StorageCorruptError('the store metadata fails its checksum', {});
  if (buf[4]! > FORMAT_VERSION) {
    throw new RaftError(
      'RAFT_STORAGE_UNAVAILABLE',
      `the store has format ${buf[4]}; this version of @raft/log-level reads up to ${FORMAT_VERSION}`,
    );
  }
  if (buf.length !== META_LENGTH || buf[4] !== FORMAT_VERSION)
    throw new StorageCorruptError('the store metadata is malformed', {});
  const meta = { version: buf[4], firstIndex: readU64(buf, 5) };
  if (!Number.isSafeInteger(meta.firstIndex) || meta.firstIndex < 1) {
    throw new StorageCorruptError('the store metadata is malformed', {});
  }
  return meta;
}

export function chunkKey(chunk: number): Buffer {
  const key = Buffer.allocUnsafe(5);
  key[0] = SNAPSHOT_TAG;
  key.writeUInt32BE(chunk, 1);
  return key;
}

/** A snapshot's metadata as stored, with where its data lies. */
export interface StoredSnapshotMeta {
  meta: SnapshotMeta;
  /** Bytes of data. */
  dataLength: number;
  /** Chunks the data is stored in. */
  chunks: number;
}

/** A snapshot encoded for one batch: the metadata value and the chunk values, keys `chunkKey(0..)`. */
export interface EncodedSnapshot extends StoredSnapshotMeta {
  metaValue: Buffer;
  chunkValues: Buffer[];
}

function configurationJson(c: Configuration): string {
  // Exactly the fields given, in a fixed order: `learners` and `outgoing` stay absent when absent.
  const out: Configuration = { members: c.members };
  if (c.learners !== undefined) out.learners = c.learners;
  if (c.outgoing !== undefined) out.outgoing = c.outgoing;
  return JSON.stringify(out);
}

/** Encodes a (validated) snapshot, copying its data into the chunk values. */
export function encodeSnapshot(snapshot: Snapshot): EncodedSnapshot {
  const { meta, data } = snapshot;
  const chunks = Math.ceil(data.length / SNAPSHOT_CHUNK_BYTES);
  const config = Buffer.from(configurationJson(meta.configuration), 'utf8');
  const metaValue = Buffer.allocUnsafe(SNAPSHOT_HEADER + config.length);
  writeU64(metaValue, meta.index, 5);
  writeU64(metaValue, meta.term, 13);
  writeU64(metaValue, data.length, 21);
  metaValue.writeUInt32BE(chunks, 29);
  config.copy(metaValue, SNAPSHOT_HEADER);
  seal(metaValue);
  const chunkValues: Buffer[] = [];
  for (let k = 0; k < chunks; k++) {
    const part = data.subarray(k * SNAPSHOT_CHUNK_BYTES, (k + 1) * SNAPSHOT_CHUNK_BYTES);
    const value = Buffer.allocUnsafe(CHUNK_HEADER + part.length);
    writeU64(value, meta.index, 5);
    writeU64(value, meta.term, 13);
    value.writeUInt32BE(k, 21);
    value.set(part, CHUNK_HEADER);
    chunkValues.push(seal(value));
  }
  return { meta, dataLength: data.length, chunks, metaValue, chunkValues };
}

function isNames(v: unknown): v is string[] {
  return Array.isArray(v) && (v as unknown[]).every((n) => typeof n === 'string');
}

function parseConfiguration(text: string): Configuration | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { members, learners, outgoing } = parsed as Record<string, unknown>;
  if (
    !isNames(members) ||
    (learners !== undefined && !isNames(learners)) ||
    (outgoing !== undefined && !isNames(outgoing))
  )
    return undefined;
  const c: Configuration = { members };
  if (learners !== undefined) c.learners = learners;
  if (outgoing !== undefined) c.outgoing = outgoing;
  return c;
}

/** Decodes the snapshot's metadata. Throws {@link StorageCorruptError} for damage. */
export function decodeSnapshotMeta(raw: Uint8Array): StoredSnapshotMeta {
  const buf = asBuffer(raw);
  if (!intact(buf, SNAPSHOT_HEADER) || buf[4] !== FORMAT_VERSION)
    throw new StorageCorruptError('the stored snapshot metadata fails its checksum', {});
  const index = readU64(buf, 5);
  const term = readU64(buf, 13);
  const dataLength = readU64(buf, 21);
  const chunks = buf.readUInt32BE(29);
  const configuration = parseConfiguration(buf.toString('utf8', SNAPSHOT_HEADER));
  const ok =
    Number.isSafeInteger(index) &&
    index >= 1 &&
    Number.isSafeInteger(term) &&
    Number.isSafeInteger(dataLength) &&
    chunks === Math.ceil(dataLength / SNAPSHOT_CHUNK_BYTES) &&
    configuration !== undefined;
  if (!ok) throw new StorageCorruptError('the stored snapshot metadata is malformed', {});
  return { meta: { index, term, configuration }, dataLength, chunks };
}

/**
 * Decodes a snapshot from the rows of one iterator over `c..d` (metadata, then chunks
 * in order), checking every chunk. Undefined when there are no rows; throws
 * {@link StorageCorruptError} for damage or a missing, stray or misplaced chunk.
 */
export function decodeSnapshot(rows: ReadonlyArray<readonly [Uint8Array, Uint8Array]>): Snapshot | undefined {
  const [head, ...chunks] = rows;
  if (head === undefined) return undefined;
  if (head[0].length !== 1) throw new StorageCorruptError('snapshot data is stored without its metadata', {});
  const { meta, dataLength, chunks: count } = decodeSnapshotMeta(head[1]);
  const where = `the snapshot at index ${meta.index}`;
  if (chunks.length !== count)
    throw new StorageCorruptError(
      `${where} has ${chunks.length} chunks of data stored, its metadata says ${count}`,
      {},
    );
  const data = new Uint8Array(dataLength);
  let offset = 0;
  for (const [k, [key, raw]] of chunks.entries()) {
    const buf = asBuffer(raw);
    if (key.length !== 5 || asBuffer(key).readUInt32BE(1) !== k)
      throw new StorageCorruptError(`${where}: chunk ${k} of its data is missing`, {});
    if (!intact(buf, CHUNK_HEADER) || buf[4] !== FORMAT_VERSION)
      throw new StorageCorruptError(`${where}: chunk ${k} of its data fails its checksum`, {});
    if (readU64(buf, 5) !== meta.index || readU64(buf, 13) !== meta.term || buf.readUInt32BE(21) !== k) {
      throw new StorageCorruptError(
        `${where}: chunk ${k} of its data belongs to another snapshot or place`,
        {},
      );
    }
    const part = buf.subarray(CHUNK_HEADER);
    if (offset + part.length > dataLength)
      throw new StorageCorruptError(`${where} holds more data than its metadata says`, {});
    data.set(part, offset);
    offset += part.length;
  }
  if (offset !== dataLength)
    throw new StorageCorruptError(
      `${where} holds ${offset} bytes of data, its metadata says ${dataLength}`,
      {},
    );
  return { meta, data };
}

/** What the store holds once a batch is in: written in that batch (see the module comment). */
export interface Watermark {
  /** Batches written since the store was created, this one included. */
  batch: number;
  firstIndex: number;
  lastIndex: number;
  /** The snapshot's index, 0 for none. */
  snapshotIndex: number;
  hardState: HardState;
}

const WATERMARK_HEADER = 37;

export function encodeWatermark(w: Watermark): Buffer {
  const hard = encodeHardState(w.hardState);
  const buf = Buffer.allocUnsafe(WATERMARK_HEADER + hard.length);
  writeU64(buf, w.batch, 5);
  writeU64(buf, w.firstIndex, 13);
  writeU64(buf, w.lastIndex, 21);
  writeU64(buf, w.snapshotIndex, 29);
  hard.copy(buf, WATERMARK_HEADER);
  return seal(buf);
}

export function decodeWatermark(raw: Uint8Array): Watermark {
  const buf = asBuffer(raw);
  if (!intact(buf, WATERMARK_HEADER) || buf[4] !== FORMAT_VERSION)
    throw new StorageCorruptError('the stored watermark fails its checksum', {});
  const w = {
    batch: readU64(buf, 5),
    firstIndex: readU64(buf, 13),
    lastIndex: readU64(buf, 21),
    snapshotIndex: readU64(buf, 29),
    hardState: decodeHardState(buf.subarray(WATERMARK_HEADER)),
  };
  if (![w.batch, w.firstIndex, w.lastIndex, w.snapshotIndex].every(Number.isSafeInteger))
    throw new StorageCorruptError('the stored watermark is malformed', {});
  return w;
}
