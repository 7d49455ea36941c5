import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HttpReply } from './ops.js';

/** Writes a JSON reply, unless the response is already sent or its connection is gone. */
export function sendReply(res: ServerResponse, reply: HttpReply, opts: { close?: boolean } = {}): void {
  if (res.headersSent || res.writableEnded || res.destroyed) return;
  const body = JSON.stringify(reply.body);
  res.statusCode = reply.status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.setHeader('cache-control', 'no-store');
  for (const [name, value] of Object.entries(reply.headers ?? {})) res.setHeader(name, value);
  // A connection whose request body was not read cannot carry another request.
  if (opts.close === true) res.setHeader('connection', 'close');
  res.end(body);
}

/** True when the request announces a body (a length above zero, or chunked). */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  if (length !== undefined) return length !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}

/** The outcome of {@link readBody}. */
export type BodyResult =
  { ok: true; body: Buffer } | { ok: false; reason: 'too_large' | 'timeout' | 'aborted' };

/**
 * Reads a request body of at most `limit` bytes before `deadline` (a `performance.now()`
 * time). Stops reading at once on a too-large body: its connection must be closed.
 */
export function readBody(req: IncomingMessage, limit: number, deadline: number): Promise<BodyResult> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit)
    return Promise.resolve({ ok: false, reason: 'too_large' });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (result: BodyResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
      if (!result.ok) req.pause();
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        finish({ ok: false, reason: 'too_large' });
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => finish({ ok: true, body: Buffer.concat(chunks, size) });
    const onError = (): void => finish({ ok: false, reason: 'aborted' });
    const onAborted = (): void => finish({ ok: false, reason: 'aborted' });
    const timer = setTimeout(
      () => finish({ ok: false, reason: 'timeout' }),
      Math.max(0, deadline - performance.now()),
    );
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}

/** Parses JSON, or returns undefined. */
export function parseJson(bytes: Buffer): { value: unknown } | undefined {
  try {
    return { value: JSON.parse(bytes.toString('utf8')) as unknown };
  } catch {
    return undefined;
  }
}
