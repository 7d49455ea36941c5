import {
  InvalidArgumentError,
  RaftError,
  type HardState,
  type LogEntry,
  type LogStore,
  type LogStoreState,
  type LogWrite,
  type Snapshot,
} from '@raft/core';
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
  /** Index of the last entry compacted away (or replaced by a snapshot): entry `i` is at position `i - base - 1`. */
  base = 0;
  /** The entries after `base`. */
  entries: StoredEntry[] = [];
  /** The latest durable snapshot. */
  snapshot: Snapshot | undefined = undefined;
  /** Durable writes so far. */
  writes = 0;
  /** Snapshots written (from this peer's own policy or from a leader) and compactions landed. */
  snapshotsWritten = 0;
  compactions = 0;

  lastIndex(): number {
    return this.base + this.entries.length;
  }

  firstIndex(): number {
    return this.base + 1;
  }

  entry(index: number): StoredEntry | undefined {
    return index > this.base ? this.entries[index - this.base - 1] : undefined;
  }

  /** The term at `index`: of the entry held, or of the snapshot when it ends there. */
  termAt(index: number): number | undefined {
    const e = this.entry(index);
    if (e !== undefined) return e.term;
    if (this.snapshot !== undefined && this.snapshot.meta.index === index) return this.snapshot.meta.term;
    return undefined;
  }

  /** Whether the disk holds entry `index` of `term`, or a snapshot that covers it (compacted). */
  covers(index: number, term: number, fp: number): boolean {
    const e = this.entry(index);
    if (e !== undefined) return e.term === term && e.fp === fp;
    return this.snapshot !== undefined && index <= this.snapshot.meta.index;
  }
}

