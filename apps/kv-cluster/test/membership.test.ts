import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Configuration, PeerStatus } from '@raft/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DIRECTORY_FILE } from '../src/directory.js';
import { http, LocalCluster, runCli, until } from './helpers.js';

/** n1..n3 form the cluster; n4 starts later with --join and is added. */
const INITIAL = ['n1', 'n2', 'n3'];
const IDS = [...INITIAL, 'n4'];
const SECRET = 'membership-test-secret-0123456789';

interface View {
  leader: string | null;
  configuration: Configuration;
  peers: Record<string, string>;
}

let dir: string;
let cluster: LocalCluster;
/** The voting members now, as the tests change them. */
let members = [...INITIAL];
/** Removed by the first test while it ran; restarted by the last. */
let removedFollower = '';
const acknowledged = new Map<string, number>();

async function view(id: string): Promise<View> {
  const r = await http(`${cluster.url(id)}/cluster`, { timeoutMs: 2000 });
  expect(r.status).toBe(200);
  return r.body as View;
}

/** Waits until every node of `ids` reports exactly `expected` as members, with no change under way. */
async function configured(ids: string[], expected: string[]): Promise<void> {
  await until(`the configuration [${expected.join(', ')}] on ${ids.join(', ')}`, 15_000, async () => {
    for (const id of ids) {
      const c = (await view(id)).configuration;
      if (
        c.members.join() !== [...expected].sort().join() ||
        c.learners !== undefined ||
        c.outgoing !== undefined
      )
        return undefined;
    }
    return true;
  });
}

/**
 * A light load: `writers` loops, each PUTting its own counter keys one at a time through
 * the nodes of `via` in turn. Every answer other than 200 is a failure.
 */
function load(
  via: () => string[],
  writers = 2,
): { stop(): Promise<void>; ok: () => number; failures: string[] } {
  let running = true;
  let ok = 0;
  const failures: string[] = [];
  const loops = Array.from({ length: writers }, async (_, w) => {
    for (let i = 0; running; i++) {
      const nodes = via();
      const id = nodes[i % nodes.length]!;
      const key = `load-${w}-${i}`;
      try {
        const r = await http(`${cluster.url(id)}/kv/${key}`, {
          method: 'PUT',
          body: JSON.stringify({ value: i }),
          timeoutMs: 8000,
        });
        if (r.status === 200) {
          ok++;
          acknowledged.set(key, i);
        } else failures.push(`PUT ${key} via ${id}: ${r.status} ${JSON.stringify(r.body)}`);
      } catch (err) {
        failures.push(`PUT ${key} via ${id}: ${(err as Error).message}`);
      }
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
    ok: () => ok,
    failures,
  };
}

/**
 * Snapshots every 500 entries: with the 1000 entries kept behind a snapshot, the leader's
 * log no longer starts at 1 once about 1500 entries are applied, so n4 gets a snapshot.
 */
const SNAPSHOT_EVERY = 500;
const PREFILL = 1600;

/** PUTs `count` keys through `id`, 32 at a time (setup: a PUT that fails is sent again; it is idempotent). */
async function prefill(id: string, count: number): Promise<void> {
  for (let i = 0; i < count; i += 32) {
    await Promise.all(
      Array.from({ length: Math.min(32, count - i) }, async (_, j) => {
        const key = `pre-${i + j}`;
        await until(`PUT ${key}`, 20_000, async () => {
          const r = await http(`${cluster.url(id)}/kv/${key}`, {
            method: 'PUT',
            body: JSON.stringify({ value: i + j }),
          });
          return r.status === 200 ? r : undefined;
        });
        acknowledged.set(key, i + j);
      }),
    );
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'raft-kv-members-'));
  cluster = await LocalCluster.create({
    ids: IDS,
    initial: INITIAL,
    dir,
    secret: SECRET,
    extraArgs: ['--snapshot-every', String(SNAPSHOT_EVERY)],
  });
  cluster.start(...INITIAL);
});

afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(cluster.logs());
});

afterAll(async () => {
  await cluster?.destroy();
  await rm(dir, { recursive: true, force: true });
});

