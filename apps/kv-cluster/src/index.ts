export { startNode } from './node.js';
export type { RunningNode } from './node.js';
export { runCluster, clusterMembers, prettyLine } from './cluster.js';
export type { ClusterMember } from './cluster.js';
export { nodeOptions, clusterOptions, parseHostPort, parsePeers, authority, LOG_LEVELS, MAX_NODES } from './options.js';
export type { NodeOptions, ClusterOptions, HostPort, LogLevel, RawNodeOptions, RawClusterOptions } from './options.js';
export { MAX_BODY_BYTES, MAX_KEY_BYTES } from './ops.js';
export type { KvOp, HttpReply } from './ops.js';
export { HELP } from './help.js';
