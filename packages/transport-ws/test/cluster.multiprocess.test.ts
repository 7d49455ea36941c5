/**
 * Issue 5: three Node processes form a Raft cluster over WebSockets on loopback.
 *
 * Each peer runs test/fixtures/peer-process.mjs (forked with an IPC channel), which starts
 * `startPeer(KVStore, { log, transport: new WebSocketTransport({...}) })` from the built
 * dist of @raft/core, @raft/kv, the log stores and this package. The parent drives the
 * children with IPC requests (write, read, status, stop) and checks what every process
 * has applied.
 *
 * Storage. The issue asks for @raft/log-memory. That is right for part A (elect and
 * replicate): nothing restarts. It is wrong for the kill/restart of part B: a peer that
 * comes back under the same name with an empty memory log has forgotten its term, its
 * vote and the entries it acknowledged, and Raft (Figure 2, "persistent state";
 * dissertation §3.8) forbids that: it could vote twice in one term and help elect a
 * second leader, or let a committed entry lose its majority. So part B gives each
 * process a durable @raft/log-level store in a temp dir, and the restarted process
 * reopens its own, as a real node would.
 *
 * Ports are found by binding port 0 in this process first and passing them to the
 * children (a restarted child must come back on the same port, where its peers redial).
 * Every wait polls over IPC with a deadline; no sleeps. Every child is SIGKILLed in
 * afterAll, whatever happened.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PeerId, PeerStatus } from '@raft/core';

const FIXTURE = fileURLToPath(new URL('./fixtures/peer-process.mjs', import.meta.url));
const SECRET = 'multiprocess test secret, not for production use';
const NAMES = ['n1', 'n2', 'n3'];
/** Generous: a loaded 2-core machine may be slow to fork, elect and replicate. */
const DEADLINE_MS = 15_000;
const TEST_TIMEOUT_MS = 30_000;

/** The built code the fixture imports; the test needs it (turbo's `test` task builds it first). */
const DISTS = [
  '../dist/index.js',
  '../../core/dist/index.js',
  '../../kv/dist/index.js',
  '../../log-memory/dist/index.js',
  '../../log-level/dist/index.js',
];

type LogKind = 'memory' | 'level';

interface PeerConfig {
  name: PeerId;
  port: number;
  peers: Record<PeerId, string>;
  members: PeerId[];
  log: LogKind;
  location?: string;
}

/** What the fixture's `status` answers. */
interface ProcessStatus extends PeerStatus {
  connectedPeers: PeerId[];
  kv: Record<string, unknown>;
}

interface Failure {
  code: string;
  leader: PeerId | null;
  message: string;
}

type Reply = { ok: true; value: unknown } | ({ ok: false } & Failure);

type ChildEvent =
  | { event: 'ready'; status: ProcessStatus }
  | { event: 'configured' }
  | ({ event: 'failed' } & Failure)
  | ({ event: 'bootstrapFailed' } & Failure);

type Request =
  | { cmd: 'write'; command: unknown; timeout: number }
  | { cmd: 'read'; query: unknown; timeout: number }
  | { cmd: 'status' }
  | { cmd: 'stop' };

