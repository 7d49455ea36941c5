import { msgpackCodec } from '../codec.js';
import { ElectionInProgressError, InvalidArgumentError, RaftError, StoppedError } from '../errors.js';
import { MAX_TERM, MAX_TERM_JUMP, validateMessage } from '../messages.js';
import { decodeConfiguration, normalizeMembers, sameSet } from '../protocol/membership.js';
import { Raft, type Ready, type SoftState } from '../protocol/raft.js';
import { isRegistered, register, unregister } from '../registry.js';
import type {
  Clock,
  Codec,
  Configuration,
  EntryType,
  LogStoreState,
  LogWrite,
  PeerId,
  RaftMessage,
  Snapshot,
  StateMachine,
  TimerHandle,
} from '../types.js';
import { ApplyLoop } from './apply.js';
import { checkLeader, notLeaderError, startCall, validateMembers, type PendingCall } from './calls.js';
import { Forwarder } from './forward.js';
import { resolveOptions, systemClock, type PeerOptions, type ResolvedOptions } from './options.js';
import { eventLoopDelay, PeerRecorder, watchEventLoop, type RaftMetrics } from './metrics.js';
import { Settlement } from './settlement.js';
import type {
  CallOptions,
  EntryInfo,
  Peer,
  PeerInspection,
  PeerMetrics,
  PeerStatus,
  StopOptions,
} from './types.js';

export type { CallOptions, EntryInfo, Peer, PeerInspection, PeerMetrics, PeerStatus } from './types.js';

