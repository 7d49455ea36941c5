// Throughput of a 3-peer cluster in one process (memory logs, in-process network):
// the protocol and runtime alone, without disks or sockets.
// Usage: node bench/inproc-cluster.mjs [seconds=3]
import { leader } from '@raft/core';
import { KVStore, set, get } from '@raft/kv';
import { testCluster, stopTestCluster } from '../dist/index.js';

const seconds = Number(process.argv[2] ?? 3);
const value = 'x'.repeat(100);

async function run(kind, concurrency) {
  const names = await testCluster(KVStore, { names: ['b1', 'b2', 'b3'] });
  const l = leader('b1');
  let ops = 0;
  const lat = [];
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      let i = 0;
      while (performance.now() < end) {
        const t0 = performance.now();
        if (kind === 'write') await set(l, `k${w}-${i++ % 10}`, value);
        else await get(l, `k${w}`);
        lat.push(performance.now() - t0);
        ops++;
      }
    }),
  );
  await stopTestCluster(names);
  lat.sort((a, b) => a - b);
  const p = (q) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))].toFixed(2);
  return `| ${kind} | ${concurrency} | ${Math.round(ops / seconds)} | ${p(0.5)} | ${p(0.99)} |`;
}

console.log('| op | concurrency | ops/s | p50 ms | p99 ms |');
console.log('| --- | --- | --- | --- | --- |');
for (const kind of ['write', 'read']) {
  for (const c of [1, 16, 64, 256]) console.log(await run(kind, c));
}
