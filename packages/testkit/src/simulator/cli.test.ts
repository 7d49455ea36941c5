import { RaftError } from '@raft/core';
import { describe, expect, it } from 'vitest';
import { parseCliArgs, runCli } from './cli.js';

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (RaftError.isInstance(err)) return err.code;
    throw err;
  }
  throw new Error('expected a throw');
}

describe('pnpm sim arguments', () => {
  it('runs 100 seeds from 1 by default', () => {
    const a = parseCliArgs([]);
    expect(a.seeds).toBe(100);
    expect(a.firstSeed).toBe(1);
    expect(a.single).toBe(false);
  });

  it('replays one seed when only --seed is given', () => {
    const a = parseCliArgs(['--seed', '17', '--nodes', '5']);
    expect(a).toMatchObject({ seeds: 1, firstSeed: 17, single: true, sim: { nodes: 5 } });
  });

  it('keeps the flags that change a run in the replay command', () => {
    const a = parseCliArgs(['--seeds=10', '--fault-ms', '500-900', '--lying-disk', '--no-durability-checks']);
    expect(a.seeds).toBe(10);
    expect(a.sim).toMatchObject({
      faultMs: [500, 900],
      inject: { lyingDisk: true },
      durabilityChecks: false,
    });
    expect(a.replayFlags).toEqual(['--fault-ms', '500-900', '--lying-disk', '--no-durability-checks']);
  });

  it('turns snapshots on with --snapshots, and replays with it', async () => {
    expect(parseCliArgs([]).sim.snapshots).toBeUndefined();
    const a = parseCliArgs(['--seed', '3', '--snapshots', '--stale-snapshots']);
    expect(a.sim).toMatchObject({ snapshots: true, inject: { staleSnapshots: true } });
    expect(a.replayFlags).toEqual(['--snapshots', '--stale-snapshots']);
    const out: string[] = [];
    expect(
      await runCli(['--seed', '2', '--nodes', '3', '--snapshots'], {
        out: (l) => out.push(l),
        err: (l) => out.push(l),
      }),
    ).toBe(0);
    expect(out.join('\n')).toMatch(
      /snapshots taken \d+, installed from a leader \d+, restored at restart \d+/,
    );
  });

  it('turns membership changes on with --membership, and replays with it', async () => {
    expect(parseCliArgs([]).sim.membership).toBeUndefined();
    const a = parseCliArgs(['--seed', '4', '--membership', '--snapshots']);
    expect(a.sim).toMatchObject({ membership: true, snapshots: true });
    expect(a.replayFlags).toEqual(['--membership', '--snapshots']);
    const out: string[] = [];
    expect(
      await runCli(['--seed', '4', '--nodes', '3', '--membership', '--no-snapshots'], {
        out: (l) => out.push(l),
        err: (l) => out.push(l),
      }),
    ).toBe(0);
    expect(out.join('\n')).toMatch(
      /membership changes done [1-9]\d* in 1 seeds \(add \d+, remove \d+, replace \d+/,
    );
  });

  it('forces features on or off, and replays with the flags', () => {
    const a = parseCliArgs(['--no-snapshots', '--no-membership', '--transfers', '--no-disruption-checks']);
    expect(a.sim).toMatchObject({
      snapshots: false,
      membership: false,
      transfers: true,
      disruptionChecks: false,
    });
    expect(a.replayFlags).toEqual([
      '--no-snapshots',
      '--no-membership',
      '--transfers',
      '--no-disruption-checks',
    ]);
  });

  it('refuses bad input', () => {
    expect(codeOf(() => parseCliArgs(['--seeds', 'many']))).toBe('RAFT_INVALID_ARGUMENT');
    expect(codeOf(() => parseCliArgs(['--frobnicate']))).toBe('RAFT_INVALID_ARGUMENT');
    expect(codeOf(() => parseCliArgs(['--seeds', '0']))).toBe('RAFT_INVALID_ARGUMENT');
  });

  it('prints a line per failing seed and a summary, and exits 1 on a failure', async () => {
    const out: string[] = [];
    const code = await runCli(['--seeds', '2', '--lying-disk'], {
      out: (l) => out.push(l),
      err: (l) => out.push(l),
    });
    expect(code).toBe(1);
    expect(out.filter((l) => l.startsWith('FAIL seed='))).toHaveLength(2);
    // Each failing line names the features its seed used (the default mode picks them per seed).
    expect(out.filter((l) => /^FAIL seed=\d+ nodes=\d+ features=[a-z+]+ /.test(l))).toHaveLength(2);
    expect(out.some((l) => l.startsWith('seeds 2, events '))).toBe(true);
    expect(out.some((l) => l.includes('replay: pnpm sim --seed 1 --nodes'))).toBe(true);
  });

  it('exits 2 on bad arguments', async () => {
    const err: string[] = [];
    expect(await runCli(['--nope'], { out: () => undefined, err: (l) => err.push(l) })).toBe(2);
    expect(err.join('\n')).toContain('usage: pnpm sim');
  });
});
