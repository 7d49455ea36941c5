import type { NetworkBehaviour } from './network.js';
import type { Prng } from './prng.js';

/** The shapes a partition takes. */
export type PartitionKind =
  /** One peer cut off from all others. */
  | 'isolate'
  /** A clean split: a minority on one side, the majority on the other. */
  | 'split'
  /** One-way links: a peer that can send but not receive, or receive but not send. */
  | 'asymmetric'
  /** Each peer sees a different majority: peers on a ring see only their neighbours. */
  | 'ring'
  /** Two halves that cannot talk, and one peer that talks to both. */
  | 'bridge';

/** The partition kinds, for {@link SwarmConfig.partitions}. */
export const PARTITION_KINDS: readonly PartitionKind[] = ['isolate', 'split', 'asymmetric', 'ring', 'bridge'];

/**
 * One run's fault mix (swarm testing: each seed turns each kind of fault on or off, at
 * its own rates, so that some runs stress one mechanism hard instead of every run
 * stressing all of them a little).
 */
export interface SwarmConfig {
  /** Peers in the cluster. */
  nodes: number;
  /** Virtual milliseconds of faults before everything heals. */
  faultMs: number;
  /** The network while faults are on. */
  network: NetworkBehaviour;
  /** Partitions: mean milliseconds between two, how long each lasts, which kinds. Null: none. */
  partitions: { everyMs: number; lastMs: [number, number]; kinds: PartitionKind[] } | null;
  /** Crashes: mean milliseconds between two, how long a peer stays down. Null: none. */
  crashes: { everyMs: number; downMs: [number, number] } | null;
  /** Pauses (a stopped process): mean milliseconds between two, their length. Null: none. */
  pauses: { everyMs: number; pauseMs: [number, number] } | null;
  /**
   * Probability that a fault picks the current leader as its victim (crash, pause,
   * isolation, the minority side of a split) rather than a peer at random. Leader churn
   * right after appends is what exposes commit-rule bugs (Raft's Figure 8).
   */
  targetLeader: number;
  /**
   * Reactive faults: the probability that a new leader, or a leader that just advanced
   * its commit index, is crashed or cut off a few milliseconds later. This hits the
   * narrow windows where a leader dies between counting a quorum and spreading what it
   * learned (Raft's Figure 8 needs exactly that). Zero when off.
   */
  reactive: { onElected: number; onCommit: number; withinMs: number };
  /** Each peer's clock runs at a rate in [1 - skew, 1 + skew]. */
  clockSkew: number;
  /** Range of a durable write's delay. */
  syncMs: [number, number];
  /**
   * The peers' tuning, drawn too: small batches and windows split what a leader sends
   * into many messages, which opens windows that the defaults keep shut (a follower
   * acknowledging an old entry without the new leader's no-op, for one).
   */
  peer: { maxBatchEntries: number; maxInflight: number; preVote: boolean; checkQuorum: boolean };
  /** Concurrent clients. */
  clients: number;
  /** Keys the clients use. */
  keys: number;
  /** Pause of a client between two operations. */
  thinkMs: [number, number];
  /** Timeout of one call. */
  callTimeoutMs: number;
  /** Share of reads among operations; the rest are set, cas and delete. */
  readShare: number;
  /**
   * Snapshots and log compaction (null: off, `snapshotEvery` 0): how often peers take a
   * snapshot, the entries kept behind it, the chunk size of InstallSnapshot, and a lag
   * fault that cuts one peer off long enough to fall behind the leader's compaction point.
   */
  snapshots: { every: number; trailing: number; chunkBytes: number; lagMs: [number, number] | null } | null;
  /** Membership changes during the fault phase (null: off). See {@link MembershipConfig}. */
  membership: MembershipConfig | null;
  /**
   * A rejoining peer (null: none): a follower cut off from every peer for the last
   * `isolateMs` of the fault phase, long enough for its election timer to fire alone,
   * that rejoins at the heal. It must not unseat the leader (the disruption oracle
   * watches). Drawn in the default mode only.
   */
  rejoin: { isolateMs: number } | null;
  /**
   * The features this run uses (swarm over features: in the default mode each seed turns
   * each one on or off from its own randomness), as they end up in the configuration.
   */
  features: SwarmFeatures;
}

/** The protocol features a run exercises, beyond plain replication and elections. */
export interface SwarmFeatures {
  /** Snapshots, log compaction and InstallSnapshot (a small `snapshotEvery`). */
  snapshots: boolean;
  /** Membership changes: add, remove and replace peers (`setConfiguration`). */
  membership: boolean;
  /** Leadership transfers (`transferLeadership`). */
  transfers: boolean;
}

