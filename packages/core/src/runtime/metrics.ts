/**
 * Raw figures a running peer keeps for operators: counters, fixed-bucket histograms,
 * per-follower replication figures and a short timeline of notable events. No metrics
 * library here: an application turns these into Prometheus metrics (see
 * `apps/kv-cluster`), a dashboard, or logs. Everything is cheap to record (a few
 * additions per call) and nothing here is on the protocol's side of the runtime.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { Raft, SoftState } from '../protocol/raft.js';
import type { PeerStatus } from './types.js';
import type { Clock, Configuration, LogEntry, PeerId } from '../types.js';

/** Upper bounds, in seconds, of the latency histograms (proposals, reads, log-store writes, snapshots). */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]);

/** Upper bounds of the histogram of entries per log-store write. */
export const BATCH_BUCKETS: readonly number[] = Object.freeze([
  0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024,
]);

/**
 * A histogram with fixed bucket bounds, in the Prometheus shape: `counts[i]` is the number
 * of observations less than or equal to `bounds[i]` (cumulative); `count` counts them all
 * (the `+Inf` bucket) and `sum` adds them up.
 */
export interface HistogramFigures {
  readonly bounds: readonly number[];
  readonly counts: readonly number[];
  readonly count: number;
  readonly sum: number;
}

/** Calls of one kind (`write` or `read`) since the peer started. */
export interface CallFigures {
  /** Calls made, whatever their outcome. */
  total: number;
  /** Calls that rejected (not leader, timeout, stopped, state machine error...). */
  failed: number;
  /** Seconds from the call to its outcome, successful calls only. */
  latencySeconds: HistogramFigures;
}

/** What the leader knows of one follower (or learner); empty on other roles. */
export interface FollowerFigures {
  peer: PeerId;
  /** True for a learner (catching up, not counted in majorities). */
  learner: boolean;
  /** The highest index known replicated on the follower. */
  matchIndex: number;
  /** The leader's last log index minus `matchIndex`. */
  lagEntries: number;
  /** Milliseconds since this peer last received an answer to AppendEntries or InstallSnapshot from it, or null if never. */
  msSinceAck: number | null;
  /** `probe`, `replicate` or `snapshot` (see the protocol's Progress). */
  state: 'probe' | 'replicate' | 'snapshot';
  /** Unacknowledged AppendEntries in flight, at most `maxInflight`. */
  inflight: number;
  maxInflight: number;
}

/** Event-loop delay of this process over the last complete window (perf_hooks), in milliseconds. */
export interface EventLoopDelay {
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** The window the figures cover, in milliseconds. */
  windowMs: number;
}

/** A notable event in the peer's life, for timelines. `at` is on the peer's clock (see {@link RaftMetrics.now}). */
export type RaftEvent =
  | { kind: 'election'; at: number; term: number }
  | { kind: 'leader'; at: number; term: number; leader: PeerId }
  | { kind: 'transfer'; at: number; term: number; from: PeerId; to: PeerId }
  | { kind: 'configuration'; at: number; term: number; index: number; members: PeerId[]; learners?: PeerId[] }
  | {
      kind: 'snapshot';
      at: number;
      term: number;
      index: number;
      bytes: number;
      source: 'taken' | 'installed';
    };

/** Everything a peer measures about itself: `metrics(peer)`. */
export interface RaftMetrics {
  name: PeerId;
  role: 'follower' | 'candidate' | 'leader';
  term: number;
  leader: PeerId | null;
  commitIndex: number;
  lastApplied: number;
  lastLogIndex: number;
  firstLogIndex: number;
  snapshotIndex: number;
  /** The peer's clock (ms) when these figures were read; `now - event.at` is an event's age. */
  now: number;
  /** Times the leader this peer knows of changed to another, non-null one. */
  leaderChanges: number;
  /** Elections this peer started (pre-votes excluded). */
  electionsStarted: number;
  /** Elections this peer won. */
  electionsWon: number;
  proposals: CallFigures;
  reads: CallFigures;
  /** Per follower, on the leader only. */
  followers: FollowerFigures[];
  logStore: {
    /** Durable writes (one per loop turn with something to persist). */
    writes: number;
    /** Entries appended per write. */
    entriesPerWrite: HistogramFigures;
    /** Seconds each durable write (append + fsync) took. */
    writeSeconds: HistogramFigures;
  };
  snapshots: {
    taken: number;
    installed: number;
    bytesTaken: number;
    bytesInstalled: number;
    /** Seconds to serialize (taken) or restore (installed) a snapshot. */
    durationSeconds: HistogramFigures;
  };
  /** Event-loop delay of the process; null until the first window completes. */
  eventLoopDelay: EventLoopDelay | null;
  /** The latest events, oldest first (at most {@link MAX_EVENTS}). */
  events: RaftEvent[];
}

