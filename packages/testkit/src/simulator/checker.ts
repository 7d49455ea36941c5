import {
  inspectPeer,
  msgpackCodec,
  type Codec,
  type Configuration,
  type HardState,
  type LogWrite,
  type PeerInspection,
  type RaftMessage,
} from '@raft/core';
import {
  decodeConfiguration,
  describeConfiguration,
  isInConfiguration,
  isVoter,
  sameConfiguration,
  voterSets,
} from './configuration.js';
import type { StoredEntry } from './disk.js';
import { chainHash, entryFingerprint } from './hash.js';
import { describeMessage } from './messages.js';
import type { Incarnation, World } from './world.js';

/** An entry known to be committed: some peer's commit index covered it. */
interface CommittedEntry {
  term: number;
  /**
   * The term in which it was first seen committed (the reporting peer's term). Leader
   * Completeness binds the leaders of every later term.
   */
  commitTerm: number;
  fp: number;
  type: string;
  /** For commands, the simulator's operation id carried in the command. */
  id: string | null;
  /** The incarnation that first reported it committed. */
  by: string;
}

/** Which groups of checks run. */
export interface CheckerOptions {
  /**
   * The "persist before you promise" checks at the boundary of the runtime: no message
   * reveals a term, vote or entry that is not durable yet, and every committed entry is
   * durable on a majority. Turning them off leaves only the checks of the Raft paper's
   * properties (and linearizability), to measure how the fault schedule alone exposes a
   * durability bug.
   * @default true
   */
  durability?: boolean;
}

/**
 * The safety invariants, checked after every event of a run (and at the hooks where the
 * runtime touches the world: sends, durable writes, applies):
 *
 * - Election Safety: at most one leader per term.
 * - Leader Append-Only: a leader's log only grows while it leads.
 * - Log Matching: logs that hold an entry with the same index and term hold the same
 *   entries before it (checked with a hash of every prefix).
 * - Leader Completeness: the leader of a term holds every entry committed in an earlier
 *   term (checked when it is elected, and when such an entry is found committed).
 * - State Machine Safety: one entry is committed at each index, ever; every peer applies
 *   the committed commands in index order, each once, and a command commits once.
 * - Terms never decrease and a peer never votes twice in a term, across restarts.
 * - Persist before you promise (see {@link CheckerOptions.durability}).
 * - Membership (§6): a peer campaigns only as a voter of its own configuration; a peer's
 *   configuration is the latest one in its log, or its snapshot's (so a committed
 *   configuration is never lost: Leader Completeness keeps its entry in every later
 *   leader's log or snapshot); and once a configuration that leaves out a peer that was
 *   in an earlier one commits, that peer never leads again.
 */
export class InvariantChecker {
  private readonly committed: CommittedEntry[] = [];
  private readonly leaders = new Map<number, string>();
  private readonly chains = new Map<string, number>();
  private readonly votes = new Map<string, Map<number, string>>();
  private readonly commandIndex = new Map<string, number>();
  /** What applying the command at each index produced (reply and state), first seen. */
  private readonly outcomes: (string | undefined)[] = [];
  /** The state (a deterministic rendering) after applying the command at each index, first seen. */
  private readonly states: (string | undefined)[] = [];
  /** The chain hash of the committed log's prefix ending at each index (position `i - 1`). */
  private readonly committedChain: number[] = [];
  /** Snapshot restores whose state was compared with the state recorded at their index. */
  restoresChecked = 0;
  private readonly codec: Codec = msgpackCodec();
  private readonly durability: boolean;
  /** Committed configuration entries, in index order. */
  private readonly configs: { index: number; config: Configuration; commitTerm: number }[] = [];
  /** Every peer named in a committed configuration so far. */
  private readonly configured = new Set<string>();
  /** Peers left out by a committed configuration after being in an earlier one: where, and in which term it was seen committed. */
  private readonly excluded = new Map<string, { index: number; commitTerm: number }>();
  /** The configuration of the peer being observed before this observation (a leader may commit under it, then append the next). */
  private configBefore: Configuration | null = null;
  /** Leaders seen committing a configuration that removes them (they must step down). */
  removedLeaders = 0;
  /** Peers removed by a committed configuration. */
  removals = 0;
  /** Removed peers that, not knowing their removal committed, led the configuration removing them to commit it. */
  removedLeadingOut = 0;
  /** Entries applied (commands), over all peers. */
  applied = 0;
  /** Called when a peer is first seen leading a term (the simulator's reactive faults listen). */
  onLeader: ((inc: Incarnation) => void) | null = null;
  /** Called when a leader's commit index advances. */
  onLeaderCommit: ((inc: Incarnation) => void) | null = null;
  /** Elections won by a peer whose configuration was joint (both voter sets' majorities needed). */
  jointElections = 0;
  /** Called when a leader's configuration becomes joint: it appended a change's joint entry (the nemesis listens). */
  onJoint: ((inc: Incarnation, config: Configuration) => void) | null = null;
  /** Called with every inspection of a peer, after the checks (the disruption oracle listens). */
  onObserve: ((inc: Incarnation, v: PeerInspection) => void) | null = null;

