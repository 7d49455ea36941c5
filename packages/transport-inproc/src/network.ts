import { Packr } from 'msgpackr';
import { InvalidArgumentError, RaftError, seededRandom } from '@raft/core';
import type { PeerId, RaftMessage, Transport } from '@raft/core';

/**
 * Where the network gets its timers. `@raft/core`'s `Clock` fits, so a simulator can
 * hand its virtual clock to the network and decide exactly when each message arrives.
 */
export interface Scheduler {
  /** Calls `callback` once, `ms` milliseconds from now (in the scheduler's time). */
  setTimeout(callback: () => void, ms: number): unknown;
  /** Cancels a callback that has not run yet. */
  clearTimeout(handle: unknown): void;
}

/** The faults the network injects into every message. They can change at any time with {@link InProcessNetwork.setFaults}. */
export interface FaultOptions {
  /**
   * Probability, in [0, 1], that a message is lost.
   * @default 0
   */
  dropProbability?: number;
  /**
   * Probability, in [0, 1], that a message is delivered twice (each copy with its own delay).
   * @default 0
   */
  duplicateProbability?: number;
  /**
   * Each copy of a message waits a whole number of milliseconds drawn uniformly from
   * `[min, max]` (both included). Unequal delays reorder messages.
   * @default [0, 0]
   */
  delayMs?: readonly [min: number, max: number];
}

/** Options of {@link InProcessNetwork}. */
export interface InProcessNetworkOptions extends FaultOptions {
  /**
   * Seeds every random choice the network makes (drops, duplicates, delays), so a run
   * can be replayed exactly.
   * @default 1
   */
  seed?: number;
  /**
   * Timers for deliveries. With a scheduler, every delivery (even with no delay) goes
   * through `scheduler.setTimeout`, so a simulator controls the order completely.
   * @default the global timers: messages without delay are delivered first-in first-out
   * from a `setImmediate` queue, delayed ones with `setTimeout`.
   */
  scheduler?: Scheduler;
  /**
   * Called when a peer's `onMessage` throws. The network keeps delivering.
   * @default rethrows the error from a microtask, so it surfaces as an uncaught exception
   */
  onHandlerError?: (error: unknown, peer: PeerId) => void;
}

/** Why a message was not delivered. */
export type DropCause =
  /** Lost to `dropProbability`. */
  | 'random'
  /** Sender and addressee are on different sides of a partition, or one is isolated. */
  | 'partition'
  /** The link from sender to addressee is blocked ({@link InProcessNetwork.block}). */
  | 'blocked'
  /** The addressee has not joined, has not started, or has closed. */
  | 'unreachable'
  /** The sender has not started, or has closed (its `send` is a no-op). */
  | 'closed'
  /** `message.to` is not the peer the message was sent to. */
  | 'misaddressed'
  /** The message cannot be encoded (it is not a plain value). */
  | 'unencodable';

/** Counters of an {@link InProcessNetwork}. Every `send` adds one to `sent`. */
export interface InProcessNetworkStats {
  /** Calls of `send` on any transport of the network. */
  sent: number;
  /** Messages handed to a peer's `onMessage` (duplicates included). */
  delivered: number;
  /** Extra copies made by `duplicateProbability`. */
  duplicated: number;
  /** Messages not delivered, by cause. */
  dropped: Record<DropCause, number>;
}

/** A {@link Transport} joined to an {@link InProcessNetwork}. */
export interface InProcessTransport extends Transport {
  /** The peer name it joined with. */
  readonly name: PeerId;
}

const DROP_CAUSES: readonly DropCause[] = [
  'random',
  'partition',
  'blocked',
  'unreachable',
  'closed',
  'misaddressed',
  'unencodable',
];

type EndpointState = 'joined' | 'started' | 'closed';

/** One peer's view of the network. Private: users see it as an {@link InProcessTransport}. */
class Endpoint implements InProcessTransport {
  state: EndpointState = 'joined';
  handler: ((message: RaftMessage) => void) | null = null;

  constructor(
    readonly name: PeerId,
    private readonly route: (from: Endpoint, to: PeerId, message: RaftMessage) => void,
    private readonly leave: (endpoint: Endpoint) => void,
  ) {}

