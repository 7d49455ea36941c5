import {
  isIndex,
  MAX_PEER_ID_LENGTH,
  type Configuration,
  type EntryType,
  type LogEntry,
  type RaftMessage,
} from './types.js';

/** Limits applied by {@link validateMessage}. */
export interface MessageLimits {
  /**
   * Most entries one AppendEntries may carry, and most commands one Propose may carry.
   * @default 65536
   */
  maxEntries?: number;
  /**
   * Longest peer name accepted, in UTF-16 code units.
   * @default MAX_PEER_ID_LENGTH (256)
   */
  maxPeerIdLength?: number;
  /**
   * Highest term accepted in any term field. The runtime passes its own term plus
   * {@link MAX_TERM_JUMP} (capped at {@link MAX_TERM}): no real cluster holds that many
   * elections while one of its members looks away, so a larger term can only be forged,
   * and adopting it would use up the term space.
   * @default MAX_TERM
   */
  maxTerm?: number;
}

/**
 * Highest term or log index any message may carry: 2^52. Raising it by one (a campaign,
 * an append) stays an exact integer for another 2^52 steps, far more than any cluster takes
 * (a million elections or entries a second for over a century).
 */
export const MAX_TERM = 2 ** 52;
/** Highest log index any message may carry (see {@link MAX_TERM}). */
export const MAX_INDEX = 2 ** 52;
/**
 * Most a message may raise the receiver's term by: 2^32 elections. A term further ahead
 * cannot come from a real election, and once adopted it would leave the cluster that much
 * closer to {@link MAX_TERM}; refusing it keeps one forged frame from using the term
 * space up (it would take 2^20 of them, each admitted in turn).
 */
export const MAX_TERM_JUMP = 2 ** 32;

/**
 * Why a message was refused, for counting: `malformed` (shape, types, unknown kind),
 * `term_out_of_range` (beyond {@link MessageLimits.maxTerm}), `index_out_of_range`
 * (beyond {@link MAX_INDEX}), `entry_terms` (entry terms decreasing, or above the
 * message's term), `too_many_entries`.
 */
export type MessageRefusal =
  'malformed' | 'term_out_of_range' | 'index_out_of_range' | 'entry_terms' | 'too_many_entries';

/** The outcome of {@link validateMessage}: the message, or why it was refused. */
export type MessageValidation =
  { ok: true; message: RaftMessage } | { ok: false; reason: string; refusal: MessageRefusal };

const ENTRY_TYPES: ReadonlySet<string> = new Set<EntryType>(['command', 'noop', 'config']);

function isPeerId(v: unknown, max: number): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= max;
}

function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}

/** Checks the `id` of a forwarding message: a safe integer >= 1. */
function forwardId(what: string, id: unknown): number {
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1)
    refuse(`${what}: id is not a positive integer`);
  return id;
}

/** Thrown inside validation, caught by {@link validateMessage}: never escapes it. */
class Refused extends Error {
  constructor(
    readonly refusal: MessageRefusal,
    readonly reason: string,
  ) {
    super(reason);
  }
}

/**
 * Checks that a value received from outside is a well-formed {@link RaftMessage} the
 * protocol can act on without harm: every field present with the right type; terms and
 * indexes non-negative integers within {@link MessageLimits.maxTerm} and {@link MAX_INDEX};
 * no term a message carries (a previous entry's, an entry's, a snapshot's, a candidate's
 * last) above the message's own term; entries consecutive, their terms non-decreasing and
 * from the previous entry's term on. Returns a copy holding only the known fields, so
 * nothing unexpected reaches the protocol. Never throws.
 */
export function validateMessage(value: unknown, limits: MessageLimits = {}): MessageValidation {
  try {
    return check(value, limits);
  } catch (e) {
    if (e instanceof Refused) return { ok: false, reason: e.reason, refusal: e.refusal };
    throw e;
  }
}

function refuse(reason: string, refusal: MessageRefusal = 'malformed'): never {
  throw new Refused(refusal, reason);
}

/**
 * Checks the number fields of a message: each a non-negative safe integer (else
 * `malformed`), terms at most `maxTerm`, indexes at most {@link MAX_INDEX}.
 */
function numbers(
  what: string,
  fields: Record<string, unknown>,
  terms: readonly string[],
  indexes: readonly string[],
  maxTerm: number,
): void {
  // Every field's type first, so a malformed message is `malformed` whatever its numbers.
  for (const k of terms) if (!isIndex(fields[k])) refuse(`${what}: ${k} is not a non-negative integer`);
  for (const k of indexes) if (!isIndex(fields[k])) refuse(`${what}: ${k} is not a non-negative integer`);
  for (const k of terms)
    if ((fields[k] as number) > maxTerm)
      refuse(`${what}: ${k} ${fields[k] as number} is above ${maxTerm}`, 'term_out_of_range');
  for (const k of indexes)
    if ((fields[k] as number) > MAX_INDEX)
      refuse(`${what}: ${k} ${fields[k] as number} is above ${MAX_INDEX}`, 'index_out_of_range');
}

