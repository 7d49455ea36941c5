import { InvalidArgumentError, RaftError, type HardState, type LogEntry, type LogStore, type LogStoreState, type LogWrite } from '@raft/core';
import { entryFingerprint } from './hash.js';
import type { Incarnation, World } from './world.js';

/** An entry as the disk holds it, with its fingerprint. */
export interface StoredEntry extends LogEntry {
  fp: number;
}

/**
 * What a peer's disk holds durably: exactly the writes that completed (were synced)
 * before the last crash. It outlives incarnations.
 */
export class SimDisk {
  hardState: HardState = { term: 0, votedFor: null };
  /** Entry `i` at position `i - 1`. */
  entries: StoredEntry[] = [];
  /** Durable writes so far. */
  writes = 0;

  lastIndex(): number {
    return this.entries.length;
  }

  entry(index: number): StoredEntry | undefined {
    return index >= 1 ? this.entries[index - 1] : undefined;
  }
}

/** Called once a write is durable, with the entries it removed (a truncated suffix). */
export type DurableHook = (inc: Incarnation, write: LogWrite, before: HardState, removed: StoredEntry[]) => void;

/** How the simulated disk behaves. */
export interface DiskBehaviour {
  /** Range of the delay of a synced write, in milliseconds. */
  syncMs: [number, number];
  /**
   * A lying disk: `write` resolves at once, before the data is durable, and a crash loses
   * it. Off in real runs; the simulator's own tests turn it on to prove it is caught.
   */
  lying: boolean;
}

function copyEntry(e: LogEntry): StoredEntry {
  const data = e.data.slice();
  const stored = { index: e.index, term: e.term, type: e.type, data, fp: 0 };
  stored.fp = entryFingerprint(stored);
  return stored;
}

/**
 * The `LogStore` of one incarnation over its peer's {@link SimDisk}. A write becomes
 * durable (and resolves) after a random sync delay of virtual time; if the incarnation
 * crashes first, the write is lost, as an unsynced write is.
 */
export class SimLogStore implements LogStore {
  private open_ = false;
  /** Virtual time the last scheduled write becomes durable: writes land in order. */
  private lastDurableAt = 0;
  /** Last index once every write issued so far lands (checks gaps as a real store would). */
  private pendingLast: number;

  constructor(
    private readonly world: World,
    private readonly inc: Incarnation,
    private readonly disk: SimDisk,
    private readonly behaviour: DiskBehaviour,
    private readonly onDurable: DurableHook,
  ) {
    this.pendingLast = disk.lastIndex();
  }

  open(): Promise<LogStoreState> {
    this.world.touch(this.inc.node);
    this.open_ = true;
    this.pendingLast = this.disk.lastIndex();
    return Promise.resolve({
      hardState: { ...this.disk.hardState },
      firstIndex: 1,
      lastIndex: this.disk.lastIndex(),
    });
  }

  write(batch: LogWrite): Promise<void> {
    this.world.touch(this.inc.node);
    if (!this.open_) return Promise.reject(new RaftError('RAFT_STORAGE_CLOSED', 'the simulated store is closed'));
    const entries = batch.entries ?? [];
    if (entries.length > 0) {
      const first = entries[0]!.index;
      if (first < 1 || first > this.pendingLast + 1) {
        this.world.fail('log-store-contract', `${this.inc.label} wrote entries from ${first} after a log ending at ${this.pendingLast}: a gap`);
        return Promise.reject(new InvalidArgumentError(`write would leave a gap: first index ${first}, last ${this.pendingLast}`));
      }
      for (let i = 1; i < entries.length; i++) {
        if (entries[i]!.index !== first + i) {
          this.world.fail('log-store-contract', `${this.inc.label} wrote entries that are not consecutive`);
          return Promise.reject(new InvalidArgumentError('entries are not consecutive'));
        }
      }
      this.pendingLast = first + entries.length - 1;
    }
    // Copy now: the disk holds what was handed to it, whatever the caller does later.
    const write: LogWrite = {};
    if (batch.hardState !== undefined) write.hardState = { term: batch.hardState.term, votedFor: batch.hardState.votedFor };
    if (entries.length > 0) write.entries = entries.map(copyEntry);
    const { sched, rng } = this.world;
    const delay = rng.range(this.behaviour.syncMs[0], this.behaviour.syncMs[1]);
    const at = Math.max(sched.now + delay, this.lastDurableAt);
    this.lastDurableAt = at;
    const inc = this.inc;
    if (this.behaviour.lying) {
      // Acknowledge now; the data reaches the platter later, unless the peer crashes first.
      sched.at(at, null, () => {
        if (inc.alive) this.land(write);
      });
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      sched.at(at, inc.node, () => {
        if (!inc.alive) return;
        this.land(write);
        resolve();
      });
    });
  }

  private land(write: LogWrite): void {
    const disk = this.disk;
    const before = disk.hardState;
    let removed: StoredEntry[] = [];
    if (write.hardState !== undefined) disk.hardState = write.hardState;
    const entries = (write.entries ?? []) as StoredEntry[];
    if (entries.length > 0) {
      const first = entries[0]!.index;
      removed = disk.entries.slice(first - 1);
      disk.entries.length = first - 1;
      for (const e of entries) disk.entries.push(e);
    }
    disk.writes++;
    this.world.touch(this.inc.node);
    this.onDurable(this.inc, write, before, removed);
  }

  entries(from: number, to: number): Promise<LogEntry[]> {
    this.world.touch(this.inc.node);
    if (!this.open_) return Promise.reject(new RaftError('RAFT_STORAGE_CLOSED', 'the simulated store is closed'));
    const lo = Math.max(1, from);
    const hi = Math.min(to, this.disk.lastIndex() + 1);
    const out: LogEntry[] = [];
    for (let i = lo; i < hi; i++) {
      const e = this.disk.entries[i - 1]!;
      out.push({ index: e.index, term: e.term, type: e.type, data: e.data.slice() });
    }
    return Promise.resolve(out);
  }

  close(): Promise<void> {
    this.open_ = false;
    return Promise.resolve();
  }
}
