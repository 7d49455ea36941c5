/**
 * Client sessions (Raft dissertation §6.3): exactly-once writes for any state machine.
 *
 * {@link withSessions} wraps a {@link StateMachine} without changing its code. A write may
 * then carry a session envelope: the replicated state remembers, per client, which
 * sequence numbers it applied and their replies, so a retried write is answered with the
 * first reply instead of being applied again. Plain commands pass through unchanged.
 */
import { Packr } from 'msgpackr';
import { write, type PeerRef } from './api.js';
import { InvalidArgumentError, RaftError, type NotLeaderError } from './errors.js';
import type { CallOptions } from './runtime/peer.js';
import type { PeerId, StateMachine } from './types.js';

/** Registers a new client session; the reply is `{ raftSession: 'registered', client }`. */
export interface RegisterCommand {
  raftSession: 'register';
}

/** A command of a registered session: applied at most once per `(client, seq)`. */
export interface SessionWriteCommand<C> {
  raftSession: 'write';
  /** The id `register` returned. */
  client: number;
  /** The client's sequence number for this command, from 1, never reused. */
  seq: number;
  /**
   * Every seq up to this one has its answer at the client: their replies may be dropped.
   * Must be below `seq`.
   */
  ackedSeq?: number;
  command: C;
}

/** Ends a session and frees its memory; the reply is `{ raftSession: 'closed' }`. */
export interface CloseSessionCommand {
  raftSession: 'close';
  client: number;
}

/**
 * A one-shot idempotency key (the HTTP `Idempotency-Key`): the first command with `key`
 * applies; a later one with the same key and `fingerprint` gets the first reply; one with
 * the same key and another fingerprint is refused (`mismatch`) and not applied.
 */
export interface IdempotentCommand<C> {
  raftSession: 'key';
  /** 1 to {@link MAX_IDEMPOTENCY_KEY_LENGTH} characters. */
  key: string;
  /** What the command is (for example a hash of the request); compared, never interpreted. */
  fingerprint: string;
  command: C;
}

/** A session envelope: what {@link withSessions} handles itself. */
export type SessionCommand<C> =
  RegisterCommand | SessionWriteCommand<C> | CloseSessionCommand | IdempotentCommand<C>;

/** Why a session write was refused without being applied. */
export type ExpiryReason =
  /** The client id is unknown: never registered, closed, expired (ttl) or evicted (`maxSessions`). */
  | 'unknown-session'
  /** The seq is at or below the oldest reply the session still keeps (acknowledged or out of the window). */
  | 'seq-discarded';

/** What a session envelope replies (a plain command replies the wrapped machine's reply). */
export type SessionOutcome<R> =
  | { raftSession: 'registered'; client: number }
  | { raftSession: 'closed' }
  /** Applied now: `reply` is the wrapped machine's reply. */
  | { raftSession: 'applied'; reply: R }
  /** A duplicate: not applied again; `reply` is the first application's reply. */
  | { raftSession: 'replayed'; reply: R }
  /** Refused and not applied: the session (or this seq's reply) is gone. */
  | { raftSession: 'expired'; reason: ExpiryReason }
  /** An idempotency key seen before with another fingerprint: refused and not applied. */
  | { raftSession: 'mismatch' };

/** Limits of {@link withSessions}. Every limit counts in commands, never in time. */
export interface SessionOptions {
  /**
   * A session unused for this many commands (of any kind, applied through the machine)
   * expires. Expiry is decided from the replicated state, so every peer decides the same.
   * @default 1_000_000
   */
  sessionTtl?: number;
  /** Most live sessions; registering one more evicts the least recently used. @default 10_000 */
  maxSessions?: number;
  /** Replies kept per session: a client may have this many writes in flight. @default 32 */
  window?: number;
  /** An idempotency key unused for this many commands is forgotten. @default 1_000_000 */
  keyTtl?: number;
  /** Most idempotency keys kept; one more evicts the least recently used. @default 100_000 */
  maxKeys?: number;
}

