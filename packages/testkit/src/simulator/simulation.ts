import {
  inspectPeer,
  setConfiguration,
  startPeer,
  type Clock,
  type Configuration,
  type StateMachine,
  type TimerHandle,
} from '@raft/core';
import { KVStore, type KVCommand, type KVQuery, type KVReply, type KVState } from '@raft/kv';
import { checkOperations, kvModel } from '../linearizability/index.js';
import { InvariantChecker } from './checker.js';
import { DisruptionOracle } from './disruption.js';
import { Workload } from './clients.js';
import { SimDisk, SimLogStore, type DiskBehaviour } from './disk.js';
import { CALM_NETWORK, SimNetwork } from './network.js';
import { Prng } from './prng.js';
import { Scheduler } from './scheduler.js';
import {
  chooseSwarm,
  describeSwarm,
  type PartitionKind,
  type SwarmBounds,
  type SwarmConfig,
  type SwarmFeatures,
} from './swarm.js';
import { Trace } from './trace.js';
import { Incarnation, SimNode, type Violation, type World } from './world.js';
import { describeConfiguration, sameConfiguration } from './configuration.js';
import { emptyMembershipCounts, Operator, type MembershipCounts, type OperatorHost } from './membership.js';

/** Options of {@link runSimulation}. */
export interface SimulationOptions {
  /** The seed: the same seed (with the same options) replays the same run, event for event. */
  seed: number;
  /**
   * Peers in the cluster.
   * @default 3, 5 or 7, drawn from the seed
   */
  nodes?: number;
  /**
   * Range of the fault phase's length, in virtual milliseconds (drawn from the seed).
   * @default [1000, 5000]
   */
  faultMs?: [number, number];
  /**
   * Virtual milliseconds the healed cluster has to elect a leader, complete a write and a
   * read, and bring every peer up to date (liveness).
   * @default 10000
   */
  livenessMs?: number;
  /**
   * Lines of trace kept for a failure report.
   * @default 200
   */
  traceLines?: number;
  /** Called with every trace line as it happens (verbose mode). */
  onTrace?: (line: string) => void;
  /**
   * Run the "persist before you promise" checks (see the checker).
   * @default true
   */
  durabilityChecks?: boolean;
  /**
   * Run the disruption oracle (see {@link DisruptionOracle}): on a healthy network a
   * stable leader keeps its leadership and no member raises the term. It applies to runs
   * whose peers use both pre-vote and check-quorum.
   * @default true
   */
  disruptionChecks?: boolean;
  /**
   * Give up checking the history for linearizability after this many milliseconds of
   * real time (the run then counts as inconclusive, not failed).
   * @default 20000
   */
  linearizabilityTimeoutMs?: number;
  /**
   * Snapshots and log compaction (a snapshot policy with a small `snapshotEvery`, small
   * InstallSnapshot chunks and a lag fault, see {@link SwarmConfig.snapshots}). Unset (the
   * default, swarm over features): each seed decides from its own randomness. True: most
   * seeds use them. False: none, and a seed runs exactly as before snapshots existed.
   * @default undefined (the seed decides)
   */
  snapshots?: boolean;
  /**
   * Membership changes during the fault phase: an operator that adds, removes and
   * replaces peers (see {@link SwarmConfig.membership}). Unset (the default): each seed
   * decides. True: most seeds (and transfers in most of those). False: none, and a seed
   * runs exactly as before membership changes existed.
   * @default undefined (the seed decides)
   */
  membership?: boolean;
  /**
   * Leadership transfers (`transferLeadership` to a random voter), with or without
   * membership changes. Unset: the seed decides. True: always; false: never.
   * @default undefined (the seed decides)
   */
  transfers?: boolean;
  /**
   * Faults in the simulated world itself, to prove the simulator catches them. Never
   * set in real runs.
   */
  inject?: {
    /** The disk acknowledges writes before they are durable; a crash loses them. */
    lyingDisk?: boolean;
    /** The state machine answers reads from a copy of its state a few writes old. */
    staleReads?: boolean;
    /** The state machine's snapshots hold the state from before the last command applied (one entry behind their index). */
    staleSnapshots?: boolean;
  };
}

/** What one run did and found. */
export interface SimulationResult {
  /** The run's seed. */
  seed: number;
  /** Peers in the cluster. */
  nodes: number;
  /** The run's fault mix, in one line. */
  swarm: string;
  /** The features the run used (decided by its seed in the default mode). */
  features: SwarmFeatures;
  /** Events run. */
  events: number;
  /** Most events run within 100 virtual ms (a livelock shows as a storm of events). */
  peakEventsPerWindow: number;
  /** Client operations checked for linearizability (0 when the run failed before the check). */
  operations: number;
  /** Commands applied, over all peers. */
  applied: number;
  /** Virtual milliseconds the run lasted. */
  simulatedMs: number;
  /** The first violation, or null. */
  violation: Violation | null;
  /** Virtual milliseconds from healing to a working, caught-up cluster; null if it never got there. */
  livenessMs: number | null;
  /** True when the linearizability search ran out of time (inconclusive). */
  linearizabilityTimedOut: boolean;
  /** The trace before the failure (empty when the run passed). */
  trace: string[];
  /** Crashes, partitions and pauses injected. */
  faults: { crashes: number; partitions: number; pauses: number };
  /**
   * Snapshots: taken by a peer's policy, installed from a leader (restored in a running
   * peer), restored at a restart, and restores whose state the checker compared with the
   * state recorded at their index.
   */
  snapshots: { taken: number; installed: number; restoredAtBoot: number; checked: number };
  /** Membership changes (all zero with membership changes off). */
  membership: MembershipResult;
  /** The disruption oracle's windows of calm (none when the run has no pre-vote or no check-quorum), and their total length in virtual ms. */
  disruption: { windows: number; watchedMs: number };
}

