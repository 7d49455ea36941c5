import { InvalidArgumentError } from '@raft/core';
import {
  addResult,
  emptySummary,
  type MembershipTotals,
  failureLine,
  failureReport,
  runSeeds,
  summaryLine,
  type RunSeedsOptions,
  type RunSummary,
} from './runner.js';
import { runSimulation, type SimulationOptions, type SimulationResult } from './simulation.js';

/** Where the CLI writes; the process's streams by default. */
export interface CliIo {
  /** Writes a line of results. */
  out: (line: string) => void;
  /** Writes a line of diagnostics. */
  err: (line: string) => void;
  /** Lets the host's event loop run between seeds. */
  yieldBetweenRuns?: () => Promise<void>;
}

/** The parsed command line of `pnpm sim`. */
export interface CliArgs {
  /** How many seeds to run. */
  seeds: number;
  /** The first seed. */
  firstSeed: number;
  /** True when `--seed` was given without `--seeds`: replay one run, with its trace. */
  single: boolean;
  /** Print every event as it happens. */
  verbose: boolean;
  /** Worker threads running seeds in parallel. */
  jobs: number;
  /** Stop starting seeds after this many real milliseconds. */
  timeLimitMs: number;
  /** Stop at the first failing seed. */
  stopOnFailure: boolean;
  /** Options of every run. */
  sim: Omit<SimulationOptions, 'seed'>;
  /** The flags that change a run, repeated in replay commands. */
  replayFlags: string[];
}

const USAGE = `usage: pnpm sim [--seeds N] [--seed S] [--nodes 3|5|7] [options]

  --seeds N            run N seeds (default 100; 0 = until --time-limit)
  --seed S             the first seed (default 1); alone, replays seed S with its trace
  --nodes K            peers per cluster (default: 3, 5 or 7, drawn from the seed)
  --verbose            print every event of the run(s) as it happens
  --fault-ms A[-B]     length of the fault phase in virtual ms (default 1000-5000)
  --liveness-ms L      virtual ms the healed cluster has to recover (default 10000)
  --jobs J             run seeds on J worker threads (default 1)
  --time-limit S       stop starting seeds after S seconds of real time
  --stop-on-failure    stop at the first failing seed
  --trace-lines N      lines of trace in a failure report (default 200)
  --no-durability-checks   only the Raft paper's invariants and linearizability
  --no-disruption-checks   without the disruption oracle (a stable leader on a healthy
                       network keeps its leadership; no member raises the term)
  By default every seed decides from its own randomness which features it uses
  (snapshots, membership changes, leadership transfers) and which faults; a failing
  seed's line names its features, and its replay command reproduces it as it was.
  --snapshots          snapshots and log compaction in most seeds (random policy, small
                       InstallSnapshot chunks, a peer lagging behind the compaction point)
  --membership         membership changes in most seeds (add, remove, replace peers, the
                       leader among them; leadership transfers; removed peers kept running)
  --no-snapshots, --no-membership   never (a seed then draws what it drew before them)
  --transfers, --no-transfers       leadership transfers always, or never
  --lying-disk         inject a disk that acknowledges before syncing (the sim's self-test)
  --stale-reads        inject a state machine that reads stale state (the sim's self-test)
  --stale-snapshots    inject snapshots one command behind their index (the sim's self-test)`;

function int(flag: string, v: string | undefined, min: number): number {
  const n = Number(v);
  if (v === undefined || !Number.isSafeInteger(n) || n < min)
    throw new InvalidArgumentError(`${flag} needs an integer >= ${min}, got ${String(v)}`);
  return n;
}

