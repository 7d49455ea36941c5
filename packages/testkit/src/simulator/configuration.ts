import type { Configuration, LogEntry } from '@raft/core';

const decoder = new TextDecoder();

/**
 * The configuration a `config` entry holds (core writes it as JSON: `{ members, learners?,
 * outgoing? }`), or undefined when the bytes are not one. Read here independently of
 * core, so that the checker does not trust the code it checks.
 */
export function decodeConfiguration(e: LogEntry): Configuration | undefined {
  if (e.type !== 'config') return undefined;
  try {
    const parsed = JSON.parse(decoder.decode(e.data)) as Record<string, unknown>;
    const names = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
    if (!names(parsed.members)) return undefined;
    const c: Configuration = { members: [...parsed.members].sort() };
    if (names(parsed.learners) && parsed.learners.length > 0) c.learners = [...parsed.learners].sort();
    if (names(parsed.outgoing) && parsed.outgoing.length > 0) c.outgoing = [...parsed.outgoing].sort();
    return c;
  } catch {
    return undefined;
  }
}

/** The voter sets whose majorities a decision needs: the members, and the outgoing voters during a joint change. */
export function voterSets(c: Configuration): string[][] {
  return c.outgoing !== undefined && c.outgoing.length > 0 ? [c.members, c.outgoing] : [c.members];
}

/** Whether `name` votes in `c` (in either set of a joint configuration). */
export function isVoter(c: Configuration, name: string): boolean {
  return c.members.includes(name) || (c.outgoing?.includes(name) ?? false);
}

/** Whether `name` appears in `c` at all: voter, outgoing voter or learner. */
export function isInConfiguration(c: Configuration, name: string): boolean {
  return isVoter(c, name) || (c.learners?.includes(name) ?? false);
}

function sameList(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  const x = a ?? [];
  const y = b ?? [];
  if (x.length !== y.length) return false;
  const s = new Set(x);
  return y.every((n) => s.has(n));
}

/** Whether two configurations are equal (as sets). */
export function sameConfiguration(a: Configuration | null, b: Configuration | null): boolean {
  if (a === null || b === null) return a === b;
  return (
    sameList(a.members, b.members) && sameList(a.learners, b.learners) && sameList(a.outgoing, b.outgoing)
  );
}

/** A final configuration: no outgoing voters and no learners (what `setConfiguration` resolves with). */
export function isFinal(c: Configuration): boolean {
  return (
    (c.outgoing === undefined || c.outgoing.length === 0) &&
    (c.learners === undefined || c.learners.length === 0)
  );
}

/** One short rendering, for traces: `{a,b,c}`, `{a,b | learners d}`, `{a,d | outgoing a,b,c}`. */
export function describeConfiguration(c: Configuration | null): string {
  if (c === null) return 'none';
  let s = `{${c.members.join(',')}`;
  if (c.learners !== undefined && c.learners.length > 0) s += ` | learners ${c.learners.join(',')}`;
  if (c.outgoing !== undefined && c.outgoing.length > 0) s += ` | outgoing ${c.outgoing.join(',')}`;
  return `${s}}`;
}
