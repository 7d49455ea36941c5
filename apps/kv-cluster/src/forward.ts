import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Agent, request, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { certificateNamesPeer } from '@raft/transport-ws';
import type { PeerId } from '@raft/core';
import { isWrite, replies, type HttpReply, type Op } from './ops.js';

/** The internal route on the peer port that runs a client operation on the leader. */
export const FORWARD_PATH = '/_raft/forward';

/** Most hops a forwarded operation may take: a node that got a forwarded op never forwards it again. */
export const MAX_HOPS = 1;

/** How far a forwarded request's timestamp may be from the receiver's clock. */
export const FORWARD_CLOCK_SKEW_MS = 30_000;

/** Largest forwarded request or answer (a 1 MiB value re-encoded, plus the envelope). */
export const MAX_FORWARD_BYTES = 4 * 1024 * 1024;

/**
 * Idle connections to a leader close after this long: well before the peer port's own
 * keep-alive timeout (65 s), so a forward never goes out on a socket the leader is closing
 * (which would turn a write that never ran into a 504).
 */
const IDLE_SOCKET_MS = 30_000;

const HEADER_FROM = 'x-raft-from';
const HEADER_TIMESTAMP = 'x-raft-timestamp';
const HEADER_NONCE = 'x-raft-nonce';
const HEADER_SIGNATURE = 'x-raft-signature';

/** The body of a forwarded request. */
export interface ForwardRequest {
  op: Op;
  /** Hops taken so far, this one included. */
  hops: number;
  /** Milliseconds the sender will wait for the answer. */
  timeoutMs: number;
}

/**
 * The key that signs forwarded requests, derived from the cluster secret so that it
 * differs from the key the transport's handshake uses.
 */
export function forwardKey(secret: string): Buffer {
  return createHmac('sha256', secret).update('raft-kv forward key v1').digest();
}

/**
 * The MAC of a forwarded request. It names the receiver too: a request captured on its way
 * to one node (peer traffic is in clear) must not run again on another, whose nonce memory
 * has never seen it.
 */
function signature(
  key: Buffer,
  from: string,
  to: string,
  timestamp: string,
  nonce: string,
  body: Buffer,
): Buffer {
  return createHmac('sha256', key)
    .update(`raft-kv forward v2\n${from}\n${to}\n${timestamp}\n${nonce}\n`)
    .update(body)
    .digest();
}

/** The headers that authenticate a forwarded request's body, from `from` to `to`. */
export function signForward(
  key: Buffer | null,
  from: PeerId,
  to: PeerId,
  body: Buffer,
  now = Date.now(),
): Record<string, string> {
  const timestamp = String(now);
  const nonce = randomBytes(16).toString('base64url');
  const headers: Record<string, string> = {
    [HEADER_FROM]: from,
    [HEADER_TIMESTAMP]: timestamp,
    [HEADER_NONCE]: nonce,
  };
  if (key !== null)
    headers[HEADER_SIGNATURE] = signature(key, from, to, timestamp, nonce, body).toString('hex');
  return headers;
}

/**
 * Checks forwarded requests: signed with the cluster secret for this node, recent, from a
 * member, and never seen before (a replayed write would apply twice). The nonces seen live
 * in memory only, so a request signed before this node started is refused too: otherwise
 * one captured shortly before a restart could run again after it.
 */
