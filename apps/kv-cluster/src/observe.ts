import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PeerId, PeerStatus, RaftMetrics } from '@raft/core';
import type { WebSocketTransportMetrics } from '@raft/transport-ws';
import { route as clientRoute } from './client-api.js';
import { FORWARD_PATH } from './forward.js';
import { sendReply } from './http-util.js';
import { nodeMetrics, type HttpRouteLabel, type NodeMetrics } from './metrics.js';
import type { HttpReply, Op } from './ops.js';
import { replies } from './ops.js';
import {
  History,
  nodeReport,
  overview,
  type ClusterOverview,
  type MemberView,
  type NodeReport,
} from './overview.js';

/** The peer-port path where a node reports its figures to the other members' dashboards. */
export const FIGURES_PATH = '/_raft/figures';

/** How long the dashboard's aggregation waits for a member before showing it down. */
export const MEMBER_TIMEOUT_MS = 700;

/** What the operator endpoints need from the node. */
export interface ObserveContext {
  id: PeerId;
  status(): PeerStatus;
  figures(): RaftMetrics;
  transport(): WebSocketTransportMetrics;
  /** The members' peer URLs (the replicated directory), this node's included. */
  members(): ReadonlyMap<PeerId, string>;
  /** Runs an operation as the client API would (a read is forwarded to the leader). */
  execute(op: Op, deadline: number, hops: number): Promise<HttpReply>;
  /** True once the node started shutting down. */
  closing(): boolean;
}

/** The operator endpoints of a node, and the hook that counts every HTTP request. */
export interface Observe {
  /** Answers `/metrics`, `/health`, `/healthz`, `/readyz` and `/dashboard...`; false for other paths. */
  client(req: IncomingMessage, res: ServerResponse): boolean;
  /** Answers `GET /_raft/figures` on the peer port; false for other paths. */
  peer(req: IncomingMessage, res: ServerResponse): boolean;
  /** Counts the request in `raft_kv_http_requests_total` once it is answered. */
  count(req: IncomingMessage, res: ServerResponse, port: 'client' | 'peer'): void;
  readonly metrics: NodeMetrics;
  stop(): void;
}

/** Why `/readyz` says 503. */
export type NotReadyReason = 'shutting_down' | 'stopped' | 'no_leader' | 'applying' | 'reads_unavailable';

const STATIC: Record<string, { file: URL; type: string }> = {
  '/dashboard': {
    file: new URL('../dashboard/index.html', import.meta.url),
    type: 'text/html; charset=utf-8',
  },
  '/dashboard/': {
    file: new URL('../dashboard/index.html', import.meta.url),
    type: 'text/html; charset=utf-8',
  },
  '/dashboard/style.css': {
    file: new URL('../dashboard/style.css', import.meta.url),
    type: 'text/css; charset=utf-8',
  },
  '/dashboard/app.js': {
    file: new URL('./dashboard/app.js', import.meta.url),
    type: 'text/javascript; charset=utf-8',
  },
};

