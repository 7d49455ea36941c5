#!/usr/bin/env node
// The planted-bug table: applies each mutation of packages/testkit/mutations/ (patches of
// @raft/core's source) to a scratch copy of the repository, builds core, runs the simulator
// over N seeds in its default (swarm) mode and core's unit tests, records what failed,
// reverts, and prints a markdown table. Never touches the checkout it is run from.
//
//   node packages/testkit/bin/mutate.mjs [--seeds 300] [--jobs 1] [--only 03,12]
//        [--scratch /tmp/raft-mutate] [--no-unit] [--no-sim] [--sim "--extra flags"] [--unit-bail]
//
// --unit-bail stops core's unit tests at the first failing test (vitest --bail=1): the
// table then says whether a unit test catches the bug, and which file, not how many do.
//
// The scratch copy is made once (tar of the working tree without node_modules, dist and
// .git, then `pnpm install --offline` and a build); later runs reuse it: delete it to
// pick up changes to the simulator or the tests.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../../..');
const mutationsDir = resolve(here, '../mutations');

const args = {
  seeds: 300,
  jobs: 1,
  only: null,
  scratch: '/tmp/raft-mutate',
  unit: true,
  unitBail: false,
  sim: true,
  simArgs: [],
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const next = () => {
    const v = argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    return v;
  };
  if (a === '--seeds') args.seeds = Number(next());
  else if (a === '--jobs') args.jobs = Number(next());
  else if (a === '--only') args.only = next().split(',');
  else if (a === '--scratch') args.scratch = resolve(next());
  else if (a === '--no-unit') args.unit = false;
  else if (a === '--unit-bail') args.unitBail = true;
  else if (a === '--no-sim') args.sim = false;
  else if (a === '--sim') args.simArgs = next().split(/\s+/).filter(Boolean);
  else if (a === '--help' || a === '-h') {
    console.log(
      readFileSync(fileURLToPath(import.meta.url), 'utf8')
        .split('\n')
        .slice(1, 16)
        .join('\n'),
    );
    process.exit(0);
  } else throw new Error(`unknown argument ${a}`);
}
if (!Number.isSafeInteger(args.seeds) || args.seeds < 1) throw new Error('--seeds needs a positive integer');

const log = (line) => process.stderr.write(`${line}\n`);
const sh = (cmd, cmdArgs, cwd) =>
  execFileSync(cmd, cmdArgs, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });

function prepareScratch() {
  const s = args.scratch;
  if (existsSync(join(s, 'packages/testkit/dist/simulator/index.js'))) return;
  log(`scratch copy in ${s}`);
  rmSync(s, { recursive: true, force: true });
  mkdirSync(s, { recursive: true });
  execFileSync(
    'sh',
    [
      '-c',
      `tar -C "${root}" --exclude=node_modules --exclude=dist --exclude=.turbo --exclude=.git -cf - . | tar -C "${s}" -xf -`,
    ],
    { stdio: 'inherit' },
  );
  // Which source the copy was made from, for the table's header.
  let source = 'unknown commit';
  try {
    source = sh('git', ['rev-parse', '--short', 'HEAD'], root).trim();
    if (sh('git', ['status', '--porcelain'], root).trim() !== '') source += ' with uncommitted changes';
  } catch {
    // not a git checkout
  }
  writeFileSync(join(s, '.mutate-source'), `${source}\n`);
  sh('pnpm', ['install', '--offline', '--frozen-lockfile'], s);
  sh('pnpm', ['--filter', '@raft/testkit...', 'run', 'build'], s);
}

// `git apply` refuses a patch that does not apply exactly (no fuzz), and is atomic: a
// patch applies whole or not at all. A patch that does not apply is an error of the
// table, never a bug "not caught", so every patch is checked before anything runs and a
// failure stops the run.
function gitApply(file, extra) {
  const r = spawnSync('git', ['apply', ...extra, file], {
    cwd: args.scratch,
    encoding: 'utf8',
    // The scratch copy has no .git: never let git find an enclosing repository's.
    env: { ...process.env, GIT_CEILING_DIRECTORIES: dirname(args.scratch) },
  });
  return r.status === 0 ? null : (r.stderr || r.stdout || `git apply exited with ${r.status}`).trim();
}

function patch(file, reverse) {
  const err = gitApply(file, reverse ? ['-R'] : []);
  if (err !== null) {
    throw new Error(`mutation ${file} does not ${reverse ? 'revert' : 'apply'} in ${args.scratch}:\n${err}`);
  }
}

function runSim() {
  const r = spawnSync(
    'node',
    [
      'packages/testkit/bin/sim.mjs',
      '--seeds',
      String(args.seeds),
      '--jobs',
      String(args.jobs),
      ...args.simArgs,
    ],
    { cwd: args.scratch, encoding: 'utf8', maxBuffer: 1 << 28 },
  );
  const fails = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^FAIL seed=(\d+) .*? at [\d.]+ms ([\w-]+):/.exec(line);
    if (m) fails.push({ seed: Number(m[1]), check: m[2] });
  }
  const summary = r.stdout.split('\n').find((l) => l.startsWith('seeds ')) ?? null;
  if (summary === null) {
    // The simulator itself crashed (or was killed) part-way: its count of failing seeds
    // covers only the seeds before, so the row says so instead of a number.
    log(`the simulator did not finish (exit ${r.status ?? r.signal}):\n${(r.stderr ?? '').slice(-2000)}`);
    return { fails, summary: null };
  }
  log(summary);
  return { fails, summary };
}

