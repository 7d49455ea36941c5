import type { KVCommand, KVReply, KVValue } from '@raft/kv';
import { ID_PATTERN, normalizePeerUrl } from './machine.js';

/** Longest key, in bytes of UTF-8. */
export const MAX_KEY_BYTES = 1024;

/** Largest request body, in bytes (1 MiB). */
export const MAX_BODY_BYTES = 1024 * 1024;

/**
 * A write's `Idempotency-Key` (the IETF draft's header): the key, and the fingerprint of
 * the request (a hash of its method, path and body).
 */
export interface Idempotency {
  key: string;
  fingerprint: string;
}

/** A client operation, as parsed from an HTTP request (or a forwarded one). */
export type KvOp =
  | { kind: 'get'; key: string }
  | { kind: 'put'; key: string; value: KVValue; idempotency?: Idempotency }
  | { kind: 'delete'; key: string; idempotency?: Idempotency }
  | { kind: 'cas'; key: string; expected: KVValue; value: KVValue; idempotency?: Idempotency };

/**
 * A membership operation (the `/cluster` routes), run on the leader like a write.
 * - `member-add`: record `url` in the peer directory, then add `id` as a voter;
 * - `member-remove`: remove `id` from the voters, then forget its URL;
 * - `member-cancel`: drop the learners of a membership change still catching up (and forget their URLs);
 * - `transfer`: hand leadership to `id`.
 */
export type ClusterOp =
  | { kind: 'member-add'; id: string; url: string }
  | { kind: 'member-remove'; id: string }
  | { kind: 'member-cancel' }
  | { kind: 'transfer'; id: string };

/** Any operation a node runs (locally, or forwarded to the leader). */
export type Op = KvOp | ClusterOp;

/** What a node answers: an HTTP status and a JSON body. */
export interface HttpReply {
  status: number;
  body: Record<string, unknown>;
  /** Extra response headers. */
  headers?: Record<string, string>;
}

/** The JSON error bodies of the HTTP API, in one place. */
export const replies = {
  badRequest: (message: string): HttpReply => ({ status: 400, body: { error: 'bad_request', message } }),
  notFound: (): HttpReply => ({ status: 404, body: { error: 'not_found' } }),
  methodNotAllowed: (allow: readonly string[]): HttpReply => ({
    status: 405,
    body: { error: 'method_not_allowed', allow },
    headers: { allow: allow.join(', ') },
  }),
  requestTimeout: (): HttpReply => ({
    status: 408,
    body: { error: 'request_timeout', message: 'the request body did not arrive in time' },
  }),
  tooLarge: (): HttpReply => ({
    status: 413,
    body: { error: 'payload_too_large', message: `the body exceeds ${MAX_BODY_BYTES} bytes` },
  }),
  internal: (): HttpReply => ({ status: 500, body: { error: 'internal' } }),
  electionInProgress: (): HttpReply => ({ status: 503, body: { error: 'election_in_progress' } }),
  leaderUnreachable: (leader: string): HttpReply => ({
    status: 503,
    body: { error: 'leader_unreachable', leader },
  }),
  shuttingDown: (): HttpReply => ({ status: 503, body: { error: 'shutting_down' } }),
  timeout: (): HttpReply => ({ status: 504, body: { error: 'timeout' } }),
  configChangeInProgress: (pending?: Record<string, unknown>, message?: string): HttpReply => ({
    status: 409,
    body: {
      error: 'config_change_in_progress',
      ...(message === undefined ? {} : { message }),
      ...(pending === undefined ? {} : { pending }),
    },
  }),
  forwardingDisabled: (leader: string): HttpReply => ({
    status: 503,
    body: {
      error: 'not_leader',
      leader,
      message: `this node forwards requests only when the cluster has a secret (--secret): send this request to ${leader}`,
    },
  }),
  unauthorized: (): HttpReply => ({ status: 401, body: { error: 'unauthorized' } }),
  idempotencyKeyReused: (): HttpReply => ({
    status: 422,
    body: {
      error: 'idempotency_key_reused',
      message: 'this Idempotency-Key was used with another request (method, path or body)',
    },
  }),
} as const;

/** True for operations that change something: their outcome may be unknown after a failure. */
export function isWrite(op: Op): boolean {
  return op.kind !== 'get';
}

/** True for the membership operations. */
export function isClusterOp(op: Op): op is ClusterOp {
  return (
    op.kind === 'member-add' ||
    op.kind === 'member-remove' ||
    op.kind === 'member-cancel' ||
    op.kind === 'transfer'
  );
}

/** The state machine command of a write. */
export function commandOf(op: Exclude<KvOp, { kind: 'get' }>): KVCommand {
  switch (op.kind) {
    case 'put':
      return { op: 'set', key: op.key, value: op.value };
    case 'delete':
      return { op: 'delete', key: op.key };
    case 'cas':
      return { op: 'cas', key: op.key, expected: op.expected, value: op.value };
  }
}

