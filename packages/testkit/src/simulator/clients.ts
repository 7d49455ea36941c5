import { RaftError } from '@raft/core';
import type { KVCommand, KVReply } from '@raft/kv';
import { UNKNOWN, type KVModelInput, type KVModelOutput, type Operation } from '../linearizability/index.js';
import type { SwarmConfig } from './swarm.js';
import type { Incarnation, SimNode, World } from './world.js';

/** What became of an operation. */
type OpState = 'pending' | 'done' | 'unknown' | 'failed' | 'dropped';

interface ClientOp {
  id: string;
  client: string;
  input: KVModelInput;
  command: (KVCommand & { id: string }) | null;
  call: number;
  ret: number | undefined;
  output: KVReply | undefined;
  state: OpState;
  attempts: number;
  /** The incarnation serving the attempt in flight, and that attempt's number. */
  inc: Incarnation | null;
  attempt: number;
}

interface Client {
  name: string;
  op: ClientOp | null;
  counter: number;
  /** The peer this client believes leads. */
  leaderHint: SimNode | null;
  /** Operations done; the liveness probe stops after its write and read. */
  stopped: boolean;
  /** For the probe: which step it is at. */
  probeStep: 0 | 1 | 2;
}

/** How many attempts a client makes at an operation that keeps failing without effect. */
const MAX_ATTEMPTS = 12;

/**
 * The clients: each makes one call at a time against a random peer (or the leader it
 * last heard of), retries calls that failed without effect, gives up on calls whose
 * outcome is unknown, and records every operation's call and return in virtual time.
 */
export class Workload {
  private readonly clients: Client[] = [];
  private readonly ops: ClientOp[] = [];
  private readonly recentValues = new Map<string, string[]>();
  private stoppedAll = false;
  /** The liveness probe's state: when it finished its write and its read. */
  probe: { client: Client; startedAt: number; wroteAt: number | null; readAt: number | null } | null = null;
  unexpected = 0;

  constructor(
    private readonly world: World,
    private readonly swarm: SwarmConfig,
  ) {
    for (let i = 1; i <= swarm.clients; i++) {
      this.clients.push({
        name: `c${i}`,
        op: null,
        counter: 0,
        leaderHint: null,
        stopped: false,
        probeStep: 0,
      });
    }
  }

  /** Starts every client after a short random delay. */
  start(): void {
    for (const c of this.clients)
      this.world.sched.after(this.world.rng.range(0, 300), null, () => this.next(c));
  }

  /** Starts the liveness probe: one write, then one read, retried until they succeed. */
  startProbe(): void {
    const client: Client = {
      name: 'probe',
      op: null,
      counter: 0,
      leaderHint: null,
      stopped: false,
      probeStep: 0,
    };
    this.clients.push(client);
    this.probe = { client, startedAt: this.world.sched.now, wroteAt: null, readAt: null };
    this.next(client);
  }

  /** No new operations from now on. */
  stop(): void {
    this.stoppedAll = true;
  }

  /** The clients (not the liveness probe) start no new operations from now on; calls in flight go on. */
  quiesce(): void {
    this.quiesced = true;
  }

  private quiesced = false;

  /** Operations made so far. */
  get count(): number {
    return this.ops.length;
  }

  /**
   * The history for the linearizability checker. A write whose outcome its client never
   * learned (a timeout, a crash, a lost leadership) is in it with an unknown outcome if
   * its command was committed, and left out if not: it then never took effect (the
   * simulator knows what the client cannot). Without that, a run where most writes time
   * out makes the search exponential in their number. Times are rounded to the
   * microsecond, for readable counterexamples (rounding can only make two operations
   * concurrent, never order them).
   */
  history(wasCommitted: (id: string) => boolean): Operation<KVModelInput, KVModelOutput>[] {
    const out: Operation<KVModelInput, KVModelOutput>[] = [];
    const us = (t: number): number => Math.round(t * 1000) / 1000;
    for (const op of this.ops) {
      if (op.state === 'done') {
        out.push({
          clientId: op.client,
          input: op.input,
          call: us(op.call),
          return: us(op.ret!),
          output: op.output as KVModelOutput,
        });
      } else if (
        (op.state === 'unknown' || (op.state === 'pending' && op.command !== null)) &&
        wasCommitted(op.id)
      ) {
        out.push({ clientId: op.client, input: op.input, call: us(op.call), output: UNKNOWN });
      }
    }
    return out;
  }

