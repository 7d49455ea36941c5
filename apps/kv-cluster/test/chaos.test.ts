import { mkdtemp, rm } from 'node:fs/promises';
import { seededRandom } from '@raft/core';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkOperations, createHistoryRecorder, kvModel } from '@raft/testkit/linearizability';
import type { KVModelInput, KVModelOutput } from '@raft/testkit/linearizability';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, LocalCluster, until } from './helpers.js';

/*
 * Chaos: clients run GET/PUT/CAS/DELETE on a few keys against random nodes while a seeded
 * schedule SIGKILLs and restarts nodes and SIGSTOPs/SIGCONTs them. Then everything heals
 * and the whole history must be linearizable (testkit's checker, per key).
 *
 * CHAOS_SEED and CHAOS_SECONDS override the defaults, e.g. to soak locally:
 *   CHAOS_SECONDS=300 CHAOS_SEED=7 pnpm exec vitest run test/chaos.test.ts
 */

const SEED = Number(process.env['CHAOS_SEED'] ?? 20251127);
const CHAOS_MS = Number(process.env['CHAOS_SECONDS'] ?? 25) * 1000;
const IDS = ['n1', 'n2', 'n3'];
const KEYS = ['a', 'b', 'c', 'd'];
const CLIENTS = 8;
const REQUEST_TIMEOUT_MS = 1500;
/** The client waits longer than a node does: a node that answers, answers before this. */
const CLIENT_TIMEOUT_MS = REQUEST_TIMEOUT_MS + 1500;

/** mulberry32: a tiny seeded PRNG, so the schedule and the operations replay from the seed. */
const mulberry32 = seededRandom;

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let dir: string;
let cluster: LocalCluster;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'raft-kv-chaos-'));
  cluster = await LocalCluster.create({ ids: IDS, dir, secret: 'chaos-secret', requestTimeoutMs: REQUEST_TIMEOUT_MS, logLevel: 'warn' });
  cluster.start();
  await cluster.waitForLeader(IDS);
});

afterAll(async () => {
  // SIGCONT before SIGKILL: destroy() does both, for every child, even after a failure.
  await cluster?.destroy();
  await rm(dir, { recursive: true, force: true });
});

type Outcome = { kind: 'ok'; output: KVModelOutput } | { kind: 'fail' } | { kind: 'unknown' };

/** Runs one operation over HTTP and says what the client may conclude from the answer. */
async function perform(node: string, input: KVModelInput): Promise<Outcome> {
  const url = `${cluster.url(node)}/kv/${input.key}`;
  const isWrite = input.op !== 'get';
  let r;
  try {
    switch (input.op) {
      case 'get':
        r = await http(url, { timeoutMs: CLIENT_TIMEOUT_MS });
        break;
      case 'set':
        r = await http(url, { method: 'PUT', body: JSON.stringify({ value: input.value }), timeoutMs: CLIENT_TIMEOUT_MS });
        break;
      case 'delete':
        r = await http(url, { method: 'DELETE', timeoutMs: CLIENT_TIMEOUT_MS });
        break;
      case 'cas':
        r = await http(`${url}/cas`, { method: 'POST', body: JSON.stringify({ expected: input.expected, value: input.value }), timeoutMs: CLIENT_TIMEOUT_MS });
        break;
    }
  } catch (err) {
    // Refused: the request never reached a node. Anything else: it may have.
    if ((err as NodeJS.ErrnoException).code === 'ECONNREFUSED') return { kind: 'fail' };
    return isWrite ? { kind: 'unknown' } : { kind: 'fail' };
  }
  const body = r.body as { value?: unknown; error?: string } | undefined;
  switch (r.status) {
    case 200:
      return { kind: 'ok', output: input.op === 'delete' ? { ok: true } : { ok: true, value: body?.value } };
    case 404:
      if (body?.error !== 'key_not_found') throw new Error(`unexpected 404 ${JSON.stringify(body)}`);
      return { kind: 'ok', output: { ok: false, error: 'key_not_found' } };
    case 409:
      return { kind: 'ok', output: { ok: false, error: 'cas_mismatch', value: body?.value } };
    case 503:
      // Refused before anything reached the log: no effect.
      return { kind: 'fail' };
    case 504:
      return isWrite ? { kind: 'unknown' } : { kind: 'fail' };
    default:
      throw new Error(`unexpected answer ${r.status} ${JSON.stringify(body)} to ${JSON.stringify(input)} via ${node}`);
  }
}

