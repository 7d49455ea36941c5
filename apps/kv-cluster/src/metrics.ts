import type { HistogramFigures, RaftMetrics } from '@raft/core';
import type { WebSocketTransportMetrics } from '@raft/transport-ws';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type MetricType } from 'prom-client';
import type { PeerStatus } from '@raft/core';

/** What the metrics read at each scrape. */
export interface MetricsSources {
  /** The peer's status (counters) and figures (`metrics(peer)` of `@raft/core`). */
  status(): PeerStatus;
  figures(): RaftMetrics;
  /** The WebSocket transport's counters. */
  transport(): WebSocketTransportMetrics;
}

/** The routes `raft_kv_http_requests_total` names (a fixed set: no user input in labels). */
export type HttpRouteLabel =
  | 'kv'
  | 'cas'
  | 'status'
  | 'cluster'
  | 'cluster_members'
  | 'cluster_leader'
  | 'metrics'
  | 'health'
  | 'readyz'
  | 'dashboard'
  | 'forward'
  | 'peer_figures'
  | 'other';

/** The node's Prometheus registry: raft, transport and HTTP metrics, and the default process metrics. */
export interface NodeMetrics {
  readonly registry: Registry;
  /** Counts one answered HTTP request. */
  observeRequest(route: HttpRouteLabel, method: string, status: number, seconds: number): void;
}

const METHODS = new Set(['GET', 'PUT', 'POST', 'DELETE', 'HEAD']);

/**
 * A histogram whose buckets are read from figures kept elsewhere (the peer's), at each
 * scrape: the Prometheus shape of {@link HistogramFigures}. prom-client 15 renders the
 * text format from `getForPromString()` (and `get()` from it), so that is what this
 * overrides; the /metrics test checks the buckets, so a prom-client that renders
 * otherwise fails it.
 */
class FiguresHistogram extends Histogram {
  constructor(
    private readonly metricName: string,
    private readonly helpText: string,
    private readonly read: () => HistogramFigures,
  ) {
    super({ name: metricName, help: helpText, buckets: [...read().bounds], registers: [] });
  }
  async getForPromString(): ReturnType<Histogram['get']> {
    const f = this.read();
    const name = this.metricName;
    const values = f.bounds.map((le, i) => ({
      metricName: `${name}_bucket`,
      labels: { le },
      value: f.counts[i] ?? 0,
    }));
    values.push(
      { metricName: `${name}_bucket`, labels: { le: '+Inf' as unknown as number }, value: f.count },
      { metricName: `${name}_sum`, labels: {} as { le: number }, value: f.sum },
      { metricName: `${name}_count`, labels: {} as { le: number }, value: f.count },
    );
    // The registry prints `type` as is: the string 'histogram', as prom-client's own metrics have.
    return {
      name,
      help: this.helpText,
      type: 'histogram' as unknown as MetricType,
      values,
      aggregator: 'sum',
      collect: () => undefined,
    };
  }
}

/**
 * A counter or gauge whose values are read at each scrape from figures kept elsewhere
 * (a counter's value is the peer's own running total, so it never goes down).
 */
function mirror(
  Kind: typeof Counter | typeof Gauge,
  registry: Registry,
  name: string,
  help: string,
  labelNames: string[],
  read: () => [Record<string, string>, number][],
): void {
  if (Kind === Counter)
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const [labels, v] of read()) this.inc(labels, v);
      },
    });
  else
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const [labels, v] of read()) this.set(labels, v);
      },
    });
}

/**
 * Builds the registry `GET /metrics` serves. The raft and transport figures are read once
 * per scrape (nothing on the write path); the HTTP counters are incremented per request.
 * Names follow the Prometheus conventions: `raft_` prefix, `_total` counters, base units
 * (`_seconds`, `_bytes`). Each metric is documented in the app's README.
 */
