import { InvalidArgumentError } from '../errors.js';
import {
  isPeerId,
  MAX_PEER_ID_LENGTH,
  type Clock,
  type Codec,
  type LogStore,
  type PeerId,
  type Transport,
} from '../types.js';

/** A structured logger; `pino` fits as it is. Every method is optional to call. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Options of {@link startPeer}. */
export interface PeerOptions {
  /** Unique within the cluster, and within this process. */
  name: PeerId;
  /** Durable storage, e.g. `new MemoryLogStore()` or `levelLogStore({ location })`. */
  log: LogStore;
  /** The network, e.g. `network.join(name)` or `webSocketTransport({...})`. */
  transport: Transport;
  /**
   * Election timeout range in milliseconds; each timeout is drawn at random from it.
   * @default [150, 300]
   */
  electionTimeoutMs?: [min: number, max: number];
  /**
   * Milliseconds between a leader's heartbeats. Must be below the minimum election timeout.
   * @default 50
   */
  heartbeatIntervalMs?: number;
  /**
   * The protocol's clock resolution: timeouts are counted in ticks of this many milliseconds.
   * @default 10
   */
  tickMs?: number;
  /**
   * How commands become log bytes.
   * @default msgpackCodec()
   */
  codec?: Codec;
  /**
   * The source of time and timers. The simulator injects virtual time.
   * @default the process clock (`performance.now`, `setTimeout`)
   */
  clock?: Clock;
  /**
   * Random numbers in [0, 1) for election jitter. Inject a seeded generator for reproducible runs.
   * @default Math.random
   */
  random?: () => number;
  /**
   * Unacknowledged AppendEntries per follower while replicating.
   * @default 64
   */
  maxInflight?: number;
  /**
   * Most entries in one AppendEntries.
   * @default 1024
   */
  maxBatchEntries?: number;
  /**
   * Most entry bytes in one AppendEntries (one entry is always sent, whatever its size).
   * @default 1048576
   */
  maxBatchBytes?: number;
  /**
   * Largest encoded command `write` accepts, in bytes; a larger one is refused with
   * `RAFT_INVALID_ARGUMENT` naming this option, before anything is appended. A command
   * travels in one AppendEntries, so keep it well below the transport's largest message
   * (`@raft/transport-ws`'s `maxPayload`, 16 MiB by default): a message the transport
   * refuses would cut the leader off from its followers, and cost an election.
   * @default 4194304 (4 MiB)
   */
  maxCommandBytes?: number;
  /**
   * Pre-vote: a peer that rejoins after a partition does not depose a healthy leader.
   * @default true
   */
  preVote?: boolean;
  /**
   * Check-quorum: a leader that does not hear from a majority within an election timeout steps down.
   * @default true
   */
  checkQuorum?: boolean;
  /**
   * Requests through any node: a follower's `write` and `read` go to the leader over the
   * peer connection (batched per turn) and are answered from this peer's state machine,
   * instead of failing with `RAFT_NOT_LEADER` naming the leader. A call's own `forward`
   * option overrides this. See "Requests through any node" in the README.
   * @default false
   */
  forward?: boolean;
  /**
   * Timeout of `write`, `read` and `setConfiguration` when the call gives none, in milliseconds.
   * @default 3000
   */
  defaultTimeoutMs?: number;
  /**
   * Where the peer logs role changes, elections and errors.
   * @default no logging
   */
  logger?: Logger;
  /**
   * Take a snapshot of the state machine after this many entries applied since the last
   * one, then compact the log (needs the machine's `snapshot` and `restore`). 0 turns it off.
   * @default 10000
   */
  snapshotEvery?: number;
  /**
   * Entries kept in the log behind a snapshot, so a follower slightly behind gets entries
   * rather than the whole snapshot.
   * @default 1000
   */
  snapshotTrailingEntries?: number;
  /**
   * Bytes of snapshot data in one InstallSnapshot message (keep it below the transport's
   * largest message).
   * @default 524288
   */
  snapshotChunkBytes?: number;
  /**
   * InstallSnapshot chunks in flight, unacknowledged, to one follower.
   * @default 4
   */
  snapshotWindow?: number;
  /**
   * Largest snapshot this peer accepts from a leader, in bytes. A transfer that grows
   * past it is dropped with what it received (counted as `snapshot_too_large`): a peer
   * whose state outgrows it cannot catch up by snapshot, so set it above the largest
   * snapshot your state machine produces.
   * @default 1073741824 (1 GiB)
   */
  maxSnapshotBytes?: number;
  /**
   * Register the peer by name, so the functions taking a name (`write('n1', ...)`) find it.
   * A simulator running many incarnations of one name in a process turns this off.
   * @default true
   */
  register?: boolean;
  /**
   * Start a peer that joins a running cluster: it waits for that cluster's leader to add it
   * (`setConfiguration` on the leader) and never bootstraps a cluster of its own, so
   * `setConfiguration` on it while it is unconfigured rejects with `RAFT_INVALID_ARGUMENT`.
   * @default false
   */
  join?: boolean;
}

