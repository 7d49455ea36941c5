import { InvalidArgumentError } from '@raft/core';
import { Packr } from 'msgpackr';
import type { KVState } from './types.js';
import { copyValue } from './value.js';

/** Bumped whenever the layout below changes; `restore` refuses versions it does not know. */
const SNAPSHOT_VERSION = 1;

// `moreTypes` keeps Uint8Array a Uint8Array through a round trip (plain MessagePack
// `bin` would come back as a Node Buffer), as the core codec does.
const packr = new Packr({ useRecords: false, moreTypes: true });

/**
 * The snapshot layout: `{ version: 1, entries: [key1, value1, key2, value2, ...] }`, in
 * the map's iteration order, so that peers with the same state produce the same bytes
 * and a restored map iterates as the original did.
 */
interface SnapshotLayout {
  version: number;
  entries: unknown[];
}

/** Serializes the state. Synchronous, so it captures the map as it is at the call. */
export function encodeSnapshot(state: KVState): Uint8Array {
  const entries: unknown[] = new Array<unknown>(state.size * 2);
  let i = 0;
  for (const [key, value] of state) {
    entries[i++] = key;
    entries[i++] = value;
  }
  const layout: SnapshotLayout = { version: SNAPSHOT_VERSION, entries };
  return packr.pack(layout);
}

function corrupt(reason: string, cause?: unknown): InvalidArgumentError {
  return new InvalidArgumentError(
    `not a @raft/kv snapshot: ${reason}`,
    cause === undefined ? undefined : { cause },
  );
}

/**
 * Rebuilds a state from {@link encodeSnapshot}'s bytes.
 *
 * @throws InvalidArgumentError (`RAFT_INVALID_ARGUMENT`) when the bytes are not such a
 * snapshot (with the decoder's error as `cause` when it failed).
 */
export function decodeSnapshot(bytes: Uint8Array): KVState {
  let decoded: unknown;
  try {
    decoded = packr.unpack(bytes);
  } catch (error) {
    throw corrupt('cannot decode', error);
  }
  if (typeof decoded !== 'object' || decoded === null) throw corrupt('not an object');
  const { version, entries } = decoded as Partial<SnapshotLayout>;
  if (version !== SNAPSHOT_VERSION) throw corrupt(`unknown version ${String(version)}`);
  if (!Array.isArray(entries) || entries.length % 2 !== 0)
    throw corrupt('entries must be an array of key, value pairs');
  const state: KVState = new Map();
  for (let i = 0; i < entries.length; i += 2) {
    const key: unknown = entries[i];
    if (typeof key !== 'string') throw corrupt(`key at ${i / 2} is not a string`);
    if (state.has(key)) throw corrupt(`duplicate key ${JSON.stringify(key)}`);
    const copy = copyValue(entries[i + 1]);
    if ('error' in copy) throw corrupt(`value of ${JSON.stringify(key)}: ${copy.error}`);
    state.set(key, copy.value);
  }
  return state;
}
