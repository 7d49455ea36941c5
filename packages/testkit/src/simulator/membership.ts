import { inspectPeer, RaftError, type Configuration } from '@raft/core';
import { isFinal } from './configuration.js';
import type { MembershipConfig } from './swarm.js';
import type { Incarnation, SimNode, World } from './world.js';

/** What the operator needs from the simulation. */
export interface OperatorHost {
  readonly world: World;
  /** The run's phase: changes start only during the faults; after the heal, only a pending one is finished. */
  currentPhase(): 'faults' | 'healed' | 'done';
  /** Starts a fresh peer (a new name, an empty disk) that waits to be reached by a leader. */
  addPeer(): SimNode;
  /** Stops a peer for good: gracefully (`stopPeer`) or killed. */
  retire(node: SimNode, how: 'stop' | 'kill', why: string): void;
  /** Cuts a peer off from every other until the heal. */
  detach(node: SimNode): void;
  /** The bootstrap configuration is committed: the cluster exists. */
  bootstrapped(): boolean;
}

/** The kinds of membership change. */
export type ChangeKind = 'add' | 'remove' | 'replace' | 'transfer';

/** What the operator did in a run. */
export interface MembershipCounts {
  /** Changes started, by kind. */
  issued: Record<ChangeKind, number>;
  /** Changes the cluster confirmed (`setConfiguration` or `transferLeadership` resolved), by kind. */
  completed: Record<ChangeKind, number>;
  /** Completed removals and replacements that removed the peer leading when the change started. */
  leaderRemovals: number;
  /** Replacements of a peer killed for good first (a wiped disk). */
  wiped: number;
  /** Completed changes that moved two or three peers at once. */
  multi: number;
  /** Changes given up during the faults after `giveUpMs` (they may still have completed). */
  abandoned: number;
  /** Calls retried (not leader, a change in progress, an election, outcome unknown). */
  retries: number;
  /** After the heal, the last change asked for was still pending and was issued again. */
  reissued: number;
  /** Peers started by changes. */
  peersAdded: number;
  /** Removed peers stopped, and kept running (of which cut off). */
  removedStopped: number;
  removedKept: number;
  removedDetached: number;
}

/** Zero counts. */
export function emptyMembershipCounts(): MembershipCounts {
  const kinds = (): Record<ChangeKind, number> => ({ add: 0, remove: 0, replace: 0, transfer: 0 });
  return {
    issued: kinds(),
    completed: kinds(),
    leaderRemovals: 0,
    wiped: 0,
    multi: 0,
    abandoned: 0,
    retries: 0,
    reissued: 0,
    peersAdded: 0,
    removedStopped: 0,
    removedKept: 0,
    removedDetached: 0,
  };
}

interface Change {
  kind: ChangeKind | 'reissue';
  /** The exact voter set asked for (sorted). */
  target: string[];
  /** The removed peer was the leader when the change started. */
  leaderAimed: boolean;
  /** Peers added, removed, or replaced by the change. */
  count: number;
  startedAt: number;
  /** Calls made; only the latest call's failure is acted on. */
  calls: number;
  /** The peer to call next (a leader named by a refusal), or null for a random member. */
  hint: SimNode | null;
  /** The incarnation serving the latest call: if it crashes, the call never settles. */
  servedBy: Incarnation | null;
}

/** Most voters the operator asks for. */
const MAX_VOTERS = 7;

/**
 * The operator: changes the cluster's membership during the fault phase, one change at a
 * time, as a person with `setConfiguration` and `transferLeadership` would. It adds fresh
 * peers (never a name used before), removes peers (the leader, on purpose, at the run's
 * rate), replaces one by a fresh one (sometimes after killing it: a wiped disk), and hands
 * leadership to a random voter. Each target is built from the previous target, never from
 * a peer's view, so a name left out once is never asked for again. A call that fails
 * without effect (not leader, a change in progress, an election) is retried, at the leader
 * the refusal names; one whose outcome is unknown (a timeout, a lost leadership) is
 * simply issued again (the same target is idempotent). After the heal, a change still
 * pending is issued again until it completes.
 */
export class Operator {
  /** The voters asked for last (sorted). */
  intended: string[];
  /**
   * The peers the operator calls: the voters of the last change known complete and of
   * every change asked for since (one of them is the cluster's configuration). Never a
   * peer whose removal is known complete: it may hold a stale configuration.
   */
  private contacts: Set<string>;
  /** The last change asked for is known complete (its `setConfiguration` resolved). */
  settled = true;
  readonly counts = emptyMembershipCounts();
  private change: Change | null = null;
  /** Names left out of a target: never asked for again. */
  private readonly dropped = new Set<string>();
  /** Removed peers already stopped or left running. */
  private readonly handled = new Set<string>();

