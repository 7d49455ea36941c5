/**
 * The error catalogue and the code agree: every code the README documents is produced
 * somewhere in the repository, and a code with a subclass is created only through it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const packages = join(import.meta.dirname, '..', '..');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (p.endsWith('.ts') && !p.endsWith('.test.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const code = readdirSync(packages)
  .map((pkg) => join(packages, pkg, 'src'))
  .filter((dir) => {
    try {
      return statSync(dir).isDirectory();
    } catch {
      return false;
    }
  })
  .flatMap(sources)
  .filter((p) => !p.endsWith(join('core', 'src', 'errors.ts')))
  .map((p) => readFileSync(p, 'utf8'))
  .join('\n');

const SUBCLASSED = [
  'RAFT_NOT_LEADER',
  'RAFT_ELECTION_IN_PROGRESS',
  'RAFT_TIMEOUT',
  'RAFT_NO_PEER',
  'RAFT_STOPPED',
  'RAFT_INVALID_ARGUMENT',
];

describe('the error catalogue', () => {
  it('every code in the README table is produced somewhere', () => {
    const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
    const table = readme.slice(readme.indexOf('## Errors'), readme.indexOf('### What a write'));
    const documented = [...table.matchAll(/^\| (.*?) \|/gm)]
      .flatMap((m) => [...m[1]!.matchAll(/`(RAFT_[A-Z_]+)`/g)].map((c) => c[1]!))
      .filter((c, i, all) => all.indexOf(c) === i);
    expect(documented.length).toBeGreaterThan(10);
    for (const c of documented) {
      const produced = SUBCLASSED.includes(c) || code.includes(`'${c}'`);
      expect(produced, `${c} is documented but never produced`).toBe(true);
    }
  });

  it('a code with a subclass is only created through it', () => {
    for (const c of SUBCLASSED) expect(code).not.toContain(`new RaftError('${c}'`);
  });
});