  /** Calls in flight on a crashed incarnation: unknown if a write, dropped if a read. */
  onCrash(inc: Incarnation): void {
    for (const c of this.clients) {
      const op = c.op;
      if (op !== null && op.state === 'pending' && op.inc === inc) this.giveUp(c, op, 'the peer crashed');
    }
  }

  // ------------------------------------------------------------------ one client

  private next(c: Client): void {
    c.op = null;
    if (this.stoppedAll || c.stopped || (this.quiesced && c !== this.probe?.client)) return;
    const op = this.newOp(c);
    c.op = op;
    this.ops.push(op);
    this.attempt(c, op);
  }

  private newOp(c: Client): ClientOp {
    const { rng, sched } = this.world;
    const n = ++c.counter;
    const id = `${c.name}.${n}`;
    const key = c.name === 'probe' ? 'k0' : `k${rng.int(0, this.swarm.keys - 1)}`;
    const value = `${id}`;
    let input: KVModelInput;
    if (c.name === 'probe') {
      input = c.probeStep === 0 ? { op: 'set', key, value } : { op: 'get', key };
    } else {
      const r = rng.next();
      if (r < this.swarm.readShare) input = { op: 'get', key };
      else {
        const w = rng.next();
        if (w < 0.5) input = { op: 'set', key, value };
        else if (w < 0.8) {
          const recent = this.recentValues.get(key) ?? [];
          const expected = recent.length > 0 ? rng.pick(recent) : 'none';
          input = { op: 'cas', key, expected, value };
        } else input = { op: 'delete', key };
      }
    }
    let command: (KVCommand & { id: string }) | null = null;
    if (input.op === 'set') command = { op: 'set', key, value: value, id };
    else if (input.op === 'cas') command = { op: 'cas', key, expected: input.expected as string, value, id };
    else if (input.op === 'delete') command = { op: 'delete', key, id };
    if (input.op === 'set' || input.op === 'cas') this.remember(key, value);
    return {
      id,
      client: c.name,
      input,
      command,
      call: sched.now,
      ret: undefined,
      output: undefined,
      state: 'pending',
      attempts: 0,
      inc: null,
      attempt: 0,
    };
  }

  private remember(key: string, value: string): void {
    let list = this.recentValues.get(key);
    if (list === undefined) this.recentValues.set(key, (list = []));
    list.push(value);
    if (list.length > 4) list.shift();
  }

  private attempt(c: Client, op: ClientOp): void {
    const { rng, sched } = this.world;
    op.attempts++;
    const target = c.leaderHint ?? rng.pick(this.world.clientTargets());
    // The request reaches the peer's process as an event: a paused peer takes it later.
    sched.after(rng.range(0.1, 1), target, () => this.issue(c, op, target));
  }

  private issue(c: Client, op: ClientOp, node: SimNode): void {
    if (op.state !== 'pending') return;
    const inc = node.inc;
    const peer = inc?.peer ?? null;
    const { trace, sched } = this.world;
    if (inc === null || peer === null) {
      // Connection refused: certainly no effect.
      this.retry(c, op, null, `${node.name} is down`);
      return;
    }
    op.inc = inc;
    const attempt = ++op.attempt;
    // Every other call may be forwarded: a follower hands it to the leader over the peer
    // connection and answers it itself (no draw from the generator: seeds keep their runs' shape).
    const forward = (op.attempts + c.counter) % 2 === 0;
    trace.add(
      sched.now,
      () =>
        `call  ${op.client} ${describeInput(op.input)} -> ${inc.label} (${op.id}, attempt ${op.attempts}${forward ? ', forward' : ''})`,
    );
    const timeout = this.swarm.callTimeoutMs;
    const call =
      op.command !== null
        ? peer.write(op.command, { timeout, forward })
        : peer.read({ op: 'get', key: op.input.key }, { timeout, forward });
    call.then(
      (reply) => this.settled(c, op, attempt, node, reply),
      (err: unknown) => this.failed(c, op, attempt, err),
    );
  }

