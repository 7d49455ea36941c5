import {
  ElectionInProgressError,
  InvalidArgumentError,
  NotLeaderError,
  RaftError,
  StoppedError,
  TimeoutError,
} from '@raft/core';
import type { Peer } from '@raft/core';
import type { KVCommand, KVQuery, KVReply } from '@raft/kv';
import { describe, expect, it, vi } from 'vitest';
import type { Forwarder } from './forward.js';
import type { HttpReply, KvOp } from './ops.js';
import { KvService } from './service.js';

/** A peer whose every call answers `outcome` (a reply, or an error to throw). */
function fakePeer(outcome: KVReply | Error): Peer<KVCommand, KVQuery, KVReply> {
  const answer = (): Promise<KVReply> =>
    outcome instanceof Error ? Promise.reject(outcome) : Promise.resolve(outcome);
  return { name: 'n1', write: vi.fn(answer), read: vi.fn(answer) } as unknown as Peer<
    KVCommand,
    KVQuery,
    KVReply
  >;
}

function service(
  outcome: KVReply | Error,
  forwarded: HttpReply = { status: 200, body: { value: 'from leader' } },
) {
  const forward = vi.fn((_leader: string, _op: KvOp, _hops: number, _deadline: number) =>
    Promise.resolve(forwarded),
  );
  const logger = { error: vi.fn() };
  const peer = fakePeer(outcome);
  const svc = new KvService(peer, { forward } as unknown as Forwarder, logger);
  return { svc, forward, logger, peer };
}

const PUT: KvOp = { kind: 'put', key: 'k', value: 1 };
const GET: KvOp = { kind: 'get', key: 'k' };
const soon = (): number => performance.now() + 1000;

describe('KvService: replies', () => {
  it('maps the state machine replies to API.md', async () => {
    expect(await service({ ok: true, value: 1 }).svc.execute(PUT, soon(), 0)).toEqual({
      status: 200,
      body: { value: 1 },
    });
    expect(await service({ ok: true }).svc.execute({ kind: 'delete', key: 'k' }, soon(), 0)).toEqual({
      status: 200,
      body: {},
    });
    expect(await service({ ok: false, error: 'key_not_found' }).svc.execute(GET, soon(), 0)).toEqual({
      status: 404,
      body: { error: 'key_not_found' },
    });
    expect(
      await service({ ok: false, error: 'cas_mismatch', value: 7 }).svc.execute(
        { kind: 'cas', key: 'k', expected: 1, value: 2 },
        soon(),
        0,
      ),
    ).toEqual({
      status: 409,
      body: { error: 'cas_mismatch', value: 7 },
    });
    expect(
      await service({ ok: false, error: 'bad_command', message: 'too deep' }).svc.execute(PUT, soon(), 0),
    ).toEqual({
      status: 400,
      body: { error: 'bad_request', message: 'too deep' },
    });
  });
});

describe('KvService: errors', () => {
  it('runs client operations through the local peer with forward on, never over HTTP', async () => {
    const { svc, forward, peer } = service({ ok: true, value: 1 });
    await svc.execute(PUT, soon(), 0);
    await svc.execute(GET, soon(), 0);
    expect(peer.write).toHaveBeenCalledWith(expect.anything(), expect.objectContaining({ forward: true }));
    expect(peer.read).toHaveBeenCalledWith(expect.anything(), expect.objectContaining({ forward: true }));
    expect(forward).not.toHaveBeenCalled();
  });

  it('retries a client operation refused by the leader (nothing was done) once through the local peer, then answers 503', async () => {
    const { svc, forward, peer } = service(new NotLeaderError('n2'));
    expect(await svc.execute(PUT, soon(), 0)).toEqual({
      status: 503,
      body: { error: 'election_in_progress' },
    });
    expect(peer.write).toHaveBeenCalledTimes(2);
    expect(forward).not.toHaveBeenCalled();
  });

  it('answers 504, never 503, for a write that may still commit', async () => {
    expect(
      await service(new NotLeaderError('n2', { indeterminate: true })).svc.execute(PUT, soon(), 0),
    ).toMatchObject({ status: 504 });
    expect(
      await service(new NotLeaderError(null, { indeterminate: true })).svc.execute(PUT, soon(), 0),
    ).toMatchObject({ status: 504 });
    expect(await service(new TimeoutError()).svc.execute(PUT, soon(), 0)).toEqual({
      status: 504,
      body: { error: 'timeout' },
    });
    expect(await service(new RaftError('RAFT_ABORTED', 'aborted')).svc.execute(PUT, soon(), 0)).toMatchObject(
      { status: 504 },
    );
    expect(await service(new StoppedError()).svc.execute(PUT, soon(), 0)).toMatchObject({ status: 504 });
  });

  it('answers 503 when nothing happened', async () => {
    expect(await service(new ElectionInProgressError()).svc.execute(PUT, soon(), 0)).toEqual({
      status: 503,
      body: { error: 'election_in_progress' },
    });
    expect(await service(new NotLeaderError(null)).svc.execute(PUT, soon(), 0)).toEqual({
      status: 503,
      body: { error: 'election_in_progress' },
    });
    expect(await service(new StoppedError()).svc.execute(GET, soon(), 0)).toEqual({
      status: 503,
      body: { error: 'shutting_down' },
    });
    const closing = service({ ok: true, value: 1 });
    closing.svc.closing = true;
    expect(await closing.svc.execute(PUT, soon(), 0)).toEqual({
      status: 503,
      body: { error: 'shutting_down' },
    });
  });

  it('answers 504 at once when the deadline has passed', async () => {
    expect(await service({ ok: true, value: 1 }).svc.execute(PUT, performance.now() - 1, 0)).toEqual({
      status: 504,
      body: { error: 'timeout' },
    });
  });

  it('answers 500 without details for a bug, and logs it', async () => {
    const { svc, logger } = service(new TypeError('boom'));
    expect(await svc.execute(PUT, soon(), 0)).toEqual({ status: 500, body: { error: 'internal' } });
    expect(logger.error).toHaveBeenCalledTimes(1);
  });
});