/** What the membership changes of a run did. */
export interface MembershipResult extends MembershipCounts {
  /** Peers removed by a committed configuration, as the checker saw them. */
  removals: number;
  /** Leaders that committed the configuration removing them (and stepped down). */
  removedLeadersSteppedDown: number;
  /** Removed peers that did not know their removal committed, won an election, and led the configuration removing them (to commit it and step down). */
  removedLedOut: number;
  /** Snapshots installed from a leader on peers added by a change (a new peer caught up by InstallSnapshot). */
  snapshotsToNewPeers: number;
  /** New peers that caught up: applied or restored an entry while in the cluster. */
  newPeersCaughtUp: number;
  /** Voters of the final configuration. */
  finalVoters: number;
  /** Splits of the network along a joint change by the nemesis (see `jointSplit`). */
  jointSplits: number;
  /** Elections won by a peer whose configuration was joint. */
  jointElections: number;
  /** 1 when, after the heal, the clients had to stop for the last change to complete (a learner that could not catch up under load). */
  quiesced: number;
}

/** The peer timing the simulator runs with (the library's defaults). */
const PEER_TIMING = {
  electionTimeoutMs: [150, 300] as [number, number],
  heartbeatIntervalMs: 50,
  tickMs: 10,
};

/** Virtual ms after the heal after which, with the probe done, the clients stop if a membership change is still pending. */
const QUIESCE_AFTER_MS = 2000;

/** Microtask turns without any activity after which an event is taken as settled. */
const QUIET_TURNS = 12;

/**
 * A livelock (messages bouncing back and forth while virtual time barely moves) is
 * reported as a failure: more than STORM_EVENTS events in each of STORM_WINDOWS
 * consecutive windows of STORM_WINDOW_MS, or more than MAX_EVENTS in a run. Healthy runs
 * have bursts (a far-behind follower, small batches, a reordering network: up to ~220k
 * events in 100 ms over 1000 seeds), but they end within a few windows.
 */
const STORM_EVENTS = 10_000;
const STORM_WINDOW_MS = 100;
const STORM_WINDOWS = 10;
const MAX_EVENTS = 2_000_000;

/** A peer's clock: virtual time at the peer's rate; dead once its incarnation crashes. */
class PeerClock implements Clock {
  constructor(
    private readonly world: World,
    private readonly inc: Incarnation,
    private readonly offset: number,
  ) {}

  now(): number {
    return this.offset + this.world.sched.now * this.inc.node.clockRate;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    this.world.touch(this.inc.node);
    const handle = { cancelled: false };
    const inc = this.inc;
    this.world.sched.after(ms / inc.node.clockRate, inc.node, () => {
      if (!handle.cancelled && inc.alive) callback();
    });
    return handle;
  }

  clearTimeout(handle: TimerHandle): void {
    (handle as { cancelled: boolean }).cancelled = true;
  }
}

class StopRun extends Error {}

/**
 * One seeded run: a cluster of real `@raft/core` peers running `@raft/kv`, in this
 * thread, on virtual time.
 */
class Simulation implements World, OperatorHost {
  readonly sched = new Scheduler();
  readonly rng: Prng;
  readonly trace: Trace;
  activity = 0;
  readonly nodes: SimNode[] = [];
  /**
   * A peer restores a leader's snapshot before it persists it: the restore waits here,
   * by the snapshot's bytes, until the store writes them and so names the index.
   */
  private readonly restoresAwaitingWrite = new WeakMap<Uint8Array, { inc: Incarnation; hash: string }>();
  readonly snapshotIndexOf: WeakMap<Uint8Array, number> = new SnapshotIndex((data, index) => {
    const waiting = this.restoresAwaitingWrite.get(data);
    if (waiting === undefined) return;
    this.restoresAwaitingWrite.delete(data);
    if (waiting.inc.alive) this.checker.onRestore(waiting.inc, index, waiting.hash);
  });
  private readonly snapshotCounts = { taken: 0, installed: 0, restoredAtBoot: 0, toNewPeers: 0 };
  private readonly byName = new Map<string, SimNode>();
  readonly swarm: SwarmConfig;
  private readonly network: SimNetwork;
  private readonly checker: InvariantChecker;
  private readonly workload: Workload;
  private readonly disk: DiskBehaviour;
  private violation: Violation | null = null;
  private phase: 'faults' | 'healed' | 'done' = 'faults';
  private healedAt = 0;
  private livenessMs: number | null = null;
  private probeCommit = 0;
  /** When the clients were stopped to let a pending membership change complete, or null. */
  private quiescedAt: number | null = null;
  private events = 0;
  private peakWindow = 0;
  private readonly faults = { crashes: 0, partitions: 0, pauses: 0 };
  private readonly operator: Operator | null = null;
  private readonly disruption: DisruptionOracle;
  /** The joint-change nemesis's own generator (see {@link Simulation.splitAlongChange}). */
  private readonly jointRng: Prng;
  /** Splits of the network along a joint change. */
  private jointSplits = 0;
  /** Virtual time since which the network loses and holds back no message: 0 for a lossless mix, else the heal. */
  private lossFreeSince = Infinity;