/** The features' names, in the order reports list them. */
export const FEATURE_NAMES: readonly (keyof SwarmFeatures)[] = ['snapshots', 'membership', 'transfers'];

/** Every combination of features, as {@link describeFeatures} names them (`none` first). */
export function featureCombinations(): string[] {
  const out: string[] = [];
  for (let mask = 0; mask < 1 << FEATURE_NAMES.length; mask++) {
    const f = { snapshots: false, membership: false, transfers: false };
    FEATURE_NAMES.forEach((k, i) => (f[k] = (mask & (1 << i)) !== 0));
    out.push(describeFeatures(f));
  }
  return out;
}

/** `snapshots+membership`, or `none`: the features of a run, for its report line. */
export function describeFeatures(f: SwarmFeatures): string {
  const on = FEATURE_NAMES.filter((k) => f[k]);
  return on.length === 0 ? 'none' : on.join('+');
}

/**
 * How a run's operator changes the membership (`setConfiguration`, `transferLeadership`)
 * while faults go on: one change at a time, the next one a random pause after the last
 * one completed or was given up.
 */
export interface MembershipConfig {
  /** Mean virtual ms between one change's end and the next one's start. */
  everyMs: number;
  /** Relative weights of the kinds of change (zero: never). */
  weights: { add: number; remove: number; replace: number; transfer: number };
  /** Probability that a removal or replacement removes the current leader on purpose. */
  aimLeader: number;
  /**
   * Probability that an add, a removal or a replacement moves two or three peers at once
   * (where joint consensus matters: two majorities of a one-step switch may not overlap).
   */
  multi: number;
  /**
   * Probability that a replacement first kills the peer it replaces for good (a wiped
   * disk: the operator replaces a dead peer by a fresh one), when the last change is
   * known complete and at least three voters remain.
   */
  wipe: number;
  /** Probability that a removed peer keeps running after its removal committed (else it stops). */
  keepRemoved: number;
  /** Probability that a removed peer kept running is cut off from everyone until the heal. */
  detachRemoved: number;
  /** Virtual ms after which the operator gives up a change that does not complete (it may still complete) and moves on. */
  giveUpMs: number;
  /** Timeout of one `setConfiguration` or `transferLeadership` call. */
  callTimeoutMs: number;
  /**
   * Probability that, when a leader enters the joint configuration of a change, the
   * nemesis splits the network along the change (the outgoing voters on one side, the
   * incoming ones on the other) and then crashes or isolates the leader, so that both
   * sides hold elections while the change is in flight (see `Simulation.splitAlongChange`).
   * Drawn by the simulation from a stream of its own (0 until then), so that every other
   * draw of a seed stays what it was.
   */
  jointSplit: number;
}

/** Options that bound what {@link chooseSwarm} picks. */
export interface SwarmBounds {
  /** Peers; when absent, 3, 5 or 7 at random. */
  nodes?: number;
  /** Range of the fault phase's length in virtual milliseconds. */
  faultMs: [number, number];
  /**
   * Snapshots. Unset (the default, swarm mode): the seed turns them on or off (even odds).
   * True: on in most seeds (80%). False: never, and the seed draws exactly what it drew
   * before snapshots existed.
   */
  snapshots?: boolean;
  /**
   * Membership changes (add, remove, replace). Unset (swarm mode): the seed decides (even
   * odds). True: on in most seeds (85%, with transfers in 60% of those). False: never (no
   * transfers either unless `transfers` is true), and the seed draws what it drew before
   * membership changes existed.
   */
  membership?: boolean;
  /**
   * Leadership transfers, with or without membership changes. Unset: the seed decides
   * (even odds in swarm mode; as `membership: true` draws it otherwise). True: always,
   * false: never.
   */
  transfers?: boolean;
}