export class ForwardVerifier {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly key: Buffer | null,
    /** The current members (a live view: the peer directory changes with the membership). */
    private readonly members: { has(id: PeerId): boolean },
    /** This node's id: requests signed for another node are refused. */
    private readonly self: PeerId,
    /** Requests timestamped before this (`Date.now()` at start) are refused. */
    private readonly notBefore = Date.now(),
    /** Most nonces remembered; past this, requests are refused until old ones expire. */
    private readonly maxNonces = 1_000_000,
  ) {}

  /**
   * Checks what the headers alone can tell, before a byte of the body is read: that
   * forwarding is on (the cluster has a secret), and that the request is signed, by a
   * member, recently. Returns why it is refused, or undefined.
   */
  precheck(headers: IncomingMessage['headers'], now = Date.now()): string | undefined {
    const h = this.signedHeaders(headers, now);
    return typeof h === 'string' ? h : undefined;
  }

  /** The signature headers, checked as far as they can be without the body; or why not. */
  private signedHeaders(
    headers: IncomingMessage['headers'],
    now: number,
  ): { key: Buffer; from: string; timestamp: string; nonce: string; sig: string } | string {
    if (this.key === null) return 'no cluster secret: forwarding is disabled';
    const from = headers[HEADER_FROM];
    const timestamp = headers[HEADER_TIMESTAMP];
    const nonce = headers[HEADER_NONCE];
    const sig = headers[HEADER_SIGNATURE];
    if (
      typeof from !== 'string' ||
      typeof timestamp !== 'string' ||
      typeof nonce !== 'string' ||
      typeof sig !== 'string'
    )
      return 'unsigned';
    if (!this.members.has(from)) return 'unknown sender';
    if (!/^\d{1,16}$/.test(timestamp) || Math.abs(now - Number(timestamp)) > FORWARD_CLOCK_SKEW_MS)
      return 'stale or future timestamp';
    if (!/^[0-9a-f]{64}$/.test(sig)) return 'bad signature';
    return { key: this.key, from, timestamp, nonce, sig };
  }

  /**
   * Returns why the request is refused, or undefined when it may run. Without a cluster
   * secret every forwarded request is refused: an unsigned one could come from anyone.
   */
  verify(headers: IncomingMessage['headers'], body: Buffer, now = Date.now()): string | undefined {
    const h = this.signedHeaders(headers, now);
    if (typeof h === 'string') return h;
    const { from, timestamp, nonce, sig } = h;
    const ts = Number(timestamp);
    const expected = signature(h.key, from, this.self, timestamp, nonce, body);
    if (!timingSafeEqual(expected, Buffer.from(sig, 'hex'))) return 'bad signature';
    if (ts < this.notBefore) return 'signed before this node started';
    this.prune(now);
    if (this.seen.has(nonce)) return 'replayed';
    if (this.seen.size >= this.maxNonces) return 'too many requests';
    this.seen.set(nonce, ts + 2 * FORWARD_CLOCK_SKEW_MS);
    return undefined;
  }

  private prune(now: number): void {
    // Insertion order is close to expiry order; stop at the first live entry.
    for (const [nonce, expiry] of this.seen) {
      if (expiry > now) break;
      this.seen.delete(nonce);
    }
  }
}

/** Parses a forwarded request's body; returns why it is not one. */
export function parseForwardRequest(value: unknown): (Omit<ForwardRequest, 'op'> & { op: unknown }) | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return 'the body must be an object';
  const { op, hops, timeoutMs } = value as Record<string, unknown>;
  if (typeof hops !== 'number' || !Number.isSafeInteger(hops) || hops < 1)
    return 'hops must be a positive integer';
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0)
    return 'timeoutMs must be a positive number';
  return { op, hops, timeoutMs };
}

/** A minimal logger (pino fits). */
export interface ForwardLogger {
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** TLS material to reach `wss://` peers' forward route over HTTPS with mutual TLS. */
export interface ForwarderTls {
  cert: string | Buffer;
  key: string | Buffer;
  ca: string | Buffer;
}

/**
 * Sends client operations to the leader over its peer port: the node CLI knows the
 * other nodes' peer URLs only, not their HTTP addresses. Without a cluster secret it
 * forwards nothing (the leader would refuse an unsigned request): a follower answers
 * 503 `not_leader` naming the leader.
 */
export class Forwarder {
  private readonly agent = new Agent({
    keepAlive: true,
    maxSockets: 512,
    scheduling: 'lifo',
    timeout: IDLE_SOCKET_MS,
  });
  private readonly tlsAgent: HttpsAgent | null;
  private readonly key: Buffer | null;
  private readonly reported = new Map<string, number>();

  constructor(
    private readonly self: PeerId,
    /** The peers' URLs (a live view of the peer directory). */
    private readonly peers: ReadonlyMap<PeerId, string>,
    secret: string | null,
    private readonly logger: ForwardLogger,
    tls: ForwarderTls | null = null,
  ) {
    this.key = secret === null ? null : forwardKey(secret);
    this.tlsAgent =
      tls === null
        ? null
        : new HttpsAgent({
            keepAlive: true,
            maxSockets: 512,
            scheduling: 'lifo',
            timeout: IDLE_SOCKET_MS,
            cert: tls.cert,
            key: tls.key,
            ca: tls.ca,
          });
  }

  /**
   * Runs `op` on `leader` and returns its answer. Fails closed: 503 when the request
   * surely did not reach the leader, 504 when a write may have (its outcome is unknown).
   */
  forward(leader: PeerId, op: Op, hops: number, deadline: number): Promise<HttpReply> {
    return this.attempt(leader, op, hops, deadline, true);
  }

