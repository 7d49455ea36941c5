import { describe } from 'vitest';
import { InProcessNetwork } from '@raft/transport-inproc';
import { transportSuite } from './transport.js';

describe('InProcessNetwork', () => {
  let network: InProcessNetwork | null = null;
  transportSuite({
    async setup(names) {
      network = new InProcessNetwork({ seed: 1 });
      return Promise.resolve(Object.fromEntries(names.map((name) => [name, network!.join(name)])));
    },
    async restart(name) {
      return Promise.resolve(network!.join(name));
    },
    async teardown() {
      network?.close();
      network = null;
      return Promise.resolve();
    },
    supports: { ordered: true },
    timeoutMs: 2000,
  });
});

describe('InProcessNetwork with random delays (reordering)', () => {
  let network: InProcessNetwork | null = null;
  transportSuite({
    async setup(names) {
      network = new InProcessNetwork({ seed: 2, delayMs: [0, 3] });
      return Promise.resolve(Object.fromEntries(names.map((name) => [name, network!.join(name)])));
    },
    async teardown() {
      network?.close();
      network = null;
      return Promise.resolve();
    },
    timeoutMs: 2000,
  });
});
