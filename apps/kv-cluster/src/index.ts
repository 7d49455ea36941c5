export { startNode } from './node.js';
export type { RunningNode } from './node.js';
export { runCluster, clusterMembers, prettyLine } from './cluster.js';
export type { ClusterMember } from './cluster.js';
export {
  nodeOptions,
  clusterOptions,
  parseHostPort,
  parsePeers,
  authority,
  LOG_LEVELS,
  MAX_NODES,
  DEFAULT_SNAPSHOT_EVERY,
} from './options.js';
export type {
  NodeOptions,
  ClusterOptions,
  HostPort,
  LogLevel,
  RawNodeOptions,
  RawClusterOptions,
} from './options.js';
export { MAX_BODY_BYTES, MAX_KEY_BYTES } from './ops.js';
export type { KvOp, ClusterOp, Op, HttpReply } from './ops.js';
export { appMachine, normalizePeerUrl } from './machine.js';
export type { AppCommand, AppReply, AppState, PeerCommand, PeerReply, DirectoryObserver } from './machine.js';
export { PeerDirectory, DIRECTORY_FILE } from './directory.js';
export type { PeerMap } from './directory.js';
export { adminCommand, runAdmin } from './admin.js';
export type { AdminCommand } from './admin.js';
export type { ClusterView, AppPeer } from './service.js';
export { HELP } from './help.js';