/** Longest idempotency key, in UTF-16 code units. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

/** The stored result of an application: its reply, or the message of what the machine threw. */
type Stored<R> = { ok: true; reply: R } | { ok: false; error: string };

interface ClientSessionState<R> {
  /** Clock value at the last use. */
  used: number;
  /** Every applied seq above `floor` has its result in `results`; seqs at or below are refused. */
  floor: number;
  results: Map<number, Stored<R>>;
}

interface KeyState<R> {
  used: number;
  fingerprint: string;
  result: Stored<R>;
}

/** The state of a machine wrapped by {@link withSessions}. */
export interface SessionState<S, R> {
  /** The wrapped machine's state. */
  inner: S;
  /** Commands applied through the wrapper: the logical clock of expiry. */
  clock: number;
  /** The id the next `register` gets. Ids are never reused. */
  nextId: number;
  /** Live sessions, least recently used first. */
  sessions: Map<number, ClientSessionState<R>>;
  /** Live idempotency keys, least recently used first. */
  keys: Map<string, KeyState<R>>;
}

const packr = new Packr({ useRecords: false, moreTypes: true });

/**
 * The first bytes of a snapshot of {@link withSessions}: bytes without them are the wrapped
 * machine's own (a snapshot from before the machine was wrapped), restored with no sessions.
 */
const SNAPSHOT_MAGIC = new Uint8Array([0x00, 0x52, 0x53, 0x53, 0x31, 0x00]); // NUL "RSS1" NUL

/**
 * The layout written now: NUL "RSS2" NUL; a MessagePack header `[clock, nextId, sessions,
 * keys]` (the counts); the wrapped machine's bytes; then frames of at most
 * {@link SNAPSHOT_FRAME_ROWS} rows, sessions first, then keys. Every part is its length
 * (uint32, big-endian) and its bytes. Frames let a large table (100,000 keys) be encoded
 * and restored a slice at a time, giving the event loop back in between.
 */
const SNAPSHOT_MAGIC_2 = new Uint8Array([0x00, 0x52, 0x53, 0x53, 0x32, 0x00]); // NUL "RSS2" NUL
const SNAPSHOT_FRAME_ROWS = 2048;

function hasMagic(bytes: Uint8Array, magic: Uint8Array = SNAPSHOT_MAGIC): boolean {
  return bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b);
}

/** Gives the event loop back: timers and I/O run before the next slice. */
const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function lengthPrefixed(body: Uint8Array): Uint8Array[] {
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, body.length);
  return [len, body];
}

