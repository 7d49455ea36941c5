import {
  InvalidArgumentError,
  leader,
  setConfiguration,
  startPeer,
  stopPeer,
  TimeoutError,
  type Peer,
  type PeerId,
  type PeerOptions,
  type StateMachine,
} from '@raft/core';
import { MemoryLogStore } from '@raft/log-memory';
import { InProcessNetwork } from '@raft/transport-inproc';

/** Options of {@link testCluster}. */
export interface TestClusterOptions {
  /**
   * The peers' names; the first one bootstraps the cluster.
   * @default ['n1', 'n2', 'n3']
   */
  names?: PeerId[];
  /**
   * The network the peers join; pass your own to inject faults (`partition`, `isolate`, ...).
   * @default a new InProcessNetwork with seed 1
   */
  network?: InProcessNetwork;
  /**
   * Milliseconds to wait for every peer to know the leader.
   * @default 5000
   */
  timeoutMs?: number;
  /** Options for every peer, except `name`, `log` and `transport`. */
  peerOptions?: Omit<Partial<PeerOptions>, 'name' | 'log' | 'transport'>;
}

/**
 * Starts a cluster in this process, like the Elixir library's `test_cluster/0`: three
 * peers (by default) on an in-process network with memory logs, configured, with a
 * leader every peer knows. Returns their names, for `write`, `read`, `leader`, ...
 *
 * @example
 * ```ts
 * const names = await testCluster(KVStore);
 * const l = leader(names[0])!;
 * await set(l, 'a', 1);
 * await stopTestCluster(names);
 * ```
 * @throws `RAFT_INVALID_ARGUMENT` for bad options; `RAFT_TIMEOUT` if no leader emerges in time.
 */
export async function testCluster<S, C, Q, R>(
  machine: StateMachine<S, C, Q, R>,
  opts: TestClusterOptions = {},
): Promise<PeerId[]> {
  const names = opts.names ?? ['n1', 'n2', 'n3'];
  if (!Array.isArray(names) || names.length === 0)
    throw new InvalidArgumentError('option names must be a non-empty array');
  const timeoutMs = opts.timeoutMs ?? 5000;
  if (typeof timeoutMs !== 'number' || !(timeoutMs > 0))
    throw new InvalidArgumentError('option timeoutMs must be a positive number');
  const network = opts.network ?? new InProcessNetwork({ seed: 1 });
  const peers: Peer<C, Q, R>[] = [];
  try {
    for (const name of names) {
      peers.push(
        await startPeer(machine, {
          ...opts.peerOptions,
          name,
          log: new MemoryLogStore(),
          transport: network.join(name),
        }),
      );
    }
    await setConfiguration(names[0]!, names, { timeout: timeoutMs });
    await waitFor(() => {
      const l = leader(names[0]!);
      return l !== null && names.every((n) => leader(n) === l);
    }, timeoutMs);
  } catch (err) {
    await Promise.all(peers.map((p) => p.stop()));
    throw err;
  }
  return names.slice();
}

/** Stops every peer of a {@link testCluster}; names no longer running are skipped. */
export async function stopTestCluster(names: PeerId[]): Promise<void> {
  await Promise.all(
    names.map((n) =>
      stopPeer(n).catch((err: unknown) => {
        if ((err as { code?: unknown }).code !== 'RAFT_NO_PEER') throw err;
      }),
    ),
  );
}

/** Polls `cond` every few milliseconds until it holds, or rejects with `RAFT_TIMEOUT`. */
export async function waitFor(cond: () => boolean, timeoutMs: number, intervalMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() >= deadline) throw new TimeoutError(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