  start(onMessage: (message: RaftMessage) => void): Promise<void> {
    if (this.state === 'closed') {
      return Promise.reject(new RaftError('RAFT_TRANSPORT_UNAVAILABLE', `transport ${this.name} is closed`));
    }
    if (this.state === 'started') {
      return Promise.reject(new InvalidArgumentError(`transport ${this.name}: start was already called`));
    }
    if (typeof onMessage !== 'function') {
      return Promise.reject(new InvalidArgumentError('onMessage must be a function'));
    }
    this.handler = onMessage;
    this.state = 'started';
    return Promise.resolve();
  }

  send(to: PeerId, message: RaftMessage): void {
    this.route(this, to, message);
  }

  close(): Promise<void> {
    if (this.state !== 'closed') {
      this.state = 'closed';
      this.handler = null;
      this.leave(this);
    }
    return Promise.resolve();
  }
}

function checkProbability(name: string, value: unknown): number {
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
    throw new InvalidArgumentError(`${name} must be a number in [0, 1], got ${String(value)}`);
  }
  return value;
}

function checkDelay(value: unknown): readonly [number, number] {
  if (!Array.isArray(value) || value.length !== 2) {
    throw new InvalidArgumentError('delayMs must be a pair [min, max] of milliseconds');
  }
  const [min, max] = value as unknown[];
  if (
    typeof min !== 'number' ||
    typeof max !== 'number' ||
    !Number.isSafeInteger(min) ||
    !Number.isSafeInteger(max) ||
    min < 0 ||
    max < min
  ) {
    throw new InvalidArgumentError(
      `delayMs must be whole milliseconds with 0 <= min <= max, got [${String(min)}, ${String(max)}]`,
    );
  }
  return [min, max];
}

function checkPeerId(name: string, value: unknown): PeerId {
  if (typeof value !== 'string' || value.length === 0) {
    throw new InvalidArgumentError(`${name} must be a non-empty string`);
  }
  return value;
}

/**
 * A simulated network inside one process, with seeded fault injection. Each peer
 * joins with `network.join(name)` and gets a {@link Transport}.
 *
 * - Messages cross a serialization boundary (MessagePack): peers never share objects,
 *   and a sender may reuse a message after `send`.
 * - Delivery is asynchronous, never inside the sender's call stack.
 * - Every random choice comes from one generator seeded with `seed`, drawn in the order
 *   of `send` calls (four draws per call, whatever its fate), so the same sends give the
 *   same drops, duplicates and delays. With a deterministic `scheduler` the delivery
 *   order is deterministic too; with the global timers, messages without delay arrive
 *   first-in first-out.
 * - Partitions, isolation and blocked links apply when a message is sent and again when
 *   it would be delivered: a partition also cuts messages already in flight.
 * - A message to a peer that has not joined, has not started or has closed is dropped
 *   and counted; a message in flight to a peer that restarts (joins again under the
 *   same name) reaches the new one, like a datagram to the same address.
 *
 * @example
 * ```ts
 * const network = new InProcessNetwork({ seed: 42, dropProbability: 0.05 });
 * const t1 = network.join('n1');
 * network.partition([['n1'], ['n2', 'n3']]);
 * network.heal();
 * ```
 */