type Input =
  | { kind: 'tick' }
  | { kind: 'message'; message: RaftMessage }
  | { kind: 'propose'; type: EntryType; data: Uint8Array; pending: PendingCall; forward: boolean }
  | { kind: 'read'; context: number; forward: boolean }
  | { kind: 'snapshot'; index: number; data: Uint8Array; ms: number }
  | { kind: 'bootstrap'; members: PeerId[]; pending: PendingCall }
  | { kind: 'reconfigure'; members: PeerId[]; pending: PendingCall }
  | { kind: 'transfer'; target: PeerId; pending: PendingCall };

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

  private inbox: Input[] = [];
  private looping = false;
  /** Set once start completes; only booted peers are found by name. */
  booted = false;
  private stopped = false;
  /** `stop()` under way: the hand-off of a leader, then the shutdown. */
  private stopping: Promise<void> | null = null;
  /** The shutdown itself, once begun (by `stop()` or a fail-stop). */
  private shuttingDown: Promise<void> | null = null;
  private stopReason: RaftError | null = null;
  private readonly stoppedWaiters: ((reason: RaftError) => void)[] = [];
  private loopIdle: Promise<void> = Promise.resolve();
  private tickTimer: TimerHandle | null = null;
  private soft: SoftState = { role: 'follower', leader: null };

  /** Applying committed entries and snapshots; the writes and reads waiting for it. */
  private readonly apply: ApplyLoop<S, C, Q, R>;
  /** Membership changes and leadership transfers under way. */
  private readonly settlement: Settlement;
  /** A follower's writes and reads handed to the leader (the `forward` option). */
  private readonly forwarder: Forwarder;
  private nextReadContext = 1;
  /** Figures for operators (`metrics(peer)`). */
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
    messagesDroppedByReason: {},
  };
  /** Per drop reason: when it was last logged, and drops since. */
  private readonly dropLog = new Map<string, { at: number; since: number }>();

  private constructor(machine: StateMachine<S, C, Q, R>, opts: ResolvedOptions) {
    this.machine = machine;
    this.opts = opts;
    this.name = opts.name;
    this.codec = opts.codec ?? msgpackCodec();
    this.clock = opts.clock ?? systemClock;
    this.recorder = new PeerRecorder(this.clock);
    this.settlement = new Settlement(this.name, (indeterminate) => this.notLeaderError(indeterminate));
    this.apply = new ApplyLoop<S, C, Q, R>({
      name: this.name,
      machine,
      codec: this.codec,
      clock: this.clock,
      metrics: this.metrics,
      recorder: this.recorder,
      snapshotEvery: opts.snapshotEvery,
      isStopped: () => this.stopped,
      storeSupportsSnapshots: () => this.storeSupportsSnapshots(),
      notLeaderError: (indeterminate) => this.notLeaderError(indeterminate),
      snapshotTaken: (index, data, ms) => this.enqueue({ kind: 'snapshot', index, data, ms }),
      configurationApplied: (index, config) => this.settlement.configurationApplied(index, config),
      keepOutcomes: () => this.forwarder.awaitingProposals,
      failStop: (err, what) => this.failStop(err, what),
      log: (level, obj, msg) => this.log(level, obj, msg),
    });
    this.forwarder = new Forwarder({
      name: this.name,
      apply: this.apply,
      maxBatchEntries: opts.maxBatchEntries,
      maxBatchBytes: opts.maxBatchBytes,
      firstId: Math.floor(opts.random() * 2 ** 48),
      trackWrite: (index, term, pending) => this.trackWrite(index, term, pending),
    });
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
    if (opts.register && isRegistered(opts.name))
      throw new InvalidArgumentError(
        `a peer named ${JSON.stringify(opts.name)} already runs in this process`,
      );
    const peer = new RaftPeer(machine, opts);
    if (opts.register) register(peer);
    try {
      await peer.boot();
    } catch (err) {
      unregister(peer);
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
    await this.buildProtocol(stored, snapshot);
    if (snapshot !== undefined) {
      // Restart from the latest snapshot; only the entries after it are replayed (§7).
      this.apply.start(await this.machine.restore!(snapshot.data, this.name), snapshot.meta.index);
    } else {
      this.apply.start(this.machine.init(this.name), 0);
    }
    await this.opts.transport.start((m) => this.receive(m));
    this.releaseLoopMonitor = watchEventLoop();
    this.scheduleTick();
    const { term, lastIndex, configuration } = this.raft.status();
    this.log('info', { term, lastLogIndex: lastIndex, configuration }, 'peer started');
  }

  /** Builds the protocol from what the log store holds. */
  private async buildProtocol(stored: LogStoreState, snapshot: Snapshot | undefined): Promise<void> {
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
        snapshotWindow: this.opts.snapshotWindow,
        maxSnapshotBytes: this.opts.maxSnapshotBytes,
      },
      snapshot === undefined
        ? { hardState: stored.hardState, entries }
        : { hardState: stored.hardState, entries, snapshot },
    );
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
      lastApplied: this.apply.lastApplied,
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
        messagesDroppedByReason: { ...this.metrics.messagesDroppedByReason },
      },
      eventLoopDelay: this.stopped ? null : eventLoopDelay(),
    };
  }

  figures(): RaftMetrics {
    return this.recorder.figures(this.raft, this.status(), this.opts.maxInflight);
  }

  write(command: C, opts?: CallOptions): Promise<R> {
    const call = this.call<R>(opts, (pending) => {
      const forward = this.checkServes(opts);
      let data: Uint8Array;
      try {
        data = this.codec.encode(command);
      } catch (err) {
        throw new InvalidArgumentError('the command cannot be encoded by the codec', { cause: err });
      }
      if (data.length > this.opts.maxCommandBytes)
        throw new InvalidArgumentError(
          `the command is ${data.length} bytes encoded, more than option maxCommandBytes (${this.opts.maxCommandBytes})`,
        );
      this.enqueue({ kind: 'propose', type: 'command', data, pending, forward });
    });
    return this.recorder.time('proposals', call);
  }

  read(query: Q, opts?: CallOptions): Promise<R> {
    const call = this.call<R>(opts, (pending) => {
      const forward = this.checkServes(opts);
      const context = this.nextReadContext++;
      pending.done = () => {
        this.apply.pendingReads.delete(context);
      };
      this.apply.pendingReads.set(context, {
        query,
        index: null,
        resolve: pending.resolve,
        reject: pending.reject,
      });
      this.enqueue({ kind: 'read', context, forward });
    });
    return this.recorder.time('reads', call);
  }

  setConfiguration(members: PeerId[], opts?: CallOptions): Promise<Configuration> {
    return this.call<Configuration>(opts, (pending) => {
      const config = validateMembers(members);
      // One name, two operations (as the Elixir library's): an unconfigured peer
      // bootstraps a cluster; a configured one changes its cluster's membership.
      if (this.raft.config === null) this.startBootstrap(config, pending);
      else this.startReconfiguration(config, pending);
    });
  }

  /** Bootstraps a fresh cluster with this peer in it, unless this peer was started to join one. */
  private startBootstrap(config: Configuration, pending: PendingCall): void {
    if (this.opts.join) {
      throw new InvalidArgumentError(
        `${this.name} was started with join: true and has not been added yet; it never bootstraps a cluster: call setConfiguration on the leader of the cluster it joins`,
      );
    }
    if (!config.members.includes(this.name)) {
      throw new InvalidArgumentError(
        `setConfiguration must be called on one of the members; ${this.name} is not in [${config.members.join(', ')}]`,
      );
    }
    this.enqueue({ kind: 'bootstrap', members: config.members, pending });
  }

  /** Changes the running cluster's voters, on its leader (joint consensus, §6). */
  private startReconfiguration(config: Configuration, pending: PendingCall): void {
    this.checkLeader();
    const current = this.raft.config!;
    if (
      sameSet(current.members, config.members) &&
      current.learners === undefined &&
      current.outgoing === undefined &&
      this.raft.configurationCommitted()
    ) {
      pending.resolve({ members: current.members.slice() });
      return;
    }
    this.enqueue({ kind: 'reconfigure', members: config.members, pending });
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

  stop(opts?: StopOptions): Promise<void> {
    if (this.stopping === null && !this.stopped && opts?.handOff === true) {
      // A leader hands over before it goes, so that its stop costs the cluster no election.
      // A fail-stop meanwhile shuts down at once (beginShutdown does not wait for this).
      const timeout = opts?.handOffTimeoutMs ?? this.opts.electionTimeoutMs[1];
      this.stopping = this.handOff(timeout).then(() =>
        this.beginShutdown(new StoppedError('the peer was stopped')),
      );
      return this.stopping;
    }
    return this.stopping ?? this.beginShutdown(new StoppedError('the peer was stopped'));
  }

  /**
   * On a leader with other voters: transfers leadership to the most up-to-date voter (the
   * highest match index) and waits until it leads, or until `timeoutMs`. Never throws: a
   * hand-off that fails leaves the cluster to elect a leader as after a crash.
   */
  private async handOff(timeoutMs: number): Promise<void> {
    const target = this.handOffTarget();
    if (target === null) return;
    this.log('info', { target }, 'stopping: handing leadership over');
    try {
      await this.transferLeadership(target, { timeout: timeoutMs });
    } catch (err) {
      this.log('warn', { target, err: String(err) }, 'stopping: the hand-off did not complete');
    }
  }

  /** The voter a stopping leader hands over to, or null when it is not a leader with peers. */
  private handOffTarget(): PeerId | null {
    if (this.stopped || this.raft.role !== 'leader') return null;
    const config = this.raft.config;
    if (config === null || (config.outgoing?.length ?? 0) > 0) return null;
    let best: PeerId | null = null;
    let bestMatch = -1;
    for (const member of config.members) {
      if (member === this.name) continue;
      const match = this.raft.progressOf(member)?.matchIndex ?? -1;
      if (match > bestMatch) {
        best = member;
        bestMatch = match;
      }
    }
    return best;
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
      lastApplied: this.apply.lastApplied,
      firstLogIndex: r.firstIndex,
      lastLogIndex: r.lastIndex,
      stableIndex: r.stableIndex,
      termAt: (index) => log.term(index),
      entryAt: (index) => log.entry(index),
      configuration: r.configuration,
      stopped: this.stopped,
      snapshotBytesReceiving: r.snapshotBytesReceiving,
    };
  }

  // ---------------------------------------------------------------- calls

  private call<T>(opts: CallOptions | undefined, start: (pending: PendingCall) => void): Promise<T> {
    return startCall<T>(this.clock, this.opts.defaultTimeoutMs, this.stopped, opts, start);
  }

  private checkLeader(): void {
    checkLeader(this.raft.role === 'leader', this.raft.leader);
  }

  /**
   * Whether this peer can take a write or read now: as leader, or (with `forward`) as a
   * follower that knows a leader. Returns whether the call may be forwarded.
   */
  private checkServes(opts: CallOptions | undefined): boolean {
    const forward = opts?.forward ?? this.opts.forward;
    if (!forward) this.checkLeader();
    else if (this.raft.role !== 'leader' && this.raft.leader === null) throw new ElectionInProgressError();
    return forward;
  }

  private notLeaderError(indeterminate: boolean): RaftError {
    return notLeaderError(this.name, this.raft.leader, indeterminate);
  }

  // ---------------------------------------------------------------- the loop

  private receive(message: unknown): void {
    if (this.stopped) return;
    // A term more than MAX_TERM_JUMP ahead of ours comes from no real election (messages.ts).
    const v = validateMessage(message, { maxTerm: Math.min(MAX_TERM, this.raft.term + MAX_TERM_JUMP) });
    if (!v.ok) {
      this.dropped(v.refusal, v.reason, message);
      return;
    }
    if (v.message.to !== this.name) {
      this.dropped('wrong_recipient', `addressed to ${v.message.to}`, message);
      return;
    }
    this.metrics.messagesReceived++;
    if (v.message.type === 'AppendEntriesResponse' || v.message.type === 'InstallSnapshotResponse')
      this.recorder.lastAck.set(v.message.from, this.clock.now());
    this.enqueue({ kind: 'message', message: v.message });
  }

  /**
   * Counts a dropped message by reason, and logs it at info level: the first drop of a
   * reason, then at most one line per reason every 10 seconds, with the count since.
   */
  private dropped(reason: string, detail: string, message?: unknown): void {
    this.metrics.messagesDropped++;
    this.countDrop(reason, detail, message);
  }

  private countDrop(reason: string, detail: string, message?: unknown): void {
    const byReason = this.metrics.messagesDroppedByReason;
    byReason[reason] = (byReason[reason] ?? 0) + 1;
    const now = this.clock.now();
    const last = this.dropLog.get(reason);
    if (last !== undefined && now - last.at < 10_000) {
      last.since++;
      return;
    }
    const m = typeof message === 'object' && message !== null ? (message as Record<string, unknown>) : {};
    const from = typeof m.from === 'string' ? m.from.slice(0, 64) : undefined;
    const type = typeof m.type === 'string' ? m.type.slice(0, 32) : undefined;
    this.log(
      'info',
      { reason, detail, from, type, droppedSinceLastLine: (last?.since ?? 0) + 1, total: byReason[reason] },
      'message dropped',
    );
    this.dropLog.set(reason, { at: now, since: 0 });
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
        const failure =
          rd.snapshot?.fromLeader === true ? await this.apply.restoreFromLeader(rd.snapshot.snapshot) : null;
        if (failure !== null) {
          // Refused: nothing of this turn is persisted or sent (the leader will retry), and
          // the protocol starts again from what the store holds, which is unchanged.
          if (this.stopped) return;
          const stats = { ...this.raft.stats };
          await this.buildProtocol(await this.opts.log.open(), await this.opts.log.loadSnapshot?.());
          Object.assign(this.raft.stats, stats);
          const index = rd.snapshot!.snapshot.meta.index;
          this.dropped(
            'snapshot_restore_failed',
            `the snapshot at ${index} could not be restored: ${failure instanceof Error ? failure.message : 'restore threw'}`,
          );
          this.log(
            'warn',
            { err: failure, index },
            'a snapshot from the leader could not be restored; refused, nothing changed',
          );
          continue;
        }
        if (this.stopped) return;
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
        for (const p of batch) {
          // A follower hands forwarded writes to its leader at the end of the turn.
          if (p.forward && result === 'not_leader') this.forwarder.queueWrite(p.data, p.pending);
          else p.pending.reject(err);
        }
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
    // One Propose and one ReadIndexRequest for all the forwarded calls of this turn.
    this.forwarder.flush(this.raft);
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
      case 'message': {
        const { messagesDropped, snapshotChunksRefused, forwardsFromStrangers } = this.raft.stats;
        this.raft.step(input.message);
        if (this.raft.stats.forwardsFromStrangers > forwardsFromStrangers)
          this.dropped(
            'forward_from_stranger',
            'a forwarded proposal or read from a peer outside the configuration; refused',
            input.message,
          );
        else if (this.raft.stats.snapshotChunksRefused > snapshotChunksRefused)
          this.countDrop(
            'snapshot_too_large',
            `the snapshot being received grows past maxSnapshotBytes (${this.opts.maxSnapshotBytes}); the transfer is dropped`,
            input.message,
          );
        else if (this.raft.stats.messagesDropped > messagesDropped)
          this.countDrop('protocol', 'refused by the protocol', input.message);
        return;
      }
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
        const read = this.apply.pendingReads.get(input.context);
        if (read === undefined) return;
        if (input.forward && this.raft.role !== 'leader') this.forwarder.queueRead(input.context);
        else if (this.raft.readIndex(input.context) !== 'ok') read.reject(this.notLeaderError(false));
        return;
      }
      case 'reconfigure': {
        // The protocol accepts a change only once the latest configuration is committed.
        const before = this.raft.config;
        const after = this.raft.log.lastIndex();
        const r = this.raft.proposeConfiguration(input.members);
        this.settlement.reconfigured(r, input.members, input.pending, before, after);
        return;
      }
      case 'transfer': {
        const r = this.raft.transferLeadership(input.target);
        this.settlement.transferStarted(r, input.target, input.pending);
        if (r === 'ok')
          this.recorder.event({
            kind: 'transfer',
            at: this.clock.now(),
            term: this.raft.term,
            from: this.name,
            to: input.target,
          });
        return;
      }
      case 'bootstrap': {
        const config = normalizeMembers(input.members);
        if (this.raft.config !== null) {
          if (sameSet(this.raft.config.members, config.members))
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

  private trackWrite(index: number, term: number, pending: PendingCall): void {
    // A forwarded write promised at this index by an earlier leader, whose entry this
    // peer, now leading, replaces: whether it committed, this peer cannot tell any more.
    this.apply.pendingWrites.get(index)?.reject(this.notLeaderError(true));
    pending.term = term;
    pending.done = () => {
      if (this.apply.pendingWrites.get(index) === pending) this.apply.pendingWrites.delete(index);
    };
    this.apply.pendingWrites.set(index, pending);
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
    // First the answers to forwarded requests: an accepted one that came with a newer term
    // still places its writes (before a leader change fails the unanswered ones), and a
    // write learns its index before that index applies.
    if (rd.forwarded.length > 0) this.forwarder.outcomes(rd.forwarded);
    if (rd.softState !== undefined) this.onSoftState(rd.softState);
    this.settleTransfer();
    this.apply.push(rd.committed);
    for (const r of rd.reads) this.apply.confirmRead(r.context, r.index);
    if (rd.reads.length > 0) this.apply.serveReads();
  }

  private settleTransfer(): void {
    this.settlement.settleTransfer(this.soft, this.raft.status().transferee);
  }

  private onSoftState(next: SoftState): void {
    const prev = this.soft;
    this.soft = next;
    if (prev.role === next.role && prev.leader === next.leader) return;
    this.log('info', { role: next.role, leader: next.leader, term: this.raft.term }, 'role changed');
    this.recorder.softState(prev, next, this.raft.term);
    this.settlement.leaderChanged(next);
    if (prev.leader !== next.leader) this.forwarder.leaderChanged(next.leader);
    if (prev.role === 'leader' && next.role !== 'leader') {
      // Writes already appended may still commit under the next leader: say so.
      // Writes at or below the commit index are committed: applying them answers their callers.
      const committed = this.raft.log.commitIndex;
      for (const [index, w] of [...this.apply.pendingWrites])
        if (index > committed) w.reject(this.notLeaderError(true));
      // Reads not yet confirmed cannot be anymore; reads are safe to retry.
      for (const [, r] of [...this.apply.pendingReads])
        if (r.index === null) r.reject(this.notLeaderError(false));
    }
  }

  // ---------------------------------------------------------------- stopping

  private beginShutdown(reason: StoppedError): Promise<void> {
    this.shuttingDown ??= this.shutdown(reason);
    this.stopping ??= this.shuttingDown;
    return this.shuttingDown;
  }

  private async shutdown(reason: StoppedError): Promise<void> {
    this.stopped = true;
    this.stopReason = reason;
    if (this.tickTimer !== null) this.clock.clearTimeout(this.tickTimer);
    this.releaseLoopMonitor();
    for (const w of [...this.apply.pendingWrites.values()]) w.reject(reason);
    this.forwarder.rejectAll(reason);
    this.settlement.rejectAll(reason);
    for (const r of [...this.apply.pendingReads.values()]) r.reject(reason);
    unregister(this);
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
