/**
 * The conformance suite every {@link Transport} runs: call {@link transportSuite} inside
 * a vitest `describe` with a harness that creates connected transports.
 *
 * @example
 * ```ts
 * import { describe } from 'vitest';
 * import { InProcessNetwork } from '@raft/transport-inproc';
 * import { transportSuite } from '@raft/testkit/transport';
 *
 * describe('InProcessNetwork', () => {
 *   let network: InProcessNetwork;
 *   transportSuite({
 *     async setup(names) {
 *       network = new InProcessNetwork();
 *       return Object.fromEntries(names.map((name) => [name, network.join(name)]));
 *     },
 *     async restart(name) { return network.join(name); },
 *     async teardown() { network.close(); },
 *     supports: { ordered: true },
 *   });
 * });
 * ```
 * @module
 */
import { afterEach, describe, expect, it } from 'vitest';
import { seededRandom, validateMessage } from '@raft/core';
import type { AppendEntriesMessage, LogEntry, PeerId, RaftMessage, Transport } from '@raft/core';

/** What a transport under test can do; the suite skips or relaxes checks accordingly. */
export interface TransportSupports {
  /**
   * Messages on a healthy link arrive once each, in the order they were sent (most
   * connection-based transports). The suite then checks the order.
   * @default false
   */
  ordered?: boolean;
}

/**
 * Creates the transports the suite tests. A WebSocket transport can allocate its ports
 * in `setup` (listen on port 0 first, then build the peer URLs); an in-process one joins
 * a network.
 */
export interface TransportHarness {
  /**
   * Creates one transport per name, each able to reach every other, none started yet.
   * Called at most once per test.
   */
  setup(names: PeerId[]): Promise<Record<PeerId, Transport>>;
  /**
   * Creates a new, unstarted transport for `name` after the suite closed the previous
   * one, reachable by the others exactly as before (same address): a restarted peer.
   * Without it, the restart test is skipped.
   */
  restart?(name: PeerId): Promise<Transport>;
  /**
   * Releases everything `setup` and `restart` created. Called after every test that
   * called `setup`; the suite has already closed every transport (close is idempotent).
   */
  teardown(): Promise<void>;
  /** Capabilities of the transport. */
  supports?: TransportSupports;
  /**
   * How long the suite waits for a message that should arrive, in milliseconds.
   * Tests time out after three times this.
   * @default 5000
   */
  timeoutMs?: number;
}

/** A term no test message uses: marks the probes that wait for a link to come up. */
const PROBE_TERM = 2 ** 50;

function randomBytes(length: number, seed: number): Uint8Array {
  const random = seededRandom(seed); // the suite's test data is seeded, never Math.random
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = Math.floor(random() * 256);
  return bytes;
}

function allByteValues(): Uint8Array {
  return Uint8Array.from({ length: 256 }, (_, i) => i);
}

function heartbeat(from: PeerId, to: PeerId, seq: number): AppendEntriesMessage {
  return {
    type: 'AppendEntries',
    term: 1,
    from,
    to,
    prevLogIndex: 0,
    prevLogTerm: 0,
    entries: [],
    leaderCommit: 0,
    seq,
  };
}

