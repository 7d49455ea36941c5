import { testConfig } from '../../vitest.shared.js';

export default testConfig({
  heavy: [
    {
      name: 'simulator',
      include: ['test/sim*.test.ts'],
      work: 'hundreds of seeded whole-cluster simulations per test (each test states its own budget)',
      testTimeoutMs: 180_000,
    },
    {
      name: 'real-time',
      include: ['test/walkthrough.test.ts', 'src/linearizability/random.test.ts'],
      work: 'real peers on real timers, and linearizability searches of generated histories',
      testTimeoutMs: 60_000,
    },
  ],
});
