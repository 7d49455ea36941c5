#!/usr/bin/env node
// `pnpm sim`: the deterministic cluster simulator. Build first (the root script does).
import { runCli } from '../dist/simulator/index.js';

// `pnpm sim ... | head` closes the pipe early: that is not an error.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

const code = await runCli(process.argv.slice(2), {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  // Between seeds only: a run never yields to the event loop, so that it stays deterministic.
  yieldBetweenRuns: () => new Promise((resolve) => setImmediate(resolve)),
});
process.exitCode = code;
