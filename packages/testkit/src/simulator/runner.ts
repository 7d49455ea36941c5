import { emptyMembershipCounts } from './membership.js';
import { describeFeatures } from './swarm.js';
import {
  runSimulation,
  type MembershipResult,
  type SimulationOptions,
  type SimulationResult,
} from './simulation.js';

/** Options of {@link runSeeds}: a range of seeds, and what every run shares. */
export interface RunSeedsOptions extends Omit<SimulationOptions, 'seed' | 'onTrace'> {
  /** The first seed. @default 1 */
  firstSeed?: number;
  /** How many seeds, from `firstSeed` up. */
  seeds: number;
  /**
   * Run every `stride`-th seed only: `firstSeed`, `firstSeed + stride`, ... (`seeds` of
   * them). Parallel workers each take one residue.
   * @default 1
   */
  stride?: number;
  /** Called after each run, with its result. */
  onResult?: (result: SimulationResult) => void;
  /**
   * Called between runs, to let the host's event loop breathe (a run itself never
   * yields to macrotasks). The CLI and tests pass a `setImmediate` wrapper.
   * @default none
   */
  yieldBetweenRuns?: () => Promise<void>;
  /** Stop after the first failing seed. @default false */
  stopOnFailure?: boolean;
  /** Stop starting new seeds after this many real milliseconds. @default Infinity */
  timeLimitMs?: number;
}

/** Totals over many runs. */
export interface RunSummary {
  /** Seeds run. */
  seeds: number;
  /** Events run, over all seeds. */
  events: number;
  /** Client operations checked for linearizability. */
  operations: number;
  /** Runs that broke a property. */
  violations: number;
  /** The failing runs. */
  failures: SimulationResult[];
  /** Runs whose linearizability check ran out of time. */
  inconclusive: number;
  /** Longest time a healed cluster took to work again, in virtual ms. */
  worstLivenessMs: number;
  /** Real milliseconds taken. */
  wallMs: number;
  /** Virtual milliseconds simulated. */
  simulatedMs: number;
  /** Snapshots taken by the peers' policy, installed from a leader, and restored at a restart (0 with snapshots off). */
  snapshotsTaken?: number;
  snapshotsInstalled?: number;
  snapshotsRestored?: number;
  /** Membership changes, summed over the runs (present once a run made one). */
  membership?: MembershipTotals;
  /** Windows of calm the disruption oracle watched, and their total virtual ms. */
  disruptionWindows?: number;
  disruptionWatchedMs?: number;
  /** Seeds run with each combination of features (`none`, `snapshots`, `snapshots+membership+transfers`, ...). */
  features?: Record<string, number>;
}

/** Membership changes over many runs: {@link MembershipResult} summed, plus the runs that made changes. */
export interface MembershipTotals extends MembershipResult {
  /** Runs in which at least one change completed. */
  seedsWithChanges: number;
  /** Runs in which at least one new peer was caught up by a snapshot from a leader. */
  seedsWithSnapshotsToNewPeers: number;
}

function addMembership(total: MembershipTotals | undefined, m: MembershipResult): MembershipTotals {
  const t: MembershipTotals = total ?? {
    ...emptyMembershipCounts(),
    removals: 0,
    removedLeadersSteppedDown: 0,
    removedLedOut: 0,
    snapshotsToNewPeers: 0,
    newPeersCaughtUp: 0,
    finalVoters: 0,
    quiesced: 0,
    jointSplits: 0,
    jointElections: 0,
    seedsWithChanges: 0,
    seedsWithSnapshotsToNewPeers: 0,
  };
  for (const k of ['add', 'remove', 'replace', 'transfer'] as const) {
    t.issued[k] += m.issued[k];
    t.completed[k] += m.completed[k];
  }
  for (const k of [
    'leaderRemovals',
    'wiped',
    'multi',
    'abandoned',
    'retries',
    'reissued',
    'peersAdded',
    'removedStopped',
    'removedKept',
    'removedDetached',
    'removals',
    'removedLeadersSteppedDown',
    'removedLedOut',
    'snapshotsToNewPeers',
    'newPeersCaughtUp',
    'finalVoters',
    'quiesced',
    'jointSplits',
    'jointElections',
  ] as const) {
    t[k] += m[k];
  }
  const c = m.completed;
  if (c.add + c.remove + c.replace + c.transfer > 0) t.seedsWithChanges++;
  if (m.snapshotsToNewPeers > 0) t.seedsWithSnapshotsToNewPeers++;
  return t;
}

/** An empty summary, to add results to. */
export function emptySummary(): RunSummary {
  return {
    seeds: 0,
    events: 0,
    operations: 0,
    violations: 0,
    failures: [],
    inconclusive: 0,
    worstLivenessMs: 0,
    wallMs: 0,
    simulatedMs: 0,
  };
}

/** Adds one run's result to a summary. */
export function addResult(summary: RunSummary, result: SimulationResult): void {
  summary.seeds++;
  summary.events += result.events;
  summary.operations += result.operations;
  summary.simulatedMs += result.simulatedMs;
  summary.disruptionWindows = (summary.disruptionWindows ?? 0) + result.disruption.windows;
  summary.disruptionWatchedMs = (summary.disruptionWatchedMs ?? 0) + result.disruption.watchedMs;
  const combination = describeFeatures(result.features);
  summary.features = { ...summary.features, [combination]: (summary.features?.[combination] ?? 0) + 1 };
  summary.snapshotsTaken = (summary.snapshotsTaken ?? 0) + result.snapshots.taken;
  summary.snapshotsInstalled = (summary.snapshotsInstalled ?? 0) + result.snapshots.installed;
  summary.snapshotsRestored = (summary.snapshotsRestored ?? 0) + result.snapshots.restoredAtBoot;
  const m = result.membership;
  if (
    summary.membership !== undefined ||
    m.issued.add + m.issued.remove + m.issued.replace + m.issued.transfer > 0
  ) {
    summary.membership = addMembership(summary.membership, m);
  }
  if (result.linearizabilityTimedOut) summary.inconclusive++;
  if (result.livenessMs !== null)
    summary.worstLivenessMs = Math.max(summary.worstLivenessMs, result.livenessMs);
  if (result.violation !== null) {
    summary.violations++;
    summary.failures.push(result);
  }
}