  constructor(private readonly opts: SimulationOptions) {
    this.rng = new Prng(opts.seed);
    this.trace = new Trace(opts.traceLines ?? 200);
    if (opts.onTrace !== undefined) this.trace.onLine = opts.onTrace;
    const bounds: SwarmBounds = {
      faultMs: opts.faultMs ?? ([1000, 5000] as [number, number]),
      ...(opts.snapshots !== undefined ? { snapshots: opts.snapshots } : {}),
      ...(opts.membership !== undefined ? { membership: opts.membership } : {}),
      ...(opts.transfers !== undefined ? { transfers: opts.transfers } : {}),
    };
    this.swarm = chooseSwarm(this.rng, opts.nodes === undefined ? bounds : { ...bounds, nodes: opts.nodes });
    const s = this.swarm;
    // The joint-change nemesis draws from a stream of its own: a seed whose nemesis never
    // strikes runs exactly as it did before the nemesis existed.
    this.jointRng = new Prng((opts.seed ^ 0x6a09e667) >>> 0);
    if (s.membership !== null && s.features.membership)
      s.membership.jointSplit = this.jointRng.chance(0.6) ? this.jointRng.range(0.3, 1) : 0;
    for (let i = 0; i < s.nodes; i++) {
      const rate = s.clockSkew > 0 ? this.rng.range(1 - s.clockSkew, 1 + s.clockSkew) : 1;
      const node = new SimNode(`n${i + 1}`, i, new SimDisk(), rate);
      this.nodes.push(node);
      this.byName.set(node.name, node);
    }
    this.disk = { syncMs: s.syncMs, lying: opts.inject?.lyingDisk === true };
    this.checker = new InvariantChecker(this, { durability: opts.durabilityChecks ?? true });
    this.network = new SimNetwork(this, s.network, (inc, m) => {
      this.checker.onSend(inc, m);
      this.disruption.onSend(m);
    });
    this.disruption = new DisruptionOracle(
      {
        world: this,
        networkHealthy: () => this.network.healthy,
        linkUpSince: (a, b) => this.network.linkUpSince(a, b),
        lossFreeSince: () => this.lossFreeSince,
        operatorBusy: () => this.operator?.busy ?? false,
      },
      (opts.disruptionChecks ?? true) && s.peer.preVote && s.peer.checkQuorum,
    );
    this.checker.onObserve = (inc, v) => this.disruption.observe(inc, v);
    if (s.network.drop === 0 && s.network.reorder === 0) this.lossFreeSince = 0;
    this.workload = new Workload(this, s);
    if (s.membership !== null)
      this.operator = new Operator(
        this,
        s.membership,
        this.nodes.map((n) => n.name),
      );
  }

  get world(): World {
    return this;
  }

  currentPhase(): 'faults' | 'healed' | 'done' {
    return this.phase;
  }

  clientTargets(): readonly SimNode[] {
    return this.operator === null ? this.nodes : this.operator.members();
  }

  /** Peers not stopped for good: those faults may hit. */
  private live(): SimNode[] {
    return this.operator === null ? this.nodes : this.nodes.filter((n) => !n.retired);
  }

  addPeer(): SimNode {
    const s = this.swarm;
    const rate = s.clockSkew > 0 ? this.rng.range(1 - s.clockSkew, 1 + s.clockSkew) : 1;
    const node = new SimNode(`n${this.nodes.length + 1}`, this.nodes.length, new SimDisk(), rate);
    node.added = true;
    this.nodes.push(node);
    this.byName.set(node.name, node);
    this.network.addNode();
    this.trace.add(this.sched.now, `conf  new peer ${node.name} starts (empty disk)`);
    this.startIncarnation(node);
    return node;
  }

  retire(node: SimNode, how: 'stop' | 'kill', why: string): void {
    if (node.retired) return;
    node.retired = true;
    this.disruption.close();
    const inc = node.inc;
    if (node.pausedUntil !== null) this.resume(node);
    if (inc === null) {
      this.trace.add(this.sched.now, `conf  ${node.name} retired while down (${why})`);
      return;
    }
    const peer = inc.peer;
    if (how === 'stop' && peer !== null) {
      this.trace.add(this.sched.now, `conf  STOP ${inc.label} (${why})`);
      peer.stop().then(
        () => {
          this.touch(node);
          inc.alive = false;
          inc.onMessage = null;
          if (node.inc === inc) node.inc = null;
          this.trace.add(this.sched.now, `conf  ${inc.label} stopped`);
        },
        (err: unknown) =>
          this.fail(
            'stop',
            `${inc.label} failed to stop: ${err instanceof Error ? err.message : String(err)}`,
          ),
      );
      return;
    }
    inc.alive = false;
    inc.onMessage = null;
    node.inc = null;
    this.trace.add(this.sched.now, `conf  KILL ${inc.label} for good (${why})`);
    this.workload.onCrash(inc);
    this.operator?.onCrash(inc);
  }

  bootstrapped(): boolean {
    return this.checker.latestCommittedConfiguration() !== null;
  }

  detach(node: SimNode): void {
    this.network.detach(node);
    this.trace.add(this.sched.now, `conf  ${node.name} cut off from every peer until the heal`);
  }

  node(name: string): SimNode {
    const n = this.byName.get(name);
    if (n === undefined) throw new Error(`no simulated peer named ${name}`);
    return n;
  }

  touch(node: SimNode): void {
    this.activity++;
    node.dirty = true;
  }

  fail(check: string, message: string): void {
    if (this.violation !== null) return;
    this.violation = { check, message, atMs: this.sched.now };
    this.trace.add(this.sched.now, `VIOLATION ${check}: ${message}`);
  }

  // ------------------------------------------------------------------ the run

