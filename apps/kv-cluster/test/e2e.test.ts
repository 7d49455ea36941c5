import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLI, freePorts, http, isProblemLine, LocalCluster, until } from './helpers.js';

const IDS = ['n1', 'n2', 'n3'];
const SECRET = 'e2e-test-secret-0123456789abcdef';
const ADMIN_TOKEN = 'e2e-admin-token-0123456789';

let dir: string;
let cluster: LocalCluster;
/** Every value a PUT acknowledged, by key: they must survive anything below. */
const acknowledged = new Map<string, unknown>();

async function put(id: string, key: string, value: unknown): Promise<void> {
  const r = await http(`${cluster.url(id)}/kv/${encodeURIComponent(key)}`, {
    method: 'PUT',
    body: JSON.stringify({ value }),
  });
  expect(r, `PUT ${key} via ${id}`).toMatchObject({ status: 200, body: { value } });
  acknowledged.set(key, value);
}

async function expectAll(id: string): Promise<void> {
  for (const [key, value] of acknowledged) {
    const r = await http(`${cluster.url(id)}/kv/${encodeURIComponent(key)}`);
    expect(r, `GET ${key} via ${id}`).toMatchObject({ status: 200, body: { value } });
  }
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'raft-kv-e2e-'));
  cluster = await LocalCluster.create({
    ids: IDS,
    dir,
    secret: SECRET,
    extraArgs: ['--admin-token', ADMIN_TOKEN],
  });
  cluster.start();
});

afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(cluster.logs());
});

afterAll(async () => {
  await cluster?.destroy();
  await rm(dir, { recursive: true, force: true });
});