  /** One try; `retry`: on a 401 (nothing ran), sign afresh and try once more. */
  private attempt(
    leader: PeerId,
    op: Op,
    hops: number,
    deadline: number,
    retry: boolean,
  ): Promise<HttpReply> {
    const base = this.peers.get(leader);
    if (base === undefined) return Promise.resolve(replies.electionInProgress());
    if (this.key === null) return Promise.resolve(replies.forwardingDisabled(leader));
    const remaining = Math.floor(deadline - performance.now());
    if (remaining <= 0) return Promise.resolve(replies.timeout());
    // The leader answers a little before we give up, so its own 504 (or success) wins.
    const margin = Math.min(250, Math.floor(remaining / 10));
    const payload: ForwardRequest = { op, hops, timeoutMs: Math.max(1, remaining - margin) };
    let body: Buffer;
    try {
      body = Buffer.from(JSON.stringify(payload), 'utf8');
    } catch {
      // Too deep for JSON.stringify: nothing was sent.
      return Promise.resolve(replies.badRequest('the request cannot be encoded to forward it to the leader'));
    }
    const url = new URL(FORWARD_PATH, base.replace(/^ws/, 'http'));
    const secure = url.protocol === 'https:';
    if (secure && this.tlsAgent === null) return Promise.resolve(replies.leaderUnreachable(leader));
    return new Promise<HttpReply>((resolve) => {
      let sent = false;
      let settled = false;
      const settle = (reply: HttpReply | Promise<HttpReply>): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(reply);
      };
      // Once the body left, a write may have been executed: failures are "unknown", not "refused".
      const failed = (why: string, err?: unknown): void => {
        if (settled) return;
        this.report(leader, why, err);
        settle(sent && isWrite(op) ? replies.timeout() : replies.leaderUnreachable(leader));
      };
      const options = {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': body.length,
          ...signForward(this.key, this.self, leader, body),
        },
      };
      const req = secure
        ? httpsRequest(url, {
            ...options,
            agent: this.tlsAgent!,
            // The leader's certificate must name the host dialed and the leader itself.
            checkServerIdentity: (host: string, cert: PeerCertificate) =>
              checkServerIdentity(host, cert) ??
              (certificateNamesPeer(cert, leader)
                ? undefined
                : new Error(`the certificate of ${url.host} does not name ${leader}`)),
          })
        : request(url, { ...options, agent: this.agent });
      const timer = setTimeout(() => {
        settle(sent || !isWrite(op) ? replies.timeout() : replies.leaderUnreachable(leader));
        req.destroy();
      }, remaining);
      req.on('finish', () => {
        sent = true;
      });
      req.on('error', (err) => failed('request failed', err));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_FORWARD_BYTES) {
            res.destroy();
            failed('answer too large');
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', (err) => failed('answer failed', err));
        res.on('aborted', () => failed('answer aborted'));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          let parsed: unknown;
          try {
            parsed = JSON.parse(Buffer.concat(chunks, size).toString('utf8'));
          } catch (err) {
            failed(`unreadable answer (HTTP ${status})`, err);
            return;
          }
          if (status === 401) {
            // Refused before running anything, so trying again is safe. Once: a leader that has just
            // restarted refuses what was signed before it started, and we may have signed a moment
            // too early. Refused again: the leader does not share our secret, or its clock is ahead.
            if (retry) {
              settle(this.attempt(leader, op, hops, deadline, false));
              return;
            }
            this.report(
              leader,
              'the leader refused our signature: do both nodes have the same --secret (and clocks in sync)?',
              undefined,
            );
            settle(replies.leaderUnreachable(leader));
            return;
          }
          if (
            typeof parsed !== 'object' ||
            parsed === null ||
            Array.isArray(parsed) ||
            status < 200 ||
            status > 599
          ) {
            failed(`unexpected answer (HTTP ${status})`);
            return;
          }
          const replayed = res.headers['idempotent-replayed'];
          settle({
            status,
            body: parsed as Record<string, unknown>,
            ...(replayed === 'true' ? { headers: { 'idempotent-replayed': 'true' } } : {}),
          });
        });
      });
      req.end(body);
    });
  }

  /** Closes idle connections. */
  close(): void {
    this.agent.destroy();
    this.tlsAgent?.destroy();
  }

  /** Logs a forwarding failure at most once a minute per leader and reason (not once per request). */
  private report(leader: PeerId, why: string, err: unknown): void {
    const key = `${leader}\0${why}`;
    const now = performance.now();
    const last = this.reported.get(key);
    if (last !== undefined && now - last < 60_000) return;
    this.reported.set(key, now);
    this.logger.warn(
      { leader, err: err instanceof Error ? err.message : err },
      `forwarding to the leader failed: ${why}`,
    );
  }
}