  async run(): Promise<SimulationResult> {
    const { sched, rng, swarm } = this;
    this.trace.add(0, `seed ${this.opts.seed}: ${describeSwarm(swarm)}`);
    for (const node of this.nodes) this.startIncarnation(node);
    // The operator bootstraps the cluster on one peer, and tries again on that peer until
    // the configuration is on its disk (a crash or a pause may get in the way).
    const first = rng.pick(this.nodes);
    const initial = this.nodes.map((n) => n.name);
    const bootstrap = (): void => {
      if (first.disk.lastIndex() > 0) return;
      const peer = first.peer;
      if (peer !== null) {
        this.trace.add(sched.now, `boot  setConfiguration on ${first.name}`);
        setConfiguration(peer, initial).catch(() => undefined);
      }
      sched.after(100, first, bootstrap);
    };
    sched.after(rng.range(0, 50), first, bootstrap);
    this.workload.start();
    this.operator?.start();
    this.scheduleFaults();
    const healAt = swarm.faultMs;
    sched.at(healAt, null, () => this.heal());
    const deadline = healAt + (this.opts.livenessMs ?? 10_000);

    let windowStart = 0;
    let windowEvents = 0;
    let stormy = 0;
    try {
      await this.settle();
      for (;;) {
        const ev = sched.pop();
        if (ev === undefined) break;
        if (ev.at > deadline) break;
        const owner = ev.owner;
        if (owner !== null && owner.pausedUntil !== null) {
          owner.deferred.push(ev);
          continue;
        }
        if (++this.events > MAX_EVENTS) {
          this.fail('event-storm', `more than ${MAX_EVENTS} events in one run: a livelock`);
          throw new StopRun();
        }
        if (sched.now - windowStart >= STORM_WINDOW_MS) {
          stormy = windowEvents > STORM_EVENTS ? stormy + 1 : 0;
          if (stormy >= STORM_WINDOWS) {
            this.fail(
              'event-storm',
              `more than ${STORM_EVENTS} events in each of ${STORM_WINDOWS} windows of ${STORM_WINDOW_MS} virtual ms: a livelock`,
            );
            throw new StopRun();
          }
          windowStart = sched.now;
          windowEvents = 0;
        }
        if (++windowEvents > this.peakWindow) this.peakWindow = windowEvents;
        if (owner === null) for (const node of this.nodes) node.dirty = true;
        else owner.dirty = true;
        ev.run();
        this.disruption.afterFault();
        await this.settle();
        if (this.violation === null) this.checker.afterEvent();
        if (this.violation === null) this.disruption.afterEvent();
        if (this.violation !== null) throw new StopRun();
        if (this.phase === 'healed') this.checkLiveness();
        if (this.phase === 'done') break;
      }
      if (this.phase !== 'done') {
        this.fail(
          'liveness',
          `${this.opts.livenessMs ?? 10_000} virtual ms after healing, the cluster is not working and caught up: ${this.clusterState()}`,
        );
      }
    } catch (err) {
      if (!(err instanceof StopRun)) throw err;
    }
    this.disruption.close();
    // Abandon the world: no peer may act any more.
    for (const node of this.nodes) if (node.inc !== null) node.inc.alive = false;
    this.workload.stop();

    let linTimedOut = false;
    let checked = 0;
    const history = this.workload.history((id) => this.checker.wasCommitted(id));
    if (this.violation === null) {
      checked = history.length;
      const result = checkOperations(kvModel, history, {
        timeoutMs: this.opts.linearizabilityTimeoutMs ?? 20_000,
      });
      if (result.ok === false) {
        const cx = result.counterexample;
        const key = cx.operations[0]?.input.key ?? '?';
        const stuck = cx.candidates
          .map((c) => kvModel.describeOperation?.(c.operation.input, c.operation.output) ?? '')
          .join('; ');
        this.fail(
          'linearizability',
          `the clients' history of key ${key} is not linearizable: after ${cx.longestPrefix.length} of ${cx.operations.length} operations, none of [${stuck}] can come next\n${cx.description}`,
        );
      } else if (result.ok === 'unknown') linTimedOut = true;
    }
    return {
      seed: this.opts.seed,
      nodes: swarm.nodes,
      swarm: describeSwarm(swarm),
      features: swarm.features,
      events: this.events,
      peakEventsPerWindow: this.peakWindow,
      operations: checked,
      applied: this.checker.applied,
      simulatedMs: sched.now,
      violation: this.violation,
      livenessMs: this.livenessMs,
      linearizabilityTimedOut: linTimedOut,
      trace: this.violation === null ? [] : this.trace.lines(),
      faults: this.faults,
      snapshots: {
        taken: this.snapshotCounts.taken,
        installed: this.snapshotCounts.installed,
        restoredAtBoot: this.snapshotCounts.restoredAtBoot,
        checked: this.checker.restoresChecked,
      },
      disruption: { windows: this.disruption.windows, watchedMs: this.disruption.watchedMs },
      membership: {
        ...(this.operator?.counts ?? emptyMembershipCounts()),
        removals: this.checker.removals,
        removedLeadersSteppedDown: this.checker.removedLeaders,
        removedLedOut: this.checker.removedLeadingOut,
        snapshotsToNewPeers: this.snapshotCounts.toNewPeers,
        newPeersCaughtUp: this.nodes.filter((n) => n.added && n.caughtUp).length,
        finalVoters: this.checker.latestCommittedConfiguration()?.config.members.length ?? 0,
        quiesced: this.quiescedAt === null ? 0 : 1,
        jointSplits: this.jointSplits,
        jointElections: this.checker.jointElections,
      },
    };
  }

  /**
   * Lets every promise the last event resolved run its continuations: the runtime is
   * all promises and microtasks, and no macrotask (timer, I/O) ever runs inside a run.
   */
  private async settle(): Promise<void> {
    let quiet = 0;
    let last = this.activity;
    while (quiet < QUIET_TURNS) {
      await Promise.resolve();
      if (this.activity !== last) {
        last = this.activity;
        quiet = 0;
      } else quiet++;
    }
  }

  // ------------------------------------------------------------------ peers

