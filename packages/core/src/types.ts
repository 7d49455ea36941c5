/** A peer's name, unique within its cluster: 1 to {@link MAX_PEER_ID_LENGTH} characters. */
export type PeerId = string;

/** The longest peer name, in UTF-16 code units: for names of peers, members and messages. */
export const MAX_PEER_ID_LENGTH = 256;

/** Whether `v` is a log index: a safe integer >= 0 (0 is the position before the first entry). */
export function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Whether `v` is the index of an entry: a log index >= 1. */
export function isEntryIndex(v: unknown): v is number {
  return isIndex(v) && v >= 1;
}

/** Whether `v` is a peer name: a non-empty string of at most {@link MAX_PEER_ID_LENGTH} characters. */
export function isPeerId(v: unknown, maxLength = MAX_PEER_ID_LENGTH): v is PeerId {
  return typeof v === 'string' && v.length > 0 && v.length <= maxLength;
}

/**
 * What an entry holds: a user command, the no-op a new leader appends (Raft §8), or a
 * cluster configuration (Raft §6).
 */
export type EntryType = 'command' | 'noop' | 'config';

/** One entry of the replicated log, as stored and sent. */
export interface LogEntry {
  /** Position in the log, from 1. */
  index: number;
  /** Term of the leader that created the entry. */
  term: number;
  type: EntryType;
  /** The encoded command (`command`), the encoded {@link Configuration} (`config`), or empty (`noop`). */
  data: Uint8Array;
}

/** The state Raft must persist before it answers a vote (Figure 2, "persistent state"). */
export interface HardState {
  /** Latest term this peer has seen. */
  term: number;
  /** The candidate this peer voted for in `term`, or null. */
  votedFor: PeerId | null;
}

/** A cluster membership: the peers whose votes count. */
export interface Configuration {
  /** Voting members, sorted. During a joint change (§6), the new voters. */
  members: PeerId[];
  /** Non-voting members catching up before they become voters. Absent when none. */
  learners?: PeerId[];
  /** During a joint change (§6): the old voters, whose majority is required as well. Absent otherwise. */
  outgoing?: PeerId[];
}

/** What a snapshot covers: every entry up to `index` (Raft §7). */
export interface SnapshotMeta {
  /** The last entry the snapshot includes. */
  index: number;
  /** The term of that entry. */
  term: number;
  /** The configuration in force at `index`. */
  configuration: Configuration;
}

/** A snapshot of the state machine, with what it covers. */
export interface Snapshot {
  meta: SnapshotMeta;
  /** The state machine's `snapshot()` bytes. */
  data: Uint8Array;
}

/** What a {@link LogStore} holds when opened. */
export interface LogStoreState {
  /** The persisted term and vote; `{ term: 0, votedFor: null }` for a new store. */
  hardState: HardState;
  /**
   * Index of the first entry held, or `lastIndex + 1` when empty (1 for a new store;
   * after a compaction, the index after the compaction point).
   */
  firstIndex: number;
  /** Index of the last entry held; 0 for a new store, the snapshot's index for a log emptied by a snapshot. */
  lastIndex: number;
  /** What the latest snapshot covers, when there is one (load it with `loadSnapshot`). */
  snapshot?: SnapshotMeta;
}

/**
 * One atomic, durable write: everything the runtime must persist after one turn of
 * the protocol. Writing `entries` that start at index `i` first removes every stored
 * entry at `i` or above (a conflicting suffix, Raft §5.3), then stores the new ones.
 */
export interface LogWrite {
  /** The new term and vote, when they changed. */
  hardState?: HardState;
  /**
   * A snapshot to store, replacing any older one; applied before `entries`. If the log
   * holds no entry at `snapshot.meta.index` with `snapshot.meta.term`, every entry is
   * removed and the log goes on from `snapshot.meta.index + 1` (a snapshot from the
   * leader replaces a log that diverged, Raft §7). Otherwise entries stay until `compact`.
   * A snapshot at the stored snapshot's own index and term counts as matching, even
   * after compaction. Stores refuse (`RAFT_INVALID_ARGUMENT`) a snapshot older than the
   * stored one, and entries at or below the snapshot's index.
   */
  snapshot?: Snapshot;
  /** Consecutive entries; the first index is at most the store's `lastIndex + 1`. */
  entries?: LogEntry[];
}

/**
 * Durable storage for a peer's log and hard state. `@raft/log-memory` and
 * `@raft/log-level` implement it; `@raft/testkit/log-store` checks any implementation.
 *
 * Every method rejects with a `RaftError`: `RAFT_STORAGE_CLOSED` before `open` or after
 * `close`, `RAFT_INVALID_ARGUMENT` for a write that would leave a gap, and the store's
 * own codes for I/O failures.
 */
