import { InvalidArgumentError, read, write, type PeerRef } from '@raft/core';
import type {
  KVCasCommand,
  KVCasMismatchReply,
  KVDeleteCommand,
  KVDeletedReply,
  KVGetQuery,
  KVKeyNotFoundReply,
  KVReply,
  KVSetCommand,
  KVValueReply,
} from './types.js';
import { validateValue, type KVValue } from './value.js';

/** Options of every helper, passed through to `write` or `read` of `@raft/core`. */
export interface KVCallOptions {
  /**
   * Milliseconds to wait for the answer. On timeout the call rejects with
   * `RAFT_TIMEOUT`, and a write may still take effect later.
   * @default 3000
   */
  timeout?: number;
  /** Aborts the call (`RAFT_ABORTED`); a write may still take effect later. */
  signal?: AbortSignal;
}

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new InvalidArgumentError('key must be a string');
}

function checkValue(name: 'value' | 'expected', value: unknown): asserts value is KVValue {
  const error = validateValue(value);
  if (error !== undefined) throw new InvalidArgumentError(`${name}: ${error}`);
}

/**
 * Narrows a reply to what the helper documents. `bad_command` can only come back if the
 * peer runs another version of the store; it is raised as `RAFT_INVALID_ARGUMENT`.
 */
function expectReply<R extends KVReply>(reply: KVReply): R {
  if (!reply.ok && reply.error === 'bad_command') throw new InvalidArgumentError(reply.message);
  return reply as R;
}

/**
 * Sets `key` to `value` through the log (linearizable).
 *
 * @param peer - a peer's name in this process, or a `Peer`; a follower rejects with
 *   `RAFT_NOT_LEADER`.
 * @returns `{ ok: true, value }`
 * @throws `RAFT_INVALID_ARGUMENT` when `key` is not a string or `value` not a
 *   {@link KVValue}; otherwise whatever `write` throws (`RAFT_NOT_LEADER`,
 *   `RAFT_ELECTION_IN_PROGRESS`, `RAFT_TIMEOUT`, ...).
 */
export async function set(
  peer: PeerRef,
  key: string,
  value: KVValue,
  opts?: KVCallOptions,
): Promise<KVValueReply> {
  checkKey(key);
  checkValue('value', value);
  const command: KVSetCommand = { op: 'set', key, value };
  return expectReply<KVValueReply>(await write<KVReply>(peer, command, opts));
}

/**
 * Reads `key` with a linearizable read (ReadIndex, no log entry).
 *
 * @returns `{ ok: true, value }`, or `{ ok: false, error: 'key_not_found' }`
 * @throws `RAFT_INVALID_ARGUMENT` when `key` is not a string; otherwise whatever `read`
 *   throws.
 */
export async function get(
  peer: PeerRef,
  key: string,
  opts?: KVCallOptions,
): Promise<KVValueReply | KVKeyNotFoundReply> {
  checkKey(key);
  const query: KVGetQuery = { op: 'get', key };
  return expectReply<KVValueReply | KVKeyNotFoundReply>(await read<KVReply>(peer, query, opts));
}

/**
 * Deletes `key` through the log. Named `del` because `delete` is a reserved word.
 *
 * @returns `{ ok: true }`, or `{ ok: false, error: 'key_not_found' }`
 * @throws `RAFT_INVALID_ARGUMENT` when `key` is not a string; otherwise whatever `write`
 *   throws.
 */
export async function del(
  peer: PeerRef,
  key: string,
  opts?: KVCallOptions,
): Promise<KVDeletedReply | KVKeyNotFoundReply> {
  checkKey(key);
  const command: KVDeleteCommand = { op: 'delete', key };
  return expectReply<KVDeletedReply | KVKeyNotFoundReply>(await write<KVReply>(peer, command, opts));
}

/**
 * Compare-and-set through the log: sets `key` to `value` only if its current value
 * deep-equals `expected` (object key order ignored).
 *
 * @returns `{ ok: true, value }`, `{ ok: false, error: 'key_not_found' }`, or
 *   `{ ok: false, error: 'cas_mismatch', value: current }`
 * @throws `RAFT_INVALID_ARGUMENT` when `key` is not a string or `expected`/`value` not a
 *   {@link KVValue}; otherwise whatever `write` throws.
 */
export async function cas(
  peer: PeerRef,
  key: string,
  expected: KVValue,
  value: KVValue,
  opts?: KVCallOptions,
): Promise<KVValueReply | KVKeyNotFoundReply | KVCasMismatchReply> {
  checkKey(key);
  checkValue('expected', expected);
  checkValue('value', value);
  const command: KVCasCommand = { op: 'cas', key, expected, value };
  return expectReply<KVValueReply | KVKeyNotFoundReply | KVCasMismatchReply>(
    await write<KVReply>(peer, command, opts),
  );
}