describe('raft-kv: a 3-node cluster of real processes', { timeout: 30_000 }, () => {
  it('elects a leader, and every node serves reads and writes (followers forward)', async () => {
    await cluster.waitForLeader(IDS);
    for (const id of IDS) await put(id, `written-via-${id}`, { by: id, list: [1, 'two', null, true] });
    for (const id of IDS) await expectAll(id);
  });

  it('answers CAS and DELETE as API.md says, through a follower', async () => {
    const leader = await cluster.waitForLeader(IDS);
    const follower = IDS.find((id) => id !== leader)!;
    const base = cluster.url(follower);
    expect(await http(`${base}/kv/c`, { method: 'PUT', body: '{"value": 1}' })).toMatchObject({
      status: 200,
      body: { value: 1 },
    });
    expect(
      await http(`${base}/kv/c/cas`, { method: 'POST', body: '{"expected": 2, "value": 3}' }),
    ).toMatchObject({ status: 409, body: { error: 'cas_mismatch', value: 1 } });
    expect(
      await http(`${base}/kv/c/cas`, { method: 'POST', body: '{"expected": 1, "value": {"x": [3]}}' }),
    ).toMatchObject({ status: 200, body: { value: { x: [3] } } });
    expect(
      await http(`${base}/kv/missing/cas`, { method: 'POST', body: '{"expected": 1, "value": 2}' }),
    ).toMatchObject({ status: 404, body: { error: 'key_not_found' } });
    expect(await http(`${base}/kv/c`, { method: 'DELETE' })).toMatchObject({ status: 200, body: {} });
    expect(await http(`${base}/kv/c`, { method: 'DELETE' })).toMatchObject({
      status: 404,
      body: { error: 'key_not_found' },
    });
    expect(await http(`${base}/kv/c`)).toMatchObject({ status: 404, body: { error: 'key_not_found' } });
    // Keys are one decoded path segment: any character, 1 to 1024 bytes of UTF-8.
    await put(follower, 'a/b ü?#', 'slash');
    await put(follower, 'é'.repeat(512), 'longest key');
    const status = await http(`${base}/status`);
    expect(status).toMatchObject({
      status: 200,
      body: { name: follower, role: 'follower', leader, configuration: { members: IDS } },
    });
  });

  it('refuses bad requests with 400, 404, 405 and 413', async () => {
    const base = cluster.url('n1');
    const bad = (r: { status: number; body: unknown }): void =>
      expect(r).toMatchObject({
        status: 400,
        body: { error: 'bad_request', message: expect.any(String) as string },
      });
    bad(await http(`${base}/kv/x`, { method: 'PUT', body: '{"value": ' }));
    bad(await http(`${base}/kv/x`, { method: 'PUT', body: '{"valu": 1}' }));
    bad(await http(`${base}/kv/x`, { method: 'PUT', body: '[1]' }));
    bad(await http(`${base}/kv/x`, { method: 'PUT', headers: { 'content-type': 'application/json' } }));
    bad(await http(`${base}/kv/x/cas`, { method: 'POST', body: '{"value": 1}' }));
    bad(await http(`${base}/kv/x/cas`, { method: 'POST', body: '{"expected": 1}' }));
    bad(await http(`${base}/kv/`));
    bad(await http(`${base}/kv/${'k'.repeat(1025)}`));
    bad(await http(`${base}/kv/%E0%A4%A`));
    bad(await http(`${base}/kv/%ED%A0%80`));
    bad(
      await http(`${base}/kv/x`, { method: 'PUT', body: `{"value": ${'['.repeat(200)}${']'.repeat(200)}}` }),
    );
    // Values the log's codec cannot store exactly are refused, not changed: a key
    // "__proto__" (MessagePack would rename it) and an unpaired surrogate (not Unicode text).
    for (const node of ['n1', 'n2', 'n3']) {
      bad(
        await http(`${cluster.url(node)}/kv/odd`, {
          method: 'PUT',
          body: '{"value": {"__proto__": {"polluted": true}, "id": 1}}',
        }),
      );
      bad(await http(`${cluster.url(node)}/kv/odd`, { method: 'PUT', body: '{"value": ["\\ud800"]}' }));
      bad(
        await http(`${cluster.url(node)}/kv/odd/cas`, {
          method: 'POST',
          body: '{"expected": null, "value": {"a": {"__proto__": 1}}}',
        }),
      );
    }
    expect(await http(`${base}/kv/odd`)).toMatchObject({ status: 404 });
    expect(await http(`${base}/nope`)).toMatchObject({ status: 404, body: { error: 'not_found' } });
    expect(await http(`${base}/kv/a/b/c`)).toMatchObject({ status: 404, body: { error: 'not_found' } });
    expect(await http(`${base}/kv/x`, { method: 'POST', body: '{}' })).toMatchObject({ status: 405 });
    expect(await http(`${base}/kv/x/cas`)).toMatchObject({ status: 405 });
    const r405 = await http(`${base}/status`, { method: 'DELETE' });
    expect(r405.status).toBe(405);
    expect(r405.headers['allow']).toBe('GET');
    const big = JSON.stringify({ value: 'v'.repeat(1024 * 1024) });
    // The node answers 413 and closes the connection while the client may still be writing the
    // body: the client then sees EPIPE or ECONNRESET instead of the answer, depending on which
    // comes first. Such an attempt is sent again; the answer must be 413 whenever one arrives.
    const tooLarge = async (opts: { chunked?: boolean }): Promise<Awaited<ReturnType<typeof http>>> => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await http(`${base}/kv/big`, { method: 'PUT', body: big, ...opts });
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (attempt >= 5 || (code !== 'EPIPE' && code !== 'ECONNRESET')) throw err;
        }
      }
    };
    expect(await tooLarge({})).toMatchObject({ status: 413, body: { error: 'payload_too_large' } });
    expect(await tooLarge({ chunked: true })).toMatchObject({ status: 413 });
    // Just under the limit is fine.
    await put('n1', 'almost-big', 'v'.repeat(1024 * 1024 - 20));
  });

  it('refuses a forwarded request that is not signed with the cluster secret', async () => {
    const r = await http(`${cluster.peerUrl.get('n1')}/_raft/forward`, {
      method: 'POST',
      body: JSON.stringify({ op: { kind: 'put', key: 'evil', value: 1 }, hops: 1, timeoutMs: 1000 }),
    });
    expect(r).toMatchObject({ status: 401, body: { error: 'unauthorized' } });
    expect(await http(`${cluster.url('n1')}/kv/evil`)).toMatchObject({ status: 404 });
  });

  it('refuses what a web page or a stranger sends (issue 14), on a follower as on the leader', async () => {
    const leader = await cluster.waitForLeader(IDS);
    for (const id of IDS) {
      const base = cluster.url(id);
      const port = new URL(base).port;
      const cas = '{"expected": null, "value": "pwned"}';
      // What a web page can send without a preflight: text/plain, its own Origin, a rebinding Host.
      const page = {
        'content-type': 'text/plain',
        origin: 'http://evil.example',
        host: `rebind.evil.example:${port}`,
      };
      expect(await http(`${base}/kv/xsite/cas`, { method: 'POST', body: cas, headers: page })).toMatchObject({
        status: 421,
        body: { error: 'misdirected_request' },
      });
      const here = { ...page, host: `127.0.0.1:${port}` };
      expect((await http(`${base}/kv/xsite/cas`, { method: 'POST', body: cas, headers: here })).status).toBe(
        403,
      );
      const plain = { 'content-type': 'text/plain' };
      expect((await http(`${base}/kv/xsite/cas`, { method: 'POST', body: cas, headers: plain })).status).toBe(
        415,
      );
      // Membership and leadership need the admin token.
      const member = '{"id": "n9", "url": "ws://127.0.0.1:9"}';
      expect((await http(`${base}/cluster/members`, { method: 'POST', body: member })).status).toBe(401);
      expect((await http(`${base}/cluster/leader`, { method: 'POST', body: '{"id": "n1"}' })).status).toBe(
        401,
      );
      expect((await http(`${base}/cluster/learners`, { method: 'DELETE' })).status).toBe(401);
      // Nested deeper than a value may be: 400 on every node, and no error line.
      const deep = `{"value": ${'['.repeat(5000)}${']'.repeat(5000)}}`;
      expect(await http(`${base}/kv/deep`, { method: 'PUT', body: deep })).toMatchObject({
        status: 400,
        body: { error: 'bad_request' },
      });
    }
    expect(await http(`${cluster.url('n1')}/kv/xsite`)).toMatchObject({ status: 404 });
    const view = await http(`${cluster.url('n1')}/cluster`);
    expect(view.body).toMatchObject({ configuration: { members: IDS } });
    expect(JSON.stringify(view.body)).not.toContain('n9');
    for (const id of IDS) expect(cluster.node(id).output.filter(isProblemLine)).toEqual([]);
    // With the token, a change is made (moving leadership to the leader: a no-op).
    const r = await http(`${cluster.url(leader)}/cluster/leader`, {
      method: 'POST',
      body: JSON.stringify({ id: leader }),
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(r.status).toBe(200);
  });

  it('survives kill -9 of the leader: a new leader serves every acknowledged value', async () => {
    const old = await cluster.waitForLeader(IDS);
    await cluster.node(old).kill();
    const rest = IDS.filter((id) => id !== old);
    const leader = await cluster.waitForLeader(rest);
    expect(leader).not.toBe(old);
    for (const id of rest) await expectAll(id);
    await put(rest[0]!, 'after-failover', 42);

    // The old leader comes back with the same arguments and catches up.
    cluster.start(old);
    await until(`${old} to serve after-failover`, 20_000, async () => {
      const r = await http(`${cluster.url(old)}/kv/after-failover`, { timeoutMs: 3000 });
      return r.status === 200 ? r : undefined;
    });
    await expectAll(old);
    const target = (await cluster.status(leader))!.commitIndex;
    await until(`${old}'s lastApplied to reach ${target}`, 10_000, async () => {
      const s = await cluster.status(old);
      return s !== undefined && s.lastApplied >= target ? s : undefined;
    });
  });

  it('recovers every value after the whole cluster restarts (SIGTERM stops a node cleanly)', async () => {
    for (const id of IDS) cluster.node(id).signal('SIGTERM');
    for (const id of IDS) expect(await cluster.node(id).exited).toEqual({ code: 0, signal: null });
    cluster.start();
    await cluster.waitForLeader(IDS);
    for (const id of IDS) await expectAll(id);
  });

  it('answers 503 while no leader is known (1 node of 3 running)', async () => {
    const lone = await LocalCluster.create({ ids: IDS, dir: join(dir, 'lone'), requestTimeoutMs: 1000 });
    try {
      lone.start('n1');
      await until('n1 to listen', 10_000, () => lone.status('n1'));
      expect(await http(`${lone.url('n1')}/kv/x`)).toMatchObject({
        status: 503,
        body: { error: 'election_in_progress' },
      });
      expect(await http(`${lone.url('n1')}/kv/x`, { method: 'PUT', body: '{"value":1}' })).toMatchObject({
        status: 503,
        body: { error: 'election_in_progress' },
      });
    } finally {
      await lone.destroy();
    }
  });
});

