export { KVStore } from './kv-store.js';
export type { KVStateMachine } from './kv-store.js';
export { set, get, del, cas } from './helpers.js';
export type { KVCallOptions } from './helpers.js';
export { MAX_VALUE_DEPTH } from './value.js';
export type { KVValue } from './value.js';
export type {
  KVCommand,
  KVSetCommand,
  KVDeleteCommand,
  KVCasCommand,
  KVQuery,
  KVGetQuery,
  KVReply,
  KVValueReply,
  KVDeletedReply,
  KVKeyNotFoundReply,
  KVCasMismatchReply,
  KVBadCommandReply,
  KVState,
} from './types.js';
