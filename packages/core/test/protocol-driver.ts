import { seededRandom } from '../src/random.js';
/**
 * A hand-cranked driver for the pure protocol (src/protocol), for the paper's unit tests
 * in test/paper. Nothing runs on its own: the test ticks, delivers, drops and reorders
 * messages, and crashes peers, so every scenario reads like a story (etcd-raft's
 * interaction tests are the model) and replays exactly.
 *
 * The runtime contract it emulates (Ready, in raft.ts): persist `hardState` + `entries`,
 * then send `messages`, then apply `committed`, then `advance`.
 */
import {
  Raft,
  type ForwardOutcome,
  type RaftOptions,
  type Ready,
  type ReadState,
  type Role,
} from '../src/protocol/raft.js';
import { encodeConfiguration, latestConfiguration } from '../src/protocol/membership.js';
import type {
  AppendEntriesMessage,
  AppendEntriesResponseMessage,
  HardState,
  LogEntry,
  PeerId,
  RaftMessage,
  RequestVoteMessage,
  RequestVoteResponseMessage,
} from '../src/types.js';

// ---------------------------------------------------------------- randomness and options

/** The protocol as the paper describes it: no pre-vote, no check-quorum (so no leader lease). */
export const PAPER: Partial<RaftOptions> = { preVote: false, checkQuorum: false };

/** Defaults of the tests: the runtime's defaults (pre-vote and check-quorum on) in ticks. */
export const DEFAULTS: Omit<RaftOptions, 'id' | 'random'> = {
  electionTicks: [10, 20],
  heartbeatTicks: 2,
  maxInflight: 256,
  maxBatchEntries: 64,
  maxBatchBytes: 1 << 20,
  preVote: true,
  checkQuorum: true,
};

export function raftOptions(id: PeerId, seed: number, overrides: Partial<RaftOptions> = {}): RaftOptions {
  return { ...DEFAULTS, id, random: seededRandom(seed), ...overrides };
}

// ---------------------------------------------------------------- entries

const enc = new TextEncoder();
const dec = new TextDecoder();

export function bytes(s: string): Uint8Array {
  return enc.encode(s);
}

export function text(b: Uint8Array): string {
  return dec.decode(b);
}

/** The configuration entry that makes `members` a cluster (Raft §6). */
export function configEntry(index: number, term: number, members: readonly PeerId[]): LogEntry {
  return { index, term, type: 'config', data: encodeConfiguration({ members: [...members].sort() }) };
}

export function command(index: number, term: number, data = `${index}@${term}`): LogEntry {
  return { index, term, type: 'command', data: bytes(data) };
}

/**
 * A log written as the paper's figures draw it: one term per index from 1. Entry 1 is
 * the configuration of `members` (so the peer may campaign), the rest are commands.
 */
export function logOfTerms(members: readonly PeerId[] | null, terms: readonly number[]): LogEntry[] {
  return terms.map((t, i) => (i === 0 && members !== null ? configEntry(1, t, members) : command(i + 1, t)));
}

/** The terms of a log, index 1 first, as the paper's figures draw it. */
export function termsOf(entries: readonly LogEntry[]): number[] {
  return entries.map((e) => e.term);
}

/** Every entry the peer holds, durable or not. */
export function logOf(r: Raft): LogEntry[] {
  return r.log.slice(r.log.firstIndex(), r.log.lastIndex() + 1);
}

// ---------------------------------------------------------------- messages

type Envelope = 'term' | 'from' | 'to';

export function appendEntries(
  m: Pick<AppendEntriesMessage, Envelope> & Partial<Omit<AppendEntriesMessage, 'type' | Envelope>>,
): AppendEntriesMessage {
  return {
    type: 'AppendEntries',
    prevLogIndex: 0,
    prevLogTerm: 0,
    entries: [],
    leaderCommit: 0,
    seq: 0,
    ...m,
  };
}

export function appendResponse(
  m: Pick<AppendEntriesResponseMessage, Envelope> &
    Partial<Omit<AppendEntriesResponseMessage, 'type' | Envelope>>,
): AppendEntriesResponseMessage {
  return {
    type: 'AppendEntriesResponse',
    success: true,
    matchIndex: 0,
    prevLogIndex: 0,
    conflictIndex: 0,
    conflictTerm: 0,
    seq: 0,
    ...m,
  };
}

