import { ElectionInProgressError, NotLeaderError, RaftError, writeIdempotent } from '@raft/core';
import type { Configuration, Peer, PeerId } from '@raft/core';
import type { KVQuery } from '@raft/kv';
import { MAX_HOPS, type Forwarder } from './forward.js';
import type { AppCommand, AppReply } from './machine.js';
import {
  commandOf,
  isClusterOp,
  replies,
  replyToHttp,
  type ClusterOp,
  type HttpReply,
  type Op,
} from './ops.js';

/** A minimal logger (pino fits). */
export interface ServiceLogger {
  error(obj: object, msg?: string): void;
  warn?(obj: object, msg?: string): void;
  info?(obj: object, msg?: string): void;
}

/** The app's peer: key-value commands and peer directory changes. */
export type AppPeer = Peer<AppCommand, KVQuery, AppReply>;

/** What `GET /cluster` answers: this node's view of the cluster. */
export interface ClusterView {
  leader: PeerId | null;
  configuration: Configuration;
  /** The peer directory: every known node's peer URL. */
  peers: Record<PeerId, string>;
}

/** How long a node that removed itself keeps trying to make the others forget its URL. */
const FORGET_SELF_MS = 30_000;

/**
 * Runs client operations through the local peer on any node: a follower's peer forwards
 * them to the leader inside Raft (`forward: true`) and answers from its own state machine.
 * Maps every outcome to the HTTP API's status codes (API.md), and runs the membership
 * operations of the `/cluster` routes (on the leader; a follower forwards those over HTTP).
 */
export class KvService {
  /** Set at shutdown: new operations are refused with 503. */
  closing = false;

  constructor(
    private readonly peer: AppPeer,
    private readonly forwarder: Forwarder,
    private readonly logger: ServiceLogger,
    /** The node's peer directory, as last applied. */
    private readonly directory: () => ReadonlyMap<PeerId, string> = () => new Map(),
    /** The request timeout, for work this service starts by itself. */
    private readonly requestTimeoutMs = 5000,
  ) {}

  /** This node's id. */
  get id(): PeerId {
    return this.peer.name;
  }

  /** This node's view of the cluster (`GET /cluster`). */
  view(): ClusterView {
    const s = this.peer.status();
    return { leader: s.leader, configuration: s.configuration, peers: Object.fromEntries(this.directory()) };
  }

  /**
   * Runs `op` before `deadline` (a `performance.now()` time). `hops` counts the
   * forwards it took to get here: an operation that was forwarded once is never
   * forwarded again, so two nodes that disagree about the leader cannot loop.
   */
  async execute(op: Op, deadline: number, hops: number): Promise<HttpReply> {
    if (this.closing) return replies.shuttingDown();
    const timeout = Math.floor(deadline - performance.now());
    if (timeout <= 0) return replies.timeout();
    try {
      if (isClusterOp(op)) return await this.runClusterOp(op, deadline);
      if (op.kind !== 'get' && op.idempotency !== undefined) {
        // The node's machine is wrapped by withSessions: a retry with the same key and
        // request gets the first answer, and is not applied again.
        const { key, fingerprint } = op.idempotency;
        const { reply, replayed } = await writeIdempotent<AppReply>(
          this.peer,
          key,
          fingerprint,
          commandOf(op),
          { timeout, forward: true },
        );
        const http = replyToHttp(op, reply);
        return replayed ? { ...http, headers: { ...http.headers, 'idempotent-replayed': 'true' } } : http;
      }
      // On a follower, the peer hands the operation to the leader over the peer connection
      // (batched with the others of its turn) and answers it from this node's own state.
      const reply =
        op.kind === 'get'
          ? await this.peer.read({ op: 'get', key: op.key }, { timeout, forward: true })
          : await this.peer.write(commandOf(op), { timeout, forward: true });
      return replyToHttp(op, reply);
    } catch (err) {
      return this.failure(op, err, deadline, hops);
    }
  }

