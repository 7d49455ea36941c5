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
  InstallSnapshotMessage,
  InstallSnapshotResponseMessage,
  TimeoutNowMessage,
  ProposeMessage,
  ProposeResultMessage,
  ReadIndexRequestMessage,
  ReadIndexResultMessage,
  ForwardAnswer,
  Snapshot,
  SnapshotMeta,
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
export { validateMessage, MAX_TERM, MAX_INDEX, MAX_TERM_JUMP } from './messages.js';
export type { MessageLimits, MessageValidation, MessageRefusal } from './messages.js';
export { msgpackCodec } from './codec.js';
export {
  startPeer,
  setConfiguration,
  transferLeadership,
  leader,
  write,
  read,
  status,
  getEntry,
  stopPeer,
  inspectPeer,
  metrics,
} from './api.js';
export type { PeerRef } from './api.js';
export type {
  Peer,
  PeerStatus,
  PeerMetrics,
  CallOptions,
  EntryInfo,
  PeerInspection,
  StopOptions,
} from './runtime/types.js';
export type { PeerOptions, Logger } from './runtime/options.js';
export { LATENCY_BUCKETS_SECONDS, BATCH_BUCKETS, MAX_EVENTS } from './runtime/metrics.js';
export type {
  RaftMetrics,
  RaftEvent,
  CallFigures,
  FollowerFigures,
  HistogramFigures,
  EventLoopDelay,
} from './runtime/metrics.js';
export { Raft } from './protocol/raft.js';
export type {
  RaftOptions,
  RaftInitialState,
  RaftStatus,
  Ready,
  ReadState,
  ForwardOutcome,
  SoftState,
  Role,
  Refusal,
} from './protocol/raft.js';
export { encodeConfiguration, decodeConfiguration } from './protocol/membership.js';
export { seededRandom } from './random.js';
export {
  withSessions,
  openSession,
  writeIdempotent,
  unwrapOutcome,
  isSessionCommand,
  MAX_IDEMPOTENCY_KEY_LENGTH,
} from './sessions.js';
export type {
  SessionOptions,
  SessionState,
  SessionCommand,
  SessionOutcome,
  SessionWriteCommand,
  RegisterCommand,
  CloseSessionCommand,
  IdempotentCommand,
  ExpiryReason,
  ClientSession,
  OpenSessionOptions,
} from './sessions.js';