describe('KvService: membership operations', () => {
  interface FakeCluster {
    role: 'leader' | 'follower';
    leader: string | null;
    configuration: { members: string[]; learners?: string[]; outgoing?: string[] };
  }

  /** A leader whose membership calls change `c` at once, unless `setConfiguration` is given. */
  function clusterPeer(c: FakeCluster, setConfiguration?: (members: string[]) => Promise<unknown>) {
    const calls: unknown[] = [];
    const peer = {
      name: 'n1',
      status: () => ({
        name: 'n1',
        role: c.role,
        leader: c.leader,
        configuration: structuredClone(c.configuration),
      }),
      write: vi.fn((cmd: unknown) => {
        calls.push(['write', cmd]);
        return Promise.resolve({ ok: true });
      }),
      setConfiguration: vi.fn((members: string[]) => {
        calls.push(['setConfiguration', members]);
        if (setConfiguration !== undefined) return setConfiguration(members);
        c.configuration = { members: [...members].sort() };
        return Promise.resolve(c.configuration);
      }),
      transferLeadership: vi.fn((target: string) => {
        calls.push(['transferLeadership', target]);
        return Promise.resolve();
      }),
    };
    const forward = vi.fn((_leader: string, _op: unknown, _hops: number, _deadline: number) =>
      Promise.resolve<HttpReply>({ status: 200, body: { forwarded: true } }),
    );
    const directory = new Map([
      ['n1', 'ws://h:1/'],
      ['n2', 'ws://h:2/'],
      ['n3', 'ws://h:3/'],
    ]);
    const svc = new KvService(
      peer as unknown as ConstructorParameters<typeof KvService>[0],
      { forward } as unknown as Forwarder,
      { error: vi.fn() },
      () => directory,
    );
    return { svc, calls, forward, directory };
  }

  const leaderOf = (members: string[], extra: Partial<FakeCluster['configuration']> = {}): FakeCluster => ({
    role: 'leader',
    leader: 'n1',
    configuration: { members, ...extra },
  });

  it('adds a member: the peer URL first, then the configuration', async () => {
    const { svc, calls } = clusterPeer(leaderOf(['n1', 'n2', 'n3']));
    const r = await svc.execute({ kind: 'member-add', id: 'n4', url: 'ws://h:4/' }, soon(), 0);
    expect(r).toMatchObject({ status: 200, body: { configuration: { members: ['n1', 'n2', 'n3', 'n4'] } } });
    expect(calls).toEqual([
      ['write', { op: 'peer', id: 'n4', url: 'ws://h:4/' }],
      ['setConfiguration', ['n1', 'n2', 'n3', 'n4']],
    ]);
  });

  it('removes a member: the configuration first, then the URL; a non-member whose URL is known only loses the URL', async () => {
    const { svc, calls } = clusterPeer(leaderOf(['n1', 'n2', 'n3']));
    expect(await svc.execute({ kind: 'member-remove', id: 'n3' }, soon(), 0)).toMatchObject({
      status: 200,
      body: { configuration: { members: ['n1', 'n2'] } },
    });
    expect(calls).toEqual([
      ['setConfiguration', ['n1', 'n2']],
      ['write', { op: 'peer', id: 'n3', url: null }],
    ]);
    calls.length = 0;
    expect(await svc.execute({ kind: 'member-remove', id: 'n3' }, soon(), 0)).toMatchObject({ status: 200 });
    expect(calls).toEqual([['write', { op: 'peer', id: 'n3', url: null }]]);
    expect(await svc.execute({ kind: 'member-remove', id: 'n9' }, soon(), 0)).toMatchObject({
      status: 400,
      body: { error: 'bad_request' },
    });
  });

  it('replaces a change whose learner is stuck catching up, or cancels it, and forgets the learner', async () => {
    const replace = clusterPeer(leaderOf(['n1', 'n2'], { learners: ['n4'] }));
    expect(await replace.svc.execute({ kind: 'member-remove', id: 'n2' }, soon(), 0)).toMatchObject({
      status: 200,
      body: { configuration: { members: ['n1'] } },
    });
    expect(replace.calls).toEqual([
      ['setConfiguration', ['n1']],
      ['write', { op: 'peer', id: 'n4', url: null }],
      ['write', { op: 'peer', id: 'n2', url: null }],
    ]);
    const cancel = clusterPeer(leaderOf(['n1', 'n2'], { learners: ['n4'] }));
    expect(await cancel.svc.execute({ kind: 'member-cancel' }, soon(), 0)).toMatchObject({
      status: 200,
      body: { configuration: { members: ['n1', 'n2'] } },
    });
    expect(cancel.calls).toEqual([
      ['setConfiguration', ['n1', 'n2']],
      ['write', { op: 'peer', id: 'n4', url: null }],
    ]);
    // Nothing pending: nothing to cancel.
    const idle = clusterPeer(leaderOf(['n1', 'n2']));
    expect(await idle.svc.execute({ kind: 'member-cancel' }, soon(), 0)).toMatchObject({ status: 200 });
    expect(idle.calls).toEqual([]);
  });

  it('refuses a new member whose URL scheme differs from the cluster’s (ws:// vs wss://)', async () => {
    const { svc, calls } = clusterPeer(leaderOf(['n1', 'n2', 'n3']));
    expect(await svc.execute({ kind: 'member-add', id: 'n4', url: 'wss://h:4/' }, soon(), 0)).toMatchObject({
      status: 400,
      body: { message: expect.stringContaining('ws://') as string },
    });
    expect(calls).toEqual([]);
  });

  it('answers 409 saying what is pending while a joint configuration commits, and 400 for removing the last member', async () => {
    expect(
      await clusterPeer(leaderOf(['n1', 'n2'], { outgoing: ['n1', 'n2', 'n3'] })).svc.execute(
        { kind: 'member-add', id: 'n4', url: 'ws://h:4/' },
        soon(),
        0,
      ),
    ).toMatchObject({
      status: 409,
      body: {
        error: 'config_change_in_progress',
        message: expect.stringContaining('joint configuration') as string,
        pending: { members: ['n1', 'n2'], learners: [], outgoing: ['n1', 'n2', 'n3'] },
      },
    });
    const racing = clusterPeer(leaderOf(['n1', 'n2', 'n3']), () =>
      Promise.reject(new RaftError('RAFT_CONFIG_CHANGE_IN_PROGRESS', 'busy')),
    );
    expect(await racing.svc.execute({ kind: 'member-remove', id: 'n2' }, soon(), 0)).toMatchObject({
      status: 409,
      body: { error: 'config_change_in_progress' },
    });
    expect(
      await clusterPeer(leaderOf(['n1'])).svc.execute({ kind: 'member-remove', id: 'n1' }, soon(), 0),
    ).toMatchObject({ status: 400 });
  });

  it('forwards membership operations from a follower to the leader, and maps a refused transfer to 400', async () => {
    const follower = clusterPeer({
      role: 'follower',
      leader: 'n2',
      configuration: { members: ['n1', 'n2', 'n3'] },
    });
    expect(await follower.svc.execute({ kind: 'transfer', id: 'n3' }, soon(), 0)).toEqual({
      status: 200,
      body: { forwarded: true },
    });
    expect(follower.forward).toHaveBeenCalledWith(
      'n2',
      { kind: 'transfer', id: 'n3' },
      1,
      expect.any(Number),
    );
    expect(follower.calls).toEqual([]);

    const leader = clusterPeer(leaderOf(['n1', 'n2', 'n3']));
    expect(await leader.svc.execute({ kind: 'transfer', id: 'n3' }, soon(), 0)).toEqual({
      status: 200,
      body: { leader: 'n3' },
    });
    const refusing = clusterPeer(leaderOf(['n1', 'n2', 'n3']));
    (
      refusing.svc as unknown as { peer: { transferLeadership: () => Promise<void> } }
    ).peer.transferLeadership = () => Promise.reject(new InvalidArgumentError('n9 is not a voting member'));
    expect(await refusing.svc.execute({ kind: 'transfer', id: 'n9' }, soon(), 0)).toMatchObject({
      status: 400,
      body: { error: 'bad_request', message: 'n9 is not a voting member' },
    });
  });
});