  constructor(
    private readonly host: OperatorHost,
    private readonly cfg: MembershipConfig,
    initial: readonly string[],
  ) {
    this.intended = [...initial].sort();
    this.contacts = new Set(this.intended);
  }

  /** Starts the first change a little after the cluster boots. */
  start(): void {
    const { sched, rng } = this.host.world;
    sched.after(rng.range(100, 600), null, () => this.plan());
  }

  /** The peers the clients should call: the members asked for, those still in service. */
  members(): SimNode[] {
    const w = this.host.world;
    return this.intended.map((n) => w.node(n)).filter((n) => !n.retired);
  }

  /** Whether a membership change is being carried out. */
  get busy(): boolean {
    return this.change !== null;
  }

  /** A crash: a call in flight on that incarnation never settles; its outcome is unknown. */
  onCrash(inc: Incarnation): void {
    const c = this.change;
    if (c === null || c.servedBy !== inc) return;
    c.servedBy = null;
    c.calls++;
    if (c.kind === 'transfer') {
      this.change = null;
      this.next();
    } else this.retry(c, null, `${inc.label} crashed (outcome unknown)`);
  }

  /** The heal: a change left pending (or given up) is issued again until it completes. */
  onHeal(): void {
    this.ensureSettled();
  }

  // ------------------------------------------------------------------ planning

  private next(): void {
    const { world } = this.host;
    if (this.host.currentPhase() === 'faults')
      world.sched.after(world.rng.range(0, 2 * this.cfg.everyMs), null, () => this.plan());
    else this.ensureSettled();
  }

  private ensureSettled(): void {
    if (this.change !== null || this.settled || this.host.currentPhase() !== 'healed') return;
    this.counts.reissued++;
    this.begin({
      kind: 'reissue',
      target: this.intended.slice(),
      leaderAimed: false,
      count: 0,
      startedAt: this.host.world.sched.now,
      calls: 0,
      hint: null,
      servedBy: null,
    });
  }

  /** The leader as a watcher of the whole cluster sees it: the running peer leading the highest term. */
  private currentLeader(): SimNode | null {
    let best: SimNode | null = null;
    let bestTerm = -1;
    for (const node of this.host.world.nodes) {
      const peer = node.peer;
      if (peer === null || node.retired) continue;
      const v = inspectPeer(peer);
      if (v.role === 'leader' && v.term > bestTerm) {
        best = node;
        bestTerm = v.term;
      }
    }
    return best;
  }

  private plan(): void {
    const { world } = this.host;
    const { rng } = world;
    if (this.host.currentPhase() !== 'faults' || this.change !== null) return;
    if (!this.host.bootstrapped()) {
      world.sched.after(rng.range(50, 200), null, () => this.plan());
      return;
    }
    const voters = this.intended;
    const w = this.cfg.weights;
    const choices: [ChangeKind, number][] = [];
    if (voters.length < MAX_VOTERS) choices.push(['add', w.add]);
    if (voters.length > 1) choices.push(['remove', w.remove]);
    choices.push(['replace', w.replace]);
    if (voters.length > 1) choices.push(['transfer', w.transfer]);
    const total = choices.reduce((t, [, x]) => t + x, 0);
    if (total <= 0) return;
    let r = rng.range(0, total);
    let kind: ChangeKind = choices[choices.length - 1]![0];
    for (const [k, x] of choices) {
      if (r < x) {
        kind = k;
        break;
      }
      r -= x;
    }
    this.counts.issued[kind]++;
    if (kind === 'transfer') {
      this.transfer();
      return;
    }
    // How many peers to move: one, or two or three at the run's rate.
    let count = rng.chance(this.cfg.multi) ? rng.int(2, 3) : 1;
    if (kind === 'add') count = Math.min(count, MAX_VOTERS - voters.length);
    if (kind === 'remove') count = Math.min(count, voters.length - 1);
    if (kind === 'replace') count = Math.min(count, voters.length);
    let target = voters.slice();
    let leaderAimed = false;
    const victims: string[] = [];
    if (kind === 'remove' || kind === 'replace') {
      const leader = this.currentLeader();
      if (leader !== null && voters.includes(leader.name) && rng.chance(this.cfg.aimLeader)) {
        victims.push(leader.name);
        leaderAimed = true;
      }
      for (const n of rng.shuffle(voters))
        if (victims.length < count && !victims.includes(n)) victims.push(n);
      target = target.filter((n) => !victims.includes(n));
    }
    // The operator replaces peers whose disks are gone: they are dead before the change
    // starts (only while the rest of the last configuration known complete is a majority).
    if (
      kind === 'replace' &&
      this.settled &&
      (voters.length - victims.length) * 2 > voters.length &&
      rng.chance(this.cfg.wipe)
    ) {
      for (const v of victims) {
        this.counts.wiped++;
        this.host.retire(world.node(v), 'kill', 'its disk is wiped: the operator replaces it');
      }
    }
    if (kind === 'add' || kind === 'replace') {
      for (let i = 0; i < count; i++) {
        const fresh = this.host.addPeer();
        this.counts.peersAdded++;
        target.push(fresh.name);
      }
    }
    target.sort();
    for (const n of voters) if (!target.includes(n)) this.dropped.add(n);
    for (const n of target) this.contacts.add(n);
    this.intended = target;
    this.settled = false;
    this.begin({
      kind,
      target,
      leaderAimed,
      count,
      startedAt: world.sched.now,
      calls: 0,
      hint: null,
      servedBy: null,
    });
  }

