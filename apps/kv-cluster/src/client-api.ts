import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PeerStatus } from '@raft/core';
import { MAX_VALUE_DEPTH, type KVValue } from '@raft/kv';
import { checkJsonContentType, type HttpGuard } from './http-guard.js';
import { hasBody, parseJson, readBody, sendReply } from './http-util.js';
import { normalizePeerUrl } from './machine.js';
import {
  idProblem,
  keyProblem,
  MAX_BODY_BYTES,
  parseIdempotencyKey,
  replies,
  type ClusterOp,
  type HttpReply,
  type KvOp,
  type Op,
} from './ops.js';
import type { ClusterView } from './service.js';

/** What the client API needs from the node. */
export interface ClientApiContext {
  /** Runs an operation (locally or forwarded); see `KvService.execute`. */
  execute(op: Op, deadline: number, hops: number): Promise<HttpReply>;
  /** The local peer's status. */
  status(): PeerStatus;
  /** This node's view of the cluster, for `GET /cluster`. */
  view(): ClusterView;
  /** True once shutdown began: requests get 503 and their connection closes. */
  closing(): boolean;
  /** Longest time a request may take, body included. */
  requestTimeoutMs: number;
  /** Called for a failure that is a bug (logged once, answered 500). */
  onInternalError(err: unknown): void;
  /** Host allow-list, Origin check and admin token. */
  guard: HttpGuard;
}

/** A request's route, decided from its method and path alone. */
export type Route =
  | { kind: 'kv'; key: string; method: 'GET' | 'PUT' | 'DELETE' }
  | { kind: 'cas'; key: string }
  | { kind: 'status' }
  | { kind: 'cluster' }
  | { kind: 'members-add' }
  | { kind: 'members-remove'; id: string }
  | { kind: 'members-cancel' }
  | { kind: 'leader' }
  | { kind: 'reply'; reply: HttpReply };

const KV_METHODS = ['GET', 'PUT', 'DELETE'] as const;

/**
 * Routes a request. Paths are split on `/` before decoding, so a key may hold any
 * character (`%2F` for `/`); the query string is ignored.
 */
export function route(method: string, url: string): Route {
  if (!url.startsWith('/')) return { kind: 'reply', reply: replies.notFound() };
  const q = url.indexOf('?');
  const segments = (q === -1 ? url : url.slice(0, q)).split('/');
  if (segments.length === 2 && segments[1] === 'status') {
    return method === 'GET'
      ? { kind: 'status' }
      : { kind: 'reply', reply: replies.methodNotAllowed(['GET']) };
  }
  if (segments[1] === 'cluster') return clusterRoute(method, segments);
  if (segments[1] !== 'kv' || (segments.length !== 3 && !(segments.length === 4 && segments[3] === 'cas'))) {
    return { kind: 'reply', reply: replies.notFound() };
  }
  const isCas = segments.length === 4;
  if (isCas && method !== 'POST') return { kind: 'reply', reply: replies.methodNotAllowed(['POST']) };
  if (!isCas && !(KV_METHODS as readonly string[]).includes(method))
    return { kind: 'reply', reply: replies.methodNotAllowed(KV_METHODS) };
  let key: string;
  try {
    key = decodeURIComponent(segments[2] ?? '');
  } catch {
    return { kind: 'reply', reply: replies.badRequest('the key is not valid percent-encoded UTF-8') };
  }
  const problem = keyProblem(key);
  if (problem !== undefined) return { kind: 'reply', reply: replies.badRequest(problem) };
  return isCas ? { kind: 'cas', key } : { kind: 'kv', key, method: method as (typeof KV_METHODS)[number] };
}