/** The operator endpoints: Prometheus metrics, probes, and the dashboard. */
export function observe(ctx: ObserveContext): Observe {
  const metrics = nodeMetrics(ctx.id, ctx);
  const history = new History(() => ctx.figures());
  const files = new Map<string, Buffer>();
  let cached: { at: number; value: Promise<ClusterOverview> } | null = null;

  const report = (): NodeReport => nodeReport(ctx.id, ctx.figures(), history);

  const fetchMember = async (id: PeerId, url: string): Promise<MemberView> => {
    if (id === ctx.id) return { id, url, up: true, report: report() };
    const http = url.replace(/^ws/, 'http').replace(/\/+$/, '') + FIGURES_PATH;
    try {
      const res = await fetch(http, { signal: AbortSignal.timeout(MEMBER_TIMEOUT_MS) });
      if (res.status !== 200) return { id, url, up: false, error: `HTTP ${res.status}` };
      return { id, url, up: true, report: (await res.json()) as NodeReport };
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      return {
        id,
        url,
        up: false,
        error: e.cause?.code ?? (e.name === 'TimeoutError' ? 'timeout' : e.message),
      };
    }
  };
  const clusterOverview = (): Promise<ClusterOverview> => {
    // Several browsers polling share one round of requests to the members.
    const now = performance.now();
    if (cached !== null && now - cached.at < 250) return cached.value;
    const members = [...ctx.members()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const value = Promise.all(members.map(([id, url]) => fetchMember(id, url))).then((m) =>
      overview(ctx.id, m),
    );
    cached = { at: now, value };
    return value;
  };

  const health = (): HttpReply => {
    const s = ctx.status();
    if (ctx.closing()) return { status: 503, body: { status: 'shutting_down' } };
    if (s.stopped) return { status: 503, body: { status: 'stopped' } };
    return { status: 200, body: { status: 'ok', id: ctx.id } };
  };

  const readiness = async (): Promise<HttpReply> => {
    const notReady = (reason: NotReadyReason, extra: object = {}): HttpReply => {
      const s = ctx.status();
      return {
        status: 503,
        body: {
          ready: false,
          reason,
          leader: s.leader,
          commitIndex: s.commitIndex,
          lastApplied: s.lastApplied,
          ...extra,
        },
      };
    };
    if (ctx.closing()) return notReady('shutting_down');
    const s = ctx.status();
    if (s.stopped) return notReady('stopped');
    if (s.leader === null) return notReady('no_leader');
    // Applied up to the commit index known now (waiting briefly: applying follows committing).
    const deadline = performance.now() + 1000;
    const target = s.commitIndex;
    while (ctx.status().lastApplied < target) {
      if (performance.now() > deadline) return notReady('applying', { target });
      await new Promise((r) => setTimeout(r, 10));
    }
    // A linearizable read through the normal path: ReadIndex on the leader, forwarded from a follower.
    const reply = await ctx.execute({ kind: 'get', key: 'readyz' }, deadline, 0);
    if (reply.status !== 200 && reply.status !== 404)
      return notReady('reads_unavailable', { read: reply.body });
    const after = ctx.status();
    return {
      status: 200,
      body: {
        ready: true,
        leader: after.leader,
        commitIndex: after.commitIndex,
        lastApplied: after.lastApplied,
      },
    };
  };

  const serveStatic = async (path: string, res: ServerResponse): Promise<void> => {
    const entry = STATIC[path]!;
    let body = files.get(path);
    if (body === undefined) {
      body = await readFile(entry.file);
      files.set(path, body);
    }
    res.writeHead(200, {
      'content-type': entry.type,
      'content-length': body.length,
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
      'content-security-policy':
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
    });
    res.end(body);
  };

  const fail = (res: ServerResponse, err: unknown): void => {
    void err;
    sendReply(res, replies.internal(), { close: true });
  };

  return {
    metrics,
    client(req, res) {
      const path = pathOf(req);
      if (!isObservePath(path)) return false;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        sendReply(res, replies.methodNotAllowed(['GET']), { close: true });
        return true;
      }
      if (path === '/metrics') {
        metrics.registry.metrics().then(
          (text) => {
            res.writeHead(200, {
              'content-type': metrics.registry.contentType,
              'content-length': Buffer.byteLength(text),
              'cache-control': 'no-store',
            });
            res.end(text);
          },
          (err: unknown) => fail(res, err),
        );
      } else if (path === '/health' || path === '/healthz') {
        sendReply(res, health());
      } else if (path === '/readyz') {
        readiness().then(
          (r) => sendReply(res, r),
          (err: unknown) => fail(res, err),
        );
      } else if (path === '/dashboard/api/cluster') {
        clusterOverview().then(
          (o) => sendReply(res, { status: 200, body: { ...o } }),
          (err: unknown) => fail(res, err),
        );
      } else if (path in STATIC) {
        serveStatic(path, res).catch((err: unknown) => fail(res, err));
      } else {
        sendReply(res, replies.notFound());
      }
      return true;
    },
    peer(req, res) {
      if (pathOf(req) !== FIGURES_PATH) return false;
      if (req.method !== 'GET') sendReply(res, replies.methodNotAllowed(['GET']), { close: true });
      else sendReply(res, { status: 200, body: { ...report() } });
      return true;
    },
    count(req, res, port) {
      const start = performance.now();
      const label = port === 'peer' ? peerRouteLabel(req) : clientRouteLabel(req);
      res.once('finish', () =>
        metrics.observeRequest(label, req.method ?? '', res.statusCode, (performance.now() - start) / 1000),
      );
    },
    stop() {
      history.stop();
    },
  };
}

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

function isObservePath(path: string): boolean {
  return (
    path === '/metrics' ||
    path === '/health' ||
    path === '/healthz' ||
    path === '/readyz' ||
    path === '/dashboard' ||
    path.startsWith('/dashboard/')
  );
}

/** A fixed label for the request's route: never user input (keys, ids) in a label. */
export function clientRouteLabel(req: IncomingMessage): HttpRouteLabel {
  const path = pathOf(req);
  if (path === '/metrics') return 'metrics';
  if (path === '/health' || path === '/healthz') return 'health';
  if (path === '/readyz') return 'readyz';
  if (path === '/dashboard' || path.startsWith('/dashboard/')) return 'dashboard';
  const r = clientRoute(req.method ?? '', req.url ?? '');
  switch (r.kind) {
    case 'kv':
    case 'cas':
    case 'status':
    case 'cluster':
      return r.kind;
    case 'members-add':
    case 'members-remove':
    case 'members-cancel':
      return 'cluster_members';
    case 'leader':
      return 'cluster_leader';
    case 'reply': {
      // A refused request still names its route when the path is one (405, 400 on a bad key).
      const first = path.split('/')[1];
      if (first === 'kv') return path.endsWith('/cas') ? 'cas' : 'kv';
      if (first === 'status') return 'status';
      if (first === 'cluster') return 'cluster';
      return 'other';
    }
  }
}

function peerRouteLabel(req: IncomingMessage): HttpRouteLabel {
  const path = pathOf(req);
  if (path === FORWARD_PATH) return 'forward';
  if (path === FIGURES_PATH) return 'peer_figures';
  return 'other';
}