/** Draws a run's fault mix from its generator. */
export function chooseSwarm(rng: Prng, bounds: SwarmBounds): SwarmConfig {
  // Drawn even when fixed, so that `--nodes` given or not, a seed draws the same numbers after.
  const drawn = rng.pick([3, 5, 7]);
  const nodes = bounds.nodes ?? drawn;
  const on = (): boolean => rng.chance(0.5);
  const lat0 = rng.range(0.2, 3);
  const network: NetworkBehaviour = {
    drop: on() ? rng.range(0, 0.25) : 0,
    duplicate: on() ? rng.range(0, 0.15) : 0,
    latencyMs: on() ? [lat0, lat0 + rng.range(0, 20)] : [lat0, lat0],
    reorder: on() ? rng.range(0, 0.2) : 0,
    reorderMs: rng.range(5, 300),
  };
  const kinds = PARTITION_KINDS.filter(() => rng.chance(0.6));
  const partitions =
    on() && kinds.length > 0
      ? { everyMs: rng.range(200, 2500), lastMs: [50, rng.range(200, 3000)] as [number, number], kinds }
      : null;
  const crashes = on()
    ? { everyMs: rng.range(200, 3000), downMs: [5, rng.range(50, 2500)] as [number, number] }
    : null;
  const pauses = on()
    ? { everyMs: rng.range(300, 3000), pauseMs: [10, rng.range(50, 1500)] as [number, number] }
    : null;
  const targetLeader = on() ? rng.range(0.3, 1) : 0;
  const reactive = on()
    ? { onElected: rng.range(0, 0.9), onCommit: rng.range(0, 0.4), withinMs: rng.range(0.1, 15) }
    : { onElected: 0, onCommit: 0, withinMs: 0 };
  const clockSkew = on() ? rng.range(0, 0.2) : 0;
  const syncHi = on() ? rng.range(1, 30) : rng.range(0.05, 2);
  const peer = {
    maxBatchEntries: rng.pick([1, 1, 2, 3, 8, 1024]),
    maxInflight: rng.pick([1, 2, 4, 64]),
    preVote: rng.chance(0.75),
    checkQuorum: rng.chance(0.75),
  };
  const faultMs = rng.range(bounds.faultMs[0], bounds.faultMs[1]);
  const clients = rng.int(2, 5);
  const keys = rng.int(1, 3);
  const thinkMs: [number, number] = [0, rng.range(1, 80)];
  const callTimeoutMs = rng.pick([300, 600, 1000]);
  const readShare = rng.range(0.2, 0.6);
  // Swarm over features: unset, each seed decides from its own randomness; set, the old
  // draws (so that `--snapshots` and `--membership` replay the seeds they always did).
  const swarmSnapshots = bounds.snapshots === undefined;
  const swarmMembership = bounds.membership === undefined;
  const useSnapshots = swarmSnapshots ? rng.chance(0.5) : bounds.snapshots === true && rng.chance(0.8);
  let snapshots: SwarmConfig['snapshots'] = null;
  if (useSnapshots) {
    const lagAt = rng.range(0, faultMs * 0.5);
    snapshots = {
      every: rng.pick([5, 8, 12, 20, 40, 80, 200]),
      trailing: rng.pick([0, 0, 1, 3, 10, 50]),
      chunkBytes: rng.pick([16, 32, 64, 256, 1024, 4096]),
      lagMs: rng.chance(0.7) ? [lagAt, lagAt + rng.range(300, Math.max(400, faultMs - lagAt))] : null,
    };
  }
  let membership: MembershipConfig | null = null;
  const changes = swarmMembership ? rng.chance(0.5) : bounds.membership === true && rng.chance(0.85);
  const transfersDrawn = swarmMembership && bounds.transfers === undefined ? rng.chance(0.5) : false;
  if (changes || transfersDrawn || bounds.transfers === true) {
    const weight = (): number => (rng.chance(0.15) ? 0 : rng.range(0.2, 1));
    membership = {
      everyMs: rng.range(50, 700),
      weights: {
        add: weight(),
        remove: weight(),
        replace: weight(),
        transfer: rng.chance(0.4) ? 0 : rng.range(0.1, 0.6),
      },
      aimLeader: rng.range(0.2, 0.8),
      multi: rng.chance(0.5) ? rng.range(0.2, 0.7) : 0,
      wipe: rng.chance(0.5) ? rng.range(0.2, 1) : 0,
      keepRemoved: rng.range(0, 1),
      detachRemoved: rng.range(0, 1),
      giveUpMs: rng.range(400, 3000),
      callTimeoutMs: rng.pick([300, 600, 1000, 2000]),
      jointSplit: 0,
    };
    const w = membership.weights;
    if (w.add + w.remove + w.replace === 0) w.replace = 1;
    if (!changes) {
      // Transfers only: the membership stays as it is.
      w.add = 0;
      w.remove = 0;
      w.replace = 0;
    }
    const wantTransfers = bounds.transfers ?? (swarmMembership ? transfersDrawn : undefined);
    if (wantTransfers === false) w.transfer = 0;
    if (wantTransfers === true && w.transfer === 0) w.transfer = 0.3;
    if (w.add + w.remove + w.replace + w.transfer === 0) membership = null;
  }
  const rejoin =
    swarmSnapshots && swarmMembership && rng.chance(0.5) ? { isolateMs: rng.range(300, 1500) } : null;
  const features: SwarmFeatures = {
    snapshots: snapshots !== null,
    membership:
      membership !== null &&
      membership.weights.add + membership.weights.remove + membership.weights.replace > 0,
    transfers: membership !== null && membership.weights.transfer > 0,
  };
  return {
    nodes,
    faultMs,
    network,
    partitions,
    crashes,
    pauses,
    targetLeader,
    reactive,
    clockSkew,
    syncMs: [0.01, syncHi],
    peer,
    clients,
    keys,
    thinkMs,
    callTimeoutMs,
    readShare,
    snapshots,
    membership,
    rejoin,
    features,
  };
}