/** Parses `pnpm sim` arguments. @throws `RAFT_INVALID_ARGUMENT` with a message for the user. */
export function parseCliArgs(argv: readonly string[]): CliArgs {
  const args: CliArgs = {
    seeds: 100,
    firstSeed: 1,
    single: false,
    verbose: false,
    jobs: 1,
    timeLimitMs: Infinity,
    stopOnFailure: false,
    sim: {},
    replayFlags: [],
  };
  let seedsGiven = false;
  let seedGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] =
      a.startsWith('--') && a.includes('=')
        ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]
        : [a, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '--seeds':
        args.seeds = int(flag, value(), 0);
        seedsGiven = true;
        break;
      case '--seed':
        args.firstSeed = int(flag, value(), 0);
        seedGiven = true;
        break;
      case '--nodes':
        args.sim.nodes = int(flag, value(), 1);
        break;
      case '--verbose':
      case '-v':
        args.verbose = true;
        break;
      case '--fault-ms': {
        const v = value() ?? '';
        const m = /^(\d+)(?:-(\d+))?$/.exec(v);
        if (m === null) throw new InvalidArgumentError(`--fault-ms needs A or A-B (virtual ms), got ${v}`);
        const lo = Number(m[1]);
        const hi = m[2] === undefined ? lo : Number(m[2]);
        if (hi < lo) throw new InvalidArgumentError('--fault-ms: B must not be below A');
        args.sim.faultMs = [lo, hi];
        args.replayFlags.push('--fault-ms', v);
        break;
      }
      case '--liveness-ms': {
        const v = value();
        args.sim.livenessMs = int(flag, v, 1);
        args.replayFlags.push('--liveness-ms', String(v));
        break;
      }
      case '--jobs':
      case '-j':
        args.jobs = int(flag, value(), 1);
        break;
      case '--time-limit':
        args.timeLimitMs = int(flag, value(), 1) * 1000;
        break;
      case '--stop-on-failure':
        args.stopOnFailure = true;
        break;
      case '--trace-lines':
        args.sim.traceLines = int(flag, value(), 1);
        break;
      case '--snapshots':
        args.sim.snapshots = true;
        args.replayFlags.push(flag);
        break;
      case '--membership':
        args.sim.membership = true;
        args.replayFlags.push(flag);
        break;
      case '--no-snapshots':
        args.sim.snapshots = false;
        args.replayFlags.push(flag);
        break;
      case '--no-membership':
        args.sim.membership = false;
        args.replayFlags.push(flag);
        break;
      case '--transfers':
        args.sim.transfers = true;
        args.replayFlags.push(flag);
        break;
      case '--no-transfers':
        args.sim.transfers = false;
        args.replayFlags.push(flag);
        break;
      case '--no-disruption-checks':
        args.sim.disruptionChecks = false;
        args.replayFlags.push(flag);
        break;
      case '--no-durability-checks':
        args.sim.durabilityChecks = false;
        args.replayFlags.push(flag);
        break;
      case '--lying-disk':
        args.sim.inject = { ...args.sim.inject, lyingDisk: true };
        args.replayFlags.push(flag);
        break;
      case '--stale-snapshots':
        args.sim.inject = { ...args.sim.inject, staleSnapshots: true };
        args.replayFlags.push(flag);
        break;
      case '--stale-reads':
        args.sim.inject = { ...args.sim.inject, staleReads: true };
        args.replayFlags.push(flag);
        break;
      case '--help':
      case '-h':
        throw new InvalidArgumentError(USAGE);
      default:
        throw new InvalidArgumentError(`unknown argument ${a}\n${USAGE}`);
    }
  }
  if (seedGiven && !seedsGiven) {
    args.single = true;
    args.seeds = 1;
  }
  if (args.seeds === 0) {
    if (args.timeLimitMs === Infinity)
      throw new InvalidArgumentError('--seeds 0 runs until --time-limit: give one');
    args.seeds = Number.MAX_SAFE_INTEGER;
  }
  return args;
}

