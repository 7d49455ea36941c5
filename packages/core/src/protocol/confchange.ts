import type { Configuration, PeerId } from '../types.js';
import { allPeers, sameSet } from './membership.js';

/**
 * Membership changes (Raft §6, dissertation §4.2-4.3), as a pure function of the current
 * configuration and the change asked for, after etcd's `confchange.Changer`. A change to
 * the voters `target` goes through at most three configuration entries, each proposed
 * only once the previous one has committed:
 *
 * 1. learners: peers being added join as learners (they receive the log and count in no
 *    majority, so adding them never stalls commits); learners no longer wanted go;
 * 2. joint: `members` = the new voters, `outgoing` = the old ones; every decision needs a
 *    majority of both;
 * 3. final: the new voters alone.
 *
 * The leader drives it (see `Raft.proposeConfiguration`); the leader also decides when the
 * learners have caught up, which needs replication progress and time.
 */

/** What a new change to `target` does first, from the current configuration. */
export type ChangeStart =
  /** The voters are already exactly `target`, with no learner or outgoing voter left. */
  | { kind: 'same' }
  /** A joint configuration must finish first. */
  | { kind: 'in_progress' }
  /** Propose this learner configuration first. */
  | { kind: 'learners'; config: Configuration }
  /** No learner to add or remove: go on with `nextConfiguration`. */
  | { kind: 'advance' };

/**
 * Starts a change of the voters to `target` from `current` (committed, the caller checks).
 * A change whose learners are still catching up may be replaced by a new one; a joint
 * configuration must finish first.
 */
export function startChange(current: Configuration, target: readonly PeerId[]): ChangeStart {
  if (current.outgoing !== undefined) return { kind: 'in_progress' };
  if (sameSet(current.members, target) && current.learners === undefined) return { kind: 'same' };
  const learners = current.learners ?? [];
  const keep = learners.filter((p) => target.includes(p) && !current.members.includes(p));
  const added = target.filter((p) => !current.members.includes(p) && !learners.includes(p));
  if (added.length > 0 || keep.length !== learners.length)
    return { kind: 'learners', config: { members: current.members.slice(), learners: [...keep, ...added] } };
  return { kind: 'advance' };
}

/** The next step of a change towards `target` once `current` has committed. */
export type ChangeStep =
  /** The change is complete: `current` is the final configuration. */
  | { kind: 'done' }
  /** Learners are still catching up: propose nothing yet. */
  | { kind: 'wait' }
  /** Propose this configuration. */
  | { kind: 'propose'; config: Configuration };

/**
 * The configuration that follows the committed `current` on the way to `target`: after a
 * joint configuration, the new voters alone; after the learner step (or from a plain
 * configuration), the joint one, once `learnersCaughtUp` says the peers being added are
 * close enough to vote.
 */
export function nextConfiguration(
  current: Configuration,
  target: readonly PeerId[],
  learnersCaughtUp: () => boolean,
): ChangeStep {
  if (current.outgoing !== undefined)
    return { kind: 'propose', config: { members: current.members.slice() } };
  if (sameSet(current.members, target)) return { kind: 'done' };
  if (!learnersCaughtUp()) return { kind: 'wait' };
  return { kind: 'propose', config: { members: [...target], outgoing: current.members.slice() } };
}

/** The peers being added as voters by a change from `current` to `target`, besides `self`. */
export function incomingVoters(current: Configuration, target: readonly PeerId[], self: PeerId): PeerId[] {
  return target.filter((p) => !current.members.includes(p) && p !== self);
}

/**
 * The change a new leader must finish, as the voters it leads to: a joint configuration
 * left by the previous leader, or a configuration that drops the new leader itself
 * (elected by the voters of the one before, see `Raft.promotable`). Null when none.
 */
export function unfinishedChange(current: Configuration | null, self: PeerId): PeerId[] | null {
  if (current === null) return null;
  if (current.outgoing !== undefined || !current.members.includes(self)) return current.members.slice();
  return null;
}

/** Peers of `current` that `next` drops, besides `self`: they must learn they were removed. */
export function droppedPeers(current: Configuration, next: Configuration, self: PeerId): PeerId[] {
  const keep = new Set(allPeers(next));
  return allPeers(current).filter((p) => !keep.has(p) && p !== self);
}