  // ------------------------------------------------------------------ setConfiguration

  private begin(c: Change): void {
    const { world } = this.host;
    for (const n of c.target) {
      if (this.dropped.has(n))
        world.fail('operator', `the operator asked for ${n} again after leaving it out`);
    }
    this.change = c;
    world.trace.add(
      world.sched.now,
      () =>
        `conf  ${c.kind}: setConfiguration [${c.target.join(',')}]${c.leaderAimed ? ' (removes the leader)' : ''}`,
    );
    this.attempt(c);
  }

  private attempt(c: Change): void {
    const { world } = this.host;
    if (this.change !== c) return;
    let node = c.hint;
    c.hint = null;
    if (node === null || node.retired || node.inc === null) {
      // A member of the configuration before the change or after it, that has joined the
      // cluster (a fresh peer given setConfiguration would bootstrap a second cluster of
      // its own). Never a peer removed earlier: it may hold a stale configuration.
      const up = world.nodes.filter((n) => this.contacts.has(n.name) && configured(n));
      if (up.length === 0) {
        world.sched.after(world.rng.range(20, 100), null, () => this.attempt(c));
        return;
      }
      node = world.rng.pick(up);
    }
    const target = node;
    // The call reaches the peer's process as an event: a paused peer takes it later.
    world.sched.after(world.rng.range(0.1, 1), target, () => this.call(c, target));
  }

  private call(c: Change, node: SimNode): void {
    const { world } = this.host;
    if (this.change !== c) return;
    const peer = node.peer;
    if (peer === null || node.retired || !configured(node)) {
      this.retry(c, null, `${node.name} is down or not configured`);
      return;
    }
    const call = ++c.calls;
    c.servedBy = node.inc;
    const label = node.inc!.label;
    world.trace.add(
      world.sched.now,
      () => `conf  setConfiguration [${c.target.join(',')}] -> ${label} (call ${call})`,
    );
    peer.setConfiguration(c.target, { timeout: this.cfg.callTimeoutMs }).then(
      (config) => this.completed(c, config, label),
      (err: unknown) => {
        if (call === c.calls) {
          c.servedBy = null;
          this.failed(c, node, err);
        }
      },
    );
  }

  private completed(c: Change, config: Configuration, by: string): void {
    const { world } = this.host;
    if (this.change !== c) return;
    world.activity++;
    const got = [...config.members].sort();
    if (got.join(',') !== c.target.join(',') || !isFinal(config)) {
      world.fail(
        'operator',
        `setConfiguration [${c.target.join(',')}] at ${by} resolved with another configuration: ${JSON.stringify(config)}`,
      );
      return;
    }
    world.trace.add(
      world.sched.now,
      () => `conf  ${c.kind} done at ${by}: [${c.target.join(',')}] committed`,
    );
    this.change = null;
    this.settled = true;
    this.contacts = new Set(c.target);
    if (c.kind !== 'reissue') this.counts.completed[c.kind]++;
    if (c.count > 1) this.counts.multi++;
    if (c.leaderAimed) this.counts.leaderRemovals++;
    // Every peer out of the committed configuration is removed now: stop it, or keep it
    // running (cut off, or not) to show that it cannot disrupt the cluster.
    for (const node of world.nodes) {
      if (node.retired || !this.dropped.has(node.name) || this.handled.has(node.name)) continue;
      this.handled.add(node.name);
      if (world.rng.chance(this.cfg.keepRemoved)) {
        this.counts.removedKept++;
        if (world.rng.chance(this.cfg.detachRemoved)) {
          this.counts.removedDetached++;
          this.host.detach(node);
        }
        world.trace.add(world.sched.now, () => `conf  ${node.name}, removed, keeps running`);
      } else {
        this.counts.removedStopped++;
        this.host.retire(node, world.rng.chance(0.5) ? 'stop' : 'kill', 'removed from the cluster');
      }
    }
    this.next();
  }

