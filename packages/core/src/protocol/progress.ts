/**
 * What the leader knows of one follower's log (Figure 2's nextIndex and matchIndex),
 * and how it sends to it, after etcd's `tracker/progress.go`:
 *
 * - `probe`: the leader does not know where the follower's log ends. It sends one
 *   AppendEntries at a time and waits for the answer (or the next heartbeat).
 * - `replicate`: the follower is known to match up to `matchIndex`; the leader streams
 *   AppendEntries optimistically, up to `maxInflight` unacknowledged ones.
 */
export class Progress {
  matchIndex = 0;
  nextIndex: number;
  state: 'probe' | 'replicate' | 'snapshot' = 'probe';
  /** In snapshot state: the snapshot being streamed, and how far it is sent and acknowledged. */
  snapshotIndex = 0;
  snapshotSentOffset = 0;
  snapshotAckedOffset = 0;
  snapshotAllSent = false;
  /** An acknowledgement arrived since the last heartbeat (else the heartbeat resends). */
  snapshotProgressed = false;
  /** In probe state: an AppendEntries is out and unanswered. */
  probeSent = false;
  /** Last index carried by each unacknowledged AppendEntries, oldest first. */
  private inflight: number[] = [];
  /** The newest in-flight index at the last timer heartbeat (see heartbeatIndex). */
  private heartbeatMark = 0;
  /** The leader's tick at which it last heard from this follower (check-quorum, dissertation §6.2). */
  lastActiveTick: number;
  /** The newest heartbeat round (`seq`) this follower acknowledged in this term. */
  ackedSeq = 0;

  constructor(
    nextIndex: number,
    private readonly maxInflight: number,
    now = 0,
  ) {
    this.nextIndex = nextIndex;
    this.lastActiveTick = now;
  }

  /** Whether the leader may send another AppendEntries with entries now. */
  canSend(): boolean {
    if (this.state === 'snapshot') return false;
    return this.state === 'probe' ? !this.probeSent : this.inflight.length < this.maxInflight;
  }

  /** AppendEntries with entries sent and not yet acknowledged (operators' in-flight window use). */
  inflightCount(): number {
    return this.inflight.length;
  }

  /** Starts streaming the snapshot that ends at `index` (§7): AppendEntries pause until it is installed. */
  becomeSnapshot(index: number): void {
    this.heartbeatMark = 0;
    this.state = 'snapshot';
    this.snapshotIndex = index;
    this.snapshotSentOffset = 0;
    this.snapshotAckedOffset = 0;
    this.snapshotAllSent = false;
    this.snapshotProgressed = false;
    this.probeSent = false;
    this.inflight = [];
  }

  /**
   * The log position a heartbeat to this follower carries (it has no entries). In
   * replicate state with entries in flight, the index the follower acknowledged: it
   * holds it even while those entries are still on their way, so the heartbeat is not
   * rejected and does not send the follower back to probe. Entries still in flight at
   * the second timer heartbeat after they left are presumed lost: that heartbeat carries
   * `nextIndex - 1`, whose rejection sends the follower to probe, and the leader resends.
   * `timer`: whether the heartbeat timer fired (ReadIndex rounds do not age entries).
   */
  heartbeatIndex(timer: boolean): number {
    if (this.state !== 'replicate' || this.inflight.length === 0) {
      if (timer) this.heartbeatMark = 0;
      return this.nextIndex - 1;
    }
    const stale = this.inflight[0]! <= this.heartbeatMark;
    if (timer) this.heartbeatMark = this.inflight[this.inflight.length - 1]!;
    return stale && timer ? this.nextIndex - 1 : this.matchIndex;
  }

  /** Snapshot state, on a heartbeat: with no acknowledgement since the last one, resend from the acknowledged offset. */
  snapshotHeartbeat(): void {
    if (!this.snapshotProgressed) {
      this.snapshotSentOffset = this.snapshotAckedOffset;
      this.snapshotAllSent = false;
    }
    this.snapshotProgressed = false;
  }

