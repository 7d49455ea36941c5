import { appendFileSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seededRandom } from '@raft/core';
import { checkOperations, createHistoryRecorder, kvModel, UNKNOWN } from '@raft/testkit/linearizability';
import type { HistoryRecorder, KVModelInput, KVModelOutput } from '@raft/testkit/linearizability';
import { afterEach, describe, expect, it } from 'vitest';
import { forwardKey, signForward } from '../src/forward.js';
import {
  crashes,
  currentLeader,
  handshakeMac,
  http,
  LocalCluster,
  msgpack,
  rawExchange,
  RawWsClient,
  unmsgpack,
  until,
  wsFrame,
  wsUpgradeRequest,
  type PackValue,
  type RawResult,
} from './helpers.js';

/*
 * Chaos, Jepsen-style, black-box: clients run GET/PUT/CAS/DELETE on a few keys against
 * random nodes of a cluster of `raft-kv node` processes while a seeded nemesis kills
 * (SIGKILL), restarts, pauses (SIGSTOP) and resumes (SIGCONT) them. Then everything heals
 * and the whole history must be linearizable (testkit's checker, per key), no node may have
 * crashed or logged an error, no answer may be a 500, and the cluster must serve again
 * within 30 s of every healing.
 *
 * Every write carries an `Idempotency-Key` of its own. A write whose answer is lost (a
 * timeout, a 504, a dropped connection) is sent again with the same key and body, through
 * another node, until it gets a definite answer: the cluster applies it at most once and
 * answers a retry with the first answer, whichever node it reaches, across kills and
 * restarts. No write may be left with an unknown outcome at the end.
 *
 * The default run is what CI runs (~32 s): 3 nodes, 8 clients, 25 s of today's `mix`, then
 * one kill -9 of every node in the middle of a burst of writes, a restart in a random order,
 * and reads through every node as leader. Knobs, for soaks (CHAOS.md has them all, and the
 * results):
 *
 *   CHAOS_SEED=7 CHAOS_SECONDS=120 CHAOS_NODES=5 CHAOS_CLIENTS=32 CHAOS_MODE=mixed \
 *     CHAOS_HOSTILE=3 pnpm exec vitest run test/chaos.test.ts -t 'under chaos'
 *
 * CHAOS_MODE: `mix` (random kills and pauses of single nodes, up to all but one at a time),
 * or a comma-separated list of rounds to draw from: `kill-all` (every node at once, SIGKILL,
 * or SIGSTOP for all, sometimes mid-burst; restart in a random order, sometimes staggered),
 * `pause-leader` (SIGSTOP the leader 1-5 s), `majority` (kill or pause a majority 1.5-5.5 s:
 * nothing may succeed meanwhile), `flap` (kill -9 and restart the same node 3-8 times in a
 * row, sometimes before it finished starting), `minority` (kill or pause up to a minority),
 * `lagging` (make a lagging node: kill or pause a follower, let the majority commit a burst
 * of writes, bring it back and kill -9 the leader at once, so that the lagging node takes
 * part in the next election: a vote without the up-to-date check, or a read served without
 * ReadIndex, shows), or `mixed` (all of these). `mix` makes a lagging node too, now and then.
 *
 * CHAOS_ELECTIONS=short runs the nodes with short election timeouts (150-300 ms, heartbeat
 * 50 ms): many more elections in the same time. CHAOS_ELECTION_TIMEOUT=MIN-MAX sets any range.
 */

type RoundKind = 'kill-all' | 'pause-leader' | 'majority' | 'flap' | 'minority' | 'lagging';
const ROUND_KINDS: readonly RoundKind[] = [
  'kill-all',
  'pause-leader',
  'majority',
  'flap',
  'minority',
  'lagging',
];

/** One chaos run's settings. */
interface ChaosConfig {
  name: string;
  seed: number;
  nodes: number;
  clients: number;
  keys: number;
  /** How long the nemesis runs, before the closing kill-all round and the checks. */
  chaosMs: number;
  mode: 'mix' | RoundKind[];
  /** End with a kill -9 of every node mid-burst, and a restart. */
  finalKillAll: boolean;
  /** Concurrent loops throwing hostile bytes at every port (0: none). */
  hostile: number;
  requestTimeoutMs: number;
  clientTimeoutMs: number;
  /** Append one JSON line with the run's figures to this file. */
  reportFile: string | undefined;
  /** Keep the data directory (node logs, LevelDB) even when the run passes. */
  keep: boolean;
  /** More `raft-kv node` options (`--snapshot-every 200`, `--election-timeout 150-300`). */
  nodeArgs: string[];
  /** What the clients write: short strings, or JSON values of every shape (see {@link valueFor}). */
  values: ValueKind;
}

type ValueKind = 'plain' | 'rich' | 'hostile';

