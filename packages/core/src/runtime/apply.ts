import { RaftError, StoppedError } from '../errors.js';
import { decodeConfiguration } from '../protocol/membership.js';
import type { Clock, Codec, Configuration, LogEntry, PeerId, Snapshot, StateMachine } from '../types.js';
import type { PendingCall } from './calls.js';
import { Fifo } from './fifo.js';
import type { PeerMetrics } from './types.js';
import type { PeerRecorder } from './metrics.js';

/** What the apply loop needs of its peer. */
export interface ApplyHost<S, C, Q, R> {
  readonly name: PeerId;
  readonly machine: StateMachine<S, C, Q, R>;
  readonly codec: Codec;
  readonly clock: Clock;
  readonly metrics: PeerMetrics;
  /** Figures for operators (`metrics(peer)`). */
  readonly recorder: PeerRecorder;
  /** The snapshot policy: a snapshot every this many applied entries (0: never). */
  readonly snapshotEvery: number;
  isStopped(): boolean;
  storeSupportsSnapshots(): boolean;
  notLeaderError(indeterminate: boolean): RaftError;
  /** The state machine was serialized at `index`: hand it to the protocol. */
  snapshotTaken(index: number, data: Uint8Array, ms: number): void;
  /** A configuration entry was applied (membership settlement). */
  configurationApplied(index: number, config: Configuration): void;
  /**
   * Whether to remember what each applied entry did ({@link ApplyLoop.recentOutcome}):
   * while a forwarded write waits for the leader to say where it went.
   */
  keepOutcomes(): boolean;
  /** Stops the peer after an internal failure. */
  failStop(err: unknown, what: string): void;
  log(level: 'debug' | 'info' | 'warn' | 'error', obj: object, msg: string): void;
}

/** A linearizable read waiting to be served. */
export interface PendingRead {
  query: unknown;
  /** Set once leadership is confirmed: serve when lastApplied reaches it. */
  index: number | null;
  resolve: (reply: unknown) => void;
  reject: (err: RaftError) => void;
}

/**
 * The apply side of a peer: the state machine's state, committed entries applied in order
 * and exactly once, snapshots from the leader restored (before they are persisted), the
 * snapshot policy, the writes waiting for their entry to apply, and the reads waiting for
 * their index to apply.
 */
export class ApplyLoop<S, C, Q, R> {
  /** The state machine's state. */
  state!: S;
  /** Highest index applied to `state`. */
  lastApplied = 0;
  /** Index of the latest snapshot taken or restored, for the snapshot policy. */
  lastSnapshotIndex = 0;
  /** Writes by the index of their entry. */
  readonly pendingWrites = new Map<number, PendingCall>();
  /** Reads by context. */
  readonly pendingReads = new Map<number, PendingRead>();
  /**
   * Highest index whose waiting write was looked up (the entry being applied, or the
   * last applied): a write tracked at or below it would never be answered.
   */
  claimedIndex = 0;
  /** What the latest applied entries did, while `keepOutcomes()` (at most {@link RECENT_OUTCOMES}). */
  private readonly recent = new Map<number, AppliedOutcome>();
  private confirmedReads: number[] = [];
  private readonly queue = new Fifo<LogEntry>();
  private applying = false;
  private applyDone: Promise<void> = Promise.resolve();

  constructor(private readonly host: ApplyHost<S, C, Q, R>) {}

  /** Starts from the state machine's initial state, or from a snapshot restored at start. */
  start(state: S, snapshotIndex: number): void {
    this.state = state;
    this.lastApplied = snapshotIndex;
    this.claimedIndex = snapshotIndex;
    this.lastSnapshotIndex = snapshotIndex;
  }

  /**
   * What the entry at `index` did when this peer applied it (its term, and its reply or
   * error), if it was applied recently while outcomes were kept; otherwise undefined.
   */
  recentOutcome(index: number): AppliedOutcome | undefined {
    return this.recent.get(index);
  }