export function requestVote(
  m: Pick<RequestVoteMessage, Envelope> & Partial<Omit<RequestVoteMessage, 'type' | Envelope>>,
): RequestVoteMessage {
  return { type: 'RequestVote', lastLogIndex: 0, lastLogTerm: 0, preVote: false, ...m };
}

export function voteResponse(
  m: Pick<RequestVoteResponseMessage, Envelope> &
    Partial<Omit<RequestVoteResponseMessage, 'type' | Envelope>>,
): RequestVoteResponseMessage {
  return { type: 'RequestVoteResponse', voteGranted: true, preVote: false, ...m };
}

/** The answer of a follower that accepts `m` in full (etcd's acceptAndReply). */
export function accept(
  m: AppendEntriesMessage,
  matchIndex = m.prevLogIndex + m.entries.length,
): AppendEntriesResponseMessage {
  return appendResponse({
    term: m.term,
    from: m.to,
    to: m.from,
    success: true,
    matchIndex,
    prevLogIndex: m.prevLogIndex,
    seq: m.seq,
  });
}

export function isAppend(m: RaftMessage): m is AppendEntriesMessage {
  return m.type === 'AppendEntries';
}
export function isAppendResponse(m: RaftMessage): m is AppendEntriesResponseMessage {
  return m.type === 'AppendEntriesResponse';
}
export function isVote(m: RaftMessage): m is RequestVoteMessage {
  return m.type === 'RequestVote';
}
export function isVoteResponse(m: RaftMessage): m is RequestVoteResponseMessage {
  return m.type === 'RequestVoteResponse';
}

export function appendsIn(msgs: readonly RaftMessage[], to?: PeerId): AppendEntriesMessage[] {
  return msgs.filter(isAppend).filter((m) => to === undefined || m.to === to);
}

// ---------------------------------------------------------------- durable storage

/** What a peer's LogStore would hold: exactly what was persisted, nothing more. */
export class DurableStore {
  hardState: HardState;
  entries: LogEntry[];
  writes = 0;

  constructor(hardState: HardState = { term: 0, votedFor: null }, entries: LogEntry[] = []) {
    this.hardState = { ...hardState };
    this.entries = entries.slice();
  }

  /** One atomic write, with LogStore's semantics: entries from `i` replace every stored entry at `i` or above. */
  write(rd: Pick<Ready, 'hardState' | 'entries'>): void {
    if (rd.hardState === undefined && rd.entries.length === 0) return;
    this.writes++;
    if (rd.hardState !== undefined) this.hardState = { ...rd.hardState };
    const first = rd.entries[0];
    if (first !== undefined) {
      const last = this.entries.length;
      if (first.index > last + 1)
        throw new Error(`store: write at ${first.index} leaves a gap after ${last}`);
      this.entries.length = first.index - 1;
      this.entries.push(...rd.entries);
    }
  }

  lastIndex(): number {
    return this.entries.length;
  }
}

// ---------------------------------------------------------------- a single peer, driven by hand

export interface PeerSetup {
  /** The configuration written at index 1 (term 1) unless `log` is given; null: unconfigured. */
  members?: readonly PeerId[] | null;
  /** The durable log at start; its entry 1 should be a configuration for the peer to campaign. */
  log?: LogEntry[];
  /** The durable hard state at start; by default the last log term and no vote. */
  hardState?: HardState;
  options?: Partial<RaftOptions>;
  seed?: number;
}

/** A Raft started from a durable store, as the runtime starts one from its LogStore. */
export function newRaft(id: PeerId, setup: PeerSetup = {}): { raft: Raft; store: DurableStore } {
  const members = setup.members === undefined ? ['a', 'b', 'c'] : setup.members;
  const log = setup.log ?? (members === null ? [] : [configEntry(1, 1, members)]);
  const hardState = setup.hardState ?? { term: log[log.length - 1]?.term ?? 0, votedFor: null };
  const store = new DurableStore(hardState, log);
  const raft = new Raft(raftOptions(id, setup.seed ?? seedOf(id), setup.options), {
    hardState: store.hardState,
    entries: store.entries.slice(),
  });
  return { raft, store };
}

