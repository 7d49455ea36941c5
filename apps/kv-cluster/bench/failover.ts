/*
 * bench:failover: what a client sees when the leader goes away, raft-kv and etcd side by side.
 *
 *   node dist/bench/failover.js [--kills 20] [--stops 10] [--removals 5] [--rolling 3]
 *                               [--writers 8] [--install-etcd] [--etcd PATH] [--no-etcd]
 *                               [--raft-kv-args "--election-timeout 150-300"] [--write]
 *
 * Scenarios, each under a steady write load (--writers closed-loop clients, each sending its
 * PUTs to the live nodes in turn, with a 1 s timeout per request):
 *   kill -9   SIGKILL of the leader; the time from the signal to the first write acknowledged
 *             that was sent after it (it can only have been committed by a new leader).
 *   SIGTERM   a graceful stop of the leader (maintenance): the same, and the longest gap
 *             between two acknowledged writes around it.
 *   removal   the leader is removed from the membership through the API.
 *   rolling   every node restarted in turn (SIGTERM, start, caught up), leader last.
 * For every scenario: the longest gap between acknowledged writes, and the writes refused or
 * timed out. etcd runs with its defaults (100 ms heartbeat, 1000 ms election timeout) and
 * tuned to 50/300 ms; raft-kv with its defaults unless --raft-kv-args says otherwise.
 *
 * --write puts the tables into BENCHMARK.md (between its failover markers).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  etcdVersion,
  findEtcd,
  etcdLayout,
  installEtcd,
  jsonRequest,
  RAFT_KV_CLI,
  raftKvLayout,
  until,
} from './procs.js';

const tty = process.stderr.isTTY;
const progress = (line: string): void => {
  process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
};

/** One node of a cluster under test: a process that can be killed and started again. */
interface Node {
  readonly name: string;
  readonly url: string;
  child: ChildProcess | null;
  /** Starts the process (again, with the same data). */
  start(): void;
}

/** A cluster of one system, and what the scenarios need to know of it. */
interface System {
  readonly label: string;
  readonly nodes: Node[];
  /** Index of the node that leads now, or -1. */
  leader(): Promise<number>;
  /** One write request against node `i`. */
  put(i: number, key: string): { path: string; body: Buffer; method: 'PUT' | 'POST' };
  /** Removes node `i` from the membership, through node `via`. */
  remove(i: number, via: number): Promise<void>;
  /** True when node `i` serves and knows a leader (after a restart). */
  ready(i: number): Promise<boolean>;
}

function startNode(name: string, url: string, command: string, args: string[]): Node {
  const node: Node = {
    name,
    url,
    child: null,
    start() {
      const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'ignore'] });
      node.child = child;
    },
  };
  node.start();
  return node;
}

function signal(node: Node, sig: NodeJS.Signals): Promise<void> {
  const child = node.child;
  if (child === null || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(sig);
  });
}

async function stopAll(system: System): Promise<void> {
  await Promise.all(
    system.nodes.map(async (n) => {
      const t = setTimeout(() => n.child?.kill('SIGKILL'), 5000);
      await signal(n, 'SIGTERM');
      clearTimeout(t);
    }),
  );
}

async function raftKv(dir: string, extra: string[]): Promise<System> {
  const { ids, urls, args } = await raftKvLayout(dir, 3, extra);
  const nodes = ids.map((id, i) => startNode(id, urls[i]!, process.execPath, [RAFT_KV_CLI, ...args[i]!]));
  const status = async (i: number): Promise<{ role?: string; leader?: string | null } | undefined> =>
    (await jsonRequest(`${nodes[i]!.url}/status`))?.body as { role?: string; leader?: string | null };
  return {
    label: extra.length > 0 ? `raft-kv (${extra.join(' ')})` : 'raft-kv (defaults)',
    nodes,
    async leader() {
      for (let i = 0; i < nodes.length; i++) if ((await status(i))?.role === 'leader') return i;
      return -1;
    },
    put: (_i, key) => ({
      method: 'PUT',
      path: `/kv/${key}`,
      body: Buffer.from(JSON.stringify({ value: 'v'.repeat(100) })),
    }),
    async remove(i, via) {
      await until(`removal of ${ids[i]}`, 30_000, async () => {
        const r = await jsonRequest(
          `${nodes[via]!.url}/cluster/members/${ids[i]}`,
          'DELETE',
          undefined,
          adminHeaders,
        );
        return r?.status === 200 ? true : undefined;
      });
    },
    async ready(i) {
      const s = await status(i);
      return s !== undefined && typeof s.leader === 'string';
    },
  };
}

