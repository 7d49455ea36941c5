/*
 * bench:kv: PUTs and linearizable GETs of 100-byte values against a raft-kv cluster and,
 * side by side in the same run, an etcd cluster of the same size (its v3 JSON gateway),
 * plus a kv server with no consensus and no disk as the floor.
 *
 *   node dist/bench/main.js [--duration 10] [--concurrency 1,16,64,256] [--rounds 1]
 *                           [--via spread,leader] [--nodes 3] [--idempotency-key]
 *                           [--install-etcd] [--etcd PATH] [--no-etcd] [--no-baseline]
 *                           [--write]
 *
 * --via spread: worker w sends every request to node w mod N, as clients behind a load
 *   balancer do (the headline); --via leader: every request to the leader (extra rows).
 * --idempotency-key adds rows of raft-kv PUTs that each carry a fresh `Idempotency-Key`
 *   (the cost of client sessions on the write path).
 * --no-baseline skips the no-consensus server.
 * --write puts the table into BENCHMARK.md (between its bench markers).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runLoad, type BenchRequest, type LoadResult } from './loadgen.js';
import {
  etcdVersion,
  findEtcd,
  installEtcd,
  Processes,
  startEtcd,
  startPlainKv,
  startRaftKv,
  type Cluster,
} from './procs.js';

const VALUE = 'v'.repeat(100);
const tty = process.stderr.isTTY;
/** Keys the reads pick from; all written before any read is measured. */
const KEYSPACE = 1000;

/** `write-key`: a raft-kv PUT with a fresh `Idempotency-Key` (sessions). */
type Op = 'write' | 'write-key' | 'read';
/** Where the clients send: spread over every node, or all to the leader. */
type Via = 'spread' | 'leader';

const OP_NAMES: Record<Op, string> = {
  write: 'PUT (write)',
  'write-key': 'PUT with Idempotency-Key',
  read: 'GET (linearizable read)',
};
const VIA_NAMES: Record<Via, string> = { spread: 'all nodes', leader: 'leader only' };

/** How each system is driven: the same workload through each one's HTTP API. */
interface Driver {
  request(op: Op, worker: number, seq: number): BenchRequest;
}

let keyCounter = 0;
const kvDriver: Driver = {
  request(op, worker, seq) {
    const key = `key-${(worker * 7919 + seq) % KEYSPACE}`;
    if (op === 'read') return { method: 'GET', path: `/kv/${key}` };
    const req: BenchRequest = {
      method: 'PUT',
      path: `/kv/${key}`,
      body: Buffer.from(JSON.stringify({ value: VALUE })),
    };
    return op === 'write-key' ? { ...req, headers: { 'idempotency-key': `bench-${++keyCounter}` } } : req;
  },
};

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const etcdDriver: Driver = {
  request(op, worker, seq) {
    const key = b64(`key-${(worker * 7919 + seq) % KEYSPACE}`);
    // Range requests are linearizable unless they ask for "serializable".
    return op === 'read'
      ? { method: 'POST', path: '/v3/kv/range', body: Buffer.from(JSON.stringify({ key })) }
      : { method: 'POST', path: '/v3/kv/put', body: Buffer.from(JSON.stringify({ key, value: b64(VALUE) })) };
  },
};

interface Cell {
  system: string;
  op: Op;
  via: Via;
  concurrency: number;
  result: LoadResult;
}

function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

/** Writes every key once, so that every read finds a value. */
async function populate(target: Target): Promise<void> {
  for (let i = 0; i < KEYSPACE; i += 32) {
    await Promise.all(
      Array.from({ length: Math.min(32, KEYSPACE - i) }, async (_, j) => {
        const req = target.driver.request('write', 0, i + j);
        const res = await fetch(`${target.cluster.leaderUrl}${req.path}`, {
          method: req.method,
          body: req.body,
          headers: { 'content-type': 'application/json' },
        });
        await res.arrayBuffer();
        if (!res.ok)
          throw new Error(`${target.cluster.name}: populating the keys failed with HTTP ${res.status}`);
      }),
    );
  }
}

