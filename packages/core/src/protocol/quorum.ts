/**
 * Quorum arithmetic over a set of voters (Raft §5.2, §5.3). Joint consensus (§6) will
 * combine two of these.
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
export function voteResult(voters: readonly string[], votes: ReadonlyMap<string, boolean>): VoteResult {
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