  private startIncarnation(node: SimNode): void {
    const inc = new Incarnation(node, ++node.incarnations);
    node.inc = inc;
    this.disruption.rejoined(node);
    const clock = new PeerClock(this, inc, this.rng.range(0, 1e6));
    const log = new SimLogStore(this, inc, node.disk, this.disk, (i, w, before, removed) =>
      this.checker.onDurable(i, w, before, removed),
    );
    startPeer(this.machineFor(inc), {
      name: node.name,
      log,
      transport: this.network.transportFor(inc),
      clock,
      random: this.rng.forkFunction(),
      register: false,
      ...PEER_TIMING,
      ...this.swarm.peer,
      ...this.snapshotOptions(),
    }).then(
      (peer) => {
        if (!inc.alive) return;
        inc.peer = peer;
        const v = inspectPeer(peer);
        inc.lastTerm = v.term;
        this.trace.add(this.sched.now, `start ${inc.label} term ${v.term} log 1..${v.lastLogIndex}`);
      },
      (err: unknown) => {
        if (inc.alive)
          this.fail(
            'start',
            `${inc.label} failed to start: ${err instanceof Error ? err.message : String(err)}`,
          );
      },
    );
  }

  private snapshotOptions(): {
    snapshotEvery: number;
    snapshotTrailingEntries?: number;
    snapshotChunkBytes?: number;
  } {
    const sn = this.swarm.snapshots;
    if (sn === null) return { snapshotEvery: 0 };
    return {
      snapshotEvery: sn.every,
      snapshotTrailingEntries: sn.trailing,
      snapshotChunkBytes: sn.chunkBytes,
    };
  }

  private machineFor(inc: Incarnation): StateMachine<KVState, KVCommand, KVQuery, KVReply> {
    const stale = this.opts.inject?.staleReads === true;
    const history: KVState[] = [];
    const staleSnapshots = this.opts.inject?.staleSnapshots === true;
    let previous: KVState | null = null;
    return {
      init: (name) => KVStore.init(name),
      snapshot: (state) => {
        if (inc.alive) {
          this.snapshotCounts.taken++;
          this.trace.add(
            this.sched.now,
            `snap  ${inc.label} takes a snapshot (last command applied: ${inc.appliedIndex})`,
          );
        }
        return KVStore.snapshot(staleSnapshots && previous !== null ? previous : state);
      },
      restore: async (data, name) => {
        const state = await KVStore.restore(data, name);
        if (inc.alive) {
          this.touch(inc.node);
          const index = this.snapshotIndexOf.get(data);
          const booting = inc.peer === null;
          if (booting) this.snapshotCounts.restoredAtBoot++;
          else {
            this.snapshotCounts.installed++;
            if (inc.node.added) this.snapshotCounts.toNewPeers++;
          }
          inc.node.caughtUp = true;
          this.trace.add(
            this.sched.now,
            `snap  ${inc.label} restores a snapshot${index === undefined ? '' : ` at ${index}`}${booting ? ' (restart)' : ' (from the leader)'}`,
          );
          if (index !== undefined) this.checker.onRestore(inc, index, stateHash(state));
          else if (!booting) this.restoresAwaitingWrite.set(data, { inc, hash: stateHash(state) });
          else this.fail('snapshot', `${inc.label} restored a snapshot no store wrote or loaded`);
        }
        return state;
      },
      handleWrite: (command, state) => {
        let index = 0;
        if (inc.alive) {
          this.touch(inc.node);
          index = this.checker.onApply(inc, command);
        }
        if (staleSnapshots) previous = new Map(state);
        if (stale) {
          history.push(new Map(state));
          if (history.length > 3) history.shift();
        }
        const out = KVStore.handleWrite(command, state);
        if (!Array.isArray(out)) throw new Error('KVStore.handleWrite is synchronous');
        if (index > 0 && inc.alive) {
          this.checker.onApplied(inc, index, JSON.stringify(out[0]), stateHash(out[1]));
          inc.node.caughtUp = true;
        }
        return out;
      },
      handleRead: (query, state) =>
        KVStore.handleRead(query, stale && history.length > 0 ? history[0]! : state),
    };
  }

  private crash(node: SimNode): void {
    const inc = node.inc;
    if (inc === null) return;
    this.disruption.close();
    inc.alive = false;
    inc.onMessage = null;
    node.inc = null;
    // Events that waited out a pause run now against the dead incarnation: timers and
    // syncs of the dead one do nothing, messages are lost, and clients and the operator
    // see a peer that is down (and try again).
    node.pausedUntil = null;
    const deferred = node.deferred;
    node.deferred = [];
    for (const ev of deferred) this.sched.at(this.sched.now, ev.owner, ev.run);
    this.faults.crashes++;
    this.operator?.onCrash(inc);
    this.trace.add(
      this.sched.now,
      `fault CRASH ${inc.label} (disk keeps ${node.disk.lastIndex()} entries, term ${node.disk.hardState.term}, vote ${String(node.disk.hardState.votedFor)})`,
    );
    this.workload.onCrash(inc);
  }

  private restart(node: SimNode): void {
    if (node.inc !== null || node.retired) return;
    this.trace.add(this.sched.now, `fault RESTART ${node.name}`);
    this.startIncarnation(node);
  }

  private pause(node: SimNode, ms: number): void {
    if (node.inc === null || node.pausedUntil !== null) return;
    const until = this.sched.now + ms;
    node.pausedUntil = until;
    this.disruption.close();
    this.faults.pauses++;
    const inc = node.inc;
    this.trace.add(this.sched.now, `fault PAUSE ${inc.label} for ${ms.toFixed(0)}ms`);
    this.sched.at(until, null, () => {
      if (node.inc === inc && node.pausedUntil === until) this.resume(node);
    });
  }

  private resume(node: SimNode): void {
    if (node.pausedUntil === null) return;
    node.pausedUntil = null;
    this.disruption.rejoined(node);
    const deferred = node.deferred;
    node.deferred = [];
    this.trace.add(this.sched.now, `fault RESUME ${node.name} (${deferred.length} events waited)`);
    for (const ev of deferred) this.sched.at(this.sched.now, ev.owner, ev.run);
  }

  // ------------------------------------------------------------------ faults

