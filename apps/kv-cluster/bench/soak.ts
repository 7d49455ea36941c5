/*
 * bench:soak: does a raft-kv cluster keep its leader under a steady write load with large
 * snapshots? The event-loop delay of every node, and every election, while closed-loop
 * clients spread over all nodes write 100-byte values to a keyspace that makes the state
 * large (200,000 keys by default, written once first) and a snapshot is taken every
 * --snapshot-every entries.
 *
 *   node dist/bench/soak.js [--seconds 120] [--keys 200000] [--concurrency 64]
 *                           [--snapshot-every 10000] [--raft-kv-args "--election-timeout 300-600"]
 *
 * Prints, per node, the event-loop delay over the 5 s windows the node measures itself
 * (`status().eventLoopDelay`: the worst window's p99 and max, and the median window's
 * p99), the snapshots it took, and the terms it went through: an election during a soak
 * is a spurious one (no node failed).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runLoad } from './loadgen.js';
import { jsonRequest, Processes, startRaftKv } from './procs.js';

interface LoopWindow {
  p99Ms: number;
  maxMs: number;
}
interface NodeStatus {
  role?: string;
  term?: number;
  eventLoopDelay?: LoopWindow | null;
  metrics?: { snapshotsTaken?: number };
}

const VALUE = 'v'.repeat(100);

async function main(): Promise<void> {
  const args = process.argv.slice(2).filter((a, i) => !(i === 0 && a === '--'));
  const { values } = parseArgs({
    args,
    options: {
      seconds: { type: 'string', default: '120' },
      keys: { type: 'string', default: '200000' },
      concurrency: { type: 'string', default: '64' },
      'snapshot-every': { type: 'string', default: '10000' },
      'raft-kv-args': { type: 'string', default: '' },
    },
  });
  const seconds = Number(values.seconds);
  const keys = Number(values.keys);
  const concurrency = Number(values.concurrency);
  if (![seconds, keys, concurrency].every((n) => Number.isSafeInteger(n) && n > 0))
    throw new Error('--seconds, --keys and --concurrency must be positive integers');
  const extra = [
    '--snapshot-every',
    values['snapshot-every'],
    ...values['raft-kv-args'].split(/\s+/).filter(Boolean),
  ];

  const procs = new Processes();
  const dir = await mkdtemp(join(tmpdir(), 'raft-kv-soak-'));
  process.once('SIGINT', () => void procs.stopAll().then(() => process.exit(130)));
  const loadBefore = loadavg()[0] ?? 0;
  try {
    const { urls } = await startRaftKv(procs, dir, 3, extra);
    const ids = urls.map((_, i) => `n${i + 1}`);
    const status = async (url: string): Promise<NodeStatus | undefined> =>
      (await jsonRequest(`${url}/status`))?.body as NodeStatus | undefined;

    // Fill the state: every key once, spread over the nodes; a failed write is sent again.
    process.stderr.write(`writing ${keys} keys...\n`);
    let next = 0;
    let retries = 0;
    await Promise.all(
      Array.from({ length: 64 }, async (_, w) => {
        for (let i = next++; i < keys; i = next++) {
          for (let attempt = 0; ; attempt++) {
            const r = await jsonRequest(`${urls[(w + attempt) % urls.length]}/kv/key-${i}`, 'PUT', {
              value: VALUE,
            });
            if (r !== null && r.status === 200) break;
            retries++;
            if (attempt > 50) throw new Error(`could not write key-${i}: ${r?.status ?? 'no answer'}`);
          }
        }
      }),
    );
    process.stderr.write(`wrote ${keys} keys (${retries} writes sent again)\n`);

    const terms = new Map<string, Set<number>>(ids.map((id) => [id, new Set<number>()]));
    const windows = new Map<string, LoopWindow[]>(ids.map((id) => [id, []]));
    const snapshotsAtStart = new Map<string, number>();
    for (const [i, url] of urls.entries()) {
      const s = await status(url);
      snapshotsAtStart.set(ids[i]!, s?.metrics?.snapshotsTaken ?? 0);
      if (s?.term !== undefined) terms.get(ids[i]!)!.add(s.term);
    }
    const last = new Map<string, LoopWindow | null>();
    const poll = setInterval(() => {
      void Promise.all(
        urls.map(async (url, i) => {
          const s = await status(url);
          const id = ids[i]!;
          if (s?.term !== undefined) terms.get(id)!.add(s.term);
          const w = s?.eventLoopDelay ?? null;
          // A node reports a new window every 5 s: keep each once.
          if (w !== null && JSON.stringify(w) !== JSON.stringify(last.get(id) ?? null)) {
            windows.get(id)!.push(w);
            last.set(id, w);
          }
        }),
      );
    }, 1000);
    let seq = 0;
    const load = await runLoad({
      target: urls,
      concurrency,
      durationMs: seconds * 1000,
      next: () => ({
        method: 'PUT',
        path: `/kv/key-${(seq++ * 7919) % keys}`,
        body: Buffer.from(JSON.stringify({ value: VALUE })),
      }),
      onProgress: (done, elapsed) => {
        if (process.stderr.isTTY)
          process.stderr.write(`\r${done} writes, ${Math.round(done / (elapsed / 1000))}/s   `);
      },
    });
    clearInterval(poll);
    const finalStatus = await Promise.all(urls.map((u) => status(u)));

    const med = (xs: number[]): number => {
      const s = [...xs].sort((a, b) => a - b);
      return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)]!;
    };
    const lines = [
      '| node | 5 s windows | median window p99 ms | worst window p99 ms | worst max ms | snapshots taken | terms seen |',
      '|---|---:|---:|---:|---:|---:|---|',
    ];
    for (const [i, id] of ids.entries()) {
      const ws = windows.get(id)!;
      lines.push(
        `| ${id} | ${ws.length} | ${med(ws.map((w) => w.p99Ms)).toFixed(1)} | ${Math.max(...ws.map((w) => w.p99Ms)).toFixed(1)} | ${Math.max(...ws.map((w) => w.maxMs)).toFixed(1)} | ${(finalStatus[i]?.metrics?.snapshotsTaken ?? 0) - (snapshotsAtStart.get(id) ?? 0)} | ${[...terms.get(id)!].sort((a, b) => a - b).join(', ')} |`,
      );
    }
    const allTerms = new Set([...terms.values()].flatMap((t) => [...t]));
    process.stdout.write(
      [
        '',
        lines.join('\n'),
        '',
        `- ${load.ops} writes in ${seconds} s (${Math.round(load.opsPerSec)}/s, p99 ${load.p99.toFixed(1)} ms, ${load.errors} errors), ${concurrency} clients spread over the nodes, ${keys} keys, --snapshot-every ${values['snapshot-every']}${values['raft-kv-args'] === '' ? '' : `, ${values['raft-kv-args']}`}`,
        `- elections during the soak: ${allTerms.size - 1} (terms ${[...allTerms].sort((a, b) => a - b).join(', ')})`,
        `- machine: ${cpus().length} CPUs, Node.js ${process.version}; load average before ${loadBefore.toFixed(2)}, after ${(loadavg()[0] ?? 0).toFixed(2)}`,
        '',
      ].join('\n'),
    );
  } finally {
    await procs.stopAll();
    await rm(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`soak: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