/** The `/cluster` routes: the cluster's view, membership, leadership. */
function clusterRoute(method: string, segments: string[]): Route {
  const only = (allowed: string, route: Route): Route =>
    method === allowed ? route : { kind: 'reply', reply: replies.methodNotAllowed([allowed]) };
  if (segments.length === 2) return only('GET', { kind: 'cluster' });
  if (segments.length === 3 && segments[2] === 'members') return only('POST', { kind: 'members-add' });
  if (segments.length === 3 && segments[2] === 'leader') return only('POST', { kind: 'leader' });
  if (segments.length === 3 && segments[2] === 'learners') return only('DELETE', { kind: 'members-cancel' });
  if (segments.length === 4 && segments[2] === 'members') {
    if (method !== 'DELETE') return { kind: 'reply', reply: replies.methodNotAllowed(['DELETE']) };
    let id: string;
    try {
      id = decodeURIComponent(segments[3] ?? '');
    } catch {
      return { kind: 'reply', reply: replies.badRequest('the id is not valid percent-encoded UTF-8') };
    }
    const problem = idProblem(id);
    return problem === undefined
      ? { kind: 'members-remove', id }
      : { kind: 'reply', reply: replies.badRequest(problem) };
  }
  return { kind: 'reply', reply: replies.notFound() };
}

/** Parses the body of `POST /cluster/members` (`{"id", "url"}`) or `POST /cluster/leader` (`{"id"}`). */
export function clusterOpFromBody(
  route: Extract<Route, { kind: 'members-add' | 'leader' }>,
  body: Buffer,
): ClusterOp | HttpReply {
  const json = parseJson(body);
  if (json === undefined) return replies.badRequest('the body must be JSON');
  const shape = route.kind === 'members-add' ? '{"id": ID, "url": "ws://HOST:PORT"}' : '{"id": ID}';
  if (!isRecord(json.value)) return replies.badRequest(`the body must be a JSON object ${shape}`);
  const { id, url } = json.value;
  const problem = idProblem(id);
  if (problem !== undefined) return replies.badRequest(problem);
  if (route.kind === 'leader') return { kind: 'transfer', id: id as string };
  if (typeof url !== 'string') return replies.badRequest(`the body must be a JSON object ${shape}`);
  const href = normalizePeerUrl(url);
  if (typeof href !== 'string') return replies.badRequest(href.problem);
  return { kind: 'member-add', id: id as string, url: href };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * True when `value` nests deeper than `max` levels (iterative: a hostile body cannot
 * overflow the stack here). The store refuses such values anyway; checking at the door
 * answers 400 on every node, the leader or a follower that would forward it.
 */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth >= max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

/** Parses the body of a PUT or a CAS into an operation, or the 400 to answer. */
export function opFromBody(route: Extract<Route, { kind: 'kv' | 'cas' }>, body: Buffer): KvOp | HttpReply {
  const json = parseJson(body);
  if (json === undefined) return replies.badRequest('the body must be JSON');
  if (!isRecord(json.value))
    return replies.badRequest(
      route.kind === 'cas'
        ? 'the body must be a JSON object {"expected": E, "value": V}'
        : 'the body must be a JSON object {"value": V}',
    );
  const obj = json.value;
  // The body object is one level; the value may nest MAX_VALUE_DEPTH levels under it.
  if (nestsDeeperThan(obj, MAX_VALUE_DEPTH + 1))
    return replies.badRequest(`values may nest at most ${MAX_VALUE_DEPTH} levels`);
  if (route.kind === 'cas') {
    if (!('expected' in obj)) return replies.badRequest('the body must have "expected"');
    if (!('value' in obj)) return replies.badRequest('the body must have "value"');
    return {
      kind: 'cas',
      key: route.key,
      expected: obj['expected'] as KVValue,
      value: obj['value'] as KVValue,
    };
  }
  if (!('value' in obj)) return replies.badRequest('the body must have "value"');
  return { kind: 'put', key: route.key, value: obj['value'] as KVValue };
}

/**
 * The client HTTP API of API.md as a request listener. Every request is answered
 * within the request timeout (504 when the outcome is unknown), never with a stack trace.
 */
export function clientApi(ctx: ClientApiContext): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    handle(ctx, req, res).catch((err: unknown) => {
      ctx.onInternalError(err);
      sendReply(res, replies.internal(), { close: true });
    });
  };
}

