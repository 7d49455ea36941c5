import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { createHmac, randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { TestCertificates } from '@raft/testkit/tls';
import { connect, type Socket } from 'node:net';
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

/** The CA that {@link http} trusts for `https://` URLs (set by a cluster that runs TLS). */
let trustedCa: Buffer | null = null;

/**
 * One HTTP (or HTTPS, trusting the CA of the last TLS {@link LocalCluster}) request on a
 * fresh connection. Rejects on a connection error or after `timeoutMs`.
 */
export function http(url: string, opts: HttpOptions = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...opts.headers };
    // The client API takes bodies as JSON only (415 otherwise).
    if (opts.body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type'))
      headers['content-type'] = 'application/json';
    if (opts.body !== undefined && opts.chunked !== true)
      headers['content-length'] = Buffer.byteLength(opts.body);
    const options = { method: opts.method ?? 'GET', headers, agent: false as const };
    const onResponse = (res: IncomingMessage): void => {
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
    };
    const req = url.startsWith('https:')
      ? httpsRequest(url, { ...options, ...(trustedCa === null ? {} : { ca: trustedCa }) }, onResponse)
      : httpRequest(url, options, onResponse);
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
export async function until<T>(
  what: string,
  ms: number,
  fn: () => Promise<T | undefined> | T | undefined,
  intervalMs = 100,
): Promise<T> {
  const deadline = performance.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (performance.now() > deadline)
      throw new Error(
        `timed out waiting for ${what}${last === undefined ? '' : ` (last error: ${last instanceof Error ? last.message : JSON.stringify(last)})`}`,
      );
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Runs the CLI to completion (e.g. `raft-kv members ...`); its exit code and output. */
export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** How a node's process ended. */
export interface NodeExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when the test killed it ({@link NodeProcess.kill}); anything else is a crash. */
  killed: boolean;
  /** `performance.now()` of the exit. */
  at: number;
}

/** True for an output line that points at a bug: pino's error/fatal, or a line that is not JSON (a stack trace). */
export function isProblemLine(line: string): boolean {
  if (!line.startsWith('{')) return true;
  try {
    const level = (JSON.parse(line) as { level?: unknown }).level;
    return typeof level === 'number' && level >= 50;
  } catch {
    return true;
  }
}

/** A child process running `raft-kv node`. */
export class NodeProcess {
  child: ChildProcess | null = null;
  /** Recent output lines, for diagnostics. */
  readonly output: string[] = [];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> = Promise.resolve({
    code: null,
    signal: null,
  });
  paused = false;
  /** When set, every line the process prints is also appended to this file (all of it, not only the recent lines). */
  logFile: string | null = null;
  /** Every exit of this node's processes; `killed` when it followed {@link NodeProcess.kill}. */
  readonly exits: NodeExit[] = [];
  /**
   * Output lines that point at a bug: pino lines at level error (50) or fatal (60), and
   * lines that are not JSON at all (an uncaught exception's stack trace). At most 200.
   */
  readonly problems: string[] = [];
  private killing = false;
  /** Counts starts and signals: an observer that saw the same count before and after saw no fault of this node. */
  changes = 0;

  constructor(
    readonly id: string,
    readonly args: string[],
    readonly env: NodeJS.ProcessEnv,
  ) {}

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Running, not paused, and not being killed (a SIGKILLed process runs until its exit is seen). */
  get up(): boolean {
    return this.running && !this.paused && !this.killing;
  }

  start(): void {
    if (this.running) throw new Error(`${this.id} is already running`);
    const child = spawn(process.execPath, [CLI, ...this.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: this.env,
    });
    this.child = child;
    this.paused = false;
    this.killing = false;
    this.changes++;
    const logFile = this.logFile;
    if (logFile !== null) appendFileSync(logFile, `--- ${new Date().toISOString()} start ${this.id}\n`);
    // Per stream, a line split across chunks is kept until its end arrives.
    const keeper = (): ((chunk: Buffer) => void) => {
      let partial = '';
      return (chunk) => {
        const text = chunk.toString('utf8');
        if (logFile !== null) appendFileSync(logFile, text);
        const lines = (partial + text).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          if (line.length === 0) continue;
          this.output.push(line);
          if (this.problems.length < 200 && isProblemLine(line)) this.problems.push(line);
        }
        if (this.output.length > 400) this.output.splice(0, this.output.length - 400);
      };
    };
    child.stdout?.on('data', keeper());
    child.stderr?.on('data', keeper());
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exits.push({ code, signal, killed: this.killing, at: performance.now() });
        if (logFile !== null)
          appendFileSync(
            logFile,
            `--- ${new Date().toISOString()} exit ${this.id} code=${code} signal=${signal}\n`,
          );
        resolve({ code, signal });
      }),
    );
  }

  signal(sig: NodeJS.Signals): void {
    if (!this.running) return;
    this.changes++;
    this.child?.kill(sig);
    if (sig === 'SIGSTOP') this.paused = true;
    if (sig === 'SIGCONT') this.paused = false;
  }

  /** SIGCONT (a stopped process cannot die gracefully), then SIGKILL; waits for the exit. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.killing = true;
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
    /** Append each node's whole output to `DIR/ID.out.log` (beside its data directory). */
    logToFiles?: boolean;
    /**
     * Run TLS: mutual TLS between peers (`wss://`, each node's certificate from `tls.certs[ID]`)
     * and HTTPS for the client API (the same certificate); {@link http} trusts `tls.ca`.
     */
    tls?: TestCertificates;
  }): Promise<LocalCluster> {
    const c = new LocalCluster(opts.ids, opts.dir);
    const ports = await freePorts(opts.ids.length * 2);
    const initial = opts.initial ?? opts.ids;
    const tls = opts.tls;
    if (tls !== undefined) trustedCa = tls.ca;
    const scheme = tls === undefined ? 'ws' : 'wss';
    const list = (ids: string[]): string =>
      ids.map((id) => `${id}=${scheme}://127.0.0.1:${ports[2 * opts.ids.indexOf(id)]}`).join(',');
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env['RAFT_SECRET'];
    if (opts.secret !== undefined) env['RAFT_SECRET'] = opts.secret;
    opts.ids.forEach((id, i) => {
      const peerPort = ports[2 * i]!;
      const httpPort = ports[2 * i + 1]!;
      c.peerUrl.set(id, `${tls === undefined ? 'http' : 'https'}://127.0.0.1:${peerPort}`);
      c.httpUrl.set(id, `${tls === undefined ? 'http' : 'https'}://127.0.0.1:${httpPort}`);
      const cert = tls?.certs[id];
      const tlsArgs =
        tls === undefined || cert === undefined
          ? []
          : [
              '--peer-cert-file',
              cert.certFile,
              '--peer-key-file',
              cert.keyFile,
              '--peer-trusted-ca-file',
              tls.caFile,
              '--cert-file',
              cert.certFile,
              '--key-file',
              cert.keyFile,
            ];
      const args = [
        'node',
        '--id',
        id,
        '--listen',
        `127.0.0.1:${peerPort}`,
        '--http',
        `127.0.0.1:${httpPort}`,
        '--data',
        `${opts.dir}/${id}`,
        '--peers',
        initial.includes(id) ? list(initial) : list(opts.ids),
        '--log-level',
        opts.logLevel ?? 'info',
        '--request-timeout',
        String(opts.requestTimeoutMs ?? 5000),
        ...(initial.includes(id) ? [] : ['--join']),
        ...tlsArgs,
        ...(opts.extraArgs ?? []),
      ];
      const node = new NodeProcess(id, args, env);
      if (opts.logToFiles === true) node.logFile = `${opts.dir}/${id}.out.log`;
      c.nodes.set(id, node);
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
    return this.url(id).replace(/^https?:\/\//, '');
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
      const agree = statuses.every(
        (s) => s !== undefined && s.leader === leader.name && s.term === leader.term,
      );
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

// ---- for chaos runs ----------------------------------------------------------------------

/** The leader that the running, unpaused nodes report right now (one round of `/status`), if any. */
export async function currentLeader(cluster: LocalCluster): Promise<string | undefined> {
  const statuses = await Promise.all(
    cluster.running().map((id) => cluster.status(id).catch(() => undefined)),
  );
  const leaders = statuses.filter((s) => s?.role === 'leader');
  // Two nodes that both say "leader" (an old one that has not heard of the new term yet): the higher term.
  leaders.sort((a, b) => (b?.term ?? 0) - (a?.term ?? 0));
  return leaders[0]?.name;
}

/** Exits of node processes that the test did not cause (crashes), with the node's id. */
export function crashes(cluster: LocalCluster): (NodeExit & { id: string })[] {
  return [...cluster.nodes.values()].flatMap((n) =>
    n.exits.filter((e) => !e.killed).map((e) => ({ ...e, id: n.id })),
  );
}

/** What a raw connection got back before it closed or the time ran out. */
export interface RawResult {
  /** Bytes received. */
  data: Buffer;
  /** How it ended: the server closed (`end`), reset (`error`), or it was still open at the deadline (`timeout`). */
  ending: 'end' | 'error' | 'timeout' | 'refused';
  /** The status of the first HTTP response in `data`, if there is one. */
  status?: number;
}

/**
 * Opens a TCP connection, writes `chunks` (waiting `gapMs` between them, for slow
 * senders), and collects what comes back until the server closes or `timeoutMs` passes.
 * Never rejects. `halfClose` ends the writing side after the last chunk.
 */
/** How much longer than its nominal timeout a raw exchange waits for an answer (see below). */
const RAW_TIMEOUT_SCALE = 3;

export function rawExchange(
  port: number,
  chunks: (string | Buffer)[],
  opts: { gapMs?: number; timeoutMs?: number; halfClose?: boolean; host?: string } = {},
): Promise<RawResult> {
  return new Promise((resolve) => {
    const received: Buffer[] = [];
    const socket = connect({ port, host: opts.host ?? '127.0.0.1' });
    let done = false;
    const timers: ReturnType<typeof setTimeout>[] = [];
    const finish = (ending: RawResult['ending']): void => {
      if (done) return;
      done = true;
      for (const t of timers) clearTimeout(t);
      socket.destroy();
      const data = Buffer.concat(received);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(data.subarray(0, 16).toString('latin1'));
      resolve({ data, ending, ...(m === null ? {} : { status: Number(m[1]) }) });
    };
    let size = 0;
    socket.on('data', (c: Buffer) => {
      // Keep the first MiB: enough for any answer, bounded against a flood.
      if (size < 1024 * 1024) received.push(c);
      size += c.length;
    });
    socket.on('end', () => finish('end'));
    socket.on('close', () => finish('end'));
    socket.on('error', (err: NodeJS.ErrnoException) =>
      finish(err.code === 'ECONNREFUSED' ? 'refused' : 'error'),
    );
    // The timeout only catches a node that hangs: a healthy node answers long before it. It is
    // scaled for a loaded CI machine (a 3 s budget timed out at a load average of 30 on 2 cores).
    timers.push(setTimeout(() => finish('timeout'), (opts.timeoutMs ?? 5000) * RAW_TIMEOUT_SCALE));
    socket.on('connect', () => {
      let i = 0;
      const writeNext = (): void => {
        if (done) return;
        if (i >= chunks.length) {
          if (opts.halfClose === true) socket.end();
          return;
        }
        socket.write(chunks[i++]!);
        if ((opts.gapMs ?? 0) > 0) timers.push(setTimeout(writeNext, opts.gapMs));
        else writeNext();
      };
      writeNext();
    });
  });
}

/** Options of {@link wsFrame}. */
export interface WsFrameOptions {
  /** @default true */
  fin?: boolean;
  /** The three RSV bits (0-7). @default 0 */
  rsv?: number;
  /** Clients must mask their frames; false sends an unmasked one (a protocol error). @default true */
  mask?: boolean;
  /** A length to announce instead of the payload's (lies: more, less, or 2^63-1). */
  announcedLength?: bigint;
}

/** One WebSocket frame (RFC 6455 section 5.2), as a client sends it, possibly malformed on purpose. */
export function wsFrame(opcode: number, payload: Buffer, opts: WsFrameOptions = {}): Buffer {
  const length = opts.announcedLength ?? BigInt(payload.length);
  const first = ((opts.fin ?? true) ? 0x80 : 0) | ((opts.rsv ?? 0) << 4) | (opcode & 0x0f);
  const masked = opts.mask ?? true;
  let header: Buffer;
  if (length < 126n) {
    header = Buffer.from([first, (masked ? 0x80 : 0) | Number(length)]);
  } else if (length < 65536n) {
    header = Buffer.alloc(4);
    header[0] = first;
    header[1] = (masked ? 0x80 : 0) | 126;
    header.writeUInt16BE(Number(length), 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = first;
    header[1] = (masked ? 0x80 : 0) | 127;
    header.writeBigUInt64BE(length, 2);
  }
  if (!masked) return Buffer.concat([header, payload]);
  const key = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] = body[i]! ^ key[i % 4]!;
  return Buffer.concat([header, key, body]);
}

/** The HTTP request that opens a WebSocket (RFC 6455 section 4.1) on `path`. */
export function wsUpgradeRequest(port: number, path = '/', extraHeaders = ''): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${extraHeaders}\r\n`
  );
}

/** A value of the tiny MessagePack subset {@link msgpack} writes and {@link unmsgpack} reads. */
export type PackValue =
  null | boolean | number | string | Buffer | PackValue[] | { [key: string]: PackValue };

/**
 * Encodes a value as MessagePack (nil, booleans, integers, float64, str, bin, array,
 * map): enough to speak the transport's handshake, or to lie in it, without a dependency.
 */
export function msgpack(value: PackValue): Buffer {
  const out: Buffer[] = [];
  const head = (...bytes: number[]): void => void out.push(Buffer.from(bytes));
  const sized = (
    n: number,
    small: number | null,
    smallLimit: number,
    c8: number | null,
    c16: number,
    c32: number,
  ): void => {
    if (small !== null && n < smallLimit) head(small | n);
    else if (c8 !== null && n < 256) head(c8, n);
    else if (n < 65536) head(c16, n >> 8, n & 0xff);
    else {
      const b = Buffer.alloc(5);
      b[0] = c32;
      b.writeUInt32BE(n, 1);
      out.push(b);
    }
  };
  const walk = (v: PackValue): void => {
    if (v === null) head(0xc0);
    else if (typeof v === 'boolean') head(v ? 0xc3 : 0xc2);
    else if (typeof v === 'number') {
      if (Number.isInteger(v) && v >= 0 && v < 128) head(v);
      else if (Number.isInteger(v) && v >= 0 && v <= 0xffffffff) {
        const b = Buffer.alloc(5);
        b[0] = 0xce;
        b.writeUInt32BE(v, 1);
        out.push(b);
      } else {
        const b = Buffer.alloc(9);
        b[0] = 0xcb;
        b.writeDoubleBE(v, 1);
        out.push(b);
      }
    } else if (typeof v === 'string') {
      const b = Buffer.from(v, 'utf8');
      sized(b.length, 0xa0, 32, 0xd9, 0xda, 0xdb);
      out.push(b);
    } else if (Buffer.isBuffer(v)) {
      sized(v.length, null, 0, 0xc4, 0xc5, 0xc6);
      out.push(v);
    } else if (Array.isArray(v)) {
      sized(v.length, 0x90, 16, null, 0xdc, 0xdd);
      v.forEach(walk);
    } else {
      const entries = Object.entries(v);
      sized(entries.length, 0x80, 16, null, 0xde, 0xdf);
      for (const [k, x] of entries) {
        walk(k);
        walk(x);
      }
    }
  };
  walk(value);
  return Buffer.concat(out);
}

/** Decodes the MessagePack subset of {@link msgpack} (what the transport's `hello` holds); throws on anything else. */
export function unmsgpack(bytes: Buffer): PackValue {
  let at = 0;
  const u8 = (): number => bytes.readUInt8(at++);
  const take = (n: number): Buffer => {
    if (at + n > bytes.length) throw new Error('truncated MessagePack');
    const b = bytes.subarray(at, at + n);
    at += n;
    return b;
  };
  const uint = (size: number): number => {
    const b = take(size);
    return size === 1 ? b.readUInt8(0) : size === 2 ? b.readUInt16BE(0) : b.readUInt32BE(0);
  };
  const read = (): PackValue => {
    const t = u8();
    if (t < 0x80) return t;
    if (t >= 0xe0) return t - 0x100;
    if ((t & 0xe0) === 0xa0) return take(t & 0x1f).toString('utf8');
    if ((t & 0xf0) === 0x90) return Array.from({ length: t & 0x0f }, read);
    if ((t & 0xf0) === 0x80) return readMap(t & 0x0f);
    switch (t) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
      case 0xc5:
      case 0xc6:
        return Buffer.from(take(uint(t === 0xc4 ? 1 : t === 0xc5 ? 2 : 4)));
      case 0xcc:
      case 0xcd:
      case 0xce:
        return uint(t === 0xcc ? 1 : t === 0xcd ? 2 : 4);
      case 0xcb:
        return take(8).readDoubleBE(0);
      case 0xd9:
      case 0xda:
      case 0xdb:
        return take(uint(t === 0xd9 ? 1 : t === 0xda ? 2 : 4)).toString('utf8');
      case 0xdc:
      case 0xdd:
        return Array.from({ length: uint(t === 0xdc ? 2 : 4) }, read);
      case 0xde:
      case 0xdf:
        return readMap(uint(t === 0xde ? 2 : 4));
      default:
        throw new Error(`MessagePack type 0x${t.toString(16)} is not supported here`);
    }
  };
  const readMap = (n: number): PackValue => {
    const o: { [key: string]: PackValue } = {};
    for (let i = 0; i < n; i++) {
      const k = read();
      o[typeof k === 'string' || typeof k === 'number' ? String(k) : JSON.stringify(k)] = read();
    }
    return o;
  };
  return read();
}

/** A frame the server sent (servers never mask). */
export interface ServerFrame {
  opcode: number;
  payload: Buffer;
}

/**
 * A WebSocket client written by hand on a TCP socket, so that it can break every rule:
 * it upgrades, reads the server's frames, and writes whatever bytes it is given.
 */
export class RawWsClient {
  private buffer = Buffer.alloc(0);
  private readonly frames: ServerFrame[] = [];
  private waiter: (() => void) | null = null;
  private ended = false;
  /** The close code of the server's close frame, once one arrived. */
  closeCode: number | undefined;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (c: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, c]);
      this.parse();
      this.wake();
    });
    const end = (): void => {
      this.ended = true;
      this.wake();
    };
    socket.on('close', end);
    socket.on('error', end);
  }

  /**
   * Connects and upgrades. Resolves with the client once the server answered 101, or with
   * the HTTP status (0 when the connection failed or closed first) when it refused.
   */
  static open(
    port: number,
    opts: { path?: string; extraHeaders?: string; timeoutMs?: number } = {},
  ): Promise<RawWsClient | { status: number }> {
    return new Promise((resolve) => {
      const socket = connect({ port, host: '127.0.0.1' });
      let head = Buffer.alloc(0);
      const timer = setTimeout(() => fail(), opts.timeoutMs ?? 3000);
      const fail = (status = 0): void => {
        clearTimeout(timer);
        socket.destroy();
        resolve({ status });
      };
      const onData = (c: Buffer): void => {
        head = Buffer.concat([head, c]);
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) return;
        socket.off('data', onData);
        clearTimeout(timer);
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head.subarray(0, 16).toString('latin1'))?.[1] ?? 0);
        if (status !== 101) {
          fail(status);
          return;
        }
        socket.off('error', onError);
        socket.off('close', onClose);
        const client = new RawWsClient(socket);
        const rest = head.subarray(end + 4);
        if (rest.length > 0) socket.emit('data', rest);
        resolve(client);
      };
      const onError = (): void => fail();
      const onClose = (): void => fail();
      socket.on('data', onData);
      socket.on('error', onError);
      socket.on('close', onClose);
      socket.on('connect', () =>
        socket.write(wsUpgradeRequest(port, opts.path ?? '/', opts.extraHeaders ?? '')),
      );
    });
  }

  /** Writes raw bytes (frames, or garbage). */
  send(bytes: Buffer): void {
    if (!this.ended) this.socket.write(bytes);
  }

  /** The next data or close frame from the server, or null if the connection ends (or `timeoutMs` passes) first. */
  async next(timeoutMs = 3000): Promise<ServerFrame | null> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const f = this.frames.shift();
      if (f !== undefined) return f;
      const left = deadline - performance.now();
      if (this.ended || left <= 0) return null;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.waiter = null;
          resolve();
        }, left);
        this.waiter = () => {
          clearTimeout(timer);
          this.waiter = null;
          resolve();
        };
      });
    }
  }

  /** Resolves once the server closed the connection, or after `timeoutMs` (then: false). */
  async closed(timeoutMs = 3000): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (!this.ended && performance.now() < deadline) {
      this.frames.length = 0;
      await this.next(deadline - performance.now());
    }
    return this.ended;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake(): void {
    this.waiter?.();
  }

  private parse(): void {
    for (;;) {
      const b = this.buffer;
      if (b.length < 2) return;
      let length = b[1]! & 0x7f;
      let at = 2;
      if (length === 126) {
        if (b.length < 4) return;
        length = b.readUInt16BE(2);
        at = 4;
      } else if (length === 127) {
        if (b.length < 10) return;
        length = Number(b.readBigUInt64BE(2));
        at = 10;
      }
      if (b.length < at + length) return;
      const frame = { opcode: b[0]! & 0x0f, payload: Buffer.from(b.subarray(at, at + length)) };
      this.buffer = b.subarray(at + length);
      if (frame.opcode === 0x8 && frame.payload.length >= 2) this.closeCode = frame.payload.readUInt16BE(0);
      if (frame.opcode !== 0x9 && frame.opcode !== 0xa) this.frames.push(frame);
    }
  }
}

/**
 * The transport's handshake MAC (see `@raft/transport-ws`'s protocol): HMAC-SHA256 over
 * length-prefixed fields. Written out here so that a test can prove, or fake, knowledge of the secret.
 */
export function handshakeMac(
  secret: string,
  role: 'dialer' | 'acceptor',
  dialer: string,
  acceptor: string,
  acceptorNonce: Buffer,
  dialerNonce: Buffer,
): Buffer {
  const hmac = createHmac('sha256', Buffer.from(secret, 'utf8'));
  for (const field of [
    Buffer.from('raft-ws/1'),
    Buffer.from(role),
    Buffer.from(dialer, 'utf8'),
    Buffer.from(acceptor, 'utf8'),
    acceptorNonce,
    dialerNonce,
  ]) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(field.byteLength);
    hmac.update(length);
    hmac.update(field);
  }
  return hmac.digest();
}
