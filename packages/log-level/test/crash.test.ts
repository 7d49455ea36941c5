import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { levelLogStore } from '../src/index.js';
import {
  apply,
  clone,
  CONFIGURATION,
  content,
  emptyModel,
  mulberry32,
  same,
  snapshotContent,
} from './fixtures/workload.mjs';
import type { Model, Op } from './fixtures/workload.mjs';

// Replay a failure with RAFT_CRASH_SEED=<seed printed in the failure>.
const SEED = Number(process.env.RAFT_CRASH_SEED ?? 0x5eed_1234);
const ROUNDS = 24;
const CHILD = join(import.meta.dirname, 'fixtures', 'crash-writer.mjs');
const DIST = join(import.meta.dirname, '..', 'dist', 'index.js');

interface Issued {
  seq: number;
  op: Op;
}

function parseIssued(parts: string[]): Issued {
  const [, seq, ...json] = parts;
  return { seq: Number(seq), op: JSON.parse(json.join(' ')) as Op };
}

/** Runs the child until it has acknowledged `killAfter` writes, SIGKILLs it, and returns what it printed. */
async function runChild(
  location: string,
  seed: number,
  killAfter: number,
): Promise<{ ready: Model | undefined; issued: Issued[]; acked: number }> {
  const child = spawn(process.execPath, [CHILD, location, String(seed)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  let ready: Model | undefined;
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
        ready = JSON.parse(parts.slice(1).join(' ')) as Model;
        if (killAfter === 0) kill();
      } else if (parts[0] === 'I') {
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
    if (!existsSync(DIST))
      throw new Error(
        `${DIST} is missing: the child process runs the built package; run "pnpm build" (or "pnpm test", which builds first) in packages/log-level`,
      );
    dir = await mkdtemp(join(tmpdir(), 'raft-log-level-crash-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it(
    `keeps every acknowledged write, snapshot and compaction, intact and in order, over ${ROUNDS} kills (seed ${SEED})`,
    { timeout: 60_000 },
    async () => {
      const rand = mulberry32(SEED);
      const location = join(dir, 'db');
      let model = emptyModel();
      let totalAcked = 0;
      const done = { snapshots: 0, emptied: 0, compactions: 0 };

      for (let round = 0; round < ROUNDS; round++) {
        const seed = Math.floor(rand() * 2 ** 32);
        const killAfter = Math.floor(rand() * 100);
        const where = `seed ${SEED}, round ${round} (child seed ${seed}, kill after ${killAfter} acks)`;
        const { ready, issued, acked } = await runChild(location, seed, killAfter);
        totalAcked += acked;
        expect(ready, `${where}: the child opened what the last round left`).toEqual(model);

        // Read back what survived, through a fresh store: every entry and the snapshot
        // checksummed by the store and compared byte for byte with what the child wrote.
        const store = levelLogStore({ location, createIfMissing: false, verifyOnOpen: Infinity });
        const state = await store.open();
        const entries = await store.entries(state.firstIndex, state.lastIndex + 1);
        const snapshot = await store.loadSnapshot();
        await store.close();
        expect(entries.length, where).toBe(state.lastIndex - state.firstIndex + 1);
        const recovered: Model = {
          first: state.firstIndex,
          terms: [],
          snap: null,
          hardState: state.hardState,
        };
        for (const [k, e] of entries.entries()) {
          expect(e.index, where).toBe(state.firstIndex + k);
          expect(e.type, where).toBe('command');
          expect(
            Buffer.from(e.data).equals(content(e.index, e.term)),
            `${where}: entry ${e.index} is intact`,
          ).toBe(true);
          recovered.terms.push(e.term);
        }
        if (snapshot !== undefined) {
          const { index, term, configuration } = snapshot.meta;
          expect(state.snapshot, where).toStrictEqual(snapshot.meta);
          expect(configuration, where).toStrictEqual(CONFIGURATION);
          expect(
            Buffer.from(snapshot.data).equals(snapshotContent(index, term, snapshot.data.length)),
            `${where}: the snapshot at ${index} is intact`,
          ).toBe(true);
          expect(state.firstIndex, where).toBeLessThanOrEqual(index + 1);
          expect(state.lastIndex, where).toBeGreaterThanOrEqual(index);
          recovered.snap = { index, term, size: snapshot.data.length };
        }

        // The recovered store must be exactly the state after some prefix of the issued
        // operations that includes every acknowledged one: nothing acknowledged lost,
        // nothing torn, nothing reordered.
        const replay = clone(model);
        let matched: number | undefined;
        for (let k = 0; k <= issued.length; k++) {
          if (k > 0) apply(replay, issued[k - 1]!.op);
          if (k >= acked && same(replay, recovered)) {
            matched = k;
            break;
          }
        }
        expect(
          matched,
          `${where}: recovered state (first ${state.firstIndex}, last ${state.lastIndex}, snapshot ${JSON.stringify(recovered.snap)}, hard state ${JSON.stringify(state.hardState)}) is no prefix of the ${issued.length} issued operations that includes the ${acked} acknowledged`,
        ).toBeDefined();
        for (const { op } of issued.slice(0, acked)) {
          if (op.kind === 'compact') done.compactions++;
          else if (op.snapshot !== null) {
            done.snapshots++;
            if (op.hardState !== null) done.emptied++;
          }
        }
        model = recovered;
      }
      // The run did real work, of every kind.
      expect(totalAcked).toBeGreaterThan(ROUNDS * 10);
      expect(model.first + model.terms.length).toBeGreaterThan(100);
      expect(done.snapshots).toBeGreaterThan(10);
      expect(done.emptied).toBeGreaterThan(3);
      expect(done.compactions).toBeGreaterThan(5);
    },
  );
});
