import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isLoopbackHost } from './options.js';
import type { HttpReply } from './ops.js';

/** Methods that change nothing: neither Origin nor the admin token is checked for them. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The host names every client API answers to. */
export const DEFAULT_ALLOWED_HOSTS = ['localhost', '127.0.0.1', '::1'] as const;

/** What the client API checks before it routes a request, from the node's options. */
export interface HttpGuardOptions {
  /** Host names allowed in `Host` (lowercase, IPv6 without brackets); `*` allows any. */
  allowedHosts: readonly string[];
  /** The port the API listens on: a same-origin `Origin` names it. */
  port: number;
  /** The token `/cluster/*` changes need, or null (then only loopback clients may make them). */
  adminToken: string | null;
}

/** The host name of a `Host` header or of a URL's authority: lowercase, no port, no brackets. */
export function hostName(authority: string): string | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s/@]+))(?::(\d{1,5}))?$/.exec(authority.trim());
  if (m === null) return null;
  return (m[1] ?? m[2] ?? '').toLowerCase();
}

/**
 * The client API's guard against requests a browser sends for a web page (cross-site
 * requests, DNS rebinding) and against strangers changing the membership.
 */
export class HttpGuard {
  private readonly hosts: Set<string>;
  private readonly any: boolean;
  private readonly tokenDigest: Buffer | null;

  constructor(private readonly opts: HttpGuardOptions) {
    this.any = opts.allowedHosts.includes('*');
    this.hosts = new Set([...DEFAULT_ALLOWED_HOSTS, ...opts.allowedHosts]);
    this.tokenDigest = opts.adminToken === null ? null : digest(opts.adminToken);
  }

  /**
   * 421 when `Host` is missing or not an allowed host name (a rebinding DNS name points a
   * web page's requests here under a foreign name), else undefined. Every route.
   */
  checkHost(req: IncomingMessage): HttpReply | undefined {
    const host = req.headers.host;
    const name = host === undefined ? null : hostName(host);
    if (name !== null && (this.any || this.hosts.has(name))) return undefined;
    return {
      status: 421,
      body: {
        error: 'misdirected_request',
        message: `this node does not answer to Host ${JSON.stringify(host ?? '')}: add the name to --allowed-hosts`,
      },
    };
  }

  /**
   * 403 when a state-changing request carries an `Origin` other than this API's own (a web
   * page on another site, or `null`). Requests without `Origin` (curl, the CLI) pass.
   */
  checkOrigin(req: IncomingMessage): HttpReply | undefined {
    if (SAFE_METHODS.has(req.method ?? 'GET')) return undefined;
    const origin = req.headers.origin;
    if (origin === undefined) return undefined;
    let url: URL | null = null;
    try {
      url = new URL(origin);
    } catch {
      url = null;
    }
    const name = url === null ? null : hostName(url.host);
    const port =
      url === null ? NaN : Number(url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : url.port);
    if (name !== null && (this.any || this.hosts.has(name)) && port === this.opts.port) return undefined;
    return {
      status: 403,
      body: { error: 'forbidden_origin', message: `cross-origin requests are refused (Origin ${origin})` },
    };
  }

  /**
   * For `/cluster/*` changes: with an admin token, `Authorization: Bearer TOKEN` (compared in
   * constant time) or 401; without one, 403 unless the client is on a loopback address.
   */
  checkAdmin(req: IncomingMessage): HttpReply | undefined {
    if (this.tokenDigest === null) {
      if (isLoopbackHost(req.socket.remoteAddress ?? '')) return undefined;
      return {
        status: 403,
        body: {
          error: 'forbidden',
          message: 'membership and leadership changes from another host need --admin-token on the nodes',
        },
      };
    }
    const header = req.headers.authorization;
    const m = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (m !== null && timingSafeEqual(digest(m[1]!), this.tokenDigest)) return undefined;
    return {
      status: 401,
      body: { error: 'unauthorized', message: 'this needs the admin token (Authorization: Bearer TOKEN)' },
      headers: { 'www-authenticate': 'Bearer realm="raft-kv"' },
    };
  }
}

/** Same-length digests, so that comparing them in constant time reveals nothing, not even a length. */
function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/**
 * 415 unless the request's `Content-Type` is `application/json` (parameters such as
 * `charset` allowed): a web page can send `text/plain` or a form without a preflight.
 */
export function checkJsonContentType(req: IncomingMessage): HttpReply | undefined {
  const type = req.headers['content-type'];
  const media = type?.split(';')[0]?.trim().toLowerCase();
  if (media === 'application/json') return undefined;
  return {
    status: 415,
    body: {
      error: 'unsupported_media_type',
      message: `the body must be sent with Content-Type: application/json, got ${JSON.stringify(type ?? '(none)')}`,
    },
  };
}