  constructor(
    private readonly world: World,
    options: CheckerOptions = {},
  ) {
    this.durability = options.durability ?? true;
  }

  /** The latest configuration known committed, with its index, or null before the bootstrap commits. */
  latestCommittedConfiguration(): { index: number; config: Configuration } | null {
    return this.configs[this.configs.length - 1] ?? null;
  }

  /** The committed configuration in force at `index` (the latest committed config entry at or before it). */
  private committedConfigurationAt(index: number): Configuration | undefined {
    for (let k = this.configs.length - 1; k >= 0; k--)
      if (this.configs[k]!.index <= index) return this.configs[k]!.config;
    return undefined;
  }

  /**
   * Whether the command of operation `id` was ever committed. A write whose client never
   * learned its outcome took effect exactly when it did: no peer applies a command that
   * is not committed, and every commit is seen here.
   */
  wasCommitted(id: string): boolean {
    return this.commandIndex.has(id);
  }

  /** The highest index known committed. */
  get commitIndex(): number {
    return this.committed.length;
  }

  /** The term of the leader of `term` seen, if any. */
  leaderOf(term: number): string | undefined {
    return this.leaders.get(term);
  }

  // ------------------------------------------------------------------ after every event

  /**
   * Inspects every running peer that something happened on during the event (the event's
   * own peer, and any peer whose runtime called the world: a timer, a send, a write).
   */
  afterEvent(): void {
    for (const node of this.world.nodes) {
      if (!node.dirty) continue;
      node.dirty = false;
      const inc = node.inc;
      if (inc === null || inc.peer === null) continue;
      this.observe(inc, inspectPeer(inc.peer));
    }
  }