function check(value: unknown, limits: MessageLimits): MessageValidation {
  const maxEntries = limits.maxEntries ?? 65536;
  const maxId = limits.maxPeerIdLength ?? MAX_PEER_ID_LENGTH;
  const maxTerm = Math.min(limits.maxTerm ?? MAX_TERM, MAX_TERM);
  if (typeof value !== 'object' || value === null) refuse('not an object');
  const m = value as Record<string, unknown>;
  const { type, term, from, to } = m;
  if (!isIndex(term)) refuse('term is not a non-negative integer');
  if (term > maxTerm) refuse(`term ${term} is above ${maxTerm}`, 'term_out_of_range');
  if (!isPeerId(from, maxId)) refuse('from is not a peer name');
  if (!isPeerId(to, maxId)) refuse('to is not a peer name');
  switch (type) {
    case 'RequestVote': {
      const { lastLogIndex, lastLogTerm, preVote, transfer } = m;
      numbers('RequestVote', m, ['lastLogTerm'], ['lastLogIndex'], maxTerm);
      if ((lastLogTerm as number) > term) refuse('RequestVote: lastLogTerm is above the term', 'entry_terms');
      if (typeof preVote !== 'boolean') refuse('RequestVote: preVote is not a boolean');
      if (transfer !== undefined && typeof transfer !== 'boolean')
        refuse('RequestVote: transfer is not a boolean');
      return {
        ok: true,
        message: {
          type,
          term,
          from,
          to,
          lastLogIndex: lastLogIndex as number,
          lastLogTerm: lastLogTerm as number,
          preVote,
          ...(transfer === true ? { transfer } : {}),
        },
      };
    }
    case 'RequestVoteResponse': {
      const { voteGranted, preVote } = m;
      if (typeof voteGranted !== 'boolean' || typeof preVote !== 'boolean')
        refuse('RequestVoteResponse: voteGranted or preVote is not a boolean');
      return { ok: true, message: { type, term, from, to, voteGranted, preVote } };
    }
    case 'AppendEntries': {
      const { entries } = m;
      numbers('AppendEntries', m, ['prevLogTerm'], ['prevLogIndex', 'leaderCommit', 'seq'], maxTerm);
      const prevLogIndex = m.prevLogIndex as number;
      const prevLogTerm = m.prevLogTerm as number;
      if (prevLogTerm > term) refuse('AppendEntries: prevLogTerm is above the term', 'entry_terms');
      if (!Array.isArray(entries)) refuse('AppendEntries: entries is not an array');
      if (entries.length > maxEntries)
        refuse(`AppendEntries: more than ${maxEntries} entries`, 'too_many_entries');
      if (prevLogIndex + entries.length > MAX_INDEX)
        refuse(`AppendEntries: entries beyond index ${MAX_INDEX}`, 'index_out_of_range');
      const copy: LogEntry[] = new Array<LogEntry>(entries.length);
      // Terms in a log never decrease (Raft §5.3: a leader appends in its own term only),
      // and never exceed the term of the leader sending them.
      let prevTerm = prevLogTerm;
      for (let i = 0; i < entries.length; i++) {
        const e: unknown = entries[i];
        if (typeof e !== 'object' || e === null) refuse(`AppendEntries: entry ${i} is not an object`);
        const { index, term: et, type: t, data } = e as Record<string, unknown>;
        if (index !== prevLogIndex + 1 + i)
          refuse(`AppendEntries: entry ${i} has index ${String(index)}, expected ${prevLogIndex + 1 + i}`);
        if (!isIndex(et)) refuse(`AppendEntries: entry ${i} has a bad term`);
        if (et > term || et < prevTerm)
          refuse(
            `AppendEntries: entry ${i} has term ${et}, outside [${prevTerm}, ${term}] (the previous entry's term, the message's)`,
            'entry_terms',
          );
        prevTerm = et;
        if (typeof t !== 'string' || !ENTRY_TYPES.has(t))
          refuse(`AppendEntries: entry ${i} has an unknown type`);
        if (!isBytes(data)) refuse(`AppendEntries: entry ${i} data is not bytes`);
        copy[i] = { index, term: et, type: t as EntryType, data };
      }
      return {
        ok: true,
        message: {
          type,
          term,
          from,
          to,
          prevLogIndex,
          prevLogTerm,
          entries: copy,
          leaderCommit: m.leaderCommit as number,
          seq: m.seq as number,
        },
      };
    }
    case 'AppendEntriesResponse': {
      const { success } = m;
      if (typeof success !== 'boolean') refuse('AppendEntriesResponse: success is not a boolean');
      numbers(
        'AppendEntriesResponse',
        m,
        ['conflictTerm'],
        ['matchIndex', 'prevLogIndex', 'conflictIndex', 'seq'],
        maxTerm,
      );
      return {
        ok: true,
        message: {
          type,
          term,
          from,
          to,
          success,
          matchIndex: m.matchIndex as number,
          prevLogIndex: m.prevLogIndex as number,
          conflictIndex: m.conflictIndex as number,
          conflictTerm: m.conflictTerm as number,
          seq: m.seq as number,
        },
      };
    }
    case 'InstallSnapshot': {
      const { meta, data, done } = m;
      numbers('InstallSnapshot', m, [], ['offset', 'seq'], maxTerm);
      if (!isBytes(data)) refuse('InstallSnapshot: data is not bytes');
      if (typeof done !== 'boolean') refuse('InstallSnapshot: done is not a boolean');
      if (typeof meta !== 'object' || meta === null) refuse('InstallSnapshot: meta is not an object');
      const mm = meta as Record<string, unknown>;
      numbers('InstallSnapshot meta', mm, ['term'], ['index'], maxTerm);
      const index = mm.index as number;
      const st = mm.term as number;
      if (index < 1) refuse('InstallSnapshot: meta index is 0');
      if (st > term) refuse('InstallSnapshot: meta term is above the term', 'entry_terms');
      const { configuration } = mm;
      if (typeof configuration !== 'object' || configuration === null)
        refuse('InstallSnapshot: bad configuration');
      const { members, learners, outgoing } = configuration as Record<string, unknown>;
      const isNames = (v: unknown, min: number): v is string[] =>
        Array.isArray(v) && v.length >= min && v.length <= 1024 && v.every((x) => isPeerId(x, maxId));
      if (!isNames(members, 1)) refuse('InstallSnapshot: bad configuration members');
      if (learners !== undefined && !isNames(learners, 0))
        refuse('InstallSnapshot: bad configuration learners');
      if (outgoing !== undefined && !isNames(outgoing, 0))
        refuse('InstallSnapshot: bad configuration outgoing');
      const config: Configuration = { members: members.slice() };
      if (learners !== undefined) config.learners = learners.slice();
      if (outgoing !== undefined) config.outgoing = outgoing.slice();
      return {
        ok: true,
        message: {
          type,
          term,
          from,
          to,
          meta: { index, term: st, configuration: config },
          offset: m.offset as number,
          data,
          done,
          seq: m.seq as number,
        },
      };
    }
    case 'InstallSnapshotResponse': {
      const { done } = m;
      numbers('InstallSnapshotResponse', m, [], ['index', 'nextOffset', 'seq'], maxTerm);
      if (typeof done !== 'boolean') refuse('InstallSnapshotResponse: done is not a boolean');
      return {
        ok: true,
        message: {
          type,
          term,
          from,
          to,
          index: m.index as number,
          nextOffset: m.nextOffset as number,
          done,
          seq: m.seq as number,
        },
      };
    }
    case 'TimeoutNow':
      return { ok: true, message: { type, term, from, to } };
    case 'Propose': {
      const { commands } = m;
      const id = forwardId('Propose', m.id);
      if (!Array.isArray(commands)) refuse('Propose: commands is not an array');
      if (commands.length === 0) refuse('Propose: no commands');
      if (commands.length > maxEntries)
        refuse(`Propose: more than ${maxEntries} commands`, 'too_many_entries');
      for (let i = 0; i < commands.length; i++)
        if (!isBytes(commands[i])) refuse(`Propose: command ${i} is not bytes`);
      return {
        ok: true,
        message: { type, term, from, to, id, commands: (commands as Uint8Array[]).slice() },
      };
    }
    case 'ReadIndexRequest':
      return { ok: true, message: { type, term, from, to, id: forwardId('ReadIndexRequest', m.id) } };
    case 'ProposeResult':
    case 'ReadIndexResult': {
      const { refused, leader } = m;
      const id = forwardId(type, m.id);
      if (typeof refused !== 'boolean') refuse(`${type}: refused is not a boolean`);
      numbers(type, m, [], ['index'], maxTerm);
      const index = m.index as number;
      if (refused ? index !== 0 : index < 1)
        refuse(`${type}: index ${index} does not match refused ${refused}`);
      if (leader !== undefined && (!refused || !isPeerId(leader, maxId)))
        refuse(`${type}: leader is not a peer name, or the answer is not a refusal`);
      return {
        ok: true,
        message: { type, term, from, to, id, refused, index, ...(leader === undefined ? {} : { leader }) },
      };
    }
    default:
      return refuse(
        `unknown message type ${typeof type === 'string' ? JSON.stringify(type.slice(0, 64)) : typeof type}`,
      );
  }
}
