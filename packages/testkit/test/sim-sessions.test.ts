/**
 * The simulator's session client mode (issue 18): clients retry every write whose outcome
 * is unknown with the same session and seq, and every write must take effect at most once
 * (and every answered write exactly once) on every peer.
 */
import { describe, expect, it } from 'vitest';
import { runSessionSimulation, type SessionSimulationResult } from '../src/simulator/sessions.js';

/** The CI seeds of the session mode. */
const SEEDS = Array.from({ length: 50 }, (_, i) => i + 1);

const yieldToHost = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('the simulator with client sessions', () => {
  // 50 seeded runs of 3 peers and 4 clients: about 10 s on an idle 2-core machine; the
  // budget leaves room for a machine loaded several times over.
  it('applies every retried write at most once, and every answered one exactly once', async () => {
    const results: SessionSimulationResult[] = [];
    for (const seed of SEEDS) {
      results.push(await runSessionSimulation({ seed }));
      await yieldToHost();
    }
    expect(results.filter((r) => r.violation !== null).map((r) => `seed ${r.seed}: ${r.violation}`)).toEqual(
      [],
    );
    expect(results.every((r) => r.unresolved === 0)).toBe(true);
    // The faults really made outcomes unknown, and retries really were answered by replays.
    const total = (k: 'unknownOutcomes' | 'replays' | 'answered'): number =>
      results.reduce((n, r) => n + r[k], 0);
    expect(total('answered')).toBe(SEEDS.length * 4 * 12);
    console.log(
      `sessions: ${total('answered')} answered, ${total('unknownOutcomes')} unknown outcomes retried, ${total('replays')} replays`,
    );
    expect(total('unknownOutcomes')).toBeGreaterThan(0);
    expect(total('replays')).toBeGreaterThan(0);
  }, 120_000);

  it('catches the mutation: a session layer that applies duplicates', async () => {
    const caught: string[] = [];
    for (const seed of SEEDS) {
      const r = await runSessionSimulation({ seed, inject: { applyDuplicates: true } });
      if (r.violation !== null) caught.push(r.violation);
      await yieldToHost();
    }
    expect(caught.length).toBeGreaterThan(0);
    expect(caught[0]).toMatch(/applied c\d+\.\d+ twice/);
  }, 120_000);
});
