/*
 * bench:kv: PUTs and linearizable GETs of 100-byte values against a 3-node raft-kv
 * cluster, and the same load on a 3-member etcd (its v3 JSON gateway), side by side.
 *
 *   node dist/bench/main.js [--duration 10] [--concurrency 1,16,64,256] [--rounds 1]
 *                           [--install-etcd] [--etcd PATH] [--no-etcd] [--write]
 *                           [--idempotency-key]
 *
 * --idempotency-key sends a fresh `Idempotency-Key` with every raft-kv PUT (the cost of
 * client sessions on the write path; etcd's requests are unchanged).
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
  startRaftKv,
  type Cluster,
} from './procs.js';

const VALUE = 'v'.repeat(100);
const tty = process.stderr.isTTY;
/** Keys the reads pick from; all written before any read is measured. */
const KEYSPACE = 1000;

type Op = 'write' | 'read';

/** How each system is driven: the same workload through each one's HTTP API. */
interface Driver {
  request(op: Op, worker: number, seq: number): BenchRequest;
}

const raftKvDriver: Driver = {
  request(op, worker, seq) {
    const key = `key-${(worker * 7919 + seq) % KEYSPACE}`;
    return op === 'write'
      ? { method: 'PUT', path: `/kv/${key}`, body: Buffer.from(JSON.stringify({ value: VALUE })) }
      : { method: 'GET', path: `/kv/${key}` };
  },
};

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const etcdDriver: Driver = {
  request(op, worker, seq) {
    const key = b64(`key-${(worker * 7919 + seq) % KEYSPACE}`);
    // Range requests are linearizable unless they ask for "serializable".
    return op === 'write'
      ? { method: 'POST', path: '/v3/kv/put', body: Buffer.from(JSON.stringify({ key, value: b64(VALUE) })) }
      : { method: 'POST', path: '/v3/kv/range', body: Buffer.from(JSON.stringify({ key })) };
  },
};

interface Cell {
  system: string;
  op: Op;
  concurrency: number;
  result: LoadResult;
}

function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

/** `--idempotency-key`: every raft-kv PUT carries a fresh `Idempotency-Key`. */
let idempotencyKeys = false;
let keyCounter = 0;

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

/**
 * Measures every cell. The systems take turns cell by cell (and round by round), so
 * that a change in what else runs on the machine affects them alike.
 */
async function measure(
  targets: Target[],
  concurrencies: number[],
  durationMs: number,
  rounds: number,
): Promise<Cell[]> {
  for (const t of targets) await populate(t);
  const cells: Cell[] = [];
  for (const op of ['write', 'read'] as const) {
    for (const concurrency of concurrencies) {
      const results = new Map<string, LoadResult[]>();
      for (let round = 1; round <= rounds; round++) {
        for (const { cluster, driver } of targets) {
          const label = `${cluster.name} ${op === 'write' ? 'PUT' : 'GET'} c=${concurrency}${rounds > 1 ? ` (round ${round}/${rounds})` : ''}`;
          // A live progress line on a terminal; one line per cell in a log.
          if (!tty) process.stderr.write(`${label}: measuring for ${durationMs / 1000} s...\n`);
          const result = await runLoad({
            target: cluster.leaderUrl,
            concurrency,
            durationMs,
            next: (w, seq) => {
              const req = driver.request(op, w, seq);
              return idempotencyKeys && op === 'write' && cluster.name === 'raft-kv'
                ? { ...req, headers: { 'idempotency-key': `bench-${++keyCounter}` } }
                : req;
            },
            onProgress: (done, elapsed) => {
              if (tty)
                process.stderr.write(`\r${label}: ${done} ops, ${fmt(done / (elapsed / 1000), 0)} ops/s   `);
            },
          });
          process.stderr.write(
            `${tty ? '\r' : ''}${label}: ${fmt(result.opsPerSec, 0)} ops/s, p50 ${fmt(result.p50, 2)} ms, p99 ${fmt(result.p99, 2)} ms, ${result.errors} errors${result.errors > 0 ? ` ${JSON.stringify(result.errorsByStatus)}` : ''}\n`,
          );
          results.set(cluster.name, [...(results.get(cluster.name) ?? []), result]);
        }
      }
      for (const [system, rs] of results) cells.push({ system, op, concurrency, result: median(rs) });
    }
  }
  return cells;
}

