import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HardState } from '@raft/core';
import { levelLogStore } from '../src/index.js';
import { content, mulberry32 } from './fixtures/workload.mjs';

// Replay a failure with RAFT_CRASH_SEED=<seed printed in the failure>.
const SEED = Number(process.env.RAFT_CRASH_SEED ?? 0x5eed_1234);
const ROUNDS = 24;
const CHILD = join(import.meta.dirname, 'fixtures', 'crash-writer.mjs');
const DIST = join(import.meta.dirname, '..', 'dist', 'index.js');

/** The log as terms (terms[i - 1] is entry i's; its data is content(i, term)) and the hard state. */
interface Model {
  terms: number[];
  hardState: HardState;
}

interface Issued {
  seq: number;
  start: number;
  count: number;
  term: number;
  hardState: HardState | undefined;
}

function apply(model: Model, w: Issued): void {
  if (w.count > 0) {
    model.terms.length = w.start - 1;
    for (let i = 0; i < w.count; i++) model.terms.push(w.term);
  }
  if (w.hardState !== undefined) model.hardState = w.hardState;
}

function same(a: Model, b: Model): boolean {
  return a.hardState.term === b.hardState.term && a.hardState.votedFor === b.hardState.votedFor && a.terms.length === b.terms.length && a.terms.every((t, i) => t === b.terms[i]);
}

function parseIssued(parts: string[]): Issued {
  const [, seq, start, count, term, hsTerm, vote] = parts;
  return {
    seq: Number(seq),
    start: Number(start),
    count: Number(count),
    term: Number(term),
    hardState: hsTerm === '-' ? undefined : { term: Number(hsTerm), votedFor: vote === '-' ? null : vote! },
  };
}

/** Runs the child until it has acknowledged `killAfter` writes, SIGKILLs it, and returns what it printed. */
async function runChild(location: string, seed: number, killAfter: number): Promise<{ ready: number[]; issued: Issued[]; acked: number }> {
  const child = spawn(process.execPath, [CHILD, location, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  let ready: number[] = [];
  const issued: Issued[] = [];
  let acked = 0;
  let killed = false;
  const kill = () => {
    if (!killed) {
      killed = true;
      child.kill('SIGKILL');
    }
  };
  // A safety net, not a synchronisation: a child that stops making progress is killed
  // and the round fails instead of hanging the suite.
  let stalled = false;
  const deadline = setTimeout(() => {
    stalled = true;
    kill();
  }, 20_000);
  try {
    for await (const line of createInterface({ input: child.stdout })) {
      const parts = line.split(' ');
      if (parts[0] === 'ready') {
        ready = parts.slice(1).map(Number);
        if (killAfter === 0) kill();
      } else if (parts[0] === 'W') {
        issued.push(parseIssued(parts));
      } else if (parts[0] === 'A') {
        // Writes resolve in the order they were issued.
        expect(Number(parts[1])).toBe(acked + 1);
        acked++;
        if (acked >= killAfter) kill();
      } else if (line.length > 0) {
        throw new Error(`the child failed: ${line}\n${stderr}`);
      }
    }
  } finally {
    clearTimeout(deadline);
    kill(); // whatever happened, no child outlives its round
  }
  expect(stalled, `the child made no progress for 20 s: ${stderr}`).toBe(false);
  const { signal } = await closed;
  expect(signal, `the child died on its own: ${stderr}`).toBe('SIGKILL');
  return { ready, issued, acked };
}

describe('crash safety (SIGKILL at seeded moments)', () => {
  let dir: string;

  beforeAll(async () => {
    if (!existsSync(DIST)) throw new Error(`${DIST} is missing: the child process runs the built package; run "pnpm build" (or "pnpm test", which builds first) in packages/log-level`);
    dir = await mkdtemp(join(tmpdir(), 'raft-log-level-crash-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it(`keeps every acknowledged write, intact and in order, over ${ROUNDS} kills (seed ${SEED})`, { timeout: 60_000 }, async () => {
    const rand = mulberry32(SEED);
    const location = join(dir, 'db');
    let model: Model = { terms: [], hardState: { term: 0, votedFor: null } };
    let totalAcked = 0;

    for (let round = 0; round < ROUNDS; round++) {
      const seed = Math.floor(rand() * 2 ** 32);
      const killAfter = Math.floor(rand() * 100);
      const where = `seed ${SEED}, round ${round} (child seed ${seed}, kill after ${killAfter} acks)`;
      const { ready, issued, acked } = await runChild(location, seed, killAfter);
      totalAcked += acked;
      expect(ready, `${where}: the child opened what the last round left`).toEqual([model.terms.length, model.terms.at(-1) ?? 0, model.hardState.term]);

      // Read back what survived, through a fresh store: every entry checksummed by the
      // store and compared byte for byte with the content the child wrote.
      const store = levelLogStore({ location, createIfMissing: false, verifyOnOpen: Infinity });
      const state = await store.open();
      const entries = await store.entries(1, state.lastIndex + 1);
      await store.close();
      expect(entries.length, where).toBe(state.lastIndex);
      const recovered: Model = { terms: [], hardState: state.hardState };
      for (const [k, e] of entries.entries()) {
        expect(e.index, where).toBe(k + 1);
        expect(e.type, where).toBe('command');
        expect(Buffer.from(e.data).equals(content(e.index, e.term)), `${where}: entry ${e.index} is intact`).toBe(true);
        recovered.terms.push(e.term);
      }

      // The recovered store must be exactly the state after some prefix of the issued
      // writes that includes every acknowledged one: nothing acknowledged lost, nothing
      // torn, nothing reordered.
      const replay: Model = { terms: [...model.terms], hardState: model.hardState };
      let matched: number | undefined;
      for (let k = 0; k <= issued.length; k++) {
        if (k > 0) apply(replay, issued[k - 1]!);
        if (k >= acked && same(replay, recovered)) {
          matched = k;
          break;
        }
      }
      expect(matched, `${where}: recovered state (last ${state.lastIndex}, hard state ${JSON.stringify(state.hardState)}) is no prefix of the ${issued.length} issued writes that includes the ${acked} acknowledged`).toBeDefined();
      model = recovered;
    }
    // The run did real work.
    expect(totalAcked).toBeGreaterThan(ROUNDS * 10);
    expect(model.terms.length).toBeGreaterThan(100);
  });
});
