import { msgpackCodec } from '../codec.js';
import {
  ElectionInProgressError,
  InvalidArgumentError,
  NotLeaderError,
  RaftError,
  StoppedError,
  TimeoutError,
} from '../errors.js';
import { validateMessage } from '../messages.js';
import { decodeConfiguration, normalizeMembers } from '../protocol/membership.js';
import { Raft, type Ready, type SoftState } from '../protocol/raft.js';
import type {
  Clock,
  Codec,
  Configuration,
  EntryType,
  LogEntry,
  LogWrite,
  PeerId,
  RaftMessage,
  Snapshot,
  StateMachine,
  TimerHandle,
} from '../types.js';
import { resolveOptions, systemClock, type PeerOptions, type ResolvedOptions } from './options.js';
import { Fifo } from './fifo.js';
import {
  eventLoopDelay,
  PeerRecorder,
  watchEventLoop,
  type EventLoopDelay,
  type RaftMetrics,
} from './metrics.js';

/** Options of one call. */
export interface CallOptions {
  /** Milliseconds before the call rejects with `RAFT_TIMEOUT`. @default 3000 */
  timeout?: number;
  /** Aborts the call with `RAFT_ABORTED`. A write may still commit. */
  signal?: AbortSignal;
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
  /** Stops gracefully: pending calls reject with `RAFT_STOPPED`, the log store and transport close. */
  stop(): Promise<void>;
  /**
   * Resolves once the peer has stopped, with why: a `RAFT_STOPPED` error whose `cause` is
   * the log store's failure when the peer stopped itself (fail-stop), or none after `stop()`.
   */
  whenStopped(): Promise<RaftError>;
}

interface PendingWrite {
  term: number;
  resolve: (reply: unknown) => void;
  reject: (err: RaftError) => void;
  done: () => void;
}

interface PendingRead {
  query: unknown;
  /** Set once leadership is confirmed: serve when lastApplied reaches it. */
  index: number | null;
  resolve: (reply: unknown) => void;
  reject: (err: RaftError) => void;
}

type Input =
  | { kind: 'tick' }
  | { kind: 'message'; message: RaftMessage }
  | { kind: 'propose'; type: EntryType; data: Uint8Array; pending: PendingWrite }
  | { kind: 'read'; context: number }
  | { kind: 'snapshot'; index: number; data: Uint8Array; ms: number }
  | { kind: 'bootstrap'; members: PeerId[]; pending: PendingWrite }
  | { kind: 'reconfigure'; members: PeerId[]; pending: PendingWrite }
  | { kind: 'transfer'; target: PeerId; pending: PendingWrite };

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- peers of every machine type share one registry
const registry = new Map<PeerId, RaftPeer<any, any, any, any>>();

/** Looks up a peer started in this process. */
export function lookupPeer(name: PeerId): RaftPeer<unknown, unknown, unknown, unknown> | undefined {
  const peer = registry.get(name);
  return peer?.booted === true ? peer : undefined;
}

/**
 * The runtime of one peer: owns the clock, the log store, the transport and the
 * state machine, and loops: collect inputs, step the protocol, persist (one durable
 * write per turn), send, apply, answer callers.
 */
export class RaftPeer<S, C, Q, R> implements Peer<C, Q, R> {
  readonly name: PeerId;
  private readonly opts: ResolvedOptions;
  private readonly machine: StateMachine<S, C, Q, R>;
  private readonly codec: Codec;
  private readonly clock: Clock;
  private raft!: Raft;
  private state!: S;

  private inbox: Input[] = [];
  private looping = false;
  /** Set once start completes; only booted peers are found by name. */
  booted = false;
  private stopped = false;
  private stopping: Promise<void> | null = null;
  private stopReason: RaftError | null = null;
  private readonly stoppedWaiters: ((reason: RaftError) => void)[] = [];
  private loopIdle: Promise<void> = Promise.resolve();
  private tickTimer: TimerHandle | null = null;
  private soft: SoftState = { role: 'follower', leader: null };

  private applyQueue = new Fifo<LogEntry | Snapshot>();
  /** Index of the latest snapshot taken or restored, for the snapshot policy. */
  private lastSnapshotIndex = 0;
  private applying = false;
  private lastApplied = 0;

  private pendingWrites = new Map<number, PendingWrite>();
  /** A membership change this peer leads: settles when the final configuration applies (or by timeout). */
  private pendingConfigChange: { target: PeerId[]; pending: PendingWrite; after: number } | null = null;
  private pendingTransfer: { target: PeerId; pending: PendingWrite } | null = null;
  private pendingReads = new Map<number, PendingRead>();
  private confirmedReads: number[] = [];
  private nextReadContext = 1;
  private readonly recorder: PeerRecorder;
  private releaseLoopMonitor: () => void = () => undefined;
  private readonly metrics: PeerMetrics = {
    messagesDropped: 0,
    messagesReceived: 0,
    messagesSent: 0,
    logWrites: 0,
    entriesApplied: 0,
    electionsStarted: 0,
    stateMachineErrors: 0,
    snapshotsTaken: 0,
    snapshotsInstalled: 0,
  };