  /** Checks one peer's state and learns what it committed. */
  observe(inc: Incarnation, v: PeerInspection): void {
    const { world } = this;
    const label = inc.label;
    const disk = inc.node.disk;
    if (v.term < inc.lastTerm)
      world.fail('term-monotonic', `${label}'s term went down from ${inc.lastTerm} to ${v.term}`);
    if (v.term < disk.hardState.term) {
      world.fail(
        'term-monotonic',
        `${label} runs in term ${v.term}, below the term ${disk.hardState.term} on its disk`,
      );
    }
    inc.lastTerm = v.term;
    if (v.votedFor !== null) {
      const bound = this.votes.get(inc.node.name)?.get(v.term);
      if (bound !== undefined && bound !== v.votedFor) {
        world.fail(
          'vote-once',
          `${label} holds a vote for ${v.votedFor} in term ${v.term}, but voted for ${bound} in that term before`,
        );
      }
    }
    this.configBefore = inc.config;
    const config = v.configuration;
    const configChanged = !sameConfiguration(inc.config, config);
    if (configChanged) {
      world.trace.add(world.sched.now, () => `state ${label} configuration ${describeConfiguration(config)}`);
      inc.config = config;
    }
    if (
      (v.role === 'candidate' || v.role === 'precandidate') &&
      (config === null || !isVoter(config, inc.node.name)) &&
      !this.mayStillCampaign(inc, v)
    ) {
      world.fail(
        'campaign-non-voter',
        `${label} campaigns (${v.role}, term ${v.term}) but is not a voter of its configuration ${describeConfiguration(config)}, and was not one before it either (or that configuration is committed)`,
      );
    }
    if (v.role !== inc.lastRole || v.leader !== inc.lastLeader) {
      const role = v.role;
      const leader = v.leader;
      world.trace.add(
        world.sched.now,
        () =>
          `state ${label} ${role} t${v.term}${leader !== null && role !== 'leader' ? ` (leader ${leader})` : ''}`,
      );
      inc.lastRole = role;
      inc.lastLeader = leader;
    }

    if (v.role === 'leader') {
      const other = this.leaders.get(v.term);
      if (other !== undefined && other !== inc.node.name) {
        world.fail('election-safety', `two leaders in term ${v.term}: ${other} and ${label}`);
      }
      this.leaders.set(v.term, inc.node.name);
      const ex = this.excluded.get(inc.node.name);
      if (ex !== undefined && (v.term > ex.commitTerm || v.commitIndex >= ex.index)) {
        // A removed peer that does not know its removal committed may still win an
        // election as a voter of the configuration before it, and lead the configuration
        // that removed it only to commit it and step down (§4.2.2). It never leads a
        // configuration it votes in, and never leads past its removal's commit.
        if (v.commitIndex >= ex.index || config === null || isVoter(config, inc.node.name)) {
          world.fail(
            'removed-leader',
            `${label} leads term ${v.term} (commit index ${v.commitIndex}, configuration ${describeConfiguration(config)}), but the configuration at ${ex.index}, which leaves it out, was committed in term ${ex.commitTerm}`,
          );
        } else if (inc.leadTerm !== v.term) {
          this.removedLeadingOut++;
          world.trace.add(
            world.sched.now,
            () =>
              `state ${label}, removed, leads term ${v.term} to commit its removal (its commit index ${v.commitIndex} < ${ex.index})`,
          );
        }
      }
      if (inc.leadTerm !== v.term) {
        inc.leadTerm = v.term;
        if (config !== null && voterSets(config).length > 1) this.jointElections++;
        this.checkCompleteness(inc, v, 1, this.committed.length);
        this.checkConfiguration(inc, v);
        this.onLeader?.(inc);
      } else if (
        v.lastLogIndex < inc.leadLast ||
        (inc.leadLast >= v.firstLogIndex && v.entryAt(inc.leadLast) !== inc.leadLastEntry)
      ) {
        world.fail(
          'leader-append-only',
          `${label}, leader of term ${v.term}, rewrote its log: it held entry ${inc.leadLast}, it now ends at ${v.lastLogIndex}` +
            (v.lastLogIndex >= inc.leadLast ? ` with another entry at ${inc.leadLast}` : ''),
        );
      }
      inc.leadLast = v.lastLogIndex;
      inc.leadLastEntry = v.entryAt(v.lastLogIndex);
    } else {
      inc.leadTerm = 0;
    }

    this.updateChain(inc, v);
    if (configChanged || v.firstLogIndex - 1 !== inc.configCheckedBase) this.checkConfiguration(inc, v);

    if (v.commitIndex < inc.commitSeen) {
      world.fail(
        'commit-monotonic',
        `${label}'s commit index went down from ${inc.commitSeen} to ${v.commitIndex}`,
      );
    }
    let seen = v.commitIndex;
    for (let i = inc.commitSeen + 1; i <= v.commitIndex; i++) {
      if (!this.learnCommitted(inc, v, i)) {
        seen = i - 1;
        break;
      }
    }
    if (seen > inc.commitSeen) {
      const from = inc.commitSeen;
      const to = seen;
      world.trace.add(world.sched.now, () => `state ${label} commit ${from} -> ${to}`);
      inc.commitSeen = to;
      if (v.role === 'leader') this.onLeaderCommit?.(inc);
    }
    if (configChanged && v.role === 'leader' && config !== null && voterSets(config).length > 1)
      this.onJoint?.(inc, config);
    this.onObserve?.(inc, v);
  }