/** One line describing a fault mix, for reports. */
export function describeSwarm(s: SwarmConfig): string {
  const parts: string[] = [
    `${s.nodes} peers`,
    `features ${describeFeatures(s.features)}`,
    `faults ${Math.round(s.faultMs)}ms`,
  ];
  const n = s.network;
  if (n.drop > 0) parts.push(`drop ${(n.drop * 100).toFixed(0)}%`);
  if (n.duplicate > 0) parts.push(`dup ${(n.duplicate * 100).toFixed(0)}%`);
  if (n.latencyMs[1] > n.latencyMs[0])
    parts.push(`latency ${n.latencyMs[0].toFixed(1)}-${n.latencyMs[1].toFixed(1)}ms`);
  if (n.reorder > 0) parts.push(`reorder ${(n.reorder * 100).toFixed(0)}% up to ${n.reorderMs.toFixed(0)}ms`);
  if (s.partitions !== null)
    parts.push(`partitions every ~${s.partitions.everyMs.toFixed(0)}ms (${s.partitions.kinds.join('/')})`);
  if (s.crashes !== null) parts.push(`crashes every ~${s.crashes.everyMs.toFixed(0)}ms`);
  if (s.pauses !== null) parts.push(`pauses every ~${s.pauses.everyMs.toFixed(0)}ms`);
  if (s.targetLeader > 0) parts.push(`faults hit the leader ${(s.targetLeader * 100).toFixed(0)}%`);
  if (s.reactive.onElected > 0 || s.reactive.onCommit > 0) {
    parts.push(
      `reactive faults (new leader ${(s.reactive.onElected * 100).toFixed(0)}%, leader commit ${(s.reactive.onCommit * 100).toFixed(0)}%, within ${s.reactive.withinMs.toFixed(1)}ms)`,
    );
  }
  if (s.clockSkew > 0) parts.push(`clock skew ±${(s.clockSkew * 100).toFixed(0)}%`);
  parts.push(
    `batch ${s.peer.maxBatchEntries}, window ${s.peer.maxInflight}${s.peer.preVote ? '' : ', no pre-vote'}${s.peer.checkQuorum ? '' : ', no check-quorum'}`,
  );
  const sn = s.snapshots;
  if (sn !== null) {
    parts.push(`snapshots every ${sn.every} (trailing ${sn.trailing}, chunks of ${sn.chunkBytes}B)`);
    if (sn.lagMs !== null) parts.push(`lag ${sn.lagMs[0].toFixed(0)}-${sn.lagMs[1].toFixed(0)}ms`);
  }
  const m = s.membership;
  if (m !== null) {
    const w = m.weights;
    const kinds = (['add', 'remove', 'replace', 'transfer'] as const)
      .filter((k) => w[k] > 0)
      .map((k) => `${k} ${w[k].toFixed(1)}`);
    parts.push(
      `membership changes every ~${m.everyMs.toFixed(0)}ms (${kinds.join('/')}, aim at the leader ${(m.aimLeader * 100).toFixed(0)}%` +
        `${m.multi > 0 ? `, several peers at once ${(m.multi * 100).toFixed(0)}%` : ''}` +
        `${m.wipe > 0 ? `, wiped disks ${(m.wipe * 100).toFixed(0)}%` : ''}, removed peers kept ${(m.keepRemoved * 100).toFixed(0)}%` +
        ` (cut off ${(m.detachRemoved * 100).toFixed(0)}%), give up after ${m.giveUpMs.toFixed(0)}ms, calls ${m.callTimeoutMs}ms` +
        `${m.jointSplit > 0 ? `, split along joint changes ${(m.jointSplit * 100).toFixed(0)}%` : ''})`,
    );
  }
  if (s.rejoin !== null)
    parts.push(`a follower cut off for the last ${s.rejoin.isolateMs.toFixed(0)}ms rejoins at the heal`);
  parts.push(`sync ≤${s.syncMs[1].toFixed(1)}ms`, `${s.clients} clients`, `${s.keys} key(s)`);
  return parts.join(', ');
}
