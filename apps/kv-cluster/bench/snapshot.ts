/*
 * bench:snapshot: what snapshots (issue 7) buy a raft-kv node. For each --snapshot-every
 * setting (default: 10000, then 0 = off) it runs a 3-node cluster, sends --writes PUTs
 * (100-character random values) with --concurrency clients through the leader, to
 * --keyspaces distinct keys (default: as many as writes, every key written once), waits
 * until every node applied them all, then restarts one follower and measures:
 *
 *   - the data directory of each node (bytes on disk at the end, every node stopped
 *     cleanly after a restart, so each LevelDB turned its write-ahead log into tables),
 *     next to the size of the latest snapshot it holds (what it cannot do without);
 *   - the restart of the follower, from the process start to
 *       "peer started": GET /status answers 200 (the log store is open, the latest snapshot
 *                       restored, the log after it loaded: the node serves);
 *       "caught up":    its lastApplied reached the leader's commitIndex of before the
 *                       restart (every entry after the snapshot replayed into the state).
 *
 *   node dist/bench/snapshot.js [--writes 200000] [--keyspaces 200000,10000] [--concurrency 64]
 *                               [--modes 10000,0] [--write]
 *
 * --write puts the table into BENCHMARK.md (between its snapshot markers).
 */
import { seededRandom } from '@raft/core';
import { levelLogStore } from '@raft/log-level';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { jsonRequest, raftKvLayout, until } from './procs.js';

const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));
/** A small seeded PRNG (mulberry32): the same values on every run. */
const mulberry32 = seededRandom;

/**
 * The body of key `i`: a 100-character value of seeded random base64, so that LevelDB's
 * compression cannot shrink the data to nothing (real values are rarely one repeated byte).
 */
function body(i: number): Buffer {
  const random = mulberry32(i);
  const bytes = Buffer.alloc(75);
  for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(random() * 256);
  return Buffer.from(JSON.stringify({ value: bytes.toString('base64') }));
}
const IDS = ['n1', 'n2', 'n3'];

interface Status {
  role: string;
  term: number;
  commitIndex: number;
  lastApplied: number;
  snapshotIndex: number;
  firstLogIndex: number;
  lastLogIndex: number;
}

interface Node {
  id: string;
  args: string[];
  url: string;
  dir: string;
  child: ChildProcess | null;
}

interface Result {
  snapshotEvery: number;
  /** Distinct keys the writes went to. */
  keyspace: number;
  /** The term once the writes are done: each election during them adds one or more. */
  termAfterLoad: number;
  writeSeconds: number;
  writesPerSec: number;
  failedWrites: number;
  bytes: Record<string, number>;
  /** Bytes of data of the latest snapshot in each node's store (0: none). */
  snapshotBytes: Record<string, number>;
  restarted: string;
  startedMs: number;
  caughtUpMs: number;
  after: Status;
}

function start(node: Node): ChildProcess {
  const child = spawn(process.execPath, [CLI, ...node.args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let tail = '';
  child.stderr?.on('data', (c: Buffer) => {
    tail = (tail + c.toString('utf8')).slice(-4000);
  });
  child.on('exit', (code, signal) => {
    if (code !== 0 && signal === null)
      process.stderr.write(`\n${node.id} exited with code ${code}:\n${tail}\n`);
  });
  node.child = child;
  return child;
}

/** Polls `fn` every 20 ms (finer than procs' `until`: it times restarts) until it returns a value. */
async function poll<T>(what: string, ms: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** SIGTERM (a clean stop: the store closes), and waits for the exit. */
async function stop(node: Node): Promise<void> {
  const child = node.child;
  node.child = null;
  if (child === null || child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

async function status(node: Node): Promise<Status | undefined> {
  const r = await jsonRequest(`${node.url}/status`);
  return r?.status === 200 ? (r.body as Status) : undefined;
}

/** Bytes of every file under `dir`. */
async function du(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? await du(path) : (await stat(path)).size;
  }
  return total;
}

/** Bytes of data of the latest snapshot in the (stopped) node's log store, 0 when it has none. */
async function snapshotBytes(dir: string): Promise<number> {
  const store = levelLogStore({ location: dir, createIfMissing: false });
  await store.open();
  try {
    return (await store.loadSnapshot())?.data.length ?? 0;
  } finally {
    await store.close();
  }
}

/**
 * Sends `writes` PUTs with `concurrency` closed-loop clients: write `i` sets key
 * `key-(i % keyspace)` to a value of its own. Failures are retried.
 */
async function populate(
  url: string,
  writes: number,
  keyspace: number,
  concurrency: number,
): Promise<{ seconds: number; failed: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const target = new URL(url);
  let next = 0;
  let failed = 0;
  const put = (i: number): Promise<number> =>
    new Promise((resolve) => {
      const payload = body(i);
      const req = request(
        {
          host: target.hostname,
          port: target.port,
          method: 'PUT',
          path: `/kv/key-${i % keyspace}`,
          agent,
          headers: { 'content-type': 'application/json', 'content-length': payload.length },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', () => resolve(0));
        },
      );
      req.on('error', () => resolve(0));
      req.end(payload);
    });
  const t0 = performance.now();
  let reported = t0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < writes; i = next++) {
        while ((await put(i)) !== 200) failed++;
        const now = performance.now();
        if (now - reported > 5000) {
          reported = now;
          process.stderr.write(`  ${next} / ${writes} writes\n`);
        }
      }
    }),
  );
  agent.destroy();
  return { seconds: (performance.now() - t0) / 1000, failed };
}

