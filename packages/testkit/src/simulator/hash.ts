import type { LogEntry } from '@raft/core';

const TYPE_CODE = { command: 1, noop: 2, config: 3 } as const;

/**
 * A 32-bit fingerprint of an entry (FNV-1a over its term, type and bytes). Two entries
 * with the same index compare equal when their fingerprints and terms are equal; a
 * collision could only hide a violation, never invent one.
 */
export function entryFingerprint(e: LogEntry): number {
  let h = 0x811c9dc5;
  h = Math.imul(h ^ (e.term & 0xff), 0x01000193);
  h = Math.imul(h ^ ((e.term >>> 8) & 0xff), 0x01000193);
  h = Math.imul(h ^ ((e.term >>> 16) & 0xffff), 0x01000193);
  h = Math.imul(h ^ TYPE_CODE[e.type], 0x01000193);
  const d = e.data;
  for (let i = 0; i < d.length; i++) h = Math.imul(h ^ d[i]!, 0x01000193);
  h = Math.imul(h ^ d.length, 0x01000193);
  return h >>> 0;
}

/** Folds an entry's fingerprint into the hash of the log prefix before it. */
export function chainHash(prev: number, fingerprint: number): number {
  let h = Math.imul(prev ^ 0x9e3779b9, 0x85ebca6b) ^ fingerprint;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