  private scheduleFaults(): void {
    const s = this.swarm;
    const r = s.reactive;
    if (r.onElected > 0 || r.onCommit > 0) {
      const strike = (inc: Incarnation, why: string): void => {
        const node = inc.node;
        this.sched.after(this.rng.range(0, r.withinMs), null, () => {
          if (this.phase !== 'faults' || node.inc !== inc) return;
          this.trace.add(this.sched.now, `fault reactive: ${inc.label} ${why}`);
          if (this.rng.chance(0.5) || s.crashes === null) {
            this.faults.partitions++;
            this.network.setPartition(`isolate ${node.name}`, (a, b) => a === node || b === node);
            this.trace.add(this.sched.now, `fault PARTITION ${this.network.partition ?? ''}`);
            const token = this.faults.partitions;
            this.sched.after(this.rng.range(50, 1500), null, () => {
              if (this.phase === 'faults' && this.faults.partitions === token) {
                this.network.healPartition();
                this.trace.add(this.sched.now, 'fault partition healed');
              }
            });
          } else {
            this.crash(node);
            this.sched.after(this.rng.range(s.crashes.downMs[0], s.crashes.downMs[1]), null, () => {
              if (this.phase === 'faults') this.restart(node);
            });
          }
        });
      };
      this.checker.onLeader = (inc) => {
        if (this.phase === 'faults' && this.rng.chance(r.onElected)) strike(inc, 'was just elected');
      };
      this.checker.onLeaderCommit = (inc) => {
        if (this.phase === 'faults' && this.rng.chance(r.onCommit))
          strike(inc, 'just advanced its commit index');
      };
    }
    const every = (mean: number, act: () => void): void => {
      const loop = (): void => {
        this.sched.after(this.rng.range(0, 2 * mean), null, () => {
          if (this.phase !== 'faults') return;
          act();
          loop();
        });
      };
      loop();
    };
    const jointSplit = s.membership?.jointSplit ?? 0;
    if (jointSplit > 0) {
      this.checker.onJoint = (inc, config) => {
        if (this.phase === 'faults' && this.jointRng.chance(jointSplit)) this.splitAlongChange(inc, config);
      };
    }
    const rejoin = s.rejoin;
    if (rejoin !== null) {
      // A follower cut off until the heal: its election timer fires alone, then it rejoins.
      this.sched.at(Math.max(0, s.faultMs - rejoin.isolateMs), null, () => {
        if (this.phase !== 'faults') return;
        const live = this.live().filter((n) => n.peer === null || inspectPeer(n.peer).role !== 'leader');
        if (live.length === 0) return;
        const x = this.rng.pick(live);
        this.network.detach(x);
        this.faults.partitions++;
        this.trace.add(this.sched.now, `fault ${x.name} cut off until the heal (it rejoins then)`);
      });
    }
    const lag = s.snapshots?.lagMs ?? null;
    if (lag !== null) {
      // One peer cut off long enough to fall behind the compaction point: the leader must
      // catch it up with InstallSnapshot (in many small chunks) once it is back.
      this.sched.at(lag[0], null, () => {
        if (this.phase !== 'faults') return;
        const live = this.live();
        const leader = this.victim(live);
        const others = live.filter((n) => n !== leader);
        const x = others.length > 0 ? this.rng.pick(others) : leader;
        this.faults.partitions++;
        this.network.setPartition(`isolate ${x.name} (lag)`, (a, b) => a === x || b === x);
        this.trace.add(this.sched.now, `fault PARTITION ${this.network.partition ?? ''}`);
        const token = this.faults.partitions;
        this.sched.at(lag[1], null, () => {
          if (this.phase === 'faults' && this.faults.partitions === token) {
            this.network.healPartition();
            this.trace.add(this.sched.now, 'fault partition healed');
          }
        });
      });
    }
    if (s.partitions !== null) {
      const p = s.partitions;
      every(p.everyMs, () => {
        this.partition(this.rng.pick(p.kinds));
        const token = this.faults.partitions;
        this.sched.after(this.rng.range(p.lastMs[0], p.lastMs[1]), null, () => {
          if (
            this.phase === 'faults' &&
            this.faults.partitions === token &&
            this.network.partition !== null
          ) {
            this.network.healPartition();
            this.trace.add(this.sched.now, 'fault partition healed');
          }
        });
      });
    }
    if (s.crashes !== null) {
      const c = s.crashes;
      every(c.everyMs, () => {
        const up = this.live().filter((n) => n.inc !== null);
        if (up.length === 0) return;
        const node = this.victim(up);
        this.crash(node);
        this.sched.after(this.rng.range(c.downMs[0], c.downMs[1]), null, () => {
          if (this.phase === 'faults') this.restart(node);
        });
      });
    }
    if (s.pauses !== null) {
      const p = s.pauses;
      every(p.everyMs, () => {
        const node = this.victim(this.live());
        this.pause(node, this.rng.range(p.pauseMs[0], p.pauseMs[1]));
      });
    }
  }

