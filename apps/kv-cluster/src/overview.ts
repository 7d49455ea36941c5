import type { HistogramFigures, PeerId, RaftEvent, RaftMetrics } from '@raft/core';

/** How many seconds of history each node keeps (and the dashboard shows). */
export const HISTORY_SECONDS = 300;

/** One node's cumulative call figures at one second. */
interface Sample {
  /** Wall-clock second. */
  t: number;
  proposals: HistogramFigures;
  reads: HistogramFigures;
}

/** Per second: calls completed and the histogram of their latency (deltas, not cumulative). */
export interface SecondFigures {
  t: number;
  writes: HistogramFigures;
  reads: HistogramFigures;
}

/** An event of a node's timeline, its time on the wall clock. */
export type TimedEvent = RaftEvent & { node: PeerId; wallMs: number };

/** What one node reports of itself on its peer port (`GET /_raft/figures`). */
export interface NodeReport {
  id: PeerId;
  /** The node's wall clock (ms since the epoch) when it answered. */
  wallMs: number;
  figures: Omit<RaftMetrics, 'events'>;
  events: TimedEvent[];
  /** The last {@link HISTORY_SECONDS} seconds, oldest first. */
  history: SecondFigures[];
}

/** One member as the dashboard shows it. */
export interface MemberView {
  id: PeerId;
  /** Its peer URL, from the peer directory. */
  url: string;
  /** True when it answered this round. */
  up: boolean;
  error?: string;
  report?: NodeReport;
}

/** One point of the cluster's throughput and latency. */
export interface SeriesPoint {
  /** Wall-clock second. */
  t: number;
  writesPerSec: number;
  readsPerSec: number;
  /** Latency quantiles in ms, null when nothing completed that second. */
  writeP50Ms: number | null;
  writeP99Ms: number | null;
  readP99Ms: number | null;
}

/** What `GET /dashboard/api/cluster` answers: the whole cluster as the serving node sees it. */
export interface ClusterOverview {
  /** The node that answered. */
  self: PeerId;
  wallMs: number;
  /** The leader the most answering members agree on, or null. */
  leader: PeerId | null;
  members: MemberView[];
  series: SeriesPoint[];
  /** Elections, leaders, transfers, configurations and snapshots of every member, newest last. */
  events: TimedEvent[];
}

/** Samples this node's figures once a second and keeps {@link HISTORY_SECONDS} of them. */
export class History {
  private samples: Sample[] = [];
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(private readonly read: () => RaftMetrics) {
    this.sample();
    this.timer = setInterval(() => this.sample(), 1000);
    this.timer.unref();
  }

  private sample(): void {
    const f = this.read();
    const t = Math.floor(Date.now() / 1000);
    const last = this.samples.at(-1);
    const s = { t, proposals: f.proposals.latencySeconds, reads: f.reads.latencySeconds };
    if (last !== undefined && last.t === t) this.samples[this.samples.length - 1] = s;
    else this.samples.push(s);
    if (this.samples.length > HISTORY_SECONDS + 1)
      this.samples.splice(0, this.samples.length - HISTORY_SECONDS - 1);
  }

