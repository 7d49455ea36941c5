/**
 * The session client mode of the simulator (issue 18): seeded runs of real `@raft/core`
 * peers, wrapped by `withSessions`, on virtual time, under message loss and partitions
 * that isolate peers (leaders above all). Clients write non-idempotent commands through
 * registered sessions and retry every write whose outcome is unknown (a timeout, a lost
 * leadership) with the same session and seq until it is answered. The invariant: every
 * write takes effect at most once on every peer, and every answered write exactly once.
 */
import {
  leader as leaderOf,
  RaftError,
  seededRandom,
  setConfiguration,
  startPeer,
  status,
  withSessions,
  write,
  type Clock,
  type Peer,
  type PeerId,
  type RaftMessage,
  type SessionCommand,
  type SessionOutcome,
  type StateMachine,
  type TimerHandle,
  type Transport,
} from '@raft/core';
import { MemoryLogStore } from '@raft/log-memory';

/** Options of {@link runSessionSimulation}. */
export interface SessionSimulationOptions {
  /** The seed: the same seed replays the same run. */
  seed: number;
  /** Peers. @default 3 */
  nodes?: number;
  /** Clients, each with one session and one write in flight. @default 4 */
  clients?: number;
  /** Writes each client makes. @default 12 */
  writesPerClient?: number;
  /**
   * Faults in the world itself, to prove the check catches them. Never set in real runs.
   * `applyDuplicates`: the session layer applies every copy of a retried write.
   */
  inject?: { applyDuplicates?: boolean };
}

/** What one session run did and found. */
export interface SessionSimulationResult {
  seed: number;
  /** Writes answered to their client. */
  answered: number;
  /** Attempts whose outcome was unknown (retried with the same seq). */
  unknownOutcomes: number;
  /** Answers that were replays of an earlier application. */
  replays: number;
  /** Writes never answered before the run's end (0 in a passing run). */
  unresolved: number;
  /** The first violation, or null. */
  violation: string | null;
}

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** Virtual time: timers fire in (time, creation) order when the run advances. */
class VirtualClock implements Clock {
  now_ = 0;
  private seq = 0;
  private timers: Timer[] = [];
  now(): number {
    return this.now_;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t = { at: this.now_ + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(t);
    return t;
  }
  clearTimeout(handle: TimerHandle): void {
    (handle as Timer).cancelled = true;
  }
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimeout(resolve, ms));
  }
  /** Runs the next timer; false when none is left before `limit`. */
  step(limit: number): boolean {
    this.timers = this.timers.filter((t) => !t.cancelled);
    let next: Timer | undefined;
    for (const t of this.timers)
      if (next === undefined || t.at < next.at || (t.at === next.at && t.seq < next.seq)) next = t;
    if (next === undefined || next.at > limit) return false;
    this.timers.splice(this.timers.indexOf(next), 1);
    this.now_ = Math.max(this.now_, next.at);
    next.fn();
    return true;
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 30; i++) await new Promise<void>((resolve) => queueMicrotask(resolve));
}

/** The inner machine: a list of tags, one appended per command. Not idempotent. */
type Cmd = { tag: string };
type Reply = number;

function tagLog(onApply: (tag: string) => void): StateMachine<string[], Cmd, 'all', Reply | string[]> {
  return {
    init: () => [],
    handleWrite(cmd, state) {
      onApply(cmd.tag);
      state.push(cmd.tag);
      return [state.length, state];
    },
    handleRead: (_q, state) => [...state],
  };
}

/** The injected bug: envelopes understood, duplicates applied again. */
function applyingDuplicates(
  inner: StateMachine<string[], Cmd, 'all', Reply | string[]>,
): StateMachine<string[], Cmd | SessionCommand<Cmd>, 'all', Reply | string[] | SessionOutcome<Reply>> {
  let nextId = 1;
  return {
    init: (name) => inner.init(name),
    handleRead: (q, s) => inner.handleRead(q, s),
    handleWrite(c, s) {
      if (!('raftSession' in c)) return inner.handleWrite(c, s);
      if (c.raftSession === 'register') return [{ raftSession: 'registered', client: nextId++ }, s];
      if (c.raftSession !== 'write') return [{ raftSession: 'closed' }, s];
      const [reply, next] = inner.handleWrite(c.command, s) as [Reply, string[]];
      return [{ raftSession: 'applied', reply }, next];
    },
  };
}

/**
 * One seeded run of the session client mode. Never throws for a violation: it is in the
 * result.
 */
