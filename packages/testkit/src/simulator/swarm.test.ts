import { describe, expect, it } from 'vitest';
import { Prng } from './prng.js';
import { chooseSwarm, describeFeatures, describeSwarm, featureCombinations } from './swarm.js';

const BOUNDS = { faultMs: [1000, 5000] as [number, number] };

describe('swarm over features', () => {
  it('lets each seed pick its features: 200 seeds cover every combination', () => {
    const seen = new Map<string, number>();
    for (let seed = 1; seed <= 200; seed++) {
      const s = chooseSwarm(new Prng(seed), BOUNDS);
      const name = describeFeatures(s.features);
      seen.set(name, (seen.get(name) ?? 0) + 1);
      // The features are what the configuration really holds.
      expect(s.features.snapshots).toBe(s.snapshots !== null);
      const w = s.membership?.weights;
      expect(s.features.membership).toBe(w !== undefined && w.add + w.remove + w.replace > 0);
      expect(s.features.transfers).toBe(w !== undefined && w.transfer > 0);
      expect(describeSwarm(s)).toContain(`features ${name}`);
    }
    expect([...seen.keys()].sort()).toEqual(featureCombinations().sort());
    expect(featureCombinations()).toHaveLength(8);
    for (const n of seen.values()) expect(n).toBeGreaterThan(10);
  });

  it('obeys features forced on or off', () => {
    for (let seed = 1; seed <= 100; seed++) {
      const off = chooseSwarm(new Prng(seed), { ...BOUNDS, snapshots: false, membership: false });
      expect(off.features).toEqual({ snapshots: false, membership: false, transfers: false });
      expect(off.rejoin).toBeNull();
      const t = chooseSwarm(new Prng(seed), { ...BOUNDS, transfers: true, membership: false });
      expect(t.features.transfers).toBe(true);
      expect(t.features.membership).toBe(false);
      const noT = chooseSwarm(new Prng(seed), { ...BOUNDS, transfers: false });
      expect(noT.features.transfers).toBe(false);
    }
  });
});