/** {@link PeerOptions} with every default filled in. */
export interface ResolvedOptions {
  name: PeerId;
  log: LogStore;
  transport: Transport;
  electionTimeoutMs: [number, number];
  heartbeatIntervalMs: number;
  tickMs: number;
  codec: Codec | undefined;
  clock: Clock | undefined;
  random: () => number;
  maxInflight: number;
  maxBatchEntries: number;
  maxBatchBytes: number;
  maxCommandBytes: number;
  preVote: boolean;
  checkQuorum: boolean;
  defaultTimeoutMs: number;
  forward: boolean;
  logger: Logger | undefined;
  register: boolean;
  join: boolean;
  snapshotEvery: number;
  snapshotTrailingEntries: number;
  snapshotChunkBytes: number;
  snapshotWindow: number;
  maxSnapshotBytes: number;
}

/** A short, safe rendering of a bad value for an error message. */
export function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 64 ? `${v.slice(0, 64)}…` : v);
  if (
    typeof v === 'number' ||
    typeof v === 'boolean' ||
    typeof v === 'bigint' ||
    v === undefined ||
    v === null
  )
    return String(v);
  if (Array.isArray(v)) return 'an array';
  return `a value of type ${typeof v}`;
}

function positiveNumber(name: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new InvalidArgumentError(
      `option ${name} must be a positive number of milliseconds, got ${show(v)}`,
    );
  }
  return v;
}

function positiveInteger(name: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new InvalidArgumentError(`option ${name} must be a positive integer, got ${show(v)}`);
  }
  return v;
}

function bool(name: string, v: unknown, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean')
    throw new InvalidArgumentError(`option ${name} must be a boolean, got ${show(v)}`);
  return v;
}

function hasMethods(v: unknown, methods: string[]): boolean {
  return (
    typeof v === 'object' &&
    v !== null &&
    methods.every((m) => typeof (v as Record<string, unknown>)[m] === 'function')
  );
}

