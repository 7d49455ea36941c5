/**
 * The Elixir `raft` library's walkthrough, step by step, through API.md's contract:
 * three peers, setConfiguration, a leader, get of a missing key, set then get, a write
 * to a follower redirected, the leader stopped, a new leader serving the value.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  leader,
  RaftError,
  setConfiguration,
  startPeer,
  status,
  stopPeer,
  getEntry,
  type PeerId,
} from '@raft/core';
import { KVStore, get, set, del, cas } from '@raft/kv';
import { MemoryLogStore } from '@raft/log-memory';
import { InProcessNetwork } from '@raft/transport-inproc';
import { stopTestCluster, testCluster, waitFor } from '../src/index.js';

let running: PeerId[] = [];
afterEach(async () => {
  await stopTestCluster(running);
  running = [];
});

async function codeOf(p: Promise<unknown>): Promise<{ code: string; leader?: string | null }> {
  try {
    await p;
  } catch (err) {
    if (RaftError.isInstance(err)) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

describe('the Elixir library walkthrough', () => {
  it('runs end to end', async () => {
    const network = new InProcessNetwork({ seed: 7 });
    const names = ['s1', 's2', 's3'];
    for (const name of names) {
      await startPeer(KVStore, { name, log: new MemoryLogStore(), transport: network.join(name) });
    }
    running = names;
    // Fresh peers know no leader until configured.
    expect(leader('s1')).toBeNull();

    const config = await setConfiguration('s1', names);
    expect(config.members).toEqual(names);
    await waitFor(() => names.every((n) => leader(n) !== null && leader(n) === leader('s1')), 5000);
    const l = leader('s1')!;

    expect(await get(l, 'a')).toEqual({ ok: false, error: 'key_not_found' });
    expect(await set(l, 'a', 1)).toEqual({ ok: true, value: 1 });
    expect(await get(l, 'a')).toEqual({ ok: true, value: 1 });

    const follower = names.find((n) => n !== l)!;
    const redirect = await codeOf(set(follower, 'a', 2));
    expect(redirect.code).toBe('RAFT_NOT_LEADER');
    expect(redirect.leader).toBe(l);

    await stopPeer(l);
    const rest = names.filter((n) => n !== l);
    await waitFor(() => {
      const nl = leader(rest[0]!);
      return nl !== null && nl !== l && leader(rest[1]!) === nl && status(nl).role === 'leader';
    }, 5000);
    const nl = leader(rest[0]!)!;
    expect(await get(nl, 'a')).toEqual({ ok: true, value: 1 });
    expect((await getEntry(nl, 1))?.type).toBe('config');
  });

  it('testCluster starts three configured peers with a leader, and the kv helpers work', async () => {
    running = await testCluster(KVStore);
    expect(running).toHaveLength(3);
    const l = leader(running[0]!)!;
    expect(running).toContain(l);
    expect(status(l).configuration.members).toEqual(running.slice().sort());
    expect(await set(l, 'k', { nested: [1, 2] })).toEqual({ ok: true, value: { nested: [1, 2] } });
    expect(await cas(l, 'k', { nested: [1, 2] }, 'v2')).toEqual({ ok: true, value: 'v2' });
    expect(await cas(l, 'k', 'wrong', 'v3')).toEqual({ ok: false, error: 'cas_mismatch', value: 'v2' });
    expect((await del(l, 'k')).ok).toBe(true);
    expect(await get(l, 'k')).toEqual({ ok: false, error: 'key_not_found' });
    expect(await del(l, 'k')).toEqual({ ok: false, error: 'key_not_found' });
  });
});
