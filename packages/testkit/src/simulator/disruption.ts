import type { PeerInspection, RaftMessage } from '@raft/core';
import { isInConfiguration, voterSets } from './configuration.js';
import type { Incarnation, SimNode, World } from './world.js';

/**
 * Virtual milliseconds for which a follower's links with the leader must have been up
 * (and the network free of loss and held-back messages, and both peers running, not
 * paused) before that follower counts as firmly with the leader: more than twice the
 * longest minimum election timeout at the slowest clock (150 ms / 0.8), so that the
 * follower has heard from the leader within its lease on vote requests, and the leader
 * has heard from it within a whole check-quorum period (a leader that lost touch with its
 * majority through message loss just before the heal legitimately steps down a little
 * after it).
 */
export const FIRM_MS = 400;

/** What the oracle needs from the run. */
export interface DisruptionHost {
  readonly world: World;
  /** The network has no partition, no detached peer, no loss and no long holds. */
  networkHealthy(): boolean;
  /** Virtual time since which the link between `a` and `b` has been up both ways (Infinity while cut). */
  linkUpSince(a: SimNode, b: SimNode): number;
  /** Virtual time since which the network has lost and held back no message (Infinity while it does). */
  lossFreeSince(): number;
  /** A membership change or transfer is being carried out. */
  operatorBusy(): boolean;
}

/** The leadership a window watches. */
interface Window {
  leader: SimNode;
  inc: Incarnation;
  term: number;
  openedAt: number;
  /** The followers firmly with the leader when the window opened. */
  firm: string[];
  /** Each peer's term when the window opened (its running term or its disk's, the higher). */
  termAtOpen: Map<SimNode, number>;
}

/**
 * The disruption oracle: on a healthy network, a stable leader keeps its leadership, and
 * no member of its configuration raises the term.
 *
 * A *window* opens, after any event, when all of this holds (and only in runs with both
 * pre-vote and check-quorum, which together are what keeps a rejoining peer from
 * disrupting: without pre-vote a peer cut off raises its term, without check-quorum's
 * lease a peer whose log is up to date wins a pre-vote right after a heal):
 * - the network is healthy: no partition, no detached peer, no loss, no held-back messages;
 * - no membership change or leadership transfer is being carried out;
 * - a peer L leads term T, is running and not paused, its configuration is final (not
 *   joint) and L votes in it;
 * - a majority of every voter set of that configuration is *firmly with L*: L itself, or
 *   a running, unpaused peer in term T that knows L as its leader, whose links with L have
 *   been up both ways, on a network without loss or holds, for {@link FIRM_MS}, and that
 *   has not restarted or resumed since (nor has L);
 * - no peer, running or on disk, holds a term above T that some peer campaigned in
 *   (observed as candidate or leader in it, or sending a real vote request for it). Such
 *   a peer, cut off as a candidate, legitimately makes L step down when it hears from it.
 *   A term above T that nobody campaigned in cannot come from a correct peer, so it does
 *   not excuse anything.
 *
 * This is the situation right after a partition heals (the majority side's leader), and
 * any later stretch of calm: a rejoining peer, a peer whose clock runs fast, a removed
 * peer that kept running must not unseat L. The window closes at any crash, pause,
 * partition, detachment, retirement, operator action or transfer campaign. While it is
 * open, the run fails with `disruption` if L stops leading term T, or if a peer of L's
 * configuration reaches a term above both T and the term it had when the window opened.
 */
export class DisruptionOracle {
  private window: Window | null = null;
  /** Terms some peer campaigned in (a real election, not a pre-vote). */
  private readonly campaignTerms = new Set<number>();
  /** The last inspection of each running incarnation. */
  private readonly views = new Map<Incarnation, PeerInspection>();
  /** When each peer last restarted or resumed (its lease on vote requests starts over). */
  private readonly disturbedAt = new Map<SimNode, number>();
  /** Windows opened, and for how many virtual ms in all (for the summary). */
  windows = 0;
  watchedMs = 0;

  constructor(
    private readonly host: DisruptionHost,
    private readonly enabled: boolean,
  ) {}