async function handle(ctx: ClientApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const deadline = performance.now() + ctx.requestTimeoutMs;
  const r = route(req.method ?? '', req.url ?? '');
  const bodyUnread = hasBody(req);
  if (ctx.closing()) {
    sendReply(res, replies.shuttingDown(), { close: true });
    return;
  }
  if (r.kind === 'reply') {
    sendReply(res, r.reply, { close: bodyUnread });
    return;
  }
  const refused =
    ctx.guard.checkOrigin(req) ??
    (r.kind === 'members-add' ||
    r.kind === 'members-remove' ||
    r.kind === 'members-cancel' ||
    r.kind === 'leader'
      ? ctx.guard.checkAdmin(req)
      : undefined) ??
    (r.kind === 'members-add' ||
    r.kind === 'leader' ||
    r.kind === 'cas' ||
    (r.kind === 'kv' && r.method === 'PUT')
      ? checkJsonContentType(req)
      : undefined);
  if (refused !== undefined) {
    sendReply(res, refused, { close: bodyUnread });
    return;
  }
  if (r.kind === 'status') {
    sendReply(res, { status: 200, body: { ...ctx.status() } }, { close: bodyUnread });
    return;
  }
  if (r.kind === 'cluster') {
    sendReply(res, { status: 200, body: { ...ctx.view() } }, { close: bodyUnread });
    return;
  }
  let op: Op;
  let lastBody: Buffer = Buffer.alloc(0);
  if (r.kind === 'members-remove') {
    op = { kind: 'member-remove', id: r.id };
  } else if (r.kind === 'members-cancel') {
    op = { kind: 'member-cancel' };
  } else if (r.kind === 'members-add' || r.kind === 'leader' || r.kind === 'cas' || r.method === 'PUT') {
    const body = await readBody(req, MAX_BODY_BYTES, deadline);
    if (body.ok) lastBody = body.body;
    if (!body.ok) {
      if (body.reason === 'too_large') sendReply(res, replies.tooLarge(), { close: true });
      else if (body.reason === 'timeout') sendReply(res, replies.requestTimeout(), { close: true });
      else res.destroy();
      return;
    }
    const parsed =
      r.kind === 'members-add' || r.kind === 'leader'
        ? clusterOpFromBody(r, body.body)
        : opFromBody(r, body.body);
    if ('status' in parsed) {
      sendReply(res, parsed);
      return;
    }
    op = parsed;
  } else {
    op = r.method === 'GET' ? { kind: 'get', key: r.key } : { kind: 'delete', key: r.key };
  }
  if (op.kind === 'put' || op.kind === 'delete' || op.kind === 'cas') {
    const idem = idempotencyOf(req, op.kind === 'delete' ? Buffer.alloc(0) : lastBody);
    if (idem !== undefined && 'problem' in idem) {
      sendReply(res, replies.badRequest(idem.problem), { close: bodyUnread && op.kind === 'delete' });
      return;
    }
    if (idem !== undefined) op = { ...op, idempotency: idem };
  }
  // Whatever happens below, answer by the deadline: the operation's own timeouts fire
  // first; this is the backstop that makes a hang impossible.
  let backstop: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<HttpReply>((resolve) => {
    backstop = setTimeout(() => resolve(replies.timeout()), Math.max(0, deadline - performance.now()) + 100);
  });
  try {
    const reply = await Promise.race([ctx.execute(op, deadline, 0), late]);
    sendReply(res, reply, {
      close:
        bodyUnread &&
        (op.kind === 'get' ||
          op.kind === 'delete' ||
          op.kind === 'member-remove' ||
          op.kind === 'member-cancel'),
    });
  } finally {
    clearTimeout(backstop);
  }
}

/**
 * The `Idempotency-Key` of a write, with the request's fingerprint: a SHA-256 of its
 * method, path (without the query) and body. Undefined without the header.
 */
export function idempotencyOf(
  req: Pick<IncomingMessage, 'headers' | 'method' | 'url'>,
  body: Buffer,
): { key: string; fingerprint: string } | { problem: string } | undefined {
  const raw = req.headers['idempotency-key'];
  if (raw === undefined) return undefined;
  const key = parseIdempotencyKey(Array.isArray(raw) ? raw.join(', ') : raw);
  if (typeof key !== 'string') return key;
  const url = req.url ?? '';
  const q = url.indexOf('?');
  const fingerprint = createHash('sha256')
    .update(`${req.method ?? ''} ${q === -1 ? url : url.slice(0, q)}\n`)
    .update(body)
    .digest('base64url');
  return { key, fingerprint };
}
