/**
 * Runtime plumbing for the membership tests: peers on virtual time (../harness.ts), a
 * network whose latency can differ per peer, and a state machine that records what it
 * applied and can be made slow (each command takes `applyMs` of virtual time).
 */
import {
  RaftError,
  seededRandom,
  startPeer,
  type Peer,
  type PeerOptions,
  type RaftMessage,
  type StateMachine,
  type Transport,
} from '../../src/index.js';
import { TestLogStore, VirtualClock } from '../harness.js';

export type Cmd = { op: 'set'; key: string; value: number };
export type State = { applied: number[]; kv: Map<string, number> };
export type P = Peer<Cmd, string, number | null>;

/** A network on virtual time: a message from x to y takes `latency(x, y)` ms; peers can be cut off. */
export class LatencyNetwork {
  private handlers = new Map<string, (m: RaftMessage) => void>();
  private cut = new Set<string>();
  constructor(
    private readonly clock: VirtualClock,
    public latency: (from: string, to: string) => number = () => 1,
  ) {}
  join(name: string): Transport {
    return {
      start: async (onMessage) => {
        this.handlers.set(name, onMessage);
      },
      send: (to, m) => {
        if (this.cut.has(name) || this.cut.has(to)) return;
        const copy = structuredClone(m);
        this.clock.setTimeout(
          () => {
            if (this.cut.has(name) || this.cut.has(to)) return;
            this.handlers.get(to)?.(copy);
          },
          this.latency(name, to),
        );
      },
      close: async () => {
        this.handlers.delete(name);
      },
    };
  }
  isolate(name: string): void {
    this.cut.add(name);
  }
  heal(name: string): void {
    this.cut.delete(name);
  }
}

export function machine(
  clock: VirtualClock,
  applyMs: () => number,
  states?: Map<string, State>,
): StateMachine<State, Cmd, string, number | null> {
  return {
    init: (name) => {
      const s: State = { applied: [], kv: new Map() };
      states?.set(name, s);
      return s;
    },
    handleWrite: (c, s) => {
      const ms = applyMs();
      const done = (): [number, State] => {
        s.applied.push(c.value);
        s.kv.set(c.key, c.value);
        return [c.value, s];
      };
      if (ms === 0) return done();
      return new Promise((resolve) => clock.setTimeout(() => resolve(done()), ms));
    },
    handleRead: (k, s) => s.kv.get(k) ?? null,
  };
}

/** A TestLogStore whose durable writes take `delay.ms` of virtual time (a slow disk). */
export class SlowStore extends TestLogStore {
  constructor(
    private readonly clock: VirtualClock,
    readonly delay: { ms: number },
  ) {
    super();
  }
  override async write(batch: Parameters<TestLogStore['write']>[0]): Promise<void> {
    if (this.delay.ms > 0)
      await new Promise<void>((resolve) => this.clock.setTimeout(resolve, this.delay.ms));
    return super.write(batch);
  }
}

export interface Setup {
  peers: Map<string, P>;
  stores: Map<string, TestLogStore>;
  clock: VirtualClock;
  net: LatencyNetwork;
  /** Each peer's state machine state (its latest incarnation). */
  states: Map<string, State>;
  /** Virtual ms each durable write takes; change it at will. */
  disk: { ms: number };
  /** Virtual ms each command takes to apply; change it at will. */
  slow: { ms: number };
  leader(): P;
  stopAll(): Promise<void>;
}

export async function startCluster(
  initial: string[],
  spares: string[] = [],
  extra: Partial<PeerOptions> = {},
): Promise<Setup> {
  const clock = new VirtualClock();
  const net = new LatencyNetwork(clock);
  const rand = seededRandom(5);
  const slow = { ms: 0 };
  const disk = { ms: 0 };
  const peers = new Map<string, P>();
  const stores = new Map<string, TestLogStore>();
  const states = new Map<string, State>();
  for (const name of [...initial, ...spares]) {
    const store = new SlowStore(clock, disk);
    stores.set(name, store);
    peers.set(
      name,
      await startPeer(
        machine(clock, () => slow.ms, states),
        { name, log: store, transport: net.join(name), clock, random: rand, register: false, ...extra },
      ),
    );
  }
  const boot = peers.get(initial[0]!)!.setConfiguration(initial);
  await clock.until(() => initial.every((n) => peers.get(n)!.leader() !== null));
  await boot;
  const leader = (): P => {
    const l = [...peers.values()].find((p) => p.status().role === 'leader');
    if (l === undefined) throw new Error('no leader');
    return l;
  };
  return {
    peers,
    stores,
    states,
    disk,
    clock,
    net,
    slow,
    leader,
    stopAll: async () => void (await Promise.all([...peers.values()].map((p) => p.stop()))),
  };
}

/** Observes a promise without awaiting it: its outcome (a RaftError code, 'resolved', or 'pending'). */
export function watch(p: Promise<unknown>): { outcome: () => string; value: () => unknown } {
  let outcome = 'pending';
  let value: unknown;
  p.then(
    (v) => {
      outcome = 'resolved';
      value = v;
    },
    (e: unknown) => {
      outcome = RaftError.isInstance(e) ? e.code : `threw ${String(e)}`;
    },
  );
  return { outcome: () => outcome, value: () => value };
}