/** A system under test and how to drive it. */
interface Target {
  cluster: Cluster;
  driver: Driver;
}

/** The result whose throughput is the median of the rounds. */
function median(results: LoadResult[]): LoadResult {
  const sorted = [...results].sort((a, b) => a.opsPerSec - b.opsPerSec);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/** One measured cell's plan: which system, which operation, through which nodes. */
interface Plan {
  ops: Op[];
  vias: Via[];
  concurrencies: number[];
  durationMs: number;
  rounds: number;
}

/**
 * Measures every cell. The systems take turns cell by cell (and round by round), so
 * that a change in what else runs on the machine affects them alike. The no-consensus
 * server is one process: it is measured once per operation and client count (with the
 * spread rows) and shown on every row of that count.
 */
async function measure(targets: Target[], plan: Plan): Promise<Cell[]> {
  for (const t of targets) await populate(t);
  const cells: Cell[] = [];
  for (const op of plan.ops) {
    for (const via of plan.vias) {
      for (const concurrency of plan.concurrencies) {
        const results = new Map<string, LoadResult[]>();
        for (let round = 1; round <= plan.rounds; round++) {
          for (const { cluster, driver } of targets) {
            // Sessions are raft-kv's; the floor has one node, so one row per count.
            if (op === 'write-key' && cluster.name !== 'raft-kv') continue;
            if (cluster.name === 'no-consensus' && via !== plan.vias[0]) continue;
            const label = `${cluster.name} ${op === 'read' ? 'GET' : op === 'write' ? 'PUT' : 'PUT+key'} c=${concurrency} via ${via}${plan.rounds > 1 ? ` (round ${round}/${plan.rounds})` : ''}`;
            // A live progress line on a terminal; one line per cell in a log.
            if (!tty) process.stderr.write(`${label}: measuring for ${plan.durationMs / 1000} s...\n`);
            const result = await runLoad({
              target: via === 'leader' ? cluster.leaderUrl : cluster.urls,
              concurrency,
              durationMs: plan.durationMs,
              next: (w, seq) => driver.request(op, w, seq),
              onProgress: (done, elapsed) => {
                if (tty)
                  process.stderr.write(
                    `\r${label}: ${done} ops, ${fmt(done / (elapsed / 1000), 0)} ops/s   `,
                  );
              },
            });
            process.stderr.write(
              `${tty ? '\r' : ''}${label}: ${fmt(result.opsPerSec, 0)} ops/s, p50 ${fmt(result.p50, 2)} ms, p99 ${fmt(result.p99, 2)} ms, ${result.errors} errors${result.errors > 0 ? ` ${JSON.stringify(result.errorsByStatus)}` : ''}\n`,
            );
            results.set(cluster.name, [...(results.get(cluster.name) ?? []), result]);
          }
        }
        for (const [system, rs] of results) cells.push({ system, op, via, concurrency, result: median(rs) });
      }
    }
  }
  return cells;
}

function table(cells: Cell[], plan: Plan, withEtcd: boolean, withBaseline: boolean): string {
  const find = (system: string, op: Op, via: Via, c: number): LoadResult | undefined =>
    cells.find((x) => x.system === system && x.op === op && x.via === via && x.concurrency === c)?.result;
  const base = (op: Op, c: number): LoadResult | undefined =>
    cells.find((x) => x.system === 'no-consensus' && x.op === op && x.concurrency === c)?.result;
  const errs = (x: LoadResult | undefined): string =>
    x !== undefined && x.errors > 0 ? ` (${x.errors} errors)` : '';
  const ops = (x: LoadResult | undefined): string => `${fmt(x?.opsPerSec ?? NaN, 0)}${errs(x)}`;
  const ms = (x: LoadResult | undefined): string => fmt(x?.p99 ?? NaN, 2);
  const ratio = (a: LoadResult | undefined, b: LoadResult | undefined): string =>
    a === undefined || b === undefined || b.opsPerSec === 0
      ? '-'
      : `**${(a.opsPerSec / b.opsPerSec).toFixed(2)}**`;
  const head = ['operation', 'clients', 'requests to', 'raft-kv ops/s'];
  if (withEtcd) head.push('etcd ops/s', 'raft-kv / etcd');
  head.push('raft-kv p50 ms');
  if (withEtcd) head.push('etcd p50 ms');
  head.push('raft-kv p99 ms');
  if (withEtcd) head.push('etcd p99 ms');
  if (withBaseline) head.push('no-consensus ops/s', 'raft-kv / no-consensus');
  const lines = [
    `| ${head.join(' | ')} |`,
    `|---|${head
      .slice(1)
      .map(() => '---:')
      .join('|')}|`,
  ];
  for (const op of plan.ops) {
    for (const via of plan.vias) {
      for (const c of plan.concurrencies) {
        const r = find('raft-kv', op, via, c);
        // A keyed PUT is compared with etcd's plain PUT: etcd has no sessions.
        const e = find('etcd', op === 'write-key' ? 'write' : op, via, c);
        const row = [OP_NAMES[op], String(c), VIA_NAMES[via], ops(r)];
        if (withEtcd) row.push(ops(e), ratio(r, e));
        row.push(fmt(r?.p50 ?? NaN, 2));
        if (withEtcd) row.push(fmt(e?.p50 ?? NaN, 2));
        row.push(ms(r));
        if (withEtcd) row.push(ms(e));
        if (withBaseline) {
          const b = base(op === 'write-key' ? 'write' : op, c);
          row.push(ops(b), ratio(r, b));
        }
        lines.push(`| ${row.join(' | ')} |`);
      }
    }
  }
  if (plan.ops.includes('write-key')) {
    lines.push(
      '',
      'The cost of sessions (a PUT with an `Idempotency-Key` against a plain PUT, raft-kv):',
      '',
    );
    for (const via of plan.vias)
      for (const c of plan.concurrencies) {
        const plain = find('raft-kv', 'write', via, c);
        const keyed = find('raft-kv', 'write-key', via, c);
        if (plain === undefined || keyed === undefined) continue;
        lines.push(
          `- c=${c}, ${VIA_NAMES[via]}: ${(keyed.opsPerSec / plain.opsPerSec).toFixed(2)}x the throughput (${fmt(keyed.opsPerSec, 0)} against ${fmt(plain.opsPerSec, 0)} ops/s), p99 ${ms(keyed)} against ${ms(plain)} ms`,
        );
      }
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  // `pnpm bench:kv -- --flag` may pass the `--` through.
  const args = process.argv.slice(2).filter((a, i) => !(i === 0 && a === '--'));
  const { values } = parseArgs({
    args,
    options: {
      duration: { type: 'string', default: '10' },
      concurrency: { type: 'string', default: '1,16,64,256' },
      'install-etcd': { type: 'boolean', default: false },
      'no-etcd': { type: 'boolean', default: false },
      etcd: { type: 'string' },
      write: { type: 'boolean', default: false },
      rounds: { type: 'string', default: '1' },
      'idempotency-key': { type: 'boolean', default: false },
      via: { type: 'string', default: 'spread,leader' },
      nodes: { type: 'string', default: '3' },
      'no-baseline': { type: 'boolean', default: false },
    },
  });
  const durationMs = Number(values.duration) * 1000;
  const concurrencies = values.concurrency.split(',').map(Number);
  const rounds = Number(values.rounds);
  const nodes = Number(values.nodes);
  const vias = values.via.split(',') as Via[];
  if (!Number.isSafeInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');
  if (!Number.isSafeInteger(nodes) || nodes < 1 || nodes > 9) throw new Error('--nodes must be 1 to 9');
  if (vias.length === 0 || vias.some((v) => v !== 'spread' && v !== 'leader'))
    throw new Error('--via must be a list of spread and leader');
  if (!(durationMs > 0) || concurrencies.some((c) => !Number.isSafeInteger(c) || c < 1)) {
    throw new Error(
      '--duration must be a positive number of seconds and --concurrency a list of positive integers',
    );
  }
  const plan: Plan = {
    ops: values['idempotency-key'] ? ['write', 'write-key', 'read'] : ['write', 'read'],
    vias,
    concurrencies,
    durationMs,
    rounds,
  };
  const withBaseline = !values['no-baseline'];
  let etcdBin: string | null = null;
  if (!values['no-etcd']) {
    etcdBin = findEtcd(values.etcd);
    if (etcdBin === null && values['install-etcd']) {
      installEtcd();
      etcdBin = findEtcd(undefined);
    }
    if (etcdBin === null)
      process.stderr.write(
        "etcd not found: measuring raft-kv alone (--install-etcd installs Debian's etcd-server)\n",
      );
  }

  // Other work on the machine skews every figure: record how busy it was.
  const loadBefore = loadavg()[0] ?? 0;
  const procs = new Processes();
  const dir = await mkdtemp(join(tmpdir(), 'raft-kv-bench-'));
  const stop = (): void => {
    void procs.stopAll().then(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const cells: Cell[] = [];
  try {
    const targets: Target[] = [
      { cluster: await startRaftKv(procs, join(dir, 'raft-kv'), nodes), driver: kvDriver },
    ];
    if (etcdBin !== null)
      targets.push({
        cluster: await startEtcd(procs, etcdBin, join(dir, 'etcd'), nodes),
        driver: etcdDriver,
      });
    if (withBaseline) targets.push({ cluster: await startPlainKv(procs), driver: kvDriver });
    cells.push(...(await measure(targets, plan)));
  } finally {
    await procs.stopAll();
    await rm(dir, { recursive: true, force: true });
  }

  const machine = [
    `- machine: ${availableParallelism()} CPUs (nproc), ${cpus()[0]?.model.trim() ?? 'unknown CPU'}`,
    `- Node.js ${process.version}${etcdBin === null ? '' : `, etcd ${etcdVersion(etcdBin)} (Debian's etcd-server)`}`,
    `- ${durationMs / 1000} s measured per cell after 1 s of warm-up${rounds > 1 ? `, ${rounds} rounds per cell (the round with the median throughput is shown)` : ''}; the systems take turns cell by cell; ${nodes} nodes of each${withBaseline ? ' (the no-consensus server: one process)' : ''} and the load generator on the same machine, loopback only; "all nodes": client w talks to node w mod ${nodes}`,
    `- load average (1 min) before the run: ${loadBefore.toFixed(2)}, after: ${(loadavg()[0] ?? 0).toFixed(2)}`,
    `- date: ${new Date().toISOString().slice(0, 10)}`,
  ].join('\n');
  const text = `${table(cells, plan, etcdBin !== null, withBaseline)}\n\n${machine}`;
  process.stdout.write(`\n${text}\n`);

  if (values.write) {
    const file = fileURLToPath(new URL('../../BENCHMARK.md', import.meta.url));
    const start = '<!-- bench:start -->';
    const end = '<!-- bench:end -->';
    let doc: string;
    try {
      doc = await readFile(file, 'utf8');
    } catch {
      doc = `# raft-kv benchmark\n\n${start}\n${end}\n`;
    }
    const i = doc.indexOf(start);
    const j = doc.indexOf(end);
    doc =
      i === -1 || j < i
        ? `${doc}\n${start}\n${text}\n${end}\n`
        : `${doc.slice(0, i + start.length)}\n${text}\n${doc.slice(j)}`;
    await writeFile(file, doc);
    process.stderr.write(`wrote ${file}\n`);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
