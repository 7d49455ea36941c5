import type { RaftError } from '../errors.js';
import type { Configuration, LogEntry, PeerId } from '../types.js';
import type { EventLoopDelay, RaftMetrics } from './metrics.js';

/** The public types of a running peer. */

/** Options of one call. */
export interface CallOptions {
  /** Milliseconds before the call rejects with `RAFT_TIMEOUT`. @default 3000 */
  timeout?: number;
  /** Aborts the call with `RAFT_ABORTED`. A write may still commit. */
  signal?: AbortSignal;
  /**
   * `write` and `read` only: on a follower, hand the call to the leader over the peer
   * connection and answer it from this peer's state machine (see "Requests through any
   * node" in the README), instead of failing with `RAFT_NOT_LEADER`.
   * @default the peer's `forward` option
   */
  forward?: boolean;
}

/** A peer's view of itself and its cluster (`status`). */
export interface PeerStatus {
  name: PeerId;
  role: 'follower' | 'candidate' | 'leader';
  term: number;
  leader: PeerId | null;
  votedFor: PeerId | null;
  commitIndex: number;
  lastApplied: number;
  lastLogIndex: number;
  lastLogTerm: number;
  configuration: Configuration;
  /** The index and term of the latest snapshot (0 when none). */
  snapshotIndex: number;
  snapshotTerm: number;
  /** The first index still in the log (after compaction). */
  firstLogIndex: number;
  /** True once the peer stopped: by `stop()`, or by itself after its log store failed. */
  stopped: boolean;
  /** Counters since start. */
  metrics: PeerMetrics;
  /** The process's event-loop delay over the last window; null before the first one (see `metrics`). */
  eventLoopDelay: EventLoopDelay | null;
}

/** Counters a peer keeps since it started. */
export interface PeerMetrics {
  /** Messages refused by validation or addressed elsewhere, dropped without effect. */
  messagesDropped: number;
  /**
   * `messagesDropped` by reason: the refusals of `validateMessage` (`malformed`,
   * `term_out_of_range`, `index_out_of_range`, `entry_terms`, `too_many_entries`),
   * `wrong_recipient`, `snapshot_too_large` (a chunk past `maxSnapshotBytes`),
   * `snapshot_restore_failed` (the state machine could not restore a received snapshot),
   * `forward_from_stranger` (a forwarded proposal or read from a peer outside the configuration; refused),
   * `protocol` (refused by the protocol, e.g. a second leader in one term).
   */
  messagesDroppedByReason: Record<string, number>;
  messagesReceived: number;
  messagesSent: number;
  /** Durable writes to the log store (one per loop turn with something to persist). */
  logWrites: number;
  entriesApplied: number;
  electionsStarted: number;
  /** Commands whose `handleWrite` threw; they changed nothing (see the core README). */
  stateMachineErrors: number;
  /** Snapshots taken of the local state machine. */
  snapshotsTaken: number;
  /** Snapshots received from a leader and restored. */
  snapshotsInstalled: number;
}

/** What `inspectPeer` shows of a peer's protocol state. */
export interface PeerInspection {
  name: PeerId;
  /** Includes `precandidate`, a follower running a pre-vote. */
  role: 'follower' | 'precandidate' | 'candidate' | 'leader';
  term: number;
  votedFor: PeerId | null;
  leader: PeerId | null;
  commitIndex: number;
  lastApplied: number;
  firstLogIndex: number;
  lastLogIndex: number;
  /** Highest index known durable in the log store. */
  stableIndex: number;
  /** The term of the entry at `index` in memory, or undefined. */
  termAt(index: number): number | undefined;
  entryAt(index: number): LogEntry | undefined;
  configuration: Configuration | null;
  stopped: boolean;
  /** Bytes held of a snapshot being received from the leader (0 when none). */
  snapshotBytesReceiving: number;
}

/** Options of `stopPeer`. */
export interface StopOptions {
  /**
   * A leader hands leadership to its most up-to-date voter before it stops (TimeoutNow), so
   * that a maintenance stop costs no election timeout. It waits on the peer's clock, so a
   * test on virtual time must advance it meanwhile. @default false
   */
  handOff?: boolean;
  /** Longest wait for the hand-off; then the peer stops anyway. @default the maximum election timeout */
  handOffTimeoutMs?: number;
}

/** A log entry as `getEntry` returns it: stored fields plus the decoded content. */
export interface EntryInfo extends LogEntry {
  /** For `command` entries, the decoded command. */
  command?: unknown;
  /** For `config` entries, the configuration. */
  configuration?: Configuration;
}

/** A running peer: the operations of the API (`write`, `read`, `leader`, ...) as methods. */
export interface Peer<C = unknown, Q = unknown, R = unknown> {
  readonly name: PeerId;
  /** Replicates a command; resolves with the state machine's reply once it is committed and applied. */
  write(command: C, opts?: CallOptions): Promise<R>;
  /** A linearizable read (ReadIndex), answered by the state machine's `handleRead`. */
  read(query: Q, opts?: CallOptions): Promise<R>;
  /** The leader this peer knows of, or null. */
  leader(): PeerId | null;
  status(): PeerStatus;
  /** Figures for operators (what `metrics(peer)` returns): call counts and latencies, replication lag, log-store and snapshot figures, events. */
  figures(): RaftMetrics;
  /**
   * Makes `members` the exact voting membership. On a fresh peer, bootstraps the cluster;
   * on the leader of a running cluster, changes it by joint consensus (new peers catch up
   * as learners first); resolves once the final configuration is committed. Returns the
   * current configuration if it already has exactly these members.
   */
  setConfiguration(members: PeerId[], opts?: CallOptions): Promise<Configuration>;
  /** Hands leadership to `target` (TimeoutNow); resolves once this peer sees `target` lead. */
  transferLeadership(target: PeerId, opts?: CallOptions): Promise<void>;
  /** The log entry at `index`, or undefined when this peer's log does not hold it. */
  getEntry(index: number): Promise<EntryInfo | undefined>;
  /**
   * Stops gracefully: with `handOff: true`, a leader first hands leadership to its most
   * up-to-date voter; then pending calls reject with `RAFT_STOPPED` and the log store and
   * transport close.
   */
  stop(opts?: StopOptions): Promise<void>;
  /**
   * Resolves once the peer has stopped, with why: a `RAFT_STOPPED` error whose `cause` is
   * the log store's failure when the peer stopped itself (fail-stop), or none after `stop()`.
   */
  whenStopped(): Promise<RaftError>;
}
