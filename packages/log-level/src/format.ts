/**
 * The on-disk layout. Every key starts with one byte naming what it holds; every value
 * starts with a CRC-32 of the rest of the value and a format version.
 *
 * | key                          | value                                                                    |
 * |------------------------------|--------------------------------------------------------------------------|
 * | `e` + index (u64 big-endian) | crc32, version 1, type (u8), index (u64), term (u64), data               |
 * | `h`                          | crc32, version 1, term (u64), has vote (u8), vote (UTF-8)                 |
 * | `m`                          | crc32, version 1, firstIndex (u64)                                       |
 *
 * Big-endian indexes sort in LevelDB's bytewise order, so a range of keys is a range of
 * the log and the last key is the last entry. The index repeated inside the entry's value
 * lets a read detect a value stored under the wrong key.
 *
 * The metadata is written when the store is created (and would be again only when
 * `firstIndex` moves, with compaction), the hard state only when it changes: a key
 * rewritten by every batch would land in every table LevelDB flushes, make every
 * table's key range overlap every other's, and turn compactions that now merely move
 * tables of ascending entry keys down a level into merges that rewrite them.
 */
import { RaftError } from '@raft/core';
import type { EntryType, HardState, LogEntry } from '@raft/core';
import { crc32 } from './crc32.js';
import { StorageCorruptError } from './errors.js';

/** The format this version writes, and the newest it reads. */
export const FORMAT_VERSION = 1;

const ENTRY_TAG = 0x65; // 'e'
const HARD_STATE_TAG = 0x68; // 'h'
const META_TAG = 0x6d; // 'm'

/** Bytes before an entry's data. */
export const ENTRY_HEADER = 22;
const HARD_STATE_HEADER = 14;
const META_LENGTH = 13;

const TWO_32 = 0x1_0000_0000;

const TYPE_CODES: Record<EntryType, number> = { command: 0, noop: 1, config: 2 };
const TYPES: readonly EntryType[] = ['command', 'noop', 'config'];

export const HARD_STATE_KEY: Uint8Array = Uint8Array.of(HARD_STATE_TAG);
export const META_KEY: Uint8Array = Uint8Array.of(META_TAG);
/** Every entry key is at or above this one, and below {@link ENTRY_KEYS_END}. */
export const ENTRY_KEYS_START: Uint8Array = Uint8Array.of(ENTRY_TAG);
export const ENTRY_KEYS_END: Uint8Array = Uint8Array.of(ENTRY_TAG + 1);

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
  if (!intact(buf, ENTRY_HEADER)) throw new StorageCorruptError(`entry ${index} fails its checksum`, { index });
  if (buf[4] !== FORMAT_VERSION) throw new StorageCorruptError(`entry ${index} has unknown format version ${buf[4]}`, { index });
  const type = TYPES[buf[5]!];
  const storedIndex = readU64(buf, 6);
  const term = readU64(buf, 14);
  if (storedIndex !== index) throw new StorageCorruptError(`entry ${index} is missing: the value found in its place is entry ${storedIndex}'s`, { index });
  if (type === undefined || !Number.isSafeInteger(term)) throw new StorageCorruptError(`entry ${index} is malformed`, { index });
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
    throw new RaftError('RAFT_STORAGE_UNAVAILABLE', `the store has format ${buf[4]}; this version of @raft/log-level reads up to ${FORMAT_VERSION}`);
  }
  if (buf.length !== META_LENGTH || buf[4] !== FORMAT_VERSION) throw new StorageCorruptError('the store metadata is malformed', {});
  const meta = { version: buf[4], firstIndex: readU64(buf, 5) };
  if (!Number.isSafeInteger(meta.firstIndex) || meta.firstIndex < 1) {
    throw new StorageCorruptError('the store metadata is malformed', {});
  }
  return meta;
}