  /**
   * A membership operation, on the leader (elsewhere it throws `RAFT_NOT_LEADER`, and the
   * operation is forwarded). Each is idempotent: running one twice leaves the same cluster.
   */
  private async runClusterOp(op: ClusterOp, deadline: number): Promise<HttpReply> {
    const s = this.peer.status();
    if (s.role !== 'leader')
      throw s.leader === null || s.leader === this.id
        ? new ElectionInProgressError()
        : new NotLeaderError(s.leader);
    const left = (): number => Math.max(1, Math.floor(deadline - performance.now()));
    const config = s.configuration;
    if (op.kind === 'transfer') {
      await this.peer.transferLeadership(op.id, { timeout: left() });
      return { status: 200, body: { leader: op.id } };
    }
    // A joint configuration must finish (it takes one round of replication). A change whose
    // learners are still catching up may be replaced by this one, or cancelled: a learner that
    // never catches up (a wrong URL, a dead node) must not block every later change.
    if ((config.outgoing?.length ?? 0) > 0) return pendingChange(config);
    const learners = config.learners ?? [];
    if (op.kind === 'member-cancel') {
      if (learners.length > 0) {
        this.logger.info?.({ learners }, 'cancelling the membership change whose learners are catching up');
        await this.reconfigure(config.members, learners, left());
      }
      return { status: 200, body: { ...this.view() } };
    }
    if (learners.length > 0)
      this.logger.info?.(
        { learners, op: op.kind, id: op.id },
        'a new membership change replaces the one whose learners are catching up',
      );
    if (op.kind === 'member-add') {
      const own = this.directory().get(this.id);
      const scheme = (url: string): string => url.slice(0, url.indexOf(':'));
      if (own !== undefined && scheme(own) !== scheme(op.url))
        return replies.badRequest(
          `this cluster's peers use ${scheme(own)}:// URLs (TLS ${scheme(own) === 'wss' ? 'on' : 'off'}), got ${op.url}`,
        );
      // Every node learns the URL first (so the leader can reach the new peer as a
      // learner, and the others once it votes), then the membership changes.
      const reply = await this.peer.write({ op: 'peer', id: op.id, url: op.url }, { timeout: left() });
      if (!reply.ok)
        return replies.badRequest('message' in reply ? reply.message : 'the peer directory refused the URL');
      const members = this.peer.status().configuration.members;
      const target = members.includes(op.id) ? members : [...members, op.id];
      await this.reconfigure(target, learners, left());
      return { status: 200, body: { ...this.view() } };
    }
    if (!config.members.includes(op.id)) {
      if (!this.directory().has(op.id)) return replies.badRequest(`${op.id} is not a member`);
      // No longer a member, but its URL is still known: forget it (the end of an earlier removal).
      await this.forget(op.id, left());
      return { status: 200, body: { ...this.view() } };
    }
    const rest = config.members.filter((m) => m !== op.id);
    if (rest.length === 0)
      return replies.badRequest(`${op.id} is the last member: a cluster cannot remove all its members`);
    const final = await this.reconfigure(rest, learners, left());
    if (this.peer.status().role === 'leader') {
      await this.forget(op.id, left()).catch((err: unknown) => {
        this.logger.warn?.(
          { err, id: op.id },
          'removed a member but could not forget its URL; DELETE it again to retry',
        );
      });
    } else {
      // This leader removed itself and stepped down: the next leader must forget it.
      void this.forgetThroughOthers(op.id, final.members);
    }
    return { status: 200, body: { ...this.view() } };
  }

  /**
   * `setConfiguration(target)`, then forgets the URLs of the `learners` of an earlier change
   * that this one dropped. Also when this change fails or times out (its own learner may be
   * stuck too): what left the configuration is forgotten in the background.
   */
  private async reconfigure(
    target: PeerId[],
    learners: readonly PeerId[],
    timeout: number,
  ): Promise<Configuration> {
    let final: Configuration;
    try {
      final = await this.peer.setConfiguration(target, { timeout });
    } catch (err) {
      void this.forgetDropped(learners);
      throw err;
    }
    await this.forgetDropped(learners);
    return final;
  }