describe('raft-kv: membership changes of a running cluster (real processes)', { timeout: 60_000 }, () => {
  it('adds a 4th node started with --join, then removes a follower, under load, with no failed write', async () => {
    const leader = await cluster.waitForLeader(INITIAL);
    const [victim, other] = INITIAL.filter((id) => id !== leader) as [string, string];
    removedFollower = victim;
    // Enough entries that the leader compacted its log: n4 will need a snapshot.
    await prefill(leader, PREFILL);
    await until('the leader to compact its log', 10_000, async () =>
      (await cluster.status(leader))!.firstLogIndex > 1 ? true : undefined,
    );
    const termBefore = (await cluster.status(leader))!.term;
    const writes = load(() => [leader, other]);

    // n4 knows everyone but must not bootstrap: it waits, unconfigured, in term 0.
    cluster.start('n4');
    const fresh = await until('n4 to answer', 10_000, () => cluster.status('n4'));
    expect(fresh).toMatchObject({ term: 0, lastLogIndex: 0, configuration: { members: [] } });

    // Added through the CLI, on a follower (forwarded to the leader).
    const added = await runCli([
      'members',
      '--http',
      cluster.httpAddr(other),
      'add',
      'n4',
      cluster.wsUrl('n4'),
    ]);
    expect(added.stderr).toBe('');
    expect(added.code).toBe(0);
    expect(added.stdout).toContain('members: n1, n2, n3, n4');
    members = [...IDS];
    await configured(IDS, IDS);
    // Every node learned n4's URL through the replicated peer directory, and keeps it in its data directory.
    for (const id of IDS) expect((await view(id)).peers['n4']).toBe(`${cluster.wsUrl('n4')}/`);
    for (const id of INITIAL) {
      await until(`${id}'s directory file`, 5000, async () => {
        const file = JSON.parse(await readFile(join(dir, id, DIRECTORY_FILE), 'utf8')) as {
          peers: Record<string, string>;
        };
        return file.peers['n4'] === `${cluster.wsUrl('n4')}/` ? true : undefined;
      });
    }
    // n4 started from the leader's snapshot (key-value map and peer directory), not from entry 1.
    expect((await cluster.status('n4'))!.metrics.snapshotsInstalled).toBeGreaterThanOrEqual(1);

    // Removed through the new node's HTTP API (forwarded too).
    const removed = await http(`${cluster.url('n4')}/cluster/members/${victim}`, { method: 'DELETE' });
    expect(removed).toMatchObject({ status: 200 });
    members = IDS.filter((id) => id !== victim);
    await configured(members, members);
    // The others forget its URL: their transports refuse it from now on.
    await until(`${victim}'s URL forgotten`, 10_000, async () => {
      for (const id of members) if ((await view(id)).peers[victim] !== undefined) return undefined;
      return true;
    });

    await writes.stop();
    // Adding and removing a follower never interrupts the leader: not one write fails.
    // (An election, which neither change causes, would fail a few; on a machine starved
    // of CPU one can happen anyway, and then only 503s and 504s are allowed.)
    const termAfter = (await cluster.status(leader))!.term;
    if (termAfter === termBefore) expect(writes.failures).toEqual([]);
    else {
      console.warn(
        `an election happened during the load (term ${termBefore} -> ${termAfter}); ${writes.failures.length} writes failed`,
      );
      for (const f of writes.failures) expect(f).toMatch(/: 50[34] /);
    }
    expect(writes.ok()).toBeGreaterThan(10);
    // n4 caught up: it serves every acknowledged write (its reads go through the leader,
    // so also check its own applied index reached the leader's commit index).
    const target = (await cluster.status(leader))!.commitIndex;
    await until(`n4 to apply up to ${target}`, 10_000, async () =>
      (await cluster.status('n4'))!.lastApplied >= target ? true : undefined,
    );
    for (const [key, value] of [...[...acknowledged].slice(0, 10), ...[...acknowledged].slice(-20)]) {
      expect(await http(`${cluster.url('n4')}/kv/${key}`)).toMatchObject({ status: 200, body: { value } });
    }
  });

  it('a member restarted after the change knows the new node at once (its directory file)', async () => {
    const leader = await cluster.waitForLeader(members);
    const follower = members.find((id) => id !== leader && id !== 'n4')!;
    await cluster.node(follower).kill();
    cluster.start(follower);
    const first = await until(`${follower} to answer`, 10_000, async () => {
      const r = await http(`${cluster.url(follower)}/cluster`, { timeoutMs: 2000 });
      return r.status === 200 ? (r.body as View) : undefined;
    });
    expect(first.peers['n4']).toBe(`${cluster.wsUrl('n4')}/`);
    expect(await cluster.waitForLeader(members)).toBe(leader);
  });

  it('answers 400 for a bad id, a non-member or a bad URL', async () => {
    const base = cluster.url(members[0]!);
    const bad = { status: 400, body: { error: 'bad_request' } };
    expect(
      await http(`${base}/cluster/members`, {
        method: 'POST',
        body: JSON.stringify({ id: 'no spaces', url: 'ws://127.0.0.1:9' }),
      }),
    ).toMatchObject(bad);
    expect(
      await http(`${base}/cluster/members`, {
        method: 'POST',
        body: JSON.stringify({ id: 'n9', url: 'http://127.0.0.1:9' }),
      }),
    ).toMatchObject(bad);
    expect(
      await http(`${base}/cluster/members`, { method: 'POST', body: JSON.stringify({ id: 'n9' }) }),
    ).toMatchObject(bad);
    expect(await http(`${base}/cluster/members/nobody`, { method: 'DELETE' })).toMatchObject(bad);
    expect(await http(`${base}/cluster/members/%20x`, { method: 'DELETE' })).toMatchObject(bad);
    expect(
      await http(`${base}/cluster/leader`, { method: 'POST', body: JSON.stringify({ id: 'nobody' }) }),
    ).toMatchObject(bad);
    expect(await http(`${base}/cluster/leader`, { method: 'POST', body: '{}' })).toMatchObject(bad);
    expect(await http(`${base}/cluster/leader`)).toMatchObject({ status: 405 });
    expect(await http(`${base}/cluster/x`)).toMatchObject({ status: 404 });
    // Nothing changed.
    expect((await view(members[0]!)).configuration.members).toEqual(members);
  });

  it('transfers leadership on request (raft-kv transfer)', async () => {
    const leader = await cluster.waitForLeader(members);
    const target = members.find((id) => id !== leader)!;
    const follower = members.find((id) => id !== leader && id !== target)!;
    const r = await runCli(['transfer', '--http', cluster.httpAddr(follower), target]);
    expect(r.stderr).toBe('');
    expect(r).toMatchObject({ code: 0, stdout: `leader: ${target}\n` });
    expect(await cluster.waitForLeader(members)).toBe(target);
  });

  it('removes the leader: the others elect a new one, and forget it', async () => {
    const leader = await cluster.waitForLeader(members);
    const follower = members.find((id) => id !== leader)!;
    const r = await http(`${cluster.url(follower)}/cluster/members/${leader}`, { method: 'DELETE' });
    expect(r).toMatchObject({ status: 200 });
    const rest = members.filter((id) => id !== leader);
    const next = await cluster.waitForLeader(rest);
    expect(next).not.toBe(leader);
    await configured(rest, rest);
    await until(`${leader}'s URL forgotten`, 15_000, async () => {
      for (const id of rest) if ((await view(id)).peers[leader] !== undefined) return undefined;
      return true;
    });
    // The removed leader stepped down and knows it is out.
    expect(await cluster.status(leader)).toMatchObject({
      role: 'follower',
      configuration: { members: rest },
    });
    members = rest;
    expect(
      await http(`${cluster.url(members[0]!)}/kv/after-removal`, { method: 'PUT', body: '{"value": 1}' }),
    ).toMatchObject({ status: 200 });
  });

  it('a removed node that restarts does not disrupt the cluster (term unchanged)', async () => {
    const leader = await cluster.waitForLeader(members);
    const before = (await cluster.status(leader))!;
    await cluster.node(removedFollower).kill();
    cluster.start(removedFollower);
    await until(`${removedFollower} to answer`, 10_000, () => cluster.status(removedFollower));
    // Watch for a while: the restarted node times out many times (election timeout
    // 150-300 ms) and must change no one's term or leader.
    const watchUntil = performance.now() + 2500;
    let looks = 0;
    while (performance.now() < watchUntil) {
      const statuses = (await Promise.all(members.map((id) => cluster.status(id)))) as PeerStatus[];
      for (const s of statuses) expect(s, s.name).toMatchObject({ term: before.term, leader });
      looks++;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(looks).toBeGreaterThan(5);
    // It runs, cut off: the members forgot its URL and refuse its connections.
    expect(await cluster.status(removedFollower)).toMatchObject({ leader: null });
    await until('a write through the leader', 10_000, async () => {
      const r = await http(`${cluster.url(leader)}/kv/after-${removedFollower}-restarted`, {
        method: 'PUT',
        body: '{"value": 1}',
      });
      return r.status === 200 ? r : undefined;
    });
  });
  it('a learner that never catches up blocks nothing: a new change replaces it, raft-kv members cancel drops it', async () => {
    const leader = await cluster.waitForLeader(members);
    const follower = members.find((id) => id !== leader)!;
    // Nobody listens at these URLs: each learner waits forever (the call answers 504).
    const addGhost = (id: string, port: number) =>
      http(`${cluster.url(follower)}/cluster/members`, {
        method: 'POST',
        body: JSON.stringify({ id, url: `ws://127.0.0.1:${port}` }),
      });
    const learners = async (): Promise<string[]> => (await view(leader)).configuration.learners ?? [];
    expect((await addGhost('ghost1', 9)).status).toBe(504);
    expect(await learners()).toEqual(['ghost1']);
    // A new change replaces the stuck one (before: 409 for as long as the learner existed).
    expect((await addGhost('ghost2', 10)).status).toBe(504);
    expect(await learners()).toEqual(['ghost2']);
    await until('ghost1 forgotten', 10_000, async () =>
      (await view(leader)).peers['ghost1'] === undefined ? true : undefined,
    );
    const r = await runCli(['members', '--http', cluster.httpAddr(follower), 'cancel']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    await configured(members, members);
    // Each member forgets the cancelled learner's URL once it applies the change (as ghost1 above).
    for (const id of members)
      await until(`${id} forgets ghost2`, 10_000, async () =>
        Object.keys((await view(id)).peers).some((p) => p.startsWith('ghost')) ? undefined : true,
      );
    expect(
      await http(`${cluster.url(members[0]!)}/kv/after-cancel`, { method: 'PUT', body: '{"value": 1}' }),
    ).toMatchObject({ status: 200 });
  });
});