describe('raft-kv: startup errors', { timeout: 20_000 }, () => {
  it('exits 1 with one line naming the problem', async () => {
    const ports = await freePorts(6);
    const busy = cluster.url('n1').replace('http://', '');
    const node = (i: number, http: string, data: string): string[] => {
      const listen = `127.0.0.1:${ports[2 * i]}`;
      return [
        'node',
        '--id',
        'n1',
        '--listen',
        listen,
        '--peers',
        `n1=ws://${listen}`,
        '--http',
        http,
        '--data',
        data,
      ];
    };
    const results = await Promise.all([
      run(node(0, busy, join(dir, 'x1'))),
      run(node(1, `127.0.0.1:${ports[3]}`, join(dir, 'n1'))),
      run([...node(2, `127.0.0.1:${ports[5]}`, join(dir, 'x2')), '--log-level', 'loud']),
      run(['node', '--id', 'n1', '--bogus']),
      run(['cluster', '--nodes', '3']),
      run(node(0, `0.0.0.0:${ports[1]}`, join(dir, 'x3'))),
    ]);
    const lines = results.map((r) => r.stderr.trim());
    expect(results.map((r) => r.code)).toEqual([1, 1, 1, 1, 1, 1]);
    for (const line of lines) expect(line.split('\n')).toHaveLength(1);
    expect(lines[0]).toMatch(/--http .*address already in use/);
    expect(lines[1]).toMatch(/--data .*in use by another process/);
    expect(lines[2]).toMatch(/--log-level must be one of/);
    expect(lines[3]).toMatch(/unknown option --bogus/);
    expect(lines[4]).toMatch(/--data is required/);
    // Secure by default: no secret, no listening beyond loopback (unless --insecure).
    expect(lines[5]).toMatch(/--secret .*is required to listen on 0\.0\.0\.0:\d+ .*--insecure/);
  });
});
