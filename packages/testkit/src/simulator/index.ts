export { runSimulation } from './simulation.js';
export type { MembershipResult, SimulationOptions, SimulationResult } from './simulation.js';
export { runSeeds, replayCommand, failureLine, failureReport, summaryLine } from './runner.js';
export type { MembershipTotals, RunSeedsOptions, RunSummary } from './runner.js';
export type { Violation } from './world.js';
export { runCli, parseCliArgs } from './cli.js';
export type { CliArgs, CliIo } from './cli.js';
export { runSessionSimulation } from './sessions.js';
export type { SessionSimulationOptions, SessionSimulationResult } from './sessions.js';