async function run(
  dir: string,
  snapshotEvery: number,
  writes: number,
  keyspace: number,
  concurrency: number,
): Promise<Result> {
  const layout = await raftKvLayout(dir, IDS.length, [
    '--snapshot-every',
    String(snapshotEvery),
    '--request-timeout',
    '30000',
  ]);
  const nodes: Node[] = layout.ids.map((id, i) => ({
    id,
    url: layout.urls[i]!,
    dir: join(dir, id),
    child: null,
    args: layout.args[i]!,
  }));
  try {
    for (const n of nodes) start(n);
    const leader = await until('a leader', 30_000, async () => {
      for (const n of nodes) if ((await status(n))?.role === 'leader') return n;
      return undefined;
    });
    process.stderr.write(
      `--snapshot-every ${snapshotEvery}: ${writes} writes to ${keyspace} keys with ${concurrency} clients, to ${leader.id}\n`,
    );
    const written = await populate(leader.url, writes, keyspace, concurrency);
    const leaderNow = await until('a leader after the load', 30_000, async () => {
      for (const n of nodes) {
        const s = await status(n);
        if (s?.role === 'leader') return { node: n, status: s };
      }
      return undefined;
    });
    const commit = leaderNow.status.commitIndex;
    for (const n of nodes)
      await until(`${n.id} to apply ${commit}`, 120_000, async () =>
        ((await status(n))?.lastApplied ?? -1) >= commit ? true : undefined,
      );

    // Restart a follower: stopped cleanly, started again, timed.
    const follower = nodes.find((n) => n !== leaderNow.node)!;
    await stop(follower);
    const target = (await status(leaderNow.node))!.commitIndex;
    process.stderr.write(`  restarting ${follower.id} (to catch up with commitIndex ${target})\n`);
    const t0 = performance.now();
    start(follower);
    const startedMs =
      (await poll(`${follower.id} to serve /status`, 300_000, async () =>
        (await status(follower)) === undefined ? undefined : performance.now(),
      )) - t0;
    // While it replays, a node may be too busy to answer within the request's timeout: keep asking.
    const caughtUpMs =
      (await poll(`${follower.id} to catch up`, 300_000, async () =>
        ((await status(follower))?.lastApplied ?? -1) >= target ? performance.now() : undefined,
      )) - t0;
    const after = (await status(follower))!;

    // Sizes at rest: every node stopped cleanly once more after a start, so that each
    // LevelDB has turned its write-ahead log into tables (it does so on open) and the
    // three are measured alike.
    for (const n of nodes) await stop(n);
    for (const n of nodes) start(n);
    for (const n of nodes)
      await until(`${n.id} to serve again`, 300_000, async () =>
        (await status(n)) === undefined ? undefined : true,
      );
    for (const n of nodes) await stop(n);
    const bytes: Record<string, number> = {};
    for (const n of nodes) bytes[n.id] = await du(n.dir);
    // Read after measuring: opening a store turns its write-ahead log into a table.
    const snapshots: Record<string, number> = {};
    for (const n of nodes) snapshots[n.id] = await snapshotBytes(n.dir);
    return {
      snapshotEvery,
      keyspace,
      termAfterLoad: leaderNow.status.term,
      writeSeconds: written.seconds,
      writesPerSec: writes / written.seconds,
      failedWrites: written.failed,
      bytes,
      snapshotBytes: snapshots,
      restarted: follower.id,
      startedMs,
      caughtUpMs,
      after,
    };
  } finally {
    await Promise.all(nodes.map((n) => stop(n)));
  }
}

const mib = (b: number): string => (b / (1024 * 1024)).toFixed(1);