/** How many events {@link RaftMetrics.events} keeps. */
export const MAX_EVENTS = 100;

/** A mutable histogram with fixed bounds. */
export class FixedHistogram {
  private readonly counts: number[];
  private count = 0;
  private sum = 0;
  constructor(private readonly bounds: readonly number[]) {
    this.counts = bounds.map(() => 0);
  }
  observe(value: number): void {
    this.count++;
    this.sum += value;
    for (let i = this.bounds.length - 1; i >= 0 && value <= this.bounds[i]!; i--) this.counts[i]!++;
  }
  figures(): HistogramFigures {
    return { bounds: this.bounds, counts: this.counts.slice(), count: this.count, sum: this.sum };
  }
}

class Calls {
  total = 0;
  failed = 0;
  readonly latency = new FixedHistogram(LATENCY_BUCKETS_SECONDS);
  figures(): CallFigures {
    return { total: this.total, failed: this.failed, latencySeconds: this.latency.figures() };
  }
}

/** What the runtime records; `RaftPeer` owns one and calls it from a few places. */
export class PeerRecorder {
  leaderChanges = 0;
  electionsWon = 0;
  readonly proposals = new Calls();
  readonly reads = new Calls();
  logWrites = 0;
  readonly entriesPerWrite = new FixedHistogram(BATCH_BUCKETS);
  readonly writeSeconds = new FixedHistogram(LATENCY_BUCKETS_SECONDS);
  snapshotsTaken = 0;
  snapshotsInstalled = 0;
  bytesTaken = 0;
  bytesInstalled = 0;
  readonly snapshotSeconds = new FixedHistogram(LATENCY_BUCKETS_SECONDS);
  /** Clock time of the last answer from each peer (AppendEntries / InstallSnapshot responses). */
  readonly lastAck = new Map<PeerId, number>();
  private readonly events: RaftEvent[] = [];

  constructor(private readonly clock: Clock) {}

  /** Times a call: counts it and, once it settles, its outcome and latency. Returns `p`. */
  time<T>(calls: 'proposals' | 'reads', p: Promise<T>): Promise<T> {
    const c = this[calls];
    const t0 = this.clock.now();
    c.total++;
    void p.then(
      () => c.latency.observe((this.clock.now() - t0) / 1000),
      () => c.failed++,
    );
    return p;
  }

  logWrite(entries: number, ms: number): void {
    this.logWrites++;
    this.entriesPerWrite.observe(entries);
    this.writeSeconds.observe(ms / 1000);
  }

  snapshot(source: 'taken' | 'installed', term: number, index: number, bytes: number, ms: number): void {
    if (source === 'taken') {
      this.snapshotsTaken++;
      this.bytesTaken += bytes;
    } else {
      this.snapshotsInstalled++;
      this.bytesInstalled += bytes;
    }
    this.snapshotSeconds.observe(ms / 1000);
    this.event({ kind: 'snapshot', at: this.clock.now(), term, index, bytes, source });
  }

  event(e: RaftEvent): void {
    this.events.push(e);
    if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
  }

  /** A change of role or known leader. */
  softState(prev: SoftState, next: SoftState, term: number): void {
    const at = this.clock.now();
    if (next.role === 'candidate' && prev.role !== 'candidate') this.event({ kind: 'election', at, term });
    if (next.role === 'leader' && prev.role !== 'leader') this.electionsWon++;
    if (next.leader !== null && next.leader !== prev.leader) {
      this.leaderChanges++;
      this.event({ kind: 'leader', at, term, leader: next.leader });
    }
  }

