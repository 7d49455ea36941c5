import { testConfig } from '../../vitest.shared.js';

// Light tests only: in-memory state machines, stores and networks.
export default testConfig();