function table(results: Result[], writes: number, concurrency: number, loadBefore: number): string {
  const lines = [
    '| keys written to | --snapshot-every | data dir n1 / n2 / n3 (MiB) | latest snapshot (MiB) | to "peer started" | to "caught up" | the restarted node\'s log | writes/s | term after the writes |',
    '|---:|---:|---|---:|---:|---:|---|---:|---:|',
  ];
  for (const r of results) {
    const log =
      r.after.snapshotIndex > 0
        ? `snapshot at ${r.after.snapshotIndex}, entries ${r.after.firstLogIndex}..${r.after.lastLogIndex}`
        : `no snapshot, entries ${r.after.firstLogIndex}..${r.after.lastLogIndex}`;
    // One figure when every node holds the same snapshot (they take it at the same index).
    const snaps = [
      ...new Set(IDS.map((id) => ((r.snapshotBytes[id] ?? 0) === 0 ? 'none' : mib(r.snapshotBytes[id]!)))),
    ].join(' / ');
    lines.push(
      `| ${r.keyspace} | ${r.snapshotEvery === 0 ? '0 (off)' : r.snapshotEvery} | ${IDS.map((id) => mib(r.bytes[id] ?? NaN)).join(' / ')} | ${snaps} | ${(r.startedMs / 1000).toFixed(2)} s | ${(r.caughtUpMs / 1000).toFixed(2)} s | ${r.restarted}: ${log} | ${r.writesPerSec.toFixed(0)}${r.failedWrites > 0 ? ` (${r.failedWrites} retried)` : ''} | ${r.termAfterLoad} |`,
    );
  }
  const machine = [
    `- workload: ${writes} PUTs of 100-character values of seeded random base64 (each write its own value), ${concurrency} concurrent clients through the leader, 3 nodes on loopback; "keys written to": ${[...new Set(results.map((r) => r.keyspace))].join(' or ')} distinct keys`,
    `- machine: ${availableParallelism()} CPUs (nproc), ${cpus()[0]?.model.trim() ?? 'unknown CPU'}; Node.js ${process.version}`,
    `- load average (1 min) before the run: ${loadBefore.toFixed(2)}, after: ${(loadavg()[0] ?? 0).toFixed(2)}`,
    `- date: ${new Date().toISOString().slice(0, 10)}`,
  ];
  return `${lines.join('\n')}\n\n${machine.join('\n')}`;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2).filter((a, i) => !(i === 0 && a === '--'));
  const { values } = parseArgs({
    args,
    options: {
      writes: { type: 'string', default: '200000' },
      keyspaces: { type: 'string' },
      concurrency: { type: 'string', default: '64' },
      modes: { type: 'string', default: '10000,0' },
      write: { type: 'boolean', default: false },
    },
  });
  const writes = Number(values.writes);
  const keyspaces = (values.keyspaces ?? values.writes).split(',').map(Number);
  const concurrency = Number(values.concurrency);
  const modes = values.modes.split(',').map(Number);
  const positive = (n: number): boolean => Number.isSafeInteger(n) && n >= 1;
  if (
    !positive(writes) ||
    !positive(concurrency) ||
    !keyspaces.every(positive) ||
    modes.some((m) => !Number.isSafeInteger(m) || m < 0)
  ) {
    throw new Error(
      '--writes and --concurrency must be positive integers, --keyspaces a list of them, --modes a list of --snapshot-every values (0 = off)',
    );
  }
  const loadBefore = loadavg()[0] ?? 0;
  const results: Result[] = [];
  for (const keyspace of keyspaces) {
    for (const mode of modes) {
      const dir = await mkdtemp(join(tmpdir(), 'raft-kv-snap-bench-'));
      try {
        const r = await run(dir, mode, writes, keyspace, concurrency);
        process.stderr.write(`  ${JSON.stringify(r)}\n`);
        results.push(r);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
  }
  const text = table(results, writes, concurrency, loadBefore);
  process.stdout.write(`\n${text}\n`);
  if (values.write) {
    const file = fileURLToPath(new URL('../../BENCHMARK.md', import.meta.url));
    const startMark = '<!-- snapshot:start -->';
    const endMark = '<!-- snapshot:end -->';
    let doc = await readFile(file, 'utf8');
    const i = doc.indexOf(startMark);
    const j = doc.indexOf(endMark);
    doc =
      i === -1 || j < i
        ? `${doc}\n${startMark}\n${text}\n${endMark}\n`
        : `${doc.slice(0, i + startMark.length)}\n${text}\n${doc.slice(j)}`;
    await writeFile(file, doc);
    process.stderr.write(`wrote ${file}\n`);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:snapshot: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