function seedOf(id: PeerId): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * Emulates one turn of the runtime: takes the Ready, persists its hard state and entries
 * (into `store` when given), then reports it done. Returns the Ready so the test can read
 * the messages it would send and the entries it would apply.
 */
export function persistAndAdvance(raft: Raft, store?: DurableStore): Ready {
  const rd = raft.ready();
  store?.write(rd);
  raft.advance(rd);
  return rd;
}

/** Runs turns until the peer has no work; returns every message it would have sent. */
export function drain(raft: Raft, store?: DurableStore): RaftMessage[] {
  const out: RaftMessage[] = [];
  for (let i = 0; raft.hasReady(); i++) {
    if (i > 100) throw new Error('drain: the peer always has more work');
    out.push(...persistAndAdvance(raft, store).messages);
  }
  return out;
}

/** Ticks until `done()` holds; returns the ticks taken. Throws past `limit`, so a test fails instead of hanging. */
export function tickUntil(raft: Raft, done: () => boolean, limit = 1000): number {
  for (let n = 1; n <= limit; n++) {
    raft.tick();
    if (done()) return n;
  }
  throw new Error(`${raft.id}: the awaited state did not come within ${limit} ticks`);
}

/** Ticks until the peer leaves the follower role (starts a (pre-)election); returns the ticks taken. */
export function tickUntilCampaign(raft: Raft, limit = 1000): number {
  return tickUntil(raft, () => raft.role !== 'follower', limit);
}

/**
 * Makes a lone peer leader by hand: it campaigns, every other voter grants (pre-)votes,
 * and the turn is persisted. Returns the messages of its first turn as leader (the
 * no-op's AppendEntries).
 */
export function makeLeader(raft: Raft, store?: DurableStore): RaftMessage[] {
  tickUntilCampaign(raft);
  const voters = raft.config?.members ?? [];
  // Read through a call: each step may change the role, which TypeScript cannot see.
  const role = (): Role => raft.role;
  for (let round = 0; round < 2 && role() !== 'leader'; round++) {
    const pre = role() === 'precandidate';
    const term = pre ? raft.term + 1 : raft.term;
    drain(raft, store);
    for (const v of voters) {
      if (v === raft.id || role() === 'leader') continue;
      raft.step(voteResponse({ term, from: v, to: raft.id, voteGranted: true, preVote: pre }));
    }
  }
  if (role() !== 'leader') throw new Error(`${raft.id} did not become leader`);
  return drain(raft, store);
}

/**
 * Plays every follower of a lone leader that accepts all it is sent (optionally only the
 * followers `who` accepts; the rest hear nothing), turn after turn, until the leader has
 * nothing more to send. Returns every message the leader sent.
 */
export function acceptAll(
  leader: Raft,
  store?: DurableStore,
  who: (peer: PeerId) => boolean = () => true,
): RaftMessage[] {
  const all: RaftMessage[] = [];
  for (let i = 0; i < 1000; i++) {
    const msgs = drain(leader, store);
    all.push(...msgs);
    const appends = msgs.filter(isAppend).filter((m) => who(m.to));
    if (appends.length === 0) return all;
    for (const m of appends) leader.step(accept(m));
  }
  throw new Error('acceptAll: the leader never stops sending');
}

/**
 * A lone leader `a` of `members` at term 2 whose no-op every follower acknowledged: its
 * followers are in replicate state and its commitIndex is the no-op's index (2).
 */
export function steadyLeader(setup: PeerSetup = {}): { raft: Raft; store: DurableStore } {
  const { raft, store } = newRaft('a', { ...setup, options: { ...PAPER, ...setup.options } });
  for (const m of makeLeader(raft, store).filter(isAppend)) raft.step(accept(m));
  acceptAll(raft, store);
  if (raft.log.commitIndex !== raft.log.lastIndex())
    throw new Error('steadyLeader: the no-op did not commit');
  return { raft, store };
}

// ---------------------------------------------------------------- a cluster of peers and a network the test controls

