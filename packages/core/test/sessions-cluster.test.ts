import { afterEach, describe, expect, it } from 'vitest';
import {
  leader,
  openSession,
  read,
  RaftError,
  seededRandom,
  setConfiguration,
  startPeer,
  status,
  write,
  withSessions,
  type Peer,
  type SessionCommand,
  type SessionOutcome,
  type StateMachine,
} from '../src/index.js';
import { TestLogStore, TestNetwork, VirtualClock } from './harness.js';

/** A counter: `incr` is the textbook command that must not apply twice. */
type Cmd = { op: 'incr' };
const counter: StateMachine<{ n: number }, Cmd, 'n', number> = {
  init: () => ({ n: 0 }),
  handleWrite: (_cmd, state) => [state.n + 1, { n: state.n + 1 }],
  handleRead: (_q, state) => state.n,
};

/**
 * The mutation: a wrapper that understands the envelopes but applies every one, duplicates
 * included (what a client gets with no session layer). The scenario must catch it.
 */
function naive<S>(
  m: StateMachine<S, Cmd, 'n', number>,
): StateMachine<S, Cmd | SessionCommand<Cmd>, 'n', number | SessionOutcome<number>> {
  return {
    init: (name) => m.init(name),
    handleRead: (q, s) => m.handleRead(q, s),
    handleWrite(c, s) {
      if (!('raftSession' in c)) return m.handleWrite(c, s);
      if (c.raftSession === 'register') return [{ raftSession: 'registered', client: 1 }, s];
      if (c.raftSession !== 'write') return [{ raftSession: 'closed' }, s];
      const [reply, next] = m.handleWrite(c.command, s) as [number, S];
      return [{ raftSession: 'applied', reply }, next];
    },
  };
}

/** Runs virtual time until `p` settles. */
async function withTime<T>(c: VirtualClock, p: Promise<T>): Promise<T> {
  let done = false;
  const out = p.finally(() => {
    done = true;
  });
  await c.until(() => done, 10_000, 5);
  return out;
}

let started: Peer<unknown, unknown, unknown>[] = [];
afterEach(async () => {
  await Promise.all(started.map((p) => p.stop()));
  started = [];
});

/** Starts `names` on virtual time, bootstraps them and waits until every one knows the leader. */
async function startCluster<S>(
  machine: StateMachine<S, Cmd | SessionCommand<Cmd>, 'n', number | SessionOutcome<number>>,
  names: string[],
  seed: number,
): Promise<{ clock: VirtualClock; net: TestNetwork }> {
  const clock = new VirtualClock();
  const net = new TestNetwork(clock);
  const random = seededRandom(seed);
  for (const name of names)
    started.push(
      await startPeer(machine, { name, log: new TestLogStore(), transport: net.join(name), clock, random }),
    );
  void setConfiguration(names[0]!, names);
  await clock.until(() => names.every((n) => leader(n) !== null));
  return { clock, net };
}

/**
 * A write whose answer is lost: the leader replicates it to both followers, then is cut
 * off; the client sees a timeout (outcome unknown) and retries the same (client, seq) at
 * the new leader, which committed the entry. Returns the counter and the retry's outcome.
 */
async function lostAnswerThenRetry(
  machine: StateMachine<unknown, Cmd | SessionCommand<Cmd>, 'n', number | SessionOutcome<number>>,
): Promise<{ count: number; retry: SessionOutcome<number> }> {
  const names = ['a', 'b', 'c'];
  const { clock, net } = await startCluster(machine, names, 18);
  const first = leader('a')!;
  const followers = names.filter((n) => n !== first);
  const registered = await withTime(clock, write<SessionOutcome<number>>(first, { raftSession: 'register' }));
  if (registered.raftSession !== 'registered') throw new Error('no session');
  const envelope = {
    raftSession: 'write',
    client: registered.client,
    seq: 1,
    command: { op: 'incr' },
  } as const;

  // The write reaches both followers' logs; then its leader is cut off before the client hears back.
  const target = status(first).lastLogIndex + 1;
  const lost = write(first, envelope, { timeout: 500 }).then(
    () => 'answered' as const,
    (err: unknown) => (RaftError.isInstance(err) ? err.code : 'other'),
  );
  await clock.until(() => followers.every((f) => status(f).lastLogIndex >= target), 1000, 1);
  net.isolate(first, followers);
  await clock.until(() => followers.some((f) => status(f).role === 'leader'), 5000);
  const second = followers.find((f) => status(f).role === 'leader')!;
  // The client never learned the outcome (whatever the old leader would have said).
  await withTime(clock, lost);

  const retry = await withTime(clock, write<SessionOutcome<number>>(second, envelope));
  const count = await withTime(clock, read<number>(second, 'n'));
  return { count, retry };
}

describe('client sessions on a 3-peer cluster', () => {
  it('a retried write whose answer was lost is applied once, and the retry gets its reply', async () => {
    const { count, retry } = await lostAnswerThenRetry(withSessions(counter));
    expect(retry).toEqual({ raftSession: 'replayed', reply: 1 });
    expect(count).toBe(1);
  });

  it('the mutation: without the session table, the same retry applies twice', async () => {
    const { count, retry } = await lostAnswerThenRetry(naive(counter));
    expect(retry).toEqual({ raftSession: 'applied', reply: 2 });
    expect(count).toBe(2);
  });

  it('openSession follows the leader and numbers writes itself', async () => {
    const { clock } = await startCluster(withSessions(counter), ['a', 'b', 'c'], 7);
    const follower = ['a', 'b', 'c'].find((n) => status(n).role !== 'leader')!;
    const session = await withTime(clock, openSession<number>(follower));
    expect(await withTime(clock, session.write({ op: 'incr' }))).toBe(1);
    expect(await withTime(clock, session.write({ op: 'incr' }))).toBe(2);
    await withTime(clock, session.close());
    await expect(withTime(clock, session.write({ op: 'incr' }))).rejects.toMatchObject({
      code: 'RAFT_SESSION_EXPIRED',
    });
    expect(await withTime(clock, read(leader('a')!, 'n'))).toBe(2);
  });

  it('openSession with forward: true writes through the follower it targets', async () => {
    const { clock, net } = await startCluster(withSessions(counter), ['a', 'b', 'c'], 7);
    const follower = ['a', 'b', 'c'].find((n) => status(n).role !== 'leader')!;
    const session = await withTime(clock, openSession<number>(follower, { forward: true }));
    expect(await withTime(clock, session.write({ op: 'incr' }))).toBe(1);
    expect(await withTime(clock, session.write({ op: 'incr' }))).toBe(2);
    // Register and both writes went to the leader as Proposes from the follower.
    expect(net.delivered.filter((m) => m.type === 'Propose' && m.from === follower)).toHaveLength(3);
  });
});