  /** Forgets the URLs of those of `learners` no longer in the latest configuration. */
  private async forgetDropped(learners: readonly PeerId[]): Promise<void> {
    if (learners.length === 0) return;
    const c = this.peer.status().configuration;
    const still = new Set([...c.members, ...(c.learners ?? []), ...(c.outgoing ?? [])]);
    for (const id of learners) {
      if (still.has(id)) continue;
      await this.forget(id, this.requestTimeoutMs).catch((err: unknown) => {
        this.logger.warn?.({ err, id }, 'dropped a learner but could not forget its URL');
      });
    }
  }

  /** Removes `id` from the peer directory (every node closes its connections to it). */
  private async forget(id: PeerId, timeout: number): Promise<void> {
    const reply = await this.peer.write({ op: 'peer', id, url: null }, { timeout });
    if (!reply.ok)
      throw new RaftError('RAFT_STATE_MACHINE_ERROR', `the peer directory refused to forget ${id}`);
  }

  /**
   * After removing itself, this node asks the remaining members, in turn, to forget it
   * (`member-remove` of a non-member forgets its URL); the new leader's answer is 200.
   */
  private async forgetThroughOthers(id: PeerId, members: readonly PeerId[]): Promise<void> {
    const until = performance.now() + FORGET_SELF_MS;
    while (!this.closing && performance.now() < until) {
      for (const m of members) {
        const reply = await this.forwarder.forward(
          m,
          { kind: 'member-remove', id },
          MAX_HOPS,
          performance.now() + this.requestTimeoutMs,
        );
        if (reply.status === 200 || reply.status === 400) {
          this.logger.info?.({ id, by: m }, 'the remaining members forgot this node');
          return;
        }
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    this.logger.warn?.(
      { id },
      'could not make the remaining members forget this node; DELETE /cluster/members/ID again to retry',
    );
  }

  private failure(op: Op, err: unknown, deadline: number, hops: number): Promise<HttpReply> | HttpReply {
    if (!RaftError.isInstance(err)) {
      this.logger.error({ err, op: op.kind }, 'unexpected failure of a client operation');
      return replies.internal();
    }
    switch (err.code) {
      case 'RAFT_NOT_LEADER': {
        const { leader, indeterminate } = err as NotLeaderError;
        // Appended while we were leader: it may still commit under the next one. Never retry it.
        if (indeterminate) return replies.timeout();
        if (!isClusterOp(op)) {
          // Refused by the leader this node forwarded to (it no longer leads), or lost to
          // another leader's entry: nothing was done. Once more, through the peer's new leader.
          if (hops >= MAX_HOPS || this.closing) return replies.electionInProgress();
          return this.execute(op, deadline, hops + 1);
        }
        if (leader === null || leader === this.id || hops >= MAX_HOPS || this.closing)
          return replies.electionInProgress();
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
      case 'RAFT_CONFIG_CHANGE_IN_PROGRESS':
        return pendingChange(this.peer.status().configuration, err.message);
      case 'RAFT_IDEMPOTENCY_MISMATCH':
        return replies.idempotencyKeyReused();
      case 'RAFT_INVALID_ARGUMENT':
        // A membership operation the core refused (e.g. a transfer to a non-voter), or a
        // value the codec cannot store exactly (a key "__proto__", an unpaired surrogate):
        // refused before anything reached the log.
        return replies.badRequest(
          err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message,
        );
      default:
        this.logger.error({ err, op: op.kind }, 'unexpected failure of a client operation');
        return replies.internal();
    }
  }
}

/** The 409 of a membership change refused because another is under way: it says which. */
function pendingChange(config: Configuration, why?: string): HttpReply {
  const learners = config.learners ?? [];
  const outgoing = config.outgoing ?? [];
  const what =
    outgoing.length > 0
      ? `a joint configuration is committing (from ${outgoing.join(', ')} to ${config.members.join(', ')}); retry in a moment`
      : learners.length > 0
        ? `learners ${learners.join(', ')} are catching up before joining ${config.members.join(', ')}; add or remove again to replace that change, or cancel it (DELETE /cluster/learners, raft-kv members cancel)`
        : 'the previous membership change is still committing; retry in a moment';
  return replies.configChangeInProgress(
    { members: config.members, learners, outgoing },
    why === undefined ? what : `${why}: ${what}`,
  );
}
