import type { IncomingMessage, ServerResponse } from 'node:http';
import { FORWARD_PATH, MAX_FORWARD_BYTES, parseForwardRequest, type ForwardVerifier } from './forward.js';
import { hasBody, parseJson, readBody, sendReply } from './http-util.js';
import { parseOp, replies, type HttpReply, type Op } from './ops.js';

/** What the peer port's HTTP route needs from the node. */
export interface PeerApiContext {
  execute(op: Op, deadline: number, hops: number): Promise<HttpReply>;
  verifier: ForwardVerifier;
  closing(): boolean;
  /** The node's own request timeout: a forwarded request never waits longer. */
  requestTimeoutMs: number;
  onInternalError(err: unknown): void;
  /** Called when a forwarded request is refused (bad signature, replay); must not throw. */
  onRefused(reason: string, remote: string | undefined): void;
}

/**
 * The plain-HTTP side of the peer port (WebSocket upgrades go to the transport):
 * `POST /_raft/forward`, a client operation forwarded by a follower.
 */
export function peerApi(ctx: PeerApiContext): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    handle(ctx, req, res).catch((err: unknown) => {
      ctx.onInternalError(err);
      sendReply(res, replies.internal(), { close: true });
    });
  };
}

async function handle(ctx: PeerApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const start = performance.now();
  const path = (req.url ?? '').split('?')[0];
  if (path !== FORWARD_PATH) {
    sendReply(res, replies.notFound(), { close: hasBody(req) });
    return;
  }
  if (req.method !== 'POST') {
    sendReply(res, replies.methodNotAllowed(['POST']), { close: hasBody(req) });
    return;
  }
  if (ctx.closing()) {
    sendReply(res, replies.shuttingDown(), { close: true });
    return;
  }
  // Whatever the headers alone can refuse is refused before a byte of the body is read.
  const unsigned = ctx.verifier.precheck(req.headers);
  if (unsigned !== undefined) {
    ctx.onRefused(unsigned, req.socket.remoteAddress);
    sendReply(res, replies.unauthorized(), { close: hasBody(req) });
    return;
  }
  const body = await readBody(req, MAX_FORWARD_BYTES, start + ctx.requestTimeoutMs);
  if (!body.ok) {
    if (body.reason === 'too_large') sendReply(res, replies.tooLarge(), { close: true });
    else if (body.reason === 'timeout') sendReply(res, replies.requestTimeout(), { close: true });
    else res.destroy();
    return;
  }
  const refused = ctx.verifier.verify(req.headers, body.body);
  if (refused !== undefined) {
    ctx.onRefused(refused, req.socket.remoteAddress);
    sendReply(res, replies.unauthorized());
    return;
  }
  const json = parseJson(body.body);
  const fwd = json === undefined ? 'the body must be JSON' : parseForwardRequest(json.value);
  if (typeof fwd === 'string') {
    sendReply(res, replies.badRequest(fwd));
    return;
  }
  const op = parseOp(fwd.op);
  if (typeof op === 'string') {
    sendReply(res, replies.badRequest(op));
    return;
  }
  const deadline = start + Math.min(fwd.timeoutMs, ctx.requestTimeoutMs);
  sendReply(res, await ctx.execute(op, deadline, fwd.hops));
}
