import { NoPeerError } from './errors.js';
import type { PeerOptions } from './runtime/options.js';
import { lookupPeer } from './registry.js';
import { RaftPeer } from './runtime/peer.js';
import type {
  CallOptions,
  EntryInfo,
  Peer,
  PeerInspection,
  PeerStatus,
  StopOptions,
} from './runtime/types.js';
import type { RaftMetrics } from './runtime/metrics.js';
import type { Configuration, PeerId, StateMachine } from './types.js';

/** A peer, or the name of a peer started in this process. */
export type PeerRef = PeerId | Peer<never, never, unknown>;

function resolve(ref: PeerRef): Peer<unknown, unknown, unknown> {
  if (typeof ref === 'string') {
    const peer = lookupPeer(ref);
    if (peer === undefined) throw new NoPeerError(ref);
    return peer;
  }
  if (typeof ref !== 'object' || ref === null || typeof (ref as { status?: unknown }).status !== 'function') {
    throw new NoPeerError(typeof ref === 'string' ? ref : `a value of type ${typeof ref}`);
  }
  return ref;
}

function resolveAsync(ref: PeerRef): Promise<Peer<unknown, unknown, unknown>> {
  try {
    return Promise.resolve(resolve(ref));
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

/**
 * Starts a peer: opens its log store, rebuilds its state from it, and joins the
 * network. A fresh peer knows no one and never campaigns until `setConfiguration`.
 *
 * @throws `RAFT_INVALID_ARGUMENT` for a bad option (the message names it) or a name already running in this process.
 */
export function startPeer<S, C, Q, R>(
  machine: StateMachine<S, C, Q, R>,
  opts: PeerOptions,
): Promise<Peer<C, Q, R>> {
  return RaftPeer.start(machine, opts);
}

/**
 * Makes `members` the exact voting membership. On fresh peers it bootstraps the cluster
 * (call it once, on one member). On a running cluster, call it on the leader: it changes
 * the membership by joint consensus (§6), new peers catching up as learners first, and
 * resolves once the new configuration is committed. Rejects with `RAFT_NOT_LEADER` on a
 * follower and `RAFT_CONFIG_CHANGE_IN_PROGRESS` while another change runs.
 */
export async function setConfiguration(
  peer: PeerRef,
  members: PeerId[],
  opts?: CallOptions,
): Promise<Configuration> {
  return (await resolveAsync(peer)).setConfiguration(members, opts);
}

/**
 * Hands leadership from the leader `peer` to `target`, a voting member: the leader
 * brings it up to date and tells it to campaign at once. Resolves once `peer` sees
 * `target` lead. Used for graceful restarts and rolling upgrades.
 */
export async function transferLeadership(peer: PeerRef, target: PeerId, opts?: CallOptions): Promise<void> {
  return (await resolveAsync(peer)).transferLeadership(target, opts);
}

/** The leader `peer` knows of, or null when it knows none. @throws `RAFT_NO_PEER` */
export function leader(peer: PeerRef): PeerId | null {
  return resolve(peer).leader();
}

/**
 * Replicates `command` through the leader and resolves with the state machine's reply.
 * Rejects with `RAFT_NOT_LEADER` (naming the leader) on a follower,
 * `RAFT_ELECTION_IN_PROGRESS` when no leader is known, `RAFT_TIMEOUT` after `timeout`.
 */
export async function write<R = unknown>(peer: PeerRef, command: unknown, opts?: CallOptions): Promise<R> {
  return (await resolveAsync(peer)).write(command, opts) as Promise<R>;
}

/** A linearizable read through the leader (ReadIndex). Errors as for {@link write}. */
export async function read<R = unknown>(peer: PeerRef, query: unknown, opts?: CallOptions): Promise<R> {
  return (await resolveAsync(peer)).read(query, opts) as Promise<R>;
}

/** The peer's role, term, leader, indexes and configuration. @throws `RAFT_NO_PEER` */
export function status(peer: PeerRef): PeerStatus {
  return resolve(peer).status();
}

/** The entry at `index` in the peer's log, or undefined when it holds none there. */
export async function getEntry(peer: PeerRef, index: number): Promise<EntryInfo | undefined> {
  return (await resolveAsync(peer)).getEntry(index);
}

/**
 * Stops a peer gracefully: pending calls reject with `RAFT_STOPPED`, and its store and
 * transport close. With `handOff: true`, a leader first hands leadership to its most
 * up-to-date voter and waits until that voter leads (at most `opts.handOffTimeoutMs`), so a
 * maintenance stop costs the cluster no election.
 */
export async function stopPeer(peer: PeerRef, opts?: StopOptions): Promise<void> {
  return (await resolveAsync(peer)).stop(opts);
}

/**
 * A read-only view of a peer's protocol state (role, term, vote, indexes, the log in
 * memory), for test tools such as the simulator's invariant checks. Not for production
 * decisions: use `status`.
 */
export function inspectPeer(peer: PeerRef): PeerInspection {
  const p = resolve(peer);
  if (!(p instanceof RaftPeer)) throw new NoPeerError('a Peer not created by startPeer');
  return p.inspect();
}

/**
 * What a peer measures about itself, for operators: role, term and indexes; leader
 * changes and elections; proposal and read counts with latency histograms; per-follower
 * replication lag and in-flight window (on the leader); log-store batch sizes and write
 * (fsync) latency; snapshot counts, bytes and durations; the process's event-loop delay;
 * and the latest elections, leader changes, transfers, configurations and snapshots.
 * Raw figures, no metrics library: `apps/kv-cluster` serves them as Prometheus metrics.
 * @throws `RAFT_NO_PEER`
 */
export function metrics(peer: PeerRef): RaftMetrics {
  return resolve(peer).figures();
}