export function nodeMetrics(id: string, src: MetricsSources): NodeMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // prom-client names these gauges `_total`, which only counters may end with (promtool
  // refuses them); `nodejs_active_handles` and `nodejs_active_requests` say the same.
  for (const name of [
    'nodejs_active_handles_total',
    'nodejs_active_requests_total',
    'nodejs_active_resources_total',
  ])
    registry.removeSingleMetric(name);

  // One read of the figures per scrape, shared by every metric below.
  let cache: {
    at: number;
    figures: RaftMetrics;
    status: PeerStatus;
    transport: WebSocketTransportMetrics;
  } | null = null;
  const now = (): NonNullable<typeof cache> => {
    const t = performance.now();
    if (cache === null || t - cache.at > 50)
      cache = { at: t, figures: src.figures(), status: src.status(), transport: src.transport() };
    return cache;
  };
  const f = (): RaftMetrics => now().figures;
  const counters = (): PeerStatus['metrics'] => now().status.metrics;
  const t = (): WebSocketTransportMetrics => now().transport;
  type Plain = [name: string, help: string, read: () => number];
  type Labelled = [name: string, help: string, label: string, read: () => [Record<string, string>, number][]];
  type Figures = [name: string, help: string, read: () => HistogramFigures];

  const gauges: Plain[] = [
    ['raft_term', 'The current term.', () => f().term],
    ['raft_has_leader', '1 when this node knows a leader, else 0.', () => (f().leader === null ? 0 : 1)],
    ['raft_commit_index', 'The highest log index known committed.', () => f().commitIndex],
    ['raft_applied_index', 'The highest log index applied to the state machine.', () => f().lastApplied],
    ['raft_last_log_index', 'The index of the last entry in the log.', () => f().lastLogIndex],
    ['raft_first_log_index', 'The first index still in the log (after compaction).', () => f().firstLogIndex],
    ['raft_snapshot_index', 'The index of the latest snapshot (0 when none).', () => f().snapshotIndex],
    ['raft_transport_connections', 'Authenticated peer connections open now.', () => t().connections],
  ];
  const plainCounters: Plain[] = [
    ['raft_leader_changes_total', 'Times this node came to know a new leader.', () => f().leaderChanges],
    [
      'raft_elections_started_total',
      'Elections this node started (pre-votes excluded).',
      () => f().electionsStarted,
    ],
    ['raft_elections_won_total', 'Elections this node won.', () => f().electionsWon],
    [
      'raft_proposals_total',
      'Writes proposed on this node (a client write on a follower counts on that follower, which forwards it).',
      () => f().proposals.total,
    ],
    [
      'raft_proposals_failed_total',
      'Writes that failed on this node (not leader, timeout, ...).',
      () => f().proposals.failed,
    ],
    ['raft_reads_total', 'Linearizable reads made on this node.', () => f().reads.total],
    ['raft_reads_failed_total', 'Linearizable reads that failed on this node.', () => f().reads.failed],
    [
      'raft_log_writes_total',
      'Durable log-store writes (one per loop turn with something to persist).',
      () => f().logStore.writes,
    ],
    ['raft_messages_sent_total', 'Raft messages handed to the transport.', () => counters().messagesSent],
    [
      'raft_messages_received_total',
      'Raft messages received and accepted.',
      () => counters().messagesReceived,
    ],
    [
      'raft_messages_dropped_total',
      'Raft messages refused by validation or addressed elsewhere.',
      () => counters().messagesDropped,
    ],
    [
      'raft_entries_applied_total',
      'Log entries applied to the state machine.',
      () => counters().entriesApplied,
    ],
    [
      'raft_state_machine_errors_total',
      'Commands whose handleWrite threw (they changed nothing).',
      () => counters().stateMachineErrors,
    ],
    [
      'raft_transport_connections_opened_total',
      'Authenticated peer connections established.',
      () => t().connectionsOpened,
    ],
    [
      'raft_transport_reconnects_total',
      'Dials made to retry after a failed dial or a lost connection.',
      () => t().reconnects,
    ],
    ['raft_transport_dial_failures_total', 'Dials that failed before the handshake.', () => t().dialFailures],
    ['raft_transport_messages_sent_total', 'Messages written to peer connections.', () => t().messagesSent],
    [
      'raft_transport_sent_bytes_total',
      'Bytes of the messages written (MessagePack frames).',
      () => t().bytesSent,
    ],
    ['raft_transport_messages_received_total', 'Messages delivered to the peer.', () => t().messagesReceived],
    ['raft_transport_received_bytes_total', 'Bytes of the data frames received.', () => t().bytesReceived],
    [
      'raft_transport_malformed_closes_total',
      'Connections closed for too many malformed frames.',
      () => t().malformedCloses,
    ],
    [
      'raft_transport_ping_timeouts_total',
      'Connections terminated because they stopped answering pings.',
      () => t().pingTimeouts,
    ],
  ];
  const bySource = (taken: number, installed: number): [Record<string, string>, number][] => [
    [{ source: 'taken' }, taken],
    [{ source: 'installed' }, installed],
  ];
  const labelledCounters: Labelled[] = [
    [
      'raft_snapshots_total',
      'Snapshots taken here or installed from a leader.',
      'source',
      () => bySource(f().snapshots.taken, f().snapshots.installed),
    ],
    [
      'raft_snapshot_bytes_total',
      'Bytes of the snapshots taken or installed.',
      'source',
      () => bySource(f().snapshots.bytesTaken, f().snapshots.bytesInstalled),
    ],
    [
      'raft_transport_handshakes_refused_total',
      'Peer handshakes refused, by reason.',
      'reason',
      () => Object.entries(t().refused).map(([reason, v]) => [{ reason }, v]),
    ],
    [
      'raft_transport_dropped_messages_total',
      'Messages the transport dropped, by reason.',
      'reason',
      () => Object.entries(t().dropped).map(([reason, v]) => [{ reason }, v]),
    ],
  ];
  const perFollower =
    (read: (x: RaftMetrics['followers'][number]) => number | null) =>
    (): [Record<string, string>, number][] =>
      f().followers.flatMap((x) => {
        const v = read(x);
        return v === null ? [] : [[{ follower: x.peer }, v]];
      });
  const loop = (): [Record<string, string>, number][] => {
    const d = f().eventLoopDelay;
    if (d === null) return [];
    return Object.entries({ mean: d.meanMs, p50: d.p50Ms, p99: d.p99Ms, max: d.maxMs }).map(([stat, ms]) => [
      { stat },
      ms / 1000,
    ]);
  };
  const labelledGauges: Labelled[] = [
    ['raft_info', 'Always 1; the peer id of this node as a label.', 'peer', () => [[{ peer: id }, 1]]],
    [
      'raft_role',
      '1 for the role this node has now, 0 for the others.',
      'role',
      () => (['follower', 'candidate', 'leader'] as const).map((r) => [{ role: r }, f().role === r ? 1 : 0]),
    ],
    [
      'raft_follower_lag_entries',
      'On the leader: log entries a follower lacks.',
      'follower',
      perFollower((x) => x.lagEntries),
    ],
    [
      'raft_follower_last_ack_age_seconds',
      'On the leader: seconds since a follower last answered AppendEntries or InstallSnapshot.',
      'follower',
      perFollower((x) => (x.msSinceAck === null ? null : x.msSinceAck / 1000)),
    ],
    [
      'raft_follower_inflight_messages',
      'On the leader: unacknowledged AppendEntries in flight to a follower.',
      'follower',
      perFollower((x) => x.inflight),
    ],
    [
      'raft_follower_inflight_limit_messages',
      'On the leader: the in-flight window (maxInflight) per follower.',
      'follower',
      perFollower((x) => x.maxInflight),
    ],
    [
      'raft_event_loop_delay_seconds',
      'Event-loop delay of this process over the last window (mean, p50, p99, max).',
      'stat',
      loop,
    ],
  ];
  const histograms: Figures[] = [
    [
      'raft_proposal_duration_seconds',
      'Seconds from a write to its commit and apply, successful writes.',
      () => f().proposals.latencySeconds,
    ],
    [
      'raft_read_duration_seconds',
      'Seconds from a linearizable read to its answer, successful reads.',
      () => f().reads.latencySeconds,
    ],
    [
      'raft_log_write_entries',
      'Entries appended per durable log-store write.',
      () => f().logStore.entriesPerWrite,
    ],
    [
      'raft_log_write_duration_seconds',
      'Seconds each durable log-store write (append and fsync) took.',
      () => f().logStore.writeSeconds,
    ],
    [
      'raft_snapshot_duration_seconds',
      'Seconds to serialize (taken) or restore (installed) a snapshot.',
      () => f().snapshots.durationSeconds,
    ],
  ];

  for (const [name, help, read] of gauges) mirror(Gauge, registry, name, help, [], () => [[{}, read()]]);
  for (const [name, help, read] of plainCounters)
    mirror(Counter, registry, name, help, [], () => [[{}, read()]]);
  for (const [name, help, label, read] of labelledGauges) mirror(Gauge, registry, name, help, [label], read);
  for (const [name, help, label, read] of labelledCounters)
    mirror(Counter, registry, name, help, [label], read);
  for (const [name, help, read] of histograms)
    registry.registerMetric(new FiguresHistogram(name, help, read));

  const requests = new Counter({
    name: 'raft_kv_http_requests_total',
    help: 'HTTP requests answered, by route, method and status code.',
    labelNames: ['route', 'method', 'code'] as const,
    registers: [registry],
  });
  const durations = new Histogram({
    name: 'raft_kv_http_request_duration_seconds',
    help: 'Seconds to answer an HTTP request, by route.',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  return {
    registry,
    observeRequest(route, method, status, seconds) {
      requests.inc({ route, method: METHODS.has(method) ? method : 'other', code: String(status) });
      durations.observe({ route }, seconds);
    },
  };
}