function envNumber(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

function envMode(): 'mix' | RoundKind[] {
  const raw = process.env['CHAOS_MODE'] ?? 'mix';
  if (raw === 'mix') return 'mix';
  if (raw === 'mixed') return [...ROUND_KINDS];
  const kinds = raw.split(',').map((s) => s.trim());
  for (const k of kinds) {
    if (!(ROUND_KINDS as readonly string[]).includes(k))
      throw new Error(`CHAOS_MODE: ${JSON.stringify(k)} is not one of mix, mixed, ${ROUND_KINDS.join(', ')}`);
  }
  return kinds as RoundKind[];
}

function envValues(): ValueKind {
  const raw = process.env['CHAOS_VALUES'] ?? 'plain';
  if (raw !== 'plain' && raw !== 'rich' && raw !== 'hostile')
    throw new Error(`CHAOS_VALUES must be plain, rich or hostile, got ${JSON.stringify(raw)}`);
  return raw;
}

const REQUEST_TIMEOUT_MS = 1500;

function configFromEnv(): ChaosConfig {
  const clients = envNumber('CHAOS_CLIENTS', 8, 1, 256);
  const nodes = envNumber('CHAOS_NODES', 3, 3, 5);
  if (nodes === 4) throw new Error('CHAOS_NODES must be 3 or 5');
  return {
    name: 'env',
    seed: envNumber('CHAOS_SEED', 20251127, 0, 2 ** 32 - 1),
    nodes,
    clients,
    keys: envNumber('CHAOS_KEYS', Math.max(4, Math.ceil(clients / 2)), 1, 1000),
    chaosMs: envNumber('CHAOS_SECONDS', 25, 1, 24 * 3600) * 1000,
    mode: envMode(),
    finalKillAll: envNumber('CHAOS_FINAL_KILL_ALL', 1, 0, 1) === 1,
    hostile: envNumber('CHAOS_HOSTILE', 0, 0, 64),
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    // The client waits longer than a node does: a node that answers, answers before this.
    clientTimeoutMs: REQUEST_TIMEOUT_MS + 1500,
    reportFile: process.env['CHAOS_REPORT'],
    keep: envNumber('CHAOS_KEEP', 0, 0, 1) === 1,
    values: envValues(),
    nodeArgs: [
      ...(process.env['CHAOS_SNAPSHOT_EVERY'] === undefined
        ? []
        : ['--snapshot-every', process.env['CHAOS_SNAPSHOT_EVERY']]),
      ...electionArgs(),
    ],
  };
}

/** `--election-timeout` (and heartbeat) for the nodes: CHAOS_ELECTION_TIMEOUT, or the CHAOS_ELECTIONS preset. */
function electionArgs(): string[] {
  const range = process.env['CHAOS_ELECTION_TIMEOUT'];
  if (range !== undefined && range !== '') return ['--election-timeout', range];
  const preset = process.env['CHAOS_ELECTIONS'] ?? 'default';
  if (preset === 'default') return [];
  if (preset === 'short') return ['--election-timeout', '150-300', '--heartbeat-interval', '50'];
  throw new Error(`CHAOS_ELECTIONS must be default or short, got ${JSON.stringify(preset)}`);
}

const SECRET = 'chaos-secret';
/** How long after healing a fault the cluster has to serve a write, or it is stuck. */
const STUCK_MS = 30_000;

const mulberry32 = seededRandom;

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

function shuffle<T>(random: () => number, items: readonly T[]): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

type Outcome = { kind: 'ok'; output: KVModelOutput } | { kind: 'fail' } | { kind: 'unknown' };

/** One HTTP attempt of an operation: an {@link Outcome}, and whether the node answered a replay. */
type Attempt = Outcome & { replayed?: boolean };

/** A fault the nemesis injected, and when it ended. */
interface FaultRecord {
  kind: 'kill' | 'pause' | RoundKind | 'pause-all' | 'final-kill-all';
  nodes: string[];
  /** Whether the leader (as last seen) was among the nodes. */
  leader: boolean;
  detail: string;
  start: number;
  /** When a majority could run again (every node for the single-node faults of `mix`). */
  healed?: number;
}

/** A window in which a majority was down: no operation called in it may succeed before it ends. */
interface DarkWindow {
  from: number;
  to: number;
  detail: string;
}

/** One attack's outcomes, by HTTP status or how the connection ended. */
type AttackStats = Record<string, number>;

/** A chaos run: the cluster, the history, and everything counted on the way. */
class ChaosRun {
  readonly recorder: HistoryRecorder<KVModelInput, KVModelOutput> = createHistoryRecorder<
    KVModelInput,
    KVModelOutput
  >();
  readonly ids: string[];
  readonly keys: string[];
  readonly counts = {
    ok: 0,
    fail: 0,
    /** Writes whose outcome stayed unknown: no definite answer by {@link retryUntil}. */
    unknown: 0,
    okWrites: 0,
    okReads: 0,
    /** Writes sent again (same Idempotency-Key and body) after an attempt with an unknown outcome. */
    retried: 0,
    /** Attempts beyond the first, over all retried writes. */
    retries: 0,
    /** Retried writes that got a definite answer. */
    resolved: 0,
    /** Definite answers that were replays (`Idempotent-Replayed: true`): an earlier attempt had applied. */
    replayed: 0,
  };
  /** Until when (a `performance.now()` time) a write with an unknown outcome is sent again; set when the clients stop. */
  retryUntil = Infinity;
  /** Completions per second since `t0`: [ok, failed, unknown]. */
  readonly perSecond: [number, number, number][] = [];
  /** Return times of successful writes, in order. */
  readonly okWriteTimes: number[] = [];
  readonly faults: FaultRecord[] = [];
  readonly dark: DarkWindow[] = [];
  readonly problems: string[] = [];
  readonly hostileStats = new Map<string, AttackStats>();
  readonly t0 = performance.now();
  stopClients = false;
  stopHostile = false;
  private writeWaiters: { after: number; resolve: () => void }[] = [];

  constructor(
    readonly cfg: ChaosConfig,
    readonly cluster: LocalCluster,
  ) {
    this.ids = cluster.ids;
    this.keys =
      cfg.keys <= 26
        ? Array.from({ length: cfg.keys }, (_, i) => String.fromCharCode(97 + i))
        : Array.from({ length: cfg.keys }, (_, i) => `k${i}`);
  }

  problem(what: string): void {
    if (this.problems.length < 100)
      this.problems.push(`${((performance.now() - this.t0) / 1000).toFixed(1)}s ${what}`);
  }

  fault(kind: FaultRecord['kind'], nodes: string[], leader: string | undefined, detail = ''): FaultRecord {
    const f: FaultRecord = {
      kind,
      nodes,
      leader: leader !== undefined && nodes.includes(leader),
      detail,
      start: performance.now(),
    };
    this.faults.push(f);
    return f;
  }

  /**
   * Runs one operation over HTTP and records it. A write carries an `Idempotency-Key` of
   * its own; while its outcome is unknown (a timeout, a 504, a dropped connection) it is
   * sent again with the same key and body, through the next node, until a definite answer
   * or {@link retryUntil}. Once an attempt may have reached the log, a refusal of a later
   * one (503, a refused connection) says nothing about the first: it is retried too. The
   * history has one operation: called at the first attempt, returned at the definite answer.
   */
  async op(clientId: string | number, node: string, input: KVModelInput): Promise<Outcome> {
    const id = this.recorder.invoke(clientId, input);
    const key = input.op === 'get' ? undefined : `"chaos-${id}"`;
    let outcome: Outcome;
    try {
      let attempt = await this.perform(node, input, key);
      if (attempt.kind === 'unknown' && key !== undefined) {
        this.counts.retried++;
        const start = this.ids.indexOf(node);
        for (let n = 1; performance.now() < this.retryUntil; n++) {
          await sleep(Math.min(25 * 2 ** n, 400));
          this.counts.retries++;
          const next = await this.perform(this.ids[(start + n) % this.ids.length]!, input, key);
          // A value the codec cannot store is refused (400) at every attempt: none applied.
          if (next.kind === 'ok' || (next.kind === 'fail' && !storable(input))) {
            attempt = next;
            this.counts.resolved++;
            break;
          }
        }
      }
      if (attempt.kind === 'ok' && attempt.replayed === true) this.counts.replayed++;
      outcome = attempt.kind === 'ok' ? { kind: 'ok', output: attempt.output } : { kind: attempt.kind };
    } catch (err) {
      this.problem(err instanceof Error ? err.message : String(err));
      this.recorder.unknown(id);
      return { kind: 'unknown' };
    }
    const now = performance.now();
    const second = Math.floor((now - this.t0) / 1000);
    while (this.perSecond.length <= second) this.perSecond.push([0, 0, 0]);
    const bucket = this.perSecond[second]!;
    if (outcome.kind === 'ok') {
      this.recorder.ok(id, outcome.output);
      this.counts.ok++;
      bucket[0]++;
      if (input.op === 'get') this.counts.okReads++;
      else {
        this.counts.okWrites++;
        this.okWriteTimes.push(now);
        this.writeWaiters = this.writeWaiters.filter((w) => {
          if (now < w.after) return true;
          w.resolve();
          return false;
        });
      }
    } else if (outcome.kind === 'fail') {
      this.recorder.fail(id);
      this.counts.fail++;
      bucket[1]++;
    } else {
      this.recorder.unknown(id);
      this.counts.unknown++;
      bucket[2]++;
    }
    return outcome;
  }

  /** Resolves true at the first successful write returning at or after `after`, false after `ms`. */
  wroteSince(after: number, ms: number): Promise<boolean> {
    const last = this.okWriteTimes[this.okWriteTimes.length - 1];
    if (last !== undefined && last >= after) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.writeWaiters = this.writeWaiters.filter((w) => w !== waiter);
        resolve(false);
      }, ms);
      const waiter = {
        after,
        resolve: () => {
          clearTimeout(timer);
          resolve(true);
        },
      };
      this.writeWaiters.push(waiter);
    });
  }

  /**
   * Runs one attempt of an operation over HTTP (a write with `idempotencyKey`) and says what
   * the client may conclude from the answer.
   */
  private async perform(node: string, input: KVModelInput, idempotencyKey?: string): Promise<Attempt> {
    const url = `${this.cluster.url(node)}/kv/${input.key}`;
    const isWrite = input.op !== 'get';
    const timeoutMs = this.cfg.clientTimeoutMs;
    const headers: Record<string, string> =
      idempotencyKey === undefined ? {} : { 'idempotency-key': idempotencyKey };
    let r;
    try {
      switch (input.op) {
        case 'get':
          r = await http(url, { timeoutMs });
          break;
        case 'set':
          r = await http(url, {
            method: 'PUT',
            body: JSON.stringify({ value: input.value }),
            headers,
            timeoutMs,
          });
          break;
        case 'delete':
          r = await http(url, { method: 'DELETE', headers, timeoutMs });
          break;
        case 'cas':
          r = await http(`${url}/cas`, {
            method: 'POST',
            body: JSON.stringify({ expected: input.expected, value: input.value }),
            headers,
            timeoutMs,
          });
          break;
      }
    } catch (err) {
      // Refused: the request never reached a node. Anything else: it may have.
      if ((err as NodeJS.ErrnoException).code === 'ECONNREFUSED') return { kind: 'fail' };
      return isWrite ? { kind: 'unknown' } : { kind: 'fail' };
    }
    const body = r.body as { value?: unknown; error?: string } | undefined;
    const replayed = r.headers['idempotent-replayed'] === 'true';
    switch (r.status) {
      case 200:
        return {
          kind: 'ok',
          output: input.op === 'delete' ? { ok: true } : { ok: true, value: body?.value },
          replayed,
        };
      case 404:
        if (body?.error !== 'key_not_found')
          throw new Error(`unexpected 404 ${JSON.stringify(body)} to ${JSON.stringify(input)} via ${node}`);
        return { kind: 'ok', output: { ok: false, error: 'key_not_found' }, replayed };
      case 409:
        return { kind: 'ok', output: { ok: false, error: 'cas_mismatch', value: body?.value }, replayed };
      case 503:
        // Refused before anything reached the log: no effect.
        return { kind: 'fail' };
      case 504:
        return isWrite ? { kind: 'unknown' } : { kind: 'fail' };
      case 400:
        // The log's codec refuses a value it cannot store exactly (`hostile` values): no effect.
        if (isWrite && body?.error === 'bad_request' && !storable(input)) return { kind: 'fail' };
        throw new Error(
          `unexpected answer ${r.status} ${JSON.stringify(body)} to ${JSON.stringify(input)} via ${node}`,
        );
      default:
        throw new Error(
          `unexpected answer ${r.status} ${JSON.stringify(body)} to ${JSON.stringify(input)} via ${node}`,
        );
    }
  }
}

/** Whether the values of a write are ones `@raft/core`'s codec stores exactly (no key `__proto__`, no unpaired surrogate). */
function storable(input: KVModelInput): boolean {
  const stack: unknown[] = 'value' in input ? [input.value, 'expected' in input ? input.expected : null] : [];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string' && /\p{Cs}/u.test(v)) return false;
    if (typeof v === 'object' && v !== null) {
      for (const [k, item] of Object.entries(v)) {
        if (k === '__proto__' || /\p{Cs}/u.test(k)) return false;
        stack.push(item);
      }
    }
  }
  return true;
}

// ---- clients ----------------------------------------------------------------------------

/**
 * A value to write, unique by `id` (the checker tells writes apart by their values).
 * `plain`: the id. `rich`: JSON values of every shape that must come back exactly as
 * written: unicode, escapes, numbers, nested objects and arrays, up to 64 KiB.
 * `hostile`: rich, plus object keys named `__proto__` and strings with unpaired surrogates
 * (valid JSON that `@raft/core`'s codec cannot store exactly: refused with 400, nothing stored).
 */
