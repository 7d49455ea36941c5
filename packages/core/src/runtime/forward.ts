import { ElectionInProgressError, NotLeaderError, type RaftError } from '../errors.js';
import type { ForwardOutcome, Raft } from '../protocol/raft.js';
import type { PeerId } from '../types.js';
import type { ApplyLoop } from './apply.js';
import type { PendingCall } from './calls.js';

/** What forwarding needs of its peer. */
export interface ForwardHost {
  readonly name: PeerId;
  /** The apply side: writes wait there for their index, reads for their read index. */
  readonly apply: ApplyLoop<unknown, unknown, unknown, unknown>;
  /** Most commands in one Propose, and most of their bytes (at least one is always sent). */
  readonly maxBatchEntries: number;
  readonly maxBatchBytes: number;
  /**
   * Where this peer's request ids start: drawn at random, so that a restarted peer's
   * Proposes never look like duplicates of its previous life's to a leader (which answers
   * a duplicate id again instead of appending twice).
   */
  readonly firstId: number;
  /** Waits for the entry at `index` appended in `term` to apply, then answers `pending`. */
  trackWrite(index: number, term: number, pending: PendingCall): void;
}

/** Forwarded commands sent in one Propose, waiting for its answer; a settled call is null. */
interface SentProposal {
  calls: (PendingCall | null)[];
}

/**
 * Requests through any node (etcd's MsgProp and MsgReadIndex): on a follower, the writes
 * and reads of one turn go to the leader in one Propose and one ReadIndexRequest over the
 * peer connection, and are answered from this peer's own state machine.
 *
 * A write learns its entry's (index, term) from the leader and resolves when this peer
 * applies that index: the entry applied there is the command if and only if its term is
 * the promised one (Log Matching); another term's entry means it never commits (a definite
 * `RAFT_NOT_LEADER`). A read learns an index the leader confirmed with a quorum after the
 * read arrived, and is served once this peer applied that far (ReadIndex, §6.4).
 */
export class Forwarder {
  private writes: { data: Uint8Array; pending: PendingCall }[] = [];
  private reads: number[] = [];
  /** Proposes sent without an answer yet, by id. */
  private readonly proposals = new Map<number, SentProposal>();
  /** ReadIndexRequests sent without an answer yet, by id: the read contexts each stands for. */
  private readonly readRequests = new Map<number, number[]>();
  private lastId: number;

  constructor(private readonly host: ForwardHost) {
    this.lastId = host.firstId;
  }

  /** Whether a Propose awaits its answer: the apply loop then keeps recent outcomes (see {@link ApplyLoop.recentOutcome}). */
  get awaitingProposals(): boolean {
    return this.proposals.size > 0;
  }

  /** Queues a write to forward at the end of this turn. */
  queueWrite(data: Uint8Array, pending: PendingCall): void {
    this.writes.push({ data, pending });
  }

  /** Queues a read (by its context in `apply.pendingReads`) to forward at the end of this turn. */
  queueRead(context: number): void {
    this.reads.push(context);
  }

  /**
   * End of a turn: sends the queued writes (in Proposes of at most `maxBatchEntries`
   * commands and `maxBatchBytes` bytes) and one ReadIndexRequest for the queued reads to
   * the leader `raft` knows. Without one, the calls fail at once, definitely (nothing was sent).
   */
  flush(raft: Raft): void {
    if (this.writes.length > 0) {
      const writes = this.writes;
      this.writes = [];
      let i = 0;
      while (i < writes.length) {
        let bytes = 0;
        let end = i;
        while (
          end < writes.length &&
          end - i < this.host.maxBatchEntries &&
          (end === i || bytes + writes[end]!.data.length <= this.host.maxBatchBytes)
        ) {
          bytes += writes[end]!.data.length;
          end++;
        }
        this.sendWrites(raft, writes.slice(i, end));
        i = end;
      }
    }
    if (this.reads.length > 0) {
      const contexts = this.reads;
      this.reads = [];
      const id = ++this.lastId;
      if (raft.forwardReadIndex(id) !== 'ok') {
        const err = this.unavailable(raft.leader);
        for (const ctx of contexts) this.host.apply.pendingReads.get(ctx)?.reject(err);
        return;
      }
      this.readRequests.set(id, contexts);
    }
  }

