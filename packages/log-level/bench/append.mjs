// Durable appends per second: LevelLogStore against raw classic-level batches written
// with { sync: true }, side by side in the same run, on the same disk.
//
//   pnpm bench                      (in packages/log-level; runs on dist, so build first)
//   BENCH_SECONDS=5 BENCH_DIR=/mnt/ssd pnpm bench
//
// Contenders: raw db.batch(array, { sync: true }), raw chained batches
// db.batch().put(...).write({ sync: true }) (the API the store uses), and LevelLogStore.
//
// The latency of fsync drifts (page cache, journal, a disk shared with other machines),
// so the contenders do not run one after the other: both databases are open at once
// and the run alternates between them in short slices, each in every position in turn,
// BENCH_SECONDS in total for each, so that drift weighs on both alike. Each slice ends
// once its writes in flight have resolved; only completed writes count.
import { execSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { levelLogStore } from '../dist/index.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const SLICE_MS = Number(process.env.BENCH_SLICE_MS ?? 250);
const BASE = process.env.BENCH_DIR ?? tmpdir();
const ENTRY_BYTES = 100;
const payload = new Uint8Array(ENTRY_BYTES).fill(0x61);

function key(index) {
  const k = Buffer.allocUnsafe(9);
  k[0] = 0x65;
  k.writeUInt32BE(Math.floor(index / 2 ** 32), 1);
  k.writeUInt32BE(index >>> 0, 5);
  return k;
}

/**
 * Raw classic-level: each writer loops writing `size` puts (100-byte values under the
 * store's 9-byte keys) in one batch with sync: true, through `db.batch(array)` or
 * through the chained `db.batch().put(...).write()` that the store itself uses.
 */
async function rawContender(location, chained) {
  const db = new ClassicLevel(location, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  let next = 1;
  let syncs = 0;
  return {
    counters: () => ({ entries: next - 1, syncs }),
    async writer(size, running) {
      while (running()) {
        if (chained) {
          const batch = db.batch();
          for (let k = 0; k < size; k++) batch.put(key(next++), payload);
          await batch.write({ sync: true });
        } else {
          const ops = new Array(size);
          for (let k = 0; k < size; k++) ops[k] = { type: 'put', key: key(next++), value: payload };
          await db.batch(ops, { sync: true });
        }
        syncs++;
      }
    },
    close: () => db.close(),
  };
}

/** LevelLogStore: each writer loops appending `size` entries per write. */
async function storeContender(location) {
  const log = levelLogStore({ location });
  await log.open();
  let next = 1;
  return {
    counters: () => ({ entries: log.stats.entriesWritten, syncs: log.stats.syncs }),
    async writer(size, running) {
      while (running()) {
        const entries = new Array(size);
        for (let k = 0; k < size; k++)
          entries[k] = { index: next++, term: 1, type: 'command', data: payload };
        await log.write({ entries });
      }
    },
    close: () => log.close(),
  };
}

/** Runs `writers` writers of one contender for one slice; returns the elapsed seconds. */
async function slice(contender, size, writers) {
  const start = performance.now();
  const deadline = start + SLICE_MS;
  const running = () => performance.now() < deadline;
  await Promise.all(Array.from({ length: writers }, () => contender.writer(size, running)));
  return (performance.now() - start) / 1000;
}

async function workload(size, writers) {
  const dir = await mkdtemp(join(BASE, 'raft-bench-'));
  try {
    const contenders = [
      await rawContender(join(dir, 'array'), false),
      await rawContender(join(dir, 'chained'), true),
      await storeContender(join(dir, 'store')),
    ];
    const time = contenders.map(() => 0);
    const rates = contenders.map(() => []);
    const rounds = Math.max(3, Math.round((SECONDS * 1000) / SLICE_MS));
    for (let i = 0; i < rounds; i++) {
      // Each contender takes each position in turn, so drift weighs on all alike.
      for (let j = 0; j < contenders.length; j++) {
        const c = (i + j) % contenders.length;
        const before = contenders[c].counters().entries;
        const seconds = await slice(contenders[c], size, writers);
        time[c] += seconds;
        rates[c].push((contenders[c].counters().entries - before) / seconds);
      }
    }
    const out = contenders.map((c, k) => {
      const { entries, syncs } = c.counters();
      return { entriesPerSec: entries / time[k], syncsPerSec: syncs / time[k], rates: rates[k] };
    });
    for (const c of contenders) await c.close();
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const workloads = [
  { name: 'batch 1, 1 writer', size: 1, writers: 1 },
  { name: 'batch 16, 1 writer', size: 16, writers: 1 },
  { name: 'batch 256, 1 writer', size: 256, writers: 1 },
  { name: 'batch 1, 64 concurrent writers', size: 1, writers: 64 },
];

const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
let nproc;
try {
  nproc = execSync('nproc').toString().trim();
} catch {
  nproc = String(availableParallelism());
}
console.log(
  `node ${process.version}, ${nproc} CPUs (nproc), ${cpu}; ${ENTRY_BYTES}-byte entries; ${SECONDS} s per contender per workload, alternating in ${SLICE_MS} ms slices; databases under ${BASE}\n`,
);
console.log(
  '| workload | raw `db.batch(array)` entries/s | raw chained batch entries/s | LevelLogStore entries/s | store / raw array (median per round) | store / raw chained (median per round) | syncs/s (array / chained / store) |',
);
console.log('|---|---:|---:|---:|---:|---:|---:|');
const fmt = (n) => Math.round(n).toLocaleString('en-US');
for (const w of workloads) {
  const [a, c, b] = await workload(w.size, w.writers);
  // The ratio of the totals, and in brackets the median of the ratios within each round
  // (the three contenders of a round ran back to back), which a disk stall skews less.
  const pct = (x, y) => {
    const perRound = x.rates.map((r, i) => r / y.rates[i]).sort((p, q) => p - q);
    return `${((100 * x.entriesPerSec) / y.entriesPerSec).toFixed(0)}% (${(100 * perRound[Math.floor(perRound.length / 2)]).toFixed(0)}%)`;
  };
  console.log(
    `| ${w.name} | ${fmt(a.entriesPerSec)} | ${fmt(c.entriesPerSec)} | ${fmt(b.entriesPerSec)} | ${pct(b, a)} | ${pct(b, c)} | ${fmt(a.syncsPerSec)} / ${fmt(c.syncsPerSec)} / ${fmt(b.syncsPerSec)} |`,
  );
}