export async function runSessionSimulation(opts: SessionSimulationOptions): Promise<SessionSimulationResult> {
  const rng = seededRandom(opts.seed);
  const range = (lo: number, hi: number): number => lo + rng() * (hi - lo);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;
  const clock = new VirtualClock();
  const names = Array.from({ length: opts.nodes ?? 3 }, (_, i) => `s${opts.seed}p${i + 1}`);
  const result: SessionSimulationResult = {
    seed: opts.seed,
    answered: 0,
    unknownOutcomes: 0,
    replays: 0,
    unresolved: 0,
    violation: null,
  };
  const fail = (why: string): void => {
    result.violation ??= why;
  };

  // ------------------------------------------------------------ network
  const handlers = new Map<PeerId, (m: RaftMessage) => void>();
  let isolated: PeerId | null = null;
  const dropRate = range(0, 0.05);
  const transport = (name: PeerId): Transport => ({
    start: async (onMessage) => {
      handlers.set(name, onMessage);
    },
    send: (to, m) => {
      if (isolated === name || isolated === to || rng() < dropRate) return;
      const copy = structuredClone(m);
      clock.setTimeout(
        () => {
          if (isolated !== name && isolated !== to) handlers.get(to)?.(copy);
        },
        range(0.5, 4),
      );
    },
    close: async () => {
      handlers.delete(name);
    },
  });

  // ------------------------------------------------------------ peers
  const applied = new Map<PeerId, Set<string>>();
  const peers: Peer<unknown, unknown, unknown>[] = [];
  for (const name of names) {
    const seen = new Set<string>();
    applied.set(name, seen);
    const inner = tagLog((tag) => {
      if (seen.has(tag)) fail(`${name} applied ${tag} twice`);
      seen.add(tag);
    });
    const peerOptions = {
      name,
      log: new MemoryLogStore(),
      transport: transport(name),
      clock,
      random: seededRandom(opts.seed * 1000 + peers.length),
    };
    const peer =
      opts.inject?.applyDuplicates === true
        ? await startPeer(applyingDuplicates(inner), peerOptions)
        : await startPeer(withSessions(inner), peerOptions);
    peers.push(peer);
  }
  void setConfiguration(names[0]!, names).catch(() => undefined);

  // ------------------------------------------------------------ clients
  const FAULT_PHASE_MS = 4000;
  let active = 0;
  const unknown = (err: unknown): boolean =>
    RaftError.isInstance(err) &&
    (err.code === 'RAFT_TIMEOUT' ||
      err.code === 'RAFT_STOPPED' ||
      (err.code === 'RAFT_NOT_LEADER' && (err as { indeterminate?: boolean }).indeterminate === true));

  /** Sends `envelope` until answered, retrying unknown outcomes with the same envelope. */
  async function call(envelope: SessionCommand<Cmd>): Promise<SessionOutcome<Reply> | null> {
    let hint: PeerId | null = null;
    for (let attempt = 0; attempt < 400; attempt++) {
      const target = hint ?? pick(names);
      try {
        return await write<SessionOutcome<Reply>>(target, envelope, { timeout: range(50, 400) });
      } catch (err) {
        if (!RaftError.isInstance(err)) throw err;
        if (unknown(err)) result.unknownOutcomes++;
        hint = err.code === 'RAFT_NOT_LEADER' ? ((err as { leader?: PeerId | null }).leader ?? null) : null;
        await clock.sleep(hint === null ? range(10, 80) : range(1, 5));
      }
    }
    return null;
  }

  async function client(c: number): Promise<void> {
    active++;
    try {
      await clock.sleep(range(0, 300));
      const registered = await call({ raftSession: 'register' });
      if (registered?.raftSession !== 'registered') {
        fail(`client ${c} could not register: ${JSON.stringify(registered)}`);
        return;
      }
      let acked = 0;
      for (let seq = 1; seq <= (opts.writesPerClient ?? 12); seq++) {
        const tag = `c${c}.${seq}`;
        const out = await call({
          raftSession: 'write',
          client: registered.client,
          seq,
          ackedSeq: acked,
          command: { tag },
        });
        if (out === null) {
          result.unresolved++;
          continue;
        }
        if (out.raftSession !== 'applied' && out.raftSession !== 'replayed') {
          fail(`${tag} was answered ${JSON.stringify(out)}`);
          continue;
        }
        result.answered++;
        if (out.raftSession === 'replayed') result.replays++;
        answered.add(tag);
        acked = seq;
        await clock.sleep(range(0, 30));
      }
    } finally {
      active--;
    }
  }
  const answered = new Set<string>();

  // ------------------------------------------------------------ faults
  async function faults(): Promise<void> {
    while (clock.now() < FAULT_PHASE_MS) {
      await clock.sleep(range(100, 500));
      const current = leaderOf(names[0]!);
      isolated = current !== null && rng() < 0.7 ? current : pick(names);
      await clock.sleep(range(50, 600));
      isolated = null;
    }
  }

  const clients = Array.from({ length: opts.clients ?? 4 }, (_, i) => client(i + 1));
  void faults();
  // Run until every client is done, then until every peer applied everything committed.
  const limit = 120_000;
  await settle();
  while (active > 0 && clock.step(limit)) await settle();
  await Promise.all(clients);
  const caughtUp = (): boolean => {
    const s = names.map((n) => status(n));
    const commit = Math.max(...s.map((x) => x.commitIndex));
    return s.every((x) => x.lastApplied === commit);
  };
  const end = clock.now() + 5000;
  while (!caughtUp() && clock.step(end)) await settle();
  if (active > 0) fail('the clients did not finish in virtual time');

  // ------------------------------------------------------------ the invariant
  for (const name of names) {
    const seen = applied.get(name)!;
    for (const tag of answered) if (!seen.has(tag)) fail(`${name} never applied the answered write ${tag}`);
  }
  await Promise.all(peers.map((p) => p.stop()));
  return result;
}
