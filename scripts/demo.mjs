#!/usr/bin/env node
// `pnpm demo [raft-kv cluster options]`: builds raft-kv and what it needs, showing the
// progress, then runs `raft-kv cluster --nodes 3 --data ./data` in this process until
// Ctrl-C. The root script is `exec node scripts/demo.mjs`: with no shell in between, a
// Ctrl-C stops the cluster cleanly and pnpm exits 0 (a shell would die of the SIGINT and
// pnpm would report the script as failed).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from './packages.mjs';

console.log('building raft-kv and the packages it uses (about a minute the first time; cached after)...');
const build = spawnSync(
  'pnpm',
  ['turbo', 'run', 'build', '--filter=@raft/kv-cluster...', '--output-logs=new-only', '--log-prefix=task'],
  { cwd: ROOT, stdio: 'inherit' },
);
if (build.status !== 0) process.exit(build.status ?? 1);

const cli = join(ROOT, 'apps', 'kv-cluster', 'dist', 'cli.js');
process.argv = [
  process.argv[0],
  cli,
  'cluster',
  '--nodes',
  '3',
  '--data',
  './data',
  ...process.argv.slice(2),
];
await import(pathToFileURL(cli).href);