  /**
   * The joint-change nemesis. A leader has just appended the joint configuration of a
   * change (§6): split the network along it, the voters only the incoming configuration
   * has (with the leader) on one side and those only the outgoing one has on the other,
   * the voters of both spread so that, when the change allows it, each side holds a
   * majority of its own configuration (`{a,b,c}` to `{a,d,e}` puts `{a,d,e}` against
   * `{b,c}`; replacing one peer of seven allows it too). Where the incoming side holds its
   * majority without the leader, the leader is crashed or isolated a few ms later, once
   * the joint entry has reached its side; otherwise it stays (it steps down by
   * check-quorum, or keeps leading). Both sides then hold elections while the change is
   * in flight: the peers holding the joint entry need the joint majority, the others the
   * old configuration's, so a rule that counts the wrong majority (in an election or a
   * commit) lets two leaders, or two histories, exist. The split heals after 400 to 2500
   * virtual ms (unless another fault replaces it first).
   */
  private splitAlongChange(leaderInc: Incarnation, config: Configuration): void {
    const r = this.jointRng;
    const leader = leaderInc.node;
    const incoming = config.members;
    const outgoing = config.outgoing ?? [];
    const both = incoming.filter((n) => outgoing.includes(n) && n !== leader.name);
    const majorityOf = (set: readonly string[], side: Set<string>, but?: string): boolean =>
      set.filter((n) => side.has(n) && n !== but).length * 2 > set.length;
    // Every way to spread the voters of both configurations: those that give each side a
    // majority of its configuration without the leader, or else with it.
    const without: Set<string>[] = [];
    const withLeader: Set<string>[] = [];
    for (let mask = 0; mask < 1 << both.length; mask++) {
      const side = new Set([leader.name, ...incoming.filter((n) => !outgoing.includes(n))]);
      both.forEach((n, i) => {
        if ((mask & (1 << i)) !== 0) side.add(n);
      });
      const rest = new Set(outgoing.filter((n) => !side.has(n)));
      if (!majorityOf(outgoing, rest)) continue;
      if (majorityOf(incoming, side, leader.name)) without.push(side);
      else if (majorityOf(incoming, side)) withLeader.push(side);
    }
    let newSide: Set<string>;
    let strikeLeader = true;
    let kind = 'each side a majority of its configuration';
    if (without.length > 0) newSide = r.pick(without);
    else if (withLeader.length > 0) {
      newSide = r.pick(withLeader);
      strikeLeader = false;
      kind = 'each side a majority of its configuration, with the leader';
    } else {
      newSide = new Set([leader.name, ...incoming.filter((n) => !outgoing.includes(n))]);
      for (const n of both) if (r.chance(0.5)) newSide.add(n);
      kind = 'the majorities overlap';
    }
    // Peers in neither voter set (learners, removed peers still running) land anywhere.
    for (const node of this.live())
      if (!incoming.includes(node.name) && !outgoing.includes(node.name) && r.chance(0.5))
        newSide.add(node.name);
    // Mostly at once, so that the joint entry the leader just sent is lost on the links cut
    // (a peer of the outgoing side that holds it needs the joint majority, and its side
    // could elect nobody), sometimes a little later.
    const delay = r.chance(0.75) ? 0 : r.range(0, 3);
    const names = [...newSide].sort().join(',');
    const heal = (token: number): void => {
      this.sched.after(r.range(400, 2500), null, () => {
        if (this.phase === 'faults' && this.faults.partitions === token) {
          this.network.healPartition();
          this.trace.add(this.sched.now, 'fault partition healed');
        }
      });
    };
    this.sched.after(delay, null, () => {
      if (this.phase !== 'faults' || leader.inc !== leaderInc) return;
      this.jointSplits++;
      this.faults.partitions++;
      this.trace.add(
        this.sched.now,
        `fault joint: ${leaderInc.label} entered ${describeConfiguration(config)}; split along it (${kind})`,
      );
      this.network.setPartition(
        `split along the change {${names}} | rest`,
        (a, b) => newSide.has(a.name) !== newSide.has(b.name),
      );
      this.trace.add(this.sched.now, `fault PARTITION ${this.network.partition ?? ''}`);
      const token = this.faults.partitions;
      if (!strikeLeader) {
        heal(token);
        return;
      }
      this.sched.after(r.range(1, 60), null, () => {
        if (this.phase !== 'faults' || this.faults.partitions !== token || leader.inc !== leaderInc) return;
        const crashes = this.swarm.crashes;
        if (crashes !== null && r.chance(0.5)) {
          this.crash(leader);
          this.sched.after(r.range(crashes.downMs[0], crashes.downMs[1]), null, () => {
            if (this.phase === 'faults') this.restart(leader);
          });
        } else {
          this.faults.partitions++;
          this.network.setPartition(
            `split along the change {${names}} | rest, ${leader.name} isolated`,
            (a, b) => a === leader || b === leader || newSide.has(a.name) !== newSide.has(b.name),
          );
          this.trace.add(this.sched.now, `fault PARTITION ${this.network.partition ?? ''}`);
        }
        heal(this.faults.partitions);
      });
    });
  }

  /** The peer a fault hits: the leader (as a nemesis watching the cluster sees it) at the swarm's rate, else one at random. */
  private victim(among: readonly SimNode[]): SimNode {
    const random = this.rng.pick(among);
    if (!this.rng.chance(this.swarm.targetLeader)) return random;
    let best: SimNode | null = null;
    let bestTerm = -1;
    for (const node of among) {
      const peer = node.peer;
      if (peer === null) continue;
      const v = inspectPeer(peer);
      if (v.role === 'leader' && v.term > bestTerm) {
        best = node;
        bestTerm = v.term;
      }
    }
    return best ?? random;
  }