  private settled(c: Client, op: ClientOp, attempt: number, node: SimNode, reply: KVReply): void {
    if (op.state !== 'pending' || attempt !== op.attempt) return;
    const { world } = this;
    world.activity++;
    if (!reply.ok && reply.error !== 'key_not_found' && reply.error !== 'cas_mismatch') {
      world.fail(
        'client',
        `${op.id} ${describeInput(op.input)} got an unexpected reply ${JSON.stringify(reply)}`,
      );
      return;
    }
    op.state = 'done';
    op.ret = world.sched.now;
    op.output = reply;
    c.leaderHint = node;
    if (reply.ok && typeof reply.value === 'string') this.remember(op.input.key, reply.value);
    if (!reply.ok && reply.error === 'cas_mismatch' && typeof reply.value === 'string')
      this.remember(op.input.key, reply.value);
    world.trace.add(
      world.sched.now,
      () => `ret   ${op.client} ${describeInput(op.input)} = ${JSON.stringify(reply)} (${op.id})`,
    );
    if (this.probe !== null && c === this.probe.client) {
      if (c.probeStep === 0) {
        c.probeStep = 1;
        this.probe.wroteAt = world.sched.now;
      } else {
        c.probeStep = 2;
        this.probe.readAt = world.sched.now;
        c.stopped = true;
      }
    }
    this.think(c);
  }

  private failed(c: Client, op: ClientOp, attempt: number, err: unknown): void {
    if (op.state !== 'pending' || attempt !== op.attempt) return;
    this.world.activity++;
    const code = RaftError.isInstance(err) ? err.code : 'not a RaftError';
    if (code === 'RAFT_NOT_LEADER' && (err as { indeterminate?: boolean }).indeterminate !== true) {
      const leader = (err as { leader?: string | null }).leader ?? null;
      this.retry(
        c,
        op,
        leader === null ? null : this.world.node(leader),
        `not leader${leader === null ? '' : `, leader ${leader}`}`,
      );
    } else if (code === 'RAFT_ELECTION_IN_PROGRESS') {
      this.retry(c, op, null, 'election in progress');
    } else if (code === 'RAFT_TIMEOUT' || code === 'RAFT_NOT_LEADER' || code === 'RAFT_STOPPED') {
      this.giveUp(c, op, code === 'RAFT_NOT_LEADER' ? 'leadership lost (indeterminate)' : code);
    } else {
      this.unexpected++;
      this.world.fail(
        'client',
        `${op.id} ${describeInput(op.input)} failed with an unexpected error: ${code} ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }

  /** A failure without effect: try again, at `hint` if known. */
  private retry(c: Client, op: ClientOp, hint: SimNode | null, why: string): void {
    const { world } = this;
    op.inc = null;
    c.leaderHint = hint;
    world.trace.add(
      world.sched.now,
      () => `fail  ${op.client} ${describeInput(op.input)}: ${why} (${op.id}, no effect)`,
    );
    if (op.attempts >= MAX_ATTEMPTS && c.name !== 'probe') {
      op.state = 'failed';
      this.think(c);
      return;
    }
    const backoff = hint !== null ? world.rng.range(1, 10) : world.rng.range(20, 120);
    world.sched.after(backoff, null, () => {
      if (op.state === 'pending') this.attempt(c, op);
    });
  }

  /** The outcome is unknown: a write stays in the history as such, a read leaves it. */
  private giveUp(c: Client, op: ClientOp, why: string): void {
    const { world } = this;
    op.state = op.command !== null ? 'unknown' : 'dropped';
    op.inc = null;
    c.leaderHint = null;
    world.trace.add(
      world.sched.now,
      () => `lost  ${op.client} ${describeInput(op.input)}: ${why} (${op.id}, outcome unknown)`,
    );
    this.think(c);
  }

  private think(c: Client): void {
    const { rng, sched } = this.world;
    sched.after(rng.range(this.swarm.thinkMs[0], this.swarm.thinkMs[1]), null, () => this.next(c));
  }
}

function describeInput(i: KVModelInput): string {
  switch (i.op) {
    case 'get':
      return `get(${i.key})`;
    case 'set':
      return `set(${i.key}, ${String(i.value)})`;
    case 'delete':
      return `delete(${i.key})`;
    case 'cas':
      return `cas(${i.key}, ${String(i.expected)}, ${String(i.value)})`;
  }
}