export interface ClusterPeer {
  readonly id: PeerId;
  raft: Raft;
  readonly store: DurableStore;
  readonly options: RaftOptions;
  up: boolean;
  /** Committed entries handed to the state machine in this lifetime, in order. */
  applied: LogEntry[];
  /** Committed entries handed out over all lifetimes (each lifetime replays from 1). */
  lifetimes: LogEntry[][];
  /** Reads made safe (ReadIndex), in order. */
  reads: ReadState[];
  /** Answers to the requests this peer forwarded to a leader, in order. */
  forwarded: ForwardOutcome[];
}

/**
 * Persist before you promise (Figure 2): what a message vouches for must already be in
 * the durable store when the runtime sends it, i.e. after this Ready's write. A message
 * of a term the peer has since left (several inputs in one turn) vouches for nothing the
 * newer durable term does not already rule out, so only the current term is checked.
 */
function checkDurableBeforeSend(p: ClusterPeer, m: RaftMessage): void {
  const hs = p.store.hardState;
  const futureTerm =
    (m.type === 'RequestVote' && m.preVote) ||
    (m.type === 'RequestVoteResponse' && m.preVote && m.voteGranted);
  if (!futureTerm && hs.term < m.term)
    throw new Error(`${p.id} sends ${m.type} in term ${m.term} before persisting that term`);
  if (hs.term !== m.term) return;
  if (m.type === 'RequestVote' && !m.preVote && hs.votedFor !== p.id) {
    throw new Error(
      `${p.id} asks for votes in term ${m.term} before persisting its self-vote (${JSON.stringify(hs)})`,
    );
  }
  if (m.type === 'RequestVoteResponse' && m.voteGranted && !m.preVote && hs.votedFor !== m.to) {
    throw new Error(
      `${p.id} grants ${m.to} its vote in term ${m.term} before persisting it (${JSON.stringify(hs)})`,
    );
  }
  if (m.type === 'AppendEntriesResponse' && m.success) {
    for (let i = 1; i <= m.matchIndex; i++) {
      const durable = p.store.entries[i - 1];
      if (durable === undefined || durable.term !== p.raft.log.term(i))
        throw new Error(`${p.id} acknowledges up to ${m.matchIndex} but entry ${i} is not durable`);
    }
  }
}

export interface ClusterSetup {
  /** Configuration written at index 1 (term 1) of every peer; null leaves them unconfigured. Default: all ids. */
  members?: readonly PeerId[] | null;
  /** Per-peer durable logs at start (overrides `members` for that peer). */
  logs?: Partial<Record<PeerId, LogEntry[]>>;
  /** Per-peer durable hard states at start. */
  hardStates?: Partial<Record<PeerId, HardState>>;
  options?: Partial<RaftOptions>;
  seed?: number;
}

export type MessageFilter = (m: RaftMessage) => boolean;

/**
 * Peers plus a network under the test's control. Sent messages wait in `inflight` (in
 * send order) until `deliver` steps them into their receivers; the test may drop,
 * duplicate or reorder that array at will. A cut link or a crashed receiver loses the
 * message at delivery. Nothing ticks unless the test ticks.
 */
export class Cluster {
  readonly peers = new Map<PeerId, ClusterPeer>();
  /** Sent and not yet delivered, oldest first. */
  inflight: RaftMessage[] = [];
  /** Every message ever sent, oldest first. */
  readonly sent: RaftMessage[] = [];
  private readonly cut = new Set<string>();

  constructor(ids: readonly PeerId[], setup: ClusterSetup = {}) {
    const members = setup.members === undefined ? ids : setup.members;
    ids.forEach((id, i) => {
      const log = setup.logs?.[id] ?? (members === null ? [] : [configEntry(1, 1, members)]);
      const hardState = setup.hardStates?.[id] ?? { term: log[log.length - 1]?.term ?? 0, votedFor: null };
      const store = new DurableStore(hardState, log);
      const options = raftOptions(id, (setup.seed ?? 1) * 1000 + i, setup.options);
      const applied: LogEntry[] = [];
      this.peers.set(id, {
        id,
        raft: new Raft(options, { hardState: store.hardState, entries: store.entries.slice() }),
        store,
        options,
        up: true,
        applied,
        lifetimes: [applied],
        reads: [],
        forwarded: [],
      });
    });
  }

