import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { http, LocalCluster } from './helpers.js';

/**
 * The dashboard in a real browser: Debian's Chromium (`apt-get install -y chromium`),
 * driven by playwright-core. CI installs it; without it this test fails rather than skips.
 */
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/** Set to a path to save a screenshot taken after a minute of light load there (docs/dashboard.png). */
const SCREENSHOT = process.env['DASHBOARD_SCREENSHOT'];

/** The little of the DOM the page functions below use (this package compiles without lib.dom). */
interface El {
  dataset: Record<string, string | undefined>;
  textContent: string | null;
  getAttribute(name: string): string | null;
  querySelector(selector: string): El | null;
}
declare const document: {
  querySelectorAll(selector: string): Iterable<El> & { length: number };
  querySelector(selector: string): El | null;
  getElementById(id: string): El | null;
};
declare function getComputedStyle(el: El): { backgroundColor: string };

const IDS = ['n1', 'n2', 'n3'];
let dir: string;
let cluster: LocalCluster;
let browser: BrowserContext | null = null;
let load: { stop: boolean; done: Promise<void> } | null = null;

/** A light write load: one PUT at a time through any node that answers. */
function startLoad(): { stop: boolean; done: Promise<void> } {
  const state = { stop: false, done: Promise.resolve() };
  state.done = (async () => {
    for (let i = 0; !state.stop; i++) {
      const id = cluster.running()[i % Math.max(1, cluster.running().length)] ?? 'n1';
      await http(`${cluster.url(id)}/kv/load${i % 50}`, {
        method: 'PUT',
        body: JSON.stringify({ value: i }),
        timeoutMs: 3000,
      }).catch(() => undefined);
      if (i % 3 === 0)
        await http(`${cluster.url(id)}/kv/load${i % 50}`, { timeoutMs: 3000 }).catch(() => undefined);
      // Light: about twenty writes a second.
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return state;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'raft-kv-dashboard-'));
  cluster = await LocalCluster.create({ ids: IDS, dir, secret: 'dashboard-test-secret-0123456789ab' });
  cluster.start();
}, 60_000);

afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(cluster.logs());
});

afterAll(async () => {
  if (load !== null) {
    load.stop = true;
    await load.done;
  }
  await browser?.close();
  await cluster?.destroy();
  await rm(dir, { recursive: true, force: true });
});

/** The member rows as the page shows them. */
function members(page: Page): Promise<{ id: string; state: string; role: string; red: boolean }[]> {
  return page.$$eval('#members tbody tr', (rows: El[]) =>
    rows.map((el) => {
      const bg = getComputedStyle(el.querySelector('td')!).backgroundColor;
      const [red, green, blue] = (bg.match(/\d+/g) ?? ['0', '0', '0']).map(Number) as [
        number,
        number,
        number,
      ];
      return {
        id: el.dataset['member'] ?? '',
        state: el.dataset['state'] ?? '',
        role: el.dataset['role'] ?? '',
        red: red > green + 10 && red > blue + 10,
      };
    }),
  );
}

describe('the dashboard in headless Chromium', { timeout: 180_000 }, () => {
  it('shows three members and the leader, then the dead leader in red and the new leader', async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`).toBe(true);
    const leader = await cluster.waitForLeader(IDS, 40_000);
    // Watch from a node that will survive.
    const viewer = IDS.find((id) => id !== leader)!;
    load = startLoad();

    browser = await chromium.launchPersistentContext(await mkdtemp(join(tmpdir(), 'raft-kv-chromium-')), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 900 },
    });
    const page = browser.pages()[0] ?? (await browser.newPage());
    const origin = cluster.url(viewer);
    const foreign: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(origin)) foreign.push(r.url());
    });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${origin}/dashboard`);

    await page.waitForFunction(
      (l) =>
        document.querySelectorAll('#members tbody tr[data-state="up"]').length === 3 &&
        document.getElementById('leader')?.dataset['leader'] === l &&
        document.querySelector(`#members tr[data-member="${l}"]`)?.getAttribute('data-role') === 'leader',
      leader,
      { timeout: 15_000, polling: 50 },
    );
    const before = await members(page);
    expect(before.map((m) => m.id)).toEqual(IDS);
    expect(before.every((m) => m.state === 'up' && !m.red)).toBe(true);
    expect(before.filter((m) => m.role === 'leader').map((m) => m.id)).toEqual([leader]);
    // The throughput chart draws the load.
    await page.waitForFunction(() => document.querySelectorAll('#throughput polyline').length > 0, null, {
      timeout: 15_000,
      polling: 100,
    });

    if (SCREENSHOT !== undefined) {
      // A minute of history for the picture, then a transfer and back for the timeline.
      await page.waitForFunction(() => document.querySelectorAll('#timeline li').length > 0, null, {
        timeout: 10_000,
      });
      const other = IDS.find((id) => id !== leader && id !== viewer)!;
      const started = Date.now();
      await page.waitForFunction((t) => Date.now() - t > 45_000, started, { timeout: 60_000, polling: 1000 });
      const moved = await http(`${cluster.url(leader)}/cluster/leader`, {
        method: 'POST',
        body: JSON.stringify({ id: other }),
      });
      expect(moved.status).toBe(200);
      const back = await http(`${cluster.url(other)}/cluster/leader`, {
        method: 'POST',
        body: JSON.stringify({ id: leader }),
      });
      expect(back.status).toBe(200);
      await page.waitForFunction((t) => Date.now() - t > 60_000, started, { timeout: 60_000, polling: 1000 });
      await mkdir(dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
    }

    // kill -9 the leader: within two seconds its row is red.
    await cluster.node(leader).kill();
    await page.waitForFunction(
      (l) => document.querySelector(`#members tr[data-member="${l}"]`)?.getAttribute('data-state') === 'down',
      leader,
      { timeout: 2000, polling: 50 },
    );
    const dead = (await members(page)).find((m) => m.id === leader)!;
    expect(dead).toMatchObject({ state: 'down', red: true });

    // A new leader is elected (election timeout 1-2 s) and shown.
    const next = await page.waitForFunction(
      (l) => {
        const shown = document.getElementById('leader')?.dataset['leader'];
        if (shown === undefined || shown === '' || shown === l) return null;
        const row = document.querySelector(`#members tr[data-member="${shown}"]`);
        return row?.getAttribute('data-role') === 'leader' && row.getAttribute('data-state') === 'up'
          ? shown
          : null;
      },
      leader,
      { timeout: 15_000, polling: 50 },
    );
    const newLeader = (await next.jsonValue()) as string;
    expect(newLeader).not.toBe(leader);
    expect(
      await cluster.waitForLeader(
        IDS.filter((id) => id !== leader),
        10_000,
      ),
    ).toBe(newLeader);
    // The timeline has the election.
    await page.waitForFunction(
      (nl) =>
        [...document.querySelectorAll('#timeline li[data-kind="leader"]')].some((li) =>
          li.textContent?.includes(`${nl} leads`),
        ),
      newLeader,
      { timeout: 5000, polling: 100 },
    );
    const after = await members(page);
    expect(after.filter((m) => m.state === 'up').map((m) => m.id)).toEqual(IDS.filter((id) => id !== leader));

    // Everything came from the node itself: no CDN, no other origin; no script error.
    expect(foreign).toEqual([]);
    expect(errors).toEqual([]);
  });
});
