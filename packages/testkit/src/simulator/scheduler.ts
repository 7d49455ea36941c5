/**
 * The event queue: every future happening of a run (a timer, a message delivery, a disk
 * sync, a client call, a fault) is an event at a virtual time. Events run in (time,
 * sequence) order, so two events at the same time run in the order they were scheduled.
 */
export interface SimEvent {
  /** Virtual time in milliseconds. */
  at: number;
  /** Tie-breaker: scheduling order. */
  seq: number;
  /** The peer the event happens on, when it does: a paused peer defers it. */
  owner: EventOwner | null;
  run: () => void;
}

/** What events can happen on: a peer, which a pause freezes. */
export interface EventOwner {
  /** Virtual time the pause ends, or null when running. */
  pausedUntil: number | null;
  /** Events that came due during the pause, in order. */
  deferred: SimEvent[];
  /** Something ran on it during the current event: the checker inspects it afterwards. */
  dirty: boolean;
}

/** A binary min-heap of events ordered by (at, seq). */
export class Scheduler {
  private heap: SimEvent[] = [];
  private seq = 0;
  /** Virtual time of the event being run. */
  now = 0;

  get size(): number {
    return this.heap.length;
  }

  /** Schedules `run` at `at` (never before now). */
  at(at: number, owner: EventOwner | null, run: () => void): SimEvent {
    const ev: SimEvent = { at: Math.max(at, this.now), seq: this.seq++, owner, run };
    this.push(ev);
    return ev;
  }

  /** Schedules `run` after `delay` milliseconds. */
  after(delay: number, owner: EventOwner | null, run: () => void): SimEvent {
    return this.at(this.now + Math.max(0, delay), owner, run);
  }

  /** The earliest event, removed from the queue; time advances to it. */
  pop(): SimEvent | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      this.down(0);
    }
    if (top.at > this.now) this.now = top.at;
    return top;
  }

  /** The time of the earliest event, or Infinity. */
  peekTime(): number {
    return this.heap[0]?.at ?? Infinity;
  }

  private less(a: SimEvent, b: SimEvent): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(ev: SimEvent): void {
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      const t = h[i]!;
      h[i] = h[p]!;
      h[p] = t;
      i = p;
    }
  }

  private down(i: number): void {
    const h = this.heap;
    const n = h.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.less(h[l]!, h[m]!)) m = l;
      if (r < n && this.less(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      const t = h[i]!;
      h[i] = h[m]!;
      h[m] = t;
      i = m;
    }
  }
}