  peer(id: PeerId): ClusterPeer {
    const p = this.peers.get(id);
    if (p === undefined) throw new Error(`no peer ${id}`);
    return p;
  }

  raft(id: PeerId): Raft {
    return this.peer(id).raft;
  }

  ids(): PeerId[] {
    return [...this.peers.keys()];
  }

  // ------------------------------------------------------------ the runtime's turn

  /**
   * One turn of the runtime on `id`: persist, send, apply, advance. Checks on the way that
   * committed entries come in index order, once, and only once durable. Returns the
   * Ready, or undefined when the peer had no work (or is down).
   */
  process(id: PeerId): Ready | undefined {
    const p = this.peer(id);
    if (!p.up || !p.raft.hasReady()) return undefined;
    const rd = p.raft.ready();
    p.store.write(rd);
    for (const m of rd.messages) checkDurableBeforeSend(p, m);
    for (const m of rd.messages) {
      this.sent.push(m);
      this.inflight.push(m);
    }
    for (const e of rd.committed) {
      const expected = (p.applied[p.applied.length - 1]?.index ?? 0) + 1;
      if (e.index !== expected)
        throw new Error(`${id} handed out entry ${e.index} to apply, expected ${expected}`);
      const stored = p.store.entries[e.index - 1];
      if (stored === undefined || stored.term !== e.term)
        throw new Error(`${id} applies entry ${e.index} before it is durable`);
      p.applied.push(e);
    }
    p.reads.push(...rd.reads);
    p.forwarded.push(...rd.forwarded);
    p.raft.advance(rd);
    return rd;
  }

  /** A turn on every peer that has work; returns whether any had. */
  processAll(): boolean {
    let any = false;
    for (const id of this.peers.keys()) if (this.process(id) !== undefined) any = true;
    return any;
  }

  // ------------------------------------------------------------ the network

  /**
   * Steps every in-flight message that `filter` accepts (all by default) into its
   * receiver, oldest first; the rest stay in flight. Messages over a cut link or to a
   * crashed peer are lost. Returns how many were stepped.
   */
  deliver(filter: MessageFilter = () => true): number {
    const now = this.inflight;
    this.inflight = [];
    let n = 0;
    for (const m of now) {
      if (!filter(m)) {
        this.inflight.push(m);
        continue;
      }
      const to = this.peers.get(m.to);
      if (to === undefined || !to.up || this.cut.has(`${m.from}>${m.to}`)) continue;
      to.raft.step(m);
      n++;
    }
    return n;
  }

  /** Removes in-flight messages that `filter` accepts (all by default); returns them. */
  drop(filter: MessageFilter = () => true): RaftMessage[] {
    const dropped = this.inflight.filter(filter);
    this.inflight = this.inflight.filter((m) => !filter(m));
    return dropped;
  }

  /** Processes and delivers until no peer has work and nothing is in flight. Returns the rounds taken. */
  stabilize(limit = 10_000): number {
    for (let round = 0; round < limit; round++) {
      const worked = this.processAll();
      const delivered = this.deliver();
      if (!worked && delivered === 0 && this.inflight.length === 0) return round;
    }
    throw new Error(`cluster did not stabilize in ${limit} rounds`);
  }

  /** Cuts both directions between each of `a` and each of `b`. */
  cutLinks(a: readonly PeerId[], b: readonly PeerId[]): void {
    for (const x of a)
      for (const y of b)
        if (x !== y) {
          this.cut.add(`${x}>${y}`);
          this.cut.add(`${y}>${x}`);
        }
  }

  /** Cuts `id` off from every other peer. */
  isolate(id: PeerId): void {
    this.cutLinks([id], this.ids());
  }

  /** Splits the network into groups that cannot reach each other. */
  partition(...groups: PeerId[][]): void {
    for (let i = 0; i < groups.length; i++)
      for (let j = i + 1; j < groups.length; j++) this.cutLinks(groups[i]!, groups[j]!);
  }

