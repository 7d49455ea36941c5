/**
 * A message can only be refused, never break a peer (issue 14): terms and indexes the
 * protocol cannot reach, entry terms out of order, are refused and counted by reason.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  MAX_INDEX,
  MAX_TERM,
  MAX_TERM_JUMP,
  seededRandom,
  startPeer,
  validateMessage,
  type Logger,
  type Peer,
  type StateMachine,
} from '../src/index.js';
import { TestLogStore, TestNetwork, VirtualClock } from './harness.js';

type Cmd = { key: string; value: number };
type State = Map<string, number>;
const machine: StateMachine<State, Cmd, string, number | null> = {
  init: () => new Map(),
  handleWrite: (cmd, state) => [cmd.value, state.set(cmd.key, cmd.value)],
  handleRead: (key, state) => state.get(key) ?? null,
};

let peers: Peer<Cmd, string, number | null>[] = [];
afterEach(async () => {
  await Promise.all(peers.map((p) => p.stop()));
  peers = [];
});

const names = ['a', 'b', 'c'];

function append(from: string, to: string, term: number, extra: Record<string, unknown> = {}) {
  return {
    type: 'AppendEntries',
    term,
    from,
    to,
    prevLogIndex: 0,
    prevLogTerm: 0,
    entries: [],
    leaderCommit: 0,
    seq: 0,
    ...extra,
  };
}

async function cluster(logger?: Logger) {
  const clock = new VirtualClock();
  const net = new TestNetwork(clock);
  const stores = new Map(names.map((n) => [n, new TestLogStore()]));
  const rand = seededRandom(11);
  const start = (name: string) =>
    startPeer(machine, {
      name,
      log: stores.get(name)!,
      transport: net.join(name),
      clock,
      random: rand,
      register: false,
      ...(logger === undefined ? {} : { logger }),
    });
  for (const n of names) peers.push(await start(n));
  const boot = peers[0]!.setConfiguration(names);
  await clock.until(() => peers.some((p) => p.status().role === 'leader'));
  await boot;
  return { clock, net, stores, start };
}

function theLeader(): Peer<Cmd, string, number | null> {
  const l = peers.find((p) => p.status().role === 'leader');
  if (l === undefined) throw new Error('no leader');
  return l;
}

async function writeOk(clock: VirtualClock, key: string, value: number): Promise<void> {
  await clock.until(() => peers.some((p) => p.status().role === 'leader'), 20_000);
  const w = theLeader().write({ key, value });
  await clock.advance(20);
  expect(await w).toBe(value);
}

describe('validateMessage bounds what a message may carry', () => {
  it('refuses terms above MAX_TERM (or the given maxTerm) and indexes above MAX_INDEX, by reason', () => {
    expect(MAX_TERM).toBe(2 ** 52);
    const refusal = (v: unknown, maxTerm?: number) => {
      const r = validateMessage(v, maxTerm === undefined ? {} : { maxTerm });
      return r.ok ? 'ok' : r.refusal;
    };
    expect(refusal(append('a', 'b', 2 ** 53 - 1))).toBe('term_out_of_range');
    expect(refusal(append('a', 'b', MAX_TERM))).toBe('ok');
    expect(refusal(append('a', 'b', MAX_TERM + 1))).toBe('term_out_of_range');
    expect(refusal(append('a', 'b', 10), 9)).toBe('term_out_of_range');
    expect(refusal(append('a', 'b', 9), 9)).toBe('ok');
    expect(refusal(append('a', 'b', 5, { prevLogIndex: MAX_INDEX + 1 }))).toBe('index_out_of_range');
    expect(refusal(append('a', 'b', 5, { leaderCommit: 2 ** 53 - 1 }))).toBe('index_out_of_range');
    expect(
      refusal({
        type: 'RequestVote',
        term: 3,
        from: 'a',
        to: 'b',
        lastLogIndex: 1,
        lastLogTerm: 4,
        preVote: false,
      }),
    ).toBe('entry_terms');
    expect(refusal({ type: 'RequestVote', term: -1, from: 'a', to: 'b' })).toBe('malformed');
  });

  it('requires entry terms non-decreasing, from prevLogTerm on, and at most the message term', () => {
    const e = (index: number, term: number) => ({ index, term, type: 'noop', data: new Uint8Array(0) });
    const check = (prevLogTerm: number, terms: number[], term = 5) => {
      const r = validateMessage(
        append('a', 'b', term, { prevLogIndex: 3, prevLogTerm, entries: terms.map((t, i) => e(4 + i, t)) }),
      );
      return r.ok ? 'ok' : r.refusal;
    };
    expect(check(2, [2, 3, 3, 5])).toBe('ok');
    expect(check(2, [3, 2])).toBe('entry_terms');
    expect(check(3, [2])).toBe('entry_terms');
    expect(check(2, [6])).toBe('entry_terms');
    expect(check(6, [])).toBe('entry_terms');
  });
});

describe('a peer given a term it could not reach is not stuck', () => {
  it('an AppendEntries with term 2^53-1 is refused and counted; the cluster goes on', async () => {
    const { clock, net } = await cluster();
    const term = theLeader().status().term;
    for (const to of names) net.inject(to, append(to === 'a' ? 'b' : 'a', to, 2 ** 53 - 1));
    await clock.advance(500);
    for (const p of peers) {
      expect(p.status().term).toBe(term);
      expect(p.status().metrics.messagesDroppedByReason.term_out_of_range).toBe(1);
    }
    await writeOk(clock, 'k', 1);
  });

  it('the highest term admitted (own term + MAX_TERM_JUMP) is adopted, and the cluster still elects, writes and restarts', async () => {
    const { clock, net, start } = await cluster();
    const before = theLeader().status().term;
    const forged = before + MAX_TERM_JUMP;
    // One past what the receiver admits: refused.
    for (const to of names) net.inject(to, append(to === 'a' ? 'b' : 'a', to, forged + 1));
    await clock.advance(50);
    expect(peers.every((p) => p.status().term === before)).toBe(true);
    for (const to of names) net.inject(to, append(to === 'a' ? 'b' : 'a', to, forged));
    await clock.until(() => peers.every((p) => p.status().term >= forged));
    // A real election above the forged term, then writes.
    await clock.until(
      () => peers.some((p) => p.status().role === 'leader' && p.status().term > forged),
      20_000,
    );
    await writeOk(clock, 'after', 2);
    // Restart every peer from its store: they elect again, in a later term.
    await Promise.all(peers.map((p) => p.stop()));
    peers = [];
    for (const n of names) peers.push(await start(n));
    await clock.until(() => peers.some((p) => p.status().role === 'leader'), 20_000);
    expect(theLeader().status().term).toBeGreaterThan(forged + 1);
    await writeOk(clock, 'restarted', 3);
  });

  it('entries whose terms go down are refused and counted; the follower log is untouched', async () => {
    const { clock, net } = await cluster();
    await writeOk(clock, 'k', 1);
    const l = theLeader();
    const f = peers.find((p) => p !== l)!;
    await clock.until(() => f.status().lastLogIndex === l.status().lastLogIndex);
    const { term, lastLogIndex, lastLogTerm } = f.status();
    const entry = (index: number, t: number) => ({ index, term: t, type: 'noop', data: new Uint8Array(0) });
    net.inject(
      f.name,
      append(l.name, f.name, term, {
        prevLogIndex: lastLogIndex,
        prevLogTerm: lastLogTerm,
        entries: [entry(lastLogIndex + 1, term), entry(lastLogIndex + 2, term - 1)],
      }),
    );
    await clock.advance(50);
    expect(f.status().metrics.messagesDroppedByReason.entry_terms).toBe(1);
    expect(f.status().lastLogIndex).toBe(lastLogIndex);
    expect(f.status().stopped).toBe(false);
    await writeOk(clock, 'k2', 2);
  });
});

describe('dropped frames are visible', () => {
  it('are logged at info level by reason, at most one line per reason every 10 s, with the count since', async () => {
    const lines: { obj: Record<string, unknown>; msg: string | undefined }[] = [];
    const info = (obj: object, msg?: string) => lines.push({ obj: obj as Record<string, unknown>, msg });
    const logger: Logger = { debug: () => undefined, info, warn: () => undefined, error: () => undefined };
    const { clock, net } = await cluster(logger);
    const dropped = () => lines.filter((l) => l.msg === 'message dropped' && l.obj.peer === 'b');
    for (let i = 0; i < 3; i++) net.inject('b', { type: 'Nope', term: 1, from: 'z', to: 'b' });
    net.inject('b', append('a', 'b', 2 ** 53 - 1));
    expect(dropped().map((l) => l.obj.reason)).toEqual(['malformed', 'term_out_of_range']);
    await clock.advance(5_000);
    net.inject('b', { type: 'Nope', term: 1, from: 'z', to: 'b' });
    expect(dropped()).toHaveLength(2);
    await clock.advance(5_000);
    net.inject('b', { type: 'Nope', term: 1, from: 'z', to: 'b' });
    expect(dropped()).toHaveLength(3);
    expect(dropped()[2]!.obj).toMatchObject({ reason: 'malformed', droppedSinceLastLine: 4, total: 5 });
    expect(peers[1]!.status().metrics.messagesDroppedByReason).toMatchObject({
      malformed: 5,
      term_out_of_range: 1,
    });
  });
});
