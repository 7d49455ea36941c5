/**
 * Seeded fault injection with membership changes: ../protocol-driver.ts's `chaos` with
 * `membership` on. Five peers, a, b and c the initial voters, d and e empty spares; the
 * leader is asked for random membership changes (any non-empty subset of the five) and
 * leadership transfers among client proposals and reads, while messages are dropped,
 * duplicated and reordered, links cut and peers crashed and restarted from what they
 * persisted. Checked after every step: one leader per term, Log Matching, State Machine
 * Safety, Leader Completeness, linearizable ReadIndex, and that every peer's configuration
 * is the latest config entry of its log. At the end the network heals: the leader must
 * finish any joint change (never stuck in joint), and every voter converges.
 *
 * More seeds: RAFT_MEMBERSHIP_SEEDS=2000 pnpm exec vitest run test/membership/membership-fuzz.test.ts
 */
import { describe, expect, it } from 'vitest';
import { chaos } from '../protocol-driver.js';

describe('membership: membership changes under faults (seeded)', () => {
  const seeds = Number(process.env.RAFT_MEMBERSHIP_SEEDS ?? 50);
  it(
    `safety holds and joint changes finish over ${seeds} seeded runs`,
    () => {
      let changes = 0;
      let commits = 0;
      for (let seed = 1; seed <= seeds; seed++) {
        const run = chaos(seed, 1500, { membership: true });
        changes += run.changes;
        commits += run.commits;
      }
      // The runs did exercise changes, and made progress.
      expect(changes).toBeGreaterThan(seeds);
      expect(commits).toBeGreaterThan(seeds * 20);
    },
    Math.max(120_000, seeds * 1000),
  ); // a budget for a loaded CI box, not a speed bound
});
