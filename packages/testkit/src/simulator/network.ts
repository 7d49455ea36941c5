import type { RaftMessage, Transport } from '@raft/core';
import { cloneMessage, describeMessage } from './messages.js';
import type { Incarnation, SimNode, World } from './world.js';

/** How the network treats messages. Probabilities are per message. */
export interface NetworkBehaviour {
  /** Probability that a message is lost. */
  drop: number;
  /** Probability that a message is delivered twice. */
  duplicate: number;
  /** Range of a message's delay, in milliseconds; a range wider than zero reorders. */
  latencyMs: [number, number];
  /** Probability that a message is held back much longer (reordering). */
  reorder: number;
  /** Longest extra delay of a held-back message, in milliseconds. */
  reorderMs: number;
}

/** A reliable, orderly network: what the healed cluster runs on. */
export const CALM_NETWORK: NetworkBehaviour = {
  drop: 0,
  duplicate: 0,
  latencyMs: [0.5, 2],
  reorder: 0,
  reorderMs: 0,
};

/** Called for every message a live incarnation sends, before the network touches it. */
export type SendHook = (from: Incarnation, message: RaftMessage) => void;

/**
 * The network between the peers: drops, duplicates, delays and reorders messages at the
 * rates of its {@link NetworkBehaviour}, and cuts links (partitions). A message goes to
 * whichever incarnation of its addressee runs when it arrives.
 */
export class SimNetwork {
  behaviour: NetworkBehaviour;
  /** blocked[from][to]: the link from → to is cut. */
  private blocked: boolean[][];
  /** A short description of the current partition, or null. */
  partition: string | null = null;
  delivered = 0;
  dropped = 0;

  /** The current partition's rule (null: none); applied to peers added later too. */
  private cut: ((from: SimNode, to: SimNode) => boolean) | null = null;
  /** Peers cut off from everyone, whatever the partition (removed peers kept apart). */
  private readonly detached = new Set<SimNode>();
  /** upSince[a][b]: virtual time since which the links a → b and b → a are both up (Infinity while cut). */
  private upSince: number[][];

  constructor(
    private readonly world: World,
    behaviour: NetworkBehaviour,
    private readonly onSend: SendHook,
  ) {
    this.behaviour = behaviour;
    const n = world.nodes.length;
    this.blocked = Array.from({ length: n }, () => new Array<boolean>(n).fill(false));
    this.upSince = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  }

  /** No partition, no detached peer, no loss and no held-back messages. */
  get healthy(): boolean {
    const b = this.behaviour;
    return this.cut === null && this.detached.size === 0 && b.drop === 0 && b.reorder === 0;
  }

  /** Virtual time since which the links between `a` and `b` are up both ways (Infinity while either is cut). */
  linkUpSince(a: SimNode, b: SimNode): number {
    return this.upSince[a.index]?.[b.index] ?? Infinity;
  }

  /** Makes room for a peer just added to the world (`world.nodes`), under the current partition. */
  addNode(): void {
    const nodes = this.world.nodes;
    while (this.blocked.length < nodes.length) this.blocked.push([]);
    while (this.upSince.length < nodes.length) this.upSince.push([]);
    this.recompute();
  }

  /** Cuts every link to and from `node` until {@link attach} or {@link heal}. */
  detach(node: SimNode): void {
    this.detached.add(node);
    this.recompute();
  }

  /** Restores `node`'s links (those the partition does not cut). */
  attach(node: SimNode): void {
    if (this.detached.delete(node)) this.recompute();
  }

  private recompute(): void {
    const nodes = this.world.nodes;
    const cut = this.cut;
    const detached = this.detached;
    for (const a of nodes) {
      const row = this.blocked[a.index]!;
      for (const b of nodes)
        row[b.index] = a !== b && (detached.has(a) || detached.has(b) || (cut !== null && cut(a, b)));
    }
    const now = this.world.sched.now;
    for (const a of nodes) {
      const since = this.upSince[a.index]!;
      for (const b of nodes) {
        const up = !this.blocked[a.index]![b.index]! && !this.blocked[b.index]![a.index]!;
        const was = since[b.index];
        if (!up) since[b.index] = Infinity;
        else if (was === undefined || was === Infinity) since[b.index] = now;
      }
    }
  }

  /** The transport of one incarnation. Dead once the incarnation crashes. */
  transportFor(inc: Incarnation): Transport {
    return {
      start: (onMessage) => {
        this.world.touch(inc.node);
        inc.onMessage = onMessage;
        return Promise.resolve();
      },
      send: (to, message) => {
        if (!inc.alive || inc.onMessage === null) return;
        this.world.touch(inc.node);
        this.send(inc, to, message);
      },
      close: () => {
        inc.onMessage = null;
        return Promise.resolve();
      },
    };
  }

  private send(from: Incarnation, to: string, message: RaftMessage): void {
    this.onSend(from, message);
    const { rng, sched, trace } = this.world;
    let target: SimNode;
    try {
      target = this.world.node(to);
    } catch {
      return; // Addressed to no one: lost.
    }
    const src = from.node;
    if (this.blocked[src.index]![target.index] === true) {
      this.dropped++;
      return;
    }
    const b = this.behaviour;
    if (rng.chance(b.drop)) {
      this.dropped++;
      trace.add(sched.now, () => `net   ${src.name}->${to} LOST ${describeMessage(message)}`);
      return;
    }
    const copies = rng.chance(b.duplicate) ? 2 : 1;
    for (let c = 0; c < copies; c++) {
      let delay = rng.range(b.latencyMs[0], b.latencyMs[1]);
      if (rng.chance(b.reorder)) delay += rng.range(0, b.reorderMs);
      const copy = cloneMessage(message);
      const dup = c > 0;
      sched.after(delay, target, () => this.deliver(src, target, copy, dup));
    }
  }

  private deliver(src: SimNode, target: SimNode, message: RaftMessage, dup: boolean): void {
    const { trace, sched } = this.world;
    // A link cut while the message was in flight loses it.
    if (this.blocked[src.index]![target.index] === true) {
      this.dropped++;
      return;
    }
    const inc = target.inc;
    if (inc === null || !inc.alive || inc.onMessage === null) {
      this.dropped++;
      return;
    }
    this.delivered++;
    trace.add(
      sched.now,
      () => `recv  ${src.name}->${target.name}${dup ? ' (dup)' : ''} ${describeMessage(message)}`,
    );
    inc.onMessage(message);
  }

  /** Whether the link from → to is up. */
  linkUp(from: SimNode, to: SimNode): boolean {
    return this.blocked[from.index]![to.index] !== true;
  }

  /** Cuts the links from → to for every pair the predicate selects; restores all others. */
  setPartition(description: string, cut: (from: SimNode, to: SimNode) => boolean): void {
    this.cut = cut;
    this.partition = description;
    this.recompute();
  }

  /** Ends the partition: restores every link but those of detached peers. */
  healPartition(): void {
    this.cut = null;
    this.partition = null;
    this.recompute();
  }

  /** Restores every link, detached peers' too. */
  heal(): void {
    this.cut = null;
    this.detached.clear();
    this.partition = null;
    this.recompute();
  }
}
