export { InProcessNetwork } from './network.js';
export type {
  InProcessNetworkOptions,
  InProcessNetworkStats,
  InProcessTransport,
  FaultOptions,
  DropCause,
  Scheduler,
} from './network.js';
