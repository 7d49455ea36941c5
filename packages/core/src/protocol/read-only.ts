/** A linearizable read that is now safe once the state machine has applied `index`. */
export interface ReadState {
  context: number;
  index: number;
}

interface PendingRead {
  context: number;
  index: number;
  /** The leader's heartbeat round that must be confirmed by a quorum. */
  seq: number;
}

/**
 * The leader's bookkeeping of linearizable reads (ReadIndex, dissertation §6.4), after
 * etcd's `read_only.go`. A read goes through three stages:
 *
 * 1. waiting for commit: a new leader's commit index may be stale until an entry of its
 *    own term commits (§8), so the read cannot take it yet;
 * 2. waiting for a quorum: the read took the commit index as its index and waits for a
 *    majority to acknowledge a heartbeat round started no earlier, which proves this
 *    peer was still leader when the read arrived;
 * 3. ready: handed to the runtime, which serves it once it has applied the index.
 *
 * Pure bookkeeping: the leader decides the rounds and the quorum. Lease reads (§6.4.1)
 * belong here too when they come.
 */
export class ReadOnly {
  #waitingCommit: number[] = [];
  #waitingQuorum: PendingRead[] = [];
  #ready: ReadState[] = [];

  /** Stage 1: a read that arrived before an entry of the leader's term committed. */
  waitForCommit(context: number): void {
    this.#waitingCommit.push(context);
  }

  /** Whether reads wait for the leader's first commit. */
  hasWaitingForCommit(): boolean {
    return this.#waitingCommit.length > 0;
  }

  /** The leader's first commit came: takes the reads waiting for it, oldest first. */
  takeWaitingForCommit(): number[] {
    const waiting = this.#waitingCommit;
    this.#waitingCommit = [];
    return waiting;
  }

  /** Stage 2: a read at `index`, safe once a quorum acknowledges heartbeat round `seq`. */
  waitForQuorum(context: number, index: number, seq: number): void {
    this.#waitingQuorum.push({ context, index, seq });
  }

  /** Whether reads wait for a quorum. */
  hasWaitingForQuorum(): boolean {
    return this.#waitingQuorum.length > 0;
  }

  /** A quorum acknowledged every round up to `confirmed`: the reads of those rounds are ready. */
  confirm(confirmed: number): void {
    let n = 0;
    while (n < this.#waitingQuorum.length && this.#waitingQuorum[n]!.seq <= confirmed) {
      const r = this.#waitingQuorum[n]!;
      this.#ready.push({ context: r.context, index: r.index });
      n++;
    }
    if (n > 0) this.#waitingQuorum.splice(0, n);
  }

  hasReady(): boolean {
    return this.#ready.length > 0;
  }

  /** Stage 3: the reads confirmed since the last call, for a Ready. */
  takeReady(): ReadState[] {
    const ready = this.#ready;
    this.#ready = [];
    return ready;
  }

  /** Reads not yet confirmed, by context. */
  pendingContexts(): number[] {
    return [...this.#waitingCommit, ...this.#waitingQuorum.map((r) => r.context)];
  }

  /**
   * Leadership ended (or a new term began): reads not yet confirmed are forgotten (the
   * runtime fails them); reads already confirmed stay ready, as they were confirmed while leader.
   */
  reset(): void {
    this.#waitingCommit = [];
    this.#waitingQuorum = [];
  }
}