  /** Per-second deltas, oldest first. */
  seconds(): SecondFigures[] {
    const out: SecondFigures[] = [];
    for (let i = 1; i < this.samples.length; i++) {
      const a = this.samples[i - 1]!;
      const b = this.samples[i]!;
      out.push({ t: b.t, writes: minus(b.proposals, a.proposals), reads: minus(b.reads, a.reads) });
    }
    return out;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

function minus(b: HistogramFigures, a: HistogramFigures): HistogramFigures {
  return {
    bounds: b.bounds,
    counts: b.counts.map((c, i) => c - (a.counts[i] ?? 0)),
    count: b.count - a.count,
    sum: b.sum - a.sum,
  };
}

function plus(a: HistogramFigures, b: HistogramFigures): HistogramFigures {
  return {
    bounds: a.bounds,
    counts: a.counts.map((c, i) => c + (b.counts[i] ?? 0)),
    count: a.count + b.count,
    sum: a.sum + b.sum,
  };
}

/**
 * The `q` quantile of a histogram, interpolated linearly within its bucket (as
 * Prometheus's `histogram_quantile` does); null when it is empty. Observations above the
 * last bound count as the last bound.
 */
export function quantile(h: HistogramFigures, q: number): number | null {
  if (h.count <= 0) return null;
  const rank = q * h.count;
  let prevBound = 0;
  let prevCount = 0;
  for (let i = 0; i < h.bounds.length; i++) {
    const bound = h.bounds[i]!;
    const c = h.counts[i] ?? 0;
    if (c >= rank) {
      const inBucket = c - prevCount;
      return inBucket <= 0 ? bound : prevBound + ((bound - prevBound) * (rank - prevCount)) / inBucket;
    }
    prevBound = bound;
    prevCount = c;
  }
  return h.bounds.at(-1) ?? null;
}

/** This node's report, for its peers' dashboards. */
export function nodeReport(id: PeerId, figures: RaftMetrics, history: History): NodeReport {
  const wallMs = Date.now();
  const { events, ...rest } = figures;
  return {
    id,
    wallMs,
    figures: rest,
    events: events.map((e) => ({ ...e, node: id, wallMs: Math.round(wallMs - (figures.now - e.at)) })),
    history: history.seconds(),
  };
}

/** The key under which the same event, seen by several members, is shown once. */
function eventKey(e: TimedEvent): string {
  switch (e.kind) {
    case 'leader':
      return `leader ${e.term} ${e.leader}`;
    case 'configuration':
      return `configuration ${e.index}`;
    case 'transfer':
      return `transfer ${e.term} ${e.from} ${e.to}`;
    case 'election':
      return `election ${e.term} ${e.node}`;
    case 'snapshot':
      return `snapshot ${e.source} ${e.index} ${e.node}`;
  }
}

/** Merges the members' reports into the cluster's picture. */
export function overview(self: PeerId, members: MemberView[]): ClusterOverview {
  const reports = members.flatMap((m) => (m.up && m.report !== undefined ? [m.report] : []));
  // The leader: the one most answering members name (a deposed leader may still think it leads).
  const votes = new Map<PeerId, number>();
  for (const r of reports) {
    const l = r.figures.leader;
    if (l !== null && members.find((m) => m.id === l)?.up !== false) votes.set(l, (votes.get(l) ?? 0) + 1);
  }
  let leader: PeerId | null = null;
  for (const [id, n] of votes)
    if (leader === null || n > votes.get(leader)! || (n === votes.get(leader) && id < leader)) leader = id;

  const bySecond = new Map<number, { writes: HistogramFigures; reads: HistogramFigures }>();
  for (const r of reports)
    for (const s of r.history) {
      const cur = bySecond.get(s.t);
      bySecond.set(
        s.t,
        cur === undefined
          ? { writes: s.writes, reads: s.reads }
          : { writes: plus(cur.writes, s.writes), reads: plus(cur.reads, s.reads) },
      );
    }
  const ms = (v: number | null): number | null => (v === null ? null : Math.round(v * 100000) / 100);
  const series = [...bySecond.entries()]
    .sort(([a], [b]) => a - b)
    .slice(-HISTORY_SECONDS)
    .map(([t, s]) => ({
      t,
      writesPerSec: s.writes.count,
      readsPerSec: s.reads.count,
      writeP50Ms: ms(quantile(s.writes, 0.5)),
      writeP99Ms: ms(quantile(s.writes, 0.99)),
      readP99Ms: ms(quantile(s.reads, 0.99)),
    }));

  const seen = new Map<string, TimedEvent>();
  for (const r of reports)
    for (const e of r.events) {
      const k = eventKey(e);
      const prev = seen.get(k);
      if (prev === undefined || e.wallMs < prev.wallMs) seen.set(k, e);
    }
  const events = [...seen.values()].sort((a, b) => a.wallMs - b.wallMs).slice(-100);
  return { self, wallMs: Date.now(), leader, members, series, events };
}
