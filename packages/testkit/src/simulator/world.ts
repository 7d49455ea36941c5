import type { Configuration, Peer, RaftMessage } from '@raft/core';
import type { KVCommand, KVQuery, KVReply } from '@raft/kv';
import type { Prng } from './prng.js';
import type { EventOwner, Scheduler, SimEvent } from './scheduler.js';
import type { SimDisk } from './disk.js';
import type { Trace } from './trace.js';

/** The key-value peer the simulator runs. */
export type KVPeer = Peer<KVCommand, KVQuery, KVReply>;

/** A safety or liveness property that a run broke. */
export interface Violation {
  /** Which check failed, such as `election-safety` or `linearizability`. */
  check: string;
  /** What happened, with the peers, terms and indexes involved. */
  message: string;
  /** Virtual time of the event after which the check failed, in milliseconds. */
  atMs: number;
}

/** What every part of a run shares. */
export interface World {
  readonly sched: Scheduler;
  readonly rng: Prng;
  readonly trace: Trace;
  /** Bumped by every hook the runtime calls; the microtask flush runs until it stays still. */
  activity: number;
  /** Records activity on a peer: bumps `activity` and marks the peer for inspection after the event. */
  touch(node: SimNode): void;
  /** Reports a broken property; the run stops after the current event. */
  fail(check: string, message: string): void;
  /** Every peer ever started, in the order they were created (membership changes add more). */
  readonly nodes: readonly SimNode[];
  node(name: string): SimNode;
  /** The peers the clients call: the members the operator last asked for (every peer without membership changes). */
  clientTargets(): readonly SimNode[];
  /** The index of each snapshot's bytes the stores saw (written or loaded), to know what a restore restores. */
  readonly snapshotIndexOf: WeakMap<Uint8Array, number>;
}

/** A peer name and what outlives its crashes: its disk and its clock's rate. */
export class SimNode implements EventOwner {
  /** The running incarnation, or null while crashed. */
  inc: Incarnation | null = null;
  incarnations = 0;
  /** Set while paused: events on this peer wait here until it resumes. */
  pausedUntil: number | null = null;
  deferred: SimEvent[] = [];
  /** Something ran on this peer during the current event: inspect it afterwards. */
  dirty = true;
  /** Stopped for good (removed from the cluster, or its disk wiped): never restarted. */
  retired = false;
  /** Started by a membership change, rather than with the cluster. */
  added = false;
  /** Applied a committed command, or restored a snapshot, at least once. */
  caughtUp = false;

  constructor(
    readonly name: string,
    readonly index: number,
    readonly disk: SimDisk,
    /** How fast this peer's clock runs against virtual time (timer skew). */
    readonly clockRate: number,
  ) {}

  /** The running incarnation once it has booted, else null. */
  get peer(): KVPeer | null {
    return this.inc?.peer ?? null;
  }
}

/**
 * One life of a peer, from start to crash. A crash abandons it: its clock stops firing,
 * its transport stops sending and delivering, its unsynced writes are lost, and its
 * promises never settle.
 */
export class Incarnation {
  alive = true;
  peer: KVPeer | null = null;
  onMessage: ((m: RaftMessage) => void) | null = null;

  // ---- the checker's memory of this incarnation
  /** Highest term seen; terms never decrease. */
  lastTerm = 0;
  /** Highest commit index already compared against the committed log. */
  commitSeen = 0;
  /** Leadership being tracked: its term, and the last entry the leader held. */
  leadTerm = 0;
  leadLast = 0;
  leadLastEntry: unknown = undefined;
  /** The log as last seen: entry objects and the chain hash of each prefix. */
  logEntries: unknown[] = [];
  logChain: number[] = [];
  /** The index before the first entry of `logEntries` (the log's compaction point when last seen). */
  logBase = 0;
  /** Index of the last command applied, as the checker counts them. */
  appliedIndex = 0;
  /** Role last seen, for the trace. */
  lastRole = 'follower';
  lastLeader: string | null = null;
  /** The configuration as last seen (the one before it, during the current observation). */
  config: Configuration | null = null;
  /** The configuration checked against the log and the committed configurations, last time. */
  configChecked: Configuration | null = null;
  configCheckedBase = -1;

  constructor(
    readonly node: SimNode,
    /** 1 for the first life, then 2, 3, ... */
    readonly number: number,
  ) {}

  get label(): string {
    return `${this.node.name}#${this.number}`;
  }
}