  private constructor(machine: StateMachine<S, C, Q, R>, opts: ResolvedOptions) {
    this.machine = machine;
    this.opts = opts;
    this.name = opts.name;
    this.codec = opts.codec ?? msgpackCodec();
    this.clock = opts.clock ?? systemClock;
    this.recorder = new PeerRecorder(this.clock);
  }

  /** Opens the log store, rebuilds the protocol from it, and joins the network. */
  static async start<S, C, Q, R>(
    machine: StateMachine<S, C, Q, R>,
    options: PeerOptions,
  ): Promise<RaftPeer<S, C, Q, R>> {
    if (
      typeof machine !== 'object' ||
      machine === null ||
      typeof machine.init !== 'function' ||
      typeof machine.handleWrite !== 'function' ||
      typeof machine.handleRead !== 'function'
    ) {
      throw new InvalidArgumentError('startPeer needs a StateMachine with init, handleWrite and handleRead');
    }
    const opts = resolveOptions(options);
    if (opts.register && registry.has(opts.name))
      throw new InvalidArgumentError(
        `a peer named ${JSON.stringify(opts.name)} already runs in this process`,
      );
    const peer = new RaftPeer(machine, opts);
    if (opts.register) registry.set(opts.name, peer);
    try {
      await peer.boot();
    } catch (err) {
      if (registry.get(opts.name) === peer) registry.delete(opts.name);
      await opts.log.close().catch(() => undefined);
      throw err;
    }
    peer.booted = true;
    return peer;
  }

  private async boot(): Promise<void> {
    const stored = await this.opts.log.open();
    let snapshot: Snapshot | undefined;
    if (stored.snapshot !== undefined) {
      if (this.opts.log.loadSnapshot === undefined)
        throw new InvalidArgumentError('the log store reports a snapshot but has no loadSnapshot()');
      snapshot = await this.opts.log.loadSnapshot();
      if (snapshot === undefined)
        throw new RaftError(
          'RAFT_STORAGE_CORRUPT',
          `the log store reports a snapshot at ${stored.snapshot.index} but cannot load it`,
        );
      if (typeof this.machine.restore !== 'function') {
        throw new InvalidArgumentError(
          'the log store holds a snapshot, but the state machine has no restore()',
        );
      }
    }
    const from = Math.max(stored.firstIndex, (snapshot?.meta.index ?? 0) + 1);
    const entries = stored.lastIndex >= from ? await this.opts.log.entries(from, stored.lastIndex + 1) : [];
    const tick = this.opts.tickMs;
    this.raft = new Raft(
      {
        id: this.name,
        electionTicks: [
          Math.max(2, Math.round(this.opts.electionTimeoutMs[0] / tick)),
          Math.max(2, Math.round(this.opts.electionTimeoutMs[1] / tick)),
        ],
        heartbeatTicks: Math.max(1, Math.round(this.opts.heartbeatIntervalMs / tick)),
        random: this.opts.random,
        maxInflight: this.opts.maxInflight,
        maxBatchEntries: this.opts.maxBatchEntries,
        maxBatchBytes: this.opts.maxBatchBytes,
        preVote: this.opts.preVote,
        checkQuorum: this.opts.checkQuorum,
        snapshotChunkBytes: this.opts.snapshotChunkBytes,
        snapshotWindow: 4,
      },
      snapshot === undefined
        ? { hardState: stored.hardState, entries }
        : { hardState: stored.hardState, entries, snapshot },
    );
    if (snapshot !== undefined) {
      // Restart from the latest snapshot; only the entries after it are replayed (§7).
      this.state = await this.machine.restore!(snapshot.data, this.name);
      this.lastApplied = snapshot.meta.index;
      this.lastSnapshotIndex = snapshot.meta.index;
    } else {
      this.state = this.machine.init(this.name);
    }
    await this.opts.transport.start((m) => this.receive(m));
    this.releaseLoopMonitor = watchEventLoop();
    this.scheduleTick();
    const { term, lastIndex, configuration } = this.raft.status();
    this.log('info', { term, lastLogIndex: lastIndex, configuration }, 'peer started');
  }

  // ---------------------------------------------------------------- public API

  leader(): PeerId | null {
    return this.stopped ? null : this.raft.leader;
  }