/** Headers for raft-kv's membership routes, when they need an admin token. */
const adminHeaders: Record<string, string> = process.env.RAFT_KV_ADMIN_TOKEN
  ? { authorization: `Bearer ${process.env.RAFT_KV_ADMIN_TOKEN}` }
  : {};

async function etcd(bin: string, dir: string, tuned: boolean): Promise<System> {
  const timing = tuned ? ['--heartbeat-interval', '50', '--election-timeout', '300'] : [];
  const { names, urls, args } = await etcdLayout(dir, 3, 'failover-bench', [
    '--log-level',
    'error',
    ...timing,
  ]);
  const clientUrl = (i: number): string => urls[i]!;
  const nodes = names.map((name, i) => startNode(name, urls[i]!, bin, args[i]!));
  type Status = { header?: { member_id?: string }; leader?: string };
  const status = async (i: number): Promise<Status | undefined> =>
    (await jsonRequest(`${clientUrl(i)}/v3/maintenance/status`, 'POST', {}))?.body as Status | undefined;
  const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
  return {
    label: tuned ? `etcd ${etcdVersion(bin)} (50/300 ms)` : `etcd ${etcdVersion(bin)} (defaults)`,
    nodes,
    async leader() {
      for (let i = 0; i < nodes.length; i++) {
        const s = await status(i);
        if (s?.leader !== undefined && s.leader === s.header?.member_id) return i;
      }
      return -1;
    },
    put: (_i, key) => ({
      method: 'POST',
      path: '/v3/kv/put',
      body: Buffer.from(JSON.stringify({ key: b64(key), value: b64('v'.repeat(100)) })),
    }),
    async remove(i, via) {
      const id = (await status(i))?.header?.member_id;
      if (id === undefined) throw new Error(`etcd: no member id for ${names[i]}`);
      await until(`removal of ${names[i]}`, 30_000, async () => {
        const r = await jsonRequest(`${clientUrl(via)}/v3/cluster/member/remove`, 'POST', { ID: id });
        return r?.status === 200 ? true : undefined;
      });
    },
    async ready(i) {
      const s = await status(i);
      return s?.leader !== undefined && s.leader !== '0';
    },
  };
}

/** One acknowledged write: when it was sent and when its answer came. */
interface Ack {
  sent: number;
  acked: number;
}

