// Where the time of a 256-entry durable append goes: four writers run batch after batch,
// interleaved (each in every position in turn), for BENCH_SECONDS (default 20):
//   a. raw classic-level chained batch, 100-byte values
//   b. the same with the store's encoded values (122 bytes: checksum and header), encoded beforehand
//   c. the same, encoding each entry at write time (copy, header, CRC-32)
//   d. LevelLogStore.write
// b - a is the cost of bigger values in LevelDB, c - b the encoding, d - c the store itself
// (validation, the group-commit queue, the tail cache). Runs on dist: build first.
//
//   node bench/batch256-breakdown.mjs
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { encodeEntry, entryKey } from '../dist/format.js';
import { levelLogStore } from '../dist/index.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const SIZE = 256;
const payload = new Uint8Array(100).fill(0x61);
const preEncoded = Array.from(
  { length: SIZE },
  (_, k) => encodeEntry({ index: k + 1, term: 1, type: 'command', data: payload }).value,
);

const dir = await mkdtemp(join(process.env.BENCH_DIR ?? tmpdir(), 'raft-breakdown-'));
const open = async (name) => {
  const db = new ClassicLevel(join(dir, name), { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  return db;
};
const dbs = { a: await open('a'), b: await open('b'), c: await open('c') };
const log = levelLogStore({ location: join(dir, 'store') });
await log.open();
const next = { a: 1, b: 1, c: 1, d: 1 };

const writers = {
  'a. raw, 100-byte values': async () => {
    const batch = dbs.a.batch();
    for (let k = 0; k < SIZE; k++) batch.put(entryKey(next.a++), payload);
    await batch.write({ sync: true });
  },
  'b. raw, encoded values': async () => {
    const batch = dbs.b.batch();
    for (let k = 0; k < SIZE; k++) batch.put(entryKey(next.b++), preEncoded[k]);
    await batch.write({ sync: true });
  },
  'c. raw, encoding now': async () => {
    const batch = dbs.c.batch();
    for (let k = 0; k < SIZE; k++) {
      const index = next.c++;
      batch.put(entryKey(index), encodeEntry({ index, term: 1, type: 'command', data: payload }).value);
    }
    await batch.write({ sync: true });
  },
  'd. LevelLogStore': async () => {
    const entries = new Array(SIZE);
    for (let k = 0; k < SIZE; k++) entries[k] = { index: next.d++, term: 1, type: 'command', data: payload };
    await log.write({ entries });
  },
};

const names = Object.keys(writers);
const latencies = Object.fromEntries(names.map((n) => [n, []]));
const start = performance.now();
for (let round = 0; performance.now() - start < SECONDS * 1000; round++) {
  for (let j = 0; j < names.length; j++) {
    const name = names[(round + j) % names.length];
    const t = performance.now();
    await writers[name]();
    latencies[name].push(performance.now() - t);
  }
}
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1] * 1000;
const base = median(latencies[names[0]]);
console.log('| writer | median µs per 256-entry batch | throughput vs a |');
console.log('|---|---:|---:|');
for (const n of names)
  console.log(
    `| ${n} | ${median(latencies[n]).toFixed(0)} | ${((100 * base) / median(latencies[n])).toFixed(0)}% |`,
  );
for (const db of Object.values(dbs)) await db.close();
await log.close();
await rm(dir, { recursive: true, force: true });