  status(): PeerStatus {
    const r = this.raft.status();
    return {
      name: this.name,
      role: r.role === 'leader' ? 'leader' : r.role === 'follower' ? 'follower' : 'candidate',
      term: r.term,
      leader: this.stopped ? null : r.leader,
      votedFor: r.votedFor,
      commitIndex: r.commitIndex,
      lastApplied: this.lastApplied,
      lastLogIndex: r.lastIndex,
      lastLogTerm: r.lastTerm,
      configuration: r.configuration ?? { members: [] },
      snapshotIndex: r.snapshotIndex,
      snapshotTerm: r.snapshotTerm,
      firstLogIndex: r.firstIndex,
      stopped: this.stopped,
      metrics: {
        ...this.metrics,
        electionsStarted: r.electionsStarted,
        messagesDropped: this.metrics.messagesDropped + r.messagesDropped,
      },
      eventLoopDelay: this.stopped ? null : eventLoopDelay(),
    };
  }

  figures(): RaftMetrics {
    return this.recorder.figures(this.raft, this.status(), this.opts.maxInflight);
  }

  write(command: C, opts?: CallOptions): Promise<R> {
    const call = this.call<R>(opts, (pending) => {
      this.checkLeader();
      let data: Uint8Array;
      try {
        data = this.codec.encode(command);
      } catch (err) {
        throw new InvalidArgumentError('the command cannot be encoded by the codec', { cause: err });
      }
      this.enqueue({ kind: 'propose', type: 'command', data, pending });
    });
    return this.recorder.time('proposals', call);
  }

  read(query: Q, opts?: CallOptions): Promise<R> {
    const call = this.call<R>(opts, (pending) => {
      this.checkLeader();
      const context = this.nextReadContext++;
      pending.done = () => {
        this.pendingReads.delete(context);
      };
      this.pendingReads.set(context, {
        query,
        index: null,
        resolve: pending.resolve,
        reject: pending.reject,
      });
      this.enqueue({ kind: 'read', context });
    });
    return this.recorder.time('reads', call);
  }

  setConfiguration(members: PeerId[], opts?: CallOptions): Promise<Configuration> {
    return this.call<Configuration>(opts, (pending) => {
      const config = validateMembers(members);
      const current = this.raft.config;
      if (current !== null) {
        this.checkLeader();
        if (
          sameMembers(current.members, config.members) &&
          current.learners === undefined &&
          current.outgoing === undefined &&
          this.raft.configurationCommitted()
        ) {
          pending.resolve({ members: current.members.slice() });
          return;
        }
        this.enqueue({ kind: 'reconfigure', members: config.members, pending });
        return;
      }
      if (!config.members.includes(this.name)) {
        throw new InvalidArgumentError(
          `setConfiguration must be called on one of the members; ${this.name} is not in [${config.members.join(', ')}]`,
        );
      }
      this.enqueue({ kind: 'bootstrap', members: config.members, pending });
    });
  }

  transferLeadership(target: PeerId, opts?: CallOptions): Promise<void> {
    return this.call<void>(opts, (pending) => {
      if (typeof target !== 'string' || target.length === 0)
        throw new InvalidArgumentError('target must be a peer name');
      this.checkLeader();
      this.enqueue({ kind: 'transfer', target, pending });
    });
  }