function valueFor(random: () => number, id: string, kind: ValueKind): unknown {
  if (kind === 'plain') return id;
  const shapes: (() => unknown)[] = [
    () => id,
    () => `${id} ünïcödé ✓ 日本語 🚀 "quoted" \\ back\\slash\n\ttab \u0000 nul`,
    () => ({
      id,
      n: Math.floor(random() * 1e9) / 1000,
      big: 2 ** 53 - 1,
      neg: -1e-7,
      t: true,
      f: false,
      nil: null,
    }),
    () => [id, [[], {}, [[[1]]]], { '': '' }, 'x'.repeat(Math.floor(random() * 200))],
    () => ({ id, nested: Array.from({ length: 20 }).reduce<unknown>((inner) => ({ d: inner }), 'deep') }),
    () => ({
      id,
      'a key with spaces': 1,
      ключ: 2,
      constructor: { prototype: 3 },
      toString: 'no',
      hasOwnProperty: 0,
    }),
    () => `${id} ${'long '.repeat(Math.floor(random() * 13_000))}`,
  ];
  if (kind === 'hostile') {
    shapes.push(
      () => JSON.parse(`{"id":${JSON.stringify(id)},"__proto__":{"polluted":true}}`) as unknown,
      () => `${id} \ud800 lone surrogate`,
    );
  }
  return pick(random, shapes)();
}

/** A closed-loop client: 40% GET, 30% PUT, 20% CAS (on the value it saw last), 10% DELETE. */
async function client(run: ChaosRun, c: number): Promise<void> {
  const random = mulberry32(run.cfg.seed * 31 + c);
  const lastSeen = new Map<string, unknown>();
  let seq = 0;
  while (!run.stopClients) {
    const key = pick(random, run.keys);
    const roll = random();
    const value = valueFor(random, `c${c}-${seq++}`, run.cfg.values);
    const input: KVModelInput =
      roll < 0.4
        ? { op: 'get', key }
        : roll < 0.7
          ? { op: 'set', key, value }
          : roll < 0.9
            ? { op: 'cas', key, expected: lastSeen.get(key) ?? null, value }
            : { op: 'delete', key };
    const outcome = await run.op(c, pick(random, run.ids), input);
    if (outcome.kind === 'ok' && outcome.output.value !== undefined) lastSeen.set(key, outcome.output.value);
    await sleep(5 + Math.floor(random() * 20));
  }
}

/** `n` writes at once, through random nodes (the burst a kill -9 of everyone lands in). */
function burst(run: ChaosRun, random: () => number, n: number, tag: string): Promise<void> {
  return Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const key = pick(random, run.keys);
      const value = valueFor(random, `b${tag}-${i}`, run.cfg.values);
      const input: KVModelInput =
        random() < 0.7 ? { op: 'set', key, value } : { op: 'cas', key, expected: null, value };
      await run.op(`burst-${tag}-${i}`, pick(random, run.ids), input);
    }),
  ).then(() => undefined);
}

// ---- the nemesis -------------------------------------------------------------------------

/** Today's mix: kill -9 or SIGSTOP single nodes (the leader half of the time), heal at random; never every node at once. */
async function nemesisMix(run: ChaosRun, end: number): Promise<void> {
  const { cluster, ids } = run;
  const random = mulberry32(run.cfg.seed);
  const down = new Map<string, FaultRecord>();
  const paused = new Map<string, FaultRecord>();
  // A separate generator for the lagging-node rounds, so that the mix draws what it drew before them.
  const lagRandom = mulberry32(run.cfg.seed ^ 0x9e3779b9);
  let lags = 0;
  while (performance.now() < end - 1500) {
    await sleep(400 + Math.floor(random() * 1000));
    const faulty = down.size + paused.size;
    if (faulty === 0 && performance.now() < end - 5000 && lagRandom() < 0.25) {
      // Now and then, with every node up: a lagging node in the next election.
      const f = await roundLagging(run, lagRandom, `lag${lags++}`);
      if (!(await run.wroteSince(f.healed ?? f.start, STUCK_MS))) {
        run.problem(
          `stuck: no write succeeded within ${STUCK_MS / 1000} s of healing ${f.kind} (${f.detail})`,
        );
        return;
      }
      continue;
    }
    if (faulty > 0 && (random() < 0.55 || faulty >= ids.length - 1)) {
      const id = pick(random, [...down.keys(), ...paused.keys()].sort());
      const f = down.get(id) ?? paused.get(id)!;
      if (down.delete(id)) cluster.start(id);
      else if (paused.delete(id)) cluster.node(id).signal('SIGCONT');
      f.healed = performance.now();
      continue;
    }
    const healthy = ids.filter((id) => !down.has(id) && !paused.has(id));
    // Half of the time, hit the leader: that is where faults hurt.
    let target = pick(random, healthy);
    let leader: string | undefined;
    if (random() < 0.5) {
      const statuses = await Promise.all(healthy.map((id) => cluster.status(id).catch(() => undefined)));
      leader = statuses.find((s) => s?.role === 'leader')?.name;
      if (leader !== undefined) target = leader;
    }
    if (random() < 0.5) {
      await cluster.node(target).kill();
      down.set(target, run.fault('kill', [target], leader));
    } else {
      cluster.node(target).signal('SIGSTOP');
      paused.set(target, run.fault('pause', [target], leader));
    }
  }
  for (const [id, f] of [...down, ...paused]) {
    if (down.has(id)) cluster.start(id);
    else cluster.node(id).signal('SIGCONT');
    f.healed = performance.now();
  }
}

/** Brings every node back: starts the dead, resumes the paused. */
function healAll(cluster: LocalCluster): void {
  for (const id of cluster.ids) {
    const node = cluster.node(id);
    if (!node.running) node.start();
    else if (node.paused) node.signal('SIGCONT');
  }
}

/** Kills (SIGKILL, all at once) or pauses every node, sometimes mid-burst; restarts them in a random order. */
async function roundKillAll(
  run: ChaosRun,
  random: () => number,
  tag: string,
  opts: { final?: boolean } = {},
): Promise<FaultRecord> {
  const { cluster, ids } = run;
  const pauseAll = opts.final !== true && random() < 0.2;
  const withBurst = opts.final === true || random() < 0.6;
  const leader = await currentLeader(cluster);
  let burstDone = Promise.resolve();
  if (withBurst) {
    burstDone = burst(run, random, 16 + Math.floor(random() * 64), tag);
    // Let the burst reach the nodes: some writes are being persisted, some replicated, some answered.
    await sleep(Math.floor(random() * 40));
  }
  const downMs = random() < 0.3 ? 0 : 200 + Math.floor(random() * 2500);
  const order = shuffle(random, ids);
  const staggerMs = random() < 0.5 ? 0 : 100 + Math.floor(random() * 1200);
  const detail = `${withBurst ? 'mid-burst, ' : ''}down ${downMs} ms, back in order ${order.join(',')}${staggerMs > 0 ? ` every ${staggerMs} ms` : ''}`;
  let f: FaultRecord;
  if (pauseAll) {
    for (const id of ids) cluster.node(id).signal('SIGSTOP');
    f = run.fault('pause-all', [...ids], leader, detail);
  } else {
    await Promise.all(ids.map((id) => cluster.node(id).kill()));
    f = run.fault(opts.final === true ? 'final-kill-all' : 'kill-all', [...ids], leader, detail);
  }
  await sleep(downMs);
  const majority = Math.floor(ids.length / 2) + 1;
  for (const [i, id] of order.entries()) {
    if (pauseAll) cluster.node(id).signal('SIGCONT');
    else cluster.start(id);
    if (i === majority - 1) f.healed = performance.now();
    if (staggerMs > 0 && i < order.length - 1) await sleep(staggerMs);
  }
  await burstDone;
  return f;
}

/** SIGSTOP the leader for 1-5 s (well past the election timeout), then SIGCONT. */
async function roundPauseLeader(run: ChaosRun, random: () => number): Promise<FaultRecord> {
  const { cluster } = run;
  const leader = await currentLeader(cluster);
  const target = leader ?? pick(random, cluster.running());
  const holdMs = 1000 + Math.floor(random() * 4000);
  cluster.node(target).signal('SIGSTOP');
  const f = run.fault('pause-leader', [target], leader, `${holdMs} ms`);
  await sleep(holdMs);
  cluster.node(target).signal('SIGCONT');
  f.healed = performance.now();
  return f;
}

/** Kill or pause a majority (half of the time sparing the leader), hold 1.5-5.5 s, heal one by one. */
async function roundMajority(run: ChaosRun, random: () => number): Promise<FaultRecord> {
  const { cluster, ids } = run;
  const leader = await currentLeader(cluster);
  const count = Math.floor(ids.length / 2) + 1;
  const spareLeader = leader !== undefined && random() < 0.5;
  const targets = shuffle(random, spareLeader ? ids.filter((id) => id !== leader) : ids)
    .slice(0, count)
    .sort();
  const how = random() < 0.5 ? 'kill' : 'pause';
  const holdMs = 1500 + Math.floor(random() * 4000);
  if (how === 'kill') await Promise.all(targets.map((id) => cluster.node(id).kill()));
  else for (const id of targets) cluster.node(id).signal('SIGSTOP');
  const f = run.fault(
    'majority',
    targets,
    leader,
    `${how} ${holdMs} ms${spareLeader ? ', leader spared' : ''}`,
  );
  // A stopped process may finish the instruction it was on: a little grace for SIGSTOP.
  const from = performance.now() + (how === 'pause' ? 100 : 0);
  await sleep(holdMs);
  for (const [i, id] of shuffle(random, targets).entries()) {
    if (i === 0) {
      run.dark.push({ from, to: performance.now(), detail: `${how} of ${targets.join(',')}` });
      f.healed = performance.now();
    }
    if (how === 'kill') cluster.start(id);
    else cluster.node(id).signal('SIGCONT');
    await sleep(Math.floor(random() * 500));
  }
  return f;
}

