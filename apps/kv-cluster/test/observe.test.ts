import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { http, LocalCluster, until } from './helpers.js';

const IDS = ['n1', 'n2', 'n3'];
let dir: string;
let cluster: LocalCluster;
let leader: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'raft-kv-observe-'));
  cluster = await LocalCluster.create({ ids: IDS, dir, secret: 'observe-test-secret-0123456789abcd' });
  cluster.start();
  leader = await cluster.waitForLeader(IDS, 40_000);
}, 60_000);

afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(cluster.logs());
});

afterAll(async () => {
  await cluster?.destroy();
  await rm(dir, { recursive: true, force: true });
});

/** The text of GET /metrics, as a scraper gets it. */
async function scrape(id: string): Promise<{ text: string; contentType: string }> {
  const res = await fetch(`${cluster.url(id)}/metrics`);
  expect(res.status).toBe(200);
  return { text: await res.text(), contentType: res.headers.get('content-type') ?? '' };
}

const PROMTOOL = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => existsSync(p));

describe('operator endpoints of a 3-node cluster', { timeout: 60_000 }, () => {
  it('GET /health and /healthz answer 200 on every node; /readyz 200 once a leader serves reads', async () => {
    for (const id of IDS) {
      for (const path of ['/health', '/healthz']) {
        const r = await http(`${cluster.url(id)}${path}`);
        expect(r, `${path} on ${id}`).toMatchObject({ status: 200, body: { status: 'ok', id } });
      }
      const ready = await until(`/readyz 200 on ${id}`, 20_000, async () => {
        const r = await http(`${cluster.url(id)}/readyz`);
        return r.status === 200 ? r : undefined;
      });
      expect(ready.body).toMatchObject({ ready: true, leader });
      const b = ready.body as { commitIndex: number; lastApplied: number };
      expect(b.lastApplied).toBeGreaterThanOrEqual(b.commitIndex);
    }
    const refused = await http(`${cluster.url('n1')}/readyz`, { method: 'POST', body: '{}' });
    expect(refused.status).toBe(405);
  });

  it('GET /metrics is valid Prometheus text (promtool and a JS parser) with the documented metrics', async () => {
    // Some traffic, through a follower too (forwarded inside Raft), so the histograms are not empty.
    const follower = IDS.find((id) => id !== leader)!;
    for (let i = 0; i < 5; i++) {
      const put = await http(`${cluster.url(follower)}/kv/m${i}`, {
        method: 'PUT',
        body: JSON.stringify({ value: i }),
      });
      expect(put.status).toBe(200);
      expect((await http(`${cluster.url(leader)}/kv/m${i}`)).status).toBe(200);
      const onLeader = await http(`${cluster.url(leader)}/kv/l${i}`, {
        method: 'PUT',
        body: JSON.stringify({ value: i }),
      });
      expect(onLeader.status).toBe(200);
    }
    expect((await http(`${cluster.url(leader)}/kv/missing%2Fkey`)).status).toBe(404);

    const { text, contentType } = await scrape(leader);
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);

    if (PROMTOOL !== undefined) {
      const check = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect(check.stdout + check.stderr, 'promtool check metrics').toBe('');
      expect(check.status).toBe(0);
    } else {
      console.warn('promtool not found (apt-get install prometheus): checked with the JS parser only');
    }

    const families = new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f]));
    const family = (name: string, type: string) => {
      const f = families.get(name);
      expect(f, name).toBeDefined();
      expect(f!.type, name).toBe(type);
      return f!;
    };
    const value = (name: string, labels: Record<string, string> = {}): number => {
      const sample = families
        .get(name)
        ?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
      expect(sample, `${name} ${JSON.stringify(labels)}`).toBeDefined();
      return Number(sample!.value);
    };
    for (const name of [
      'raft_term',
      'raft_commit_index',
      'raft_applied_index',
      'raft_last_log_index',
      'raft_snapshot_index',
      'raft_has_leader',
      'raft_transport_connections',
    ])
      family(name, 'GAUGE');
    for (const name of [
      'raft_leader_changes_total',
      'raft_elections_started_total',
      'raft_elections_won_total',
      'raft_proposals_total',
      'raft_reads_total',
      'raft_log_writes_total',
      'raft_snapshots_total',
      'raft_transport_sent_bytes_total',
      'raft_transport_received_bytes_total',
      'raft_transport_dropped_messages_total',
      'raft_kv_http_requests_total',
    ])
      family(name, 'COUNTER');
    // Every counter ends in _total, every histogram in a base unit or a plain count.
    for (const f of families.values()) {
      if (f.type === 'COUNTER') expect(f.name).toMatch(/_total$/);
      else expect(f.name).not.toMatch(/_total$/);
    }

    expect(value('raft_role', { role: 'leader' })).toBe(1);
    expect(value('raft_elections_won_total')).toBeGreaterThanOrEqual(1);
    // A write through a follower is proposed by the follower's peer (it forwards it to the
    // leader inside Raft): it counts there.
    const onFollower = parsePrometheusTextFormat((await scrape(follower)).text).find(
      (f) => f.name === 'raft_proposals_total',
    );
    expect(Number(onFollower?.metrics[0]?.value)).toBeGreaterThanOrEqual(5);
    expect(value('raft_commit_index')).toBeGreaterThanOrEqual(6);
    expect(value('raft_transport_connections')).toBe(2);
    expect(value('raft_transport_dropped_messages_total', { reason: 'wrongSender' })).toBe(0);
    expect(value('raft_follower_lag_entries', { follower: follower })).toBeGreaterThanOrEqual(0);
    expect(value('raft_follower_inflight_limit_messages', { follower: follower })).toBeGreaterThan(0);
    expect(
      value('raft_kv_http_requests_total', { route: 'kv', method: 'GET', code: '404' }),
    ).toBeGreaterThanOrEqual(1);
    // Client requests reach the leader inside Raft, never through the HTTP forward route.
    expect(
      families.get('raft_kv_http_requests_total')?.metrics.some((m) => m.labels?.route === 'forward'),
    ).toBe(false);
    // No user input in labels: the key never shows.
    expect(text).not.toContain('missing');

    const writes = family('raft_proposal_duration_seconds', 'HISTOGRAM').metrics[0]!;
    expect(Number(writes.count)).toBeGreaterThanOrEqual(5);
    expect(Number(writes.sum)).toBeGreaterThan(0);
    expect(Object.keys(writes.buckets!)).toContain('0.005');
    // Cumulative buckets, the last equal to the count.
    // (Object keys: integer-like bounds such as "1" come first, so sort by the bound.)
    const counts = Object.entries(writes.buckets!)
      .sort(([a], [b]) => Number(a) - Number(b))
      .map(([, c]) => Number(c));
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
    expect(counts.at(-1)).toBe(Number(writes.count));
    family('raft_read_duration_seconds', 'HISTOGRAM');
    family('raft_log_write_duration_seconds', 'HISTOGRAM');
    family('raft_log_write_entries', 'HISTOGRAM');
    family('raft_snapshot_duration_seconds', 'HISTOGRAM');
    family('raft_kv_http_request_duration_seconds', 'HISTOGRAM');
    // prom-client's default process metrics.
    family('process_cpu_seconds_total', 'COUNTER');
    family('nodejs_eventloop_lag_seconds', 'GAUGE');
  });

  it('/readyz answers 503 with the reason once the node can no longer serve linearizable reads', async () => {
    const survivor = IDS.find((id) => id !== leader)!;
    for (const id of IDS) if (id !== survivor) await cluster.node(id).kill();
    const r = await until('/readyz 503 on the survivor', 20_000, async () => {
      const res = await http(`${cluster.url(survivor)}/readyz`, { timeoutMs: 5000 });
      return res.status === 503 ? res : undefined;
    });
    expect(r.body).toMatchObject({ ready: false });
    expect(['no_leader', 'reads_unavailable']).toContain((r.body as { reason: string }).reason);
    // The process still serves: liveness stays 200 (restarting it would not help).
    expect((await http(`${cluster.url(survivor)}/health`)).status).toBe(200);
  });
});
