import type {
  AppendEntriesMessage,
  AppendEntriesResponseMessage,
  Configuration,
  InstallSnapshotMessage,
  InstallSnapshotResponseMessage,
  Snapshot,
  EntryType,
  HardState,
  LogEntry,
  PeerId,
  ProposeMessage,
  RaftMessage,
  ReadIndexRequestMessage,
  RequestVoteMessage,
  RequestVoteResponseMessage,
  TimeoutNowMessage,
} from '../types.js';
import { RaftLog } from './log.js';
import {
  droppedPeers,
  incomingVoters,
  nextConfiguration,
  startChange,
  unfinishedChange,
} from './confchange.js';
import {
  allPeers,
  encodeConfiguration,
  latestConfiguration,
  normalizeConfiguration,
  normalizeMembers,
} from './membership.js';
import { Progress } from './progress.js';
import { allVoters, jointCommittedValue, jointVoteResult, type VoteResult } from './quorum.js';
import { ReadOnly, type ReadState } from './read-only.js';
import { nextSnapshotChunks, SnapshotReceiver } from './snapshot-stream.js';

export type { ReadState } from './read-only.js';

/**
 * What a follower learned of a request it forwarded to the leader (a Propose or a
 * ReadIndexRequest, by the `id` it gave): accepted at `index` (for a Propose, the first
 * command's index, appended in `term`; for a read, the read index), or refused by a peer
 * that is not the leader (`leader`: the one it knows, or null).
 */
export interface ForwardOutcome {
  kind: 'propose' | 'read';
  id: number;
  /** The peer that answered. */
  from: PeerId;
  refused: boolean;
  /** 0 when refused. */
  index: number;
  /** The answer's term: for an accepted Propose, the term its entries were appended in. */
  term: number;
  leader: PeerId | null;
}

/** A peer's role. `precandidate` is a follower running a pre-vote (dissertation §9.6). */
export type Role = 'follower' | 'precandidate' | 'candidate' | 'leader';

/**
 * How many answers to one follower's Proposes a leader remembers (see `handlePropose`):
 * a duplicate arriving after that many newer Proposes from the same follower would be
 * appended again. Networks that duplicate do so within moments; TCP never does.
 */
export const PROPOSE_ANSWERS_KEPT = 4096;

/** Options of the pure protocol. Time is counted in ticks. */
export interface RaftOptions {
  id: PeerId;
  /** Election timeout range in ticks, inclusive; each timeout is drawn from it. */
  electionTicks: [min: number, max: number];
  /** Ticks between a leader's heartbeats. Must be below `electionTicks[0]`. */
  heartbeatTicks: number;
  /** A seeded generator of numbers in [0, 1): the only randomness in the protocol. */
  random: () => number;
  /** Unacknowledged AppendEntries per follower in replicate state. */
  maxInflight: number;
  /** Most entries in one AppendEntries. */
  maxBatchEntries: number;
  /** Most entry bytes in one AppendEntries (at least one entry is always sent). */
  maxBatchBytes: number;
  /** Pre-vote (dissertation §9.6): a rejoining peer does not depose a healthy leader. */
  preVote: boolean;
  /** Check-quorum (§6.2): a leader that does not hear from a majority steps down. */
  checkQuorum: boolean;
  /** Bytes of snapshot data in one InstallSnapshot chunk. @default 524288 */
  snapshotChunkBytes?: number;
  /** InstallSnapshot chunks in flight to one follower. @default 4 */
  snapshotWindow?: number;
  /**
   * Most bytes of a snapshot received from a leader: a chunk that would grow it past
   * this drops the whole transfer (and its memory). @default 1073741824 (1 GiB)
   */
  maxSnapshotBytes?: number;
}

/** What the protocol holds at start: the log store's contents. */
export interface RaftInitialState {
  hardState: HardState;
  /** Entries after the snapshot (or from index 1). */
  entries: LogEntry[];
  /** The latest snapshot, if the store has one. */
  snapshot?: Snapshot;
}

/** The protocol's volatile state, reported when it changes. */
export interface SoftState {
  role: Role;
  leader: PeerId | null;
}

/**
 * One batch of work for the runtime, in this order: persist `hardState` and `entries`
 * in one durable write; then send `messages`; then apply `committed`; then serve
 * `reads` once the state machine has applied their index; then call `advance`.
 */
export interface Ready {
  hardState?: HardState;
  /**
   * A snapshot to persist with the batch. `fromLeader`: it came from the leader, and the
   * state machine must be restored from it (after applying what was committed before).
   */
  snapshot?: { snapshot: Snapshot; fromLeader: boolean };
  /** After the write, compact the store's log up to this index. */
  compactTo?: number;
  entries: LogEntry[];
  messages: RaftMessage[];
  committed: LogEntry[];
  reads: ReadState[];
  /** Answers to requests this peer forwarded to the leader (see {@link Raft.forward}). */
  forwarded: ForwardOutcome[];
  softState?: SoftState;
}

/** The protocol's state as `Raft.status()` reports it. */
export interface RaftStatus {
  id: PeerId;
  term: number;
  votedFor: PeerId | null;
  role: Role;
  leader: PeerId | null;
  /** The latest configuration in the log, committed or not; null when unconfigured. */
  configuration: Configuration | null;
  /** Whether that configuration is committed. */
  configurationCommitted: boolean;
  commitIndex: number;
  /** Highest index known durable in the log store. */
  stableIndex: number;
  /** Highest index handed out to apply. */
  appliedIndex: number;
  firstIndex: number;
  lastIndex: number;
  lastTerm: number;
  /** The latest snapshot's index and term (0 when none). */
  snapshotIndex: number;
  snapshotTerm: number;
  /** On the leader: the peer leadership is being handed to, or null. */
  transferee: PeerId | null;
  electionsStarted: number;
  messagesDropped: number;
  /** Bytes held of a snapshot being received from the leader (0 when none). */
  snapshotBytesReceiving: number;
}

/** Why `propose` or `readIndex` refused. `transferring`: the leader is handing over leadership. */
export type Refusal = 'not_leader' | 'transferring';

/**
 * The Raft protocol of one peer: deterministic, synchronous, free of I/O. Feed it
 * `tick`, `step`, `propose`, `readIndex` and `bootstrap`; collect work with `ready`;
 * report it done with `advance`.
 */
export class Raft {
  readonly id: PeerId;
  private readonly opts: RaftOptions;

  #term = 0;
  #votedFor: PeerId | null = null;
  #role: Role = 'follower';
  #leader: PeerId | null = null;
  /** The log, read-only outside the protocol (its indexes move only through the protocol). */
  readonly log: RaftLog;

  /** The latest configuration in the log, or none: an unconfigured peer never campaigns. */
  #config: Configuration | null = null;
  private configIndex = 0;
  private configTerm = 0;