  private checkCompleteness(inc: Incarnation, v: PeerInspection, from: number, to: number): void {
    for (let i = from; i <= to; i++) {
      const c = this.committed[i - 1]!;
      if (c.commitTerm >= v.term) continue;
      const e = v.entryAt(i);
      // Compacted: the leader's snapshot covers it (what a snapshot holds is checked when it is restored).
      if (e === undefined && i < v.firstLogIndex) continue;
      if (e === undefined || e.term !== c.term || entryFingerprint(e) !== c.fp) {
        this.world.fail(
          'leader-completeness',
          `${inc.label} leads term ${v.term} without entry ${i} (term ${c.term}), committed in term ${c.commitTerm} (seen at ${c.by}); ` +
            (e === undefined ? 'its log ends at ' + String(v.lastLogIndex) : `it holds term ${e.term} there`),
        );
        return;
      }
    }
  }

  /**
   * A peer left out by the latest configuration in its log may still campaign while that
   * configuration is not committed (as far as it knows), as a voter of the configuration
   * before it: it may be the removed leader that alone holds the new configuration, whose
   * vote the outgoing voters need and refuse to get (its log is longer).
   */
  private mayStillCampaign(inc: Incarnation, v: PeerInspection): boolean {
    let latest = 0;
    for (let i = v.lastLogIndex; i >= v.firstLogIndex && latest === 0; i--)
      if (v.entryAt(i)?.type === 'config') latest = i;
    if (latest === 0 || v.commitIndex >= latest) return false;
    let before: Configuration | undefined;
    for (let i = latest - 1; i >= v.firstLogIndex && before === undefined; i--) {
      const e = v.entryAt(i);
      if (e?.type === 'config') before = decodeConfiguration(e);
    }
    before ??= this.committedConfigurationAt(v.firstLogIndex - 1);
    return before !== undefined && isVoter(before, inc.node.name);
  }

  /**
   * A peer's configuration is the latest config entry in its log, committed or not (§6),
   * or, when its log holds none after its compaction point, the one its snapshot holds:
   * the committed configuration in force there.
   */
  private checkConfiguration(inc: Incarnation, v: PeerInspection): void {
    inc.configCheckedBase = v.firstLogIndex - 1;
    let expected: Configuration | undefined;
    let where = '';
    for (let i = v.lastLogIndex; i >= v.firstLogIndex; i--) {
      const e = v.entryAt(i);
      if (e?.type === 'config') {
        expected = decodeConfiguration(e);
        where = `its log's latest config entry (${i})`;
        break;
      }
    }
    if (expected === undefined) {
      const base = v.firstLogIndex - 1;
      if (base === 0 || base > this.committed.length) return;
      expected = this.committedConfigurationAt(base);
      where = `the committed configuration in force at its compaction point ${base}`;
      if (expected === undefined) return;
    }
    if (!sameConfiguration(expected, v.configuration)) {
      this.world.fail(
        'configuration',
        `${inc.label} (${v.role}, term ${v.term}) uses configuration ${describeConfiguration(v.configuration)}, but ${where} is ${describeConfiguration(expected)}`,
      );
    }
  }