  /** A configuration entry applied (on a restart, the ones replayed are recorded again). */
  configuration(e: LogEntry, config: Configuration): void {
    const ev: RaftEvent = {
      kind: 'configuration',
      at: this.clock.now(),
      term: e.term,
      index: e.index,
      members: config.members.slice(),
    };
    if (config.learners !== undefined) ev.learners = config.learners.slice();
    this.event(ev);
  }

  /** The figures, read from the protocol state and the peer's status. */
  figures(raft: Raft, s: PeerStatus, maxInflight: number): RaftMetrics {
    const now = this.clock.now();
    const followers: FollowerFigures[] = [];
    if (raft.role === 'leader' && raft.config !== null) {
      const learners = raft.config.learners ?? [];
      const peers = [...new Set([...raft.config.members, ...(raft.config.outgoing ?? []), ...learners])];
      for (const peer of peers.sort()) {
        const pr = raft.progressOf(peer);
        if (peer === s.name || pr === undefined) continue;
        const acked = this.lastAck.get(peer);
        followers.push({
          peer,
          learner: learners.includes(peer),
          matchIndex: pr.matchIndex,
          lagEntries: Math.max(0, s.lastLogIndex - pr.matchIndex),
          msSinceAck: acked === undefined ? null : now - acked,
          state: pr.state,
          inflight: pr.inflightCount(),
          maxInflight,
        });
      }
    }
    return {
      name: s.name,
      role: s.role,
      term: s.term,
      leader: s.leader,
      commitIndex: s.commitIndex,
      lastApplied: s.lastApplied,
      lastLogIndex: s.lastLogIndex,
      firstLogIndex: s.firstLogIndex,
      snapshotIndex: s.snapshotIndex,
      now,
      leaderChanges: this.leaderChanges,
      electionsStarted: s.metrics.electionsStarted,
      electionsWon: this.electionsWon,
      proposals: this.proposals.figures(),
      reads: this.reads.figures(),
      followers,
      logStore: {
        writes: this.logWrites,
        entriesPerWrite: this.entriesPerWrite.figures(),
        writeSeconds: this.writeSeconds.figures(),
      },
      snapshots: {
        taken: this.snapshotsTaken,
        installed: this.snapshotsInstalled,
        bytesTaken: this.bytesTaken,
        bytesInstalled: this.bytesInstalled,
        durationSeconds: this.snapshotSeconds.figures(),
      },
      eventLoopDelay: s.eventLoopDelay,
      events: this.events.map((e) => structuredClone(e)),
    };
  }
}

// ------------------------------------------------------------ event-loop delay

/** The window over which event-loop delay is reported. */
const LOOP_WINDOW_MS = 5000;

let loopMonitor: {
  histogram: IntervalHistogram;
  timer: ReturnType<typeof setInterval>;
  users: number;
  last: EventLoopDelay | null;
} | null = null;

/**
 * Starts measuring the process's event-loop delay (one monitor per process, shared by its
 * peers) over windows of `windowMs` (the first user's choice). Returns the function that
 * releases it; the monitor stops with its last user.
 */
export function watchEventLoop(windowMs = LOOP_WINDOW_MS): () => void {
  if (loopMonitor === null) {
    const histogram = monitorEventLoopDelay({ resolution: 10 });
    histogram.enable();
    const m = {
      histogram,
      users: 0,
      last: null as EventLoopDelay | null,
      timer: setInterval(() => {
        const ms = (ns: number): number => Math.round(ns / 1e4) / 100;
        m.last =
          histogram.count === 0
            ? null
            : {
                meanMs: ms(histogram.mean),
                p50Ms: ms(histogram.percentile(50)),
                p99Ms: ms(histogram.percentile(99)),
                maxMs: ms(histogram.max),
                windowMs,
              };
        histogram.reset();
      }, windowMs),
    };
    m.timer.unref();
    loopMonitor = m;
  }
  const m = loopMonitor;
  m.users++;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--m.users > 0 || loopMonitor !== m) return;
    clearInterval(m.timer);
    m.histogram.disable();
    loopMonitor = null;
  };
}

/** The event-loop delay over the last complete window, or null before the first one. */
export function eventLoopDelay(): EventLoopDelay | null {
  return loopMonitor?.last === null || loopMonitor === null ? null : { ...loopMonitor.last };
}