  private remember(index: number, outcome: AppliedOutcome): void {
    if (!this.host.keepOutcomes()) {
      if (this.recent.size > 0) this.recent.clear();
      return;
    }
    this.recent.set(index, outcome);
    if (this.recent.size > RECENT_OUTCOMES) this.recent.delete(this.recent.keys().next().value!);
  }

  /** Queues committed entries to apply, in order. */
  push(items: readonly LogEntry[]): void {
    for (const it of items) this.queue.push(it);
    if (items.length > 0) this.run();
  }

  /** The protocol confirmed reads: each is served once `index` is applied. */
  confirmRead(context: number, index: number): void {
    const read = this.pendingReads.get(context);
    if (read === undefined) return;
    read.index = index;
    this.confirmedReads.push(context);
  }

  run(): void {
    if (this.applying) return;
    this.applying = true;
    this.applyDone = this.applyLoop();
  }

  /** Applies committed entries in index order, one at a time, each exactly once; takes snapshots by the policy. */
  private async applyLoop(): Promise<void> {
    let slice = this.host.clock.now();
    try {
      while (this.queue.length > 0 && !this.host.isStopped()) {
        if (this.host.clock.now() - slice >= 10) {
          // A long replay (a restart, a follower catching up) yields to timers and I/O
          // every 10 ms, so the peer keeps answering heartbeats and requests meanwhile.
          await new Promise<void>((resolve) => this.host.clock.setTimeout(resolve, 0));
          slice = this.host.clock.now();
        }
        const item = this.queue.shift()!;
        if (item.index <= this.lastApplied) continue;
        if (item.index !== this.lastApplied + 1)
          throw new Error(`raft: apply gap: entry ${item.index} after ${this.lastApplied}`);
        await this.applyEntry(item);
        this.lastApplied = item.index;
        this.host.metrics.entriesApplied++;
        await this.maybeSnapshot();
        if (this.confirmedReads.length > 0) this.serveReads();
      }
    } catch (err) {
      // Applying can no longer be trusted to be in order and exactly once: fail-stop.
      this.host.failStop(err, 'applying failed');
    } finally {
      this.applying = false;
    }
  }

  /**
   * Restores the state machine from a snapshot the leader sent, before it is persisted
   * (§7), once everything committed before it is applied: a fresh state from its bytes.
   * Returns null once restored, or what `restore` threw: the caller refuses the snapshot,
   * and the peer stays as it was: its state, and its log store, which it is not written to.
   */
  async restoreFromLeader(snapshot: Snapshot): Promise<unknown> {
    while (this.applying) await this.applyDone;
    if (this.host.isStopped()) return new StoppedError();
    const { index } = snapshot.meta;
    let state: S;
    try {
      if (typeof this.host.machine.restore !== 'function')
        throw new Error('the state machine has no restore()');
      const t0 = this.host.clock.now();
      state = await this.host.machine.restore(snapshot.data, this.host.name);
      this.host.recorder.snapshot(
        'installed',
        snapshot.meta.term,
        index,
        snapshot.data.length,
        this.host.clock.now() - t0,
      );
    } catch (err) {
      return err ?? new Error('restore threw');
    }
    this.state = state;
    this.lastApplied = index;
    this.claimedIndex = Math.max(this.claimedIndex, index);
    this.lastSnapshotIndex = index;
    this.host.metrics.snapshotsInstalled++;
    // Writes waiting at indexes the snapshot covers will not be applied here: whether
    // they committed, this peer cannot tell.
    for (const [i, w] of [...this.pendingWrites]) if (i <= index) w.reject(this.host.notLeaderError(true));
    this.host.log('info', { index, bytes: snapshot.data.length }, 'snapshot installed');
    return null;
  }