  /** Snapshot state: whether another chunk may go, with fewer than `windowBytes` unacknowledged. */
  canSendSnapshotChunk(windowBytes: number): boolean {
    return (
      this.state === 'snapshot' &&
      !this.snapshotAllSent &&
      this.snapshotSentOffset - this.snapshotAckedOffset < windowBytes
    );
  }

  /** Snapshot state: the chunk ending at `end` went out; `done`: it was the last. */
  snapshotChunkSent(end: number, done: boolean): void {
    this.snapshotSentOffset = end;
    this.snapshotAllSent = done;
  }

  /**
   * Snapshot state: the follower holds the first `nextOffset` bytes of the snapshot
   * (`size` bytes). Less than acknowledged before: it lost what it had (it restarted), so
   * the stream starts over from there.
   */
  snapshotAcked(nextOffset: number, size: number): void {
    if (nextOffset > this.snapshotAckedOffset) {
      this.snapshotAckedOffset = nextOffset;
      this.snapshotProgressed = true;
    } else if (nextOffset < this.snapshotAckedOffset) {
      this.snapshotAckedOffset = nextOffset;
      this.snapshotSentOffset = nextOffset;
      this.snapshotAllSent = false;
    }
    if (this.snapshotSentOffset < this.snapshotAckedOffset)
      this.snapshotSentOffset = this.snapshotAckedOffset;
    if (nextOffset === this.snapshotSentOffset && nextOffset < size) this.snapshotAllSent = false;
  }

  /** Snapshot state: the follower installed the snapshot at `index` durably; its log follows it. */
  snapshotInstalled(index: number): void {
    if (index > this.matchIndex) this.matchIndex = index;
    this.becomeProbe();
  }

  /** Records an AppendEntries carrying entries up to `lastIndex`. */
  sent(lastIndex: number, carriedEntries: boolean): void {
    if (this.state === 'replicate') {
      if (carriedEntries) {
        this.nextIndex = lastIndex + 1;
        this.inflight.push(lastIndex);
      }
    } else {
      this.probeSent = true;
    }
  }

  /** A successful answer: the follower matches up to `index`. Returns whether matchIndex grew. */
  acknowledge(index: number): boolean {
    let grew = false;
    if (index > this.matchIndex) {
      this.matchIndex = index;
      grew = true;
    }
    if (this.nextIndex < index + 1) this.nextIndex = index + 1;
    while (this.inflight.length > 0 && this.inflight[0]! <= index) this.inflight.shift();
    if (this.state === 'probe' || (this.state === 'snapshot' && this.matchIndex >= this.snapshotIndex))
      this.becomeReplicate();
    return grew;
  }

  becomeProbe(): void {
    this.heartbeatMark = 0;
    this.state = 'probe';
    this.probeSent = false;
    this.inflight = [];
    this.nextIndex = this.matchIndex + 1;
  }

  becomeReplicate(): void {
    this.heartbeatMark = 0;
    this.state = 'replicate';
    this.probeSent = false;
    this.inflight = [];
    this.nextIndex = this.matchIndex + 1;
  }

  /**
   * A rejection of the AppendEntries whose prevLogIndex was `rejected`. `hint` is where
   * the leader computed the follower's log may diverge (§5.3's optimisation). Returns
   * false for a stale rejection, which changes nothing.
   */
  reject(rejected: number, hint: number): boolean {
    if (this.state === 'snapshot') return false;
    if (this.state === 'replicate') {
      // The follower matched up to matchIndex; a rejection at or below it is stale.
      if (rejected <= this.matchIndex) return false;
      this.becomeProbe();
      return true;
    }
    // In probe state only the answer to the probe in flight counts.
    if (this.nextIndex - 1 !== rejected) return false;
    this.nextIndex = Math.max(Math.min(rejected, hint), this.matchIndex + 1);
    this.probeSent = false;
    return true;
  }
}
