/**
 * The cluster dashboard: polls `GET /dashboard/api/cluster` on the node that served the
 * page (which asks every member on its peer port) twice a second, and draws the members,
 * the leader, throughput and latency, and the timeline. Plain DOM and SVG, no library.
 */
import type { ClusterOverview, MemberView, SeriesPoint, TimedEvent } from '../src/overview.js';

const POLL_MS = 500;
const REQUEST_TIMEOUT_MS = 1500;

function $(id: string): HTMLElement {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`#${id} is missing`);
  return el;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag: string, attrs: Record<string, string | number>): SVGElement {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

const fmt = (n: number | null | undefined): string => (n === null || n === undefined ? '—' : String(n));

function renderMembers(o: ClusterOverview): void {
  const leaderReport = o.members.find((m) => m.id === o.leader)?.report;
  const followers = new Map((leaderReport?.figures.followers ?? []).map((f) => [f.peer, f]));
  const rows = o.members.map((m: MemberView) => {
    const f = m.report?.figures;
    const lag = followers.get(m.id);
    const isLeader = m.up && f?.role === 'leader';
    const cls = !m.up ? 'down' : f?.leader === null ? 'noleader' : '';
    const health = m.up ? (f?.leader === null ? 'up, no leader' : 'up') : `down (${m.error ?? 'no answer'})`;
    const role = m.up && f !== undefined ? f.role : 'unknown';
    const tr = el(
      'tr',
      { 'data-member': m.id, 'data-state': m.up ? 'up' : 'down', 'data-role': role, class: cls },
      el(
        'td',
        {},
        el('strong', {}, m.id),
        m.id === o.self ? el('span', { class: 'muted' }, ' (this node)') : '',
      ),
      el('td', { class: 'health' }, el('span', { class: 'dot' }), health),
      el('td', {}, el('span', { class: `role ${role}` }, role)),
      el('td', {}, fmt(f?.term)),
      el('td', {}, fmt(f?.commitIndex)),
      el('td', {}, fmt(f?.lastApplied)),
      el('td', {}, fmt(f?.lastLogIndex)),
      el('td', {}, fmt(f?.snapshotIndex)),
      el('td', {}, isLeader ? 'leader' : lag === undefined ? '—' : String(lag.lagEntries)),
      el('td', {}, lag?.msSinceAck == null ? '—' : `${Math.round(lag.msSinceAck)} ms ago`),
      el('td', {}, lag === undefined ? '—' : `${lag.inflight}/${lag.maxInflight}`),
    );
    return tr;
  });
  $('members')
    .querySelector('tbody')!
    .replaceChildren(...rows);
}

/** Draws series as polylines on a 600×180 SVG, with a 0..max scale and a time axis. */
function chart(
  id: string,
  points: SeriesPoint[],
  lines: { pick: (p: SeriesPoint) => number | null; color: string }[],
): void {
  const root = $(id);
  const W = 600;
  const H = 180;
  const L = 44;
  const B = 20;
  const now = Math.floor(Date.now() / 1000);
  const t0 = now - 300;
  let max = 0;
  for (const p of points) for (const l of lines) max = Math.max(max, l.pick(p) ?? 0);
  max = niceCeil(max);
  const x = (t: number): number => L + ((t - t0) / 300) * (W - L - 4);
  const y = (v: number): number => H - B - (v / max) * (H - B - 8);
  const nodes: SVGElement[] = [];
  for (const frac of [0, 0.5, 1]) {
    nodes.push(svg('line', { class: 'grid', x1: L, x2: W - 4, y1: y(max * frac), y2: y(max * frac) }));
    const label = svg('text', { x: L - 6, y: y(max * frac) + 4, 'text-anchor': 'end' });
    label.textContent = String(Math.round(max * frac * 100) / 100);
    nodes.push(label);
  }
  for (const [t, text] of [
    [t0, '−5 min'],
    [now - 150, '−2.5 min'],
    [now, 'now'],
  ] as const) {
    const label = svg('text', {
      x: x(t),
      y: H - 4,
      'text-anchor': t === t0 ? 'start' : t === now ? 'end' : 'middle',
    });
    label.textContent = text;
    nodes.push(label);
  }
  for (const l of lines) {
    const pts = points
      .filter((p) => p.t >= t0 && l.pick(p) !== null)
      .map((p) => `${x(p.t).toFixed(1)},${y(l.pick(p)!).toFixed(1)}`);
    if (pts.length > 0)
      nodes.push(
        svg('polyline', { points: pts.join(' '), fill: 'none', stroke: l.color, 'stroke-width': 1.6 }),
      );
  }
  root.replaceChildren(...nodes);
}

function niceCeil(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function describe(e: TimedEvent): string {
  switch (e.kind) {
    case 'election':
      return `${e.node} started an election for term ${e.term}`;
    case 'leader':
      return `${e.leader} leads term ${e.term}`;
    case 'transfer':
      return `${e.from} hands leadership to ${e.to} (term ${e.term})`;
    case 'configuration':
      return `configuration at ${e.index}: ${e.members.join(', ')}${e.learners ? ` + learners ${e.learners.join(', ')}` : ''}`;
    case 'snapshot':
      return `${e.node} ${e.source} a snapshot at ${e.index} (${(e.bytes / 1024).toFixed(1)} KiB)`;
  }
}

function renderTimeline(events: TimedEvent[]): void {
  const items = [...events]
    .reverse()
    .map((e) =>
      el(
        'li',
        { 'data-kind': e.kind },
        el('time', {}, new Date(e.wallMs).toLocaleTimeString()),
        el('span', { class: `kind ${e.kind}` }, e.kind),
        describe(e),
      ),
    );
  $('timeline').replaceChildren(...items);
}

function render(o: ClusterOverview): void {
  const leader = $('leader');
  leader.textContent = o.leader ?? 'none';
  leader.dataset['leader'] = o.leader ?? '';
  const terms = o.members.flatMap((m) => (m.report ? [m.report.figures.term] : []));
  $('term').textContent = terms.length > 0 ? String(Math.max(...terms)) : '—';
  $('self').textContent = o.self;
  $('updated').textContent = `updated ${new Date(o.wallMs).toLocaleTimeString()}`;
  renderMembers(o);
  const css = getComputedStyle(document.documentElement);
  const color = (v: string): string => css.getPropertyValue(v).trim();
  chart('throughput', o.series, [
    { pick: (p) => p.writesPerSec, color: color('--s1') },
    { pick: (p) => p.readsPerSec, color: color('--s2') },
  ]);
  chart('latency', o.series, [
    { pick: (p) => p.writeP50Ms, color: color('--s1') },
    { pick: (p) => p.writeP99Ms, color: color('--s3') },
    { pick: (p) => p.readP99Ms, color: color('--s2') },
  ]);
  renderTimeline(o.events);
}

async function poll(): Promise<void> {
  const banner = $('banner');
  try {
    const res = await fetch('/dashboard/api/cluster', {
      cache: 'no-store',
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    render((await res.json()) as ClusterOverview);
    banner.hidden = true;
  } catch (err) {
    banner.textContent = `This node is not answering (${(err as Error).message}); open the dashboard of another member.`;
    banner.hidden = false;
    for (const row of document.querySelectorAll<HTMLElement>('#members tbody tr')) {
      row.className = 'down';
      row.dataset['state'] = 'down';
    }
  } finally {
    setTimeout(() => void poll(), POLL_MS);
  }
}

void poll();
