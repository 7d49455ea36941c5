/**
 * Issue 5: "three Node processes form a cluster over WebSockets". Planned here, completed
 * once `startPeer` exists in @raft/core (the runtime is being written).
 *
 * Plan
 * - test/fixtures/peer-process.mjs, forked three times with IPC. Each child creates an
 *   HTTP server on port 0 and reports its port; once the parent has every port it sends
 *   the peers map, the child calls `webSocketTransport({ name, server, peers, secret })`
 *   and `startPeer(new KVStore(), { name, log: new MemoryLogStore(), transport })`, and
 *   serves IPC requests: write, read, status, metrics, stop. Ports are allocated by the
 *   children (port 0), never guessed.
 * - Every wait polls status over IPC with a deadline (no sleeps); every child is killed in
 *   afterEach, whatever happened.
 * - A seeded client issues writes and reads against random peers and records a history
 *   that @raft/testkit/linearizability checks at the end of each test.
 */
import { describe, it } from 'vitest';

describe('three processes over WebSockets', () => {
  it.todo('elect exactly one leader, known to all three peers');
  it.todo('replicate a write acknowledged by the leader to every peer, and read it back linearizably from any peer');
  it.todo('elect a new leader after the leader is killed with SIGKILL, and keep accepting writes with two peers');
  it.todo('bring a killed peer back on the same port: it reconnects (backoff) and catches up');
  it.todo('terminate the connections of a peer paused with SIGSTOP (ping timeout), and let it rejoin after SIGCONT');
  it.todo('keep out a fourth process with a wrong secret (refused.auth counted) while the cluster keeps its quorum');
  it.todo('survive a peer process that sends garbage frames as an authenticated member (malformed drops, connection closed)');
});
