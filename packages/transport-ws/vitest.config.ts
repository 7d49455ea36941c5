import { testConfig } from '../../vitest.shared.js';

export default testConfig({
  heavy: [
    {
      name: 'sockets',
      include: ['test/**/*.test.ts'],
      work: 'real WebSocket servers and peer processes on loopback: handshakes, reconnects, elections',
      testTimeoutMs: 60_000,
    },
  ],
});