  /** Log Matching, with a hash of each prefix: same (index, term), same prefix hash. */
  private updateChain(inc: Incarnation, v: PeerInspection): void {
    // A compacted log starts after its compaction point; every entry before it was
    // committed, so the prefix hash there is the committed log's.
    const base = v.firstLogIndex - 1;
    if (base !== inc.logBase) {
      inc.logBase = base;
      inc.logEntries = [];
      inc.logChain = [];
    }
    if (base > 0 && base > this.committedChain.length) return;
    const last = v.lastLogIndex - base;
    const cached = inc.logEntries;
    const chain = inc.logChain;
    // A log changes by truncating a suffix and appending: find the unchanged prefix.
    let j = Math.min(cached.length, last);
    while (j > 0 && v.entryAt(j + base) !== cached[j - 1]) j--;
    if (j === cached.length && j === last) return;
    if (j < cached.length) {
      cached.length = j;
      chain.length = j;
    }
    let h = j > 0 ? chain[j - 1]! : base > 0 ? this.committedChain[base - 1]! : 0;
    for (let k = j + 1; k <= last; k++) {
      const i = k + base;
      const e = v.entryAt(i)!;
      h = chainHash(h, entryFingerprint(e));
      cached.push(e);
      chain.push(h);
      const key = `${i}/${e.term}`;
      const seen = this.chains.get(key);
      if (seen === undefined) this.chains.set(key, h);
      else if (seen !== h) {
        this.world.fail(
          'log-matching',
          `${inc.label} holds entry ${i} of term ${e.term}, which another log holds too, after different entries`,
        );
      }
    }
  }

  /** Learns that entry `i` is committed; false when it cannot tell yet (compacted, and not seen committed elsewhere). */
  private learnCommitted(inc: Incarnation, v: PeerInspection, i: number): boolean {
    const { world } = this;
    const e = v.entryAt(i);
    if (e === undefined && i < v.firstLogIndex) {
      // Compacted into a snapshot: committed, and known here if seen on another peer.
      const known = this.committed[i - 1];
      if (known === undefined) return false;
      if (i === v.firstLogIndex - 1 && v.termAt(i) !== known.term) {
        world.fail(
          'state-machine-safety',
          `${inc.label} compacted its log at entry ${i} of term ${String(v.termAt(i))}, but ${known.by} committed one of term ${known.term} there`,
        );
      }
      return true;
    }
    if (e === undefined) {
      world.fail(
        'commit-in-log',
        `${inc.label}'s commit index ${v.commitIndex} is beyond its log (${v.firstLogIndex}..${v.lastLogIndex})`,
      );
      return true;
    }
    const fp = entryFingerprint(e);
    const known = this.committed[i - 1];
    if (known !== undefined) {
      if (known.term !== e.term || known.fp !== fp) {
        world.fail(
          'state-machine-safety',
          `${inc.label} committed entry ${i} of term ${e.term}, but ${known.by} committed another entry there, of term ${known.term}`,
        );
      }
      return true;
    }
    let id: string | null = null;
    if (e.type === 'command') {
      try {
        const cmd = this.codec.decode(e.data) as { id?: unknown };
        id = typeof cmd.id === 'string' ? cmd.id : null;
      } catch {
        id = null;
      }
      if (id !== null) {
        const before = this.commandIndex.get(id);
        if (before !== undefined)
          world.fail('exactly-once', `command ${id} committed twice: at ${before} and at ${i}`);
        this.commandIndex.set(id, i);
      }
    }
    this.committed.push({ term: e.term, commitTerm: v.term, fp, type: e.type, id, by: inc.label });
    this.committedChain.push(chainHash(i > 1 ? this.committedChain[i - 2]! : 0, fp));
    if (this.durability) this.checkDurableQuorum(inc, v, i, e.term, fp);
    if (e.type === 'config') {
      const config = decodeConfiguration(e);
      if (config === undefined)
        world.fail('configuration', `${inc.label} committed config entry ${i}, which holds no configuration`);
      else this.learnConfiguration(inc, v, i, config);
    }
    // Leaders of later terms must hold it already.
    for (const node of world.nodes) {
      const other = node.inc;
      if (other === null || other.peer === null || other === inc) continue;
      if (other.leadTerm > v.term) {
        const ov = inspectPeer(other.peer);
        if (ov.role === 'leader' && ov.term > v.term) this.checkCompleteness(other, ov, i, i);
      }
    }
    return true;
  }

