/**
 * Damaged files (issue 14): bytes flipped in LevelDB's write-ahead log or in a table, a
 * truncated log or table, each on its own copy of a store that acknowledged every write.
 * Every acknowledged entry, and the hard state, must be there, or the store refuses to
 * open with RAFT_STORAGE_CORRUPT (or, for a damaged table LevelDB cannot parse, the
 * process aborts in LevelDB: see the README). Never a shorter log served as if whole.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { levelLogStore } from '../src/index.js';

const CHILD = join(import.meta.dirname, 'fixtures', 'open-damaged.mjs');
const DIST = join(import.meta.dirname, '..', 'dist', 'index.js');
const FIRST = 60; // entries written, then the store reopened: they end up in a table (.ldb)
const TOTAL = 100; // then up to this one, in the write-ahead log (.log)
const HARD_STATE = { term: 3, votedFor: 'n2' };

const text = new TextEncoder();
const entry = (index: number) => ({
  index,
  term: index <= FIRST ? 2 : 3,
  type: 'command' as const,
  data: text.encode(`entry ${index} `.padEnd(80, String.fromCharCode(97 + (index % 26)))),
});

type Outcome =
  | { kind: 'opened'; lastIndex: number; hardState: unknown; rows: [number, number, string][] }
  | { kind: 'refused'; code: string; message: string }
  | { kind: 'aborted'; signal: string };

function openInChild(location: string): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, location], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (signal !== null) return resolve({ kind: 'aborted', signal });
      const line = out.trim();
      if (line.startsWith('opened ')) {
        const rest = line.slice(7);
        const split = rest.indexOf('} ') + 1;
        const state = JSON.parse(rest.slice(0, split)) as { lastIndex: number; hardState: unknown };
        const rows = JSON.parse(rest.slice(split + 1)) as [number, number, string][];
        return resolve({ kind: 'opened', lastIndex: state.lastIndex, hardState: state.hardState, rows });
      }
      const m = /^refused (\S+) (.*)$/.exec(line);
      if (m !== null) return resolve({ kind: 'refused', code: m[1]!, message: m[2]! });
      reject(new Error(`the child exited with ${code}: ${out} ${err}`));
    });
  });
}

/** Whether an outcome keeps the promise: everything acknowledged there, or a refusal. */
function check(outcome: Outcome, where: string): void {
  if (outcome.kind === 'aborted') {
    expect(outcome.signal, where).toBe('SIGABRT');
    return;
  }
  if (outcome.kind === 'refused') {
    expect(outcome.code, `${where}: ${outcome.message}`).toBe('RAFT_STORAGE_CORRUPT');
    return;
  }
  expect(outcome.lastIndex, `${where}: opened with a shorter log`).toBe(TOTAL);
  expect(outcome.hardState, where).toEqual(HARD_STATE);
  const decoder = new TextDecoder();
  expect(outcome.rows, where).toEqual(
    Array.from({ length: TOTAL }, (_, i) => {
      const e = entry(i + 1);
      return [e.index, e.term, decoder.decode(e.data)];
    }),
  );
}

describe('damaged files: every acknowledged entry is there, or the store refuses to open', () => {
  let dir: string;
  let original: string;
  let files: string[];
  let copies = 0;

  beforeAll(async () => {
    if (!existsSync(DIST))
      throw new Error(
        `${DIST} is missing: run "pnpm build" (or "pnpm test", which builds first) in packages/log-level`,
      );
    dir = await mkdtemp(join(tmpdir(), 'raft-log-level-damage-'));
    original = join(dir, 'original');
    const s = levelLogStore(original);
    await s.open();
    await s.write({ hardState: { term: 2, votedFor: 'n1' } });
    for (let i = 1; i <= FIRST; i++) await s.write({ entries: [entry(i)] });
    await s.close();
    // Reopening moves the write-ahead log into a table.
    await s.open();
    await s.write({ hardState: HARD_STATE });
    for (let i = FIRST + 1; i <= TOTAL; i++) await s.write({ entries: [entry(i)] });
    // Copied while open, every write acknowledged: as after kill -9.
    await cp(original, join(dir, 'snapshot'), { recursive: true });
    await s.close();
    original = join(dir, 'snapshot');
    files = await readdir(original);
  }, 60_000);

  afterAll(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  async function damaged(
    file: string,
    damage: (path: string, size: number) => Promise<void>,
  ): Promise<Outcome> {
    const copy = join(dir, `copy-${++copies}`);
    await cp(original, copy, { recursive: true });
    const path = join(copy, file);
    await damage(path, (await stat(path)).size);
    return openInChild(copy);
  }

  const flip = (at: (size: number) => number) => async (path: string, size: number) => {
    const bytes = await readFile(path);
    bytes[at(size)]! ^= 0x5a;
    await writeFile(path, bytes);
  };

  const logFile = () => files.find((f) => f.endsWith('.log'))!;
  const tableFile = () => files.find((f) => f.endsWith('.ldb'))!;

  it('the undamaged copy opens whole', { timeout: 30_000 }, async () => {
    expect(logFile()).toBeDefined();
    expect(tableFile()).toBeDefined();
    const outcome = await damaged(logFile(), async () => undefined);
    expect(outcome.kind).toBe('opened');
    check(outcome, 'undamaged');
  });

  it(
    'one byte flipped in the middle of the write-ahead log (the issue): refused, naming what is missing',
    { timeout: 30_000 },
    async () => {
      const outcome = await damaged(
        logFile(),
        flip((size) => size >> 1),
      );
      expect(outcome).toMatchObject({ kind: 'refused', code: 'RAFT_STORAGE_CORRUPT' });
      expect((outcome as { message: string }).message).toMatch(/acknowledged writes are missing/);
      check(outcome, 'flipped byte in the middle of the .log');
    },
  );

  it('a byte flipped anywhere in the write-ahead log', { timeout: 120_000 }, async () => {
    for (const fraction of [0.01, 0.1, 0.25, 0.4, 0.6, 0.75, 0.9, 0.99]) {
      const outcome = await damaged(
        logFile(),
        flip((size) => Math.floor(size * fraction)),
      );
      check(outcome, `.log flipped at ${fraction}`);
    }
  });

  it('the write-ahead log truncated', { timeout: 60_000 }, async () => {
    for (const keep of [0, 0.3, 0.5, 0.97]) {
      const outcome = await damaged(logFile(), (path, size) => truncate(path, Math.floor(size * keep)));
      expect(outcome.kind, `.log truncated to ${keep}`).toBe('refused');
      check(outcome, `.log truncated to ${keep}`);
    }
    const outcome = await damaged(logFile(), (path, size) => truncate(path, size - 1));
    check(outcome, '.log truncated by one byte');
  });

  it(
    'a table (.ldb) damaged: bytes flipped, truncated (in a child: LevelDB may abort)',
    { timeout: 120_000 },
    async () => {
      const seen: string[] = [];
      for (const fraction of [0.05, 0.3, 0.5, 0.7, 0.9, 0.98]) {
        const outcome = await damaged(
          tableFile(),
          flip((size) => Math.floor(size * fraction)),
        );
        seen.push(outcome.kind);
        check(outcome, `.ldb flipped at ${fraction}`);
      }
      for (const keep of [0, 0.5, 0.99]) {
        const outcome = await damaged(tableFile(), (path, size) => truncate(path, Math.floor(size * keep)));
        seen.push(outcome.kind);
        check(outcome, `.ldb truncated to ${keep}`);
      }
      // Damage to the table's data is found (refused), not served.
      expect(seen).toContain('refused');
      console.log(`.ldb damage outcomes: ${seen.join(', ')}`);
    },
  );
});