  getEntry(index: number): Promise<EntryInfo | undefined> {
    if (this.stopped) return Promise.reject(new StoppedError());
    if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 1) {
      return Promise.reject(
        new InvalidArgumentError(`index must be a positive integer, got ${String(index)}`),
      );
    }
    const e = this.raft.log.entry(index);
    if (e === undefined) return Promise.resolve(undefined);
    const info: EntryInfo = { index: e.index, term: e.term, type: e.type, data: e.data.slice() };
    if (e.type === 'command') {
      try {
        info.command = this.codec.decode(e.data);
      } catch {
        // Left undecoded: `data` still holds the bytes.
      }
    } else if (e.type === 'config') {
      const config = decodeConfiguration(e.data);
      if (config !== undefined) info.configuration = config;
    }
    return Promise.resolve(info);
  }

  stop(): Promise<void> {
    return this.beginShutdown(new StoppedError('the peer was stopped'));
  }

  whenStopped(): Promise<RaftError> {
    if (this.stopReason !== null && this.stopped) return Promise.resolve(this.stopReason);
    return new Promise((resolve) => this.stoppedWaiters.push(resolve));
  }

  /** A read-only view of the protocol's state, for test tools (see `inspectPeer`). */
  inspect(): PeerInspection {
    const r = this.raft.status();
    const log = this.raft.log;
    return {
      name: this.name,
      role: r.role,
      term: r.term,
      votedFor: r.votedFor,
      leader: r.leader,
      commitIndex: r.commitIndex,
      lastApplied: this.lastApplied,
      firstLogIndex: r.firstIndex,
      lastLogIndex: r.lastIndex,
      stableIndex: r.stableIndex,
      termAt: (index) => log.term(index),
      entryAt: (index) => log.entry(index),
      configuration: r.configuration,
      stopped: this.stopped,
    };
  }

  // ---------------------------------------------------------------- calls

  /**
   * Runs `start` with a pending call that settles once: by the runtime, by its
   * timeout, by its abort signal, or when the peer stops.
   */
  private call<T>(opts: CallOptions | undefined, start: (pending: PendingWrite) => void): Promise<T> {
    if (this.stopped) return Promise.reject(new StoppedError());
    let timeoutMs = this.opts.defaultTimeoutMs;
    if (opts !== undefined) {
      if (typeof opts !== 'object' || opts === null)
        return Promise.reject(new InvalidArgumentError('options must be an object'));
      if (opts.timeout !== undefined) {
        if (typeof opts.timeout !== 'number' || !(opts.timeout > 0) || !Number.isFinite(opts.timeout)) {
          return Promise.reject(
            new InvalidArgumentError(
              `option timeout must be a positive number of milliseconds, got ${String(opts.timeout)}`,
            ),
          );
        }
        timeoutMs = opts.timeout;
      }
      if (opts.signal !== undefined && !(opts.signal instanceof AbortSignal)) {
        return Promise.reject(new InvalidArgumentError('option signal must be an AbortSignal'));
      }
    }
    const signal = opts?.signal;
    if (signal?.aborted === true)
      return Promise.reject(new RaftError('RAFT_ABORTED', 'the call was aborted', { cause: signal.reason }));
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let timer: TimerHandle | null = null;
      const onAbort = (): void =>
        fail(
          new RaftError('RAFT_ABORTED', 'the call was aborted; a write may still commit', {
            cause: signal?.reason,
          }),
        );
      const cleanup = (): void => {
        if (timer !== null) this.clock.clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const pending: PendingWrite = {
        term: 0,
        resolve: (v) => {
          if (settled) return;
          settled = true;
          cleanup();
          pending.done();
          resolve(v as T);
        },
        reject: (e) => fail(e),
        done: () => undefined,
      };
      const fail = (e: RaftError): void => {
        if (settled) return;
        settled = true;
        cleanup();
        pending.done();
        reject(e);
      };
      timer = this.clock.setTimeout(() => fail(new TimeoutError()), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        start(pending);
      } catch (err) {
        fail(
          RaftError.isInstance(err)
            ? err
            : new RaftError('RAFT_INVALID_ARGUMENT', String(err), { cause: err }),
        );
      }
    });
  }

  private checkLeader(): void {
    if (this.raft.role === 'leader') return;
    const leader = this.raft.leader;
    if (leader !== null) throw new NotLeaderError(leader);
    throw new ElectionInProgressError();
  }

  private notLeaderError(indeterminate: boolean): RaftError {
    const leader = this.raft.leader;
    if (leader === null || leader === this.name) {
      return indeterminate
        ? new NotLeaderError(null, {
            indeterminate,
            message: 'this peer lost leadership; the write may still commit',
          })
        : new ElectionInProgressError();
    }
    return new NotLeaderError(leader, {
      indeterminate,
      ...(indeterminate
        ? { message: `this peer lost leadership to ${leader}; the write may still commit` }
        : {}),
    });
  }

  // ---------------------------------------------------------------- the loop

  private receive(message: unknown): void {
    if (this.stopped) return;
    const v = validateMessage(message);
    if (!v.ok || v.message.to !== this.name) {
      this.metrics.messagesDropped++;
      return;
    }
    this.metrics.messagesReceived++;
    if (v.message.type === 'AppendEntriesResponse' || v.message.type === 'InstallSnapshotResponse')
      this.recorder.lastAck.set(v.message.from, this.clock.now());
    this.enqueue({ kind: 'message', message: v.message });
  }

  private scheduleTick(): void {
    if (this.stopped) return;
    this.tickTimer = this.clock.setTimeout(() => {
      this.tickTimer = null;
      this.enqueue({ kind: 'tick' });
      this.scheduleTick();
    }, this.opts.tickMs);
  }

  private enqueue(input: Input): void {
    this.inbox.push(input);
    if (!this.looping && !this.stopped) {
      this.looping = true;
      this.loopIdle = this.loop();
    }
  }

  private async loop(): Promise<void> {
    // Let the callers of this turn add their inputs first: they share one durable write.
    await Promise.resolve();
    try {
      while (!this.stopped) {
        const inputs = this.inbox;
        this.inbox = [];
        try {
          this.handleInputs(inputs);
        } catch (err) {
          this.failStop(err, 'the protocol threw on propose');
        }
        if (this.stopped) return;
        if (!this.raft.hasReady()) {
          this.settleTransfer();
          if (this.inbox.length === 0) break;
          continue;
        }
        const rd = this.raft.ready();
        // A leader's AppendEntries (and snapshot chunks, TimeoutNow) may leave while its own
        // write is under way (dissertation §10.2.1): the leader counts itself in a quorum
        // only up to what is durable, and its term was persisted before it could lead.
        // Votes, vote requests and acknowledgements wait for the write (persist before you promise).
        const early: RaftMessage[] = [];
        const late: RaftMessage[] = [];
        // A term (or vote) this Ready changes is not durable yet: a single voter that wins
        // its own election in the same turn must not reveal the new term before it is.
        for (const m of rd.messages)
          (rd.hardState === undefined &&
          (m.type === 'AppendEntries' || m.type === 'InstallSnapshot' || m.type === 'TimeoutNow')
            ? early
            : late
          ).push(m);
        this.send(early);
        if (rd.snapshot !== undefined && !this.storeSupportsSnapshots()) {
          throw new RaftError(
            'RAFT_STORAGE_UNAVAILABLE',
            'a snapshot arrived but the log store cannot store snapshots (no loadSnapshot/compact)',
          );
        }
        if (rd.hardState !== undefined || rd.entries.length > 0 || rd.snapshot !== undefined) {
          // Persist before you promise: hard state, snapshot and entries are durable, in
          // one atomic write, before any message that depends on them is sent (Figure 2,
          // §5.2, §5.3, §7).
          const write: LogWrite = {};
          if (rd.hardState !== undefined) write.hardState = rd.hardState;
          if (rd.snapshot !== undefined) write.snapshot = rd.snapshot.snapshot;
          if (rd.entries.length > 0) write.entries = rd.entries;
          const t0 = this.clock.now();
          await this.opts.log.write(write);
          this.metrics.logWrites++;
          this.recorder.logWrite(rd.entries.length, this.clock.now() - t0);
          if (this.stopped) return;
        }
        if (rd.compactTo !== undefined) {
          // The snapshot is durable: the entries it covers may go. A crash before this
          // leaves them, which is consistent too.
          await this.opts.log.compact!(rd.compactTo);
          if (this.stopped) return;
        }
        this.send(late);
        this.raft.advance(rd);
        this.afterReady(rd);
      }
    } catch (err) {
      // A failed durable write leaves no safe way on: fail-stop.
      this.log('error', { err }, 'log store write failed; stopping the peer');
      void this.beginShutdown(new StoppedError('the peer stopped: its log store failed', { cause: err }));
    } finally {
      this.looping = false;
    }
  }

  private handleInputs(inputs: Input[]): void {
    let proposals: Extract<Input, { kind: 'propose' }>[] = [];
    const flush = (): void => {
      if (proposals.length === 0) return;
      const batch = proposals;
      proposals = [];
      const result = this.raft.propose(batch.map((p) => ({ type: p.type, data: p.data })));
      if (typeof result === 'string') {
        const err = this.notLeaderError(false);
        for (const p of batch) p.pending.reject(err);
        return;
      }
      batch.forEach((p, i) => this.trackWrite(result.index + i, result.term, p.pending));
    };
    for (const input of inputs) {
      if (input.kind === 'propose') {
        proposals.push(input);
        continue;
      }
      flush();
      try {
        this.handleInput(input);
      } catch (err) {
        // Messages were validated on arrival, so a throw here is a broken protocol
        // assertion, and the protocol may be half-changed: fail-stop, as applying does.
        this.failStop(err, `the protocol threw on ${input.kind}`);
        return;
      }
    }
    flush();
  }

  /** Stops the peer at once after an internal failure, logging the cause. */
  private failStop(err: unknown, what: string): void {
    this.log('error', { err }, `${what}; stopping the peer`);
    void this.beginShutdown(new StoppedError(`the peer stopped: ${what}`, { cause: err }));
  }

  private handleInput(input: Exclude<Input, { kind: 'propose' }>): void {
    switch (input.kind) {
      case 'tick':
        this.raft.tick();
        return;
      case 'message':
        this.raft.step(input.message);
        return;
      case 'snapshot':
        if (
          this.raft.snapshotTaken(input.index, input.data, input.index - this.opts.snapshotTrailingEntries)
        ) {
          this.metrics.snapshotsTaken++;
          this.recorder.snapshot('taken', this.raft.term, input.index, input.data.length, input.ms);
          this.log('info', { index: input.index, bytes: input.data.length }, 'snapshot taken');
        }
        return;
      case 'read': {
        const read = this.pendingReads.get(input.context);
        if (read === undefined) return;
        if (this.raft.readIndex(input.context) !== 'ok') read.reject(this.notLeaderError(false));
        return;
      }
      case 'reconfigure': {
        // The protocol accepts a change only once the latest configuration is committed.
        const before = this.raft.config;
        const after = this.raft.log.lastIndex();
        const r = this.raft.proposeConfiguration(input.members);
        if (r === 'ok') {
          const prev = this.pendingConfigChange;
          if (prev !== null) {
            if (
              before !== null &&
              before.learners === undefined &&
              before.outgoing === undefined &&
              sameMembers(before.members, prev.target)
            ) {
              // It is done: its final configuration committed and is only waiting to apply.
              prev.pending.resolve({ members: before.members.slice() });
            } else {
              prev.pending.reject(
                new RaftError(
                  'RAFT_CONFIG_CHANGE_IN_PROGRESS',
                  'this membership change was replaced by a newer one before its learners caught up',
                ),
              );
            }
          }
          input.pending.done = () => {
            if (this.pendingConfigChange?.pending === input.pending) this.pendingConfigChange = null;
          };
          // Only a configuration this change appends (after `after`) can complete it.
          this.pendingConfigChange = { target: input.members, pending: input.pending, after };
        } else if (r === 'same') {
          input.pending.resolve({ members: input.members.slice() });
        } else if (r === 'in_progress') {
          input.pending.reject(
            new RaftError(
              'RAFT_CONFIG_CHANGE_IN_PROGRESS',
              'a membership change is already in progress; retry once it completes',
            ),
          );
        } else {
          input.pending.reject(this.notLeaderError(false));
        }
        return;
      }
      case 'transfer': {
        const r = this.raft.transferLeadership(input.target);
        if (r === 'ok') {
          if (input.target === this.name) input.pending.resolve(undefined);
          else {
            input.pending.done = () => {
              if (this.pendingTransfer?.pending === input.pending) this.pendingTransfer = null;
            };
            this.pendingTransfer = { target: input.target, pending: input.pending };
            this.recorder.event({
              kind: 'transfer',
              at: this.clock.now(),
              term: this.raft.term,
              from: this.name,
              to: input.target,
            });
          }
        } else if (r === 'not_voter') {
          input.pending.reject(
            new InvalidArgumentError(`${input.target} is not a voting member of the cluster`),
          );
        } else {
          input.pending.reject(this.notLeaderError(false));
        }
        return;
      }
      case 'bootstrap': {
        const config = normalizeMembers(input.members);
        if (this.raft.config !== null) {
          if (sameMembers(this.raft.config.members, config.members))
            input.pending.resolve({ members: this.raft.config.members.slice() });
          else input.pending.reject(new InvalidArgumentError('this cluster is already configured'));
          return;
        }
        if (!this.raft.bootstrap(config.members)) {
          input.pending.reject(
            new InvalidArgumentError(
              'this peer already holds a log or a term from another cluster; it cannot bootstrap a new one',
            ),
          );
          return;
        }
        this.trackWrite(1, 1, input.pending);
        return;
      }
    }
  }

  private trackWrite(index: number, term: number, pending: PendingWrite): void {
    pending.term = term;
    pending.done = () => {
      if (this.pendingWrites.get(index) === pending) this.pendingWrites.delete(index);
    };
    this.pendingWrites.set(index, pending);
  }

  private send(messages: RaftMessage[]): void {
    for (const m of messages) {
      try {
        this.opts.transport.send(m.to, m);
        this.metrics.messagesSent++;
      } catch (err) {
        this.log('warn', { err, to: m.to }, 'transport.send threw');
      }
    }
  }

  private afterReady(rd: Ready): void {
    if (rd.softState !== undefined) this.onSoftState(rd.softState);
    this.settleTransfer();
    if (rd.snapshot?.fromLeader === true) {
      // Restored after whatever was committed before it, in order.
      this.applyQueue.push(rd.snapshot.snapshot);
      this.runApply();
    }
    if (rd.committed.length > 0) {
      for (const e of rd.committed) this.applyQueue.push(e);
      this.runApply();
    }
    for (const r of rd.reads) {
      const read = this.pendingReads.get(r.context);
      if (read === undefined) continue;
      read.index = r.index;
      this.confirmedReads.push(r.context);
    }
    if (rd.reads.length > 0) this.serveReads();
  }

  /**
   * Settles a leadership transfer the protocol gave up on, rather than leaving its caller
   * to its own timeout: still leading with no transfer under way (the target did not take
   * over within an election timeout), or another peer than the target took over.
   */
  private settleTransfer(): void {
    const t = this.pendingTransfer;
    if (t === null || this.soft.leader === t.target) return;
    if (this.soft.role === 'leader') {
      if (this.raft.status().transferee !== t.target)
        t.pending.reject(
          new RaftError(
            'RAFT_TIMEOUT',
            `${t.target} did not take over within an election timeout; ${this.name} still leads`,
          ),
        );
    } else if (this.soft.leader !== null) {
      t.pending.reject(this.notLeaderError(false));
    }
  }

  private onSoftState(next: SoftState): void {
    const prev = this.soft;
    this.soft = next;
    if (prev.role === next.role && prev.leader === next.leader) return;
    this.log('info', { role: next.role, leader: next.leader, term: this.raft.term }, 'role changed');
    this.recorder.softState(prev, next, this.raft.term);
    if (this.pendingTransfer !== null && next.leader === this.pendingTransfer.target)
      this.pendingTransfer.pending.resolve(undefined);
    if (prev.role === 'leader' && next.role !== 'leader') {
      // Writes already appended may still commit under the next leader: say so.
      // Writes at or below the commit index are committed: applying them answers their callers.
      const committed = this.raft.log.commitIndex;
      for (const [index, w] of [...this.pendingWrites])
        if (index > committed) w.reject(this.notLeaderError(true));
      // Reads not yet confirmed cannot be anymore; reads are safe to retry.
      for (const [, r] of [...this.pendingReads]) if (r.index === null) r.reject(this.notLeaderError(false));
    }
  }

  // ---------------------------------------------------------------- applying

  private runApply(): void {
    if (this.applying) return;
    this.applying = true;
    void this.applyLoop();
  }

  /**
   * Applies committed entries in index order, one at a time, each exactly once; restores
   * snapshots from the leader in their place; takes snapshots by the policy.
   */
  private async applyLoop(): Promise<void> {
    let slice = this.clock.now();
    try {
      while (this.applyQueue.length > 0 && !this.stopped) {
        if (this.clock.now() - slice >= 10) {
          // A long replay (a restart, a follower catching up) yields to timers and I/O
          // every 10 ms, so the peer keeps answering heartbeats and requests meanwhile.
          await new Promise<void>((resolve) => this.clock.setTimeout(resolve, 0));
          slice = this.clock.now();
        }
        const item = this.applyQueue.shift()!;
        if ('meta' in item) {
          if (item.meta.index <= this.lastApplied) continue;
          const t0 = this.clock.now();
          this.state = await this.machine.restore!(item.data, this.name);
          this.recorder.snapshot(
            'installed',
            item.meta.term,
            item.meta.index,
            item.data.length,
            this.clock.now() - t0,
          );
          this.lastApplied = item.meta.index;
          this.lastSnapshotIndex = item.meta.index;
          this.metrics.snapshotsInstalled++;
          this.log('info', { index: item.meta.index, bytes: item.data.length }, 'snapshot installed');
        } else {
          if (item.index <= this.lastApplied) continue;
          if (item.index !== this.lastApplied + 1)
            throw new Error(`raft: apply gap: entry ${item.index} after ${this.lastApplied}`);
          await this.applyEntry(item);
          this.lastApplied = item.index;
          this.metrics.entriesApplied++;
          await this.maybeSnapshot();
        }
        if (this.confirmedReads.length > 0) this.serveReads();
      }
    } catch (err) {
      // Applying can no longer be trusted to be in order and exactly once: fail-stop.
      this.log('error', { err }, 'apply failed; stopping the peer');
      void this.beginShutdown(new StoppedError('the peer stopped: applying failed', { cause: err }));
    } finally {
      this.applying = false;
    }
  }

  /** The snapshot policy: every `snapshotEvery` applied entries, from the state as applied so far. */
  private async maybeSnapshot(): Promise<void> {
    const every = this.opts.snapshotEvery;
    if (every === 0 || this.lastApplied - this.lastSnapshotIndex < every || !this.storeSupportsSnapshots())
      return;
    if (typeof this.machine.snapshot !== 'function' || typeof this.machine.restore !== 'function') return;
    const index = this.lastApplied;
    this.lastSnapshotIndex = index;
    // Applying waits while the machine serializes, so the bytes are exactly the state at `index`.
    const t0 = this.clock.now();
    const data = await this.machine.snapshot(this.state);
    this.enqueue({ kind: 'snapshot', index, data, ms: this.clock.now() - t0 });
  }

  private async applyEntry(e: LogEntry): Promise<void> {
    const pending = this.pendingWrites.get(e.index);
    const mine = pending !== undefined && pending.term === e.term ? pending : undefined;
    if (pending !== undefined && mine === undefined) {
      // Another leader's entry took this index: our command was never committed.
      pending.reject(this.notLeaderError(false));
    }
    if (e.type === 'noop') return;
    if (e.type === 'config') {
      const config = decodeConfiguration(e.data) ?? { members: [] };
      this.recorder.configuration(e, config);
      mine?.resolve(config);
      const change = this.pendingConfigChange;
      if (
        change !== null &&
        e.index > change.after &&
        config.outgoing === undefined &&
        config.learners === undefined &&
        sameMembers(config.members, change.target)
      ) {
        change.pending.resolve(config);
      }
      return;
    }
    let command: C;
    try {
      command = this.codec.decode(e.data) as C;
    } catch (err) {
      this.metrics.stateMachineErrors++;
      mine?.reject(
        new RaftError('RAFT_STATE_MACHINE_ERROR', `entry ${e.index} cannot be decoded; it changed nothing`, {
          cause: err,
        }),
      );
      return;
    }
    try {
      const out = this.machine.handleWrite(command, this.state);
      const [reply, next] = isPromise(out) ? await out : out;
      this.state = next;
      mine?.resolve(reply);
    } catch (err) {
      // The "poison command" policy: a command whose handleWrite throws changes nothing
      // and its caller gets RAFT_STATE_MACHINE_ERROR. Every peer applies the same
      // deterministic machine to the same command, so every peer decides the same.
      this.metrics.stateMachineErrors++;
      this.log('warn', { err, index: e.index }, 'handleWrite threw; the command changed nothing');
      mine?.reject(
        new RaftError(
          'RAFT_STATE_MACHINE_ERROR',
          `handleWrite threw at entry ${e.index}; the command changed nothing`,
          { cause: err },
        ),
      );
    }
  }

  private serveReads(): void {
    let kept = 0;
    for (const ctx of this.confirmedReads) {
      const read = this.pendingReads.get(ctx);
      if (read === undefined || read.index === null) continue;
      if (read.index > this.lastApplied) {
        this.confirmedReads[kept++] = ctx;
        continue;
      }
      try {
        read.resolve(this.machine.handleRead(read.query as Q, this.state));
      } catch (err) {
        read.reject(new RaftError('RAFT_STATE_MACHINE_ERROR', 'handleRead threw', { cause: err }));
      }
    }
    this.confirmedReads.length = kept;
  }

  // ---------------------------------------------------------------- stopping

  private beginShutdown(reason: StoppedError): Promise<void> {
    this.stopping ??= this.shutdown(reason);
    return this.stopping;
  }

  private async shutdown(reason: StoppedError): Promise<void> {
    this.stopped = true;
    this.stopReason = reason;
    if (this.tickTimer !== null) this.clock.clearTimeout(this.tickTimer);
    this.releaseLoopMonitor();
    for (const w of [...this.pendingWrites.values()]) w.reject(reason);
    this.pendingConfigChange?.pending.reject(reason);
    this.pendingTransfer?.pending.reject(reason);
    for (const r of [...this.pendingReads.values()]) r.reject(reason);
    if (registry.get(this.name) === (this as unknown)) registry.delete(this.name);
    // Let an in-flight durable write finish before closing the store under it.
    await this.loopIdle.catch(() => undefined);
    await this.opts.transport
      .close()
      .catch((err: unknown) => this.log('warn', { err }, 'transport close failed'));
    await this.opts.log.close().catch((err: unknown) => this.log('warn', { err }, 'log store close failed'));
    this.log('info', {}, 'peer stopped');
    for (const w of this.stoppedWaiters.splice(0)) w(reason);
  }

  private storeSupportsSnapshots(): boolean {
    return typeof this.opts.log.loadSnapshot === 'function' && typeof this.opts.log.compact === 'function';
  }

  private log(level: 'debug' | 'info' | 'warn' | 'error', obj: object, msg: string): void {
    this.opts.logger?.[level]({ peer: this.name, ...obj }, msg);
  }
}

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}

function validateMembers(members: unknown): Configuration {
  if (!Array.isArray(members) || members.length === 0)
    throw new InvalidArgumentError('members must be a non-empty array of peer names');
  const seen = new Set<string>();
  for (const m of members) {
    if (typeof m !== 'string' || m.length === 0 || m.length > 256)
      throw new InvalidArgumentError(`members: ${JSON.stringify(m)} is not a peer name`);
    if (seen.has(m)) throw new InvalidArgumentError(`members: ${m} appears twice`);
    seen.add(m);
  }
  return normalizeMembers(members as PeerId[]);
}

function sameMembers(a: readonly PeerId[], b: readonly PeerId[]): boolean {
  return a.length === b.length && a.every((m, i) => m === b[i]);
}
