/**
 * A tiny hand-driven cluster of pure protocol peers for the membership tests. Unlike
 * `Cluster` in ../protocol-driver.ts it accepts snapshots (persistence is a no-op: the
 * runtime contract is emulated by ready -> deliver -> advance), which the membership
 * scenarios need. Nothing ticks unless the test ticks; every run replays exactly.
 */
import { Raft, type RaftOptions } from '../../src/protocol/raft.js';
import type { LogEntry, PeerId, RaftMessage } from '../../src/types.js';
import { configEntry, raftOptions } from '../protocol-driver.js';

export class Net {
  readonly peers = new Map<PeerId, Raft>();
  inflight: RaftMessage[] = [];
  readonly sent: RaftMessage[] = [];
  private readonly cut = new Set<PeerId>();

  /** `members` configured at index 1 on each of them; `spares` start empty and unconfigured. */
  constructor(members: PeerId[], spares: PeerId[] = [], options: Partial<RaftOptions> = {}) {
    [...members, ...spares].forEach((id, i) => {
      const log: LogEntry[] = members.includes(id) ? [configEntry(1, 1, members)] : [];
      const term = log.length > 0 ? 1 : 0;
      this.peers.set(
        id,
        new Raft(raftOptions(id, 7000 + i, options), { hardState: { term, votedFor: null }, entries: log }),
      );
    });
  }

  raft(id: PeerId): Raft {
    const r = this.peers.get(id);
    if (r === undefined) throw new Error(`no peer ${id}`);
    return r;
  }

  /** Cuts every link of `id` (messages to and from it are lost). */
  isolate(id: PeerId): void {
    this.cut.add(id);
  }

  heal(id: PeerId): void {
    this.cut.delete(id);
  }

  /** One runtime turn on every peer with work: persist (no-op here), send, advance. */
  processAll(): boolean {
    let any = false;
    for (const [id, r] of this.peers) {
      if (!r.hasReady()) continue;
      any = true;
      const rd = r.ready();
      for (const m of rd.messages) {
        this.sent.push(m);
        if (!this.cut.has(id) && !this.cut.has(m.to)) this.inflight.push(m);
      }
      r.advance(rd);
    }
    return any;
  }

  deliver(): number {
    const now = this.inflight;
    this.inflight = [];
    for (const m of now) this.peers.get(m.to)?.step(m);
    return now.length;
  }

  stabilize(limit = 10_000): void {
    for (let i = 0; i < limit; i++) {
      const worked = this.processAll();
      const delivered = this.deliver();
      if (!worked && delivered === 0) return;
    }
    throw new Error('did not stabilize');
  }

  /** `n` rounds of: a tick on each of `who`, then stabilize. */
  run(n: number, who: PeerId[] = [...this.peers.keys()]): void {
    for (let i = 0; i < n; i++) {
      for (const id of who) this.raft(id).tick();
      this.stabilize();
    }
  }

  /** Ticks `id` alone until it leads (the others only answer). */
  elect(id: PeerId): void {
    const r = this.raft(id);
    for (let i = 0; i < 200 && r.role !== 'leader'; i++) {
      r.tick();
      this.stabilize();
    }
    if (r.role !== 'leader') throw new Error(`${id} did not become leader`);
  }

  propose(id: PeerId, n: number): void {
    const enc = new TextEncoder();
    for (let i = 0; i < n; i++) {
      const res = this.raft(id).propose([{ type: 'command', data: enc.encode(`cmd${i}`) }]);
      if (typeof res === 'string') throw new Error(`propose refused: ${res}`);
      this.stabilize();
    }
  }
}