/** Validates options; throws `RAFT_INVALID_ARGUMENT` naming the first bad one. */
export function resolveOptions(opts: PeerOptions): ResolvedOptions {
  if (typeof opts !== 'object' || opts === null)
    throw new InvalidArgumentError('startPeer needs an options object');
  const { name } = opts;
  if (!isPeerId(name)) {
    throw new InvalidArgumentError(
      `option name must be a non-empty string of at most ${MAX_PEER_ID_LENGTH} characters, got ${JSON.stringify(name)}`,
    );
  }
  if (!hasMethods(opts.log, ['open', 'write', 'entries', 'close'])) {
    throw new InvalidArgumentError('option log must be a LogStore (open, write, entries, close)');
  }
  if (!hasMethods(opts.transport, ['start', 'send', 'close'])) {
    throw new InvalidArgumentError('option transport must be a Transport (start, send, close)');
  }
  let election: [number, number] = [150, 300];
  if (opts.electionTimeoutMs !== undefined) {
    const e = opts.electionTimeoutMs as unknown;
    if (!Array.isArray(e) || e.length !== 2)
      throw new InvalidArgumentError('option electionTimeoutMs must be [min, max]');
    const min = positiveNumber('electionTimeoutMs[0]', e[0], 150);
    const max = positiveNumber('electionTimeoutMs[1]', e[1], 300);
    if (max < min)
      throw new InvalidArgumentError(`option electionTimeoutMs: max (${max}) is below min (${min})`);
    election = [min, max];
  }
  const heartbeat = positiveNumber('heartbeatIntervalMs', opts.heartbeatIntervalMs, 50);
  if (heartbeat >= election[0]) {
    throw new InvalidArgumentError(
      `option heartbeatIntervalMs (${heartbeat}) must be below the minimum election timeout (${election[0]})`,
    );
  }
  const tickMs = positiveNumber('tickMs', opts.tickMs, 10);
  if (tickMs > heartbeat)
    throw new InvalidArgumentError(
      `option tickMs (${tickMs}) must not exceed heartbeatIntervalMs (${heartbeat})`,
    );
  if (opts.codec !== undefined && !hasMethods(opts.codec, ['encode', 'decode'])) {
    throw new InvalidArgumentError('option codec must have encode and decode');
  }
  if (opts.clock !== undefined && !hasMethods(opts.clock, ['now', 'setTimeout', 'clearTimeout'])) {
    throw new InvalidArgumentError('option clock must have now, setTimeout and clearTimeout');
  }
  if (opts.random !== undefined && typeof opts.random !== 'function')
    throw new InvalidArgumentError('option random must be a function');
  if (opts.logger !== undefined && !hasMethods(opts.logger, ['debug', 'info', 'warn', 'error'])) {
    throw new InvalidArgumentError('option logger must have debug, info, warn and error');
  }
  return {
    name,
    log: opts.log,
    transport: opts.transport,
    electionTimeoutMs: election,
    heartbeatIntervalMs: heartbeat,
    tickMs,
    codec: opts.codec,
    clock: opts.clock,
    random: opts.random ?? Math.random,
    maxInflight: positiveInteger('maxInflight', opts.maxInflight, 64),
    maxBatchEntries: positiveInteger('maxBatchEntries', opts.maxBatchEntries, 1024),
    maxBatchBytes: positiveInteger('maxBatchBytes', opts.maxBatchBytes, 1 << 20),
    maxCommandBytes: positiveInteger('maxCommandBytes', opts.maxCommandBytes, 4 << 20),
    preVote: bool('preVote', opts.preVote, true),
    checkQuorum: bool('checkQuorum', opts.checkQuorum, true),
    defaultTimeoutMs: positiveNumber('defaultTimeoutMs', opts.defaultTimeoutMs, 3000),
    forward: bool('forward', opts.forward, false),
    logger: opts.logger,
    register: bool('register', opts.register, true),
    join: bool('join', opts.join, false),
    snapshotEvery: opts.snapshotEvery === 0 ? 0 : positiveInteger('snapshotEvery', opts.snapshotEvery, 10000),
    snapshotTrailingEntries:
      opts.snapshotTrailingEntries === 0
        ? 0
        : positiveInteger('snapshotTrailingEntries', opts.snapshotTrailingEntries, 1000),
    snapshotChunkBytes: positiveInteger('snapshotChunkBytes', opts.snapshotChunkBytes, 512 * 1024),
    snapshotWindow: positiveInteger('snapshotWindow', opts.snapshotWindow, 4),
    maxSnapshotBytes: positiveInteger('maxSnapshotBytes', opts.maxSnapshotBytes, 2 ** 30),
  };
}

/** The default clock: monotonic time and the process's timers. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (cb, ms) => setTimeout(cb, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};