/** One message of each kind (and variants), each with a distinct term to match it on arrival. */
function everyKind(from: PeerId, to: PeerId): RaftMessage[] {
  const big = 2 ** 45 + 3; // survives only if the encoding keeps 64-bit integers exact
  return [
    { type: 'RequestVote', term: 5, from, to, lastLogIndex: 10, lastLogTerm: 4, preVote: false },
    { type: 'RequestVote', term: 6, from, to, lastLogIndex: big, lastLogTerm: 0, preVote: true },
    { type: 'RequestVoteResponse', term: 7, from, to, voteGranted: true, preVote: false },
    { type: 'RequestVoteResponse', term: 8, from, to, voteGranted: false, preVote: true },
    {
      type: 'AppendEntries',
      term: 9,
      from,
      to,
      prevLogIndex: 0,
      prevLogTerm: 0,
      entries: [],
      leaderCommit: 0,
      seq: 0,
    },
    {
      type: 'AppendEntries',
      term: 10,
      from,
      to,
      prevLogIndex: 41,
      prevLogTerm: 9,
      entries: [
        { index: 42, term: 10, type: 'noop', data: new Uint8Array(0) },
        { index: 43, term: 10, type: 'command', data: allByteValues() },
        {
          index: 44,
          term: 10,
          type: 'config',
          data: new TextEncoder().encode('{"members":["n1","n2","n3"]}'),
        },
        { index: 45, term: 10, type: 'command', data: randomBytes(4096, 45) },
        { index: 46, term: 10, type: 'command', data: new Uint8Array(0) },
      ],
      leaderCommit: 43,
      seq: big,
    },
    {
      type: 'AppendEntriesResponse',
      term: 11,
      from,
      to,
      success: true,
      matchIndex: big,
      prevLogIndex: big - 1,
      conflictIndex: 0,
      conflictTerm: 0,
      seq: 12,
    },
    {
      type: 'AppendEntriesResponse',
      term: 12,
      from,
      to,
      success: false,
      matchIndex: 0,
      prevLogIndex: 100,
      conflictIndex: 57,
      conflictTerm: 3,
      seq: 13,
    },
    // Forwarding: a follower's commands and reads, and the leader's answers.
    { type: 'Propose', term: 13, from, to, id: big, commands: [allByteValues(), new Uint8Array(0)] },
    { type: 'ProposeResult', term: 14, from, to, id: 1, refused: false, index: big },
    { type: 'ReadIndexRequest', term: 15, from, to, id: 2 },
    { type: 'ReadIndexResult', term: 16, from, to, id: 2, refused: true, index: 0, leader: 'n9' },
  ];
}

/** A comparable copy: entry data as plain arrays, whatever `Uint8Array` subclass arrived. */
function comparable(message: RaftMessage): unknown {
  if (message.type === 'Propose') return { ...message, commands: message.commands.map((c) => Array.from(c)) };
  if (message.type !== 'AppendEntries') return { ...message };
  return { ...message, entries: message.entries.map((e: LogEntry) => ({ ...e, data: Array.from(e.data) })) };
}

function isProbe(message: RaftMessage): boolean {
  return message.term === PROBE_TERM;
}

/** A started transport and what it received. */
interface Endpoint {
  readonly name: PeerId;
  transport: Transport;
  /** Messages received, probes excluded. */
  readonly inbox: RaftMessage[];
  /** Probes received, by sender. */
  readonly probesFrom: Map<PeerId, number>;
  /** Messages whose `to` is not this peer. */
  readonly misdelivered: RaftMessage[];
  /** Messages delivered after `close()` was called. */
  readonly late: RaftMessage[];
  closing: boolean;
}

/**
 * Registers the transport conformance tests with vitest. Call it inside a `describe`.
 * Checks: every message kind arrives with every field intact (binary and empty entry
 * data included); many messages arrive (in order when `supports.ordered`); traffic both
 * ways; a large message (1000 entries of 1 KiB); delivery only to the addressee; `send`
 * never throws (unknown peer, before start, to a peer not started, after close); the
 * receiver gets its own copy; `close` is idempotent and nothing is delivered after it;
 * a restarted peer is reached again (when the harness has `restart`).
 */
