// The Elixir `raft` library's walkthrough, in one Node.js process.
// Run from the repository root with `pnpm walkthrough`.
import { startPeer, setConfiguration, leader, status, stopPeer, RaftError } from '@raft/core';
import { KVStore, set, get } from '@raft/kv';
import { MemoryLogStore } from '@raft/log-memory';
import { InProcessNetwork } from '@raft/transport-inproc';

const say = (...args) => console.log(...args);
const waitFor = async (cond, ms = 5000) => {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
};

const network = new InProcessNetwork();
const names = ['s1', 's2', 's3'];
for (const name of names) {
  await startPeer(KVStore, { name, log: new MemoryLogStore(), transport: network.join(name) });
  say(`started peer ${name}`);
}
say(`leader before configuration: ${leader('s1')}`);

say(`setConfiguration('s1', ${JSON.stringify(names)}) ->`, await setConfiguration('s1', names));
await waitFor(() => names.every((n) => leader(n) !== null && leader(n) === leader('s1')));
const l = leader('s1');
say(`leader: ${l} (term ${status(l).term})`);

say(`get(${l}, 'a') ->`, await get(l, 'a'));
say(`set(${l}, 'a', 1) ->`, await set(l, 'a', 1));
say(`get(${l}, 'a') ->`, await get(l, 'a'));

const follower = names.find((n) => n !== l);
try {
  await set(follower, 'a', 2);
} catch (err) {
  if (!RaftError.isInstance(err)) throw err;
  say(`set(${follower}, 'a', 2) -> ${err.code}, leader: ${err.leader}`);
}

say(`stopPeer(${l})`);
await stopPeer(l);
const rest = names.filter((n) => n !== l);
await waitFor(() => {
  const nl = leader(rest[0]);
  return nl !== null && nl !== l && leader(rest[1]) === nl;
});
const nl = leader(rest[0]);
say(`new leader: ${nl} (term ${status(nl).term})`);
say(`get(${nl}, 'a') ->`, await get(nl, 'a'));

await Promise.all(rest.map((n) => stopPeer(n)));
say('stopped; the walkthrough completed');
