export { checkOperations } from './checker.js';
export { UNKNOWN } from './types.js';
export type {
  Unknown,
  Operation,
  Model,
  CheckOptions,
  CheckResult,
  Counterexample,
  Candidate,
} from './types.js';
export { kvModel } from './kv-model.js';
export type { KVModelInput, KVModelOutput, KVModelState } from './kv-model.js';
export { createHistoryRecorder, classifyRaftError } from './history.js';
export type { HistoryRecorder, HistoryRecorderOptions, FailureKind } from './history.js';