/** Closed-loop writers that spread their PUTs over the nodes that are not known dead. */
class Load {
  readonly acks: Ack[] = [];
  failures = 0;
  private running = true;
  private readonly loops: Promise<void>[] = [];
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });
  /** Nodes a writer skips (stopped on purpose). */
  readonly down = new Set<number>();

  constructor(
    private readonly system: System,
    writers: number,
  ) {
    for (let w = 0; w < writers; w++) this.loops.push(this.loop(w));
  }

  private async loop(w: number): Promise<void> {
    let seq = 0;
    while (this.running) {
      const n = this.system.nodes.length;
      let i = (w + seq) % n;
      for (let k = 0; k < n && this.down.has(i); k++) i = (i + 1) % n;
      seq++;
      const req = this.system.put(i, `k${w}-${seq % 100}`);
      const sent = performance.now();
      const status = await send(this.agent, this.system.nodes[i]!.url, req);
      if (status >= 200 && status < 300) this.acks.push({ sent, acked: performance.now() });
      else {
        this.failures++;
        // A refused or dead node: back off a little so a dead port is not spun on.
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  }

  /** The first write sent at or after `t` and acknowledged, in ms after `t` (NaN: none by `deadlineMs`). */
  async firstAckAfter(t: number, deadlineMs: number): Promise<number> {
    const found = await until('a write acknowledged after the event', deadlineMs, async () => {
      const a = this.acks.find((x) => x.sent >= t);
      return a === undefined ? undefined : a.acked - t;
    }).catch(() => NaN);
    return found;
  }

  /** The longest time between two consecutive acknowledgements within [from, to]. */
  longestGap(from: number, to: number): number {
    const times = this.acks
      .map((a) => a.acked)
      .filter((x) => x >= from && x <= to)
      .sort((a, b) => a - b);
    let gap = 0;
    let prev = from;
    for (const t of times) {
      gap = Math.max(gap, t - prev);
      prev = t;
    }
    return Math.max(gap, to - prev);
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.agent.destroy();
  }
}

function send(
  agent: Agent,
  base: string,
  req: { method: string; path: string; body: Buffer },
): Promise<number> {
  return new Promise((resolve) => {
    const r = request(
      `${base}${req.path}`,
      {
        method: req.method,
        agent,
        timeout: 1000,
        headers: { 'content-type': 'application/json', 'content-length': req.body.length },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', () => resolve(0));
      },
    );
    r.on('timeout', () => r.destroy());
    r.on('error', () => resolve(0));
    r.end(req.body);
  });
}

const waitLeader = (s: System): Promise<number> =>
  until(`a ${s.label} leader`, 30_000, async () => {
    const l = await s.leader();
    return l >= 0 ? l : undefined;
  });

async function waitReady(s: System, i: number): Promise<void> {
  await until(`${s.nodes[i]!.name} ready`, 30_000, async () => ((await s.ready(i)) ? true : undefined));
}

/** Lets the load run for `ms` (a steady state before and after each event). */
const settle = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Row {
  system: string;
  scenario: string;
  trials: number;
  /** Time to the first write acknowledged after the event, per trial (ms). */
  recovery: number[];
  /** Longest gap between acknowledged writes around the event, per trial (ms). */
  gaps: number[];
  failures: number;
}

async function killOrStop(s: System, load: Load, sig: 'SIGKILL' | 'SIGTERM', trials: number): Promise<Row> {
  const row: Row = {
    system: s.label,
    scenario: sig === 'SIGKILL' ? 'kill -9 of the leader' : 'SIGTERM of the leader',
    trials: 0,
    recovery: [],
    gaps: [],
    failures: 0,
  };
  for (let t = 0; t < trials; t++) {
    const l = await waitLeader(s);
    await settle(500);
    const before = load.failures;
    load.down.add(l);
    const t0 = performance.now();
    const stopped = signal(s.nodes[l]!, sig);
    const recovery = await load.firstAckAfter(t0, 15_000);
    await stopped;
    await settle(1000);
    row.recovery.push(recovery);
    row.gaps.push(load.longestGap(t0 - 200, performance.now()));
    row.failures += load.failures - before;
    row.trials++;
    progress(
      `${s.label} ${row.scenario}: trial ${t + 1}/${trials}, first write after ${recovery.toFixed(0)} ms, longest gap ${row.gaps.at(-1)!.toFixed(0)} ms`,
    );
    s.nodes[l]!.start();
    await waitReady(s, l);
    load.down.delete(l);
  }
  return row;
}

async function rolling(s: System, load: Load, trials: number): Promise<Row> {
  const row: Row = {
    system: s.label,
    scenario: 'rolling restart (leader last)',
    trials: 0,
    recovery: [],
    gaps: [],
    failures: 0,
  };
  for (let t = 0; t < trials; t++) {
    const l = await waitLeader(s);
    const order = [...s.nodes.keys()].filter((i) => i !== l).concat([l]);
    await settle(500);
    const before = load.failures;
    const t0 = performance.now();
    for (const i of order) {
      load.down.add(i);
      await signal(s.nodes[i]!, 'SIGTERM');
      s.nodes[i]!.start();
      await waitReady(s, i);
      load.down.delete(i);
      await settle(300);
    }
    const t1 = performance.now();
    row.gaps.push(load.longestGap(t0, t1));
    row.recovery.push(t1 - t0);
    row.failures += load.failures - before;
    row.trials++;
    progress(
      `${s.label} rolling restart: trial ${t + 1}/${trials}, longest gap ${row.gaps.at(-1)!.toFixed(0)} ms`,
    );
  }
  return row;
}

async function removal(make: () => Promise<System>, writers: number, trials: number): Promise<Row> {
  let row: Row | null = null;
  for (let t = 0; t < trials; t++) {
    // A fresh cluster each time: the removed member would have to be wiped and added again.
    const s = await make();
    try {
      row ??= {
        system: s.label,
        scenario: 'removal of the leader',
        trials: 0,
        recovery: [],
        gaps: [],
        failures: 0,
      };
      const l = await waitLeader(s);
      const load = new Load(s, writers);
      await settle(1000);
      load.down.add(l);
      const via = (l + 1) % s.nodes.length;
      const t0 = performance.now();
      await s.remove(l, via);
      const recovery = await load.firstAckAfter(t0, 15_000);
      await settle(1000);
      await load.stop();
      row.recovery.push(recovery);
      row.gaps.push(load.longestGap(t0 - 200, performance.now()));
      row.failures += load.failures;
      row.trials++;
      progress(
        `${s.label} removal of the leader: trial ${t + 1}/${trials}, longest gap ${row.gaps.at(-1)!.toFixed(0)} ms`,
      );
    } finally {
      await stopAll(s);
    }
  }
  return row!;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)]!;
};
const max = (xs: number[]): number => (xs.length === 0 ? NaN : Math.max(...xs));
const ms = (x: number): string => (Number.isFinite(x) ? x.toFixed(0) : 'none in 15 s');

