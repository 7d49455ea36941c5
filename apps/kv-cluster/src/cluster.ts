import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { get } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { RaftError } from '@raft/core';
import { authority, type ClusterOptions } from './options.js';

/** One node of a local cluster, as `raft-kv cluster` runs it. */
export interface ClusterMember {
  id: string;
  peerUrl: string;
  httpUrl: string;
  data: string;
  /** The arguments of `raft-kv node` for this member. */
  args: string[];
}

/** The members of a local cluster: n1..nN on consecutive ports. */
export function clusterMembers(opts: ClusterOptions): ClusterMember[] {
  const ids = Array.from({ length: opts.nodes }, (_, i) => `n${i + 1}`);
  const peerAddr = (i: number): string => authority({ host: opts.host, port: opts.peerPort + i });
  const httpAddr = (i: number): string => authority({ host: opts.host, port: opts.httpPort + i });
  const peers = ids.map((id, i) => `${id}=ws://${peerAddr(i)}`).join(',');
  return ids.map((id, i) => {
    const data = join(opts.data, id);
    return {
      id,
      peerUrl: `ws://${peerAddr(i)}`,
      httpUrl: `http://${httpAddr(i)}`,
      data,
      args: [
        'node',
        '--id',
        id,
        '--listen',
        peerAddr(i),
        '--http',
        httpAddr(i),
        '--data',
        data,
        '--peers',
        peers,
        '--request-timeout',
        String(opts.requestTimeoutMs),
        '--log-level',
        opts.logLevel,
        '--snapshot-every',
        String(opts.snapshotEvery),
        '--election-timeout',
        opts.timing.electionTimeoutMs.join('-'),
        '--heartbeat-interval',
        String(opts.timing.heartbeatIntervalMs),
      ],
    };
  });
}

const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO ',
  40: 'WARN ',
  50: 'ERROR',
  60: 'FATAL',
};
const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'node', 'peer', 'component', 'msg']);