  /**
   * A committed entry is durable on a majority of every voter set of the configuration it
   * was committed under: the reporting peer's (the leader that just committed it, nearly
   * always), or the one it had before this event (a leader that commits, then appends the
   * next configuration in the same turn).
   */
  private checkDurableQuorum(inc: Incarnation, v: PeerInspection, i: number, term: number, fp: number): void {
    const holders = new Set<string>();
    for (const node of this.world.nodes) if (node.disk.covers(i, term, fp)) holders.add(node.name);
    const candidates = [v.configuration, this.configBefore].filter((c): c is Configuration => c !== null);
    const majority = (set: readonly string[]): boolean =>
      set.filter((n) => holders.has(n)).length * 2 > set.length;
    const ok =
      candidates.length === 0
        ? majority(this.world.nodes.map((n) => n.name))
        : candidates.some((c) => voterSets(c).every(majority));
    if (!ok) {
      this.world.fail(
        'durable-quorum',
        `${inc.label} committed entry ${i} (term ${term}) while it is durable on ${holders.size} peer(s) [${[...holders].join(', ')}], ` +
          `not a majority of ${candidates.map(describeConfiguration).join(' or ') || 'the cluster'}`,
      );
    }
  }

  /** A configuration entry committed: peers of earlier configurations that it leaves out are removed for good. */
  private learnConfiguration(
    inc: Incarnation,
    v: PeerInspection,
    index: number,
    config: Configuration,
  ): void {
    const { world } = this;
    this.configs.push({ index, config, commitTerm: v.term });
    world.trace.add(
      world.sched.now,
      () =>
        `state configuration ${describeConfiguration(config)} at ${index} committed (seen at ${inc.label})`,
    );
    if (config.outgoing === undefined) {
      for (const name of this.configured) {
        if (isInConfiguration(config, name) || this.excluded.has(name)) continue;
        this.excluded.set(name, { index, commitTerm: v.term });
        this.removals++;
        if (this.leaders.get(v.term) === name) this.removedLeaders++;
        world.trace.add(world.sched.now, () => `state ${name} removed by the configuration at ${index}`);
      }
    }
    for (const name of [...config.members, ...(config.learners ?? []), ...(config.outgoing ?? [])])
      this.configured.add(name);
  }

  /** Whether a committed configuration left `name` out after it was in an earlier one. */
  isRemoved(name: string): boolean {
    return this.excluded.has(name);
  }

  // ------------------------------------------------------------------ hooks