/** Maps the state machine's reply to the HTTP API's (API.md). */
export function replyToHttp(op: KvOp, reply: KVReply): HttpReply {
  if (reply.ok) {
    return op.kind === 'delete' ? { status: 200, body: {} } : { status: 200, body: { value: reply.value } };
  }
  switch (reply.error) {
    case 'key_not_found':
      return { status: 404, body: { error: 'key_not_found' } };
    case 'cas_mismatch':
      return { status: 409, body: { error: 'cas_mismatch', value: reply.value } };
    case 'bad_command':
      return replies.badRequest(reply.message);
  }
}

/** With the `u` flag, a surrogate pair is one code point: this matches only unpaired halves. */
const LONE_SURROGATE = /\p{Cs}/u;

/** Checks a decoded key: 1 to {@link MAX_KEY_BYTES} bytes of UTF-8. Returns why not, or undefined. */
export function keyProblem(key: string): string | undefined {
  if (key.length === 0) return 'the key must not be empty';
  if (LONE_SURROGATE.test(key)) return 'the key must be valid UTF-8';
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES)
    return `the key must be at most ${MAX_KEY_BYTES} bytes of UTF-8`;
  return undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks a node id of a membership operation; returns why it is not one. */
export function idProblem(id: unknown): string | undefined {
  if (typeof id !== 'string' || !ID_PATTERN.test(id))
    return "the id must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit";
  return undefined;
}

function parseClusterOp(value: Record<string, unknown>): ClusterOp | string {
  const { kind, id, url } = value;
  const problem = idProblem(id);
  if (problem !== undefined) return problem;
  const peer = id as string;
  switch (kind) {
    case 'member-add': {
      if (typeof url !== 'string') return 'op.url must be a string';
      const href = normalizePeerUrl(url);
      return typeof href === 'string' ? { kind, id: peer, url: href } : href.problem;
    }
    case 'member-remove':
    case 'transfer':
      return { kind, id: peer };
    default:
      return 'op.kind is not a membership operation';
  }
}

/**
 * Checks an operation that arrived from the network (a forwarded request): never trust
 * its shape. Returns the operation or why it is not one.
 */
export function parseOp(value: unknown): Op | string {
  if (!isRecord(value)) return 'op must be an object';
  if (value['kind'] === 'member-cancel') return { kind: 'member-cancel' };
  if (value['kind'] === 'member-add' || value['kind'] === 'member-remove' || value['kind'] === 'transfer')
    return parseClusterOp(value);
  const { kind, key } = value;
  if (typeof key !== 'string') return 'op.key must be a string';
  const problem = keyProblem(key);
  if (problem !== undefined) return problem;
  const idem = parseIdempotency(value['idempotency']);
  if (typeof idem === 'string') return idem;
  const extra = idem === undefined || kind === 'get' ? {} : { idempotency: idem };
  switch (kind) {
    case 'get':
      return { kind, key };
    case 'delete':
      return { kind, key, ...extra };
    case 'put':
      if (!('value' in value)) return 'op.value is required';
      return { kind, key, value: value['value'] as KVValue, ...extra };
    case 'cas':
      if (!('value' in value) || !('expected' in value)) return 'op.expected and op.value are required';
      return {
        kind,
        key,
        expected: value['expected'] as KVValue,
        value: value['value'] as KVValue,
        ...extra,
      };
    default:
      return 'op.kind must be get, put, delete, cas, member-add, member-remove, member-cancel or transfer';
  }
}

/** The characters an `Idempotency-Key` may hold: visible ASCII but `"` and `\\`. */
const IDEMPOTENCY_KEY = /^[\x21\x23-\x5b\x5d-\x7e]{1,255}$/;

/**
 * Reads an `Idempotency-Key` header: an sf-string (`"..."`, as the IETF draft writes it)
 * or the bare key, 1 to 255 visible ASCII characters. Returns the key, or why not.
 */
export function parseIdempotencyKey(raw: string): string | { problem: string } {
  const key = raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1) : raw;
  return IDEMPOTENCY_KEY.test(key)
    ? key
    : { problem: 'Idempotency-Key must be 1 to 255 visible ASCII characters (without " or \\)' };
}

/** Checks the `idempotency` of a forwarded operation. */
function parseIdempotency(value: unknown): Idempotency | undefined | string {
  if (value === undefined) return undefined;
  if (!isRecord(value)) return 'op.idempotency must be an object';
  const { key, fingerprint } = value;
  if (typeof key !== 'string' || typeof parseIdempotencyKey(key) !== 'string')
    return 'op.idempotency.key is not a valid Idempotency-Key';
  if (typeof fingerprint !== 'string' || fingerprint.length > 128)
    return 'op.idempotency.fingerprint must be a string';
  return { key, fingerprint };
}