  heal(): void {
    this.cut.clear();
  }

  // ------------------------------------------------------------ time, clients, crashes

  tick(id: PeerId, n = 1): void {
    const p = this.peer(id);
    if (!p.up) return;
    for (let i = 0; i < n; i++) p.raft.tick();
  }

  /** One tick on every live peer. */
  tickAll(): void {
    for (const id of this.peers.keys()) this.tick(id);
  }

  /** `n` rounds of: one tick on every live peer, then stabilize. */
  run(n: number): void {
    for (let i = 0; i < n; i++) {
      this.tickAll();
      this.stabilize();
    }
  }

  /** Ticks `id` alone until it starts a (pre-)election, then stabilizes. */
  campaign(id: PeerId): void {
    tickUntilCampaign(this.raft(id));
    this.stabilize();
  }

  propose(id: PeerId, ...data: string[]): ReturnType<Raft['propose']> {
    return this.raft(id).propose(data.map((d) => ({ type: 'command' as const, data: bytes(d) })));
  }

  /** Loses the peer's volatile state; what it persisted stays. */
  crash(id: PeerId): void {
    this.peer(id).up = false;
  }

  /** Starts the peer again from exactly what it persisted. */
  restart(id: PeerId): void {
    const p = this.peer(id);
    p.raft = new Raft(p.options, { hardState: { ...p.store.hardState }, entries: p.store.entries.slice() });
    p.up = true;
    p.applied = [];
    p.lifetimes.push(p.applied);
  }

  // ------------------------------------------------------------ queries

  /** The live peers that believe they lead, highest term first. */
  leaders(): ClusterPeer[] {
    return [...this.peers.values()]
      .filter((p) => p.up && p.raft.role === 'leader')
      .sort((x, y) => y.raft.term - x.raft.term);
  }

  roles(): Record<PeerId, Role> {
    return Object.fromEntries([...this.peers.values()].map((p) => [p.id, p.raft.role]));
  }

  terms(): Record<PeerId, number> {
    return Object.fromEntries([...this.peers.values()].map((p) => [p.id, p.raft.term]));
  }
}

// ---------------------------------------------------------------- seeded fault injection

/** Options of {@link chaos}. */
export interface ChaosOptions {
  /** Protocol options of every peer. */
  options?: Partial<RaftOptions>;
  /**
   * Membership changes (§6): a, b and c start as the voters, d and e as empty spares, and
   * the leader is asked for random changes (any non-empty subset of the five) and
   * leadership transfers among the client requests.
   */
  membership?: boolean;
  /** Called after every step. */
  trace?: (step: number, c: Cluster) => void;
}

/**
 * A seeded run of five peers on a hostile network: random drops, duplicates, reordering,
 * partitions, crashes and restarts, with client proposals and reads (and, with
 * `membership`, configuration changes and transfers). Checked after every step: the safety
 * properties of Figure 3 (Election Safety, Log Matching, Leader Completeness, State
 * Machine Safety), linearizable ReadIndex, and that every peer uses the latest
 * configuration of its log (§6, reverted on truncation). At the end the network heals and
 * the cluster must converge: one leader, out of any joint configuration, every voter up
 * to date. Throws, naming the seed, on any violation.
 */