function concatBytes(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Reads the length-prefixed parts of an RSS2 snapshot, one at a time. */
class PartReader {
  #at: number;
  readonly #view: DataView;
  constructor(private readonly bytes: Uint8Array) {
    this.#at = SNAPSHOT_MAGIC_2.length;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get done(): boolean {
    return this.#at >= this.bytes.length;
  }
  next(): Uint8Array {
    if (this.#at + 4 > this.bytes.length) throw corruptSnapshot('truncated length');
    const length = this.#view.getUint32(this.#at);
    this.#at += 4;
    if (length > this.bytes.length - this.#at) throw corruptSnapshot('truncated part');
    const part = this.bytes.subarray(this.#at, this.#at + length);
    this.#at += length;
    return part;
  }
}

function corruptSnapshot(reason: string, cause?: unknown): InvalidArgumentError {
  return new InvalidArgumentError(
    `not a snapshot of withSessions: ${reason}`,
    cause === undefined ? undefined : { cause },
  );
}

function unpackPart(part: Uint8Array): unknown {
  try {
    return packr.unpack(part);
  } catch (err) {
    throw corruptSnapshot('cannot decode', err);
  }
}

/** True when `command` is a session envelope (an object with an own `raftSession` property). */
export function isSessionCommand(command: unknown): command is SessionCommand<unknown> {
  return (
    typeof command === 'object' &&
    command !== null &&
    Object.prototype.hasOwnProperty.call(command, 'raftSession')
  );
}

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1)
    throw new InvalidArgumentError(`withSessions: ${name} must be a positive integer, got ${String(value)}`);
  return value;
}

function isSeq(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
}

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}

/** Moves `key` to the end of `map` (most recently used). */
function touch<K, V>(map: Map<K, V>, key: K, value: V): void {
  map.delete(key);
  map.set(key, value);
}

/** Thrown into the runtime (which answers `RAFT_STATE_MACHINE_ERROR`) for a command that failed at first. */
function replayFailure(error: string): Error {
  return new Error(`the command threw when first applied (not applied again): ${error}`);
}

/**
 * Wraps `machine` with client sessions (Raft dissertation §6.3). The result is a
 * {@link StateMachine} whose commands are the machine's own (passed through unchanged)
 * or session envelopes ({@link SessionCommand}): registered sessions
 * (`register`, then `{ raftSession: 'write', client, seq, command }`) and one-shot
 * idempotency keys (`{ raftSession: 'key', key, fingerprint, command }`). Reads pass
 * through. Snapshots hold the session table beside the machine's own bytes; a machine
 * without `snapshot`/`restore` gives a wrapper without them.
 *
 * A command is never applied twice for one `(client, seq)` or one key while it is
 * remembered; a request whose session or seq is no longer remembered is refused
 * (`expired`), never applied. Replies are kept in the replicated state and in
 * snapshots: they must be encodable by MessagePack, and the machine must not change a
 * reply after returning it.
 *
 * @throws `RAFT_INVALID_ARGUMENT` for a bad option (the message names it).
 */
export function withSessions<S, C, Q, R>(
  machine: StateMachine<S, C, Q, R>,
  options: SessionOptions = {},
): StateMachine<SessionState<S, R>, C | SessionCommand<C>, Q, R | SessionOutcome<R>> {
  const sessionTtl = positiveInt('sessionTtl', options.sessionTtl, 1_000_000);
  const maxSessions = positiveInt('maxSessions', options.maxSessions, 10_000);
  const window = positiveInt('window', options.window, 32);
  const keyTtl = positiveInt('keyTtl', options.keyTtl, 1_000_000);
  const maxKeys = positiveInt('maxKeys', options.maxKeys, 100_000);

  /** Forgets what was unused for too long: the maps are in order of last use. */
  function expire(state: SessionState<S, R>): void {
    for (const [id, s] of state.sessions) {
      if (state.clock - s.used <= sessionTtl) break;
      state.sessions.delete(id);
    }
    for (const [key, k] of state.keys) {
      if (state.clock - k.used <= keyTtl) break;
      state.keys.delete(key);
    }
  }

  /**
   * What a session envelope does before the wrapped machine runs: either its outcome
   * (nothing to apply), or the command to apply and what to record once it ran.
   */
  type Plan = { outcome: SessionOutcome<R> } | { apply: C; record: (stored: Stored<R>) => void };

  function plan(command: SessionCommand<C>, state: SessionState<S, R>): Plan {
    switch (command.raftSession) {
      case 'register': {
        const client = state.nextId++;
        if (state.sessions.size >= maxSessions) {
          const oldest = state.sessions.keys().next();
          if (oldest.done !== true) state.sessions.delete(oldest.value);
        }
        state.sessions.set(client, { used: state.clock, floor: 0, results: new Map() });
        return { outcome: { raftSession: 'registered', client } };
      }
      case 'close': {
        if (!isSeq(command.client)) throw new TypeError('a session close needs client (a positive integer)');
        state.sessions.delete(command.client);
        return { outcome: { raftSession: 'closed' } };
      }
      case 'write': {
        const { client, seq } = command;
        const ackedSeq = command.ackedSeq ?? undefined;
        if (!isSeq(client) || !isSeq(seq))
          throw new TypeError('a session write needs client and seq (positive integers)');
        if (ackedSeq !== undefined && !(Number.isSafeInteger(ackedSeq) && ackedSeq >= 0 && ackedSeq < seq))
          throw new TypeError('a session write needs ackedSeq (if any) to be an integer from 0 to seq - 1');
        const session = state.sessions.get(client);
        if (session === undefined) return { outcome: { raftSession: 'expired', reason: 'unknown-session' } };
        session.used = state.clock;
        touch(state.sessions, client, session);
        if (ackedSeq !== undefined && ackedSeq > session.floor) {
          session.floor = ackedSeq;
          for (const s of session.results.keys()) if (s <= ackedSeq) session.results.delete(s);
        }
        const known = session.results.get(seq);
        if (known !== undefined) return { outcome: settle(known, 'replayed') };
        if (seq <= session.floor) return { outcome: { raftSession: 'expired', reason: 'seq-discarded' } };
        return {
          apply: command.command,
          record: (stored) => {
            session.results.set(seq, stored);
            while (session.results.size > window) {
              // Drop the lowest seq; every seq at or below it is refused from now on.
              let lowest = Infinity;
              for (const s of session.results.keys()) if (s < lowest) lowest = s;
              session.results.delete(lowest);
              session.floor = Math.max(session.floor, lowest);
            }
          },
        };
      }
      case 'key': {
        const { key, fingerprint } = command;
        if (
          typeof key !== 'string' ||
          key.length === 0 ||
          key.length > MAX_IDEMPOTENCY_KEY_LENGTH ||
          typeof fingerprint !== 'string'
        )
          throw new TypeError(
            `an idempotent write needs key (1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters) and fingerprint (a string)`,
          );
        const known = state.keys.get(key);
        if (known !== undefined) {
          known.used = state.clock;
          touch(state.keys, key, known);
          if (known.fingerprint !== fingerprint) return { outcome: { raftSession: 'mismatch' } };
          return { outcome: settle(known.result, 'replayed') };
        }
        return {
          apply: command.command,
          record: (stored) => {
            if (state.keys.size >= maxKeys) {
              const oldest = state.keys.keys().next();
              if (oldest.done !== true) state.keys.delete(oldest.value);
            }
            state.keys.set(key, { used: state.clock, fingerprint, result: stored });
          },
        };
      }
      default:
        throw new TypeError(
          `unknown session command ${JSON.stringify((command as { raftSession: unknown }).raftSession)}`,
        );
    }
  }

  function settle(stored: Stored<R>, outcome: 'applied' | 'replayed'): SessionOutcome<R> {
    if (!stored.ok) throw replayFailure(stored.error);
    return { raftSession: outcome, reply: stored.reply };
  }

  /** Records a command that threw (so a retry is not applied again), then rethrows it. */
  function failed(record: (stored: Stored<R>) => void, err: unknown): never {
    record({ ok: false, error: err instanceof Error ? err.message : String(err) });
    throw err;
  }

  const wrapped: StateMachine<SessionState<S, R>, C | SessionCommand<C>, Q, R | SessionOutcome<R>> = {
    init(name: PeerId): SessionState<S, R> {
      return { inner: machine.init(name), clock: 0, nextId: 1, sessions: new Map(), keys: new Map() };
    },
    handleWrite(command, state) {
      // The session table changes in place (the runtime keeps this state object even
      // when the command throws), so a command that threw is remembered as such.
      state.clock++;
      expire(state);
      if (!isSessionCommand(command)) {
        const out = machine.handleWrite(command, state.inner);
        if (isPromise(out))
          return out.then(([reply, next]): [R, SessionState<S, R>] => {
            state.inner = next;
            return [reply, state];
          });
        state.inner = out[1];
        return [out[0], state];
      }
      const p = plan(command, state);
      if ('outcome' in p) return [p.outcome, state];
      const done = ([reply, next]: [R, S]): [SessionOutcome<R>, SessionState<S, R>] => {
        state.inner = next;
        p.record({ ok: true, reply });
        return [{ raftSession: 'applied', reply }, state];
      };
      let out: [R, S] | Promise<[R, S]>;
      try {
        out = machine.handleWrite(p.apply, state.inner);
      } catch (err) {
        return failed(p.record, err);
      }
      return isPromise(out) ? out.then(done, (err: unknown) => failed(p.record, err)) : done(out);
    },
    handleRead(query, state) {
      return machine.handleRead(query, state.inner);
    },
  };
  if (typeof machine.snapshot === 'function' && typeof machine.restore === 'function') {
    const snapshot = (inner: S): Uint8Array | Promise<Uint8Array> => machine.snapshot!(inner);
    const restore = (bytes: Uint8Array, name: PeerId): S | Promise<S> => machine.restore!(bytes, name);
    const restoreFramed = async (bytes: Uint8Array, name: PeerId): Promise<SessionState<S, R>> => {
      const reader = new PartReader(bytes);
      const header = unpackPart(reader.next());
      if (
        !Array.isArray(header) ||
        header.length !== 4 ||
        !header.every((n) => Number.isSafeInteger(n) && (n as number) >= 0)
      )
        throw corruptSnapshot('malformed header');
      const [clock, nextId, sessionCount, keyCount] = header as number[];
      const state: SessionState<S, R> = {
        inner: await restore(reader.next(), name),
        clock: clock!,
        nextId: nextId!,
        sessions: new Map(),
        keys: new Map(),
      };
      for (let frame = 0; !reader.done; frame++) {
        if (frame > 0) await yieldToLoop(); // between frames only
        const rows = unpackPart(reader.next());
        if (!Array.isArray(rows)) throw corruptSnapshot('a frame is not an array');
        for (const row of rows as unknown[]) {
          if (!Array.isArray(row) || row.length !== 4) throw corruptSnapshot('malformed row');
          if (state.sessions.size < sessionCount!) {
            const [id, used, floor, results] = row as [number, number, number, [number, Stored<R>][]];
            if (!Array.isArray(results)) throw corruptSnapshot('malformed session');
            state.sessions.set(id, { used, floor, results: new Map(results) });
          } else {
            const [key, used, fingerprint, result] = row as [string, number, string, Stored<R>];
            if (typeof key !== 'string') throw corruptSnapshot('malformed key');
            state.keys.set(key, { used, fingerprint, result });
          }
        }
      }
      if (state.sessions.size !== sessionCount || state.keys.size !== keyCount)
        throw corruptSnapshot('the tables do not hold the counts announced');
      return state;
    };
    wrapped.snapshot = async (state) => {
      const inner = await snapshot(state.inner);
      const parts: Uint8Array[] = [
        SNAPSHOT_MAGIC_2,
        ...lengthPrefixed(packr.pack([state.clock, state.nextId, state.sessions.size, state.keys.size])),
        ...lengthPrefixed(inner),
      ];
      // A frame of rows per slice; the tables do not change meanwhile (nothing is applied).
      let frames = 0;
      const frame = async (rows: unknown[]): Promise<void> => {
        if (frames++ > 0) await yieldToLoop();
        parts.push(...lengthPrefixed(packr.pack(rows)));
      };
      let rows: unknown[] = [];
      for (const [id, s] of state.sessions) {
        rows.push([id, s.used, s.floor, [...s.results]]);
        if (rows.length === SNAPSHOT_FRAME_ROWS) await frame(rows.splice(0));
      }
      if (rows.length > 0) await frame(rows);
      rows = [];
      for (const [key, k] of state.keys) {
        rows.push([key, k.used, k.fingerprint, k.result]);
        if (rows.length === SNAPSHOT_FRAME_ROWS) await frame(rows.splice(0));
      }
      if (rows.length > 0) await frame(rows);
      return concatBytes(parts);
    };
    wrapped.restore = async (bytes, name) => {
      if (hasMagic(bytes, SNAPSHOT_MAGIC_2)) return restoreFramed(bytes, name);
      if (!hasMagic(bytes)) {
        // A snapshot taken before the machine was wrapped: its state, with no sessions yet.
        return {
          inner: await restore(bytes, name),
          clock: 0,
          nextId: 1,
          sessions: new Map(),
          keys: new Map(),
        };
      }
      const raw = packr.unpack(bytes.subarray(SNAPSHOT_MAGIC.length)) as {
        v?: unknown;
        inner: Uint8Array;
        clock: number;
        nextId: number;
        sessions: [number, number, number, [number, Stored<R>][]][];
        keys: [string, number, string, Stored<R>][];
      };
      if (typeof raw !== 'object' || raw === null || raw.v !== 1 || !(raw.inner instanceof Uint8Array))
        throw new InvalidArgumentError('not a snapshot of withSessions (version 1)');
      return {
        inner: await restore(raw.inner, name),
        clock: raw.clock,
        nextId: raw.nextId,
        sessions: new Map(
          raw.sessions.map(([id, used, floor, results]) => [id, { used, floor, results: new Map(results) }]),
        ),
        keys: new Map(
          raw.keys.map(([key, used, fingerprint, result]) => [key, { used, fingerprint, result }]),
        ),
      };
    };
  }
  return wrapped;
}

/**
 * The reply of an applied or replayed session write, with whether it was replayed.
 *
 * @throws `RAFT_SESSION_EXPIRED` for an `expired` outcome, `RAFT_IDEMPOTENCY_MISMATCH` for a
 * `mismatch`: in both cases the command was not applied.
 */
export function unwrapOutcome<R>(outcome: SessionOutcome<R>): { reply: R; replayed: boolean } {
  switch (outcome.raftSession) {
    case 'applied':
      return { reply: outcome.reply, replayed: false };
    case 'replayed':
      return { reply: outcome.reply, replayed: true };
    case 'expired':
      throw new RaftError(
        'RAFT_SESSION_EXPIRED',
        outcome.reason === 'unknown-session'
          ? 'the client session expired (or was never registered); the command was not applied'
          : 'this sequence number is no longer remembered by the session; the command was not applied',
      );
    case 'mismatch':
      throw new RaftError(
        'RAFT_IDEMPOTENCY_MISMATCH',
        'the idempotency key was used before with another request; the command was not applied',
      );
    default:
      throw new RaftError('RAFT_STATE_MACHINE_ERROR', 'the state machine is not wrapped by withSessions');
  }
}

/**
 * Writes `command` under an idempotency key through a machine wrapped by
 * {@link withSessions}: retrying with the same key and fingerprint after an unknown
 * outcome never applies it twice (while the key is remembered: see `keyTtl`, `maxKeys`).
 *
 * @throws `RAFT_IDEMPOTENCY_MISMATCH` when the key was used with another fingerprint, and
 * every error of {@link write}.
 */
export async function writeIdempotent<R = unknown>(
  peer: PeerRef,
  key: string,
  fingerprint: string,
  command: unknown,
  opts?: CallOptions,
): Promise<{ reply: R; replayed: boolean }> {
  const envelope: IdempotentCommand<unknown> = { raftSession: 'key', key, fingerprint, command };
  return unwrapOutcome(await write<SessionOutcome<R>>(peer, envelope, opts));
}

/** Options of {@link openSession}. */
export interface OpenSessionOptions {
  /** Further peers to try when the current one is stopped or unknown in this process. */
  peers?: PeerRef[];
  /** How long one write may take, retries included (ms). @default 10_000 */
  timeout?: number;
  /** How long one attempt may take before it is retried (ms). @default 1_000 */
  attemptTimeout?: number;
  /** Cancels the pending calls; the outcome of a write then is unknown. */
  signal?: AbortSignal;
  /**
   * Send the writes through whichever peer the session targets: a follower forwards them
   * to the leader (see "Requests through any node" in the README). @default false
   */
  forward?: boolean;
}

/** A client session: writes applied at most once, retried safely. See {@link openSession}. */
export interface ClientSession<R = unknown> {
  /** The session's id in the replicated state. */
  readonly client: number;
  /**
   * Writes `command` with the next seq, retrying the same seq on `RAFT_NOT_LEADER` (at
   * `err.leader`), `RAFT_ELECTION_IN_PROGRESS`, `RAFT_TIMEOUT` and stopped peers until the
   * session's `timeout`: it is applied at most once.
   *
   * @throws `RAFT_SESSION_EXPIRED` (not applied), `RAFT_STATE_MACHINE_ERROR`, or the last
   * error when the time is up (the outcome then is unknown, but a later retry can never apply it).
   */
  write(command: unknown): Promise<R>;
  /** Ends the session (best effort: an unclosed session expires by itself). */
  close(): Promise<void>;
}

const RETRIED = new Set([
  'RAFT_NOT_LEADER',
  'RAFT_ELECTION_IN_PROGRESS',
  'RAFT_TIMEOUT',
  'RAFT_STOPPED',
  'RAFT_NO_PEER',
]);

/**
 * Registers a client session on the cluster of `peer` (a machine wrapped by
 * {@link withSessions}) and returns it. Writes may run concurrently (up to the
 * machine's `window` at a time).
 */
export async function openSession<R = unknown>(
  peer: PeerRef,
  options: OpenSessionOptions = {},
): Promise<ClientSession<R>> {
  const timeout = positiveInt('timeout', options.timeout, 10_000);
  const attemptTimeout = positiveInt('attemptTimeout', options.attemptTimeout, 1_000);
  const targets: PeerRef[] = [peer, ...(options.peers ?? [])];
  let target: PeerRef = peer;
  let rotation = 0;

  async function call<T>(envelope: SessionCommand<unknown>): Promise<T> {
    const deadline = performance.now() + timeout;
    let pause = 5;
    for (;;) {
      const left = Math.floor(deadline - performance.now());
      try {
        return await write<T>(target, envelope, {
          timeout: Math.max(1, Math.min(attemptTimeout, left)),
          ...(options.signal === undefined ? {} : { signal: options.signal }),
          ...(options.forward === undefined ? {} : { forward: options.forward }),
        });
      } catch (err) {
        if (!RaftError.isInstance(err) || !RETRIED.has(err.code) || performance.now() >= deadline) throw err;
        const leader = err.code === 'RAFT_NOT_LEADER' ? (err as NotLeaderError).leader : null;
        if (leader !== null) target = leader;
        else if (err.code === 'RAFT_STOPPED' || err.code === 'RAFT_NO_PEER')
          target = targets[++rotation % targets.length]!;
        if (leader === null) {
          await new Promise((resolve) => setTimeout(resolve, pause));
          pause = Math.min(pause * 2, 200);
        }
      }
    }
  }

  const registered = await call<SessionOutcome<R>>({ raftSession: 'register' });
  if (registered.raftSession !== 'registered')
    throw new RaftError('RAFT_STATE_MACHINE_ERROR', 'the state machine is not wrapped by withSessions');
  const client = registered.client;
  let nextSeq = 1;
  let acked = 0;
  const answered = new Set<number>();

  return {
    client,
    async write(command: unknown): Promise<R> {
      const seq = nextSeq++;
      const envelope: SessionWriteCommand<unknown> = {
        raftSession: 'write',
        client,
        seq,
        ackedSeq: acked,
        command,
      };
      let definite = false;
      try {
        const outcome = await call<SessionOutcome<R>>(envelope);
        definite = true;
        return unwrapOutcome(outcome).reply;
      } catch (err) {
        definite ||= RaftError.isInstance(err) && err.code === 'RAFT_STATE_MACHINE_ERROR';
        throw err;
      } finally {
        // Only a seq whose outcome is known is acknowledged: an unknown one stays retryable.
        if (definite) {
          answered.add(seq);
          while (answered.delete(acked + 1)) acked++;
        }
      }
    },
    async close(): Promise<void> {
      await call({ raftSession: 'close', client });
    },
  };
}
