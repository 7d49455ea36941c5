export { testCluster, stopTestCluster, waitFor } from './test-cluster.js';
export type { TestClusterOptions } from './test-cluster.js';
