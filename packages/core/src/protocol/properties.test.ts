/**
 * Property-based tests of the pure protocol modules, each against a small model that is
 * obviously correct. Seeded: every run checks the same cases (change SEED to explore).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Configuration, LogEntry } from '../types.js';
import { nextConfiguration, startChange, type ChangeStep } from './confchange.js';
import { RaftLog } from './log.js';
import { sameSet } from './membership.js';
import { Progress } from './progress.js';
import { committedValue, jointCommittedValue, jointVoteResult, voteResult } from './quorum.js';

const SEED = 20261203;
const RUNS = { seed: SEED, numRuns: 300 };

const PEERS = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
const peerSet = (min: number) => fc.uniqueArray(fc.constantFrom(...PEERS), { minLength: min, maxLength: 7 });

describe('quorum, against brute force', () => {
  /** More than half: the definition, not `majority()`. */
  const isMajority = (count: number, of: number): boolean => 2 * count > of;
  /** The highest v that more than half of the values reach: try every candidate. */
  const bruteCommitted = (values: number[]): number => {
    let best = 0;
    for (const v of values)
      if (isMajority(values.filter((x) => x >= v).length, values.length)) best = Math.max(best, v);
    return best;
  };

  it('committedValue is the highest value a majority has reached', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(50), { minLength: 1, maxLength: 9 }), (values) => {
        expect(committedValue(values)).toBe(bruteCommitted(values));
      }),
      RUNS,
    );
  });

  it('jointCommittedValue needs a majority of each voter set', () => {
    fc.assert(
      fc.property(
        peerSet(1),
        peerSet(0),
        fc.dictionary(fc.constantFrom(...PEERS), fc.nat(20)),
        (members, outgoing, vals) => {
          const cfg: Configuration = outgoing.length > 0 ? { members, outgoing } : { members };
          const valueOf = (p: string) => vals[p] ?? 0;
          const expected = Math.min(
            bruteCommitted(members.map(valueOf)),
            outgoing.length > 0 ? bruteCommitted(outgoing.map(valueOf)) : Infinity,
          );
          expect(jointCommittedValue(cfg, valueOf)).toBe(expected);
        },
      ),
      RUNS,
    );
  });

  it('an election is won with a majority of grants in every set and lost once a majority is out of reach in one', () => {
    const votes = fc.dictionary(fc.constantFrom(...PEERS), fc.boolean());
    fc.assert(
      fc.property(peerSet(1), peerSet(0), votes, (members, outgoing, vs) => {
        const m = new Map(Object.entries(vs));
        const one = (set: string[]) => {
          const granted = set.filter((p) => m.get(p) === true).length;
          const open = set.filter((p) => !m.has(p)).length;
          return isMajority(granted, set.length)
            ? 'won'
            : !isMajority(granted + open, set.length)
              ? 'lost'
              : 'pending';
        };
        expect(voteResult(members, m)).toBe(one(members));
        const sets = outgoing.length > 0 ? [members, outgoing] : [members];
        const results = sets.map(one);
        const expected = results.includes('lost')
          ? 'lost'
          : results.every((r) => r === 'won')
            ? 'won'
            : 'pending';
        const cfg: Configuration = outgoing.length > 0 ? { members, outgoing } : { members };
        expect(jointVoteResult(cfg, m)).toBe(expected);
      }),
      RUNS,
    );
  });
});

describe('Progress and its in-flight window, against a model', () => {
  type Op =
    | { op: 'send'; n: number }
    | { op: 'ack'; k: number }
    | { op: 'reject'; k: number }
    | { op: 'probe' }
    | { op: 'heartbeat' };
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ op: fc.constant('send' as const), n: fc.integer({ min: 1, max: 3 }) }),
    fc.record({ op: fc.constant('ack' as const), k: fc.nat(8) }),
    fc.record({ op: fc.constant('reject' as const), k: fc.nat(8) }),
    fc.constant({ op: 'probe' as const }),
    fc.constant({ op: 'heartbeat' as const }),
  );

  it('never exceeds the window, never forgets a match, and next always follows match', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.array(op, { maxLength: 60 }), (max, ops) => {
        const pr = new Progress(1, max);
        let last = 0; // the leader's log end
        let match = 0; // the model: highest index acknowledged
        let inflight: number[] = []; // the model's unacknowledged batches (replicate state)
        for (const o of ops) {
          const state = pr.state;
          if (o.op === 'send') {
            last += o.n;
            if (!pr.canSend() || pr.nextIndex > last) continue;
            const to = last;
            pr.sent(to, true);
            if (state === 'replicate') inflight.push(to);
          } else if (o.op === 'ack') {
            // Only what was sent can be acknowledged.
            const k = Math.min(o.k + match, pr.nextIndex - 1);
            if (k < 0) continue;
            pr.acknowledge(k);
            match = Math.max(match, k);
            inflight = state === 'replicate' ? inflight.filter((x) => x > k) : [];
          } else if (o.op === 'reject') {
            if (pr.reject(match + o.k, match + 1) && state === 'replicate') inflight = [];
          } else if (o.op === 'probe') {
            pr.becomeProbe();
            inflight = [];
          } else {
            const at = pr.heartbeatIndex(true);
            // A heartbeat never claims a position beyond what was sent, nor below the match.
            expect(at).toBeGreaterThanOrEqual(pr.matchIndex);
            expect(at).toBeLessThan(pr.nextIndex);
          }
          expect(pr.matchIndex).toBe(match);
          expect(pr.nextIndex).toBeGreaterThan(pr.matchIndex);
          if (pr.state === 'replicate') {
            expect(inflight.length).toBeLessThanOrEqual(max);
            expect(pr.canSend()).toBe(inflight.length < max);
          }
          if (pr.state === 'probe' && pr.state !== state) expect(pr.nextIndex).toBe(pr.matchIndex + 1);
        }
      }),
      RUNS,
    );
  });
});