/** Called once a write is durable, with the entries it removed (a truncated suffix). */
export type DurableHook = (
  inc: Incarnation,
  write: LogWrite,
  before: HardState,
  removed: StoredEntry[],
) => void;

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
  /** The snapshot index once every write issued so far lands. */
  private pendingSnap: number;

  constructor(
    private readonly world: World,
    private readonly inc: Incarnation,
    private readonly disk: SimDisk,
    private readonly behaviour: DiskBehaviour,
    private readonly onDurable: DurableHook,
  ) {
    this.pendingLast = disk.lastIndex();
    this.pendingSnap = disk.snapshot?.meta.index ?? 0;
  }

  open(): Promise<LogStoreState> {
    this.world.touch(this.inc.node);
    this.open_ = true;
    this.pendingLast = this.disk.lastIndex();
    this.pendingSnap = this.disk.snapshot?.meta.index ?? 0;
    const state: LogStoreState = {
      hardState: { ...this.disk.hardState },
      firstIndex: this.disk.firstIndex(),
      lastIndex: this.disk.lastIndex(),
    };
    const snap = this.disk.snapshot;
    if (snap !== undefined) state.snapshot = structuredClone(snap.meta);
    return Promise.resolve(state);
  }

  loadSnapshot(): Promise<Snapshot | undefined> {
    this.world.touch(this.inc.node);
    if (!this.open_)
      return Promise.reject(new RaftError('RAFT_STORAGE_CLOSED', 'the simulated store is closed'));
    const snap = this.disk.snapshot;
    if (snap === undefined) return Promise.resolve(undefined);
    const copy: Snapshot = { meta: structuredClone(snap.meta), data: snap.data.slice() };
    this.world.snapshotIndexOf.set(copy.data, copy.meta.index);
    return Promise.resolve(copy);
  }

  compact(upTo: number): Promise<void> {
    this.world.touch(this.inc.node);
    if (!this.open_)
      return Promise.reject(new RaftError('RAFT_STORAGE_CLOSED', 'the simulated store is closed'));
    if (!Number.isInteger(upTo) || upTo > this.pendingSnap || this.pendingSnap === 0) {
      this.world.fail(
        'log-store-contract',
        `${this.inc.label} compacted up to ${upTo} with its snapshot at ${this.pendingSnap}`,
      );
      return Promise.reject(
        new InvalidArgumentError(`compact(${upTo}) beyond the snapshot at ${this.pendingSnap}`),
      );
    }
    // Durable after a sync delay, in order with the writes; a crash before then keeps the entries.
    const at = this.nextDurableAt();
    const inc = this.inc;
    return new Promise<void>((resolve) => {
      this.world.sched.at(at, inc.node, () => {
        if (!inc.alive) return;
        const disk = this.disk;
        if (upTo > disk.base) {
          const drop = Math.min(upTo, disk.lastIndex()) - disk.base;
          disk.entries.splice(0, drop);
          disk.base = upTo;
          disk.compactions++;
        }
        this.world.touch(inc.node);
        resolve();
      });
    });
  }

  private nextDurableAt(): number {
    const { sched, rng } = this.world;
    const delay = rng.range(this.behaviour.syncMs[0], this.behaviour.syncMs[1]);
    const at = Math.max(sched.now + delay, this.lastDurableAt);
    this.lastDurableAt = at;
    return at;
  }

  write(batch: LogWrite): Promise<void> {
    this.world.touch(this.inc.node);
    if (!this.open_)
      return Promise.reject(new RaftError('RAFT_STORAGE_CLOSED', 'the simulated store is closed'));
    const entries = batch.entries ?? [];
    const snap = batch.snapshot;
    if (snap !== undefined) {
      if (snap.meta.index < this.pendingSnap) {
        this.world.fail(
          'log-store-contract',
          `${this.inc.label} wrote a snapshot at ${snap.meta.index} older than the stored one at ${this.pendingSnap}`,
        );
        return Promise.reject(new InvalidArgumentError('snapshot older than the stored one'));
      }
      this.world.snapshotIndexOf.set(snap.data, snap.meta.index);
      // Whether it matches the log is decided when it lands, against the log as then; the
      // log ends at the snapshot at least.
      this.pendingSnap = snap.meta.index;
      this.pendingLast = Math.max(this.pendingLast, snap.meta.index);
    }
    if (entries.length > 0) {
      const first = entries[0]!.index;
      if (first <= this.pendingSnap) {
        this.world.fail(
          'log-store-contract',
          `${this.inc.label} wrote entry ${first} at or below its snapshot at ${this.pendingSnap}`,
        );
        return Promise.reject(
          new InvalidArgumentError(`entries must start after the snapshot's index ${this.pendingSnap}`),
        );
      }
      if (first < 1 || first > this.pendingLast + 1) {
        this.world.fail(
          'log-store-contract',
          `${this.inc.label} wrote entries from ${first} after a log ending at ${this.pendingLast}: a gap`,
        );
        return Promise.reject(
          new InvalidArgumentError(`write would leave a gap: first index ${first}, last ${this.pendingLast}`),
        );
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
    if (batch.hardState !== undefined)
      write.hardState = { term: batch.hardState.term, votedFor: batch.hardState.votedFor };
    if (snap !== undefined) write.snapshot = { meta: structuredClone(snap.meta), data: snap.data.slice() };
    if (entries.length > 0) write.entries = entries.map(copyEntry);
    const { sched } = this.world;
    const at = this.nextDurableAt();
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
    const snap = write.snapshot;
    if (snap !== undefined) {
      const { index, term } = snap.meta;
      const matches =
        disk.termAt(index) === term ||
        (disk.snapshot !== undefined &&
          disk.snapshot.meta.index === index &&
          disk.snapshot.meta.term === term);
      if (!matches) {
        // A snapshot from the leader replaces a log that diverged or is too short.
        removed = disk.entries;
        disk.entries = [];
        disk.base = index;
      }
      disk.snapshot = snap;
      disk.snapshotsWritten++;
    }
    const entries = (write.entries ?? []) as StoredEntry[];
    if (entries.length > 0) {
      const first = entries[0]!.index;
      const at = first - disk.base - 1;
      removed = removed.concat(disk.entries.slice(at));
      disk.entries.length = at;
      for (const e of entries) disk.entries.push(e);
    }
    disk.writes++;
    this.world.touch(this.inc.node);
    this.onDurable(this.inc, write, before, removed);
  }

  entries(from: number, to: number): Promise<LogEntry[]> {
    this.world.touch(this.inc.node);
    if (!this.open_)
      return Promise.reject(new RaftError('RAFT_STORAGE_CLOSED', 'the simulated store is closed'));
    const lo = Math.max(this.disk.firstIndex(), from);
    const hi = Math.min(to, this.disk.lastIndex() + 1);
    const out: LogEntry[] = [];
    for (let i = lo; i < hi; i++) {
      const e = this.disk.entry(i)!;
      out.push({ index: e.index, term: e.term, type: e.type, data: e.data.slice() });
    }
    return Promise.resolve(out);
  }

  close(): Promise<void> {
    this.open_ = false;
    return Promise.resolve();
  }
}