export function transportSuite(harness: TransportHarness): void {
  const timeoutMs = harness.timeoutMs ?? 5000;
  const testTimeout = timeoutMs * 3;
  const ordered = harness.supports?.ordered === true;
  let endpoints: Map<PeerId, Endpoint> | null = null;

  async function waitUntil(predicate: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline)
        throw new Error(`transport suite: timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  function endpoint(name: PeerId): Endpoint {
    const e = endpoints?.get(name);
    if (e === undefined) throw new Error(`transport suite: no endpoint ${name}`);
    return e;
  }

  function track(name: PeerId, transport: Transport): Endpoint {
    const e: Endpoint = {
      name,
      transport,
      inbox: [],
      probesFrom: new Map(),
      misdelivered: [],
      late: [],
      closing: false,
    };
    endpoints!.set(name, e);
    return e;
  }

  async function start(e: Endpoint): Promise<void> {
    await e.transport.start((message) => {
      if (e.closing) e.late.push(message);
      else if (message.to !== e.name) e.misdelivered.push(message);
      else if (isProbe(message)) e.probesFrom.set(message.from, (e.probesFrom.get(message.from) ?? 0) + 1);
      else e.inbox.push(message);
    });
  }

  /** Creates transports for `names` and, unless told otherwise, starts them. */
  async function setup(names: PeerId[], opts: { start?: boolean } = {}): Promise<Endpoint[]> {
    endpoints = new Map();
    const transports = await harness.setup(names);
    const list = names.map((name) => {
      const transport = transports[name];
      if (transport === undefined)
        throw new Error(`transport suite: harness.setup did not return a transport for ${name}`);
      return track(name, transport);
    });
    if (opts.start !== false) for (const e of list) await start(e);
    return list;
  }

  /**
   * Waits until `from` reaches `to`, sending probes meanwhile: connection-based
   * transports may drop messages sent before their link is up, which the contract allows.
   */
  async function connect(from: Endpoint, to: Endpoint): Promise<void> {
    const before = to.probesFrom.get(from.name) ?? 0;
    const probe: RaftMessage = {
      type: 'RequestVoteResponse',
      term: PROBE_TERM,
      from: from.name,
      to: to.name,
      voteGranted: false,
      preVote: true,
    };
    const deadline = Date.now() + timeoutMs;
    while ((to.probesFrom.get(from.name) ?? 0) === before) {
      if (Date.now() > deadline)
        throw new Error(`transport suite: ${from.name} could not reach ${to.name} within ${timeoutMs} ms`);
      from.transport.send(to.name, probe);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async function connectAll(list: Endpoint[]): Promise<void> {
    for (const a of list) for (const b of list) if (a !== b) await connect(a, b);
  }

  async function close(e: Endpoint): Promise<void> {
    e.closing = true;
    await e.transport.close();
  }

  function received(e: Endpoint, from: PeerId): RaftMessage[] {
    return e.inbox.filter((m) => m.from === from);
  }

  function seqs(e: Endpoint, from: PeerId): number[] {
    return received(e, from).map((m) => (m as AppendEntriesMessage).seq);
  }

  afterEach(async () => {
    if (endpoints === null) return;
    const list = [...endpoints.values()];
    endpoints = null;
    for (const e of list) {
      e.closing = true;
      await e.transport.close();
    }
    await harness.teardown();
  }, testTimeout);

  describe('Transport conformance', () => {
    it(
      'delivers every message kind with every field intact',
      async () => {
        const [a, b] = await setup(['a', 'b']);
        await connect(a!, b!);
        const sent = everyKind('a', 'b');
        for (const message of sent) a!.transport.send('b', message);
        await waitUntil(
          () => new Set(received(b!, 'a').map((m) => m.term)).size === sent.length,
          `${sent.length} messages of every kind`,
        );
        for (const message of sent) {
          const got = received(b!, 'a').find((m) => m.term === message.term);
          expect(got, `the message of term ${message.term}`).toBeDefined();
          expect(validateMessage(got).ok).toBe(true);
          expect(comparable(got!)).toEqual(comparable(message));
        }
        expect(b!.misdelivered).toEqual([]);
      },
      testTimeout,
    );

    it(
      'keeps entry data byte for byte: every byte value, empty data, 64 KiB of random bytes',
      async () => {
        const [a, b] = await setup(['a', 'b']);
        await connect(a!, b!);
        const datas = [allByteValues(), new Uint8Array(0), randomBytes(64 * 1024, 7)];
        const message: AppendEntriesMessage = {
          ...heartbeat('a', 'b', 1),
          term: 3,
          entries: datas.map((data, i) => ({ index: i + 1, term: 3, type: 'command', data })),
        };
        a!.transport.send('b', message);
        await waitUntil(() => received(b!, 'a').length > 0, 'the message');
        const got = received(b!, 'a')[0] as AppendEntriesMessage;
        expect(got.entries).toHaveLength(datas.length);
        got.entries.forEach((entry, i) => {
          expect(entry.data).toBeInstanceOf(Uint8Array);
          expect(entry.data.byteLength).toBe(datas[i]!.byteLength);
          expect(Buffer.compare(entry.data, datas[i]!)).toBe(0);
        });
      },
      testTimeout,
    );

    it(
      'gives the receiver its own copy: changes the sender makes after send do not show',
      async () => {
        const [a, b] = await setup(['a', 'b']);
        await connect(a!, b!);
        const data = Uint8Array.of(1, 2, 3);
        const message: AppendEntriesMessage = {
          ...heartbeat('a', 'b', 1),
          entries: [{ index: 1, term: 1, type: 'command', data }],
        };
        a!.transport.send('b', message);
        message.seq = 99;
        message.entries.push({ index: 2, term: 1, type: 'noop', data: new Uint8Array(0) });
        data[0] = 42;
        await waitUntil(() => received(b!, 'a').length > 0, 'the message');
        const got = received(b!, 'a')[0] as AppendEntriesMessage;
        expect(got).not.toBe(message);
        expect(got.seq).toBe(1);
        expect(got.entries).toHaveLength(1);
        expect(Array.from(got.entries[0]!.data)).toEqual([1, 2, 3]);
      },
      testTimeout,
    );

    it(
      `delivers 1000 messages on a healthy link${ordered ? ', in order' : ''}`,
      async () => {
        const [a, b] = await setup(['a', 'b']);
        await connect(a!, b!);
        for (let i = 0; i < 1000; i++) a!.transport.send('b', heartbeat('a', 'b', i));
        await waitUntil(() => new Set(seqs(b!, 'a')).size === 1000, '1000 messages');
        if (ordered) expect(seqs(b!, 'a')).toEqual([...Array(1000).keys()]);
      },
      testTimeout,
    );

    it(
      'carries traffic both ways at once',
      async () => {
        const [a, b] = await setup(['a', 'b']);
        await connectAll([a!, b!]);
        for (let i = 0; i < 300; i++) {
          a!.transport.send('b', heartbeat('a', 'b', i));
          b!.transport.send('a', heartbeat('b', 'a', i));
        }
        await waitUntil(
          () => new Set(seqs(b!, 'a')).size === 300 && new Set(seqs(a!, 'b')).size === 300,
          '300 messages each way',
        );
        if (ordered) {
          expect(seqs(b!, 'a')).toEqual([...Array(300).keys()]);
          expect(seqs(a!, 'b')).toEqual([...Array(300).keys()]);
        }
      },
      testTimeout,
    );

    it(
      'delivers a large message: 1000 entries of 1 KiB',
      async () => {
        const [a, b] = await setup(['a', 'b']);
        await connect(a!, b!);
        const entries: LogEntry[] = Array.from({ length: 1000 }, (_, i) => ({
          index: i + 1,
          term: 2,
          type: 'command',
          data: randomBytes(1024, i),
        }));
        a!.transport.send('b', { ...heartbeat('a', 'b', 5), term: 2, entries });
        await waitUntil(() => received(b!, 'a').length > 0, 'the large message');
        const got = received(b!, 'a')[0] as AppendEntriesMessage;
        expect(validateMessage(got).ok).toBe(true);
        expect(got.entries).toHaveLength(1000);
        got.entries.forEach((entry, i) => {
          expect(entry.index).toBe(i + 1);
          expect(Buffer.compare(entry.data, entries[i]!.data)).toBe(0);
        });
      },
      testTimeout,
    );

    it(
      'delivers only to the addressee',
      async () => {
        const [a, b, c] = await setup(['a', 'b', 'c']);
        await connectAll([a!, b!, c!]);
        for (let i = 0; i < 50; i++) {
          a!.transport.send('b', heartbeat('a', 'b', i));
          b!.transport.send('c', heartbeat('b', 'c', i));
        }
        await waitUntil(
          () => new Set(seqs(b!, 'a')).size === 50 && new Set(seqs(c!, 'b')).size === 50,
          'the messages',
        );
        // A last message to each peer, sent after all the others: by the time it arrives a stray would likely have too.
        a!.transport.send('c', heartbeat('a', 'c', 1000));
        c!.transport.send('a', heartbeat('c', 'a', 1000));
        await waitUntil(
          () => seqs(c!, 'a').includes(1000) && seqs(a!, 'c').includes(1000),
          'the last messages',
        );
        for (const e of [a!, b!, c!]) {
          expect(e.misdelivered).toEqual([]);
          expect(e.inbox.every((m) => m.to === e.name)).toBe(true);
        }
        expect(seqs(a!, 'b')).toEqual([]);
        expect(seqs(c!, 'a')).toEqual([1000]);
      },
      testTimeout,
    );

    it(
      'does not throw on send to an unknown peer, and keeps working',
      async () => {
        const [a, b] = await setup(['a', 'b']);
        expect(() => a!.transport.send('nobody', heartbeat('a', 'nobody', 1))).not.toThrow();
        expect(() => a!.transport.send('', heartbeat('a', '', 1))).not.toThrow();
        await connect(a!, b!);
        a!.transport.send('b', heartbeat('a', 'b', 2));
        await waitUntil(() => seqs(b!, 'a').includes(2), 'the message');
      },
      testTimeout,
    );

    it(
      'does not throw on send before start, nor to a peer that has not started',
      async () => {
        const [a, b] = await setup(['a', 'b'], { start: false });
        expect(() => a!.transport.send('b', heartbeat('a', 'b', 1))).not.toThrow();
        await start(a!);
        expect(() => a!.transport.send('b', heartbeat('a', 'b', 2))).not.toThrow();
        await start(b!);
        await connectAll([a!, b!]);
        a!.transport.send('b', heartbeat('a', 'b', 3));
        await waitUntil(() => seqs(b!, 'a').includes(3), 'a message once both started');
      },
      testTimeout,
    );

    it(
      'has an idempotent close',
      async () => {
        const [a, b] = await setup(['a', 'b']);
        await connect(a!, b!);
        await close(a!);
        await expect(a!.transport.close()).resolves.toBeUndefined();
        b!.closing = true;
        await expect(Promise.all([b!.transport.close(), b!.transport.close()])).resolves.toBeDefined();
      },
      testTimeout,
    );

    it(
      'makes send a silent no-op after close: nothing arrives',
      async () => {
        const [a, b, c] = await setup(['a', 'b', 'c']);
        await connectAll([a!, b!, c!]);
        await close(a!);
        for (let i = 0; i < 20; i++)
          expect(() => a!.transport.send('b', heartbeat('a', 'b', i))).not.toThrow();
        c!.transport.send('b', heartbeat('c', 'b', 1));
        await waitUntil(() => seqs(b!, 'c').includes(1), 'a message from a peer still open');
        expect(received(b!, 'a')).toEqual([]);
      },
      testTimeout,
    );

    it(
      'delivers nothing once close is called, even messages already in flight',
      async () => {
        const [a, b, c] = await setup(['a', 'b', 'c']);
        await connectAll([a!, b!, c!]);
        for (let i = 0; i < 200; i++) a!.transport.send('b', heartbeat('a', 'b', i));
        await close(b!);
        for (let i = 200; i < 220; i++) a!.transport.send('b', heartbeat('a', 'b', i));
        a!.transport.send('c', heartbeat('a', 'c', 1));
        await waitUntil(() => seqs(c!, 'a').includes(1), 'a message to a peer still open');
        expect(b!.late).toEqual([]);
      },
      testTimeout,
    );

    it.skipIf(harness.restart === undefined)(
      'reaches a peer again after it closes and a new transport starts in its place',
      async () => {
        const [a, b] = await setup(['a', 'b']);
        await connectAll([a!, b!]);
        await close(b!);
        const again = track('b', await harness.restart!('b'));
        await start(again);
        await connect(a!, again);
        await connect(again, a!);
        a!.transport.send('b', heartbeat('a', 'b', 7));
        again.transport.send('a', heartbeat('b', 'a', 8));
        await waitUntil(
          () => seqs(again, 'a').includes(7) && seqs(a!, 'b').includes(8),
          'messages both ways after the restart',
        );
        expect(b!.late).toEqual([]);
        expect(endpoint('b')).toBe(again);
      },
      testTimeout,
    );
  });
}