export function chaos(
  seed: number,
  steps: number,
  { options = {}, membership = false, trace }: ChaosOptions = {},
): { commits: number; leaders: number; reads: number; changes: number } {
  const rnd = seededRandom(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const ids = ['a', 'b', 'c', 'd', 'e'];
  const c = new Cluster(
    ids,
    membership ? { seed, options, members: ['a', 'b', 'c'], logs: { d: [], e: [] } } : { seed, options },
  );
  const leaderOf = new Map<number, PeerId>();
  const committed = new Map<number, { entry: LogEntry; term: number }>();
  let proposals = 0;
  let changes = 0;
  const checkedUpTo = new WeakMap<LogEntry[], number>();
  // ReadIndex (dissertation §6.4): a read must see every entry committed before it was asked.
  let highestCommit = 0;
  let nextRead = 1;
  const readFloor = new Map<number, number>();
  const readsChecked = new WeakMap<ReadState[], number>();
  let readsServed = 0;

  const check = (): void => {
    for (const p of c.peers.values()) {
      highestCommit = Math.max(highestCommit, p.raft.log.commitIndex);
      for (let i = readsChecked.get(p.reads) ?? 0; i < p.reads.length; i++) {
        const rs = p.reads[i]!;
        const floor = readFloor.get(rs.context);
        if (floor === undefined)
          throw new Error(`seed ${seed}: ${p.id} released read ${rs.context} twice or never asked`);
        if (rs.index < floor)
          throw new Error(
            `seed ${seed}: ${p.id} released read ${rs.context} at index ${rs.index}, but ${floor} was committed before it was asked`,
          );
        readFloor.delete(rs.context);
        readsServed++;
      }
      readsChecked.set(p.reads, p.reads.length);
    }
    for (const p of c.peers.values()) {
      if (!p.up) continue;
      const r = p.raft;
      // Election Safety: at most one leader per term. A leader counts once its term is
      // durable: a single voter elects itself and may crash before persisting that term,
      // having sent nothing; that leadership never existed.
      if (r.role === 'leader' && p.store.hardState.term === r.term) {
        const known = leaderOf.get(r.term);
        if (known !== undefined && known !== p.id)
          throw new Error(`seed ${seed}: two leaders in term ${r.term}: ${known} and ${p.id}`);
        leaderOf.set(r.term, p.id);
      }
      // State Machine Safety: no two peers apply different entries at one index.
      for (let i = checkedUpTo.get(p.applied) ?? 0; i < p.applied.length; i++) {
        const e = p.applied[i]!;
        const prev = committed.get(e.index);
        if (prev === undefined) {
          committed.set(e.index, {
            entry: e,
            term: Math.max(...[...c.peers.values()].map((q) => q.raft.term)),
          });
        } else if (prev.entry.term !== e.term || text(prev.entry.data) !== text(e.data)) {
          throw new Error(
            `seed ${seed}: ${p.id} applied ${e.index}@${e.term}, another peer ${prev.entry.index}@${prev.entry.term}`,
          );
        }
      }
      checkedUpTo.set(p.applied, p.applied.length);
      // The configuration in use is the latest in the log (§6), reverted on truncation.
      const latest = latestConfiguration(logOf(r));
      if (JSON.stringify(latest?.config ?? null) !== JSON.stringify(r.config)) {
        throw new Error(
          `seed ${seed}: ${p.id} uses ${JSON.stringify(r.config)} but its log's latest is ${JSON.stringify(latest?.config)}`,
        );
      }
    }
    // Log Matching: same index and term, same log up to there.
    const logs = [...c.peers.values()].filter((p) => p.up).map((p) => logOf(p.raft));
    for (let i = 0; i < logs.length; i++) {
      for (let j = i + 1; j < logs.length; j++) {
        const x = logs[i]!;
        const y = logs[j]!;
        let k = Math.min(x.length, y.length) - 1;
        while (k >= 0 && x[k]!.term !== y[k]!.term) k--;
        for (let m = 0; m <= k; m++) {
          if (x[m]!.term !== y[m]!.term || text(x[m]!.data) !== text(y[m]!.data))
            throw new Error(`seed ${seed}: Log Matching broken at ${m + 1}`);
        }
      }
    }
    // Leader Completeness: a leader of a later term holds every committed entry.
    for (const p of c.leaders()) {
      for (const { entry, term } of committed.values()) {
        if (p.raft.term <= term) continue;
        const mine = p.raft.log.entry(entry.index);
        if (mine?.term !== entry.term)
          throw new Error(
            `seed ${seed}: leader ${p.id} of term ${p.raft.term} lacks committed entry ${entry.index}@${entry.term}`,
          );
      }
    }
  };

  for (let step = 0; step < steps; step++) {
    // Storms of faults alternate with calm spells, in which elections and commits can happen.
    const calm = Math.floor(step / 150) % 2 === 1;
    if (calm && step % 150 === 0) {
      c.heal();
      for (const id of ids) if (!c.peer(id).up) c.restart(id);
    }
    const x = rnd();
    const down = ids.filter((id) => !c.peer(id).up);
    if (x < 0.3) {
      c.tick(pick(ids));
    } else if (x < 0.55) {
      // Deliver a random part of what is in flight, in a random order, some of it twice.
      const batch = c.inflight.filter(() => rnd() < 0.5);
      const rest = c.inflight.filter((m) => !batch.includes(m));
      for (let i = batch.length - 1; i > 0; i--) {
        const j = Math.floor(rnd() * (i + 1));
        [batch[i], batch[j]] = [batch[j]!, batch[i]!];
      }
      const dups = batch.filter(() => rnd() < (calm ? 0 : 0.05));
      c.inflight = [...batch, ...dups];
      c.deliver();
      c.inflight = rest;
    } else if (x < 0.6) {
      if (!calm) c.drop(() => rnd() < 0.3);
    } else if (x < 0.8) {
      for (const id of ids) c.process(id);
    } else if (x < 0.9) {
      const [leader] = c.leaders();
      const n = 1 + Math.floor(rnd() * 3);
      if (leader === undefined) {
        // nobody to ask
      } else if (membership && rnd() < 0.25) {
        const members = ids.filter(() => rnd() < 0.6);
        if (members.length > 0 && leader.raft.proposeConfiguration(members) === 'ok') changes++;
      } else if (membership && rnd() < 0.1) {
        leader.raft.transferLeadership(pick(ids));
      } else if (rnd() < 0.3) {
        const context = nextRead++;
        readFloor.set(context, highestCommit);
        leader.raft.readIndex(context);
      } else {
        c.propose(leader.id, ...Array.from({ length: n }, () => `p${proposals++}`));
      }
    } else if (calm) {
      c.tick(pick(ids));
    } else if (x < 0.93) {
      // Crash a peer, the leader as often as not, at most two at a time so that a majority may remain.
      const [leader] = c.leaders();
      if (down.length < 2)
        c.crash(leader !== undefined && rnd() < 0.5 ? leader.id : pick(ids.filter((id) => c.peer(id).up)));
    } else if (x < 0.95) {
      if (down.length > 0) c.restart(pick(down));
    } else if (x < 0.97) {
      const shuffled = ids.slice().sort(() => rnd() - 0.5);
      const cut = 1 + Math.floor(rnd() * 2);
      c.heal();
      c.partition(shuffled.slice(0, cut), shuffled.slice(cut));
    } else {
      c.heal();
    }
    check();
    trace?.(step, c);
  }
  // Finally: everyone up, a healthy network, time passes: the cluster converges, out of any
  // joint configuration, with every voter up to date.
  for (const id of ids) if (!c.peer(id).up) c.restart(id);
  c.heal();
  const voters = (leader: ClusterPeer): PeerId[] => leader.raft.config?.members ?? ids;
  const settled = (): boolean => {
    const ls = c.leaders();
    const l = ls[0];
    if (ls.length !== 1 || l === undefined || l.raft.config?.outgoing !== undefined) return false;
    return (
      l.raft.log.commitIndex === l.raft.log.lastIndex() &&
      voters(l).every((id) => c.raft(id).log.commitIndex === l.raft.log.lastIndex())
    );
  };
  for (let i = 0; i < 600 && !settled(); i++) {
    c.run(1);
    check();
  }
  const [leader, ...others] = c.leaders();
  if (leader === undefined || others.length > 0 || !settled()) {
    throw new Error(
      `seed ${seed}: not settled after healing; leaders ${c
        .leaders()
        .map((p) => p.id)
        .join(',')}, config ${JSON.stringify(leader?.raft.config)}, roles ${JSON.stringify(c.roles())}`,
    );
  }
  const want = logOf(leader.raft);
  for (const id of voters(leader)) {
    const mine = logOf(c.raft(id)).slice(0, want.length);
    if (
      mine.length !== want.length ||
      mine.some((e, i) => e.term !== want[i]!.term || text(e.data) !== text(want[i]!.data))
    )
      throw new Error(`seed ${seed}: ${id}'s log differs from the leader's`);
  }
  return { commits: committed.size, leaders: leaderOf.size, reads: readsServed, changes };
}
