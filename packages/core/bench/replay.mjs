// Restart replay: how fast a peer applies the committed log it finds at start, when no
// snapshot shortens it. A single-voter peer opens a store holding N commands, elects
// itself, and applies them all; the figure is the time from startPeer to lastApplied = N.
//
//   pnpm bench                      # in packages/core, after a build (N = 50000, 200000)
//   node bench/replay.mjs 1000000   # other sizes
//
// The store and transport are minimal in-memory stand-ins (core depends on no adapter),
// and the election timeout is 20-40 ms, so the figure is the runtime's own cost: reading the log into the protocol, committing,
// decoding each command and applying it, with the apply loop's yields.
import { msgpackCodec, startPeer } from '../dist/index.js';

const sizes = process.argv.length > 2 ? process.argv.slice(2).map(Number) : [50_000, 200_000];

/** The smallest LogStore: entries kept as given. */
function memoryStore(entries) {
  let hardState = { term: 1, votedFor: 'a' };
  const log = [...entries];
  return {
    async open() {
      return { hardState, firstIndex: 1, lastIndex: log.length };
    },
    async write(batch) {
      if (batch.hardState) hardState = batch.hardState;
      if (batch.entries?.length) {
        log.length = batch.entries[0].index - 1;
        log.push(...batch.entries);
      }
    },
    async entries(from, to) {
      return log.slice(from - 1, to - 1);
    },
    async close() {},
  };
}

const transport = { async start() {}, send() {}, async close() {} };
const machine = {
  init: () => new Map(),
  handleWrite: (c, s) => [s.set(c.key, c.value).size, s],
  handleRead: (q, s) => s.get(q.key),
};

const codec = msgpackCodec();
const enc = new TextEncoder();
for (const n of sizes) {
  const entries = [
    { index: 1, term: 1, type: 'config', data: enc.encode(JSON.stringify({ members: ['a'] })) },
  ];
  for (let i = 0; i < n; i++)
    entries.push({
      index: i + 2,
      term: 1,
      type: 'command',
      data: codec.encode({ key: `k${i}`, value: 'x'.repeat(100) }),
    });
  const started = performance.now();
  const peer = await startPeer(machine, {
    name: 'a',
    log: memoryStore(entries),
    transport,
    snapshotEvery: 0,
    electionTimeoutMs: [20, 40],
    heartbeatIntervalMs: 10,
    tickMs: 10,
  });
  const booted = performance.now();
  while (peer.status().lastApplied < n + 1) await new Promise((r) => setTimeout(r, 2));
  const done = performance.now();
  await peer.stop();
  const ms = done - started;
  console.log(
    `replay ${n} entries: ${Math.round(ms)} ms (start ${Math.round(booted - started)} ms), ${Math.round((n / ms) * 1000)} entries/s, ${((ms * 1000) / n).toFixed(1)} us/entry`,
  );
}
