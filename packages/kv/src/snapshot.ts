import { InvalidArgumentError } from '@raft/core';
import { Packr } from 'msgpackr';
import type { KVState } from './types.js';
import { copyValue } from './value.js';

/** The first layout (one MessagePack map): still restored, no longer written. */
const SNAPSHOT_VERSION_1 = 1;

/**
 * The layout written now: `KVS2`, the number of entries (uint32, big-endian), then
 * frames of up to {@link CHUNK_ENTRIES} entries, each its length (uint32, big-endian) and a
 * MessagePack array `[key1, value1, key2, value2, ...]`. Entries are in the map's
 * iteration order, so that peers with the same state produce the same bytes and a
 * restored map iterates as the original did. Frames let `snapshot` and `restore` work in
 * slices and give the event loop back in between: a large map never holds the peer's
 * timers (heartbeats, elections) for the whole of its encoding.
 */
const MAGIC = [0x4b, 0x56, 0x53, 0x32]; // "KVS2"
/** Entries per frame: one slice of work, a few milliseconds at most. */
const CHUNK_ENTRIES = 2048;

// `moreTypes` keeps Uint8Array a Uint8Array through a round trip (plain MessagePack
// `bin` would come back as a Node Buffer), as the core codec does.
const packr = new Packr({ useRecords: false, moreTypes: true });

interface SnapshotLayout {
  version: number;
  entries: unknown[];
}

/** Gives the event loop back: timers and I/O run before the next slice. */
const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The frames of a snapshot of `state`, header first; each `next()` is one slice of work. */
function* encodeFrames(state: KVState): Generator<Uint8Array> {
  if (state.size > 0xffffffff) throw new InvalidArgumentError('the map is too large for a snapshot');
  const header = new Uint8Array(8);
  header.set(MAGIC, 0);
  new DataView(header.buffer).setUint32(4, state.size);
  yield header;
  let entries: unknown[] = [];
  for (const [key, value] of state) {
    entries.push(key, value);
    if (entries.length === CHUNK_ENTRIES * 2) {
      yield frame(entries);
      entries = [];
    }
  }
  if (entries.length > 0) yield frame(entries);
}

function frame(entries: unknown[]): Uint8Array {
  const body = packr.pack(entries);
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, 4);
  return out;
}

/**
 * Serializes the state a frame at a time, giving the event loop back between frames
 * (only when there is more than one). The map must not change until the promise settles:
 * `@raft/core` applies nothing while a snapshot is being taken.
 */
export async function encodeSnapshotInSlices(state: KVState): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  // The header and the first frame in this turn; a yield before each further frame.
  for (const part of encodeFrames(state)) {
    if (parts.length > 1) await yieldToLoop();
    parts.push(part);
  }
  return Buffer.concat(parts);
}

function corrupt(reason: string, cause?: unknown): InvalidArgumentError {
  return new InvalidArgumentError(
    `not a @raft/kv snapshot: ${reason}`,
    cause === undefined ? undefined : { cause },
  );
}

/** Adds `entries` (key, value pairs) to `state`, checking each. */
function addEntries(state: KVState, entries: unknown, offset: number): void {
  if (!Array.isArray(entries) || entries.length % 2 !== 0)
    throw corrupt('entries must be an array of key, value pairs');
  for (let i = 0; i < entries.length; i += 2) {
    const key: unknown = entries[i];
    const at = offset + i / 2;
    if (typeof key !== 'string') throw corrupt(`key at ${at} is not a string`);
    if (state.has(key)) throw corrupt(`duplicate key ${JSON.stringify(key)}`);
    const copy = copyValue(entries[i + 1]);
    if ('error' in copy) throw corrupt(`value of ${JSON.stringify(key)}: ${copy.error}`);
    state.set(key, copy.value);
  }
}

function isFramed(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && MAGIC.every((b, i) => bytes[i] === b);
}

/**
 * Rebuilds the state into `state`; each `next()` of the generator is one slice of work
 * (a frame). Layout 1 (one MessagePack map) is one slice.
 */
function* decodeFrames(bytes: Uint8Array, state: KVState): Generator<void> {
  if (!isFramed(bytes)) {
    let decoded: unknown;
    try {
      decoded = packr.unpack(bytes);
    } catch (error) {
      throw corrupt('cannot decode', error);
    }
    if (typeof decoded !== 'object' || decoded === null) throw corrupt('not an object');
    const { version, entries } = decoded as Partial<SnapshotLayout>;
    if (version !== SNAPSHOT_VERSION_1) throw corrupt(`unknown version ${String(version)}`);
    addEntries(state, entries, 0);
    return;
  }
  if (bytes.length < 8) throw corrupt('truncated header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(4);
  let at = 8;
  while (at < bytes.length) {
    if (at > 8) yield; // between frames
    if (at + 4 > bytes.length) throw corrupt('truncated frame length');
    const length = view.getUint32(at);
    at += 4;
    if (length > bytes.length - at) throw corrupt('truncated frame');
    let entries: unknown;
    try {
      entries = packr.unpack(bytes.subarray(at, at + length));
    } catch (error) {
      throw corrupt('cannot decode', error);
    }
    at += length;
    addEntries(state, entries, state.size);
    if (state.size > count) throw corrupt(`more entries than the ${count} announced`);
  }
  if (state.size !== count) throw corrupt(`${state.size} entries, ${count} announced`);
}

/**
 * Rebuilds a state from {@link encodeSnapshotInSlices}'s bytes (either layout), a frame at
 * a time, giving the event loop back between frames (only when there is more than one).
 *
 * @throws InvalidArgumentError (`RAFT_INVALID_ARGUMENT`, the promise rejects) when the
 * bytes are not such a snapshot (with the decoder's error as `cause` when it failed).
 */
export async function decodeSnapshotInSlices(bytes: Uint8Array): Promise<KVState> {
  const state: KVState = new Map();
  for (const _ of decodeFrames(bytes, state)) await yieldToLoop();
  return state;
}
