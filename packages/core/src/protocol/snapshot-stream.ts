import type { Progress } from './progress.js';

/**
 * Streaming a snapshot to a follower in chunks (Raft §7, Figure 13), both ends. The
 * sender's state lives in the follower's `Progress` (snapshot state: how far the stream
 * is sent and acknowledged), changed only through its methods; the receiver's here.
 */

/** One InstallSnapshot chunk: bytes `offset` to `end` of the snapshot; `done` on the last. */
export interface SnapshotChunk {
  offset: number;
  end: number;
  done: boolean;
}

/**
 * The chunks to send now, at most `window` chunks of `chunkBytes` unacknowledged at once,
 * recorded as sent in `pr`. A heartbeat with no acknowledgement since the previous one
 * first rewinds to the acknowledged offset (a chunk or its answer was lost).
 */
export function nextSnapshotChunks(
  pr: Progress,
  size: number,
  chunkBytes: number,
  window: number,
  heartbeat: boolean,
): SnapshotChunk[] {
  if (heartbeat) pr.snapshotHeartbeat();
  const out: SnapshotChunk[] = [];
  while (pr.canSendSnapshotChunk(chunkBytes * window)) {
    const offset = pr.snapshotSentOffset;
    const end = Math.min(size, offset + chunkBytes);
    const done = end >= size;
    out.push({ offset, end, done });
    pr.snapshotChunkSent(end, done);
  }
  return out;
}

/** The receiver's answer to one chunk. */
export type ChunkResult =
  /** Not complete: the sender should go on from `nextOffset` (0: start over). */
  | { complete: false; nextOffset: number }
  /** The last chunk arrived: the whole snapshot's bytes. */
  | { complete: true; nextOffset: number; data: Uint8Array }
  /**
   * The chunk would grow the snapshot past the receiver's limit: the transfer is dropped
   * with what it held, and the chunk goes unanswered.
   */
  | { complete: false; tooLarge: true };

/**
 * A follower's snapshot being received, chunk by chunk and in order. A chunk at offset 0
 * starts (or restarts) a snapshot; a chunk of another snapshot or out of order is refused
 * with the offset the follower expects. A snapshot is held up to `maxBytes`: a chunk
 * growing it past that drops the whole transfer (and its memory).
 */
export class SnapshotReceiver {
  #incoming: { index: number; term: number; chunks: Uint8Array[]; received: number } | null = null;

  constructor(private readonly maxBytes: number = 2 ** 30) {}

  /** Bytes held of the snapshot being received (0 when none). */
  get bytesReceived(): number {
    return this.#incoming?.received ?? 0;
  }

  /** Drops a half-received snapshot, and its memory (a role change: it will not be finished). */
  reset(): void {
    this.#incoming = null;
  }

  receive(index: number, term: number, offset: number, data: Uint8Array, done: boolean): ChunkResult {
    if (offset + data.length > this.maxBytes) {
      // Larger than this peer accepts: drop the transfer and what it holds, unanswered.
      this.#incoming = null;
      return { complete: false, tooLarge: true };
    }
    if (offset === 0) this.#incoming = { index, term, chunks: [], received: 0 };
    const inc = this.#incoming;
    if (inc === null || inc.index !== index || inc.term !== term) {
      // Another snapshot than the one being received: what was received goes.
      this.#incoming = null;
      return { complete: false, nextOffset: 0 };
    }
    if (offset !== inc.received) return { complete: false, nextOffset: inc.received };
    // Copy: the chunk may be a view into a buffer the transport reuses.
    inc.chunks.push(data.slice());
    inc.received += data.length;
    if (!done) return { complete: false, nextOffset: inc.received };
    this.#incoming = null;
    const all = new Uint8Array(inc.received);
    let at = 0;
    for (const c of inc.chunks) {
      all.set(c, at);
      at += c.length;
    }
    return { complete: true, nextOffset: inc.received, data: all };
  }
}
