import { describe, expect, it } from 'vitest';
import { SimDisk } from './disk.js';
import { CALM_NETWORK, SimNetwork } from './network.js';
import { testWorld } from '../../test/sim-world.js';
import { SimNode } from './world.js';

describe('the simulated network', () => {
  it('applies the current partition to a peer added during it, and forgets it once healed', () => {
    const { w, nodes } = testWorld(3);
    const net = new SimNetwork(w, CALM_NETWORK, () => undefined);
    const [a, b] = nodes as [SimNode, SimNode, SimNode];
    // Cut off everyone but n1 and n2 from each other: a rule, so peers added later follow it.
    net.setPartition('only n1-n2', (x, y) => !((x === a && y === b) || (x === b && y === a)));
    nodes.push(new SimNode('n4', 3, new SimDisk(), 1));
    net.addNode();
    const d = nodes[3]!;
    expect(net.linkUp(a, b)).toBe(true);
    expect(net.linkUp(a, d)).toBe(false);
    expect(net.linkUp(d, b)).toBe(false);
    net.healPartition();
    expect(net.linkUp(a, d)).toBe(true);
    expect(net.partition).toBeNull();
  });

  it('keeps a detached peer cut off across partitions until attached or fully healed', () => {
    const { w, nodes } = testWorld(3);
    const net = new SimNetwork(w, CALM_NETWORK, () => undefined);
    const [a, b, c] = nodes as [SimNode, SimNode, SimNode];
    net.detach(c);
    expect(net.linkUp(a, c)).toBe(false);
    expect(net.linkUp(c, b)).toBe(false);
    net.setPartition('isolate n1', (x, y) => x === a || y === a);
    net.healPartition();
    expect(net.linkUp(a, b)).toBe(true);
    expect(net.linkUp(b, c)).toBe(false);
    net.attach(c);
    expect(net.linkUp(b, c)).toBe(true);
    net.detach(c);
    net.heal();
    expect(net.linkUp(c, a)).toBe(true);
  });
});
