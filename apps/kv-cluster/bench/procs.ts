import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The cluster secret of benchmark clusters (loopback only; followers forward only with one). */
export const BENCH_SECRET = 'bench-secret-loopback-only';

/** Free loopback ports: listen on port 0, note the port, release it. */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** One HTTP request with a JSON answer (or null on any failure). */
export function jsonRequest(
  url: string,
  method = 'GET',
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: unknown } | null> {
  return new Promise((resolve) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      url,
      {
        method,
        timeout: 2000,
        headers:
          payload === undefined
            ? headers
            : { ...headers, 'content-type': 'application/json', 'content-length': payload.length },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown });
          } catch {
            resolve({ status: res.statusCode ?? 0, body: undefined });
          }
        });
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
    req.end(payload);
  });
}

/** Polls until `fn` returns a value; throws after `ms`. */
export async function until<T>(what: string, ms: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Child processes of a benchmark, killed together. */
export class Processes {
  private readonly children: ChildProcess[] = [];

  spawn(command: string, args: string[]): ChildProcess {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let tail = '';
    child.stderr?.on('data', (c: Buffer) => {
      tail = (tail + c.toString('utf8')).slice(-4000);
    });
    child.on('exit', (code, signal) => {
      if (code !== 0 && signal === null)
        process.stderr.write(`\n${command} exited with code ${code}:\n${tail}\n`);
    });
    this.children.push(child);
    return child;
  }

  async stopAll(): Promise<void> {
    await Promise.all(
      this.children.splice(0).map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) {
              resolve();
              return;
            }
            const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
            c.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            c.kill('SIGTERM');
          }),
      ),
    );
  }
}

/** A running 3-node (or N-node) cluster under test: where to send load. */
export interface Cluster {
  name: string;
  version: string;
  /** Base URL of the leader's client API. */
  leaderUrl: string;
  /** Base URL of every node's client API (the leader's among them). */
  urls: string[];
}

/** The built `raft-kv` CLI. */
export const RAFT_KV_CLI = fileURLToPath(new URL('../cli.js', import.meta.url));

/** A local raft-kv cluster on free loopback ports: its ids, client URLs and each node's arguments. */
export interface RaftKvLayout {
  ids: string[];
  /** Each node's client API, e.g. `http://127.0.0.1:PORT`. */
  urls: string[];
  /** Each node's `raft-kv` arguments (after the CLI path): `node --id ...`, then `extra`. */
  args: string[][];
}

/** Lays out `nodes` raft-kv nodes n1..nN on free loopback ports, data under `dataDir/ID`. */
export async function raftKvLayout(
  dataDir: string,
  nodes: number,
  extra: string[] = [],
): Promise<RaftKvLayout> {
  const ports = await freePorts(nodes * 2);
  const ids = Array.from({ length: nodes }, (_, i) => `n${i + 1}`);
  const peers = ids.map((id, i) => `${id}=ws://127.0.0.1:${ports[2 * i]}`).join(',');
  const urls = ids.map((_, i) => `http://127.0.0.1:${ports[2 * i + 1]}`);
  const args = ids.map((id, i) => [
    'node',
    '--id',
    id,
    '--listen',
    `127.0.0.1:${ports[2 * i]}`,
    '--http',
    `127.0.0.1:${ports[2 * i + 1]}`,
    '--data',
    join(dataDir, id),
    '--peers',
    peers,
    '--log-level',
    'warn',
    // Followers forward writes to the leader only in a cluster with a secret.
    '--secret',
    BENCH_SECRET,
    ...extra,
  ]);
  return { ids, urls, args };
}

/** Starts `raft-kv node` processes (the built CLI) on free ports, with `extra` arguments; returns the leader's URL. */
export async function startRaftKv(
  procs: Processes,
  dataDir: string,
  nodes: number,
  extra: string[] = [],
): Promise<Cluster> {
  const { urls, args } = await raftKvLayout(dataDir, nodes, extra);
  for (const a of args) procs.spawn(process.execPath, [RAFT_KV_CLI, ...a]);
  const leaderUrl = await until('a raft-kv leader', 30_000, async () => {
    for (const url of urls) {
      const r = await jsonRequest(`${url}/status`);
      if ((r?.body as { role?: string } | undefined)?.role === 'leader') return url;
    }
    return undefined;
  });
  return { name: 'raft-kv', version: `node ${process.version}`, leaderUrl, urls };
}

