export { testCluster, stopTestCluster, waitFor } from './test-cluster.js';
export type { TestClusterOptions } from './test-cluster.js';
export {
  runSimulation,
  runSeeds,
  failureReport,
  failureLine,
  replayCommand,
  summaryLine,
} from './simulator/index.js';
export type {
  SimulationOptions,
  SimulationResult,
  RunSeedsOptions,
  RunSummary,
  Violation,
} from './simulator/index.js';
