// Benchmark: @raft/transport-ws against a raw `ws` echo, between two processes.
//
//   pnpm bench                      (from packages/transport-ws, after a build)
//   BENCH_DURATION_MS=5000 BENCH_RUNS=5 pnpm bench
//
// For each payload size (100 B and 64 KiB) the parent sends messages to a forked child,
// which echoes each one back; a fixed window of messages is kept in flight. A message
// counts once its echo is back. MB/s is payload bytes per second in one direction.
// - transport: an AppendEntries carrying one entry of the payload, through
//   webSocketTransport on both sides (MessagePack, validation, identity checks both ways).
// - raw ws: a binary frame of the payload, echoed by a plain `ws` server.
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus, loadavg, totalmem, platform, release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
if (!existsSync(here('../dist/index.js'))) {
  console.error('dist/ is missing: build first (pnpm build in packages/transport-ws).');
  process.exit(1);
}
const { webSocketTransport } = await import('../dist/index.js');

const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 2000);
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 500);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SIZES = [100, 64 * 1024];
const WINDOW = { 100: 256, [64 * 1024]: 32 };

function child(mode) {
  const proc = fork(here('./echo-child.mjs'), [mode], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ready = new Promise((resolve, reject) => {
    proc.once('message', (m) => resolve(m.ready));
    proc.once('exit', (code) => reject(new Error(`child exited with ${code}`)));
  });
  const stop = () =>
    new Promise((resolve) => {
      let metrics = null;
      proc.on('message', (m) => {
        if (m.metrics) metrics = m.metrics;
      });
      proc.once('exit', () => resolve(metrics));
      proc.send({ stop: true });
    });
  return { ready, stop };
}

async function benchTransport(size) {
  const c = child('transport');
  const port = await c.ready;
  let onEcho = () => {};
  const a = webSocketTransport({
    name: 'a',
    listen: { host: '127.0.0.1', port: 0 },
    peers: { b: `ws://127.0.0.1:${port}` },
    pingIntervalMs: 0,
  });
  await a.start(() => onEcho());
  while (!a.connectedPeers().includes('b')) await new Promise((r) => setTimeout(r, 10));
  const data = Buffer.alloc(size, 7);
  const message = (seq) => ({
    type: 'AppendEntries',
    term: 1,
    from: 'a',
    to: 'b',
    prevLogIndex: 0,
    prevLogTerm: 0,
    entries: [{ index: 1, term: 1, type: 'command', data }],
    leaderCommit: 0,
    seq,
  });
  const result = await new Promise((resolve) => {
    let seq = 0;
    let counted = 0;
    let start = 0;
    let measuring = false;
    const t0 = performance.now();
    onEcho = () => {
      const now = performance.now();
      if (!measuring && now - t0 >= WARMUP_MS) {
        measuring = true;
        start = now;
      }
      if (measuring && ++counted && now - start >= DURATION_MS) {
        onEcho = () => {};
        resolve({ messages: counted, seconds: (now - start) / 1000 });
        return;
      }
      a.send('b', message(seq++));
    };
    for (let i = 0; i < WINDOW[size]; i++) a.send('b', message(seq++));
  });
  const mine = a.metrics();
  await a.close();
  const theirs = await c.stop();
  const drops =
    Object.values(mine.dropped).reduce((x, y) => x + y, 0) +
    Object.values(theirs?.dropped ?? {}).reduce((x, y) => x + y, 0);
  return { ...result, frameBytes: Math.round(mine.bytesSent / mine.messagesSent), drops };
}

async function benchRaw(size) {
  const c = child('raw');
  const port = await c.ready;
  const ws = new WebSocket(`ws://127.0.0.1:${port}`, {
    perMessageDeflate: false,
    maxPayload: 16 * 1024 * 1024,
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const data = Buffer.alloc(size, 7);
  const result = await new Promise((resolve) => {
    let counted = 0;
    let start = 0;
    let measuring = false;
    const t0 = performance.now();
    ws.on('message', () => {
      const now = performance.now();
      if (!measuring && now - t0 >= WARMUP_MS) {
        measuring = true;
        start = now;
      }
      if (measuring && ++counted && now - start >= DURATION_MS) {
        ws.removeAllListeners('message');
        resolve({ messages: counted, seconds: (now - start) / 1000 });
        return;
      }
      ws.send(data, { binary: true });
    });
    for (let i = 0; i < WINDOW[size]; i++) ws.send(data, { binary: true });
  });
  ws.terminate();
  await c.stop();
  return { ...result, frameBytes: size, drops: 0 };
}

// Raw and transport alternate within each run, so background load hits both alike; the
// table shows the median of the runs.
const samples = new Map();
for (let run = 0; run < RUNS; run++) {
  for (const size of SIZES) {
    for (const [name, bench] of [
      ['raw ws echo', benchRaw],
      ['@raft/transport-ws', benchTransport],
    ]) {
      const r = await bench(size);
      const key = `${size} ${name}`;
      if (!samples.has(key)) samples.set(key, { name, size, runs: [] });
      samples.get(key).runs.push(r);
    }
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [...samples.values()].map(({ name, size, runs }) => {
  const perSecond = median(runs.map((r) => r.messages / r.seconds));
  return {
    name,
    size,
    perSecond,
    mbps: (perSecond * size) / 1e6,
    frameBytes: runs[0].frameBytes,
    drops: runs.reduce((n, r) => n + r.drops, 0),
    window: WINDOW[size],
  };
});

const label = (size) => (size >= 1024 ? `${size / 1024} KiB` : `${size} B`);
console.log(
  `Node ${process.version}, ${platform()} ${release()}, ${cpus()[0]?.model ?? 'unknown CPU'} x ${cpus().length}, ${Math.round(totalmem() / 2 ** 30)} GiB`,
);
console.log(
  `median of ${RUNS} runs of ${DURATION_MS} ms per case (after ${WARMUP_MS} ms warm-up); echo between two processes over loopback; load average ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}\n`,
);
console.log('| payload | case | window | frame bytes | messages/s | MB/s (payload, one way) | drops |');
console.log('|---|---|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(
    `| ${label(r.size)} | ${r.name} | ${r.window} | ${r.frameBytes} | ${Math.round(r.perSecond).toLocaleString('en-US')} | ${r.mbps.toFixed(1)} | ${r.drops} |`,
  );
}
