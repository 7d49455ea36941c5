import { RaftError } from '@raft/core';
import type { NotLeaderError, Peer, PeerId } from '@raft/core';
import type { KVCommand, KVQuery, KVReply } from '@raft/kv';
import { MAX_HOPS, type Forwarder } from './forward.js';
import { commandOf, replies, replyToHttp, type HttpReply, type KvOp } from './ops.js';

/** A minimal logger (pino fits). */
export interface ServiceLogger {
  error(obj: object, msg?: string): void;
}

/**
 * Runs client operations: on the leader through the local peer, elsewhere by forwarding
 * to the leader. Maps every outcome to the HTTP API's status codes (API.md).
 */
export class KvService {
  /** Set at shutdown: new operations are refused with 503. */
  closing = false;

  constructor(
    private readonly peer: Peer<KVCommand, KVQuery, KVReply>,
    private readonly forwarder: Forwarder,
    private readonly logger: ServiceLogger,
  ) {}

  /** This node's id. */
  get id(): PeerId {
    return this.peer.name;
  }

  /**
   * Runs `op` before `deadline` (a `performance.now()` time). `hops` counts the
   * forwards it took to get here: an operation that was forwarded once is never
   * forwarded again, so two nodes that disagree about the leader cannot loop.
   */
  async execute(op: KvOp, deadline: number, hops: number): Promise<HttpReply> {
    if (this.closing) return replies.shuttingDown();
    const timeout = Math.floor(deadline - performance.now());
    if (timeout <= 0) return replies.timeout();
    try {
      const reply = op.kind === 'get' ? await this.peer.read({ op: 'get', key: op.key }, { timeout }) : await this.peer.write(commandOf(op), { timeout });
      return replyToHttp(op, reply);
    } catch (err) {
      return this.failure(op, err, deadline, hops);
    }
  }

  private failure(op: KvOp, err: unknown, deadline: number, hops: number): Promise<HttpReply> | HttpReply {
    if (!RaftError.isInstance(err)) {
      this.logger.error({ err, op: op.kind }, 'unexpected failure of a client operation');
      return replies.internal();
    }
    switch (err.code) {
      case 'RAFT_NOT_LEADER': {
        const { leader, indeterminate } = err as NotLeaderError;
        // Appended while we were leader: it may still commit under the next one. Never retry it.
        if (indeterminate) return replies.timeout();
        if (leader === null || leader === this.id || hops >= MAX_HOPS || this.closing) return replies.electionInProgress();
        return this.forwarder.forward(leader, op, hops + 1, deadline);
      }
      case 'RAFT_ELECTION_IN_PROGRESS':
        return replies.electionInProgress();
      case 'RAFT_TIMEOUT':
      case 'RAFT_ABORTED':
        return replies.timeout();
      case 'RAFT_STOPPED':
        // A write in flight when the peer stopped may have committed; a read changed nothing.
        return op.kind === 'get' ? replies.shuttingDown() : replies.timeout();
      default:
        this.logger.error({ err, op: op.kind }, 'unexpected failure of a client operation');
        return replies.internal();
    }
  }
}
