#!/usr/bin/env node
// `pnpm lint:pkg`: publint (strict) and Are the Types Wrong (--profile esm-only) over the
// tarball of every publishable package, as `pnpm pack` makes it. Build first (`pnpm build`).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pack, publishablePackages, ROOT } from './packages.mjs';

const bin = (name) => join(ROOT, 'node_modules', '.bin', name);
const dest = mkdtempSync(join(tmpdir(), 'raft-lint-pkg-'));
let failed = 0;
try {
  for (const pkg of publishablePackages()) {
    const tgz = pack(pkg.dir, dest);
    for (const [tool, args] of [
      ['publint', ['run', tgz, '--strict']],
      ['attw', [tgz, '--profile', 'esm-only', '--format', 'table-flipped', '--no-emoji']],
    ]) {
      try {
        execFileSync(bin(tool), args, { stdio: 'pipe', encoding: 'utf8' });
        console.log(`ok   ${tool} ${pkg.name}`);
      } catch (err) {
        failed++;
        console.log(`FAIL ${tool} ${pkg.name}\n${err.stdout ?? ''}${err.stderr ?? ''}`);
      }
    }
  }
} finally {
  rmSync(dest, { recursive: true, force: true });
}
if (failed > 0) {
  console.error(`lint:pkg: ${failed} check(s) failed`);
  process.exit(1);
}