class StartError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Polls `check` (which returns a value when satisfied, or undefined) until it succeeds or the deadline passes. */
async function poll<T>(
  check: () => Promise<T | undefined>,
  what: string,
  timeoutMs = DEADLINE_MS,
  describeLast?: () => string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${describeLast === undefined ? '' : `; last seen: ${describeLast()}`}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Free loopback ports: bound at once on port 0 (so they differ), then released for the children. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

/** One forked peer process and its IPC channel. */
class PeerProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitStatus: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  readonly events: ChildEvent[] = [];
  stderr = '';
  #nextId = 1;
  readonly #pending = new Map<
    number,
    { resolve: (reply: Reply) => void; reject: (error: Error) => void; timer: ReturnType<typeof setTimeout> }
  >();
  readonly #waiters = new Set<() => void>();

  constructor(readonly config: PeerConfig) {
    this.child = fork(FIXTURE, [JSON.stringify(config)], {
      execArgv: [],
      env: { ...process.env, RAFT_TEST_SECRET: SECRET },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    this.child.stdout!.resume();
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-4000);
    });
    this.child.on('message', (message: ChildEvent | ({ id: number } & Reply)) => {
      if ('id' in message) {
        const { id, ...reply } = message;
        const pending = this.#pending.get(id);
        if (pending === undefined) return;
        this.#pending.delete(id);
        clearTimeout(pending.timer);
        pending.resolve(reply);
        return;
      }
      this.events.push(message);
      this.#wake();
    });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitStatus = { code, signal };
        for (const pending of this.#pending.values()) {
          clearTimeout(pending.timer);
          pending.reject(
            new Error(
              `${config.name} exited (code ${code}, signal ${signal}) before answering; stderr: ${this.stderr}`,
            ),
          );
        }
        this.#pending.clear();
        this.#wake();
        resolve({ code, signal });
      });
    });
  }

  get name(): PeerId {
    return this.config.name;
  }

  get alive(): boolean {
    return this.exitStatus === null;
  }

  #wake(): void {
    for (const wake of this.#waiters) wake();
  }

  /** Resolves with the status at boot once the peer runs; rejects if it cannot start. */
  async ready(timeoutMs = DEADLINE_MS): Promise<ProcessStatus> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const failed = this.events.find(
        (e): e is Extract<ChildEvent, { event: 'failed' }> => e.event === 'failed',
      );
      if (failed !== undefined)
        throw new StartError(failed.code, `${this.name} failed to start: ${failed.code} ${failed.message}`);
      const ready = this.events.find(
        (e): e is Extract<ChildEvent, { event: 'ready' }> => e.event === 'ready',
      );
      if (ready !== undefined) return ready.status;
      if (!this.alive)
        throw new Error(
          `${this.name} exited before it was ready (${JSON.stringify(this.exitStatus)}); stderr: ${this.stderr}`,
        );
      if (Date.now() > deadline)
        throw new Error(`${this.name} not ready after ${timeoutMs} ms; stderr: ${this.stderr}`);
      // Woken by the next IPC event or the exit, or by the deadline.
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          this.#waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.max(1, deadline - Date.now() + 1));
        this.#waiters.add(wake);
      });
    }
  }

  request(request: Request, timeoutMs = DEADLINE_MS): Promise<Reply> {
    if (!this.alive) return Promise.reject(new Error(`${this.name} is not running`));
    const id = this.#nextId++;
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new Error(
            `${this.name} did not answer ${request.cmd} within ${timeoutMs} ms; stderr: ${this.stderr}`,
          ),
        );
      }, timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      this.child.send({ id, ...request }, (error) => {
        if (error === null || !this.#pending.has(id)) return;
        this.#pending.delete(id);
        clearTimeout(timer);
        reject(error);
      });
    });
  }

  async status(): Promise<ProcessStatus> {
    const reply = await this.request({ cmd: 'status' });
    if (!reply.ok) throw new Error(`status of ${this.name} failed: ${reply.code} ${reply.message}`);
    return reply.value as ProcessStatus;
  }

  /** SIGKILL: no chance to flush or say goodbye. */
  async kill(): Promise<void> {
    if (this.alive) this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** Three peer processes forming one cluster. */
class ProcessCluster {
  readonly procs = new Map<PeerId, PeerProcess>();
  /** Every process ever forked, for cleanup. */
  readonly all: PeerProcess[] = [];
  readonly model = new Map<string, unknown>();
  #lastSeen = '';

  private constructor(readonly configs: Map<PeerId, PeerConfig>) {}

  /** Forks the three peers and waits until each runs; retries with other ports if one was taken meanwhile. */
  static async start(log: LogKind, dataDir?: string): Promise<ProcessCluster> {
    for (let attempt = 1; ; attempt++) {
      const ports = await freePorts(NAMES.length);
      const peers = Object.fromEntries(NAMES.map((name, i) => [name, `ws://127.0.0.1:${ports[i]}`]));
      const configs = new Map<PeerId, PeerConfig>(
        NAMES.map((name, i) => [
          name,
          {
            name,
            port: ports[i]!,
            peers,
            members: NAMES,
            log,
            ...(dataDir === undefined ? {} : { location: join(dataDir, name) }),
          },
        ]),
      );
      const cluster = new ProcessCluster(configs);
      for (const name of NAMES) cluster.#fork(name);
      try {
        await Promise.all([...cluster.procs.values()].map((p) => p.ready()));
        return cluster;
      } catch (error) {
        await cluster.killAll();
        const portTaken = error instanceof StartError && error.code === 'RAFT_TRANSPORT_UNAVAILABLE';
        if (!portTaken || attempt >= 3) throw error;
        // Start the next attempt from empty logs.
        for (const c of configs.values())
          if (c.location !== undefined) await rm(c.location, { recursive: true, force: true });
      }
    }
  }

  #fork(name: PeerId): PeerProcess {
    const proc = new PeerProcess(this.configs.get(name)!);
    this.procs.set(name, proc);
    this.all.push(proc);
    return proc;
  }

  proc(name: PeerId): PeerProcess {
    const proc = this.procs.get(name);
    if (proc === undefined) throw new Error(`no process ${name}`);
    return proc;
  }

  live(): PeerProcess[] {
    return [...this.procs.values()].filter((p) => p.alive);
  }

  async statuses(procs: PeerProcess[] = this.live()): Promise<Map<PeerId, ProcessStatus>> {
    const statuses = await Promise.all(procs.map((p) => p.status()));
    const map = new Map(statuses.map((s) => [s.name, s]));
    this.#lastSeen = JSON.stringify(
      statuses.map(({ name, role, term, leader, commitIndex, lastApplied, connectedPeers }) => ({
        name,
        role,
        term,
        leader,
        commitIndex,
        lastApplied,
        connectedPeers,
      })),
    );
    return map;
  }

  /**
   * Waits until the running processes agree: the same term and leader, the leader is
   * one of them and says so, and every other one is its follower. Returns that status.
   */
  async agreedLeader(): Promise<{ leader: PeerId; term: number }> {
    return poll(
      async () => {
        const statuses = [...(await this.statuses()).values()];
        const first = statuses[0]!;
        if (first.leader === null) return undefined;
        const agreed = statuses.every(
          (s) =>
            s.term === first.term &&
            s.leader === first.leader &&
            s.role === (s.name === first.leader ? 'leader' : 'follower'),
        );
        return agreed && statuses.some((s) => s.name === first.leader)
          ? { leader: first.leader, term: first.term }
          : undefined;
      },
      'one leader known to every running process',
      DEADLINE_MS,
      () => this.#lastSeen,
    );
  }

  /**
   * Writes `set key value` through the current leader and records it in the model. Retries
   * on RAFT_NOT_LEADER, RAFT_ELECTION_IN_PROGRESS and RAFT_TIMEOUT until the deadline: a
   * `set` applied twice leaves the same state, so a retry cannot corrupt the check.
   */
  async set(key: string, value: unknown): Promise<void> {
    let target: PeerId | null = null;
    const reply = await poll(
      async () => {
        if (target === null || !this.procs.get(target)?.alive) {
          const leaders = [...(await this.statuses()).values()].filter((s) => s.role === 'leader');
          target = leaders.length === 1 ? leaders[0]!.name : null;
          if (target === null) return undefined;
        }
        const r = await this.proc(target).request({
          cmd: 'write',
          command: { op: 'set', key, value },
          timeout: 5000,
        });
        if (r.ok) return r;
        if (
          r.code === 'RAFT_NOT_LEADER' ||
          r.code === 'RAFT_ELECTION_IN_PROGRESS' ||
          r.code === 'RAFT_TIMEOUT'
        ) {
          target = r.code === 'RAFT_NOT_LEADER' ? r.leader : null;
          return undefined;
        }
        throw new Error(`write ${key} failed at ${target}: ${r.code} ${r.message}`);
      },
      `the write of ${key}`,
      DEADLINE_MS,
      () => this.#lastSeen,
    );
    expect(reply.value).toEqual({ ok: true, value });
    this.model.set(key, value);
  }

  /**
   * Waits until every process in `names` has applied exactly the model, and all of
   * them the same entries (the same `lastApplied`). Returns their statuses.
   */
  async converged(names: PeerId[]): Promise<Map<PeerId, ProcessStatus>> {
    const expected = Object.fromEntries(this.model);
    return poll(
      async () => {
        const statuses = await this.statuses(names.map((n) => this.proc(n)));
        const all = [...statuses.values()];
        const same = all.every(
          (s) => s.lastApplied === all[0]!.lastApplied && isDeepStrictEqual(s.kv, expected),
        );
        return same ? statuses : undefined;
      },
      `${names.join(', ')} to apply the ${this.model.size} writes`,
      DEADLINE_MS,
      () => this.#lastSeen,
    );
  }

  /** Waits until every pair of running processes has an authenticated connection. */
  async allConnected(): Promise<void> {
    await poll(
      async () => {
        const statuses = [...(await this.statuses()).values()];
        const names = statuses.map((s) => s.name).sort();
        return statuses.every((s) =>
          isDeepStrictEqual(
            s.connectedPeers,
            names.filter((n) => n !== s.name),
          ),
        )
          ? true
          : undefined;
      },
      'every pair of processes to connect',
      DEADLINE_MS,
      () => this.#lastSeen,
    );
  }

  /** Kills `name` with SIGKILL. */
  async kill(name: PeerId): Promise<void> {
    await this.proc(name).kill();
  }

  /** Starts `name` again with exactly the arguments it had. */
  async restart(name: PeerId): Promise<ProcessStatus> {
    if (this.proc(name).alive) throw new Error(`${name} is still running`);
    return this.#fork(name).ready();
  }

  async killAll(): Promise<void> {
    await Promise.all(this.all.map((p) => p.kill()));
  }
}