/** Runs seeds `firstSeed .. firstSeed + seeds - 1` one after another. */
export async function runSeeds(options: RunSeedsOptions): Promise<RunSummary> {
  const {
    firstSeed = 1,
    seeds,
    stride = 1,
    onResult,
    yieldBetweenRuns,
    stopOnFailure = false,
    timeLimitMs = Infinity,
    ...sim
  } = options;
  const started = performance.now();
  const summary = emptySummary();
  for (let i = 0; i < seeds; i++) {
    if (performance.now() - started > timeLimitMs) break;
    const result = await runSimulation({ ...sim, seed: firstSeed + i * stride });
    addResult(summary, result);
    onResult?.(result);
    if (result.violation !== null && stopOnFailure) break;
    if (yieldBetweenRuns !== undefined) await yieldBetweenRuns();
  }
  summary.wallMs = performance.now() - started;
  return summary;
}

/** The command that replays one run. */
export function replayCommand(
  result: Pick<SimulationResult, 'seed' | 'nodes'>,
  extra: readonly string[] = [],
): string {
  return ['pnpm sim --seed', String(result.seed), '--nodes', String(result.nodes), ...extra].join(' ');
}

/** One line for a failing run. */
export function failureLine(result: SimulationResult, extra: readonly string[] = []): string {
  const v = result.violation;
  if (v === null) return `ok seed=${result.seed}`;
  const first = v.message.split('\n')[0];
  return `FAIL seed=${result.seed} nodes=${result.nodes} features=${describeFeatures(result.features)} at ${v.atMs.toFixed(1)}ms ${v.check}: ${first}  (replay: ${replayCommand(result, extra)})`;
}

/** The report of a failing run: what broke, how to replay it, and the trace before it. */
export function failureReport(result: SimulationResult, extra: readonly string[] = []): string {
  const v = result.violation;
  if (v === null) return `seed ${result.seed} passed`;
  return [
    `seed ${result.seed} (${result.swarm})`,
    `violation: ${v.check} at ${v.atMs.toFixed(3)} virtual ms`,
    v.message,
    `replay: ${replayCommand(result, extra)}`,
    `trace (last ${result.trace.length} events):`,
    ...result.trace,
  ].join('\n');
}

/** The final summary line. */
export function summaryLine(s: RunSummary): string {
  const rate = s.wallMs > 0 ? Math.round((s.events / s.wallMs) * 1000) : 0;
  return (
    `seeds ${s.seeds}, events ${s.events}, operations checked ${s.operations}, violations ${s.violations}` +
    (s.inconclusive > 0 ? `, inconclusive ${s.inconclusive}` : '') +
    ((s.snapshotsTaken ?? 0) > 0
      ? `, snapshots taken ${s.snapshotsTaken ?? 0}, installed from a leader ${s.snapshotsInstalled ?? 0}, restored at restart ${s.snapshotsRestored ?? 0}`
      : '') +
    (s.membership !== undefined ? `, ${membershipLine(s.membership)}` : '') +
    ((s.disruptionWindows ?? 0) > 0
      ? `, disruption oracle: ${s.disruptionWindows} windows of calm, ${((s.disruptionWatchedMs ?? 0) / 1000).toFixed(0)} virtual s watched`
      : '') +
    (s.features !== undefined ? `, ${featuresLine(s.features)}` : '') +
    ` (${(s.wallMs / 1000).toFixed(1)} s, ${rate} events/s, ${(s.simulatedMs / 1000).toFixed(0)} virtual s, worst recovery ${s.worstLivenessMs.toFixed(0)} ms)`
  );
}

/** The membership part of the summary line. */
export function membershipLine(m: MembershipTotals): string {
  const c = m.completed;
  return (
    `membership changes done ${c.add + c.remove + c.replace + c.transfer} in ${m.seedsWithChanges} seeds ` +
    `(add ${c.add}, remove ${c.remove}, replace ${c.replace} [${m.wiped} wiped peers], transfer ${c.transfer}; ${m.multi} moving several peers; ` +
    `of the leader ${m.leaderRemovals}, leaders that committed their own removal ${m.removedLeadersSteppedDown}, removed peers that led their removal out ${m.removedLedOut}; given up ${m.abandoned}, re-issued after the heal ${m.reissued}, completed only once the clients stopped ${m.quiesced}; splits along a joint change ${m.jointSplits}, elections won in a joint configuration ${m.jointElections}), ` +
    `new peers ${m.peersAdded} (caught up ${m.newPeersCaughtUp}, by a snapshot ${m.snapshotsToNewPeers} times in ${m.seedsWithSnapshotsToNewPeers} seeds), ` +
    `removed peers stopped ${m.removedStopped}, kept running ${m.removedKept} (cut off ${m.removedDetached})`
  );
}

/** The feature combinations of a summary, most frequent first. */
export function featuresLine(features: Record<string, number>): string {
  const parts = Object.entries(features)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([k, n]) => `${k} ${n}`);
  return `seeds by features: ${parts.join(', ')}`;
}
