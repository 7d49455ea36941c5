export type {
  PeerId,
  EntryType,
  LogEntry,
  HardState,
  Configuration,
  LogStore,
  LogStoreState,
  LogWrite,
  Transport,
  RaftMessage,
  RaftMessageType,
  RequestVoteMessage,
  RequestVoteResponseMessage,
  AppendEntriesMessage,
  AppendEntriesResponseMessage,
  StateMachine,
  Codec,
  Clock,
  TimerHandle,
} from './types.js';
export {
  RaftError,
  NotLeaderError,
  ElectionInProgressError,
  TimeoutError,
  NoPeerError,
  StoppedError,
  InvalidArgumentError,
} from './errors.js';
export type { RaftErrorCode, RaftErrorOptions } from './errors.js';
export { validateMessage } from './messages.js';
export type { MessageLimits, MessageValidation } from './messages.js';
export { msgpackCodec } from './codec.js';
