import type { PeerId, StateMachine } from '@raft/core';
import type { KVBadCommandReply, KVCommand, KVKeyNotFoundReply, KVQuery, KVReply, KVState } from './types.js';
import { copyValue, deepEqual, validateValue, type KVValue } from './value.js';
import { decodeSnapshotInSlices, encodeSnapshotInSlices } from './snapshot.js';

const KEY_NOT_FOUND: KVKeyNotFoundReply = Object.freeze({ ok: false, error: 'key_not_found' });

function badCommand(message: string): KVBadCommandReply {
  return { ok: false, error: 'bad_command', message };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** The command's key, or why it has none. */
function keyOf(command: Record<string, unknown>): string | KVBadCommandReply {
  const key = command['key'];
  return typeof key === 'string' ? key : badCommand('key must be a string');
}

/** A frozen private copy of `command.value`, or why it is not a value. */
function valueOf(command: Record<string, unknown>): { value: KVValue } | { bad: KVBadCommandReply } {
  if (!('value' in command)) return { bad: badCommand('value is required') };
  const copy = copyValue(command['value']);
  return 'error' in copy ? { bad: badCommand(`value: ${copy.error}`) } : copy;
}

/** `command.expected` (compared, never stored: no copy), or why it is not a value. */
function expectedOf(command: Record<string, unknown>): { value: KVValue } | { bad: KVBadCommandReply } {
  if (!('expected' in command)) return { bad: badCommand('expected is required') };
  const expected = command['expected'];
  const error = validateValue(expected);
  return error === undefined ? { value: expected as KVValue } : { bad: badCommand(`expected: ${error}`) };
}

function applyCommand(command: unknown, state: KVState): KVReply {
  if (!isRecord(command)) return badCommand('a command must be an object');
  const op = command['op'];
  if (op !== 'set' && op !== 'delete' && op !== 'cas') {
    return badCommand('unknown op (expected "set", "delete" or "cas")');
  }
  const key = keyOf(command);
  if (typeof key !== 'string') return key;

  switch (op) {
    case 'set': {
      const value = valueOf(command);
      if ('bad' in value) return value.bad;
      state.set(key, value.value);
      return { ok: true, value: value.value };
    }
    case 'delete':
      return state.delete(key) ? { ok: true } : KEY_NOT_FOUND;
    case 'cas': {
      const expected = expectedOf(command);
      if ('bad' in expected) return expected.bad;
      const value = valueOf(command);
      if ('bad' in value) return value.bad;
      if (!state.has(key)) return KEY_NOT_FOUND;
      const current = state.get(key) as KVValue;
      if (!deepEqual(current, expected.value)) return { ok: false, error: 'cas_mismatch', value: current };
      state.set(key, value.value);
      return { ok: true, value: value.value };
    }
  }
}

function answerQuery(query: unknown, state: KVState): KVReply {
  if (!isRecord(query)) return badCommand('a query must be an object');
  if (query['op'] !== 'get') return badCommand('unknown query op (expected "get")');
  const key = keyOf(query);
  if (typeof key !== 'string') return key;
  return state.has(key) ? { ok: true, value: state.get(key) as KVValue } : KEY_NOT_FOUND;
}

/**
 * The type of {@link KVStore}: a `StateMachine` whose methods are all present and
 * synchronous, so that it can also be driven directly (in tests, in a simulator).
 */
export interface KVStateMachine extends StateMachine<KVState, KVCommand, KVQuery, KVReply> {
  /** An empty map. */
  init(name?: PeerId): KVState;
  /**
   * Applies a command to `state` in place and returns `[reply, state]` (the same map).
   * Never throws: a malformed command gets `bad_command` and changes nothing.
   */
  handleWrite(command: KVCommand, state: KVState): [KVReply, KVState];
  /** Answers a query; never changes `state`. Never throws. */
  handleRead(query: KVQuery, state: KVState): KVReply;
  /**
   * Serializes the map (frames of MessagePack), in its iteration order. A map of more than
   * 2048 keys is encoded a frame at a time, giving the event loop back between frames, so
   * a large state never stalls the peer's heartbeats; the map must not change until the
   * promise settles (`@raft/core` applies nothing meanwhile).
   */
  snapshot(state: KVState): Promise<Uint8Array>;
  /**
   * Rebuilds a map from {@link KVStateMachine.snapshot}'s bytes (also those of earlier
   * versions), a frame at a time like `snapshot`.
   *
   * @throws `RAFT_INVALID_ARGUMENT` (the promise rejects) when the bytes are not such a
   *   snapshot (the decoder's error, if any, is the `cause`).
   */
  restore(snapshot: Uint8Array, name?: PeerId): Promise<KVState>;
}

/**
 * The key-value {@link StateMachine}: pass it to `startPeer`.
 *
 * - `handleWrite` applies a {@link KVCommand} and returns `[reply, state]`, where
 *   `state` is the same `Map`, updated in place. It never throws: a malformed command
 *   gets a `bad_command` reply and leaves the state unchanged.
 * - `handleRead` answers a {@link KVQuery} and never changes the state.
 * - `snapshot` and `restore` serialize the map with MessagePack, keeping key order, a
 *   frame of 2048 keys at a time (they return promises).
 *
 * @example
 * ```ts
 * const peer = await startPeer(KVStore, { name: 'n1', log, transport });
 * ```
 */
export const KVStore: KVStateMachine = Object.freeze({
  init(): KVState {
    return new Map();
  },
  handleWrite(command: KVCommand, state: KVState): [KVReply, KVState] {
    return [applyCommand(command, state), state];
  },
  handleRead(query: KVQuery, state: KVState): KVReply {
    return answerQuery(query, state);
  },
  snapshot(state: KVState): Promise<Uint8Array> {
    return encodeSnapshotInSlices(state);
  },
  restore(snapshot: Uint8Array): Promise<KVState> {
    return decodeSnapshotInSlices(snapshot);
  },
});