function table(rows: Row[]): string {
  const lines = [
    '| scenario | system | trials | first write after, median ms | max ms | longest gap, median ms | max ms | failed writes |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const first = r.scenario.startsWith('rolling')
      ? ['-', '-']
      : [ms(median(r.recovery)), ms(max(r.recovery))];
    lines.push(
      `| ${r.scenario} | ${r.system} | ${r.trials} | ${first[0]} | ${first[1]} | ${ms(median(r.gaps))} | ${ms(max(r.gaps))} | ${r.failures} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2).filter((a, i) => !(i === 0 && a === '--'));
  const { values } = parseArgs({
    args,
    options: {
      kills: { type: 'string', default: '20' },
      stops: { type: 'string', default: '10' },
      removals: { type: 'string', default: '5' },
      rolling: { type: 'string', default: '3' },
      writers: { type: 'string', default: '8' },
      'install-etcd': { type: 'boolean', default: false },
      'no-etcd': { type: 'boolean', default: false },
      etcd: { type: 'string' },
      'raft-kv-args': { type: 'string', default: '' },
      write: { type: 'boolean', default: false },
    },
  });
  const count = (flag: string, v: string): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${flag} must be a whole number`);
    return n;
  };
  const kills = count('kills', values.kills);
  const stops = count('stops', values.stops);
  const removals = count('removals', values.removals);
  const rollingTrials = count('rolling', values.rolling);
  const writers = Math.max(1, count('writers', values.writers));
  const extra = values['raft-kv-args'].split(/\s+/).filter((x) => x !== '');

  let etcdBin: string | null = null;
  if (!values['no-etcd']) {
    etcdBin = findEtcd(values.etcd);
    if (etcdBin === null && values['install-etcd']) {
      installEtcd();
      etcdBin = findEtcd(undefined);
    }
    if (etcdBin === null)
      progress("etcd not found: raft-kv alone (--install-etcd installs Debian's etcd-server)");
  }
  const makers: (() => Promise<System>)[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'raft-kv-failover-'));
  let n = 0;
  const fresh = (): string => join(dir, String(n++));
  makers.push(() => raftKv(fresh(), extra));
  if (etcdBin !== null) {
    const bin = etcdBin;
    makers.push(
      () => etcd(bin, fresh(), false),
      () => etcd(bin, fresh(), true),
    );
  }
  const loadBefore = loadavg()[0] ?? 0;
  const rows: Row[] = [];
  try {
    for (const make of makers) {
      const s = await make();
      try {
        await waitLeader(s);
        const load = new Load(s, writers);
        await settle(1000);
        if (kills > 0) rows.push(await killOrStop(s, load, 'SIGKILL', kills));
        if (stops > 0) rows.push(await killOrStop(s, load, 'SIGTERM', stops));
        if (rollingTrials > 0) rows.push(await rolling(s, load, rollingTrials));
        await load.stop();
      } finally {
        await stopAll(s);
      }
      if (removals > 0) rows.push(await removal(make, writers, removals));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  if (tty) process.stderr.write('\n');
  const ordered = [...rows].sort((a, b) => a.scenario.localeCompare(b.scenario));
  const out = [
    table(ordered),
    '',
    `- machine: ${cpus().length} CPUs, ${cpus()[0]?.model ?? 'unknown'}; Node.js ${process.version}`,
    `- ${writers} closed-loop writers spread over the live nodes, 1 s timeout per request; 3 nodes of each system on loopback`,
    `- load average (1 min) before: ${loadBefore.toFixed(2)}, after: ${(loadavg()[0] ?? 0).toFixed(2)}`,
    `- date: ${new Date().toISOString().slice(0, 10)}`,
  ].join('\n');
  process.stdout.write(`${out}\n`);
  if (values.write) {
    const path = fileURLToPath(new URL('../../BENCHMARK.md', import.meta.url));
    const text = await readFile(path, 'utf8');
    const start = '<!-- failover:start -->';
    const end = '<!-- failover:end -->';
    const i = text.indexOf(start);
    const j = text.indexOf(end);
    if (i < 0 || j < i) throw new Error(`BENCHMARK.md has no ${start} ... ${end} markers`);
    await writeFile(path, `${text.slice(0, i + start.length)}\n${out}\n${text.slice(j)}`);
    progress('BENCHMARK.md updated');
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`\n${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
