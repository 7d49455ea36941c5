import { testConfig } from '../../vitest.shared.js';

export default testConfig({
  heavy: [
    {
      name: 'crash',
      include: ['test/crash*.test.ts'],
      work: 'two dozen child processes, each writing to LevelDB until it is killed with SIGKILL, then reopened',
      testTimeoutMs: 180_000,
    },
    {
      name: 'damage',
      include: ['test/damage.test.ts'],
      work: 'about thirty copies of a LevelDB directory, each damaged (bytes flipped, a file truncated) and opened in a child process',
      testTimeoutMs: 120_000,
    },
    {
      name: 'conformance',
      include: ['test/conformance.test.ts'],
      work: 'the log-store conformance suite against real LevelDB directories (batches of 10,000 entries)',
      testTimeoutMs: 60_000,
    },
  ],
});