  private partition(kind: PartitionKind): void {
    const { rng } = this;
    const nodes = this.live();
    const n = nodes.length;
    this.faults.partitions++;
    const names = (set: Set<SimNode>): string => [...set].map((x) => x.name).join(',');
    switch (kind) {
      case 'isolate': {
        const x = this.victim(nodes);
        this.network.setPartition(`isolate ${x.name}`, (a, b) => a === x || b === x);
        break;
      }
      case 'split': {
        const size = rng.int(1, Math.floor((n - 1) / 2));
        const x = this.victim(nodes);
        const minority = new Set([x, ...rng.shuffle(nodes.filter((y) => y !== x)).slice(0, size - 1)]);
        this.network.setPartition(
          `split {${names(minority)}} | rest`,
          (a, b) => minority.has(a) !== minority.has(b),
        );
        break;
      }
      case 'asymmetric': {
        const x = this.victim(nodes);
        const deaf = rng.chance(0.5);
        this.network.setPartition(deaf ? `${x.name} cannot receive` : `${x.name} cannot send`, (a, b) =>
          deaf ? b === x : a === x,
        );
        break;
      }
      case 'ring': {
        // Peers on a ring, each linked to its nearest ones so that it sees a majority, a
        // different one each. (With three peers: one link cut, the middle peer sees all.)
        const order = rng.shuffle(nodes);
        if (n === 3) {
          const [a, b] = order as [SimNode, SimNode];
          this.network.setPartition(
            `ring: ${a.name}-/-${b.name}`,
            (x, y) => (x === a && y === b) || (x === b && y === a),
          );
          break;
        }
        const pos = new Map(order.map((x, i) => [x, i]));
        const reach = Math.ceil(Math.floor(n / 2) / 2);
        this.network.setPartition(`ring ${order.map((x) => x.name).join('-')} reach ${reach}`, (a, b) => {
          const d = Math.abs(pos.get(a)! - pos.get(b)!);
          return Math.min(d, n - d) > reach;
        });
        break;
      }
      case 'bridge': {
        const order = rng.shuffle(nodes);
        const bridge = order[0]!;
        const left = new Set(order.slice(1, 1 + Math.floor((n - 1) / 2)));
        this.network.setPartition(
          `bridge ${bridge.name} between {${names(left)}} and the rest`,
          (a, b) => a !== bridge && b !== bridge && left.has(a) !== left.has(b),
        );
        break;
      }
    }
    this.trace.add(this.sched.now, `fault PARTITION ${this.network.partition ?? ''}`);
  }

  private heal(): void {
    this.phase = 'healed';
    this.healedAt = this.sched.now;
    this.network.heal();
    this.network.behaviour = CALM_NETWORK;
    this.lossFreeSince = Math.min(this.lossFreeSince, this.sched.now);
    this.trace.add(this.sched.now, 'heal  every fault healed; liveness clock starts');
    for (const node of this.nodes) {
      if (node.inc === null) this.restart(node);
      else if (node.pausedUntil !== null) this.resume(node);
    }
    this.operator?.onHeal();
    this.workload.startProbe();
  }

  // ------------------------------------------------------------------ liveness

  private checkLiveness(): void {
    const probe = this.workload.probe;
    if (probe === null || probe.readAt === null) return;
    if (this.probeCommit === 0) this.probeCommit = Math.max(1, this.checker.commitIndex);
    let members: readonly SimNode[] = this.nodes;
    const op = this.operator;
    if (op !== null) {
      // The change asked for last is done: it is the latest committed configuration, and a
      // member leads it.
      if (op.busy || !op.settled) {
        // A learner that receives entries no faster than the clients commit new ones never
        // catches up: once the probe is done, the clients stop to let the change complete
        // (as an operator would), and the run counts it.
        if (
          this.quiescedAt === null &&
          probe.readAt !== null &&
          this.sched.now - this.healedAt > QUIESCE_AFTER_MS
        ) {
          this.quiescedAt = this.sched.now;
          this.workload.quiesce();
          this.trace.add(this.sched.now, `heal  the change is still pending: the clients stop`);
        }
        return;
      }
      const latest = this.checker.latestCommittedConfiguration();
      if (latest === null || !sameConfiguration(latest.config, { members: op.intended })) return;
      members = op.members();
      if (members.length !== op.intended.length) return;
      if (!members.some((n) => n.peer !== null && inspectPeer(n.peer).role === 'leader')) return;
    }
    // Every member up, and caught up: it applied everything committed when the probe's
    // read returned (clients keep writing, so "equal commit indexes" may never hold).
    for (const node of members) {
      const peer = node.peer;
      if (peer === null) return;
      if (inspectPeer(peer).lastApplied < this.probeCommit) return;
    }
    this.livenessMs = this.sched.now - this.healedAt;
    this.phase = 'done';
    this.trace.add(this.sched.now, `done  healed cluster caught up after ${this.livenessMs.toFixed(0)}ms`);
  }

  private clusterState(): string {
    const probe = this.workload.probe;
    const parts = this.nodes.map((node) => {
      const peer = node.peer;
      if (peer === null) return `${node.name}: ${node.retired ? 'retired' : 'down'}`;
      const v = inspectPeer(peer);
      const conf = this.operator === null ? '' : ` config ${describeConfiguration(v.configuration)}`;
      return `${node.name}${node.retired ? ' (retiring)' : ''}: ${v.role} t${v.term} log ${v.lastLogIndex} commit ${v.commitIndex} applied ${v.lastApplied}${conf}`;
    });
    const p =
      probe === null
        ? 'no probe'
        : probe.wroteAt === null
          ? 'probe write not done'
          : probe.readAt === null
            ? 'probe read not done'
            : 'probe done';
    const op = this.operator;
    const m =
      op === null
        ? ''
        : `; operator wants [${op.intended.join(',')}] (${op.busy ? 'change in progress' : op.settled ? 'done' : 'not confirmed'}), latest committed ${describeConfiguration(this.checker.latestCommittedConfiguration()?.config ?? null)}`;
    return `${parts.join('; ')}; ${p}${m}`;
  }
}

/** A deterministic rendering of a KV state, whatever order its keys were inserted in. */
/** The index of each snapshot's bytes, telling `onSet` of each it learns. */
class SnapshotIndex extends WeakMap<Uint8Array, number> {
  constructor(private readonly onSet: (data: Uint8Array, index: number) => void) {
    super();
  }
  override set(data: Uint8Array, index: number): this {
    super.set(data, index);
    this.onSet(data, index);
    return this;
  }
}

function stateHash(state: KVState): string {
  return JSON.stringify([...state].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)));
}

/** Runs one seeded simulation and checks it. */
export async function runSimulation(options: SimulationOptions): Promise<SimulationResult> {
  return new Simulation(options).run();
}
