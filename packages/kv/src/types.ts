import type { KVValue } from './value.js';

/** Sets `key` to `value`. Replies {@link KVValueReply} with the value set. */
export interface KVSetCommand {
  op: 'set';
  key: string;
  value: KVValue;
}

/**
 * Removes `key`. Replies {@link KVDeletedReply}, or {@link KVKeyNotFoundReply} when the
 * key is absent.
 */
export interface KVDeleteCommand {
  op: 'delete';
  key: string;
}

/**
 * Compare-and-set: sets `key` to `value` only if its current value is structurally
 * equal to `expected` (see the README: deep equality, key order of objects ignored).
 * Replies {@link KVValueReply} with the new value, {@link KVKeyNotFoundReply} when the
 * key is absent, or {@link KVCasMismatchReply} with the current value.
 */
export interface KVCasCommand {
  op: 'cas';
  key: string;
  expected: KVValue;
  value: KVValue;
}

/** A command: what `write` carries through the log. */
export type KVCommand = KVSetCommand | KVDeleteCommand | KVCasCommand;

/** Reads `key`. Replies {@link KVValueReply} or {@link KVKeyNotFoundReply}. */
export interface KVGetQuery {
  op: 'get';
  key: string;
}

/** A query: what `read` answers from applied state. */
export type KVQuery = KVGetQuery;

/** Success of `get`, `set` and `cas`: the key's value now. */
export interface KVValueReply {
  ok: true;
  value: KVValue;
}

/**
 * Success of `delete`. It carries no value (the HTTP API answers `200 {}`); `value` is
 * declared only so that `reply.value` type-checks on any successful reply.
 */
export interface KVDeletedReply {
  ok: true;
  value?: undefined;
}

/** `get`, `delete` or `cas` of a key that is absent. */
export interface KVKeyNotFoundReply {
  ok: false;
  error: 'key_not_found';
}

/** `cas` whose `expected` differs from the current value, which `value` holds. */
export interface KVCasMismatchReply {
  ok: false;
  error: 'cas_mismatch';
  value: KVValue;
}

/**
 * A command or query that is not one of the above: an unknown `op`, a key that is not
 * a string, a value that is not a `KVValue`. The state is unchanged. `message` says
 * what is wrong; it is the same on every peer.
 */
export interface KVBadCommandReply {
  ok: false;
  error: 'bad_command';
  message: string;
}

/** Every reply of {@link KVStore}. Replies are values, never thrown errors. */
export type KVReply =
  KVValueReply | KVDeletedReply | KVKeyNotFoundReply | KVCasMismatchReply | KVBadCommandReply;

/**
 * The state: a `Map` from key to value. `handleWrite` updates this map in place and
 * returns it (copying it per write would cost O(keys)); `handleRead` never changes
 * it. Values in it are frozen private copies: treat byte arrays in replies as
 * read-only too.
 */
export type KVState = Map<string, KVValue>;
