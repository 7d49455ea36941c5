import type { Configuration, LogEntry, PeerId } from '../types.js';

/**
 * Configurations as log entries (Raft §6): a peer uses the latest configuration in its
 * log, committed or not. Encoded as JSON so any tool can read a config entry. A change
 * goes through joint consensus: `members` are the new voters and `outgoing` the old
 * ones, and decisions need a majority of each until the final configuration commits.
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeConfiguration(config: Configuration): Uint8Array {
  const out: Configuration = { members: config.members };
  if (config.learners !== undefined && config.learners.length > 0) out.learners = config.learners;
  if (config.outgoing !== undefined && config.outgoing.length > 0) out.outgoing = config.outgoing;
  return encoder.encode(JSON.stringify(out));
}

function names(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((m) => typeof m === 'string');
}

/** Decodes a config entry's data; returns undefined when it is not a configuration. */
export function decodeConfiguration(data: Uint8Array): Configuration | undefined {
  try {
    const parsed: unknown = JSON.parse(decoder.decode(data));
    if (typeof parsed !== 'object' || parsed === null) return undefined;
    const { members, learners, outgoing } = parsed as Record<string, unknown>;
    if (!names(members)) return undefined;
    if (learners !== undefined && !names(learners)) return undefined;
    if (outgoing !== undefined && !names(outgoing)) return undefined;
    return normalizeConfiguration({
      members,
      ...(learners ? { learners } : {}),
      ...(outgoing ? { outgoing } : {}),
    });
  } catch {
    return undefined;
  }
}

/** Sorted, as configurations are compared and shown. */
export function normalizeMembers(members: readonly PeerId[]): Configuration {
  return { members: [...members].sort() };
}

/** Sorted lists, and empty optional lists left out. */
export function normalizeConfiguration(c: Configuration): Configuration {
  const out: Configuration = { members: [...c.members].sort() };
  if (c.learners !== undefined && c.learners.length > 0) out.learners = [...c.learners].sort();
  if (c.outgoing !== undefined && c.outgoing.length > 0) out.outgoing = [...c.outgoing].sort();
  return out;
}

/** Every peer a leader replicates to: voters, outgoing voters and learners. */
export function allPeers(c: Configuration): PeerId[] {
  return [...new Set([...c.members, ...(c.outgoing ?? []), ...(c.learners ?? [])])];
}

/** Whether `a` and `b` hold the same peers, in any order. */
export function sameSet(a: readonly PeerId[], b: readonly PeerId[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(a);
  return b.every((x) => s.has(x));
}

/** The latest configuration among `entries`, with its index, scanning from the end. */
export function latestConfiguration(
  entries: readonly LogEntry[],
): { config: Configuration; index: number } | undefined {
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i]!;
    if (e.type === 'config') {
      const config = decodeConfiguration(e.data);
      if (config !== undefined) return { config, index: e.index };
    }
  }
  return undefined;
}