  private failed(c: Change, node: SimNode, err: unknown): void {
    const { world } = this.host;
    if (this.change !== c) return;
    world.activity++;
    const code = RaftError.isInstance(err) ? err.code : 'not a RaftError';
    const e = err as { leader?: string | null; indeterminate?: boolean };
    switch (code) {
      case 'RAFT_NOT_LEADER': {
        if (e.indeterminate === true) {
          this.retry(c, null, 'leadership lost (outcome unknown)');
          break;
        }
        let hint: SimNode | null = null;
        if (typeof e.leader === 'string') {
          const named = world.nodes.find((n) => n.name === e.leader);
          if (named !== undefined && !named.retired) hint = named;
        }
        this.retry(c, hint, `not leader${e.leader ? `, leader ${e.leader}` : ''}`);
        break;
      }
      case 'RAFT_ELECTION_IN_PROGRESS':
        this.retry(c, null, 'election in progress');
        break;
      case 'RAFT_CONFIG_CHANGE_IN_PROGRESS':
        this.retry(c, node, 'a change is in progress');
        break;
      case 'RAFT_TIMEOUT':
      case 'RAFT_STOPPED':
        this.retry(c, null, `${code} (outcome unknown)`);
        break;
      default:
        world.fail(
          'operator',
          `setConfiguration [${c.target.join(',')}] failed with an unexpected error: ${code} ${err instanceof Error ? err.message : String(err)}`,
        );
    }
  }

  private retry(c: Change, hint: SimNode | null, why: string): void {
    const { world } = this.host;
    const { rng, sched } = world;
    this.counts.retries++;
    world.trace.add(sched.now, () => `conf  setConfiguration [${c.target.join(',')}]: ${why}`);
    if (this.host.currentPhase() === 'faults' && sched.now - c.startedAt > this.cfg.giveUpMs) {
      // Moves on: the next change starts from this target, and may replace it if it is
      // still waiting for a learner that cannot catch up.
      this.counts.abandoned++;
      world.trace.add(sched.now, () => `conf  gives up waiting for [${c.target.join(',')}]`);
      this.change = null;
      this.next();
      return;
    }
    c.hint = hint;
    const backoff = hint !== null ? rng.range(1, 20) : rng.range(20, 150);
    sched.after(backoff, null, () => this.attempt(c));
  }

  // ------------------------------------------------------------------ transferLeadership

  private transfer(): void {
    const { world } = this.host;
    const leader = this.currentLeader();
    const others = this.intended.filter((n) => n !== leader?.name && !world.node(n).retired);
    if (leader === null || others.length === 0) {
      this.next();
      return;
    }
    const target = world.rng.pick(others);
    const c: Change = {
      kind: 'transfer',
      target: [target],
      leaderAimed: false,
      count: 0,
      startedAt: world.sched.now,
      calls: 1,
      hint: null,
      servedBy: null,
    };
    this.change = c;
    world.sched.after(world.rng.range(0.1, 1), leader, () => {
      const peer = leader.peer;
      if (this.change !== c) return;
      if (peer === null) {
        this.change = null;
        this.next();
        return;
      }
      const label = leader.inc!.label;
      c.servedBy = leader.inc;
      world.trace.add(world.sched.now, () => `conf  transferLeadership ${label} -> ${target}`);
      peer.transferLeadership(target, { timeout: this.cfg.callTimeoutMs }).then(
        () => {
          if (this.change !== c) return;
          world.activity++;
          this.counts.completed.transfer++;
          world.trace.add(world.sched.now, () => `conf  transfer to ${target} done`);
          this.change = null;
          this.next();
        },
        (err: unknown) => {
          if (this.change !== c) return;
          world.activity++;
          const code = RaftError.isInstance(err) ? err.code : 'not a RaftError';
          if (
            ![
              'RAFT_NOT_LEADER',
              'RAFT_ELECTION_IN_PROGRESS',
              'RAFT_TIMEOUT',
              'RAFT_STOPPED',
              'RAFT_INVALID_ARGUMENT',
              'RAFT_CONFIG_CHANGE_IN_PROGRESS',
            ].includes(code)
          ) {
            world.fail(
              'operator',
              `transferLeadership to ${target} failed with an unexpected error: ${code} ${err instanceof Error ? err.message : String(err)}`,
            );
            return;
          }
          world.trace.add(world.sched.now, () => `conf  transfer to ${target} failed: ${code}`);
          this.change = null;
          this.next();
        },
      );
    });
  }
}

/** A running peer that holds a configuration (it has joined a cluster). */
function configured(node: SimNode): boolean {
  const peer = node.peer;
  return peer !== null && !node.retired && inspectPeer(peer).configuration !== null;
}