const clusters: ProcessCluster[] = [];
let dataDir: string | null = null;

beforeAll(() => {
  const missing = DISTS.map((d) => fileURLToPath(new URL(d, import.meta.url))).filter(
    (path) => !existsSync(path),
  );
  if (missing.length > 0)
    throw new Error(
      `build first (pnpm build in the repo, or tsc -b tsconfig.build.json in each package); missing: ${missing.join(', ')}`,
    );
});

afterAll(async () => {
  await Promise.all(clusters.map((c) => c.killAll()));
  if (dataDir !== null) await rm(dataDir, { recursive: true, force: true });
});

describe('three processes over WebSockets, memory logs (Raft §5.2 leader election, §5.3 log replication)', () => {
  let cluster: ProcessCluster;

  beforeAll(async () => {
    cluster = await ProcessCluster.start('memory');
    clusters.push(cluster);
  }, TEST_TIMEOUT_MS);

  afterAll(async () => {
    await cluster?.killAll();
  });

  it(
    'elect exactly one leader, known to all three peers',
    async () => {
      const { leader, term } = await cluster.agreedLeader();
      expect(NAMES).toContain(leader);
      expect(term).toBeGreaterThanOrEqual(1);
      const statuses = await cluster.statuses();
      expect([...statuses.values()].filter((s) => s.role === 'leader').map((s) => s.name)).toEqual([leader]);
      for (const s of statuses.values()) expect(s.configuration.members).toEqual(NAMES);
      // Every pair connects, authenticated with the secret.
      await cluster.allConnected();
      // The bootstrap of the first member resolves once its configuration entry is committed.
      const first = cluster.proc(NAMES[0]!);
      await poll(
        async () => (first.events.some((e) => e.event === 'configured') ? true : undefined),
        'setConfiguration to resolve in n1',
        DEADLINE_MS,
        () => JSON.stringify(first.events),
      );
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'replicate writes acknowledged by the leader to every process, and read them back linearizably',
    async () => {
      for (let i = 0; i < 10; i++) await cluster.set(`seq-${i}`, { i, text: `value ${i}` });
      // Concurrent writes: batched and pipelined by the leader.
      await Promise.all(Array.from({ length: 20 }, (_, i) => cluster.set(`par-${i}`, i * i)));
      const statuses = await cluster.converged(NAMES);
      for (const s of statuses.values()) expect(s.kv).toEqual(Object.fromEntries(cluster.model));

      const { leader } = await cluster.agreedLeader();
      const atLeader = await cluster
        .proc(leader)
        .request({ cmd: 'read', query: { op: 'get', key: 'seq-3' }, timeout: 5000 });
      expect(atLeader).toEqual({ ok: true, value: { ok: true, value: { i: 3, text: 'value 3' } } });
      const missing = await cluster
        .proc(leader)
        .request({ cmd: 'read', query: { op: 'get', key: 'nope' }, timeout: 5000 });
      expect(missing).toEqual({ ok: true, value: { ok: false, error: 'key_not_found' } });
      // A follower does not serve reads itself: it names the leader.
      const follower = NAMES.find((n) => n !== leader)!;
      const redirected = await cluster
        .proc(follower)
        .request({ cmd: 'read', query: { op: 'get', key: 'seq-3' }, timeout: 5000 });
      expect(redirected).toMatchObject({ ok: false, code: 'RAFT_NOT_LEADER', leader });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'stop a follower gracefully on request (exit code 0); the other two keep a quorum',
    async () => {
      const { leader } = await cluster.agreedLeader();
      const follower = NAMES.find((n) => n !== leader)!;
      const stopped = await cluster.proc(follower).request({ cmd: 'stop' });
      expect(stopped.ok).toBe(true);
      expect(await cluster.proc(follower).exited).toEqual({ code: 0, signal: null });
      await cluster.set('after-stop', true);
      await cluster.converged(NAMES.filter((n) => n !== follower));
    },
    TEST_TIMEOUT_MS,
  );
});

describe('three processes over WebSockets, durable logs: SIGKILL and restart (Raft §5.2, §5.3, §5.5)', () => {
  let cluster: ProcessCluster;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'raft-ws-multiprocess-'));
    cluster = await ProcessCluster.start('level', dataDir);
    clusters.push(cluster);
  }, TEST_TIMEOUT_MS);

  afterAll(async () => {
    await cluster?.killAll();
  });

  let killed: PeerId;
  let beforeKill: ProcessStatus;

  it(
    'elect a leader and replicate writes to every process',
    async () => {
      await cluster.agreedLeader();
      for (let i = 0; i < 10; i++) await cluster.set(`before-${i}`, `v${i}`);
      await cluster.converged(NAMES);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'after the leader is killed with SIGKILL, elect a new leader and keep accepting writes with two peers',
    async () => {
      const { leader, term } = await cluster.agreedLeader();
      killed = leader;
      beforeKill = (await cluster.statuses()).get(killed)!;
      await cluster.kill(killed);
      expect(cluster.proc(killed).exitStatus).toEqual({ code: null, signal: 'SIGKILL' });

      const next = await cluster.agreedLeader();
      expect(next.leader).not.toBe(killed);
      expect(next.term).toBeGreaterThan(term);
      for (let i = 0; i < 10; i++) await cluster.set(`during-${i}`, `w${i}`);
      await cluster.converged(NAMES.filter((n) => n !== killed));
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'restart the killed peer with the same arguments: it recovers its log, reconnects and catches up',
    async () => {
      const boot = await cluster.restart(killed);
      // Its durable log came back: the term it had reached and every entry it had applied.
      expect(boot.term).toBeGreaterThanOrEqual(beforeKill.term);
      expect(boot.lastLogIndex).toBeGreaterThanOrEqual(beforeKill.lastApplied);
      expect(boot.configuration.members).toEqual(NAMES);

      await cluster.agreedLeader();
      for (let i = 0; i < 5; i++) await cluster.set(`after-${i}`, `x${i}`);
      const statuses = await cluster.converged(NAMES);
      const restarted = statuses.get(killed)!;
      expect(restarted.kv).toEqual(Object.fromEntries(cluster.model));
      await cluster.allConnected();
      // The restarted peer bootstrapped nothing: the cluster's configuration came from its log.
      expect(cluster.proc(killed).events.map((e) => e.event)).toEqual(['ready']);
    },
    TEST_TIMEOUT_MS,
  );
});

describe('three processes over WebSockets, later', () => {
  it.todo(
    'terminate the connections of a peer paused with SIGSTOP (ping timeout), and let it rejoin after SIGCONT',
  );
  it.todo(
    'keep out a fourth process with a wrong secret (refused.auth counted) while the cluster keeps its quorum',
  );
  it.todo(
    'survive a peer process that sends garbage frames as an authenticated member (malformed drops, connection closed)',
  );
});
