// Three peers in this process, each with its own LevelDB log (@raft/log-level) and its own
// WebSocket port on 127.0.0.1 (@raft/transport-ws), as a user would wire them from npm.
// Writes, reads (linearizable), checks every peer agrees on the leader, stops, exits.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { leader, setConfiguration, startPeer, status, stopPeer } from '@raft/core';
import { KVStore, get, set } from '@raft/kv';
import { levelLogStore } from '@raft/log-level';
import { webSocketTransport } from '@raft/transport-ws';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(cond, ms, what) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const names = ['a', 'b', 'c'];
const dir = await mkdtemp(join(tmpdir(), 'raft-pack-cluster-'));
const secret = 'pack-install-test-secret-of-32-bytes!';
const ports = {};
for (const n of names) ports[n] = await freePort();
const peers = Object.fromEntries(names.map((n) => [n, `ws://127.0.0.1:${ports[n]}`]));
try {
  for (const name of names) {
    await startPeer(KVStore, {
      name,
      log: levelLogStore({ location: join(dir, name) }),
      transport: webSocketTransport({
        name,
        listen: { host: '127.0.0.1', port: ports[name] },
        peers,
        secret,
      }),
    });
  }
  await setConfiguration('a', names);
  await waitFor(
    () => names.every((n) => leader(n) !== null && leader(n) === leader('a')),
    30_000,
    'a leader',
  );
  const l = leader('a');
  const w = await set(l, 'greeting', 'hello over WebSockets');
  if (!w.ok) throw new Error(`write failed: ${JSON.stringify(w)}`);
  const follower = names.find((n) => n !== l);
  const r = await get(l, 'greeting');
  if (!r.ok || r.value !== 'hello over WebSockets') throw new Error(`read failed: ${JSON.stringify(r)}`);
  await waitFor(
    () => status(follower).commitIndex >= status(l).commitIndex,
    10_000,
    'the follower to catch up',
  );
  console.log(
    `cluster: leader ${l}, wrote and read back ${JSON.stringify(r.value)}; ${follower} at commit ${status(follower).commitIndex}`,
  );
} finally {
  await Promise.all(names.map((n) => stopPeer(n).catch(() => {})));
  await rm(dir, { recursive: true, force: true });
}