function table(cells: Cell[], concurrencies: number[], withEtcd: boolean): string {
  const find = (system: string, op: Op, c: number): LoadResult | undefined =>
    cells.find((x) => x.system === system && x.op === op && x.concurrency === c)?.result;
  const lines = withEtcd
    ? [
        '| operation | clients | raft-kv ops/s | etcd ops/s | raft-kv p50 ms | etcd p50 ms | raft-kv p99 ms | etcd p99 ms |',
        '|---|---:|---:|---:|---:|---:|---:|---:|',
      ]
    : [
        '| operation | clients | raft-kv ops/s | raft-kv p50 ms | raft-kv p99 ms |',
        '|---|---:|---:|---:|---:|',
      ];
  for (const op of ['write', 'read'] as const) {
    for (const c of concurrencies) {
      const r = find('raft-kv', op, c);
      const e = find('etcd', op, c);
      const name = op === 'write' ? 'PUT (write)' : 'GET (linearizable read)';
      const errs = (x: LoadResult | undefined): string =>
        x !== undefined && x.errors > 0 ? ` (${x.errors} errors)` : '';
      lines.push(
        withEtcd
          ? `| ${name} | ${c} | ${fmt(r?.opsPerSec ?? NaN, 0)}${errs(r)} | ${fmt(e?.opsPerSec ?? NaN, 0)}${errs(e)} | ${fmt(r?.p50 ?? NaN, 2)} | ${fmt(e?.p50 ?? NaN, 2)} | ${fmt(r?.p99 ?? NaN, 2)} | ${fmt(e?.p99 ?? NaN, 2)} |`
          : `| ${name} | ${c} | ${fmt(r?.opsPerSec ?? NaN, 0)}${errs(r)} | ${fmt(r?.p50 ?? NaN, 2)} | ${fmt(r?.p99 ?? NaN, 2)} |`,
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
    },
  });
  idempotencyKeys = values['idempotency-key'];
  const durationMs = Number(values.duration) * 1000;
  const concurrencies = values.concurrency.split(',').map(Number);
  const rounds = Number(values.rounds);
  if (!Number.isSafeInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');
  if (!(durationMs > 0) || concurrencies.some((c) => !Number.isSafeInteger(c) || c < 1)) {
    throw new Error(
      '--duration must be a positive number of seconds and --concurrency a list of positive integers',
    );
  }
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
      { cluster: await startRaftKv(procs, join(dir, 'raft-kv'), 3), driver: raftKvDriver },
    ];
    if (etcdBin !== null)
      targets.push({ cluster: await startEtcd(procs, etcdBin, join(dir, 'etcd'), 3), driver: etcdDriver });
    cells.push(...(await measure(targets, concurrencies, durationMs, rounds)));
  } finally {
    await procs.stopAll();
    await rm(dir, { recursive: true, force: true });
  }

  const machine = [
    `- machine: ${availableParallelism()} CPUs (nproc), ${cpus()[0]?.model.trim() ?? 'unknown CPU'}`,
    `- Node.js ${process.version}${etcdBin === null ? '' : `, etcd ${etcdVersion(etcdBin)} (Debian's etcd-server)`}`,
    `- ${durationMs / 1000} s measured per cell after 1 s of warm-up${rounds > 1 ? `, ${rounds} rounds per cell (the round with the median throughput is shown)` : ''}; the systems take turns cell by cell; 3 nodes of each and the load generator on the same machine, loopback only`,
    `- load average (1 min) before the run: ${loadBefore.toFixed(2)}, after: ${(loadavg()[0] ?? 0).toFixed(2)}`,
    `- date: ${new Date().toISOString().slice(0, 10)}`,
  ].join('\n');
  const text = `${table(cells, concurrencies, etcdBin !== null)}\n\n${machine}`;
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