  /** A peer was inspected (after every event it took part in). */
  observe(inc: Incarnation, v: PeerInspection): void {
    if (!this.enabled) return;
    this.views.set(inc, v);
    if (v.role === 'candidate' || v.role === 'leader') this.campaignTerms.add(v.term);
    const w = this.window;
    if (w === null) return;
    const now = this.host.world.sched.now;
    if (inc === w.inc && (v.role !== 'leader' || v.term !== w.term)) {
      this.host.world.fail(
        'disruption',
        `${inc.label}, leader of term ${w.term} on a healthy network (window opened ${(now - w.openedAt).toFixed(1)} ms ago, firmly with it: ${w.firm.join(',') || 'none'}), lost its leadership: now ${v.role} in term ${v.term}`,
      );
      return;
    }
    const before = w.termAtOpen.get(inc.node) ?? 0;
    const config = w.inc.peer === null ? null : (this.views.get(w.inc)?.configuration ?? null);
    const member = config !== null && isInConfiguration(config, inc.node.name);
    if (member && v.term > w.term && v.term > before) {
      this.host.world.fail(
        'disruption',
        `${inc.label} (${v.role}) raised its term to ${v.term} while ${w.inc.label} leads term ${w.term} on a healthy network (window opened ${(now - w.openedAt).toFixed(1)} ms ago; its term then: ${before})`,
      );
    }
  }

  /** Every message a peer sends: a real vote request marks its term as campaigned in; a transfer's closes the window. */
  onSend(m: RaftMessage): void {
    if (!this.enabled) return;
    if (m.type === 'RequestVote' && !m.preVote) {
      this.campaignTerms.add(m.term);
      if (m.transfer === true) this.close();
    }
  }

  /** A peer restarted or resumed: its followers' lease starts over. */
  rejoined(node: SimNode): void {
    this.disturbedAt.set(node, this.host.world.sched.now);
  }

  /** A fault or an operator action: the network or the cluster is no longer calm. */
  close(): void {
    const w = this.window;
    if (w === null) return;
    this.watchedMs += this.host.world.sched.now - w.openedAt;
    this.window = null;
  }

  /** Right after an event ran, before its consequences are inspected: close the window if the run is no longer calm. */
  afterFault(): void {
    if (this.enabled && (!this.host.networkHealthy() || this.host.operatorBusy())) this.close();
  }

  /** After each event, once the peers are inspected: close the window if the run is no longer calm, else open one if it is. */
  afterEvent(): void {
    if (!this.enabled) return;
    const { host } = this;
    if (!host.networkHealthy() || host.operatorBusy()) {
      this.close();
      return;
    }
    const w = this.window;
    if (w !== null) {
      if (!w.inc.alive || w.leader.pausedUntil !== null || w.leader.inc !== w.inc) this.close();
      return;
    }
    this.tryOpen();
  }

  private tryOpen(): void {
    const world = this.host.world;
    const now = world.sched.now;
    let leader: SimNode | null = null;
    let lv: PeerInspection | null = null;
    for (const node of world.nodes) {
      const inc = node.inc;
      if (inc === null || inc.peer === null || node.pausedUntil !== null || node.retired) continue;
      const v = this.views.get(inc);
      if (v === undefined || v.role !== 'leader') continue;
      if (lv === null || v.term > lv.term) {
        leader = node;
        lv = v;
      }
    }
    if (leader === null || lv === null) return;
    const calmSince = this.host.lossFreeSince();
    if (now - Math.max(calmSince, this.disturbedAt.get(leader) ?? 0) < FIRM_MS) return;
    const config = lv.configuration;
    if (config === null || config.outgoing !== undefined || !config.members.includes(leader.name)) return;
    const term = lv.term;
    const firm: string[] = [];
    for (const set of voterSets(config)) {
      let count = 0;
      for (const name of set) {
        if (name === leader.name) {
          count++;
          continue;
        }
        const node = world.node(name);
        const inc = node.inc;
        if (inc === null || inc.peer === null || node.pausedUntil !== null) continue;
        const v = this.views.get(inc);
        if (v === undefined || v.term !== term || v.leader !== leader.name) continue;
        const since = Math.max(
          this.disturbedAt.get(node) ?? 0,
          this.host.linkUpSince(leader, node),
          calmSince,
        );
        if (now - since < FIRM_MS) continue;
        count++;
        if (!firm.includes(name)) firm.push(name);
      }
      if (2 * count <= set.length) return;
    }
    const termAtOpen = new Map<SimNode, number>();
    for (const node of world.nodes) {
      const inc = node.inc;
      const running = inc === null ? 0 : (this.views.get(inc)?.term ?? 0);
      const t = Math.max(running, node.disk.hardState.term);
      // A peer cut off as a candidate in a later term makes the leader step down when it
      // hears from it: that is Raft, not a disruption. A later term no one campaigned in is.
      if (t > term && this.campaignTerms.has(t)) return;
      termAtOpen.set(node, t);
    }
    this.windows++;
    const inc = leader.inc!;
    this.window = { leader, inc, term, openedAt: now, firm, termAtOpen };
    // The line is formatted only if a report needs it, maybe after the leader crashed
    // (leader.inc is null then): it names the incarnation that led.
    world.trace.add(
      now,
      () =>
        `check disruption window opens: ${inc.label} leads term ${term}, firmly with it: ${firm.join(',')}`,
    );
  }
}
