/** A bare simulated world for the simulator's unit tests: no peers running, failures collected. */
import { SimDisk } from '../src/simulator/disk.js';
import { Prng } from '../src/simulator/prng.js';
import { Scheduler } from '../src/simulator/scheduler.js';
import { Trace } from '../src/simulator/trace.js';
import { SimNode, type World } from '../src/simulator/world.js';

/** A world of `n` nodes (`n1`..), each with an empty disk; what `fail` reports lands in `failures`. */
export function testWorld(n: number): { w: World; nodes: SimNode[]; failures: string[] } {
  const failures: string[] = [];
  const nodes: SimNode[] = [];
  const w: World = {
    sched: new Scheduler(),
    rng: new Prng(1),
    trace: new Trace(10),
    activity: 0,
    touch(node) {
      this.activity++;
      node.dirty = true;
    },
    fail: (check, message) => failures.push(`${check}: ${message}`),
    nodes,
    node: (name) => nodes.find((x) => x.name === name)!,
    clientTargets: () => nodes,
    snapshotIndexOf: new WeakMap(),
  };
  for (let i = 0; i < n; i++) nodes.push(new SimNode(`n${i + 1}`, i, new SimDisk(), 1));
  return { w, nodes, failures };
}