/** kill -9 and restart the same node 3-8 times in a row, sometimes before it has started. */
async function roundFlap(run: ChaosRun, random: () => number): Promise<FaultRecord> {
  const { cluster, ids } = run;
  const leader = await currentLeader(cluster);
  const target = leader !== undefined && random() < 0.5 ? leader : pick(random, ids);
  const loops = 3 + Math.floor(random() * 6);
  const f = run.fault('flap', [target], leader, `${loops} times`);
  for (let i = 0; i < loops; i++) {
    await cluster.node(target).kill();
    await sleep(random() < 0.4 ? 0 : Math.floor(random() * 400));
    cluster.start(target);
    await sleep(random() < 0.3 ? Math.floor(random() * 250) : 300 + Math.floor(random() * 1200));
  }
  f.healed = performance.now();
  return f;
}

/** Kill or pause up to a minority (the leader half of the time), hold 0.5-3 s, heal. */
async function roundMinority(run: ChaosRun, random: () => number): Promise<FaultRecord> {
  const { cluster, ids } = run;
  const leader = await currentLeader(cluster);
  const count = 1 + Math.floor(random() * Math.floor((ids.length - 1) / 2));
  let targets = shuffle(random, ids).slice(0, count);
  if (leader !== undefined && random() < 0.5 && !targets.includes(leader))
    targets = [leader, ...targets.slice(1)];
  targets.sort();
  const how = targets.map(() => (random() < 0.5 ? 'kill' : 'pause'));
  const holdMs = 500 + Math.floor(random() * 2500);
  await Promise.all(
    targets.map(async (id, i) =>
      how[i] === 'kill' ? cluster.node(id).kill() : cluster.node(id).signal('SIGSTOP'),
    ),
  );
  const f = run.fault(
    'minority',
    targets,
    leader,
    `${targets.map((id, i) => `${how[i]} ${id}`).join(', ')}, ${holdMs} ms`,
  );
  await sleep(holdMs);
  targets.forEach((id, i) => (how[i] === 'kill' ? cluster.start(id) : cluster.node(id).signal('SIGCONT')));
  f.healed = performance.now();
  return f;
}

/**
 * Makes a lagging node: kill -9 or SIGSTOP a follower, let the majority commit a burst of
 * writes it misses, bring it back and kill -9 the leader at once (so that it never hears
 * from it), restart the leader 0.5-2.5 s later. The lagging node then runs in the election
 * with a log behind the committed one: only the up-to-date check keeps it from winning.
 */
async function roundLagging(run: ChaosRun, random: () => number, tag: string): Promise<FaultRecord> {
  const { cluster, ids } = run;
  const leader = await currentLeader(cluster);
  const followers = ids.filter((id) => id !== leader && cluster.node(id).running && !cluster.node(id).paused);
  if (leader === undefined || followers.length === 0) return roundMinority(run, random);
  const lagging = pick(random, followers);
  const how = random() < 0.5 ? 'kill' : 'pause';
  if (how === 'kill') await cluster.node(lagging).kill();
  else cluster.node(lagging).signal('SIGSTOP');
  const writes = 8 + Math.floor(random() * 40);
  const f = run.fault(
    'lagging',
    [lagging, leader],
    leader,
    `${how} ${lagging}, ${writes} writes, then kill -9 of ${leader}`,
  );
  await burst(run, random, writes, tag);
  if (how === 'kill') cluster.start(lagging);
  else cluster.node(lagging).signal('SIGCONT');
  await sleep(Math.floor(random() * 20));
  await cluster.node(leader).kill();
  await sleep(500 + Math.floor(random() * 2000));
  cluster.start(leader);
  f.healed = performance.now();
  return f;
}

/** Rounds of faults drawn from `kinds`: fault, heal, wait until a write succeeds again (or call it stuck), pause, repeat. */
async function nemesisRounds(run: ChaosRun, kinds: readonly RoundKind[], end: number): Promise<void> {
  const random = mulberry32(run.cfg.seed);
  for (let round = 0; ; round++) {
    await sleep(300 + Math.floor(random() * 1200));
    if (performance.now() > end - 2000) return;
    const kind = pick(random, kinds);
    let f: FaultRecord;
    switch (kind) {
      case 'kill-all':
        f = await roundKillAll(run, random, `r${round}`);
        break;
      case 'pause-leader':
        f = await roundPauseLeader(run, random);
        break;
      case 'majority':
        f = await roundMajority(run, random);
        break;
      case 'flap':
        f = await roundFlap(run, random);
        break;
      case 'minority':
        f = await roundMinority(run, random);
        break;
      case 'lagging':
        f = await roundLagging(run, random, `r${round}`);
        break;
    }
    if (!(await run.wroteSince(f.healed ?? f.start, STUCK_MS))) {
      run.problem(
        `stuck: no write succeeded within ${STUCK_MS / 1000} s of healing ${f.kind} (${f.nodes.join(',')}; ${f.detail})`,
      );
      return;
    }
  }
}

// ---- hostile bytes -----------------------------------------------------------------------

interface Target {
  id: string;
  httpPort: number;
  peerPort: number;
}

/** What an attack saw (an HTTP status, a close code, how the connection ended), and a problem when that is wrong. */
interface AttackResult {
  outcome: string;
  problem?: string;
}

interface Attack {
  name: string;
  weight: number;
  run(run: ChaosRun, t: Target, random: () => number): Promise<AttackResult>;
}

function randomBuffer(random: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(random() * 256);
  return b;
}

/** Judges a raw exchange: the server may answer one of `allowed` statuses (undefined: none) or close; never a 500, never a 2xx. */
function judge(r: RawResult, allowed: readonly (number | undefined)[], what: string): AttackResult {
  const outcome = r.status !== undefined ? String(r.status) : r.ending;
  if (r.ending === 'refused') return { outcome };
  // 503: the node is starting (its API not up yet) or no leader is known; never a bug.
  if (r.status === 503 || allowed.includes(r.status)) return { outcome };
  return {
    outcome,
    problem: `${what}: answered ${r.status ?? r.ending}${r.status === undefined ? '' : ` ${r.data.toString('utf8', 0, 300).replace(/\r\n/g, ' | ')}`}`,
  };
}

const request = (
  method: string,
  path: string,
  headers: Record<string, string | number> = {},
  body = '',
): string =>
  `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n${body}`;

/** The content type the client API wants for a body. */
const JSON_BODY = { 'content-type': 'application/json' } as const;

/**
 * Signature headers of the right form from a member, fresh, for another body: they pass the
 * checks the forward route makes before reading a body, so that what the body does is tested.
 */
function headersBeforeBody(run: { ids: string[] }, to: string): Record<string, string> {
  return signForward(
    forwardKey(SECRET),
    run.ids.find((id) => id !== to) ?? run.ids[0]!,
    to,
    Buffer.from('-'),
  );
}

const BAD_JSON_BODIES = [
  '{',
  '{"value":',
  '[]',
  '"v"',
  'null',
  '42',
  '{"valu":1}',
  '\u00ff\u00fe',
  'NaN',
  '{"value":1}{"value":2}',
  '['.repeat(200_000),
  `{"value":${'['.repeat(150)}${']'.repeat(150)}}`,
];
const BAD_ROUTES = [
  'GET /kv/%ZZ',
  'GET /kv/',
  'GET /kv/%ED%A0%80',
  `GET /kv/${'x'.repeat(2000)}`,
  'PATCH /kv/hostile',
  'POST /kv/hostile',
  'GET /kv/hostile/cas',
  'GET /kv/a/b/c',
  'GET /../../etc/passwd',
  'GET http://evil.example/kv/hostile',
  'OPTIONS *',
  'DELETE /status',
  'GET /cluster/members/x',
  'DELETE /cluster/members/%00',
  'DELETE /cluster/members/-bad',
  'PUT /cluster',
  'TRACE /kv/hostile',
];

/** Opens a WebSocket to a peer port and reads the transport's `hello`; undefined when refused or closed (the node may be down). */
async function helloFrom(
  t: Target,
): Promise<{ ws: RawWsClient; nonce: Buffer; name: string } | AttackResult> {
  const ws = await RawWsClient.open(t.peerPort);
  if (!(ws instanceof RawWsClient)) return { outcome: `upgrade ${ws.status}` };
  const frame = await ws.next(2000);
  if (frame === null || frame.opcode !== 0x2) {
    ws.destroy();
    return { outcome: frame === null ? 'no hello' : `opcode ${frame.opcode}` };
  }
  const hello = unmsgpack(frame.payload) as { t?: unknown; nonce?: unknown; name?: unknown };
  if (hello.t !== 'hello' || !Buffer.isBuffer(hello.nonce) || typeof hello.name !== 'string') {
    ws.destroy();
    return { outcome: 'not a hello', problem: `${t.id}: the first frame is not a hello` };
  }
  return { ws, nonce: hello.nonce, name: hello.name };
}

