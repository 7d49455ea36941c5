/**
 * Test budgets for every package (issue 21): no test runs on vitest's 5 s default by accident.
 *
 * Each package's `vitest.config.ts` is `testConfig({...})`. Its light tests (pure functions,
 * in-memory clusters on simulated time) share {@link UNIT_TEST_TIMEOUT_MS}; its heavy suites
 * (the simulator, chaos, multi-process clusters, crash loops) are named with the work they do
 * and a budget sized for that work on a loaded 2-core CI machine. `scripts/check-test-budgets.mjs`
 * (part of `pnpm check`) refuses a package whose tests are not configured this way.
 *
 * A budget is a safety net against a hang, not a speed bound: speed is measured by benchmarks.
 */
import { defineConfig } from 'vitest/config';
import type { TestProjectInlineConfiguration, ViteUserConfig } from 'vitest/config';

/**
 * A light test's budget: about 20x what the slowest light test takes on an idle machine, so a
 * CI box running two CPU-bound processes beside the suite stays well inside it.
 */
export const UNIT_TEST_TIMEOUT_MS = 30_000;

/** Hooks start and stop real clusters in the heavy suites. */
const HOOK_TIMEOUT_MS = 60_000;

/** A suite whose tests do a fixed, large amount of work. */
export interface HeavySuite {
  /** A short name, shown by vitest beside each test (`[heavy:simulator]`). */
  readonly name: string;
  /** Globs of its files, relative to the package. */
  readonly include: readonly string[];
  /** What one test does, in words: the reason for the budget. */
  readonly work: string;
  /** Each test's budget, for that work on a loaded 2-core machine (a test may state its own). */
  readonly testTimeoutMs: number;
  /** Run its files one at a time (real clusters compete for the CPU and their elections time out). */
  readonly oneFileAtATime?: boolean;
}

export interface TestBudgets {
  /** The heavy suites; every other `*.test.ts` file is light. */
  readonly heavy?: readonly HeavySuite[];
}

const ALL_TESTS = ['src/**/*.test.ts', 'test/**/*.test.ts'];

/** The vitest configuration of one package, with a budget for every test it runs. */
export function testConfig(budgets: TestBudgets = {}): ViteUserConfig {
  const heavy = budgets.heavy ?? [];
  for (const suite of heavy) {
    if (!(suite.testTimeoutMs > 0) || suite.work.trim() === '' || suite.include.length === 0) {
      throw new Error(`vitest.shared: heavy suite '${suite.name}' needs files, its work and a budget`);
    }
  }
  const projects: TestProjectInlineConfiguration[] = [
    {
      extends: true,
      test: {
        name: 'unit',
        include: ALL_TESTS,
        exclude: ['**/node_modules/**', '**/dist/**', ...heavy.flatMap((s) => s.include)],
        testTimeout: UNIT_TEST_TIMEOUT_MS,
        hookTimeout: HOOK_TIMEOUT_MS,
      },
    },
    ...heavy.map((suite): TestProjectInlineConfiguration => ({
      extends: true,
      test: {
        name: `heavy:${suite.name}`,
        include: [...suite.include],
        exclude: ['**/node_modules/**', '**/dist/**'],
        testTimeout: suite.testTimeoutMs,
        hookTimeout: Math.max(HOOK_TIMEOUT_MS, suite.testTimeoutMs),
        ...(suite.oneFileAtATime ? { fileParallelism: false } : {}),
      },
    })),
  ];
  return defineConfig({ test: { projects, passWithNoTests: true } });
}
