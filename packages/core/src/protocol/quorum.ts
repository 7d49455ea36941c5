import type { Configuration, PeerId } from '../types.js';

/**
 * Quorum arithmetic (Raft §5.2, §5.3), for one majority and for the joint majority of
 * a membership change (§6), where a decision needs a majority of the incoming voters
 * and a majority of the outgoing ones.
 */

/** The number of votes that make a majority of `voters`. */
export function majority(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/**
 * The highest value that a majority of voters has reached: with matchIndexes, the
 * highest index replicated on a majority; with acknowledged heartbeat rounds, the
 * newest round a majority confirmed. Returns 0 for no voters.
 */
export function committedValue(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = values.slice().sort((a, b) => b - a);
  return sorted[majority(values.length) - 1]!;
}

/** The outcome of an election so far. */
export type VoteResult = 'won' | 'lost' | 'pending';

/** Tallies granted and rejected votes among `voters`. */
export function voteResult(voters: readonly PeerId[], votes: ReadonlyMap<PeerId, boolean>): VoteResult {
  let granted = 0;
  let rejected = 0;
  for (const v of voters) {
    const vote = votes.get(v);
    if (vote === true) granted++;
    else if (vote === false) rejected++;
  }
  const need = majority(voters.length);
  if (granted >= need) return 'won';
  if (rejected > voters.length - need) return 'lost';
  return 'pending';
}

/** The majorities a decision needs: one, or two during a joint change. */
export function voterSets(c: Configuration): PeerId[][] {
  return c.outgoing !== undefined && c.outgoing.length > 0 ? [c.members, c.outgoing] : [c.members];
}

/** Every peer whose vote counts in some majority (both sets during a joint change). */
export function allVoters(c: Configuration): PeerId[] {
  return [...new Set([...c.members, ...(c.outgoing ?? [])])];
}

/** Won with a majority of every voter set; lost as soon as any set is lost. */
export function jointVoteResult(c: Configuration, votes: ReadonlyMap<PeerId, boolean>): VoteResult {
  const results = voterSets(c).map((set) => voteResult(set, votes));
  if (results.includes('lost')) return 'lost';
  return results.every((r) => r === 'won') ? 'won' : 'pending';
}

/** The highest value a majority of every voter set has reached. */
export function jointCommittedValue(c: Configuration, valueOf: (peer: PeerId) => number): number {
  let result = Infinity;
  for (const set of voterSets(c)) result = Math.min(result, committedValue(set.map(valueOf)));
  return result === Infinity ? 0 : result;
}