describe('RaftLog append, truncate and match, against an array of terms', () => {
  /** A leader's log: terms that never decrease. */
  const termsArb = fc
    .array(fc.integer({ min: 1, max: 4 }), { maxLength: 12 })
    .map((t) => t.sort((x, y) => x - y));
  const entries = (terms: number[], from = 1): LogEntry[] =>
    terms.map((term, i) => ({ index: from + i, term, type: 'command', data: new Uint8Array(0) }));

  it('appendAfter keeps a matching prefix, truncates at the first conflict, and never touches committed entries', () => {
    fc.assert(
      fc.property(termsArb, termsArb, fc.nat(12), fc.nat(12), (mine, theirs, prevAt, commitAt) => {
        const log = new RaftLog(entries(mine));
        const model = mine.slice();
        const prev = Math.min(prevAt, model.length);
        const prevTerm = prev === 0 ? 0 : model[prev - 1]!;
        // The leader's entries after prev: theirs, shifted to follow prev with terms >= prevTerm.
        const incoming = entries(
          theirs.map((t) => t + prevTerm),
          prev + 1,
        );
        const commit = Math.min(commitAt, model.length);
        log.commitTo(commit);
        expect(log.matchTerm(prev, prevTerm)).toBe(true);
        // The model: the first incoming entry whose term differs from ours cuts our log there.
        let cut = -1;
        for (const e of incoming)
          if (model[e.index - 1] !== e.term) {
            cut = e.index;
            break;
          }
        if (cut !== -1 && cut <= commit) {
          expect(() => log.appendAfter(prev, incoming)).toThrow(/committed/);
          return;
        }
        log.appendAfter(prev, incoming);
        if (cut !== -1) {
          model.length = cut - 1;
          for (const e of incoming) if (e.index >= cut) model.push(e.term);
        }
        expect(log.lastIndex()).toBe(model.length);
        for (let i = 1; i <= model.length; i++) expect(log.term(i)).toBe(model[i - 1]);
        expect(log.term(model.length + 1)).toBeUndefined();
        expect(log.lastTerm()).toBe(model[model.length - 1] ?? 0);
        expect(log.commitIndex).toBe(commit);
        // Durable: what was stored before, up to the cut.
        expect(log.stableIndex).toBe(cut === -1 ? mine.length : Math.min(mine.length, cut - 1));
        for (const t of [1, 2, 3, 4, 5, 6, 7, 8])
          expect(log.lastIndexOfTerm(t)).toBe(model.lastIndexOf(t) + 1);
        // What was not yet durable is exactly the part after the cut.
        const unstable = log.unstable().map((e) => e.index);
        expect(unstable).toEqual(cut === -1 ? [] : model.map((_, i) => i + 1).filter((i) => i >= cut));
      }),
      RUNS,
    );
  });
});

describe('confchange, against the rules of joint consensus', () => {
  it('every change reaches exactly the target voters in at most three entries, each step a safe one', () => {
    fc.assert(
      fc.property(peerSet(1), peerSet(0), peerSet(1), (members, learnersRaw, target) => {
        const learners = learnersRaw.filter((p) => !members.includes(p));
        let cfg: Configuration = learners.length > 0 ? { members, learners } : { members };
        const start = startChange(cfg, target);
        const steps: Configuration[] = [];
        if (start.kind === 'same') {
          expect(sameSet(cfg.members, target) && cfg.learners === undefined).toBe(true);
          return;
        }
        expect(start.kind).not.toBe('in_progress');
        if (start.kind === 'learners') {
          // Voters unchanged; learners are exactly the target's new peers.
          expect(sameSet(start.config.members, cfg.members)).toBe(true);
          expect(
            sameSet(
              start.config.learners ?? [],
              target.filter((p) => !cfg.members.includes(p)),
            ),
          ).toBe(true);
          cfg = start.config.learners?.length === 0 ? { members: start.config.members } : start.config;
          steps.push(cfg);
        }
        for (let i = 0; i < 5; i++) {
          const step: ChangeStep = nextConfiguration(cfg, target, () => true);
          if (step.kind === 'done') break;
          expect(step.kind).toBe('propose');
          if (step.kind !== 'propose') return;
          const next = step.config;
          if (next.outgoing !== undefined) {
            // Into joint: the new voters, and the old ones as outgoing.
            expect(cfg.outgoing).toBeUndefined();
            expect(sameSet(next.outgoing, cfg.members)).toBe(true);
            expect(sameSet(next.members, target)).toBe(true);
          } else {
            // Out of joint: only the incoming voters stay.
            expect(cfg.outgoing).toBeDefined();
            expect(sameSet(next.members, cfg.members)).toBe(true);
          }
          cfg = next;
          steps.push(cfg);
        }
        expect(steps.length).toBeLessThanOrEqual(3);
        expect(sameSet(cfg.members, target)).toBe(true);
        expect(cfg.outgoing).toBeUndefined();
        expect(cfg.learners ?? []).toEqual([]);
        expect(startChange(cfg, target).kind).toBe('same');
      }),
      RUNS,
    );
  });

  it('a joint configuration refuses a new change until it finishes', () => {
    fc.assert(
      fc.property(peerSet(1), peerSet(1), peerSet(1), (members, outgoing, target) => {
        expect(startChange({ members, outgoing }, target).kind).toBe('in_progress');
      }),
      RUNS,
    );
  });
});
