import { testConfig } from '../../vitest.shared.js';

export default testConfig({
  heavy: [
    {
      name: 'clusters',
      include: ['test/**/*.test.ts'],
      work: 'real raft-kv processes: elections, kill -9, restarts, chaos histories checked for linearizability',
      testTimeoutMs: 180_000,
      // The end-to-end and chaos suites run real clusters: one file at a time keeps them
      // from competing for the CPU (and their elections from timing out).
      oneFileAtATime: true,
    },
  ],
});