/** Renders one pino JSON line of a node for a terminal; other lines pass through. */
export function prettyLine(id: string, line: string): string {
  let rec: Record<string, unknown>;
  try {
    const parsed = JSON.parse(line) as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return `${id} | ${line}`;
    rec = parsed as Record<string, unknown>;
  } catch {
    return `${id} | ${line}`;
  }
  const time = typeof rec['time'] === 'number' ? new Date(rec['time']).toISOString().slice(11, 23) : '';
  const level = LEVELS[rec['level'] as number] ?? String(rec['level']);
  const fields = Object.entries(rec)
    .filter(([k]) => !HIDDEN.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${id} | ${time} ${level} ${typeof rec['msg'] === 'string' ? rec['msg'] : ''}${fields === '' ? '' : ` ${fields}`}`;
}

function getStatus(url: string): Promise<{ role?: string; leader?: string | null } | null> {
  return new Promise((resolve) => {
    const req = get(`${url}/status`, { timeout: 1000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(text) as { role?: string; leader?: string | null });
        } catch {
          resolve(null);
        }
      });
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

/** Signals this close to the first one count as the same Ctrl-C. */
const SAME_SIGNAL_MS = 1000;

/**
 * `raft-kv cluster`: runs each member as its own `raft-kv node` process, prints where
 * they listen, waits for a leader and prints it, then runs until SIGINT or SIGTERM,
 * which it forwards to the nodes (a second one, a second or more later, kills them).
 * Resolves with the exit code: 0 when every node stopped cleanly.
 */
export async function runCluster(opts: ClusterOptions): Promise<number> {
  const members = clusterMembers(opts);
  await mkdir(opts.data, { recursive: true });
  const cli = fileURLToPath(new URL('./cli.js', import.meta.url));
  const out = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };

  // First: where to watch the cluster (every node serves the dashboard; n1's is as good as any).
  out(dashboardLine(members));

  // Closed by default: without --secret or --admin-token, random ones, kept in DIR/secret and
  // DIR/admin-token (mode 0600) and reused by the next run; the nodes get them in their
  // environment, never on a command line.
  const secretFile = join(opts.data, 'secret');
  const tokenFile = join(opts.data, 'admin-token');
  const env = { ...process.env };
  env['RAFT_SECRET'] = opts.secret ?? (await keptRandom(secretFile, 32));
  env['RAFT_KV_ADMIN_TOKEN'] = opts.adminToken ?? (await keptRandom(tokenFile, 24));

  let stopping = false;
  let started = false;
  const exits: Promise<{ id: string; code: number | null; signal: NodeJS.Signals | null }>[] = [];
  const children: { id: string; child: ChildProcess; exited: boolean }[] = [];
  let abortStartup!: (why: string) => void;
  const startupFailed = new Promise<string>((resolve) => (abortStartup = resolve));

  for (const m of members) {
    // Own process group: a terminal's Ctrl-C reaches only us, and we stop the nodes in
    // order. The IPC channel stops a node if this process dies without telling it.
    const child = spawn(process.execPath, [cli, ...m.args], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env,
      detached: true,
    });
    const entry = { id: m.id, child, exited: false };
    children.push(entry);
    for (const stream of [child.stdout, child.stderr]) {
      if (stream === null) continue;
      createInterface({ input: stream }).on('line', (line) => out(prettyLine(m.id, line)));
    }
    exits.push(
      new Promise((resolve) => {
        child.on('exit', (code, signal) => {
          entry.exited = true;
          if (!stopping) out(`${m.id} exited (${signal ?? `code ${code}`})`);
          if (!started && !stopping) abortStartup(`${m.id} could not start`);
          resolve({ id: m.id, code, signal });
        });
      }),
    );
  }

  const signalAll = (signal: NodeJS.Signals): void => {
    for (const c of children) if (!c.exited) c.child.kill(signal);
  };
  let signals = 0;
  let firstSignalAt = 0;
  const onSignal = (): void => {
    // One Ctrl-C can arrive twice: from the terminal, and forwarded by a runner in the same
    // process group (pnpm forwards SIGINT to its script). A repeat within a second is the same.
    const now = performance.now();
    if (signals > 0 && now - firstSignalAt < SAME_SIGNAL_MS) return;
    if (signals === 0) firstSignalAt = now;
    signals++;
    stopping = true;
    if (signals === 1) {
      out('stopping the nodes...');
      signalAll('SIGTERM');
    } else {
      out('killing the nodes');
      signalAll('SIGKILL');
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  for (const m of members) out(`${m.id}: HTTP ${m.httpUrl}  (peer ${m.peerUrl}, data ${m.data})`);
  out(
    `security: cluster secret ${opts.secret === null ? `in ${secretFile}` : 'as given'}; admin token ${
      opts.adminToken === null
        ? `in ${tokenFile} (RAFT_KV_ADMIN_TOKEN=$(cat ${tokenFile}) raft-kv members ...)`
        : 'as given'
    }`,
  );

  const leader = await Promise.race([
    waitForLeader(members, 30_000, () => stopping),
    startupFailed.then((why) => ({ failed: why })),
  ]);
  if (typeof leader === 'object' && leader !== null) {
    out(`${leader.failed}: stopping the others`);
    stopping = true;
    signalAll('SIGTERM');
    await Promise.all(exits);
    return 1;
  }
  started = true;
  if (!stopping) {
    if (leader === null)
      out('no leader after 30 s: is a majority of the nodes running? (still waiting; Ctrl-C to stop)');
    else out(`leader: ${leader} (${members.find((m) => m.id === leader)?.httpUrl ?? '?'})`);
    const [a, b, c] = [members[0], members[1] ?? members[0], members[2] ?? members[0]];
    if (a !== undefined && b !== undefined && c !== undefined) {
      out('try:');
      const json = "-H 'content-type: application/json'";
      out(`  curl -X PUT ${a.httpUrl}/kv/hello ${json} -d '{"value": "world"}'`);
      out(`  curl ${b.httpUrl}/kv/hello`);
      out(`  curl -X POST ${c.httpUrl}/kv/hello/cas ${json} -d '{"expected": "world", "value": "raft"}'`);
      out(`  curl -X DELETE ${a.httpUrl}/kv/hello`);
      out(`  curl ${b.httpUrl}/status`);
    }
    out('Ctrl-C stops the cluster; running it again recovers the data.');
  }

  const results = await Promise.all(exits);
  const clean = results.every((r) => r.code === 0);
  out(
    clean
      ? 'all nodes stopped'
      : `nodes stopped: ${results.map((r) => `${r.id} ${r.signal ?? `code ${r.code}`}`).join(', ')}`,
  );
  return clean && signals <= 1 ? 0 : 1;
}

/** The first line `raft-kv cluster` prints: the dashboard's URL. */
export function dashboardLine(members: readonly ClusterMember[]): string {
  const first = members[0];
  return first === undefined
    ? 'dashboard: none (no node)'
    : `dashboard: ${first.httpUrl}/dashboard  (every node serves it at /dashboard)`;
}

/**
 * The random value kept in `file` (hex), made and written there (mode 0600) the first time.
 * A file that exists but is empty or unreadable is an error naming it.
 */
async function keptRandom(file: string, bytes: number): Promise<string> {
  try {
    const kept = (await readFile(file, 'utf8')).trim();
    if (kept.length === 0)
      throw new RaftError('RAFT_INVALID_ARGUMENT', `${file} is empty: delete it to make a new one`);
    return kept;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const value = randomBytes(bytes).toString('hex');
  await writeFile(file, `${value}\n`, { mode: 0o600, flag: 'wx' });
  return value;
}

/** Polls every member's /status until one is the leader; null after `ms`. */
async function waitForLeader(
  members: { id: string; httpUrl: string }[],
  ms: number,
  stop: () => boolean,
): Promise<string | null> {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline && !stop()) {
    const statuses = await Promise.all(members.map((m) => getStatus(m.httpUrl)));
    const i = statuses.findIndex((s) => s?.role === 'leader');
    const m = members[i];
    if (m !== undefined) return m.id;
    await new Promise((r) => setTimeout(r, 200));
  }
  return null;
}