export interface LogStore {
  /**
   * Opens (or creates) the store and returns what it holds. On a store already open,
   * returns what it holds now (the runtime rebuilds from it after refusing a snapshot).
   */
  open(): Promise<LogStoreState>;
  /**
   * Applies one batch atomically, and resolves only once it is durable: after a crash,
   * either all of it or none of it is there. The runtime awaits one write at a time.
   */
  write(batch: LogWrite): Promise<void>;
  /** The entries with `from <= index < to`, in order; indexes outside the log are skipped. */
  entries(from: number, to: number): Promise<LogEntry[]>;
  /**
   * The latest snapshot stored, or undefined. Optional with `compact`: a store without
   * them runs peers with snapshots off, and stops a peer that receives a snapshot.
   */
  loadSnapshot?(): Promise<Snapshot | undefined>;
  /**
   * Removes every entry with index `<= upTo` (log compaction). `upTo` must not exceed
   * the stored snapshot's index (`RAFT_INVALID_ARGUMENT` otherwise, and when no snapshot
   * is stored); a no-op when `upTo < firstIndex`. Durable when it resolves; a crash
   * before leaves the entries, which is consistent too.
   */
  compact?(upTo: number): Promise<void>;
  /** Releases the store. Idempotent. */
  close(): Promise<void>;
}

/** RequestVote (Figure 2), also used for pre-vote (dissertation §9.6). */
export interface RequestVoteMessage {
  type: 'RequestVote';
  term: number;
  from: PeerId;
  to: PeerId;
  lastLogIndex: number;
  lastLogTerm: number;
  /** A pre-vote: asks whether the receiver would vote, changing no one's term. */
  preVote: boolean;
  /** The campaign follows the leader's TimeoutNow (leadership transfer): voters' leases do not apply. */
  transfer?: boolean;
}

/** The answer to a {@link RequestVoteMessage}. */
export interface RequestVoteResponseMessage {
  type: 'RequestVoteResponse';
  term: number;
  from: PeerId;
  to: PeerId;
  voteGranted: boolean;
  preVote: boolean;
}

/** AppendEntries (Figure 2); with no entries it is a heartbeat. */
export interface AppendEntriesMessage {
  type: 'AppendEntries';
  term: number;
  from: PeerId;
  to: PeerId;
  prevLogIndex: number;
  prevLogTerm: number;
  entries: LogEntry[];
  leaderCommit: number;
  /** The leader's heartbeat round, echoed back; confirms leadership for ReadIndex (§6.4). */
  seq: number;
}

/** The answer to an {@link AppendEntriesMessage}. */
export interface AppendEntriesResponseMessage {
  type: 'AppendEntriesResponse';
  term: number;
  from: PeerId;
  to: PeerId;
  success: boolean;
  /** On success, the index up to which the follower's log now matches the leader's. */
  matchIndex: number;
  /** The `prevLogIndex` of the request this answers. */
  prevLogIndex: number;
  /** On rejection, where the leader should look next (§5.3, "conflict hint"). */
  conflictIndex: number;
  /** On rejection, the follower's term at `prevLogIndex`, or 0 if it has no entry there. */
  conflictTerm: number;
  /** The request's `seq`, echoed. */
  seq: number;
}

/** One chunk of a snapshot, streamed by the leader to a follower behind its log's start (§7). */
export interface InstallSnapshotMessage {
  type: 'InstallSnapshot';
  term: number;
  from: PeerId;
  to: PeerId;
  meta: SnapshotMeta;
  /** Byte offset of `data` in the snapshot. */
  offset: number;
  data: Uint8Array;
  /** This chunk is the last. */
  done: boolean;
  seq: number;
}

/** The answer to an {@link InstallSnapshotMessage}. */
export interface InstallSnapshotResponseMessage {
  type: 'InstallSnapshotResponse';
  term: number;
  from: PeerId;
  to: PeerId;
  /** The snapshot's index, echoed. */
  index: number;
  /** The byte offset the follower expects next. */
  nextOffset: number;
  /** The whole snapshot is installed and durable. */
  done: boolean;
  seq: number;
}

/** The leader asks a caught-up follower to campaign at once (leadership transfer). */
export interface TimeoutNowMessage {
  type: 'TimeoutNow';
  term: number;
  from: PeerId;
  to: PeerId;
}

/**
 * Forwarding (etcd's MsgProp): a follower hands the commands its callers wrote in one
 * turn to the leader it knows, to be appended as one batch. The leader answers with a
 * {@link ProposeResultMessage}, always: the index it appended them at, or a refusal.
 */