describe('raft-kv under chaos: kill -9, restart, SIGSTOP/SIGCONT', () => {
  it('keeps every history linearizable', { timeout: CHAOS_MS + 60_000 }, async () => {
    const recorder = createHistoryRecorder<KVModelInput, KVModelOutput>();
    const counts = { ok: 0, fail: 0, unknown: 0, okWrites: 0, okReads: 0 };
    const faults = { kills: 0, pauses: 0 };
    const end = performance.now() + CHAOS_MS;
    const unexpected: unknown[] = [];

    const client = async (c: number): Promise<void> => {
      const random = mulberry32(SEED * 31 + c);
      const lastSeen = new Map<string, unknown>();
      let seq = 0;
      while (performance.now() < end) {
        const key = pick(random, KEYS);
        const roll = random();
        const value = `c${c}-${seq++}`;
        const input: KVModelInput =
          roll < 0.4
            ? { op: 'get', key }
            : roll < 0.7
              ? { op: 'set', key, value }
              : roll < 0.9
                ? { op: 'cas', key, expected: lastSeen.get(key) ?? null, value }
                : { op: 'delete', key };
        const id = recorder.invoke(c, input);
        let outcome: Outcome;
        try {
          outcome = await perform(pick(random, IDS), input);
        } catch (err) {
          unexpected.push(err);
          recorder.unknown(id);
          continue;
        }
        if (outcome.kind === 'ok') {
          recorder.ok(id, outcome.output);
          counts.ok++;
          if (input.op === 'get') counts.okReads++;
          else counts.okWrites++;
          if (outcome.output.value !== undefined) lastSeen.set(key, outcome.output.value);
        } else if (outcome.kind === 'fail') {
          recorder.fail(id);
          counts.fail++;
        } else {
          recorder.unknown(id);
          counts.unknown++;
        }
        await sleep(5 + Math.floor(random() * 20));
      }
    };

    const nemesis = async (): Promise<void> => {
      const random = mulberry32(SEED);
      const down = new Set<string>();
      const paused = new Set<string>();
      while (performance.now() < end - 1500) {
        await sleep(400 + Math.floor(random() * 1000));
        const faulty = down.size + paused.size;
        if (faulty > 0 && (random() < 0.55 || faulty >= 2)) {
          const id = pick(random, [...down, ...paused].sort());
          if (down.delete(id)) cluster.start(id);
          else if (paused.delete(id)) cluster.node(id).signal('SIGCONT');
          continue;
        }
        const healthy = IDS.filter((id) => !down.has(id) && !paused.has(id));
        // Half of the time, hit the leader: that is where faults hurt.
        let target = pick(random, healthy);
        if (random() < 0.5) {
          const statuses = await Promise.all(healthy.map((id) => cluster.status(id).catch(() => undefined)));
          const leader = statuses.find((s) => s?.role === 'leader')?.name;
          if (leader !== undefined) target = leader;
        }
        if (random() < 0.5) {
          await cluster.node(target).kill();
          down.add(target);
          faults.kills++;
        } else {
          cluster.node(target).signal('SIGSTOP');
          paused.add(target);
          faults.pauses++;
        }
      }
    };

    await Promise.all([nemesis(), ...Array.from({ length: CLIENTS }, (_, c) => client(c))]);

    // Heal: everyone running, nobody paused; then read every key once more through every node.
    for (const id of IDS) {
      const node = cluster.node(id);
      if (!node.running) node.start();
      else node.signal('SIGCONT');
    }
    await cluster.waitForLeader(IDS, 30_000);
    for (const id of IDS) {
      for (const key of KEYS) {
        const input: KVModelInput = { op: 'get', key };
        const op = recorder.invoke('final', input);
        const outcome = await until(`a final read of ${key} via ${id}`, 15_000, async () => {
          const o = await perform(id, input);
          return o.kind === 'ok' ? o : undefined;
        });
        recorder.ok(op, outcome.output);
      }
    }

    const history = recorder.operations();
    const started = performance.now();
    const result = checkOperations(kvModel, history, { timeoutMs: 120_000 });
    const checkMs = Math.round(performance.now() - started);
    console.log(
      `chaos seed=${SEED}: ${history.length} operations checked (${counts.ok} ok: ${counts.okWrites} writes, ${counts.okReads} reads; ` +
        `${counts.unknown} unknown, ${counts.fail} failed and dropped); faults: ${faults.kills} kill -9, ${faults.pauses} SIGSTOP; check ${checkMs} ms`,
    );
    if (result.ok !== true) console.error(result.ok === false ? result.counterexample.description : 'the checker ran out of time', cluster.logs());
    expect(unexpected).toEqual([]);
    expect(result).toEqual({ ok: true });
    expect(counts.okWrites).toBeGreaterThan(0);
    expect(counts.okReads).toBeGreaterThan(0);
  });
});
