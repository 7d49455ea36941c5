// The seeded generator lives in @raft/core (seededRandom); the network draws from it.
export { seededRandom as mulberry32 } from '@raft/core';
