/**
 * Seeded fault injection with membership changes (pure protocol, ../protocol-driver.ts's
 * Cluster): five peers, three of them the initial voters and two spares; the leader is
 * asked for random membership changes (any non-empty subset of the five) among client
 * proposals, while messages are dropped, duplicated and reordered, links cut and peers
 * crashed and restarted from what they persisted. Checked after every step: one leader
 * per term, Log Matching, State Machine Safety (no two peers apply different entries at
 * one index), Leader Completeness, and that every peer's configuration is the latest
 * config entry of its log. At the end the network heals: the leader of a configuration
 * must finish a joint change (never stuck in joint), and every voter converges.
 *
 * More seeds: RAFT_MEMBERSHIP_SEEDS=500 pnpm exec vitest run test/membership/membership-fuzz.test.ts
 */
import { describe, expect, it } from 'vitest';
import { latestConfiguration } from '../../src/protocol/membership.js';
import { seededRandom } from '../../src/random.js';
import type { LogEntry, PeerId } from '../../src/types.js';
import { Cluster, logOf, text } from '../protocol-driver.js';

const IDS = ['a', 'b', 'c', 'd', 'e'];

function fuzz(seed: number, steps: number): { commits: number; changes: number; finals: number } {
  const rnd = seededRandom(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const c = new Cluster(IDS, { seed, members: ['a', 'b', 'c'], logs: { d: [], e: [] } });
  const leaderOf = new Map<number, PeerId>();
  const committed = new Map<number, { entry: LogEntry; term: number }>();
  const checked = new WeakMap<LogEntry[], number>();
  let proposals = 0;
  let changes = 0;

  const check = (): void => {
    for (const p of c.peers.values()) {
      if (!p.up) continue;
      const r = p.raft;
      // A leader counts once its term is durable: a single voter elects itself and may
      // crash before persisting that term, having sent nothing; its leadership never existed.
      if (r.role === 'leader' && p.store.hardState.term === r.term) {
        const known = leaderOf.get(r.term);
        if (known !== undefined && known !== p.id) throw new Error(`seed ${seed}: two leaders in term ${r.term}: ${known} and ${p.id}`);
        leaderOf.set(r.term, p.id);
      }
      for (let i = checked.get(p.applied) ?? 0; i < p.applied.length; i++) {
        const e = p.applied[i]!;
        const prev = committed.get(e.index);
        if (prev === undefined) committed.set(e.index, { entry: e, term: Math.max(...[...c.peers.values()].map((q) => q.raft.term)) });
        else if (prev.entry.term !== e.term || text(prev.entry.data) !== text(e.data)) {
          throw new Error(`seed ${seed}: ${p.id} applied ${e.index}@${e.term}, another peer ${prev.entry.index}@${prev.entry.term}`);
        }
      }
      checked.set(p.applied, p.applied.length);
      // The configuration in use is the latest in the log (§6), reverted on truncation.
      const latest = latestConfiguration(logOf(r));
      if (JSON.stringify(latest?.config ?? null) !== JSON.stringify(r.config)) {
        throw new Error(`seed ${seed}: ${p.id} uses ${JSON.stringify(r.config)} but its log's latest is ${JSON.stringify(latest?.config)}`);
      }
    }
    const logs = [...c.peers.values()].filter((p) => p.up).map((p) => logOf(p.raft));
    for (let i = 0; i < logs.length; i++) {
      for (let j = i + 1; j < logs.length; j++) {
        const x = logs[i]!;
        const y = logs[j]!;
        let k = Math.min(x.length, y.length) - 1;
        while (k >= 0 && x[k]!.term !== y[k]!.term) k--;
        for (let m = 0; m <= k; m++) {
          if (x[m]!.term !== y[m]!.term || text(x[m]!.data) !== text(y[m]!.data)) throw new Error(`seed ${seed}: Log Matching broken at ${m + 1}`);
        }
      }
    }
    for (const p of c.leaders()) {
      for (const { entry, term } of committed.values()) {
        if (p.raft.term <= term) continue;
        if (p.raft.log.entry(entry.index)?.term !== entry.term) throw new Error(`seed ${seed}: leader ${p.id} of term ${p.raft.term} lacks committed ${entry.index}@${entry.term}`);
      }
    }
  };

  for (let step = 0; step < steps; step++) {
    const calm = Math.floor(step / 150) % 2 === 1;
    if (calm && step % 150 === 0) {
      c.heal();
      for (const id of IDS) if (!c.peer(id).up) c.restart(id);
    }
    const x = rnd();
    const down = IDS.filter((id) => !c.peer(id).up);
    if (x < 0.3) {
      c.tick(pick(IDS));
    } else if (x < 0.55) {
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
      for (const id of IDS) c.process(id);
    } else if (x < 0.9) {
      const [leader] = c.leaders();
      if (leader !== undefined) {
        if (rnd() < 0.25) {
          const members = IDS.filter(() => rnd() < 0.6);
          if (members.length > 0 && leader.raft.proposeConfiguration(members) === 'ok') changes++;
        } else if (rnd() < 0.1) {
          leader.raft.transferLeadership(pick(IDS));
        } else {
          c.propose(leader.id, `p${proposals++}`);
        }
      }
    } else if (calm) {
      c.tick(pick(IDS));
    } else if (x < 0.93) {
      if (down.length < 2) c.crash(pick(IDS.filter((id) => c.peer(id).up)));
    } else if (x < 0.95) {
      if (down.length > 0) c.restart(pick(down));
    } else if (x < 0.97) {
      const shuffled = IDS.slice().sort(() => rnd() - 0.5);
      c.heal();
      const cut = 1 + Math.floor(rnd() * 2);
      c.partition(shuffled.slice(0, cut), shuffled.slice(cut));
    } else {
      c.heal();
    }
    check();
  }
  // Heal: the cluster elects a leader, which leaves any joint configuration, and every voter converges.
  for (const id of IDS) if (!c.peer(id).up) c.restart(id);
  c.heal();
  const settled = (): boolean => {
    const ls = c.leaders();
    const l = ls[0];
    if (ls.length !== 1 || l === undefined || l.raft.config?.outgoing !== undefined) return false;
    const voters = l.raft.config?.members ?? [];
    return l.raft.log.commitIndex === l.raft.log.lastIndex() && voters.every((id) => c.raft(id).log.commitIndex === l.raft.log.lastIndex());
  };
  for (let i = 0; i < 600 && !settled(); i++) {
    c.run(1);
    check();
  }
  if (!settled()) {
    const l = c.leaders()[0];
    throw new Error(`seed ${seed}: not settled after healing; leaders ${c.leaders().map((p) => p.id).join(',')}, config ${JSON.stringify(l?.raft.config)}, roles ${JSON.stringify(c.roles())}`);
  }
  const l = c.leaders()[0]!;
  const finals = logOf(l.raft).filter((e) => e.type === 'config').length;
  return { commits: committed.size, changes, finals };
}

describe('membership: membership changes under faults (seeded)', () => {
  const seeds = Number(process.env.RAFT_MEMBERSHIP_SEEDS ?? 100);
  it(`safety holds and joint changes finish over ${seeds} seeded runs`, () => {
    let totalChanges = 0;
    let totalConfigs = 0;
    for (let seed = 1; seed <= seeds; seed++) {
      const r = fuzz(seed, 1500);
      totalChanges += r.changes;
      totalConfigs += r.finals;
    }
    expect(totalChanges).toBeGreaterThan(seeds); // the runs did exercise changes
    expect(totalConfigs).toBeGreaterThan(seeds);
  }, Math.max(10_000, seeds * 200));
});
