import { describe, expect, it } from 'vitest';
import { RaftError } from '@raft/core';
import type { AppendEntriesMessage, PeerId, RaftMessage } from '@raft/core';
import { InProcessNetwork } from './network.js';
import type { InProcessNetworkOptions, Scheduler } from './network.js';

/** A virtual clock: callbacks run only when the test says so, ordered by (time, insertion). */
class ManualScheduler implements Scheduler {
  now = 0;
  #seq = 0;
  #queue: { at: number; seq: number; fn: () => void; cancelled: boolean }[] = [];
  setTimeout(fn: () => void, ms: number): unknown {
    const timer = { at: this.now + ms, seq: this.#seq++, fn, cancelled: false };
    this.#queue.push(timer);
    return timer;
  }
  clearTimeout(handle: unknown): void {
    (handle as { cancelled: boolean }).cancelled = true;
  }
  get pending(): number {
    return this.#queue.filter((t) => !t.cancelled).length;
  }
  /** Runs every callback due up to `now + ms`, in order, including ones scheduled meanwhile. */
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      this.#queue.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.#queue[0];
      if (next === undefined || next.at > end) break;
      this.#queue.shift();
      this.now = next.at;
      if (!next.cancelled) next.fn();
    }
    this.now = end;
  }
}

function heartbeat(from: PeerId, to: PeerId, seq: number, data?: Uint8Array): AppendEntriesMessage {
  return {
    type: 'AppendEntries',
    term: 1,
    from,
    to,
    prevLogIndex: 0,
    prevLogTerm: 0,
    entries: data === undefined ? [] : [{ index: 1, term: 1, type: 'command', data }],
    leaderCommit: 0,
    seq,
  };
}