/**
 * `pnpm sim`: runs seeds, prints one line per failing seed and a summary line, and the
 * full report (with its trace) of the first failure. Returns the exit code: 0 when every
 * run passed, 1 when one failed, 2 for bad arguments.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let args: CliArgs;
  try {
    args = parseCliArgs(argv);
  } catch (err) {
    io.err(err instanceof Error ? err.message : String(err));
    return 2;
  }
  const flags = args.replayFlags;
  if (args.single) {
    const started = performance.now();
    const result = await runSimulation({
      ...args.sim,
      seed: args.firstSeed,
      ...(args.verbose ? { onTrace: io.out } : {}),
    });
    if (result.violation !== null) {
      io.out(failureLine(result, flags));
      io.out(failureReport(result, flags));
    } else {
      io.out(
        `seed ${result.seed} passed: ${result.swarm}; ${result.events} events, ${result.operations} operations, recovered ${result.livenessMs?.toFixed(0) ?? '?'} ms after healing`,
      );
    }
    io.out(
      summaryLine({
        seeds: 1,
        events: result.events,
        operations: result.operations,
        violations: result.violation === null ? 0 : 1,
        failures: [],
        inconclusive: result.linearizabilityTimedOut ? 1 : 0,
        worstLivenessMs: result.livenessMs ?? 0,
        wallMs: performance.now() - started,
        simulatedMs: result.simulatedMs,
        snapshotsTaken: result.snapshots.taken,
        snapshotsInstalled: result.snapshots.installed,
        snapshotsRestored: result.snapshots.restoredAtBoot,
        ...(result.features.membership || result.features.transfers
          ? { membership: addMembershipResult(result) }
          : {}),
      }),
    );
    return result.violation === null ? 0 : 1;
  }
  const options: RunSeedsOptions = {
    ...args.sim,
    seeds: args.seeds,
    firstSeed: args.firstSeed,
    stopOnFailure: args.stopOnFailure,
    timeLimitMs: args.timeLimitMs,
    onResult: (r) => {
      if (r.violation !== null) io.out(failureLine(r, flags));
      else if (r.linearizabilityTimedOut)
        io.err(`seed ${r.seed}: linearizability check timed out (inconclusive)`);
    },
  };
  if (io.yieldBetweenRuns !== undefined) options.yieldBetweenRuns = io.yieldBetweenRuns;
  if (args.verbose) {
    // Verbose batch runs print every event: run them one by one with a trace sink.
    let failed = 0;
    for (let s = args.firstSeed; s < args.firstSeed + args.seeds; s++) {
      io.out(`--- seed ${s}`);
      const r = await runSimulation({ ...args.sim, seed: s, onTrace: io.out });
      if (r.violation !== null) {
        failed++;
        io.out(failureLine(r, flags));
      }
    }
    return failed === 0 ? 0 : 1;
  }
  const summary = args.jobs > 1 ? await runParallel(options, args.jobs) : await runSeeds(options);
  io.out(summaryLine(summary));
  const first = summary.failures[0];
  if (first !== undefined) {
    io.out('');
    io.out(`first failure in full (replay any failing seed with its command to see its own):`);
    io.out(failureReport(first, flags));
  }
  return summary.violations === 0 ? 0 : 1;
}

/** Runs the seeds on `jobs` worker threads, seed `first + k` and every `jobs`-th after it on worker `k`. */
async function runParallel(options: RunSeedsOptions, jobs: number): Promise<RunSummary> {
  const { Worker } = await import('node:worker_threads');
  const { onResult, yieldBetweenRuns: _y, ...shared } = options;
  const first = options.firstSeed ?? 1;
  const summary = emptySummary();
  const started = performance.now();
  const workers: InstanceType<typeof Worker>[] = [];
  let stopping = false;
  await Promise.all(
    Array.from({ length: Math.min(jobs, options.seeds) }, (_, k) => {
      const count = Math.floor((options.seeds - 1 - k) / jobs) + 1;
      const worker = new Worker(new URL('./worker.js', import.meta.url), {
        workerData: { options: { ...shared, seeds: count, firstSeed: first + k, stride: jobs } },
      });
      workers.push(worker);
      return new Promise<void>((resolve, reject) => {
        worker.on('message', (result: SimulationResult) => {
          if (stopping) return;
          addResult(summary, result);
          onResult?.(result);
          if (result.violation !== null && options.stopOnFailure === true) {
            stopping = true;
            for (const w of workers) void w.terminate();
          }
        });
        worker.on('error', reject);
        worker.on('exit', () => resolve());
      });
    }),
  );
  summary.wallMs = performance.now() - started;
  return summary;
}

function addMembershipResult(result: SimulationResult): MembershipTotals {
  const s = emptySummary();
  addResult(s, result);
  return s.membership ?? { ...result.membership, seedsWithChanges: 0, seedsWithSnapshotsToNewPeers: 0 };
}
