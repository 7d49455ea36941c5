/**
 * Persist before you promise, for a single voter: a restarted sole voter with learners
 * wins its own election in the turn it campaigns. The runtime lets a leader's
 * AppendEntries leave while its write is under way (the leader's term was persisted
 * before it could lead), but here the term is in that very write: an AppendEntries of the
 * new term must wait for it. Otherwise a crash before the sync lets the next incarnation
 * lead the same term again and write different entries at index/term pairs a learner
 * already holds. (Found by the simulator: `pnpm sim --seed 69 --nodes 3 --membership`.)
 */
import { describe, expect, it } from 'vitest';
import { encodeConfiguration } from '../../src/protocol/membership.js';
import { seededRandom, startPeer, type RaftMessage } from '../../src/index.js';
import { VirtualClock } from '../harness.js';
import { LatencyNetwork, machine, SlowStore } from './runtime-kit.js';

describe('membership: a sole voter with learners', () => {
  it('sends nothing of a new term before that term is durable, though it wins in the turn it campaigns', async () => {
    const clock = new VirtualClock();
    const net = new LatencyNetwork(clock);
    const store = new SlowStore(clock, { ms: 5 });
    // What a restarted sole voter finds on disk: term 1, and a configuration with a learner.
    store.hardState = { term: 1, votedFor: 'a' };
    store.log = [
      { index: 1, term: 1, type: 'config', data: encodeConfiguration({ members: ['a'], learners: ['b'] }) },
    ];
    const sent: { message: RaftMessage; durableTerm: number }[] = [];
    const inner = net.join('a');
    const transport = {
      ...inner,
      send: (to: string, m: RaftMessage) => (
        sent.push({ message: m, durableTerm: store.hardState.term }),
        inner.send(to, m)
      ),
    };
    const a = await startPeer(
      machine(clock, () => 0),
      { name: 'a', log: store, transport, clock, random: seededRandom(3), register: false },
    );
    try {
      await clock.until(
        () => a.status().role === 'leader' && sent.some((s) => s.message.type === 'AppendEntries'),
      );
      expect(a.status().term).toBe(2);
      const early = sent.filter((s) => s.message.term > s.durableTerm);
      expect(early.map((s) => `${s.message.type} t${s.message.term} (durable t${s.durableTerm})`)).toEqual(
        [],
      );
    } finally {
      // Stopping waits for the write under way, which takes virtual time.
      const stopping = a.stop();
      await clock.advance(100);
      await stopping;
    }
  });
});
