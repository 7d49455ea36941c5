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
   * Most entries one AppendEntries may carry.
   * @default 65536
   */
  maxEntries?: number;
  /**
   * Longest peer name accepted, in UTF-16 code units.
   * @default MAX_PEER_ID_LENGTH (256)
   */
  maxPeerIdLength?: number;
}

/** The outcome of {@link validateMessage}: the message, or why it was refused. */
export type MessageValidation = { ok: true; message: RaftMessage } | { ok: false; reason: string };

const ENTRY_TYPES: ReadonlySet<string> = new Set<EntryType>(['command', 'noop', 'config']);

function isPeerId(v: unknown, max: number): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= max;
}

function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}

/**
 * Checks that a value received from outside is a well-formed {@link RaftMessage}:
 * every field present with the right type, indexes and terms non-negative safe
 * integers, entries consecutive. Returns a copy holding only the known fields, so
 * nothing unexpected reaches the protocol. Never throws.
 */
export function validateMessage(value: unknown, limits: MessageLimits = {}): MessageValidation {
  const maxEntries = limits.maxEntries ?? 65536;
  const maxId = limits.maxPeerIdLength ?? MAX_PEER_ID_LENGTH;
  if (typeof value !== 'object' || value === null) return { ok: false, reason: 'not an object' };
  const m = value as Record<string, unknown>;
  const { type, term, from, to } = m;
  if (!isIndex(term)) return { ok: false, reason: 'term is not a non-negative integer' };
  if (!isPeerId(from, maxId)) return { ok: false, reason: 'from is not a peer name' };
  if (!isPeerId(to, maxId)) return { ok: false, reason: 'to is not a peer name' };
  switch (type) {
    case 'RequestVote': {
      const { lastLogIndex, lastLogTerm, preVote, transfer } = m;
      if (!isIndex(lastLogIndex) || !isIndex(lastLogTerm))
        return { ok: false, reason: 'RequestVote: bad lastLogIndex or lastLogTerm' };
      if (typeof preVote !== 'boolean') return { ok: false, reason: 'RequestVote: preVote is not a boolean' };
      if (transfer !== undefined && typeof transfer !== 'boolean')
        return { ok: false, reason: 'RequestVote: transfer is not a boolean' };
      return {
        ok: true,
        message: {
          type,
          term,
          from,
          to,
          lastLogIndex,
          lastLogTerm,
          preVote,
          ...(transfer === true ? { transfer } : {}),
        },
      };
    }
    case 'RequestVoteResponse': {
      const { voteGranted, preVote } = m;
      if (typeof voteGranted !== 'boolean' || typeof preVote !== 'boolean')
        return { ok: false, reason: 'RequestVoteResponse: voteGranted or preVote is not a boolean' };
      return { ok: true, message: { type, term, from, to, voteGranted, preVote } };
    }
    case 'AppendEntries': {
      const { prevLogIndex, prevLogTerm, entries, leaderCommit, seq } = m;
      if (!isIndex(prevLogIndex) || !isIndex(prevLogTerm) || !isIndex(leaderCommit) || !isIndex(seq)) {
        return { ok: false, reason: 'AppendEntries: bad prevLogIndex, prevLogTerm, leaderCommit or seq' };
      }
      if (!Array.isArray(entries)) return { ok: false, reason: 'AppendEntries: entries is not an array' };
      if (entries.length > maxEntries)
        return { ok: false, reason: `AppendEntries: more than ${maxEntries} entries` };
      const copy: LogEntry[] = new Array<LogEntry>(entries.length);
      for (let i = 0; i < entries.length; i++) {
        const e: unknown = entries[i];
        if (typeof e !== 'object' || e === null)
          return { ok: false, reason: `AppendEntries: entry ${i} is not an object` };
        const { index, term: et, type: t, data } = e as Record<string, unknown>;
        if (index !== prevLogIndex + 1 + i)
          return {
            ok: false,
            reason: `AppendEntries: entry ${i} has index ${String(index)}, expected ${prevLogIndex + 1 + i}`,
          };
        if (!isIndex(et) || et > term)
          return { ok: false, reason: `AppendEntries: entry ${i} has a bad term` };
        if (typeof t !== 'string' || !ENTRY_TYPES.has(t))
          return { ok: false, reason: `AppendEntries: entry ${i} has an unknown type` };
        if (!isBytes(data)) return { ok: false, reason: `AppendEntries: entry ${i} data is not bytes` };
        copy[i] = { index, term: et, type: t as EntryType, data };
      }
      return {
        ok: true,
        message: { type, term, from, to, prevLogIndex, prevLogTerm, entries: copy, leaderCommit, seq },
      };
    }
    case 'AppendEntriesResponse': {
      const { success, matchIndex, prevLogIndex, conflictIndex, conflictTerm, seq } = m;
      if (typeof success !== 'boolean')
        return { ok: false, reason: 'AppendEntriesResponse: success is not a boolean' };
      if (
        !isIndex(matchIndex) ||
        !isIndex(prevLogIndex) ||
        !isIndex(conflictIndex) ||
        !isIndex(conflictTerm) ||
        !isIndex(seq)
      ) {
        return {
          ok: false,
          reason: 'AppendEntriesResponse: bad matchIndex, prevLogIndex, conflictIndex, conflictTerm or seq',
        };
      }
      return {
        ok: true,
        message: {
          type,
          term,
          from,
          to,
          success,
          matchIndex,
          prevLogIndex,
          conflictIndex,
          conflictTerm,
          seq,
        },
      };
    }
    case 'InstallSnapshot': {
      const { meta, offset, data, done, seq } = m;
      if (!isIndex(offset) || !isIndex(seq))
        return { ok: false, reason: 'InstallSnapshot: bad offset or seq' };
      if (!isBytes(data)) return { ok: false, reason: 'InstallSnapshot: data is not bytes' };
      if (typeof done !== 'boolean') return { ok: false, reason: 'InstallSnapshot: done is not a boolean' };
      if (typeof meta !== 'object' || meta === null)
        return { ok: false, reason: 'InstallSnapshot: meta is not an object' };
      const { index, term: st, configuration } = meta as Record<string, unknown>;
      if (!isIndex(index) || index < 1 || !isIndex(st) || st > term)
        return { ok: false, reason: 'InstallSnapshot: bad meta index or term' };
      if (typeof configuration !== 'object' || configuration === null)
        return { ok: false, reason: 'InstallSnapshot: bad configuration' };
      const { members, learners, outgoing } = configuration as Record<string, unknown>;
      const isNames = (v: unknown, min: number): v is string[] =>
        Array.isArray(v) && v.length >= min && v.length <= 1024 && v.every((x) => isPeerId(x, maxId));
      if (!isNames(members, 1)) return { ok: false, reason: 'InstallSnapshot: bad configuration members' };
      if (learners !== undefined && !isNames(learners, 0))
        return { ok: false, reason: 'InstallSnapshot: bad configuration learners' };
      if (outgoing !== undefined && !isNames(outgoing, 0))
        return { ok: false, reason: 'InstallSnapshot: bad configuration outgoing' };
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
          offset,
          data,
          done,
          seq,
        },
      };
    }
    case 'InstallSnapshotResponse': {
      const { index, nextOffset, done, seq } = m;
      if (!isIndex(index) || !isIndex(nextOffset) || !isIndex(seq))
        return { ok: false, reason: 'InstallSnapshotResponse: bad index, nextOffset or seq' };
      if (typeof done !== 'boolean')
        return { ok: false, reason: 'InstallSnapshotResponse: done is not a boolean' };
      return { ok: true, message: { type, term, from, to, index, nextOffset, done, seq } };
    }
    case 'TimeoutNow':
      return { ok: true, message: { type, term, from, to } };
    default:
      return {
        ok: false,
        reason: `unknown message type ${typeof type === 'string' ? JSON.stringify(type.slice(0, 64)) : typeof type}`,
      };
  }
}