  /** Every message a live incarnation sends. */
  onSend(inc: Incarnation, m: RaftMessage): void {
    const d = inc.node.disk.hardState;
    const preVote = (m.type === 'RequestVote' || m.type === 'RequestVoteResponse') && m.preVote;
    if (m.type === 'RequestVoteResponse' && !m.preVote && m.voteGranted) {
      if (this.durability && !(d.term > m.term || (d.term === m.term && d.votedFor === m.to))) {
        this.world.fail(
          'persist-before-send',
          `${inc.label} granted its vote to ${m.to} in term ${m.term} before persisting it (on disk: term ${d.term}, vote ${String(d.votedFor)})`,
        );
      }
      this.bindVote(inc.node.name, m.term, m.to);
    }
    if (!this.durability) return;
    if (!preVote && m.term > d.term) {
      this.world.fail(
        'persist-before-send',
        `${inc.label} sent ${describeMessage(m)} to ${m.to} in term ${m.term} while term ${d.term} is on its disk`,
      );
      return;
    }
    if (m.type === 'RequestVote' && !m.preVote && d.term === m.term && d.votedFor !== inc.node.name) {
      this.world.fail(
        'persist-before-send',
        `${inc.label} asked for votes in term ${m.term} before persisting its own vote`,
      );
    }
    if (m.type === 'InstallSnapshotResponse' && m.done) {
      // Done means the snapshot, or a log that already holds its last entry, is durable.
      const snap = inc.node.disk.snapshot;
      const held = inc.node.disk.entry(m.index);
      const mine = inc.peer === null ? undefined : inspectPeer(inc.peer).termAt(m.index);
      const inLog = held !== undefined && (mine === undefined || held.term === mine);
      if (!inLog && (snap === undefined || snap.meta.index < m.index)) {
        this.world.fail(
          'persist-before-send',
          `${inc.label} reported the snapshot at ${m.index} installed to ${m.to} before it was durable (its disk's snapshot: ${snap === undefined ? 'none' : String(snap.meta.index)}, its disk's log ${inc.node.disk.firstIndex()}..${inc.node.disk.lastIndex()})`,
        );
      }
    }
    if (m.type === 'AppendEntriesResponse' && m.success && m.matchIndex > 0 && inc.peer !== null) {
      const disk = inc.node.disk;
      const stored = disk.entry(m.matchIndex);
      const mine = inspectPeer(inc.peer).termAt(m.matchIndex);
      const durable =
        stored !== undefined
          ? mine === undefined || stored.term === mine
          : disk.snapshot !== undefined &&
            m.matchIndex <= disk.snapshot.meta.index &&
            (mine === undefined ||
              disk.termAt(m.matchIndex) === undefined ||
              disk.termAt(m.matchIndex) === mine);
      if (!durable) {
        this.world.fail(
          'persist-before-send',
          `${inc.label} acknowledged entries up to ${m.matchIndex} to ${m.to} before they were durable (its disk ends at ${inc.node.disk.lastIndex()}` +
            (stored !== undefined
              ? `, holding term ${stored.term} at ${m.matchIndex}, not ${String(mine)})`
              : ')'),
        );
      }
    }
  }

  /** Every write once durable. */
  onDurable(inc: Incarnation, write: LogWrite, before: HardState, removed: StoredEntry[]): void {
    const name = inc.node.name;
    const h = write.hardState;
    if (h !== undefined) {
      if (h.term < before.term)
        this.world.fail(
          'term-monotonic',
          `${inc.label} wrote term ${h.term} over term ${before.term} on its disk`,
        );
      else if (h.term === before.term && before.votedFor !== null && h.votedFor !== before.votedFor) {
        this.world.fail(
          'vote-once',
          `${inc.label} changed its vote on disk in term ${h.term} from ${before.votedFor} to ${String(h.votedFor)}`,
        );
      }
      if (h.votedFor !== null) this.bindVote(name, h.term, h.votedFor);
    }
    // A committed entry never leaves the log of a peer that had reached the term it was
    // committed in: only leaders of that term or later send to such a peer, and they all
    // hold the entry (Leader Completeness). A peer still in an earlier term may lose it to
    // an earlier term's leader (it has not heard of the commit), and may hold anything at
    // that index meanwhile: it is not part of the majority that committed it. The term
    // that counts is the one on disk before this write: one write may carry a truncation
    // by an old leader and, after it, a newer term learned in the same turn.
    const disk = inc.node.disk;
    for (const r of removed) {
      const c = this.committed[r.index - 1];
      if (c === undefined || c.term !== r.term || c.fp !== r.fp || before.term < c.commitTerm) continue;
      if (disk.covers(r.index, c.term, c.fp)) continue;
      const now = disk.entry(r.index);
      {
        this.world.fail(
          'committed-overwritten',
          `${inc.label}, in term ${before.term}, replaced entry ${r.index} (term ${c.term}, committed in term ${c.commitTerm}) on its disk ` +
            (now === undefined ? 'with nothing' : `with one of term ${now.term}`),
        );
        break;
      }
    }
  }

