import type { Configuration, LogEntry, PeerId } from '../types.js';

/**
 * Configurations as log entries (Raft §6): a peer uses the latest configuration in its
 * log, committed or not. Encoded as JSON so any tool can read a config entry.
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeConfiguration(config: Configuration): Uint8Array {
  return encoder.encode(JSON.stringify({ members: config.members }));
}

/** Decodes a config entry's data; returns undefined when it is not a configuration. */
export function decodeConfiguration(data: Uint8Array): Configuration | undefined {
  try {
    const parsed: unknown = JSON.parse(decoder.decode(data));
    if (typeof parsed !== 'object' || parsed === null) return undefined;
    const members = (parsed as { members?: unknown }).members;
    if (!Array.isArray(members) || !members.every((m): m is string => typeof m === 'string')) return undefined;
    return normalizeMembers(members);
  } catch {
    return undefined;
  }
}

/** Sorted, as configurations are compared and shown. */
export function normalizeMembers(members: readonly PeerId[]): Configuration {
  return { members: [...members].sort() };
}

/** The latest configuration among `entries`, with its index, scanning from the end. */
export function latestConfiguration(entries: readonly LogEntry[]): { config: Configuration; index: number } | undefined {
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i]!;
    if (e.type === 'config') {
      const config = decodeConfiguration(e.data);
      if (config !== undefined) return { config, index: e.index };
    }
  }
  return undefined;
}
