import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HELP } from './help.js';

describe('raft-kv --help', () => {
  it('is the command line reference of the README, word for word', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    expect(readme).toContain(HELP);
  });
});