  /** The snapshot policy: every `snapshotEvery` applied entries, from the state as applied so far. */
  private async maybeSnapshot(): Promise<void> {
    const every = this.host.snapshotEvery;
    if (
      every === 0 ||
      this.lastApplied - this.lastSnapshotIndex < every ||
      !this.host.storeSupportsSnapshots()
    )
      return;
    if (typeof this.host.machine.snapshot !== 'function' || typeof this.host.machine.restore !== 'function')
      return;
    const index = this.lastApplied;
    this.lastSnapshotIndex = index;
    // Applying waits while the machine serializes, so the bytes are exactly the state at `index`.
    const t0 = this.host.clock.now();
    const data = await this.host.machine.snapshot(this.state);
    this.host.snapshotTaken(index, data, this.host.clock.now() - t0);
  }

  private async applyEntry(e: LogEntry): Promise<void> {
    this.claimedIndex = e.index;
    const waiting = this.pendingWrites.get(e.index);
    const pending = waiting === undefined && this.host.keepOutcomes() ? this.recorder(e) : waiting;
    const mine = pending !== undefined && pending.term === e.term ? pending : undefined;
    if (pending !== undefined && mine === undefined) {
      // Another leader's entry took this index: our command was never committed.
      pending.reject(this.host.notLeaderError(false));
    }
    if (e.type === 'noop') {
      if (waiting === undefined) mine?.resolve(undefined);
      return;
    }
    if (e.type === 'config') {
      const config = decodeConfiguration(e.data) ?? { members: [] };
      this.host.recorder.configuration(e, config);
      mine?.resolve(config);
      this.host.configurationApplied(e.index, config);
      return;
    }
    let command: C;
    try {
      command = this.host.codec.decode(e.data) as C;
    } catch (err) {
      this.host.metrics.stateMachineErrors++;
      mine?.reject(
        new RaftError('RAFT_STATE_MACHINE_ERROR', `entry ${e.index} cannot be decoded; it changed nothing`, {
          cause: err,
        }),
      );
      return;
    }
    try {
      const out = this.host.machine.handleWrite(command, this.state);
      const [reply, next] = isPromise(out) ? await out : out;
      this.state = next;
      mine?.resolve(reply);
    } catch (err) {
      // The "poison command" policy: a command whose handleWrite throws changes nothing
      // and its caller gets RAFT_STATE_MACHINE_ERROR. Every peer applies the same
      // deterministic machine to the same command, so every peer decides the same.
      this.host.metrics.stateMachineErrors++;
      this.host.log('warn', { err, index: e.index }, 'handleWrite threw; the command changed nothing');
      mine?.reject(
        new RaftError(
          'RAFT_STATE_MACHINE_ERROR',
          `handleWrite threw at entry ${e.index}; the command changed nothing`,
          { cause: err },
        ),
      );
    }
  }

  /** A stand-in caller for an entry no one here waits for: it records the entry's outcome. */
  private recorder(e: LogEntry): PendingCall {
    const remember = (outcome: AppliedOutcome): void => this.remember(e.index, outcome);
    return {
      term: e.term,
      settled: false,
      resolve: (reply) => remember({ term: e.term, reply }),
      reject: (error) => remember({ term: e.term, error }),
      done: () => undefined,
    };
  }

  serveReads(): void {
    let kept = 0;
    for (const ctx of this.confirmedReads) {
      const read = this.pendingReads.get(ctx);
      if (read === undefined || read.index === null) continue;
      if (read.index > this.lastApplied) {
        this.confirmedReads[kept++] = ctx;
        continue;
      }
      try {
        read.resolve(this.host.machine.handleRead(read.query as Q, this.state));
      } catch (err) {
        read.reject(new RaftError('RAFT_STATE_MACHINE_ERROR', 'handleRead threw', { cause: err }));
      }
    }
    this.confirmedReads.length = kept;
  }
}

/** How many applied entries' outcomes are kept for forwarded writes answered late. */
export const RECENT_OUTCOMES = 4096;

/** What an applied entry did: its term, and its reply or error. */
export interface AppliedOutcome {
  term: number;
  reply?: unknown;
  error?: RaftError;
}

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}