export class InProcessNetwork {
  readonly #packr = new Packr({ useRecords: false });
  readonly #random: () => number;
  readonly #scheduler: Scheduler | undefined;
  readonly #onHandlerError: (error: unknown, peer: PeerId) => void;
  readonly #endpoints = new Map<PeerId, Endpoint>();
  readonly #isolated = new Set<PeerId>();
  readonly #blocked = new Map<PeerId, Set<PeerId>>();
  readonly #timers = new Map<object, unknown>();
  #groups: Map<PeerId, number> | null = null;
  #drop = 0;
  #duplicate = 0;
  #delay: readonly [number, number] = [0, 0];
  #immediate: (() => void)[] = [];
  #immediateHandle: ReturnType<typeof setImmediate> | null = null;
  #closed = false;
  #stats: InProcessNetworkStats = {
    sent: 0,
    delivered: 0,
    duplicated: 0,
    dropped: Object.fromEntries(DROP_CAUSES.map((c) => [c, 0])) as Record<DropCause, number>,
  };

  /** @throws RaftError `RAFT_INVALID_ARGUMENT` naming the bad option. */
  constructor(options: InProcessNetworkOptions = {}) {
    const seed = options.seed ?? 1;
    if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) {
      throw new InvalidArgumentError(`seed must be an integer, got ${String(seed)}`);
    }
    const scheduler = options.scheduler;
    if (
      scheduler !== undefined &&
      (typeof scheduler.setTimeout !== 'function' || typeof scheduler.clearTimeout !== 'function')
    ) {
      throw new InvalidArgumentError('scheduler must have setTimeout(callback, ms) and clearTimeout(handle)');
    }
    if (options.onHandlerError !== undefined && typeof options.onHandlerError !== 'function') {
      throw new InvalidArgumentError('onHandlerError must be a function');
    }
    this.#random = seededRandom(seed);
    this.#scheduler = scheduler;
    this.#onHandlerError =
      options.onHandlerError ??
      ((error) => {
        queueMicrotask(() => {
          throw error;
        });
      });
    this.setFaults(options);
  }

  /**
   * Adds a peer to the network and returns its transport, not yet started. A name can
   * join again once its previous transport is closed (a restart).
   * @throws RaftError `RAFT_INVALID_ARGUMENT` if the name is empty or its transport is still open;
   * `RAFT_TRANSPORT_UNAVAILABLE` if the network is closed.
   */
  join(name: PeerId): InProcessTransport {
    checkPeerId('name', name);
    if (this.#closed) throw new RaftError('RAFT_TRANSPORT_UNAVAILABLE', 'the network is closed');
    const existing = this.#endpoints.get(name);
    if (existing !== undefined && existing.state !== 'closed') {
      throw new InvalidArgumentError(
        `a transport named ${JSON.stringify(name)} is already joined; close it first`,
      );
    }
    const endpoint = new Endpoint(
      name,
      (from, to, message) => this.#send(from, to, message),
      (e) => {
        if (this.#endpoints.get(e.name) === e) this.#endpoints.delete(e.name);
      },
    );
    this.#endpoints.set(name, endpoint);
    return endpoint;
  }

  /**
   * Splits the network: peers in different groups cannot exchange messages. A peer in
   * no group is cut off from every other. Replaces the previous partition; isolated peers
   * and blocked links stay as they are.
   * @throws RaftError `RAFT_INVALID_ARGUMENT` if a peer appears twice.
   */
  partition(groups: readonly (readonly PeerId[])[]): void {
    if (!Array.isArray(groups))
      throw new InvalidArgumentError('groups must be an array of arrays of peer names');
    const map = new Map<PeerId, number>();
    groups.forEach((group: unknown, i) => {
      if (!Array.isArray(group))
        throw new InvalidArgumentError(`groups[${i}] must be an array of peer names`);
      for (const member of group as unknown[]) {
        const peer = checkPeerId(`groups[${i}][]`, member);
        if (map.has(peer))
          throw new InvalidArgumentError(`peer ${JSON.stringify(peer)} appears in more than one group`);
        map.set(peer, i);
      }
    });
    this.#groups = map;
  }

  /** Cuts one peer off from every other, in both directions, until {@link heal}. */
  isolate(peer: PeerId): void {
    this.#isolated.add(checkPeerId('peer', peer));
  }

  /** Blocks the link in one direction: messages from `from` to `to` are dropped. */
  block(from: PeerId, to: PeerId): void {
    checkPeerId('from', from);
    checkPeerId('to', to);
    let set = this.#blocked.get(from);
    if (set === undefined) this.#blocked.set(from, (set = new Set()));
    set.add(to);
  }

  /** Unblocks the link from `from` to `to`. */
  unblock(from: PeerId, to: PeerId): void {
    this.#blocked.get(from)?.delete(to);
  }

  /** Removes the partition, every isolation and every blocked link. Random faults stay. */
  heal(): void {
    this.#groups = null;
    this.#isolated.clear();
    this.#blocked.clear();
  }

  /**
   * Changes the random faults; options left out keep their value.
   * @throws RaftError `RAFT_INVALID_ARGUMENT` naming the bad option.
   */
  setFaults(faults: FaultOptions): void {
    const drop =
      faults.dropProbability === undefined
        ? this.#drop
        : checkProbability('dropProbability', faults.dropProbability);
    const duplicate =
      faults.duplicateProbability === undefined
        ? this.#duplicate
        : checkProbability('duplicateProbability', faults.duplicateProbability);
    const delay = faults.delayMs === undefined ? this.#delay : checkDelay(faults.delayMs);
    this.#drop = drop;
    this.#duplicate = duplicate;
    this.#delay = delay;
  }

  /** Whether a message from `from` to `to` would get through right now (ignoring random faults). */
  canReach(from: PeerId, to: PeerId): boolean {
    return this.#cut(from, to) === null;
  }

  /** A copy of the counters. */
  stats(): InProcessNetworkStats {
    return { ...this.#stats, dropped: { ...this.#stats.dropped } };
  }

  /** Messages scheduled but not yet delivered or dropped. */
  inFlight(): number {
    return this.#timers.size + this.#immediate.length;
  }

  /** Closes every transport and cancels every pending delivery. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const endpoint of [...this.#endpoints.values()]) void endpoint.close();
    for (const handle of this.#timers.values()) {
      if (this.#scheduler === undefined) clearTimeout(handle as ReturnType<typeof setTimeout>);
      else this.#scheduler.clearTimeout(handle);
    }
    this.#timers.clear();
    if (this.#immediateHandle !== null) clearImmediate(this.#immediateHandle);
    this.#immediateHandle = null;
    this.#immediate = [];
  }

  #cut(from: PeerId, to: PeerId): 'partition' | 'blocked' | null {
    if (from !== to) {
      if (this.#isolated.has(from) || this.#isolated.has(to)) return 'partition';
      if (this.#groups !== null) {
        const a = this.#groups.get(from);
        if (a === undefined || a !== this.#groups.get(to)) return 'partition';
      }
    }
    if (this.#blocked.get(from)?.has(to) === true) return 'blocked';
    return null;
  }

  #dropped(cause: DropCause): void {
    this.#stats.dropped[cause]++;
  }

  #send(from: Endpoint, to: PeerId, message: RaftMessage): void {
    // Always four draws, so the fate of one message never shifts the draws of the next.
    const dropRoll = this.#random();
    const duplicateRoll = this.#random();
    const delayRoll = this.#random();
    const duplicateDelayRoll = this.#random();
    this.#stats.sent++;
    if (from.state !== 'started' || this.#closed) return this.#dropped('closed');
    let bytes: Uint8Array;
    try {
      if (typeof to !== 'string' || (message as Partial<RaftMessage> | null)?.to !== to)
        return this.#dropped('misaddressed');
      bytes = this.#packr.pack(message);
    } catch {
      return this.#dropped('unencodable');
    }
    const cut = this.#cut(from.name, to);
    if (cut !== null) return this.#dropped(cut);
    if (dropRoll < this.#drop) return this.#dropped('random');
    if (this.#endpoints.get(to)?.state !== 'started') return this.#dropped('unreachable');
    const sender = from.name;
    this.#schedule(this.#delayFrom(delayRoll), () => this.#deliver(sender, to, bytes));
    if (duplicateRoll < this.#duplicate) {
      this.#stats.duplicated++;
      this.#schedule(this.#delayFrom(duplicateDelayRoll), () => this.#deliver(sender, to, bytes));
    }
  }

  #delayFrom(roll: number): number {
    const [min, max] = this.#delay;
    return min + Math.floor(roll * (max - min + 1));
  }

  #schedule(delay: number, deliver: () => void): void {
    if (this.#scheduler === undefined && delay === 0) {
      this.#immediate.push(deliver);
      this.#immediateHandle ??= setImmediate(this.#drain);
      return;
    }
    const token = {};
    const run = (): void => {
      this.#timers.delete(token);
      deliver();
    };
    const handle =
      this.#scheduler === undefined ? setTimeout(run, delay) : this.#scheduler.setTimeout(run, delay);
    this.#timers.set(token, handle);
  }

  readonly #drain = (): void => {
    this.#immediateHandle = null;
    // Messages sent while draining wait for the next turn: no starvation of timers and I/O.
    const batch = this.#immediate;
    this.#immediate = [];
    for (const deliver of batch) deliver();
  };

  #deliver(from: PeerId, to: PeerId, bytes: Uint8Array): void {
    if (this.#closed) return;
    const cut = this.#cut(from, to);
    if (cut !== null) return this.#dropped(cut);
    const target = this.#endpoints.get(to);
    const handler = target?.state === 'started' ? target.handler : null;
    if (handler === null) return this.#dropped('unreachable');
    // Decoded per delivery: a duplicate is a separate object too.
    const message = this.#packr.unpack(bytes) as RaftMessage;
    this.#stats.delivered++;
    try {
      handler(message);
    } catch (error) {
      this.#onHandlerError(error, to);
    }
  }
}