  private electionElapsed = 0;
  /** Ticks since this peer started; a leader's clock for check-quorum. */
  private ticks = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private votes = new Map<PeerId, boolean>();
  private progress = new Map<PeerId, Progress>();
  /** On the leader: a membership change under way, towards these voters (§6). */
  private change: { target: PeerId[]; round?: { index: number; start: number } } | null = null;
  /**
   * On the leader: peers the latest configuration entries dropped. They still receive
   * entries and heartbeats (counted in no majority) until they acknowledge an
   * AppendEntries sent after the configuration that dropped them committed, or for an
   * election timeout after that: a removed peer learns it was removed, and that this is
   * committed, and stops campaigning. `seq`: that heartbeat round (0 until committed).
   */
  private departing = new Map<PeerId, { seq: number; until: number }>();
  /** On the leader: the peer leadership is being handed to (dissertation §3.10), and for how long. */
  private transferee: PeerId | null = null;
  private transferElapsed = 0;
  private timeoutNowSent = false;

  /** Heartbeat round of the leader; every AppendEntries carries it (ReadIndex, §6.4). */
  private seq = 0;
  /** A round started this turn whose heartbeats have not gone out yet. */
  private roundPending = false;
  /** Linearizable reads under way (ReadIndex). */
  private readonly reads = new ReadOnly();
  /**
   * On the leader: reads forwarded by followers, by their context in `reads` (negative
   * numbers, so they never meet the runtime's positive ones): who asked, and its id.
   */
  private readonly remoteReads = new Map<number, { from: PeerId; id: number }>();
  private lastRemoteRead = 0;
  /** Answers to this peer's forwarded requests, for the next Ready. */
  private forwardOutcomes: ForwardOutcome[] = [];
  /**
   * On the leader, for this term: the answers given to each follower's latest Proposes
   * (index, or 0 for a refusal), by id. A Propose the network duplicated gets the same
   * answer again instead of a second append (or an append after a refusal).
   */
  private proposeAnswers = new Map<PeerId, Map<number, number>>();

  /** The latest snapshot: sent to followers behind the log's start. */
  private snapshot: Snapshot | null = null;
  private pendingSnapshot: { snapshot: Snapshot; fromLeader: boolean } | null = null;
  private pendingCompact: number | null = null;
  /** A snapshot being received from the leader, chunk by chunk. */
  private readonly incoming: SnapshotReceiver;

  private msgs: RaftMessage[] = [];
  private persisted: HardState;
  private lastSoft: SoftState;

  /** Counters, for status and tests. */
  readonly stats = {
    messagesDropped: 0,
    electionsStarted: 0,
    snapshotChunksRefused: 0,
    /** Forwarded proposals and reads refused because their sender is not in the configuration. */
    forwardsFromStrangers: 0,
  };

