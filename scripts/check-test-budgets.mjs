#!/usr/bin/env node
// Issue 21: every test's budget is a decision. A workspace package with tests must configure
// vitest through the root vitest.shared.ts (`testConfig`), which gives light tests a budget
// sized for a loaded 2-core CI machine and makes each heavy suite name its work and budget.
// Run by `pnpm check`; exits 1 with the offending packages.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const skip = new Set(['node_modules', 'dist', '.turbo', 'coverage', 'data']);

function hasTests(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (skip.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory() ? hasTests(path) : /\.test\.[cm]?[jt]s$/.test(entry.name)) return true;
  }
  return false;
}

const problems = [];
let checked = 0;
for (const group of ['packages', 'apps']) {
  for (const name of readdirSync(join(root, group))) {
    const dir = join(root, group, name);
    if (!existsSync(join(dir, 'package.json')) || !hasTests(dir)) continue;
    checked++;
    const config = join(dir, 'vitest.config.ts');
    const where = relative(root, dir);
    if (!existsSync(config)) {
      problems.push(`${where}: has tests but no vitest.config.ts (use testConfig from vitest.shared.ts)`);
      continue;
    }
    const text = readFileSync(config, 'utf8');
    if (!/from '\.\.\/\.\.\/vitest\.shared\.js'/.test(text) || !/testConfig\(/.test(text)) {
      problems.push(`${where}/vitest.config.ts: must export testConfig({...}) from vitest.shared.ts`);
    }
    if (/testTimeout\s*:/.test(text)) {
      problems.push(
        `${where}/vitest.config.ts: set budgets through testConfig's heavy suites, not testTimeout`,
      );
    }
  }
}
if (problems.length > 0) {
  console.error(`Test budgets (issue 21):\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`Test budgets: ${checked} packages with tests, each configured through vitest.shared.ts.`);
