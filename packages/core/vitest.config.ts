import { testConfig } from '../../vitest.shared.js';

export default testConfig({
  heavy: [
    {
      name: 'fuzz',
      include: ['test/**/*fuzz*.test.ts', 'test/paper/safety.test.ts'],
      work: 'seeded chaos runs of whole in-memory clusters (tens of thousands of protocol steps each)',
      testTimeoutMs: 120_000,
    },
  ],
});