async function waitFor(predicate: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** Joins and starts `names`, recording what each receives. */
async function cluster(options: InProcessNetworkOptions, names: PeerId[] = ['a', 'b', 'c']) {
  const network = new InProcessNetwork(options);
  const inbox: Record<PeerId, RaftMessage[]> = {};
  const transports = Object.fromEntries(names.map((n) => [n, network.join(n)]));
  for (const name of names) {
    inbox[name] = [];
    await transports[name]!.start((m) => inbox[name]!.push(m));
  }
  return {
    network,
    inbox,
    transports,
    received: (name: PeerId) => inbox[name]!.map((m) => (m as AppendEntriesMessage).seq),
  };
}

function expectCode(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (error) {
    expect(RaftError.isInstance(error) && error.code).toBe(code);
    return;
  }
  throw new Error(`expected ${code}`);
}

describe('InProcessNetwork: delivery', () => {
  it('delivers asynchronously, never inside the sender’s call stack', async () => {
    const { network, transports, inbox } = await cluster({});
    transports.a!.send('b', heartbeat('a', 'b', 1));
    expect(inbox.b).toHaveLength(0);
    await waitFor(() => inbox.b!.length === 1, 'delivery');
    expect(inbox.b![0]).toEqual(heartbeat('a', 'b', 1));
    network.close();
  });

  it('crosses a serialization boundary: later changes by the sender do not show, bytes survive', async () => {
    const { network, transports, inbox } = await cluster({});
    const data = new Uint8Array([0, 1, 2, 255]);
    const message = heartbeat('a', 'b', 7, data);
    transports.a!.send('b', message);
    data[0] = 99;
    message.term = 42;
    await waitFor(() => inbox.b!.length === 1, 'delivery');
    const got = inbox.b![0] as AppendEntriesMessage;
    expect(got).not.toBe(message);
    expect(got.term).toBe(1);
    expect(got.entries[0]!.data).toBeInstanceOf(Uint8Array);
    expect([...got.entries[0]!.data]).toEqual([0, 1, 2, 255]);
    network.close();
  });

  it('delivers messages without delay first-in first-out', async () => {
    const { network, transports, received } = await cluster({});
    for (let i = 0; i < 500; i++) transports.a!.send('b', heartbeat('a', 'b', i));
    await waitFor(() => received('b').length === 500, '500 deliveries');
    expect(received('b')).toEqual([...Array(500).keys()]);
    network.close();
  });

  it('delivers only to the addressee', async () => {
    const { network, transports, inbox } = await cluster({});
    transports.a!.send('b', heartbeat('a', 'b', 1));
    transports.a!.send('c', heartbeat('a', 'c', 2));
    await waitFor(() => network.stats().delivered === 2, 'deliveries');
    expect(inbox.b!.map((m) => m.to)).toEqual(['b']);
    expect(inbox.c!.map((m) => m.to)).toEqual(['c']);
    expect(inbox.a).toHaveLength(0);
    network.close();
  });

  it('drops and counts a message whose `to` is not the peer it was sent to', async () => {
    const { network, transports, inbox } = await cluster({});
    transports.a!.send('b', heartbeat('a', 'c', 1));
    transports.a!.send('b', null as unknown as RaftMessage);
    expect(network.stats().dropped.misaddressed).toBe(2);
    await new Promise((resolve) => setImmediate(resolve));
    expect(inbox.b!.length + inbox.c!.length).toBe(0);
    network.close();
  });

  it('drops and counts a message it cannot encode, without throwing', async () => {
    const { network, transports } = await cluster({});
    const bad = { ...heartbeat('a', 'b', 1), term: Symbol('x') } as unknown as RaftMessage;
    expect(() => transports.a!.send('b', bad)).not.toThrow();
    expect(network.stats().dropped.unencodable).toBe(1);
    network.close();
  });

  it('reports an error thrown by onMessage and keeps delivering', async () => {
    const errors: [unknown, PeerId][] = [];
    const network = new InProcessNetwork({ onHandlerError: (error, peer) => errors.push([error, peer]) });
    const a = network.join('a');
    const b = network.join('b');
    const got: number[] = [];
    await a.start(() => {});
    await b.start((m) => {
      const seq = (m as AppendEntriesMessage).seq;
      if (seq === 1) throw new Error('boom');
      got.push(seq);
    });
    a.send('b', heartbeat('a', 'b', 1));
    a.send('b', heartbeat('a', 'b', 2));
    await waitFor(() => got.length === 1, 'second delivery');
    expect(errors).toHaveLength(1);
    expect(errors[0]![1]).toBe('b');
    network.close();
  });
});

describe('InProcessNetwork: peers that are absent', () => {
  it('drops and counts messages to a peer that never joined, that has not started, or that closed', async () => {
    const network = new InProcessNetwork();
    const a = network.join('a');
    const b = network.join('b');
    await a.start(() => {});
    expect(() => a.send('nobody', heartbeat('a', 'nobody', 1))).not.toThrow();
    a.send('b', heartbeat('a', 'b', 2)); // b joined, not started
    await b.close();
    a.send('b', heartbeat('a', 'b', 3));
    expect(network.stats().dropped.unreachable).toBe(3);
    network.close();
  });

  it('makes send a counted no-op before start and after close', async () => {
    const { network, transports, inbox } = await cluster({});
    const d = network.join('d');
    expect(() => d.send('b', heartbeat('d', 'b', 1))).not.toThrow();
    await transports.a!.close();
    expect(() => transports.a!.send('b', heartbeat('a', 'b', 2))).not.toThrow();
    expect(network.stats().dropped.closed).toBe(2);
    await new Promise((resolve) => setImmediate(resolve));
    expect(inbox.b).toHaveLength(0);
    network.close();
  });

  it('delivers nothing to a transport closed while messages are in flight', async () => {
    const { network, transports, inbox } = await cluster({});
    for (let i = 0; i < 10; i++) transports.a!.send('b', heartbeat('a', 'b', i));
    await transports.b!.close();
    await transports.b!.close(); // idempotent
    await waitFor(() => network.inFlight() === 0, 'the queue to drain');
    expect(inbox.b).toHaveLength(0);
    expect(network.stats().dropped.unreachable).toBe(10);
    network.close();
  });

  it('lets a closed name join again and reach it (a restart)', async () => {
    const { network, transports } = await cluster({});
    expectCode(() => network.join('b'), 'RAFT_INVALID_ARGUMENT');
    await transports.b!.close();
    const b2 = network.join('b');
    const got: RaftMessage[] = [];
    await b2.start((m) => got.push(m));
    transports.a!.send('b', heartbeat('a', 'b', 5));
    await waitFor(() => got.length === 1, 'delivery to the restarted peer');
    network.close();
  });

  it('rejects a second start, and a start after close', async () => {
    const network = new InProcessNetwork();
    const a = network.join('a');
    await a.start(() => {});
    await expect(a.start(() => {})).rejects.toMatchObject({ code: 'RAFT_INVALID_ARGUMENT' });
    await a.close();
    await expect(a.start(() => {})).rejects.toMatchObject({ code: 'RAFT_TRANSPORT_UNAVAILABLE' });
    network.close();
  });

  it('close() of the network closes every transport and cancels pending deliveries', async () => {
    const scheduler = new ManualScheduler();
    const { network, transports, inbox } = await cluster({ scheduler, delayMs: [5, 5] });
    transports.a!.send('b', heartbeat('a', 'b', 1));
    expect(network.inFlight()).toBe(1);
    network.close();
    network.close();
    expect(network.inFlight()).toBe(0);
    expect(scheduler.pending).toBe(0);
    scheduler.advance(10);
    expect(inbox.b).toHaveLength(0);
    expectCode(() => network.join('z'), 'RAFT_TRANSPORT_UNAVAILABLE');
  });
});

describe('InProcessNetwork: partitions and blocked links', () => {
  it('partition: peers in different groups cannot talk; a peer in no group talks to no one', async () => {
    const { network, transports, received } = await cluster({}, ['a', 'b', 'c', 'd']);
    network.partition([['a', 'b'], ['c']]);
    expect(network.canReach('a', 'b')).toBe(true);
    expect(network.canReach('a', 'c')).toBe(false);
    expect(network.canReach('d', 'a')).toBe(false);
    transports.a!.send('b', heartbeat('a', 'b', 1));
    transports.a!.send('c', heartbeat('a', 'c', 2));
    transports.c!.send('a', heartbeat('c', 'a', 3));
    transports.d!.send('a', heartbeat('d', 'a', 4));
    expect(network.stats().dropped.partition).toBe(3);
    await waitFor(() => received('b').length === 1, 'delivery within the group');
    network.heal();
    transports.a!.send('c', heartbeat('a', 'c', 5));
    await waitFor(() => received('c').length === 1, 'delivery after heal');
    expect(received('c')).toEqual([5]);
    network.close();
  });

  it('partition also cuts messages already in flight', async () => {
    const scheduler = new ManualScheduler();
    const { network, transports, inbox } = await cluster({ scheduler, delayMs: [10, 10] });
    transports.a!.send('b', heartbeat('a', 'b', 1));
    network.partition([['a'], ['b', 'c']]);
    scheduler.advance(10);
    expect(inbox.b).toHaveLength(0);
    expect(network.stats().dropped.partition).toBe(1);
    network.close();
  });

  it('rejects a peer listed in two groups', () => {
    const network = new InProcessNetwork();
    expectCode(() => network.partition([['a', 'b'], ['b']]), 'RAFT_INVALID_ARGUMENT');
  });

  it('isolate cuts one peer off in both directions until heal', async () => {
    const { network, transports, received } = await cluster({});
    network.isolate('a');
    transports.a!.send('b', heartbeat('a', 'b', 1));
    transports.b!.send('a', heartbeat('b', 'a', 2));
    transports.b!.send('c', heartbeat('b', 'c', 3));
    expect(network.stats().dropped.partition).toBe(2);
    await waitFor(() => received('c').length === 1, 'b to c');
    network.heal();
    transports.b!.send('a', heartbeat('b', 'a', 4));
    await waitFor(() => received('a').length === 1, 'b to a after heal');
    network.close();
  });

  it('block is directional (an asymmetric partition) and unblock restores the link', async () => {
    const { network, transports, received } = await cluster({});
    network.block('a', 'b');
    transports.a!.send('b', heartbeat('a', 'b', 1));
    transports.b!.send('a', heartbeat('b', 'a', 2));
    expect(network.stats().dropped.blocked).toBe(1);
    await waitFor(() => received('a').length === 1, 'b to a');
    network.unblock('a', 'b');
    transports.a!.send('b', heartbeat('a', 'b', 3));
    await waitFor(() => received('b').length === 1, 'a to b after unblock');
    expect(received('b')).toEqual([3]);
    network.close();
  });
});

describe('InProcessNetwork: seeded random faults', () => {
  /** Sends 200 messages a→b and returns the order they arrived in. */
  function run(options: InProcessNetworkOptions): {
    order: number[];
    stats: ReturnType<InProcessNetwork['stats']>;
  } {
    const scheduler = new ManualScheduler();
    const network = new InProcessNetwork({ ...options, scheduler });
    const a = network.join('a');
    const b = network.join('b');
    const order: number[] = [];
    void a.start(() => {});
    void b.start((m) => order.push((m as AppendEntriesMessage).seq));
    for (let i = 0; i < 200; i++) {
      a.send('b', heartbeat('a', 'b', i));
      scheduler.advance(1);
    }
    scheduler.advance(1000);
    const stats = network.stats();
    network.close();
    return { order, stats };
  }

  it('drops, duplicates and delays the same way for the same seed', () => {
    const options = { seed: 7, dropProbability: 0.2, duplicateProbability: 0.2, delayMs: [0, 30] as const };
    const first = run(options);
    expect(run(options)).toEqual(first);
    expect(run({ ...options, seed: 8 }).order).not.toEqual(first.order);
  });

  it('reorders when delays differ, and counts drops and duplicates', () => {
    const { order, stats } = run({
      seed: 3,
      dropProbability: 0.25,
      duplicateProbability: 0.25,
      delayMs: [0, 50],
    });
    expect(order).not.toEqual([...order].sort((x, y) => x - y));
    expect(stats.dropped.random).toBeGreaterThan(20);
    expect(stats.duplicated).toBeGreaterThan(20);
    expect(stats.delivered).toBe(stats.sent - stats.dropped.random + stats.duplicated);
    expect(order).toHaveLength(stats.delivered);
  });

  it('drops everything with dropProbability 1 and duplicates everything with duplicateProbability 1', () => {
    expect(run({ dropProbability: 1 }).stats.dropped.random).toBe(200);
    const dup = run({ duplicateProbability: 1 });
    expect(dup.stats.delivered).toBe(400);
    expect(dup.order.filter((s) => s === 17)).toHaveLength(2);
  });

  it('draws the same numbers whatever the fault settings, so adding drops does not reshuffle delays', () => {
    const base = run({ seed: 11, delayMs: [0, 40] });
    const withDrops = run({ seed: 11, delayMs: [0, 40], dropProbability: 0.3 });
    const survivors = new Set(withDrops.order);
    expect(survivors.size).toBeLessThan(200);
    expect(base.order.filter((s) => survivors.has(s))).toEqual(withDrops.order);
  });

  it('goes through the scheduler for every delivery, even without delay', async () => {
    const scheduler = new ManualScheduler();
    const { network, transports, inbox } = await cluster({ scheduler });
    transports.a!.send('b', heartbeat('a', 'b', 1));
    await new Promise((resolve) => setImmediate(resolve));
    expect(inbox.b).toHaveLength(0);
    scheduler.advance(0);
    expect(inbox.b).toHaveLength(1);
    network.close();
  });

  it('delays with the global timers when no scheduler is given', async () => {
    const { network, transports, inbox } = await cluster({ delayMs: [5, 15] });
    for (let i = 0; i < 20; i++) transports.a!.send('b', heartbeat('a', 'b', i));
    expect(network.inFlight()).toBe(20);
    await waitFor(() => inbox.b!.length === 20, 'delayed deliveries');
    network.close();
  });

  it('changes faults at run time with setFaults', async () => {
    const { network, transports } = await cluster({});
    network.setFaults({ dropProbability: 1 });
    transports.a!.send('b', heartbeat('a', 'b', 1));
    network.setFaults({ dropProbability: 0 });
    transports.a!.send('b', heartbeat('a', 'b', 2));
    await waitFor(() => network.stats().delivered === 1, 'delivery');
    expect(network.stats().dropped.random).toBe(1);
    network.close();
  });
});

describe('InProcessNetwork: options', () => {
  it.each([
    [{ seed: 1.5 }],
    [{ dropProbability: -0.1 }],
    [{ dropProbability: Number.NaN }],
    [{ duplicateProbability: 2 }],
    [{ delayMs: [5, 1] as unknown as [number, number] }],
    [{ delayMs: [0.5, 1] as unknown as [number, number] }],
    [{ scheduler: {} as Scheduler }],
  ])('rejects %j with RAFT_INVALID_ARGUMENT', (options) => {
    expectCode(() => new InProcessNetwork(options), 'RAFT_INVALID_ARGUMENT');
  });

  it('rejects an empty peer name', () => {
    expectCode(() => new InProcessNetwork().join(''), 'RAFT_INVALID_ARGUMENT');
  });
});