  /**
   * Every command a live incarnation applies. The k-th command an incarnation applies
   * must be the k-th committed command, by the operation id it carries. Returns the
   * index applied, or 0 when it is not known.
   */
  onApply(inc: Incarnation, command: unknown): number {
    if (!inc.alive || inc.peer === null) return 0;
    this.applied++;
    const v = inspectPeer(inc.peer);
    this.observe(inc, v);
    const id = typeof command === 'object' && command !== null ? (command as { id?: unknown }).id : undefined;
    let i = inc.appliedIndex + 1;
    while (i <= this.committed.length && this.committed[i - 1]!.type !== 'command') i++;
    if (i > this.committed.length) {
      this.world.fail(
        'apply-committed',
        `${inc.label} applied command ${String(id)}, but no committed command follows index ${inc.appliedIndex}`,
      );
      return 0;
    }
    const expected = this.committed[i - 1]!;
    if (expected.id !== id) {
      const at = typeof id === 'string' ? this.commandIndex.get(id) : undefined;
      this.world.fail(
        'apply-order',
        `${inc.label} applied command ${String(id)}${at !== undefined ? ` (committed at ${at})` : ''} where the next committed command is ${String(expected.id)} at index ${i}` +
          (at !== undefined && at <= inc.appliedIndex ? ': it applied an entry twice' : ''),
      );
      return 0;
    }
    if (v.lastApplied + 1 !== i) {
      this.world.fail(
        'apply-order',
        `${inc.label} applies entry ${i} while its lastApplied is ${v.lastApplied}`,
      );
    }
    inc.appliedIndex = i;
    return i;
  }

  /**
   * What applying entry `index` produced on a peer: the reply and the state after it.
   * A deterministic state machine fed the same commands in the same order produces the
   * same on every peer and in every incarnation.
   */
  onApplied(inc: Incarnation, index: number, reply: string, state: string): void {
    const outcome = `${reply} -> ${state}`;
    const first = this.outcomes[index];
    if (first === undefined) {
      this.outcomes[index] = outcome;
      this.states[index] = state;
    } else if (first !== outcome) {
      this.world.fail(
        'state-machine-safety',
        `${inc.label} applied entry ${index} with outcome ${outcome}, where other peers got ${first}`,
      );
    }
  }

  /**
   * A live incarnation restored its state machine from a snapshot at `index` (at boot, or
   * from the leader): its apply sequence goes on at `index + 1`, and the state restored
   * must be the state every peer had after applying `index` (after the last command at
   * or before it, as the first peer to apply that command recorded it).
   */
  onRestore(inc: Incarnation, index: number, state: string): void {
    if (index < inc.appliedIndex) {
      this.world.fail(
        'apply-order',
        `${inc.label} restored a snapshot at ${index} after applying entry ${inc.appliedIndex}`,
      );
      return;
    }
    if (index > this.committed.length) {
      // Everything in a snapshot is committed: the peer that took it had applied it.
      for (const node of this.world.nodes) {
        const other = node.inc;
        if (other !== null && other.peer !== null && other.alive)
          this.observe(other, inspectPeer(other.peer));
      }
    }
    let j = Math.min(index, this.committed.length);
    while (j > 0 && this.committed[j - 1]!.type !== 'command') j--;
    const expected = j === 0 ? '[]' : this.states[j];
    if (index > this.committed.length) {
      this.world.fail(
        'apply-committed',
        `${inc.label} restored a snapshot at ${index}, beyond every commit index seen (${this.committed.length})`,
      );
    } else if (expected !== undefined) {
      this.restoresChecked++;
      if (expected !== state) {
        this.world.fail(
          'state-machine-safety',
          `${inc.label} restored a snapshot at ${index} holding ${state}, where the state after ${j} was ${expected}`,
        );
      }
    }
    inc.appliedIndex = index;
  }

  private bindVote(name: string, term: number, candidate: string): void {
    let m = this.votes.get(name);
    if (m === undefined) this.votes.set(name, (m = new Map<number, string>()));
    const before = m.get(term);
    if (before !== undefined && before !== candidate) {
      this.world.fail('vote-once', `${name} voted for ${before} and then for ${candidate} in term ${term}`);
    }
    m.set(term, candidate);
  }
}
