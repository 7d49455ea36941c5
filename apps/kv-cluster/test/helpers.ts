import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { freePorts } from '../bench/procs.js';
import type { PeerStatus } from '@raft/core';

/** The built CLI: tests run real `raft-kv node` processes. */
export const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

/** Free TCP ports on loopback (shared with the benchmark's process helpers). */
export { freePorts };

/** An HTTP answer. */
export interface HttpResult {
  status: number;
  /** The parsed JSON body, or undefined when it is not JSON. */
  body: unknown;
  headers: Record<string, string | string[] | undefined>;
}

/** Options of {@link http}. */
export interface HttpOptions {
  method?: string;
  body?: string | Buffer;
  headers?: Record<string, string | number>;
  /** @default 10000 */
  timeoutMs?: number;
  /** Send the body in chunks (no content-length). */
  chunked?: boolean;
}

/** One HTTP request on a fresh connection. Rejects on a connection error or after `timeoutMs`. */
export function http(url: string, opts: HttpOptions = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...opts.headers };
    if (opts.body !== undefined && opts.chunked !== true) headers['content-length'] = Buffer.byteLength(opts.body);
    const req = request(url, { method: opts.method ?? 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
      });
    });
    const timer = setTimeout(() => req.destroy(new Error('client timeout')), opts.timeoutMs ?? 10_000);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    if (opts.body !== undefined && opts.chunked === true) {
      const buf = Buffer.from(opts.body);
      const step = 64 * 1024;
      for (let i = 0; i < buf.length; i += step) req.write(buf.subarray(i, i + step));
      req.end();
    } else {
      req.end(opts.body);
    }
  });
}

/** Polls `fn` until it returns a value other than undefined; throws after `ms`. */
export async function until<T>(what: string, ms: number, fn: () => Promise<T | undefined> | T | undefined, intervalMs = 100): Promise<T> {
  const deadline = performance.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}${last === undefined ? '' : ` (last error: ${last instanceof Error ? last.message : JSON.stringify(last)})`}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Runs the CLI to completion (e.g. `raft-kv members ...`); its exit code and output. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A child process running `raft-kv node`. */
export class NodeProcess {
  child: ChildProcess | null = null;
  /** Recent output lines, for diagnostics. */
  readonly output: string[] = [];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> = Promise.resolve({ code: null, signal: null });
  paused = false;

  constructor(
    readonly id: string,
    readonly args: string[],
    readonly env: NodeJS.ProcessEnv,
  ) {}

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(): void {
    if (this.running) throw new Error(`${this.id} is already running`);
    const child = spawn(process.execPath, [CLI, ...this.args], { stdio: ['ignore', 'pipe', 'pipe'], env: this.env });
    this.child = child;
    this.paused = false;
    const keep = (chunk: Buffer): void => {
      for (const line of chunk.toString('utf8').split('\n')) if (line.length > 0) this.output.push(line);
      if (this.output.length > 400) this.output.splice(0, this.output.length - 400);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  signal(sig: NodeJS.Signals): void {
    if (!this.running) return;
    this.child?.kill(sig);
    if (sig === 'SIGSTOP') this.paused = true;
    if (sig === 'SIGCONT') this.paused = false;
  }

  /** SIGCONT (a stopped process cannot die gracefully), then SIGKILL; waits for the exit. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.signal('SIGCONT');
    this.signal('SIGKILL');
    await this.exited;
  }
}

/** Several `raft-kv node` processes on loopback, with free ports and a temp data directory. */
export class LocalCluster {
  readonly nodes = new Map<string, NodeProcess>();
  readonly httpUrl = new Map<string, string>();
  readonly peerUrl = new Map<string, string>();

  private constructor(
    readonly ids: string[],
    readonly dir: string,
  ) {}

  /**
   * `initial`: the ids whose `--peers` lists only them (the first cluster); every other id
   * lists everyone and starts with `--join`, to be added later. Default: every id.
   */
  static async create(opts: {
    ids: string[];
    dir: string;
    secret?: string;
    requestTimeoutMs?: number;
    logLevel?: string;
    initial?: string[];
    extraArgs?: string[];
  }): Promise<LocalCluster> {
    const c = new LocalCluster(opts.ids, opts.dir);
    const ports = await freePorts(opts.ids.length * 2);
    const initial = opts.initial ?? opts.ids;
    const list = (ids: string[]): string => ids.map((id) => `${id}=ws://127.0.0.1:${ports[2 * opts.ids.indexOf(id)]}`).join(',');
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env['RAFT_SECRET'];
    if (opts.secret !== undefined) env['RAFT_SECRET'] = opts.secret;
    opts.ids.forEach((id, i) => {
      const peerPort = ports[2 * i]!;
      const httpPort = ports[2 * i + 1]!;
      c.peerUrl.set(id, `http://127.0.0.1:${peerPort}`);
      c.httpUrl.set(id, `http://127.0.0.1:${httpPort}`);
      const args = [
        'node',
        '--id', id,
        '--listen', `127.0.0.1:${peerPort}`,
        '--http', `127.0.0.1:${httpPort}`,
        '--data', `${opts.dir}/${id}`,
        '--peers', initial.includes(id) ? list(initial) : list(opts.ids),
        '--log-level', opts.logLevel ?? 'info',
        '--request-timeout', String(opts.requestTimeoutMs ?? 5000),
        ...(initial.includes(id) ? [] : ['--join']),
        ...(opts.extraArgs ?? []),
      ];
      c.nodes.set(id, new NodeProcess(id, args, env));
    });
    return c;
  }

  node(id: string): NodeProcess {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  /** The peer URL (`ws://...`) a node listens on, as `raft-kv members add` wants it. */
  wsUrl(id: string): string {
    const u = this.peerUrl.get(id);
    if (u === undefined) throw new Error(`no node ${id}`);
    return u.replace(/^http/, 'ws');
  }

  /** `HOST:PORT` of a node's HTTP API, as `--http` of `raft-kv members` wants it. */
  httpAddr(id: string): string {
    return this.url(id).replace(/^http:\/\//, '');
  }

  url(id: string): string {
    const u = this.httpUrl.get(id);
    if (u === undefined) throw new Error(`no node ${id}`);
    return u;
  }

  start(...ids: string[]): void {
    for (const id of ids.length === 0 ? this.ids : ids) this.node(id).start();
  }

  running(): string[] {
    return this.ids.filter((id) => this.node(id).running && !this.node(id).paused);
  }

  async status(id: string): Promise<PeerStatus | undefined> {
    const r = await http(`${this.url(id)}/status`, { timeoutMs: 2000 });
    return r.status === 200 ? (r.body as PeerStatus) : undefined;
  }

  /**
   * Waits until one of `among` is leader and the others of `among` that answer know it.
   * Returns its id.
   */
  async waitForLeader(among: string[] = this.running(), ms = 20_000): Promise<string> {
    return until(`a leader among ${among.join(', ')}`, ms, async () => {
      const statuses = await Promise.all(among.map((id) => this.status(id).catch(() => undefined)));
      const leader = statuses.find((s) => s?.role === 'leader');
      if (leader === undefined) return undefined;
      const agree = statuses.every((s) => s !== undefined && s.leader === leader.name && s.term === leader.term);
      return agree ? leader.name : undefined;
    });
  }

  /** Kills every process (SIGCONT first), whatever state it is in. */
  async destroy(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((n) => n.kill()));
  }

  /** The recent output of every node, for a failing test's message. */
  logs(): string {
    return [...this.nodes.values()].map((n) => `--- ${n.id}\n${n.output.slice(-60).join('\n')}`).join('\n');
  }
}