export interface ProposeMessage {
  type: 'Propose';
  term: number;
  from: PeerId;
  to: PeerId;
  /** The sender's number for this batch, echoed in the answer: a safe integer >= 1. */
  id: number;
  /** Encoded commands, appended in this order as `command` entries. */
  commands: Uint8Array[];
}

/**
 * The answer to a {@link ProposeMessage}. Accepted (`refused: false`): the commands are
 * appended at `index`, `index + 1`, ... in the message's `term`; whichever entry commits
 * at such an index with that term is the sender's command (Log Matching). Refused: the
 * receiver is not a leader able to take proposals (`leader` is the one it knows, if any);
 * nothing was appended.
 */
export interface ProposeResultMessage extends ForwardAnswer {
  type: 'ProposeResult';
}

/** The fields of both answers to forwarded requests. */
export interface ForwardAnswer {
  term: number;
  from: PeerId;
  to: PeerId;
  /** The request's `id`, echoed. */
  id: number;
  refused: boolean;
  /** For a Propose, the index of its first command; for a read, the read index (0 when refused). */
  index: number;
  /** When refused: the leader the receiver knows of. */
  leader?: PeerId;
}

/**
 * A follower asks the leader for a read index (etcd's MsgReadIndex): one request covers
 * every read that arrived at the follower in one turn.
 */
export interface ReadIndexRequestMessage {
  type: 'ReadIndexRequest';
  term: number;
  from: PeerId;
  to: PeerId;
  /** The sender's number for this request, echoed in the answer: a safe integer >= 1. */
  id: number;
}

/**
 * The answer to a {@link ReadIndexRequestMessage}: the leader's commit index, taken after
 * the request arrived and confirmed by a quorum's heartbeat acknowledgements (ReadIndex,
 * dissertation §6.4). A read that waits until its peer applied `index` is linearizable.
 * Refused: the receiver is not (or no longer) a leader (`leader` is the one it knows).
 */
export interface ReadIndexResultMessage extends ForwardAnswer {
  type: 'ReadIndexResult';
}

/** Every message peers exchange. */
export type RaftMessage =
  | RequestVoteMessage
  | RequestVoteResponseMessage
  | AppendEntriesMessage
  | AppendEntriesResponseMessage
  | InstallSnapshotMessage
  | InstallSnapshotResponseMessage
  | TimeoutNowMessage
  | ProposeMessage
  | ProposeResultMessage
  | ReadIndexRequestMessage
  | ReadIndexResultMessage;

/** The kinds of {@link RaftMessage}. */
export type RaftMessageType = RaftMessage['type'];

/**
 * Carries messages between peers. `@raft/transport-inproc` and `@raft/transport-ws`
 * implement it; `@raft/testkit/transport` checks any implementation.
 *
 * Delivery is best effort: messages may be lost, duplicated or reordered, and Raft
 * copes. A transport must never throw from `send`, and must deliver only values that
 * came from a peer's `send` (validate what arrives from a network with
 * `validateMessage`; the runtime validates again).
 */
export interface Transport {
  /** Starts delivering inbound messages to `onMessage`. Called once. */
  start(onMessage: (message: RaftMessage) => void): Promise<void>;
  /** Sends without blocking; may drop. Never throws. */
  send(to: PeerId, message: RaftMessage): void;
  /** Stops sending and delivering. Idempotent. */
  close(): Promise<void>;
}

/**
 * The user's replicated state machine. It must be deterministic: the same
 * commands in the same order give the same state and replies on every peer.
 */
export interface StateMachine<State, Command, Query, Reply> {
  /** The initial state. */
  init(name: PeerId): State;
  /** Applies a committed command. Entries apply in order, once per peer lifetime. */
  handleWrite(command: Command, state: State): [Reply, State] | Promise<[Reply, State]>;
  /** Answers from applied state; never changes it. */
  handleRead(query: Query, state: State): Reply;
  /** Serializes the state (snapshots, log compaction). */
  snapshot?(state: State): Uint8Array | Promise<Uint8Array>;
  /** Rebuilds the state from {@link StateMachine.snapshot}'s bytes. */
  restore?(snapshot: Uint8Array, name: PeerId): State | Promise<State>;
}

/** Turns commands into log bytes and back. The default is MessagePack (`msgpackr`). */
export interface Codec {
  encode(value: unknown): Uint8Array;
  decode(bytes: Uint8Array): unknown;
}

/** An opaque timer handle from a {@link Clock}. */
export type TimerHandle = object | number;

/**
 * The runtime's source of time. The default uses `performance.now` and `setTimeout`;
 * the simulator injects virtual time.
 */
export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  setTimeout(callback: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}
