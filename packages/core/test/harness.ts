/**
 * Test-only plumbing for runtime tests: virtual time, an in-memory log store and a
 * network, all deterministic. (The adapters proper live in their own packages, which
 * depend on @raft/core; core's tests cannot import them.)
 */
import type {
  Clock,
  HardState,
  LogEntry,
  LogStore,
  LogStoreState,
  LogWrite,
  PeerId,
  RaftMessage,
  Snapshot,
  Transport,
} from '../src/index.js';

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** Virtual time: timers fire only when the test advances the clock. */
export class VirtualClock implements Clock {
  private t = 0;
  private seq = 0;
  private timers: Timer[] = [];
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): Timer {
    const timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(timer);
    return timer;
  }
  clearTimeout(h: unknown): void {
    (h as Timer).cancelled = true;
  }
  /** Time passing inside a synchronous computation: the clock moves, no timer fires. */
  pass(ms: number): void {
    this.t += ms;
  }
  /** Runs every timer due within `ms`, letting promises settle between them. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await flush();
      this.timers = this.timers.filter((x) => !x.cancelled);
      let next: Timer | undefined;
      for (const x of this.timers)
        if (x.at <= end && (next === undefined || x.at < next.at || (x.at === next.at && x.seq < next.seq)))
          next = x;
      if (next === undefined) break;
      this.timers.splice(this.timers.indexOf(next), 1);
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = end;
    await flush();
  }
  /** Advances in steps until `cond` holds or `limitMs` of virtual time passes. */
  async until(cond: () => boolean, limitMs = 10_000, stepMs = 10): Promise<void> {
    for (let waited = 0; !cond(); waited += stepMs) {
      if (waited >= limitMs) throw new Error(`condition not met within ${limitMs} virtual ms`);
      await this.advance(stepMs);
    }
  }
}

export async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => queueMicrotask(r));
}

export class TestLogStore implements LogStore {
  hardState: HardState = { term: 0, votedFor: null };
  /** Entries from `offset + 1`. */
  log: LogEntry[] = [];
  offset = 0;
  snapshot: Snapshot | undefined;
  isOpen = false;
  writes: LogWrite[] = [];
  compactions: number[] = [];
  failNext: Error | null = null;
  async open(): Promise<LogStoreState> {
    this.isOpen = true;
    const state: LogStoreState = {
      hardState: { ...this.hardState },
      firstIndex: this.offset + 1,
      lastIndex: this.offset + this.log.length,
    };
    if (this.snapshot) state.snapshot = this.snapshot.meta;
    return state;
  }
  async write(batch: LogWrite): Promise<void> {
    if (this.failNext) {
      const e = this.failNext;
      this.failNext = null;
      throw e;
    }
    this.writes.push(batch);
    if (batch.hardState) this.hardState = { ...batch.hardState };
    if (batch.snapshot) {
      const { index, term } = batch.snapshot.meta;
      this.snapshot = { meta: structuredClone(batch.snapshot.meta), data: batch.snapshot.data.slice() };
      const held = this.log[index - this.offset - 1];
      if (held === undefined || held.term !== term) {
        this.log = [];
        this.offset = index;
      }
    }
    if (batch.entries && batch.entries.length > 0) {
      const first = batch.entries[0]!.index;
      this.log.length = first - this.offset - 1;
      for (const e of batch.entries) this.log.push({ ...e, data: e.data.slice() });
    }
  }
  async entries(from: number, to: number): Promise<LogEntry[]> {
    return this.log.slice(Math.max(0, from - this.offset - 1), Math.max(0, to - this.offset - 1));
  }
  async loadSnapshot(): Promise<Snapshot | undefined> {
    return this.snapshot;
  }
  async compact(upTo: number): Promise<void> {
    this.compactions.push(upTo);
    if (upTo <= this.offset) return;
    this.log = this.log.slice(upTo - this.offset);
    this.offset = upTo;
  }
  async close(): Promise<void> {
    this.isOpen = false;
  }
}

/** A network on virtual time: each message takes `latencyMs`; links can be cut. */
export class TestNetwork {
  private handlers = new Map<PeerId, (m: RaftMessage) => void>();
  private cut = new Set<string>();
  delivered: RaftMessage[] = [];
  constructor(
    private readonly clock: VirtualClock,
    private readonly latencyMs = 1,
  ) {}
  join(name: PeerId): Transport {
    return {
      start: async (onMessage) => {
        this.handlers.set(name, onMessage);
      },
      send: (to, m) => {
        if (this.cut.has(`${name}>${to}`)) return;
        const copy = structuredClone(m);
        this.clock.setTimeout(() => {
          if (this.cut.has(`${name}>${to}`)) return;
          const h = this.handlers.get(to);
          if (h) {
            this.delivered.push(copy);
            h(copy);
          }
        }, this.latencyMs);
      },
      close: async () => {
        this.handlers.delete(name);
      },
    };
  }
  /** Sends raw, unvalidated values to a peer, as a hostile network could. */
  inject(to: PeerId, value: unknown): void {
    (this.handlers.get(to) as ((m: unknown) => void) | undefined)?.(value);
  }
  isolate(name: PeerId, others: PeerId[]): void {
    for (const o of others) {
      this.cut.add(`${name}>${o}`);
      this.cut.add(`${o}>${name}`);
    }
  }
  heal(): void {
    this.cut.clear();
  }
}