/** The built no-consensus kv server (`bench/plain-kv.ts`). */
const PLAIN_KV = fileURLToPath(new URL('./plain-kv.js', import.meta.url));

/** Starts the no-consensus, no-disk kv server: the floor under raft-kv's costs. */
export async function startPlainKv(procs: Processes): Promise<Cluster> {
  const [port] = await freePorts(1);
  procs.spawn(process.execPath, [PLAIN_KV, String(port)]);
  const url = `http://127.0.0.1:${port}`;
  await until('the no-consensus kv server', 10_000, async () =>
    (await jsonRequest(`${url}/status`)) === null ? undefined : true,
  );
  return { name: 'no-consensus', version: `node ${process.version}`, leaderUrl: url, urls: [url] };
}

/** The etcd binary: `--etcd PATH`, else /usr/bin/etcd or `etcd` on the PATH; null when absent. */
export function findEtcd(explicit: string | undefined): string | null {
  if (explicit !== undefined) return explicit;
  for (const candidate of ['/usr/bin/etcd', '/usr/local/bin/etcd'])
    if (existsSync(candidate)) return candidate;
  try {
    return execFileSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

/** Installs Debian's etcd-server package (as root, with apt-get). */
export function installEtcd(): void {
  process.stderr.write('installing etcd-server with apt-get...\n');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', 'etcd-server'], { stdio: 'inherit', env });
}

/** `etcd --version`'s first line, e.g. `3.4.23`. */
export function etcdVersion(bin: string): string {
  const out = execFileSync(bin, ['--version'], { encoding: 'utf8' });
  return /etcd Version:\s*(\S+)/.exec(out)?.[1] ?? out.split('\n')[0] ?? 'unknown';
}

/** A local etcd cluster on free loopback ports: its member names, client URLs and each member's arguments. */
export interface EtcdLayout {
  names: string[];
  /** Each member's client URL, e.g. `http://127.0.0.1:PORT`. */
  urls: string[];
  /** Each member's etcd arguments: a new cluster, data under `dataDir/NAME`, then `extra`. */
  args: string[][];
}

/** Lays out `members` etcd members e1..eN on free loopback ports (`token`: the cluster token). */
export async function etcdLayout(
  dataDir: string,
  members: number,
  token: string,
  extra: string[] = [],
): Promise<EtcdLayout> {
  const ports = await freePorts(members * 2);
  const names = Array.from({ length: members }, (_, i) => `e${i + 1}`);
  const peerUrl = (i: number): string => `http://127.0.0.1:${ports[2 * i]}`;
  const urls = names.map((_, i) => `http://127.0.0.1:${ports[2 * i + 1]}`);
  const initial = names.map((n, i) => `${n}=${peerUrl(i)}`).join(',');
  const args = names.map((name, i) => [
    '--name',
    name,
    '--data-dir',
    join(dataDir, name),
    '--listen-peer-urls',
    peerUrl(i),
    '--initial-advertise-peer-urls',
    peerUrl(i),
    '--listen-client-urls',
    urls[i]!,
    '--advertise-client-urls',
    urls[i]!,
    '--initial-cluster',
    initial,
    '--initial-cluster-state',
    'new',
    '--initial-cluster-token',
    token,
    '--logger',
    'zap',
    ...extra,
  ]);
  return { names, urls, args };
}

/** Starts a 3-member etcd on loopback with data under `dataDir`; returns the leader's client URL. */
export async function startEtcd(
  procs: Processes,
  bin: string,
  dataDir: string,
  members: number,
): Promise<Cluster> {
  const { urls, args } = await etcdLayout(dataDir, members, 'raft-kv-bench', ['--log-level', 'warn']);
  for (const a of args) procs.spawn(bin, a);
  const leaderUrl = await until('an etcd leader', 30_000, async () => {
    for (const url of urls) {
      const r = await jsonRequest(`${url}/v3/maintenance/status`, 'POST', {});
      const s = r?.body as { header?: { member_id?: string }; leader?: string } | undefined;
      if (s?.leader !== undefined && s.leader === s.header?.member_id) return url;
    }
    return undefined;
  });
  return { name: 'etcd', version: etcdVersion(bin), leaderUrl, urls };
}