/** Waits for the server to close a connection it must refuse; a close code that is not `expected` is a problem. */
async function expectClosed(
  ws: RawWsClient,
  expected: readonly number[],
  what: string,
  ms = 8000,
): Promise<AttackResult> {
  const closed = await ws.closed(ms);
  ws.destroy();
  const outcome = `close ${ws.closeCode ?? (closed ? 'tcp' : 'open')}`;
  if (!closed) return { outcome, problem: `${what}: the connection stayed open ${ms} ms` };
  if (ws.closeCode !== undefined && expected.length > 0 && !expected.includes(ws.closeCode))
    return { outcome, problem: `${what}: closed with ${ws.closeCode}, expected ${expected.join(' or ')}` };
  return { outcome };
}

const ATTACKS: Attack[] = [
  {
    name: 'random bytes',
    weight: 3,
    run: async (_run, t, random) => {
      const port = random() < 0.5 ? t.httpPort : t.peerPort;
      return judge(
        await rawExchange(port, [randomBuffer(random, 1 + Math.floor(random() * 4096))], {
          timeoutMs: 2000,
          halfClose: random() < 0.5,
        }),
        [400, undefined],
        'random bytes',
      );
    },
  },
  {
    name: 'another protocol',
    weight: 1,
    run: async (_run, t, random) => {
      const hello = pick(random, [
        Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
        Buffer.concat([
          Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]),
          randomBuffer(random, 200),
        ]),
        Buffer.from('SSH-2.0-OpenSSH_9.6\r\n'),
        Buffer.from('\r\n\r\n\r\n\r\n'),
        Buffer.alloc(64),
      ]);
      return judge(
        await rawExchange(random() < 0.5 ? t.httpPort : t.peerPort, [hello], { timeoutMs: 2000 }),
        [400, 505, undefined],
        'another protocol',
      );
    },
  },
  {
    name: 'truncated request',
    weight: 2,
    run: async (_run, t, random) => {
      const whole = request(
        'PUT',
        '/kv/hostile-t',
        { 'content-type': 'application/json', 'content-length': 20 },
        '{"value":"truncated"}',
      );
      const head = whole.indexOf('\r\n\r\n');
      // Cut inside the head, or inside the body.
      const cut =
        random() < 0.5 ? 1 + Math.floor(random() * (head - 1)) : head + 4 + Math.floor(random() * 19);
      const r = await rawExchange(random() < 0.7 ? t.httpPort : t.peerPort, [whole.slice(0, cut)], {
        timeoutMs: 2500,
        halfClose: random() < 0.5,
      });
      return judge(r, [400, 404, 408, undefined], 'a truncated request');
    },
  },
  {
    name: 'huge headers',
    weight: 1,
    run: async (_run, t, random) => {
      const headers: Record<string, string> =
        random() < 0.5
          ? { 'x-big': 'a'.repeat(64 * 1024 + Math.floor(random() * 512 * 1024)) }
          : Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`x-h${i}`, 'v']));
      const r = await rawExchange(
        random() < 0.5 ? t.httpPort : t.peerPort,
        [request('GET', '/kv/hostile-h', headers)],
        { timeoutMs: 3000 },
      );
      return judge(r, [431, 400, undefined], 'huge headers');
    },
  },
  {
    name: 'huge body',
    weight: 1,
    run: async (_run, t, random) => {
      const onPeer = random() < 0.3;
      const path = onPeer ? '/_raft/forward' : '/kv/hostile-big';
      const method = onPeer ? 'POST' : 'PUT';
      const chunk = Buffer.alloc(256 * 1024, 0x61);
      // Headers that pass the checks made before the body is read (a JSON body; on the peer
      // port, signature headers of the right form), so that the size limit is what refuses it.
      const pass = onPeer ? headersBeforeBody(_run, t.id) : JSON_BODY;
      if (random() < 0.5) {
        const declared = 5 * 1024 * 1024 + Math.floor(random() * 50 * 1024 * 1024);
        const r = await rawExchange(
          onPeer ? t.peerPort : t.httpPort,
          [request(method, path, { ...pass, 'content-length': declared }), chunk],
          { timeoutMs: 3000 },
        );
        return judge(r, [413, undefined], 'a huge declared body');
      }
      // Chunked: no length up front, the limit is found while reading.
      const chunks: (string | Buffer)[] = [
        request(method, path, { ...pass, 'transfer-encoding': 'chunked' }),
      ];
      for (let i = 0; i < (onPeer ? 18 : 6); i++)
        chunks.push(`${chunk.length.toString(16)}\r\n`, chunk, '\r\n');
      chunks.push('0\r\n\r\n');
      return judge(
        await rawExchange(onPeer ? t.peerPort : t.httpPort, chunks, { timeoutMs: 4000 }),
        [413, undefined],
        'a huge chunked body',
      );
    },
  },
  {
    name: 'slowloris',
    weight: 1,
    run: async (_run, t, random) => {
      // Ten connections each dribbling a header line every 400 ms, never finishing: they must not starve anyone.
      const port = random() < 0.5 ? t.httpPort : t.peerPort;
      const lines = [
        'GET /status HTTP/1.1\r\n',
        'Host: 127.0.0.1\r\n',
        ...Array.from({ length: 10 }, (_, i) => `X-Slow-${i}: ${'z'.repeat(i)}\r\n`),
      ];
      const results = await Promise.all(
        Array.from({ length: 10 }, () => rawExchange(port, lines, { gapMs: 400, timeoutMs: 5000 })),
      );
      const judged = results.map((r) => judge(r, [undefined, 408], 'slowloris'));
      return {
        outcome: [...new Set(judged.map((j) => j.outcome))].sort().join('+'),
        ...judged.find((a) => a.problem !== undefined),
      };
    },
  },
  {
    name: 'slow body',
    weight: 1,
    run: async (run, t, random) => {
      const onPeer = random() < 0.3;
      const body = '{"value":"slow"}'.padEnd(40, ' ');
      const r = await rawExchange(
        onPeer ? t.peerPort : t.httpPort,
        [
          request(onPeer ? 'POST' : 'PUT', onPeer ? '/_raft/forward' : '/kv/hostile-slow', {
            ...(onPeer ? headersBeforeBody(run, t.id) : JSON_BODY),
            'content-length': body.length,
          }),
          ...body.split(''),
        ],
        { gapMs: 400, timeoutMs: 6000 },
      );
      // The request timeout (1.5 s) passes long before the body arrives: 408.
      return judge(r, [408, undefined], 'a slow body');
    },
  },
  {
    name: 'bad JSON',
    weight: 3,
    run: async (_run, t, random) => {
      const cas = random() < 0.3;
      const body = cas
        ? pick(random, [...BAD_JSON_BODIES, '{"value":1}', '{"expected":1}'])
        : pick(random, BAD_JSON_BODIES);
      const bytes = Buffer.from(body, body.startsWith('\u00ff') ? 'latin1' : 'utf8');
      const r = await rawExchange(
        t.httpPort,
        [
          request(cas ? 'POST' : 'PUT', cas ? '/kv/hostile-j/cas' : '/kv/hostile-j', {
            'content-type': 'application/json',
            'content-length': bytes.length,
            connection: 'close',
          }),
          bytes,
        ],
        { timeoutMs: 4000 },
      );
      // Nested too deep is refused by the state machine, after the log: 504 when its commit is slow.
      return judge(
        r,
        body.startsWith('{"value":[') ? [400, 504] : [400],
        `bad JSON ${JSON.stringify(body.slice(0, 40))}`,
      );
    },
  },
  {
    name: 'bad route',
    weight: 2,
    run: async (_run, t, random) => {
      const line = pick(random, BAD_ROUTES);
      const [method, path] = line.split(' ') as [string, string];
      const r = await rawExchange(t.httpPort, [request(method, path, { connection: 'close' })], {
        timeoutMs: 3000,
      });
      return judge(r, [400, 404, 405], `${line.slice(0, 60)}`);
    },
  },
  {
    name: 'request smuggling',
    weight: 1,
    run: async (_run, t, random) => {
      const attempts = [
        request(
          'POST',
          '/kv/hostile-s/cas',
          { 'content-length': 5, 'transfer-encoding': 'chunked' },
          '0\r\n\r\nGET /status HTTP/1.1\r\nHost: x\r\n\r\n',
        ),
        request('PUT', '/kv/hostile-s', { 'content-length': 3, 'content-length ': 30 }, '{}x'),
        `PUT /kv/hostile-s HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}`,
        request('PUT', '/kv/hostile-s', { 'transfer-encoding': 'chunked, identity' }, '2\r\n{}\r\n0\r\n\r\n'),
        `GET /status HTTP/1.1\r\nHost: x\r\n Folded: header\r\n\r\n`,
        `GET /status HTTP/1.1\nHost: x\n\n`,
      ];
      const r = await rawExchange(random() < 0.7 ? t.httpPort : t.peerPort, [pick(random, attempts)], {
        timeoutMs: 3000,
      });
      // Bare LF line ends are accepted by Node's parser (200 for /status); everything else is
      // 400, or 421 for the client port's Host allow-list (`Host: x`).
      return judge(r, [400, 200, 404, 421, undefined], 'request smuggling');
    },
  },
  {
    name: 'pipelined flood',
    weight: 1,
    run: async (_run, t) => {
      // (Not half-closed: Node's HTTP server drops the requests still running when the client half-closes.)
      const r = await rawExchange(t.httpPort, [request('GET', '/kv/hostile-p').repeat(200)], {
        timeoutMs: 4000,
      });
      const answers = r.data.toString('latin1').match(/^HTTP\/1\.1 \d{3}/gm) ?? [];
      const bad = answers.find((a) => !/ (404|503|504)$/.test(a));
      return {
        outcome: `${r.status ?? r.ending}`,
        ...(bad === undefined ? {} : { problem: `pipelined reads: ${bad}` }),
      };
    },
  },
  {
    name: 'websocket on the client port',
    weight: 1,
    run: async (_run, t) =>
      judge(
        await rawExchange(t.httpPort, [wsUpgradeRequest(t.httpPort)], { timeoutMs: 3000 }),
        [undefined, 400, 404, 426],
        'an upgrade on the client port',
      ),
  },
  {
    name: 'forged forward',
    weight: 2,
    run: async (run, t, random) => {
      const body = Buffer.from(
        JSON.stringify({ op: { kind: 'put', key: 'hostile-f', value: 'forged' }, hops: 1, timeoutMs: 1000 }),
      );
      const signed = signForward(forwardKey(SECRET), run.ids[0]!, t.id, body);
      const variants: [string, Record<string, string | number>][] = [
        ['unsigned', {}],
        ['a signature by another key', signForward(forwardKey('not-the-secret'), run.ids[0]!, t.id, body)],
        ['a stranger', signForward(forwardKey(SECRET), 'mallory', t.id, body)],
        ['a stale timestamp', signForward(forwardKey(SECRET), run.ids[0]!, t.id, body, Date.now() - 120_000)],
        [
          'a signature for another node',
          signForward(
            forwardKey(SECRET),
            run.ids[0]!,
            run.ids.find((id) => id !== t.id)!,
            body,
          ),
        ],
        ['a signature of another body', { ...signed, 'x-raft-signature': '0'.repeat(64) }],
        ['a signature that is not hex', { ...signed, 'x-raft-signature': 'zz' }],
      ];
      const [what, headers] = pick(random, variants);
      const r = await rawExchange(
        t.peerPort,
        [
          request('POST', '/_raft/forward', {
            ...headers,
            'content-length': body.length,
            connection: 'close',
          }),
          body,
        ],
        { timeoutMs: 3000 },
      );
      return judge(r, [401], `a forwarded write with ${what}`);
    },
  },
  {
    name: 'replayed forward',
    weight: 1,
    run: async (run, target) => {
      // An insider's read (no effect), signed once and sent twice to the leader (a follower would answer 503: no second hop): the second is a replay.
      const leader = await currentLeader(run.cluster);
      const t = leader === undefined ? target : targetOf(run, leader);
      const body = Buffer.from(
        JSON.stringify({ op: { kind: 'get', key: 'hostile-r' }, hops: 1, timeoutMs: 1000 }),
      );
      const head = request('POST', '/_raft/forward', {
        ...signForward(forwardKey(SECRET), run.ids[0]!, t.id, body),
        'content-length': body.length,
        connection: 'close',
      });
      const node = run.cluster.node(t.id);
      const lives = node.exits.length;
      const first = await rawExchange(t.peerPort, [head, body], { timeoutMs: 3000 });
      const second = await rawExchange(t.peerPort, [head, body], { timeoutMs: 3000 });
      if (
        first.status === undefined ||
        second.status === undefined ||
        node.exits.length !== lives ||
        !node.running
      )
        return { outcome: 'node down' };
      // A 503 can come before the check, while the node starts (then the first was not seen); otherwise the replay must be refused.
      if (first.status === 503 || second.status === 503) return { outcome: '503' };
      return judge(second, [401], 'a replayed forward');
    },
  },
  {
    name: 'bad upgrade',
    weight: 1,
    run: async (_run, t, random) => {
      const variants = [
        `GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        `GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        `GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n`,
        `POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        `GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n`,
        wsUpgradeRequest(
          t.peerPort,
          '/',
          'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n',
        ),
      ];
      const v = pick(random, variants);
      const r = await rawExchange(t.peerPort, [v], { timeoutMs: 7000 });
      // An upgrade that is valid (the last) gets 101 and then, without a handshake, 4004 and a close.
      return judge(r, [400, 404, 405, 426, 101, undefined], 'a bad upgrade');
    },
  },
  {
    name: 'bad websocket frames',
    weight: 3,
    run: async (_run, t, random) => {
      const h = await helloFrom(t);
      if (!('ws' in h)) return h;
      const frames: [string, Buffer][] = [
        ['random bytes', randomBuffer(random, 1 + Math.floor(random() * 2000))],
        ['RSV1 without an extension', wsFrame(0x2, Buffer.from('x'), { rsv: 4 })],
        ['opcode 3', wsFrame(0x3, Buffer.from('x'))],
        ['an unmasked frame', wsFrame(0x2, Buffer.from('x'), { mask: false })],
        ['a 200-byte ping', wsFrame(0x9, Buffer.alloc(200))],
        ['a fragmented ping', wsFrame(0x9, Buffer.from('x'), { fin: false })],
        ['a continuation first', wsFrame(0x0, Buffer.from('x'))],
        ['close code 999', wsFrame(0x8, Buffer.from([0x03, 0xe7]))],
        ['a text frame of bad UTF-8', wsFrame(0x1, Buffer.from([0xc3, 0x28]))],
        ['a length of 2^63-1', wsFrame(0x2, Buffer.alloc(0), { announcedLength: 2n ** 63n - 1n })],
        ['a length of 2^40', wsFrame(0x2, Buffer.alloc(16), { announcedLength: 2n ** 40n })],
        ['20 KiB before authenticating', wsFrame(0x2, randomBuffer(random, 20 * 1024))],
      ];
      const [what, frame] = pick(random, frames);
      h.ws.send(frame);
      return expectClosed(h.ws, [], `${t.id}: ${what}`);
    },
  },
  {
    name: 'bad handshake',
    weight: 3,
    run: async (run, t, random) => {
      const h = await helloFrom(t);
      if (!('ws' in h)) return h;
      const lower = run.ids.filter((id) => id < t.id);
      const higher = run.ids.filter((id) => id > t.id);
      const nonce = randomBuffer(random, 32);
      const auth = (fields: Record<string, PackValue>): Buffer =>
        wsFrame(
          0x2,
          msgpack({ t: 'auth', v: 1, name: lower[0] ?? 'n0', nonce, mac: Buffer.alloc(32), ...fields }),
        );
      const variants: [string, Buffer | null, number[]][] = [
        ['a text frame', wsFrame(0x1, Buffer.from('hello')), [4000]],
        ['an array', wsFrame(0x2, msgpack([1, 2, 3])), [4000]],
        ['another version', auth({ v: 2 }), [4002]],
        // One close code for an unknown name and a wrong MAC: names cannot be enumerated.
        ['an unknown name', auth({ name: 'mallory' }), [4001]],
        ['a name that may not dial', auth({ name: higher[0] ?? t.id }), [4001]],
        ['a wrong MAC', auth({}), [lower.length > 0 ? 4001 : 4003]],
        ['a short MAC', auth({ mac: Buffer.alloc(5) }), [4000]],
        [
          'a MAC of another pair',
          auth({ mac: handshakeMac(SECRET, 'dialer', lower[0] ?? 'n0', 'n9', h.nonce, nonce) }),
          [lower.length > 0 ? 4001 : 4003],
        ],
        ['a reflected hello', wsFrame(0x2, msgpack({ t: 'hello', v: 1, name: t.id, nonce })), [4000]],
        ['a 300-character name', auth({ name: 'n'.repeat(300) }), [4000]],
        ['silence', null, [4004]],
      ];
      const [what, frame, codes] = pick(random, variants);
      if (frame !== null) h.ws.send(frame);
      return expectClosed(h.ws, codes, `${t.id}: a handshake with ${what}`);
    },
  },
  {
    name: 'insider garbage',
    weight: 0.3,
    run: async (run, t, random) => {
      // Someone with the secret dials as a real member, then sends frames that are not Raft messages.
      const lower = run.ids.filter((id) => id < t.id);
      if (lower.length === 0) return { outcome: 'no lower peer' };
      const h = await helloFrom(t);
      if (!('ws' in h)) return h;
      const as = pick(random, lower);
      const nonce = randomBuffer(random, 32);
      h.ws.send(
        wsFrame(
          0x2,
          msgpack({
            t: 'auth',
            v: 1,
            name: as,
            nonce,
            mac: handshakeMac(SECRET, 'dialer', as, t.id, h.nonce, nonce),
          }),
        ),
      );
      const welcome = await h.ws.next(2000);
      if (welcome === null || welcome.opcode !== 0x2) {
        h.ws.destroy();
        return { outcome: 'no welcome', problem: `${t.id}: no welcome for a correct handshake as ${as}` };
      }
      const garbage = [
        () => wsFrame(0x2, randomBuffer(random, 1 + Math.floor(random() * 500))),
        () => wsFrame(0x2, msgpack({ type: 'AppendEntries', term: 'one', from: as, to: t.id })),
        () => wsFrame(0x2, msgpack({ type: 'Evil', term: 1, from: as, to: t.id })),
        () =>
          wsFrame(
            0x2,
            msgpack({
              type: 'RequestVote',
              term: -1,
              from: as,
              to: t.id,
              lastLogIndex: 0,
              lastLogTerm: 0,
              preVote: true,
            }),
          ),
        () =>
          wsFrame(
            0x2,
            msgpack({
              type: 'AppendEntriesResponse',
              term: 1,
              from: 'mallory',
              to: t.id,
              success: true,
              matchIndex: 99,
              prevLogIndex: 0,
              conflictIndex: 0,
              conflictTerm: 0,
              seq: 0,
            }),
          ),
        () =>
          wsFrame(
            0x2,
            msgpack({
              type: 'RequestVote',
              term: 1,
              from: as,
              to: 'elsewhere',
              lastLogIndex: 0,
              lastLogTerm: 0,
              preVote: true,
            }),
          ),
        () => wsFrame(0x1, Buffer.from('{"type":"AppendEntries"}')),
        () => wsFrame(0x2, msgpack(null)),
      ];
      const n = 1 + Math.floor(random() * 8);
      for (let i = 0; i < n; i++) h.ws.send(pick(random, garbage)());
      await sleep(200);
      h.ws.send(wsFrame(0x8, Buffer.from([0x03, 0xe8])));
      await h.ws.closed(2000);
      h.ws.destroy();
      return { outcome: `welcomed, ${n} bad frames` };
    },
  },
];

function targetOf(run: ChaosRun, id: string): Target {
  return {
    id,
    httpPort: Number(new URL(run.cluster.url(id)).port),
    peerPort: Number(new URL(run.cluster.peerUrl.get(id)!).port),
  };
}

/** One loop of hostile clients: attacks drawn by weight, against random nodes, until told to stop. */
async function hostileLoop(run: ChaosRun, loop: number): Promise<void> {
  const random = mulberry32(run.cfg.seed * 7919 + loop);
  const total = ATTACKS.reduce((s, a) => s + a.weight, 0);
  while (!run.stopHostile) {
    let roll = random() * total;
    const attack = ATTACKS.find((a) => (roll -= a.weight) < 0) ?? ATTACKS[0]!;
    const t = targetOf(run, pick(random, run.ids));
    const node = run.cluster.node(t.id);
    const changes = node.changes;
    const wasUp = node.up;
    let result: AttackResult;
    try {
      result = await attack.run(run, t, random);
    } catch (err) {
      result = {
        outcome: 'threw',
        problem: `${attack.name} against ${t.id} threw in the test: ${err instanceof Error ? err.message : String(err)}`,
      };
    }
    // A node the nemesis killed, paused or restarted meanwhile answers what it can: that is not the attack's doing.
    if (!(wasUp && node.changes === changes)) result = { outcome: `${result.outcome} (node faulted)` };
    const stats = run.hostileStats.get(attack.name) ?? {};
    stats[result.outcome] = (stats[result.outcome] ?? 0) + 1;
    run.hostileStats.set(attack.name, stats);
    if (result.problem !== undefined) run.problem(`hostile: ${result.problem}`);
    await sleep(Math.floor(random() * 100));
  }
}

// ---- the whole run -----------------------------------------------------------------------

/** Transfers leadership to `id` (through `id` itself: it forwards to the leader); true once `id` leads. */
async function makeLeader(run: ChaosRun, id: string): Promise<boolean> {
  try {
    await until(
      `${id} to lead`,
      20_000,
      async () => {
        const s = await run.cluster.status(id).catch(() => undefined);
        if (s?.role === 'leader') return true;
        await http(`${run.cluster.url(id)}/cluster/leader`, {
          method: 'POST',
          body: JSON.stringify({ id }),
          timeoutMs: 5000,
        }).catch(() => undefined);
        return undefined;
      },
      200,
    );
    return true;
  } catch {
    return false;
  }
}

/** The median, 90th percentile and maximum of some milliseconds. */
function spread(ms: number[]): { n: number; median: number; p90: number; max: number } | { n: 0 } {
  if (ms.length === 0) return { n: 0 };
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number): number => Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))]!);
  return { n: s.length, median: at(0.5), p90: at(0.9), max: Math.round(s[s.length - 1]!) };
}

/** Counts the warnings and errors of every node's log file, by message. */
function logSummary(dir: string, ids: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const id of ids) {
    let text: string;
    try {
      text = readFileSync(join(dir, `${id}.out.log`), 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const { level, msg, reason } = JSON.parse(line) as { level?: number; msg?: string; reason?: unknown };
        if (level === undefined || level < 40) continue;
        const what = `${level >= 50 ? 'ERROR' : 'warn'} ${msg ?? ''}${typeof reason === 'string' ? ` (${reason})` : ''}`;
        counts[what] = (counts[what] ?? 0) + 1;
      } catch {
        // A partial line at a kill: not a message.
      }
    }
  }
  return counts;
}

interface ChaosReport {
  ok: boolean;
  summary: string;
  /** Writes of the history whose outcome stayed unknown (every one was retried until the end). */
  unresolvedWrites: number;
  problems: string[];
  dir: string;
}

async function runChaos(cfg: ChaosConfig): Promise<ChaosReport> {
  const dir = await mkdtemp(join(tmpdir(), 'raft-kv-chaos-'));
  const ids = Array.from({ length: cfg.nodes }, (_, i) => `n${i + 1}`);
  const cluster = await LocalCluster.create({
    ids,
    dir,
    secret: SECRET,
    requestTimeoutMs: cfg.requestTimeoutMs,
    logLevel: 'warn',
    logToFiles: true,
    extraArgs: cfg.nodeArgs,
  });
  clusters.push(cluster);
  cluster.start();
  await cluster.waitForLeader(ids);
  const run = new ChaosRun(cfg, cluster);
  const chaosEnd = performance.now() + cfg.chaosMs;

  const clientsDone = Promise.all(Array.from({ length: cfg.clients }, (_, c) => client(run, c)));
  const hostileDone = Promise.all(Array.from({ length: cfg.hostile }, (_, i) => hostileLoop(run, i)));
  await (cfg.mode === 'mix' ? nemesisMix(run, chaosEnd) : nemesisRounds(run, cfg.mode, chaosEnd));
  while (performance.now() < chaosEnd) await sleep(100);

  // Heal; then, once it serves again, kill -9 every node in the middle of a burst of writes.
  healAll(cluster);
  const healed = performance.now();
  let stuck = !(await run.wroteSince(healed, STUCK_MS));
  if (stuck) run.problem(`stuck: no write succeeded within ${STUCK_MS / 1000} s of healing everything`);
  if (cfg.finalKillAll && !stuck) {
    await sleep(500);
    const f = await roundKillAll(run, mulberry32(cfg.seed ^ 0x5eed), 'final', { final: true });
    stuck = !(await run.wroteSince(f.healed!, STUCK_MS));
    if (stuck)
      run.problem(
        `stuck: no write succeeded within ${STUCK_MS / 1000} s of restarting every node (${f.detail})`,
      );
    else await sleep(1000);
  }
  run.stopClients = true;
  run.stopHostile = true;
  // Writes still waiting for a definite answer get as long as a healed cluster has to serve one.
  run.retryUntil = performance.now() + STUCK_MS;
  await Promise.all([clientsDone, hostileDone]);
  const chaosSeconds = (performance.now() - run.t0) / 1000;

  // Every node leads in turn and serves every key from its own state: their states must agree with the history.
  let rotated = 0;
  if (!stuck) {
    for (const id of ids) {
      if (!(await makeLeader(run, id))) {
        run.problem(`${id} could not be made leader within 20 s`);
        continue;
      }
      for (const key of run.keys) {
        try {
          await until(`a final read of ${key} via ${id}`, 15_000, async () => {
            const o = await run.op('final', id, { op: 'get', key });
            return o.kind === 'ok' ? o : undefined;
          });
        } catch (err) {
          run.problem(err instanceof Error ? err.message : String(err));
        }
      }
      if ((await run.cluster.status(id).catch(() => undefined))?.role === 'leader') rotated++;
    }
  }

  const history = run.recorder.operations();
  const started = performance.now();
  const result = checkOperations(kvModel, history, {
    timeoutMs: Number(process.env['CHAOS_CHECK_MS'] ?? 300_000),
  });
  const checkMs = Math.round(performance.now() - started);
  if (result.ok === false) run.problem(`not linearizable:\n${result.counterexample.description}`);
  if (result.ok === 'unknown')
    run.problem('the linearizability checker ran out of time (fewer clients per key: CHAOS_KEYS)');
  // Every write whose answer was lost was sent again with its Idempotency-Key until it got one.
  const unresolvedWrites = history.filter((op) => op.input.op !== 'get' && op.output === UNKNOWN).length;
  if (unresolvedWrites > 0)
    run.problem(
      `${unresolvedWrites} writes still have an unknown outcome after ${STUCK_MS / 1000} s of retries with their Idempotency-Key`,
    );

  // While a majority was down, nothing called after it went down may have succeeded before it came back.
  for (const w of run.dark) {
    for (const op of history) {
      if (op.output !== UNKNOWN && op.call > w.from && op.return !== undefined && op.return < w.to) {
        run.problem(
          `answered while a majority was down (${w.detail}): ${JSON.stringify(op.input)} -> ${JSON.stringify(op.output)}`,
        );
      }
    }
  }
  for (const c of crashes(cluster))
    run.problem(`${c.id} exited by itself: code ${c.code}, signal ${c.signal}`);
  for (const node of cluster.nodes.values())
    for (const line of node.problems) run.problem(`${node.id} logged: ${line.slice(0, 500)}`);

  // Figures: throughput, and how long each healed fault left the cluster without a successful write.
  const firstWrite = (after: number): number | undefined => run.okWriteTimes.find((t) => t >= after);
  const byKind = new Map<string, { recovery: number[]; failover: number[] }>();
  for (const f of run.faults) {
    const k = byKind.get(f.kind) ?? { recovery: [], failover: [] };
    byKind.set(f.kind, k);
    const w = f.healed === undefined ? undefined : firstWrite(f.healed);
    if (f.healed !== undefined && w !== undefined) k.recovery.push(w - f.healed);
    const x = firstWrite(f.start);
    if (x !== undefined && f.leader) k.failover.push(x - f.start);
  }
  let longestGap = 0;
  for (let i = 1; i < run.okWriteTimes.length; i++)
    longestGap = Math.max(longestGap, run.okWriteTimes[i]! - run.okWriteTimes[i - 1]!);
  const seconds = Math.max(1, run.perSecond.length);
  const okPerSecond = run.perSecond.map((b) => b[0]);
  const rate = (i: 0 | 1 | 2): number => Math.round(run.perSecond.reduce((s, b) => s + b[i], 0) / seconds);
  const figures = {
    name: cfg.name,
    seed: cfg.seed,
    nodes: cfg.nodes,
    clients: cfg.clients,
    keys: cfg.keys,
    mode: cfg.mode === 'mix' ? 'mix' : cfg.mode.join(','),
    hostile: cfg.hostile,
    nodeArgs: cfg.nodeArgs.join(' '),
    values: cfg.values,
    seconds: Math.round(chaosSeconds),
    operations: history.length,
    ...run.counts,
    unresolvedWrites,
    perSecond: {
      ok: rate(0),
      failed: rate(1),
      unknown: rate(2),
      worstOk: Math.min(...okPerSecond),
      bestOk: Math.max(...okPerSecond),
      secondsWithoutOk: okPerSecond.filter((n) => n === 0).length,
    },
    longestWriteGapMs: Math.round(longestGap),
    faults: Object.fromEntries(
      [...byKind].map(([kind, k]) => [
        kind,
        {
          count: run.faults.filter((f) => f.kind === kind).length,
          recoveryMs: spread(k.recovery),
          leaderFailoverMs: spread(k.failover),
        },
      ]),
    ),
    recoveries: Object.fromEntries([...byKind].map(([kind, k]) => [kind, k.recovery.map(Math.round)])),
    failovers: Object.fromEntries([...byKind].map(([kind, k]) => [kind, k.failover.map(Math.round)])),
    rotatedLeaders: rotated,
    checkMs,
    linearizable: result.ok,
    hostileAttacks: Object.fromEntries(run.hostileStats),
    nodeLogs: logSummary(dir, ids),
    problems: run.problems,
    dir,
  };
  const summary =
    `chaos ${cfg.name} seed=${cfg.seed} nodes=${cfg.nodes} clients=${cfg.clients} keys=${cfg.keys} mode=${figures.mode} hostile=${cfg.hostile} values=${cfg.values}${figures.nodeArgs === '' ? '' : ` ${figures.nodeArgs}`}: ` +
    `${history.length} operations checked in ${checkMs} ms (${run.counts.ok} ok: ${run.counts.okWrites} writes, ${run.counts.okReads} reads; ` +
    `${run.counts.unknown} unknown, ${run.counts.fail} failed and dropped) over ${figures.seconds} s; ` +
    `${run.counts.retried} writes retried with their Idempotency-Key (${run.counts.retries} more attempts): ` +
    `${run.counts.resolved} resolved, ${run.counts.replayed} answered by a replay, ${unresolvedWrites} left unknown; ` +
    `per second ok/failed/unknown ${figures.perSecond.ok}/${figures.perSecond.failed}/${figures.perSecond.unknown}, worst second ${figures.perSecond.worstOk} ok; ` +
    `longest time without a successful write ${figures.longestWriteGapMs} ms\n` +
    `  faults: ${JSON.stringify(figures.faults)}\n` +
    (cfg.hostile > 0 ? `  hostile: ${JSON.stringify(figures.hostileAttacks)}\n` : '') +
    `  node warnings: ${JSON.stringify(figures.nodeLogs)}`;
  if (cfg.reportFile !== undefined) appendFileSync(cfg.reportFile, `${JSON.stringify(figures)}\n`);
  const ok = run.problems.length === 0;
  if (!ok)
    console.error(
      `chaos ${cfg.name} seed=${cfg.seed}: ${run.problems.length} problems (data and node logs kept in ${dir}):\n${run.problems.join('\n')}\n${cluster.logs()}`,
    );
  await cluster.destroy();
  if (ok && !cfg.keep) await rm(dir, { recursive: true, force: true });
  return { ok, summary, unresolvedWrites, problems: run.problems, dir };
}

const clusters: LocalCluster[] = [];

afterEach(async () => {
  // SIGCONT before SIGKILL: destroy() does both, for every child, even after a failure.
  await Promise.all(clusters.splice(0).map((c) => c.destroy()));
});

describe('raft-kv under chaos: kill -9 (one node or all), restart, SIGSTOP/SIGCONT', () => {
  const cfg = configFromEnv();
  it(
    `keeps every history linearizable, never crashes, and serves again after every fault (seed ${cfg.seed})`,
    { timeout: cfg.chaosMs + 180_000 },
    async () => {
      const report = await runChaos(cfg);
      console.log(report.summary);
      expect(report.problems).toEqual([]);
      expect(report.unresolvedWrites).toBe(0);
    },
  );
});

describe('raft-kv under hostile bytes: garbage at every port while it serves', () => {
  it(
    'refuses a captured forwarded write replayed to the next leader, or to the same node after a restart',
    { timeout: 60_000 },
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'raft-kv-replay-'));
      const ids = ['n1', 'n2', 'n3'];
      const cluster = await LocalCluster.create({ ids, dir, secret: SECRET, logLevel: 'warn' });
      clusters.push(cluster);
      try {
        cluster.start();
        const leader = await cluster.waitForLeader(ids);
        const [next, sender] = ids.filter((id) => id !== leader) as [string, string];
        const forward = `${cluster.peerUrl.get(leader)!}/_raft/forward`;
        // What a follower sends its leader for PUT /kv/acct {"value":"old"}: peer traffic is in clear, so anyone on the path can copy it.
        const body = Buffer.from(
          JSON.stringify({ op: { kind: 'put', key: 'acct', value: 'old' }, hops: 1, timeoutMs: 4000 }),
        );
        const headers = {
          'content-type': 'application/json',
          ...signForward(forwardKey(SECRET), sender, leader, body),
        };
        const replay = (to: string): Promise<number> =>
          http(`${cluster.peerUrl.get(to)!}/_raft/forward`, { method: 'POST', body, headers }).then(
            (r) => r.status,
          );
        expect((await http(forward, { method: 'POST', body, headers })).status).toBe(200);
        expect(await replay(leader)).toBe(401);
        expect(
          (
            await http(`${cluster.url(leader)}/kv/acct`, {
              method: 'PUT',
              body: JSON.stringify({ value: 'new' }),
            })
          ).status,
        ).toBe(200);

        // Another node leads: it has never seen the nonce, but the request was signed for the old leader.
        await until(`${next} to lead`, 20_000, async () => {
          const r = await http(`${cluster.url(next)}/cluster/leader`, {
            method: 'POST',
            body: JSON.stringify({ id: next }),
          });
          return r.status === 200 ? true : undefined;
        });
        expect(await replay(next)).toBe(401);

        // The old leader restarts (its memory of nonces is gone) and leads again: the request predates it.
        await cluster.node(leader).kill();
        cluster.start(leader);
        await until(`${leader} to lead again`, 30_000, async () => {
          const r = await http(`${cluster.url(leader)}/cluster/leader`, {
            method: 'POST',
            body: JSON.stringify({ id: leader }),
          });
          return r.status === 200 ? true : undefined;
        });
        expect(await replay(leader)).toBe(401);
        expect((await http(`${cluster.url(next)}/kv/acct`)).body).toEqual({ value: 'new' });
        expect(crashes(cluster)).toEqual([]);
      } finally {
        await cluster.destroy();
        await rm(dir, { recursive: true, force: true });
      }
    },
  );

  it(
    'keeps serving, stays linearizable, and no node crashes or logs an error',
    { timeout: 120_000 },
    async () => {
      const report = await runChaos({
        ...configFromEnv(),
        name: 'hostile',
        seed: envNumber('CHAOS_SEED', 20251127, 0, 2 ** 32 - 1) + 1,
        nodes: 3,
        clients: 6,
        keys: 4,
        chaosMs: 10_000,
        mode: ['minority'],
        finalKillAll: false,
        hostile: 3,
      });
      console.log(report.summary);
      expect(report.problems).toEqual([]);
      expect(report.unresolvedWrites).toBe(0);
    },
  );
});