  constructor(opts: RaftOptions, initial: RaftInitialState) {
    this.opts = opts;
    this.id = opts.id;
    this.incoming = new SnapshotReceiver(opts.maxSnapshotBytes ?? 2 ** 30);
    this.#term = initial.hardState.term;
    this.#votedFor = initial.hardState.votedFor;
    this.persisted = { term: this.#term, votedFor: this.#votedFor };
    const snap = initial.snapshot;
    this.snapshot = snap ?? null;
    this.log = new RaftLog(
      snap === undefined ? initial.entries : initial.entries.filter((e) => e.index > snap.meta.index),
      snap?.meta.index ?? 0,
      snap?.meta.term ?? 0,
    );
    this.refreshConfiguration();
    this.resetElectionTimeout();
    this.lastSoft = { role: this.#role, leader: this.#leader };
  }

  /** The current term (Figure 2). */
  get term(): number {
    return this.#term;
  }

  /** The peer voted for in the current term, or null. */
  get votedFor(): PeerId | null {
    return this.#votedFor;
  }

  get role(): Role {
    return this.#role;
  }

  /** The leader this peer knows of in the current term, or null. */
  get leader(): PeerId | null {
    return this.#leader;
  }

  /** The latest configuration in the log, committed or not (§6), or null when unconfigured. */
  get config(): Readonly<Configuration> | null {
    return this.#config;
  }

  /**
   * Everything the runtime and tools read of the protocol's state, in one object (as
   * etcd's `Status()`): a copy, so it never changes under the reader.
   */
  status(): RaftStatus {
    const snap = this.snapshot?.meta;
    return {
      id: this.id,
      term: this.#term,
      votedFor: this.#votedFor,
      role: this.#role,
      leader: this.#leader,
      configuration: this.#config === null ? null : structuredClone(this.#config),
      configurationCommitted: this.configurationCommitted(),
      commitIndex: this.log.commitIndex,
      stableIndex: this.log.stableIndex,
      appliedIndex: this.log.appliedIndex,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      lastTerm: this.log.lastTerm(),
      snapshotIndex: snap?.index ?? 0,
      snapshotTerm: snap?.term ?? 0,
      transferee: this.transferee,
      electionsStarted: this.stats.electionsStarted,
      messagesDropped: this.stats.messagesDropped,
      snapshotBytesReceiving: this.incoming.bytesReceived,
    };
  }

  // ---------------------------------------------------------------- inputs

  /** Advances logical time by one tick. */
  tick(): void {
    if (this.#role === 'leader') {
      this.heartbeatElapsed++;
      this.electionElapsed++;
      if (this.transferee !== null && ++this.transferElapsed >= this.opts.electionTicks[0]) {
        // The transfer did not complete within an election timeout: resume serving.
        this.transferee = null;
      }
      this.ticks++;
      for (const [p, d] of this.departing) {
        if (d.seq !== 0 && this.ticks > d.until) {
          this.departing.delete(p);
          this.progress.delete(p);
        }
      }
      // Check-quorum (dissertation §6.2): a leader that has not heard from a majority
      // within the minimum election timeout steps down; followers may elect another by now.
      if (this.opts.checkQuorum && !this.quorumActive()) {
        this.becomeFollower(this.#term, null);
        return;
      }
      // The leader's lease on vote requests renews every minimum election timeout.
      if (this.electionElapsed >= this.opts.electionTicks[0]) this.electionElapsed = 0;
      if (this.heartbeatElapsed >= this.opts.heartbeatTicks) {
        this.heartbeatElapsed = 0;
        this.broadcastHeartbeat('timer');
      }
      return;
    }
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.campaign(this.opts.preVote);
    }
  }

  /**
   * Handles one message. Terms are handled here once (Figure 2, "Rules for Servers"),
   * then the message goes to its kind's handler.
   */
  step(m: RaftMessage): void {
    if (m.to !== this.id || m.from === this.id) {
      this.stats.messagesDropped++;
      return;
    }
    if ((m.type === 'ProposeResult' || m.type === 'ReadIndexResult') && m.term <= this.#term) {
      // An answer to a forwarded request holds whatever its term: an accepted Propose's
      // entries are identified by (index, term) for good (Log Matching), and a read index
      // was confirmed by a quorum while its sender led, after the request was sent.
      this.deliverForwardOutcome(m);
      return;
    }
    if (m.term > this.#term) {
      if (m.type === 'RequestVote') {
        // A peer that heard from a leader within the minimum election timeout ignores
        // vote requests: removed or partitioned peers cannot disrupt (§6, §9.6).
        const inLease =
          this.opts.checkQuorum && this.#leader !== null && this.electionElapsed < this.opts.electionTicks[0];
        // A campaign the leader asked for (TimeoutNow) is not a disruption.
        if (inLease && m.transfer !== true) return;
      }
      const keepsTerm =
        (m.type === 'RequestVote' && m.preVote) ||
        (m.type === 'RequestVoteResponse' && m.preVote && m.voteGranted);
      if (!keepsTerm) {
        // §5.1: a higher term makes any peer a follower in that term.
        this.becomeFollower(
          m.term,
          m.type === 'AppendEntries' || m.type === 'InstallSnapshot' ? m.from : null,
        );
      }
    } else if (m.term < this.#term) {
      if (m.type === 'AppendEntries') {
        // Tell a stale leader about the newer term so it steps down.
        this.send(this.appendResponse(m.from, false, 0, m.prevLogIndex, 0, 0, m.seq));
      } else if (m.type === 'InstallSnapshot') {
        this.send(this.snapshotResponse(m.from, m.meta.index, 0, false, m.seq));
      } else if (m.type === 'Propose' || m.type === 'ReadIndexRequest') {
        // Not the leader of the sender's term: say so, at once (it fails its callers fast).
        this.refuseForward(m);
      } else if (m.type === 'RequestVote' && m.preVote) {
        this.send({
          type: 'RequestVoteResponse',
          term: this.#term,
          from: this.id,
          to: m.from,
          voteGranted: false,
          preVote: true,
        });
      }
      // §5.1: a request with a stale term is rejected; stale responses are ignored.
      return;
    }

    switch (m.type) {
      case 'RequestVote':
        this.handleRequestVote(m);
        return;
      case 'RequestVoteResponse':
        this.handleVoteResponse(m);
        return;
      case 'AppendEntries':
        this.handleAppendEntries(m);
        return;
      case 'AppendEntriesResponse':
        this.handleAppendResponse(m);
        return;
      case 'InstallSnapshot':
        this.handleInstallSnapshot(m);
        return;
      case 'InstallSnapshotResponse':
        this.handleSnapshotResponse(m);
        return;
      case 'TimeoutNow':
        this.handleTimeoutNow(m);
        return;
      case 'Propose':
        this.handlePropose(m);
        return;
      case 'ReadIndexRequest':
        this.handleReadIndexRequest(m);
        return;
      case 'ProposeResult':
      case 'ReadIndexResult':
        this.deliverForwardOutcome(m);
        return;
    }
  }

  // ---------------------------------------------------------------- forwarding

  /**
   * On a follower: forwards commands to the leader it knows (etcd's MsgProp), in one
   * Propose numbered `id`. The answer comes back in a later Ready's `forwarded`.
   * Refuses when this peer knows no leader other than itself.
   */
  forward(id: number, commands: Uint8Array[]): 'ok' | Refusal {
    const to = this.#leader;
    if (this.#role === 'leader' || to === null || to === this.id) return 'not_leader';
    this.send({ type: 'Propose', term: this.#term, from: this.id, to, id, commands });
    return 'ok';
  }

  /**
   * On a follower: asks the leader it knows for a read index (etcd's MsgReadIndex), for
   * every read numbered `id` stands for. The answer comes back in a later Ready's `forwarded`.
   */
  forwardReadIndex(id: number): 'ok' | Refusal {
    const to = this.#leader;
    if (this.#role === 'leader' || to === null || to === this.id) return 'not_leader';
    this.send({ type: 'ReadIndexRequest', term: this.#term, from: this.id, to, id });
    return 'ok';
  }

  /** Whether `peer` belongs to the latest configuration (voter, learner or outgoing voter). */
  private isMember(peer: PeerId): boolean {
    return this.#config !== null && allPeers(this.#config).includes(peer);
  }

  /**
   * A follower's forwarded commands: the leader appends them as one batch and says at
   * which index; anyone else, or a leader handing over, or a sender outside the
   * configuration, refuses (never silently: the sender fails its callers at once).
   */
  private handlePropose(m: ProposeMessage): void {
    if (this.#role !== 'leader') {
      // Not leader in this term, and never will be: a refusal is final.
      this.refuseForward(m);
      return;
    }
    let answers = this.proposeAnswers.get(m.from);
    const earlier = answers?.get(m.id);
    if (earlier !== undefined) {
      // A duplicate: the same answer again, nothing appended.
      if (earlier === 0) this.refuseForward(m);
      else this.sendProposeResult(m, earlier);
      return;
    }
    if (answers === undefined) {
      this.proposeAnswers.set(m.from, (answers = new Map<number, number>()));
      // Senders are members, and a few strangers: bounded all the same.
      if (this.proposeAnswers.size > PROPOSE_ANSWERS_KEPT)
        this.proposeAnswers.delete(this.proposeAnswers.keys().next().value!);
    }
    const r = this.isMember(m.from)
      ? this.propose(m.commands.map((data) => ({ type: 'command' as const, data })))
      : 'stranger';
    answers.set(m.id, typeof r === 'string' ? 0 : r.index);
    if (answers.size > PROPOSE_ANSWERS_KEPT) answers.delete(answers.keys().next().value!);
    if (typeof r === 'string') {
      if (r === 'stranger') this.stats.forwardsFromStrangers++;
      this.refuseForward(m);
      return;
    }
    this.sendProposeResult(m, r.index);
  }

  private sendProposeResult(m: ProposeMessage, index: number): void {
    this.send({
      type: 'ProposeResult',
      term: this.#term,
      from: this.id,
      to: m.from,
      id: m.id,
      refused: false,
      index,
    });
  }

  /** A follower's read: the leader runs a ReadIndex round for it, as for its own reads. */
  private handleReadIndexRequest(m: ReadIndexRequestMessage): void {
    if (this.#role !== 'leader' || !this.isMember(m.from)) {
      if (this.#role === 'leader') this.stats.forwardsFromStrangers++;
      this.refuseForward(m);
      return;
    }
    const context = -++this.lastRemoteRead;
    this.remoteReads.set(context, { from: m.from, id: m.id });
    this.readIndex(context);
  }

  private refuseForward(m: { type: 'Propose' | 'ReadIndexRequest'; from: PeerId; id: number }): void {
    this.sendForwardRefusal(m.type === 'Propose' ? 'ProposeResult' : 'ReadIndexResult', m.from, m.id);
  }

  private sendForwardRefusal(type: 'ProposeResult' | 'ReadIndexResult', to: PeerId, id: number): void {
    const leader = this.#leader;
    this.send({
      type,
      term: this.#term,
      from: this.id,
      to,
      id,
      refused: true,
      index: 0,
      ...(leader !== null && leader !== this.id && leader !== to ? { leader } : {}),
    });
  }

  private deliverForwardOutcome(
    m: Extract<RaftMessage, { type: 'ProposeResult' | 'ReadIndexResult' }>,
  ): void {
    this.forwardOutcomes.push({
      kind: m.type === 'ProposeResult' ? 'propose' : 'read',
      id: m.id,
      from: m.from,
      refused: m.refused,
      index: m.index,
      term: m.term,
      leader: m.leader ?? null,
    });
  }

  /** Leadership ends: followers whose reads this peer had not confirmed yet hear so at once. */
  private refuseRemoteReads(): void {
    if (this.remoteReads.size === 0) return;
    for (const context of this.reads.pendingContexts()) {
      const r = this.remoteReads.get(context);
      if (r === undefined) continue;
      this.remoteReads.delete(context);
      this.sendForwardRefusal('ReadIndexResult', r.from, r.id);
    }
  }

  /** Confirmed reads: this peer's own for the runtime; followers' are answered here. */
  private takeReadyReads(): ReadState[] {
    const ready = this.reads.takeReady();
    if (this.remoteReads.size === 0) return ready;
    const local: ReadState[] = [];
    for (const r of ready) {
      const remote = this.remoteReads.get(r.context);
      if (remote === undefined) {
        local.push(r);
        continue;
      }
      this.remoteReads.delete(r.context);
      this.send({
        type: 'ReadIndexResult',
        term: this.#term,
        from: this.id,
        to: remote.from,
        id: remote.id,
        refused: false,
        index: r.index,
      });
    }
    return local;
  }

  /**
   * Starts making `members` the exact voting membership of the running cluster (§6),
   * on the leader: new peers first join as learners and catch up; then the joint
   * configuration (old and new majorities both required) is committed; then the new
   * one alone. The change is done when an entry with exactly these voters and no
   * outgoing ones commits.
   */
  proposeConfiguration(members: readonly PeerId[]): 'ok' | 'same' | 'in_progress' | Refusal {
    if (this.#role !== 'leader') return 'not_leader';
    if (this.transferee !== null) return 'transferring';
    const cfg = this.#config;
    if (cfg === null) return 'not_leader';
    const target = [...members].sort();
    // A change still waiting for learners to catch up may be replaced (a learner that
    // never catches up must not block every later change); a joint one must finish.
    const learnerPhase = this.change !== null && cfg.outgoing === undefined;
    if ((this.change !== null && !learnerPhase) || this.log.commitIndex < this.configIndex)
      return 'in_progress';
    const start = startChange(cfg, target);
    switch (start.kind) {
      case 'in_progress':
        return 'in_progress';
      case 'same':
        this.change = null;
        return 'same';
      case 'learners':
        this.change = { target };
        this.proposeConfigEntry(start.config);
        return 'ok';
      case 'advance':
        this.change = { target };
        this.advanceChange();
        return 'ok';
    }
  }

  /**
   * Hands leadership to `target` (dissertation §3.10): stop taking proposals, bring
   * the target up to date, then tell it to campaign at once (TimeoutNow).
   */
  transferLeadership(target: PeerId): 'ok' | 'not_voter' | Refusal {
    if (this.#role !== 'leader') return 'not_leader';
    if (target === this.id) return 'ok';
    if (this.#config === null || !this.#config.members.includes(target) || !this.progress.has(target))
      return 'not_voter';
    this.transferee = target;
    this.transferElapsed = 0;
    this.timeoutNowSent = false;
    this.maybeSendTimeoutNow();
    if (!this.timeoutNowSent) this.sendAppend(target, false);
    return 'ok';
  }

  /** Whether the latest configuration in the log is committed. */
  configurationCommitted(): boolean {
    return this.log.commitIndex >= this.configIndex;
  }

  /**
   * The runtime took a snapshot of the state machine at `index` (already applied):
   * persist it, then compact the log up to `compactTo` (kept below `index` so that
   * followers a little behind still get entries rather than the whole snapshot).
   * Returns false when the snapshot is stale (an equal or newer one exists).
   */
  snapshotTaken(index: number, data: Uint8Array, compactTo: number): boolean {
    if (index <= (this.snapshot?.meta.index ?? 0) || index > this.log.appliedIndex) return false;
    const term = this.log.term(index);
    if (term === undefined) return false;
    const snapshot: Snapshot = { meta: { index, term, configuration: this.configurationAt(index) }, data };
    this.snapshot = snapshot;
    this.pendingSnapshot = { snapshot, fromLeader: false };
    this.pendingCompact = Math.min(compactTo, index);
    return true;
  }

  /**
   * Appends commands to the leader's log and replicates them. Returns the index of the
   * first, or a refusal.
   */
  propose(
    items: readonly { type: EntryType; data: Uint8Array }[],
  ): { index: number; term: number } | Refusal {
    if (this.#role !== 'leader') return 'not_leader';
    if (this.transferee !== null) return 'transferring';
    const first = this.log.lastIndex() + 1;
    const entries = items.map((it, i) => ({
      index: first + i,
      term: this.#term,
      type: it.type,
      data: it.data,
    }));
    this.appendAsLeader(entries);
    return { index: first, term: this.#term };
  }

  /**
   * Starts a linearizable read (ReadIndex, dissertation §6.4): the commit index at
   * this moment becomes the read's index once a heartbeat round confirms leadership.
   * Every read started in the same turn shares one round.
   */
  readIndex(context: number): 'ok' | Refusal {
    if (this.#role !== 'leader') return 'not_leader';
    // Until an entry of its own term commits, a new leader's commit index may be stale.
    if (!this.committedInCurrentTerm()) {
      this.reads.waitForCommit(context);
      return 'ok';
    }
    this.queueRead(context);
    return 'ok';
  }

  /**
   * Bootstraps a fresh peer as the first member of a cluster (as the Elixir library's
   * `set_configuration`): writes the configuration as entry 1 and campaigns at once.
   * Returns false when this peer already holds a log or a term.
   */
  bootstrap(members: readonly PeerId[]): boolean {
    if (this.log.lastIndex() !== 0 || this.#term !== 0 || this.#config !== null) return false;
    const config = normalizeMembers(members);
    this.#term = 1;
    this.log.appendAfter(0, [{ index: 1, term: 1, type: 'config', data: encodeConfiguration(config) }]);
    this.refreshConfiguration();
    if (this.promotable()) this.campaign(false);
    return true;
  }

  // ---------------------------------------------------------------- output

  hasReady(): boolean {
    return (
      this.roundPending ||
      this.pendingSnapshot !== null ||
      this.pendingCompact !== null ||
      this.msgs.length > 0 ||
      this.log.hasUnstable() ||
      this.log.hasNextCommitted() ||
      this.reads.hasReady() ||
      this.forwardOutcomes.length > 0 ||
      this.#term !== this.persisted.term ||
      this.#votedFor !== this.persisted.votedFor ||
      this.#role !== this.lastSoft.role ||
      this.#leader !== this.lastSoft.leader
    );
  }

  /** Collects the work to do. Call `advance(ready)` once it is done. */
  ready(): Ready {
    if (this.roundPending) {
      this.roundPending = false;
      this.broadcastHeartbeat('round');
    }
    const reads = this.takeReadyReads();
    const rd: Ready = {
      entries: this.log.unstable(),
      // A message decided in a term this peer has since left is not sent: an
      // AppendEntriesResponse to an earlier leader may acknowledge entries that a later
      // leader's AppendEntries truncated in the same turn, which will never be durable
      // here; counting that acknowledgement could commit an entry a majority lacks.
      // Answers to forwarded requests stay true whatever came after (see step).
      messages: this.msgs.filter(
        (m) => m.term >= this.#term || m.type === 'ProposeResult' || m.type === 'ReadIndexResult',
      ),
      committed: this.log.nextCommitted(),
      reads,
      forwarded: this.forwardOutcomes,
    };
    this.msgs = [];
    this.forwardOutcomes = [];
    if (this.#term !== this.persisted.term || this.#votedFor !== this.persisted.votedFor) {
      rd.hardState = { term: this.#term, votedFor: this.#votedFor };
    }
    if (this.pendingSnapshot !== null) {
      rd.snapshot = this.pendingSnapshot;
      this.pendingSnapshot = null;
    }
    if (this.pendingCompact !== null) {
      rd.compactTo = this.pendingCompact;
      this.pendingCompact = null;
    }
    if (this.#role !== this.lastSoft.role || this.#leader !== this.lastSoft.leader) {
      rd.softState = { role: this.#role, leader: this.#leader };
      this.lastSoft = rd.softState;
    }
    return rd;
  }

  /** Reports a Ready done: its hard state and entries are durable, its committed entries handed to the state machine. */
  advance(rd: Ready): void {
    if (rd.hardState !== undefined) this.persisted = rd.hardState;
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry !== undefined && this.log.term(lastEntry.index) === lastEntry.term) {
      this.log.stableTo(lastEntry.index);
    }
    const lastCommitted = rd.committed[rd.committed.length - 1];
    if (lastCommitted !== undefined) this.log.appliedTo(lastCommitted.index);
    if (rd.compactTo !== undefined) this.log.compact(rd.compactTo);
    // The leader counts its own log in a quorum only once durable (persist before you promise).
    if (this.#role === 'leader' && lastEntry !== undefined) this.maybeCommit();
  }

  // ---------------------------------------------------------------- queries

  hardState(): HardState {
    return { term: this.#term, votedFor: this.#votedFor };
  }

  /** The follower progress the leader tracks (empty on other roles). */
  progressOf(peer: PeerId): Readonly<Progress> | undefined {
    return this.progress.get(peer);
  }

  /** True once an entry of the current term is committed (a leader's no-op, §8). */
  committedInCurrentTerm(): boolean {
    return this.log.term(this.log.commitIndex) === this.#term;
  }

  // ---------------------------------------------------------------- roles

  private becomeFollower(term: number, leader: PeerId | null): void {
    if (term !== this.#term) {
      this.#term = term;
      this.#votedFor = null;
    }
    this.#role = 'follower';
    this.#leader = leader;
    this.resetRoleState();
  }

  private becomePreCandidate(): void {
    // A pre-vote changes neither term nor vote (dissertation §9.6).
    this.#role = 'precandidate';
    this.#leader = null;
    this.resetRoleState();
  }

  private becomeCandidate(): void {
    this.#term += 1;
    this.#votedFor = this.id;
    this.#role = 'candidate';
    this.#leader = null;
    this.resetRoleState();
    this.stats.electionsStarted++;
  }

  private becomeLeader(): void {
    this.#role = 'leader';
    this.#leader = this.id;
    this.resetRoleState();
    const next = this.log.lastIndex() + 1;
    this.syncProgress();
    // §8: a new leader commits a no-op to learn which entries are committed, and so
    // that entries of earlier terms commit with it (Figure 8).
    this.appendAsLeader([{ index: next, term: this.#term, type: 'noop', data: new Uint8Array(0) }]);
    // A joint configuration left by the previous leader is finished by this one; elected
    // by a configuration that drops it (see promotable), it commits it, then steps down.
    const unfinished = unfinishedChange(this.#config, this.id);
    if (unfinished !== null) this.change = { target: unfinished };
  }

  private resetRoleState(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetElectionTimeout();
    this.votes = new Map();
    this.progress = new Map();
    this.change = null;
    this.departing.clear();
    this.transferee = null;
    this.transferElapsed = 0;
    this.roundPending = false;
    this.proposeAnswers = new Map();
    // Reads already confirmed stay ready: they were confirmed while leader.
    this.refuseRemoteReads();
    this.reads.reset();
    // A snapshot half received (from an earlier term, or before an election timeout) will
    // not be finished: its memory goes.
    this.incoming.reset();
  }

  private resetElectionTimeout(): void {
    const [min, max] = this.opts.electionTicks;
    this.randomizedElectionTimeout = min + Math.floor(this.opts.random() * (max - min + 1));
  }

  private campaign(pre: boolean, transfer = false): void {
    if (pre) this.becomePreCandidate();
    else this.becomeCandidate();
    this.votes.set(this.id, true);
    // A pre-vote asks for the term a real election would use.
    const term = pre ? this.#term + 1 : this.#term;
    if (this.electionResult() === 'won') {
      if (pre) this.campaign(false);
      else this.becomeLeader();
      return;
    }
    for (const peer of this.voters()) {
      if (peer === this.id) continue;
      const rv: RequestVoteMessage = {
        type: 'RequestVote',
        term,
        from: this.id,
        to: peer,
        lastLogIndex: this.log.lastIndex(),
        lastLogTerm: this.log.lastTerm(),
        preVote: pre,
      };
      if (transfer) rv.transfer = true;
      this.send(rv);
    }
  }

  /** Won with a majority of every voter set (both during a joint change); lost if any set is lost. */
  private electionResult(): VoteResult {
    return this.#config === null ? 'pending' : jointVoteResult(this.#config, this.votes);
  }

  /** The highest value a majority of every voter set has reached, with `self` for this peer. */
  private jointCommitted(valueOf: (peer: PeerId) => number): number {
    return this.#config === null ? 0 : jointCommittedValue(this.#config, valueOf);
  }

  private handleTimeoutNow(m: TimeoutNowMessage): void {
    // The leader hands over: campaign at once, skipping pre-vote, past the voters' lease.
    if (m.from !== this.#leader || !this.promotable() || this.#role === 'leader') return;
    this.campaign(false, true);
  }

  // ---------------------------------------------------------------- elections

  private handleRequestVote(m: RequestVoteMessage): void {
    // Figure 2, RequestVote receiver: vote at most once per term, only for a log at
    // least as up-to-date as ours (§5.2, §5.4.1). A pre-vote for a future term may be
    // granted even having voted, since it binds nothing.
    const canVote =
      this.#votedFor === m.from ||
      (this.#votedFor === null && this.#leader === null) ||
      (m.preVote && m.term > this.#term);
    if (canVote && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm)) {
      if (!m.preVote) {
        this.electionElapsed = 0;
        this.#votedFor = m.from;
      }
      this.send({
        type: 'RequestVoteResponse',
        term: m.term,
        from: this.id,
        to: m.from,
        voteGranted: true,
        preVote: m.preVote,
      });
    } else {
      this.send({
        type: 'RequestVoteResponse',
        term: this.#term,
        from: this.id,
        to: m.from,
        voteGranted: false,
        preVote: m.preVote,
      });
    }
  }

  private handleVoteResponse(m: RequestVoteResponseMessage): void {
    const expecting = m.preVote ? this.#role === 'precandidate' : this.#role === 'candidate';
    if (!expecting) return;
    if (!this.voters().includes(m.from)) return;
    this.votes.set(m.from, m.voteGranted);
    const result = this.electionResult();
    if (result === 'won') {
      if (m.preVote) this.campaign(false);
      else this.becomeLeader();
    } else if (result === 'lost') {
      this.becomeFollower(this.#term, null);
    }
  }

  // ---------------------------------------------------------------- replication, follower side

  private handleAppendEntries(m: AppendEntriesMessage): void {
    if (this.#role === 'leader') {
      // Two leaders in one term would break Election Safety; only a bug or a forged message can cause it.
      this.stats.messagesDropped++;
      return;
    }
    if (this.#role !== 'follower') this.becomeFollower(this.#term, m.from);
    this.#leader = m.from;
    this.electionElapsed = 0;

    if (m.prevLogIndex < this.log.commitIndex) {
      // Everything up to our commit index matches any leader's log (Leader Completeness).
      this.send(this.appendResponse(m.from, true, this.log.commitIndex, m.prevLogIndex, 0, 0, m.seq));
      return;
    }
    if (!this.log.matchTerm(m.prevLogIndex, m.prevLogTerm)) {
      // Consistency check failed (§5.3). Hint where the leader should look: our log's
      // end, or the first index of the term we hold at prevLogIndex.
      let conflictIndex: number;
      let conflictTerm: number;
      if (m.prevLogIndex > this.log.lastIndex()) {
        conflictIndex = this.log.lastIndex() + 1;
        conflictTerm = 0;
      } else {
        conflictTerm = this.log.term(m.prevLogIndex) ?? 0;
        conflictIndex = this.log.firstIndexOfTerm(m.prevLogIndex);
      }
      this.send(this.appendResponse(m.from, false, 0, m.prevLogIndex, conflictIndex, conflictTerm, m.seq));
      return;
    }
    this.log.appendAfter(m.prevLogIndex, m.entries);
    const lastNew = m.prevLogIndex + m.entries.length;
    // Figure 2: commitIndex = min(leaderCommit, index of last new entry).
    this.log.commitTo(Math.min(m.leaderCommit, lastNew));
    // The latest configuration in the log rules, committed or not (§6); a truncation may have removed it.
    if (m.entries.some((e) => e.type === 'config') || this.log.term(this.configIndex) !== this.configTerm) {
      this.refreshConfiguration();
    }
    this.send(this.appendResponse(m.from, true, lastNew, m.prevLogIndex, 0, 0, m.seq));
  }

  private appendResponse(
    to: PeerId,
    success: boolean,
    matchIndex: number,
    prevLogIndex: number,
    conflictIndex: number,
    conflictTerm: number,
    seq: number,
  ): AppendEntriesResponseMessage {
    return {
      type: 'AppendEntriesResponse',
      term: this.#term,
      from: this.id,
      to,
      success,
      matchIndex,
      prevLogIndex,
      conflictIndex,
      conflictTerm,
      seq,
    };
  }

  private snapshotResponse(
    to: PeerId,
    index: number,
    nextOffset: number,
    done: boolean,
    seq: number,
  ): InstallSnapshotResponseMessage {
    return {
      type: 'InstallSnapshotResponse',
      term: this.#term,
      from: this.id,
      to,
      index,
      nextOffset,
      done,
      seq,
    };
  }

  /**
   * InstallSnapshot receiver (§7, Figure 13): gather the chunks in order; once the last
   * arrives, replace the log (keeping a suffix that follows the snapshot) and hand the
   * snapshot to the runtime to persist and restore. The final answer leaves with the
   * same Ready, so only after the snapshot is durable.
   */
  private handleInstallSnapshot(m: InstallSnapshotMessage): void {
    if (this.#role === 'leader') {
      this.stats.messagesDropped++;
      return;
    }
    if (this.#role !== 'follower') this.becomeFollower(this.#term, m.from);
    this.#leader = m.from;
    this.electionElapsed = 0;
    const { meta } = m;
    if (meta.index <= this.log.commitIndex) {
      // We already hold everything it covers, committed.
      this.send(this.snapshotResponse(m.from, meta.index, m.offset + m.data.length, true, m.seq));
      return;
    }
    const r = this.incoming.receive(meta.index, meta.term, m.offset, m.data, m.done);
    if ('tooLarge' in r) {
      this.stats.snapshotChunksRefused++;
      return;
    }
    if (!r.complete) {
      this.send(this.snapshotResponse(m.from, meta.index, r.nextOffset, false, m.seq));
      return;
    }
    const data = r.data;
    const snapshot: Snapshot = {
      meta: { index: meta.index, term: meta.term, configuration: normalizeConfiguration(meta.configuration) },
      data,
    };
    this.log.restore(meta.index, meta.term);
    this.snapshot = snapshot;
    this.pendingSnapshot = { snapshot, fromLeader: true };
    this.refreshConfiguration();
    this.send(this.snapshotResponse(m.from, meta.index, r.nextOffset, true, m.seq));
  }

  // ---------------------------------------------------------------- replication, leader side

  private appendAsLeader(entries: LogEntry[]): void {
    this.log.append(entries);
    if (entries.some((e) => e.type === 'config')) {
      this.refreshConfiguration();
      this.syncProgress();
    }
    for (const peer of this.progress.keys()) this.sendAppend(peer, false);
    // A single voter commits on its own once the entries are durable (see advance).
  }

  private handleAppendResponse(m: AppendEntriesResponseMessage): void {
    if (this.#role !== 'leader') return;
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.lastActiveTick = this.ticks;
    // Any answer in our term confirms the follower still takes us as leader.
    if (m.seq > pr.ackedSeq) {
      pr.ackedSeq = m.seq;
      this.releaseConfirmedReads();
    }
    const departing = this.departing.get(m.from);
    if (
      departing !== undefined &&
      departing.seq !== 0 &&
      m.success &&
      m.seq >= departing.seq &&
      m.matchIndex >= this.configIndex
    ) {
      // It holds the configuration that removed it, and knows it is committed.
      this.departing.delete(m.from);
      this.progress.delete(m.from);
      return;
    }
    if (m.success) {
      if (pr.acknowledge(m.matchIndex)) {
        this.maybeCommit();
        if (this.change !== null) this.advanceChange();
        if (m.from === this.transferee) this.maybeSendTimeoutNow();
      }
      this.sendAppend(m.from, false);
      return;
    }
    let hint = m.conflictIndex;
    if (m.conflictTerm > 0) {
      const last = this.log.lastIndexOfTerm(m.conflictTerm);
      if (last > 0) hint = last + 1;
    }
    if (hint < 1) hint = 1;
    if (pr.reject(m.prevLogIndex, hint)) this.sendAppend(m.from, false);
  }

  /**
   * Sends the follower what it lacks, as far as its progress state allows: one probe,
   * or a stream of batches up to the in-flight window. A heartbeat always goes out.
   */
  private sendAppend(peer: PeerId, heartbeat: false | 'timer' | 'round'): void {
    const pr = this.progress.get(peer);
    if (pr === undefined) return;
    const last = this.log.lastIndex();
    let sentAny = false;
    while (pr.canSend() && pr.nextIndex <= last) {
      const prev = pr.nextIndex - 1;
      const prevTerm = this.log.term(prev);
      if (prevTerm === undefined) {
        // The follower needs entries we compacted away: send the snapshot instead (§7).
        this.sendSnapshot(peer, pr, heartbeat !== false);
        return;
      }
      const entries = this.batchFrom(pr.nextIndex);
      this.send({
        type: 'AppendEntries',
        term: this.#term,
        from: this.id,
        to: peer,
        prevLogIndex: prev,
        prevLogTerm: prevTerm,
        entries,
        leaderCommit: this.log.commitIndex,
        seq: this.seq,
      });
      sentAny = true;
      const lastSent = entries.length > 0 ? entries[entries.length - 1]!.index : prev;
      pr.sent(lastSent, entries.length > 0);
      if (pr.state === 'probe') break;
    }
    if (pr.state === 'snapshot') {
      this.sendSnapshot(peer, pr, heartbeat !== false);
      return;
    }
    if (heartbeat !== false && !sentAny) {
      // Nothing new to send, the window is full or a probe is out: still prove leadership,
      // carrying no entries, at a position the follower holds (see Progress.heartbeatIndex).
      let prev = pr.heartbeatIndex(heartbeat === 'timer');
      if (this.log.term(prev) === undefined) prev = pr.nextIndex - 1;
      const prevTerm = this.log.term(prev);
      if (prevTerm === undefined) {
        // Everything in flight is behind our log's start now: only the snapshot can help.
        this.sendSnapshot(peer, pr, true);
        return;
      }
      if (pr.canSend()) pr.sent(prev, false);
      this.send({
        type: 'AppendEntries',
        term: this.#term,
        from: this.id,
        to: peer,
        prevLogIndex: prev,
        prevLogTerm: prevTerm,
        entries: [],
        leaderCommit: Math.min(this.log.commitIndex, prev),
        seq: this.seq,
      });
    }
  }

  private batchFrom(from: number): LogEntry[] {
    const last = Math.min(this.log.lastIndex(), from + this.opts.maxBatchEntries - 1);
    const candidates = this.log.slice(from, last + 1);
    let bytes = 0;
    for (let i = 0; i < candidates.length; i++) {
      bytes += candidates[i]!.data.length + 32;
      if (bytes > this.opts.maxBatchBytes && i > 0) return candidates.slice(0, i);
    }
    return candidates;
  }

  /**
   * Streams the latest snapshot to a follower in chunks, at most `snapshotWindow`
   * unacknowledged at once. A heartbeat with no acknowledgement since the last one
   * resends from the last acknowledged offset (a chunk or its answer was lost).
   */
  private sendSnapshot(peer: PeerId, pr: Progress, heartbeat: boolean): void {
    const snap = this.snapshot;
    if (snap === null) return;
    if (pr.state !== 'snapshot' || pr.snapshotIndex !== snap.meta.index) pr.becomeSnapshot(snap.meta.index);
    const chunkBytes = this.opts.snapshotChunkBytes ?? 512 * 1024;
    const window = this.opts.snapshotWindow ?? 4;
    for (const c of nextSnapshotChunks(pr, snap.data.length, chunkBytes, window, heartbeat)) {
      this.send({
        type: 'InstallSnapshot',
        term: this.#term,
        from: this.id,
        to: peer,
        meta: {
          index: snap.meta.index,
          term: snap.meta.term,
          configuration: normalizeConfiguration(snap.meta.configuration),
        },
        offset: c.offset,
        data: snap.data.subarray(c.offset, c.end),
        done: c.done,
        seq: this.seq,
      });
    }
  }

  private handleSnapshotResponse(m: InstallSnapshotResponseMessage): void {
    if (this.#role !== 'leader') return;
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.lastActiveTick = this.ticks;
    if (m.seq > pr.ackedSeq) {
      pr.ackedSeq = m.seq;
      this.releaseConfirmedReads();
    }
    if (pr.state !== 'snapshot' || m.index !== pr.snapshotIndex) return;
    if (m.done) {
      // Installed and durable: the follower's log now starts right after the snapshot.
      pr.snapshotInstalled(m.index);
      this.maybeCommit();
      // A learner or a transfer target may just have caught up through the snapshot.
      if (this.change !== null) this.advanceChange();
      if (m.from === this.transferee) this.maybeSendTimeoutNow();
      this.sendAppend(m.from, false);
      return;
    }
    pr.snapshotAcked(m.nextOffset, this.snapshot?.data.length ?? 0);
    this.sendSnapshot(m.from, pr, false);
  }

  /** `timer`: the heartbeat timer fired; `round`: a ReadIndex or release round needs one now. */
  private broadcastHeartbeat(kind: 'timer' | 'round'): void {
    for (const [peer, pr] of this.progress) {
      // A heartbeat re-arms a probe that got no answer.
      if (pr.state === 'probe') pr.probeSent = false;
      this.sendAppend(peer, kind);
    }
  }

  /**
   * Commit rule (§5.3, §5.4.2, Figure 8): the highest index stored on a majority, but
   * only if its entry is of the current term; earlier entries commit with it.
   */
  private maybeCommit(): void {
    const index = this.jointCommitted((v) =>
      v === this.id ? this.log.stableIndex : (this.progress.get(v)?.matchIndex ?? 0),
    );
    if (index > this.log.commitIndex && this.log.term(index) === this.#term) {
      this.log.commitTo(index);
      if (this.log.commitIndex >= this.configIndex) this.releaseDeparting();
      if (this.change !== null) this.advanceChange();
      if (this.reads.hasWaitingForCommit() && this.committedInCurrentTerm()) {
        for (const ctx of this.reads.takeWaitingForCommit()) this.queueRead(ctx);
      }
    }
  }

  private quorumActive(): boolean {
    const window = this.opts.electionTicks[0];
    const active = (v: PeerId): number => {
      if (v === this.id) return 1;
      const pr = this.progress.get(v);
      return pr !== undefined && this.ticks - pr.lastActiveTick < window ? 1 : 0;
    };
    return this.jointCommitted(active) === 1;
  }

  // ---------------------------------------------------------------- ReadIndex

  private queueRead(context: number): void {
    if (!this.roundPending) {
      this.seq++;
      this.roundPending = true;
    }
    this.reads.waitForQuorum(context, this.log.commitIndex, this.seq);
    this.releaseConfirmedReads();
  }

  private releaseConfirmedReads(): void {
    if (!this.reads.hasWaitingForQuorum()) return;
    this.reads.confirm(
      this.jointCommitted((v) => (v === this.id ? this.seq : (this.progress.get(v)?.ackedSeq ?? 0))),
    );
  }

  /** Reads waiting for confirmation (not yet in a Ready), by context. */
  pendingReadContexts(): number[] {
    return this.reads.pendingContexts();
  }

  // ---------------------------------------------------------------- membership

  /** Every peer whose vote counts (both sets during a joint change). */
  private voters(): PeerId[] {
    return this.#config === null ? [] : allVoters(this.#config);
  }

  /** Whether this peer may campaign: configured, and a voter (learners and removed peers never campaign). */
  promotable(): boolean {
    if (this.#config === null) return false;
    if (allVoters(this.#config).includes(this.id)) return true;
    // The latest configuration drops this peer but may not be committed: this peer may be
    // the only one holding it (a leader that removed itself and lost leadership before
    // the new voters stored it). They are still in the joint configuration and need this
    // peer's vote, which it refuses them (its log is longer): it must run itself, as a
    // voter of the configuration before, until it learns the latest one committed.
    return (
      this.log.commitIndex < this.configIndex &&
      allVoters(this.configurationAt(this.configIndex - 1)).includes(this.id)
    );
  }

  /** On the leader: track progress for exactly the peers of the configuration. */
  private syncProgress(): void {
    if (this.#role !== 'leader' || this.#config === null) return;
    const keep = new Set([...allPeers(this.#config), ...this.departing.keys()]);
    keep.delete(this.id);
    const peers = [...keep];
    for (const p of peers) {
      // A new follower gets a full election timeout before it counts as silent.
      if (!this.progress.has(p))
        this.progress.set(p, new Progress(this.log.lastIndex() + 1, this.opts.maxInflight, this.ticks));
    }
    for (const p of [...this.progress.keys()]) if (!peers.includes(p)) this.progress.delete(p);
  }

  private proposeConfigEntry(config: Configuration): void {
    if (this.#config !== null) {
      for (const p of droppedPeers(this.#config, config, this.id))
        this.departing.set(p, { seq: 0, until: 0 });
      for (const p of allPeers(config)) this.departing.delete(p);
    }
    const index = this.log.lastIndex() + 1;
    this.appendAsLeader([
      { index, term: this.#term, type: 'config', data: encodeConfiguration(normalizeConfiguration(config)) },
    ]);
  }

  /**
   * Moves a membership change on, one configuration entry at a time, each only once the
   * previous one has committed: learners caught up, then joint, then final (§6).
   */
  private advanceChange(): void {
    const change = this.change;
    const cfg = this.#config;
    if (change === null || cfg === null || this.#role !== 'leader') return;
    if (this.log.commitIndex < this.configIndex) return;
    const step = nextConfiguration(cfg, change.target, () => this.learnersCaughtUp(change, cfg));
    if (step.kind === 'propose') {
      this.proposeConfigEntry(step.config);
    } else if (step.kind === 'done') {
      this.change = null;
      if (!cfg.members.includes(this.id)) {
        // Removed from the cluster: the final configuration is committed, so step down (§6),
        // handing over first so that the cluster does not wait out an election timeout.
        this.handOverOnRemoval(cfg);
        this.becomeFollower(this.#term, null);
      }
    }
  }

  /**
   * Learners catch up in rounds (dissertation §4.2.1): a round replicates up to the
   * leader's last index when it starts; a learner that finishes a round within an
   * election timeout is close enough to vote. Under steady load a learner is always a
   * few entries behind the commit index, so "matchIndex >= commitIndex" alone may never hold.
   */
  private learnersCaughtUp(
    change: { target: PeerId[]; round?: { index: number; start: number } },
    cfg: Configuration,
  ): boolean {
    const learners = incomingVoters(cfg, change.target, this.id);
    const behind = (upTo: number): boolean =>
      learners.some((p) => (this.progress.get(p)?.matchIndex ?? 0) < upTo);
    if (!behind(this.log.commitIndex)) return true;
    const round = change.round;
    if (round === undefined) {
      change.round = { index: this.log.lastIndex(), start: this.ticks };
      return false;
    }
    if (behind(round.index)) return false;
    if (this.ticks - round.start > this.opts.electionTicks[0]) {
      change.round = { index: this.log.lastIndex(), start: this.ticks };
      return false;
    }
    return true;
  }

  /** The configurations that dropped the departing peers are committed: tell them, in a new heartbeat round. */
  private releaseDeparting(): void {
    let round = 0;
    for (const [p, d] of this.departing) {
      if (d.seq !== 0) continue;
      if (round === 0) {
        this.seq++;
        this.roundPending = true;
        round = this.seq;
      }
      this.departing.set(p, { seq: round, until: this.ticks + this.opts.electionTicks[1] });
    }
  }

  /**
   * A leader that removed itself tells the remaining voter with the most of its log to
   * campaign at once (TimeoutNow, as in a transfer). The campaign is an ordinary election
   * in the next term: it wins only with the votes of a majority whose logs it is at least as
   * up to date as, so the hand-off is a shortcut, never a safety assumption.
   */
  private handOverOnRemoval(cfg: Configuration): void {
    let best: PeerId | null = null;
    let bestMatch = -1;
    for (const p of cfg.members) {
      const m = this.progress.get(p)?.matchIndex ?? 0;
      if (m > bestMatch) {
        best = p;
        bestMatch = m;
      }
    }
    if (best !== null && bestMatch >= this.configIndex)
      this.send({ type: 'TimeoutNow', term: this.#term, from: this.id, to: best });
  }

  private maybeSendTimeoutNow(): void {
    const t = this.transferee;
    if (t === null || this.timeoutNowSent) return;
    const pr = this.progress.get(t);
    if (pr === undefined || pr.matchIndex !== this.log.lastIndex()) return;
    this.timeoutNowSent = true;
    this.send({ type: 'TimeoutNow', term: this.#term, from: this.id, to: t });
  }

  /** The configuration in force at `index`: the latest config entry at or before it, else the snapshot's. */
  private configurationAt(index: number): Configuration {
    const latest = latestConfiguration(this.log.slice(this.log.firstIndex(), index + 1));
    if (latest !== undefined) return latest.config;
    const c = this.snapshot?.meta.configuration ?? this.#config;
    return c === null ? { members: [] } : normalizeConfiguration(c);
  }

  private refreshConfiguration(): void {
    const latest = latestConfiguration(this.log.slice(this.log.firstIndex(), this.log.lastIndex() + 1));
    if (latest === undefined) {
      const snap = this.snapshot?.meta;
      this.#config = snap === undefined ? null : normalizeConfiguration(snap.configuration);
      this.configIndex = snap?.index ?? 0;
      this.configTerm = snap?.term ?? 0;
    } else {
      this.#config = latest.config;
      this.configIndex = latest.index;
      this.configTerm = this.log.term(latest.index) ?? 0;
    }
  }

  // ---------------------------------------------------------------- plumbing

  private send(m: RaftMessage): void {
    this.msgs.push(m);
  }
}