  private sendWrites(raft: Raft, batch: { data: Uint8Array; pending: PendingCall }[]): void {
    const live = batch.filter((w) => !w.pending.settled);
    if (live.length === 0) return;
    const id = ++this.lastId;
    if (
      raft.forward(
        id,
        live.map((w) => w.data),
      ) !== 'ok'
    ) {
      const err = this.unavailable(raft.leader);
      for (const w of live) w.pending.reject(err);
      return;
    }
    const sent: SentProposal = { calls: live.map((w) => w.pending) };
    live.forEach((w, i) => {
      w.pending.done = () => {
        sent.calls[i] = null;
      };
    });
    this.proposals.set(id, sent);
  }

  /** The leader's answers to this peer's forwarded requests. */
  outcomes(outcomes: readonly ForwardOutcome[]): void {
    for (const o of outcomes) {
      if (o.kind === 'propose') this.proposeOutcome(o);
      else this.readOutcome(o);
    }
  }

  private proposeOutcome(o: ForwardOutcome): void {
    const sent = this.proposals.get(o.id);
    if (sent === undefined) return;
    this.proposals.delete(o.id);
    const { apply } = this.host;
    sent.calls.forEach((pending, i) => {
      if (pending === null) return;
      pending.done = () => undefined;
      if (o.refused) {
        // Nothing was appended: the caller may retry elsewhere.
        pending.reject(this.unavailable(o.leader));
        return;
      }
      const index = o.index + i;
      if (index > apply.claimedIndex) {
        this.host.trackWrite(index, o.term, pending);
        return;
      }
      // This peer applied that index before the answer came: what did it apply there?
      const past = apply.recentOutcome(index);
      if (past === undefined) {
        pending.reject(
          new NotLeaderError(o.from, {
            indeterminate: true,
            message: `the leader appended the write at ${index}, which this peer passed before it learned so (a snapshot, or an answer late); the write may have committed`,
          }),
        );
      } else if (past.term !== o.term) {
        pending.reject(this.unavailable(o.from));
      } else if (past.error !== undefined) {
        pending.reject(past.error);
      } else {
        pending.resolve(past.reply);
      }
    });
  }

  private readOutcome(o: ForwardOutcome): void {
    const contexts = this.readRequests.get(o.id);
    if (contexts === undefined) return;
    this.readRequests.delete(o.id);
    const { apply } = this.host;
    if (o.refused) {
      const err = this.unavailable(o.leader);
      for (const ctx of contexts) apply.pendingReads.get(ctx)?.reject(err);
      return;
    }
    for (const ctx of contexts) apply.confirmRead(ctx, o.index);
    apply.serveReads();
  }

  /**
   * The leader this peer knew changed (or this peer stopped): requests sent to it may get
   * no answer. Reads fail definitely (safe to retry); sent writes indeterminately (the
   * leader may have appended them, and they may commit).
   */
  leaderChanged(leader: PeerId | null): void {
    if (this.proposals.size > 0) {
      const err = new NotLeaderError(leader === this.host.name ? null : leader, {
        indeterminate: true,
        message: 'the leader changed while a forwarded write was in flight; the write may still commit',
      });
      this.rejectProposals(err);
    }
    if (this.readRequests.size > 0)
      this.rejectReads(this.unavailable(leader === this.host.name ? null : leader));
  }

  /** The peer stops: every forwarded call fails with `reason`. */
  rejectAll(reason: RaftError): void {
    for (const w of this.writes.splice(0)) w.pending.reject(reason);
    this.reads = [];
    this.rejectProposals(reason);
    this.rejectReads(reason);
  }

  private rejectProposals(err: RaftError): void {
    const sent = [...this.proposals.values()];
    this.proposals.clear();
    for (const p of sent) for (const call of p.calls) call?.reject(err);
  }

  private rejectReads(err: RaftError): void {
    const requests = [...this.readRequests.values()];
    this.readRequests.clear();
    for (const contexts of requests)
      for (const ctx of contexts) this.host.apply.pendingReads.get(ctx)?.reject(err);
  }

  /** A definite failure: nothing of the call reached a log. */
  private unavailable(leader: PeerId | null): RaftError {
    return leader === null || leader === this.host.name
      ? new ElectionInProgressError()
      : new NotLeaderError(leader);
  }
}
