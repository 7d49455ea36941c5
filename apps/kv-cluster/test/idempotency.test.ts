import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { http, LocalCluster, until, type HttpResult } from './helpers.js';

const IDS = ['n1', 'n2', 'n3'];
const SECRET = 'idempotency-test-secret-0123456789';

let dir: string;
let cluster: LocalCluster;
let leader: string;
let follower: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'raft-kv-idem-'));
  cluster = await LocalCluster.create({ ids: IDS, dir, secret: SECRET });
  cluster.start();
  leader = await cluster.waitForLeader(IDS);
  follower = IDS.find((id) => id !== leader)!;
});

afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(cluster.logs());
});

afterAll(async () => {
  await cluster?.destroy();
  await rm(dir, { recursive: true, force: true });
});

function send(id: string, method: string, path: string, body?: unknown, key?: string): Promise<HttpResult> {
  return http(`${cluster.url(id)}${path}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    ...(key === undefined ? {} : { headers: { 'idempotency-key': key } }),
  });
}

describe('raft-kv: Idempotency-Key on writes', { timeout: 60_000 }, () => {
  it('a retried CAS gets the first answer (replayed), and is not applied again', async () => {
    expect(await send(leader, 'PUT', '/kv/c', { value: 0 })).toMatchObject({ status: 200 });
    const cas = { expected: 0, value: 1 };
    const first = await send(follower, 'POST', '/kv/c/cas', cas, '"cas-1"');
    expect(first).toMatchObject({ status: 200, body: { value: 1 } });
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    // The retry (through the leader this time, then a follower): the first answer, not a 409.
    for (const id of [leader, follower]) {
      const again = await send(id, 'POST', '/kv/c/cas', cas, '"cas-1"');
      expect(again).toMatchObject({ status: 200, body: { value: 1 } });
      expect(again.headers['idempotent-replayed']).toBe('true');
    }
    // Without the key, the same CAS applies again, and fails: the key made the difference.
    expect(await send(leader, 'POST', '/kv/c/cas', cas)).toMatchObject({ status: 409 });
  });

  it('a retried DELETE answers 200 again, not 404', async () => {
    expect(await send(leader, 'PUT', '/kv/d', { value: 'x' })).toMatchObject({ status: 200 });
    expect(await send(follower, 'DELETE', '/kv/d', undefined, 'del-1')).toMatchObject({ status: 200 });
    const again = await send(follower, 'DELETE', '/kv/d', undefined, 'del-1');
    expect(again).toMatchObject({ status: 200 });
    expect(again.headers['idempotent-replayed']).toBe('true');
  });

  it('the same key with another body (or path) gets 422 and changes nothing', async () => {
    expect(await send(leader, 'PUT', '/kv/p', { value: 1 }, 'put-1')).toMatchObject({ status: 200 });
    expect(await send(follower, 'PUT', '/kv/p', { value: 2 }, 'put-1')).toMatchObject({
      status: 422,
      body: { error: 'idempotency_key_reused' },
    });
    expect(await send(leader, 'PUT', '/kv/other', { value: 1 }, 'put-1')).toMatchObject({ status: 422 });
    expect(await send(leader, 'GET', '/kv/p')).toMatchObject({ status: 200, body: { value: 1 } });
  });

  it('a replay is answered from the replicated state: by the next leader after kill -9, and by the killed one once it leads again', async () => {
    expect(await send(leader, 'PUT', '/kv/f', { value: 0 })).toMatchObject({ status: 200 });
    const cas = { expected: 0, value: 1 };
    expect(await send(leader, 'POST', '/kv/f/cas', cas, '"failover-1"')).toMatchObject({
      status: 200,
      body: { value: 1 },
    });
    const killed = leader;
    const others = IDS.filter((id) => id !== killed);
    await cluster.node(killed).kill();
    const next = await cluster.waitForLeader(others);
    for (const id of others) {
      const again = await send(id, 'POST', '/kv/f/cas', cas, '"failover-1"');
      expect(again).toMatchObject({ status: 200, body: { value: 1 } });
      expect(again.headers['idempotent-replayed']).toBe('true');
    }
    // The killed node restarts from its own log and leads: its copy of the record answers.
    cluster.start(killed);
    await until(`${killed} to lead again`, 30_000, async () => {
      const r = await send(killed, 'POST', '/cluster/leader', { id: killed });
      return r.status === 200 ? true : undefined;
    });
    const again = await send(killed, 'POST', '/kv/f/cas', cas, '"failover-1"');
    expect(again).toMatchObject({ status: 200, body: { value: 1 } });
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(await send(next, 'GET', '/kv/f')).toMatchObject({ status: 200, body: { value: 1 } });
    leader = killed;
    follower = next;
  });

  it('refuses a malformed key with 400', async () => {
    expect(await send(leader, 'PUT', '/kv/q', { value: 1 }, '')).toMatchObject({ status: 400 });
    expect(await send(leader, 'PUT', '/kv/q', { value: 1 }, 'x'.repeat(256))).toMatchObject({ status: 400 });
    expect(await send(leader, 'GET', '/kv/q')).toMatchObject({ status: 404 });
  });
});