function runUnit() {
  const out = join(args.scratch, '.mutate-vitest.json');
  rmSync(out, { force: true });
  const bail = args.unitBail ? ['--bail=1'] : [];
  spawnSync('pnpm', ['exec', 'vitest', 'run', ...bail, '--reporter=json', `--outputFile=${out}`], {
    cwd: join(args.scratch, 'packages/core'),
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  if (!existsSync(out)) return { failed: -1, files: [] };
  const json = JSON.parse(readFileSync(out, 'utf8'));
  const files = new Set();
  for (const f of json.testResults ?? [])
    if (f.status === 'failed') files.add(f.name.replace(`${join(args.scratch, 'packages/core')}/`, ''));
  return { failed: json.numFailedTests ?? 0, total: json.numTotalTests ?? 0, files: [...files] };
}

function checks(fails) {
  const counts = new Map();
  for (const f of fails) counts.set(f.check, (counts.get(f.check) ?? 0) + 1);
  return [...counts].map(([c, n]) => `\`${c}\` ${n}`).join(', ');
}

prepareScratch();
const titles = new Map(
  readFileSync(join(mutationsDir, 'README.tsv'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split('\t')),
);
const patches = readdirSync(mutationsDir)
  .filter((f) => f.endsWith('.diff'))
  .sort()
  .filter((f) => args.only === null || args.only.some((o) => f.startsWith(o)));
const notApplying = [];
for (const file of patches) {
  const err = gitApply(join(mutationsDir, file), ['--check']);
  if (err !== null) notApplying.push(`${file}:\n  ${err.replace(/\n/g, '\n  ')}`);
}
if (notApplying.length > 0) {
  log(
    `${notApplying.length} mutation(s) do not apply to ${args.scratch} (regenerate them against core's source; delete the scratch copy if it is stale):\n${notApplying.join('\n')}`,
  );
  process.exit(2);
}
const rows = [];
const mode = args.simArgs.length === 0 ? 'default (swarm) mode' : args.simArgs.join(' ');
for (const file of [null, ...patches]) {
  const name = file === null ? 'none' : file.replace(/\.diff$/, '');
  if (file === null && args.only !== null && !args.only.includes('none')) continue;
  log(`--- ${name}`);
  const path = file === null ? null : join(mutationsDir, file);
  if (path !== null) patch(path, false);
  try {
    let built = true;
    try {
      sh('pnpm', ['--filter', '@raft/core', 'run', 'build'], args.scratch);
    } catch (err) {
      built = false;
      log(`does not build: ${String(err.stdout ?? err)}`);
    }
    const sim = built && args.sim ? runSim() : null;
    const unit = built && args.unit ? runUnit() : null;
    const row = {
      name,
      title: file === null ? 'no mutation' : (titles.get(name) ?? name),
      built,
      sim,
      unit,
    };
    rows.push(row);
    log(
      `${name}: sim ${sim === null ? '-' : `${sim.fails.length}/${args.seeds}${sim.fails[0] ? ` first ${sim.fails[0].seed} ${checks(sim.fails)}` : ''}`}; unit ${unit === null ? '-' : `${unit.failed} failing (${unit.files.join(', ')})`}`,
    );
  } finally {
    if (path !== null) patch(path, true);
  }
}
// Leave the scratch copy built from unmutated source.
sh('pnpm', ['--filter', '@raft/core', 'run', 'build'], args.scratch);

const sourceFile = join(args.scratch, '.mutate-source');
const commit = existsSync(sourceFile) ? readFileSync(sourceFile, 'utf8').trim() : 'unknown commit';
console.log(
  `Commit ${commit}, ${new Date().toISOString().slice(0, 10)}: seeds 1-${args.seeds}, ${mode}; core's unit tests (\`vitest run${args.unitBail ? ' --bail=1' : ''}\` in packages/core${args.unitBail ? ': a count of 1 means at least one' : ''}).\n`,
);
console.log('| mutation | sim: failing seeds | first seed | what caught it | core unit tests failing | in |');
console.log('|---|---|---|---|---|---|');
let incomplete = false;
for (const r of rows) {
  if (!r.built) {
    console.log(`| \`${r.name}\` ${r.title} | does not build | | | | |`);
    continue;
  }
  const s = r.sim;
  const u = r.unit;
  if (s !== null && s.summary === null) {
    incomplete = true;
    console.log(
      `| \`${r.name}\` ${r.title} | **the simulator crashed** (${s.fails.length} failing seeds before) | ${s.fails[0]?.seed ?? '-'} | ${checks(s.fails)} | ${u === null ? '-' : u.failed} | ${u === null ? '' : u.files.join(', ')} |`,
    );
    continue;
  }
  if (u !== null && u.failed < 0) incomplete = true;
  console.log(
    `| \`${r.name}\` ${r.title} | ${s === null ? '-' : `${s.fails.length} / ${args.seeds}`} | ${s?.fails[0]?.seed ?? '-'} | ${s === null ? '' : checks(s.fails)} | ${u === null ? '-' : u.failed} | ${u === null ? '' : u.files.join(', ')} |`,
  );
}
if (incomplete) {
  log('some rows are incomplete: the simulator crashed, or the unit tests produced no report (-1)');
  process.exitCode = 1;
}
