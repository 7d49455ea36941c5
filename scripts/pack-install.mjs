#!/usr/bin/env node
// `pnpm test:pack`: installs the packages as a user would, from their tarballs, with plain
// npm, in a new project outside the workspace (under the OS temp directory), and runs there:
//   1. `require()` and `import` of every entry point (Node >= 20.19 requires ES modules);
//   2. a 3-peer cluster on @raft/log-level + @raft/transport-ws on 127.0.0.1 (cluster.mjs);
//   3. every ```ts example of the root README and of each package's README as shipped,
//      type-checked against the shipped types, then run: each must exit by itself
//      (a block right after `<!-- not run: why -->` is skipped);
//   4. the @raft/testkit LogStore conformance suite, with vitest from npm, against the small
//      store of docs/log-store.md (the guide's two files, taken from the page as written).
// Build first (`pnpm test:pack` does). Third-party dependencies come from the npm registry.
// Every step has a deadline; the temporary directory goes at the end, pass or fail
// (KEEP=1 keeps it).
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { pack, publishablePackages, ROOT } from './packages.mjs';

const FIXTURES = join(ROOT, 'scripts', 'pack-install');
const started = performance.now();
/** The commands running now. */
const running = new Set();

/** Runs a command with a deadline; rejects with its output when it fails or overruns. */
function run(cmd, args, { cwd, timeoutMs, env = cleanEnv(), quiet = false }) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    running.add(child);
    child.on('exit', () => running.delete(child));
    let output = '';
    const onData = (chunk) => {
      output += chunk;
      if (!quiet) process.stdout.write(chunk);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, 'SIGKILL'); // the whole process group: npm's children too
      } catch {}
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const what = `${cmd} ${args.join(' ')}`;
      if (timedOut) reject(new Error(`${what}: did not exit within ${timeoutMs / 1000} s\n${output}`));
      else if (code !== 0)
        reject(new Error(`${what}: ${signal ?? `exit code ${code}`}\n${quiet ? output : ''}`));
      else resolve(output);
    });
  });
}

/** The environment without what pnpm passes to scripts (npm_config_*, ...): npm as a user runs it. */
function cleanEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(npm_|pnpm_|PNPM_)/i.test(k) || k === 'NODE_OPTIONS' || k === 'INIT_CWD') continue;
    env[k] = v;
  }
  env.NO_COLOR = '1';
  return env;
}

/** The ```ts blocks of a README: { line, code }, minus those marked `<!-- not run: ... -->`. */
export function examples(markdown) {
  const lines = markdown.split('\n');
  const found = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^```ts\s*$/.test(lines[i])) continue;
    const end = lines.findIndex((l, j) => j > i && /^```\s*$/.test(l));
    if (end < 0) throw new Error(`unclosed code block at line ${i + 1}`);
    let k = i - 1;
    while (k >= 0 && lines[k].trim() === '') k--;
    if (!(k >= 0 && /^<!--\s*not run:/.test(lines[k])))
      found.push({ line: i + 1, code: lines.slice(i + 1, end).join('\n') });
    i = end;
  }
  return found;
}

/** The code block right after `<!-- file: NAME -->` in a markdown document. */
function fileBlock(markdown, name) {
  const start = markdown.indexOf(`<!-- file: ${name} -->\n`);
  if (start < 0) throw new Error(`no block <!-- file: ${name} --> in the guide`);
  const m = /^```\w*\n([\s\S]*?)\n```$/m.exec(markdown.slice(start));
  if (m === null) throw new Error(`no code block after <!-- file: ${name} -->`);
  return `${m[1]}\n`;
}

const step = (name) => console.log(`\n== ${name} (${((performance.now() - started) / 1000).toFixed(0)} s)`);

const packages = publishablePackages();
for (const p of packages) {
  if (!existsSync(join(p.dir, 'dist', 'index.js')))
    throw new Error(`${p.name} is not built (${relative(ROOT, p.dir)}/dist): run pnpm build first`);
}

const work = mkdtempSync(join(tmpdir(), 'raft-pack-install-'));
// Interrupted: stop what runs (each child leads its own process group) and clean up.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    for (const child of running) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
    }
    rmSync(work, { recursive: true, force: true });
    console.error(`pack-install: interrupted (${signal})`);
    process.exit(130);
  });
}
let ok = false;
try {
  step(`packing ${packages.length} packages into ${work}`);
  const tarballs = join(work, 'tarballs');
  mkdirSync(tarballs);
  const deps = {};
  for (const p of packages) {
    const tgz = pack(p.dir, tarballs);
    deps[p.name] = `file:${tgz}`;
    console.log(`${p.name}: ${relative(work, tgz)}`);
  }

  step('npm install (a new project outside the workspace)');
  const project = join(work, 'project');
  mkdirSync(project);
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify(
      {
        name: 'raft-pack-install-test',
        private: true,
        type: 'module',
        dependencies: deps,
        devDependencies: { vitest: '^4.1.0', typescript: '~5.9.3', '@types/node': '^20.19.0' },
      },
      null,
      2,
    ),
  );
  await run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: project,
    timeoutMs: 300_000,
  });
  const copies = await run('npm', ['ls', '--all', '--parseable', '@raft/core'], {
    cwd: project,
    timeoutMs: 60_000,
    quiet: true,
  });
  const corePaths = [
    ...new Set(
      copies
        .trim()
        .split('\n')
        .filter((l) => l.endsWith('@raft/core')),
    ),
  ];
  if (corePaths.length !== 1)
    throw new Error(`expected one copy of @raft/core, found:\n${corePaths.join('\n')}`);
  console.log('one copy of @raft/core (a peer dependency of the others)');

  step('tarball contents: no build info, every source map resolves');
  let maps = 0;
  for (const p of packages) {
    const dir = join(project, 'node_modules', p.name);
    for (const file of readdirSync(dir, { recursive: true })) {
      if (file.endsWith('.tsbuildinfo')) throw new Error(`${p.name} ships ${file}`);
      if (!file.endsWith('.map')) continue;
      maps++;
      const map = JSON.parse(readFileSync(join(dir, file), 'utf8'));
      for (const source of map.sources) {
        const target = join(dir, dirname(file), map.sourceRoot ?? '', source);
        if (!existsSync(target)) throw new Error(`${p.name}/${file}: source ${source} is not in the tarball`);
      }
    }
  }
  console.log(`${maps} source maps, every source shipped; no .tsbuildinfo`);

  step('require() and import of every entry point');
  const entryPoints = [];
  for (const p of packages) {
    const pkg = JSON.parse(readFileSync(join(project, 'node_modules', p.name, 'package.json'), 'utf8'));
    for (const sub of Object.keys(pkg.exports))
      entryPoints.push(sub === '.' ? p.name : `${p.name}${sub.slice(1)}`);
  }
  // The testkit suites import vitest, which must not be loaded outside a test run.
  const loadable = entryPoints.filter(
    (e) => e !== '@raft/testkit/log-store' && e !== '@raft/testkit/transport',
  );
  const check = [
    `for (const e of ${JSON.stringify(loadable)}) {`,
    '  const m = require(e);',
    "  if (Object.keys(m).length === 0) throw new Error(e + ': require() gave no exports');",
    '}',
    "console.log('require() ok: ' + " + JSON.stringify(loadable.join(', ')) + ');',
  ].join('\n');
  writeFileSync(join(project, 'require.cjs'), check);
  await run(process.execPath, ['require.cjs'], { cwd: project, timeoutMs: 60_000 });
  writeFileSync(
    join(project, 'import.mjs'),
    `for (const e of ${JSON.stringify(loadable)}) await import(e);\nconsole.log('import ok');\n`,
  );
  await run(process.execPath, ['import.mjs'], { cwd: project, timeoutMs: 60_000 });

  step('a 3-peer cluster: @raft/log-level + @raft/transport-ws on 127.0.0.1');
  copyFileSync(join(FIXTURES, 'cluster.mjs'), join(project, 'cluster.mjs'));
  await run(process.execPath, ['cluster.mjs'], { cwd: project, timeoutMs: 120_000 });

  step('README examples: type-checked against the shipped types, then run');
  const readmes = [['root', join(ROOT, 'README.md')]];
  for (const p of packages)
    readmes.push([p.name.replace('@raft/', ''), join(project, 'node_modules', p.name, 'README.md')]);
  const exampleDir = join(project, 'examples');
  mkdirSync(exampleDir);
  const files = [];
  for (const [name, file] of readmes) {
    for (const { line, code } of examples(readFileSync(file, 'utf8'))) {
      const base = `${name}-line${line}`;
      writeFileSync(join(exampleDir, `${base}.ts`), `${code}\nexport {};\n`);
      files.push({
        base,
        from: `${relative(ROOT, file).startsWith('..') ? `${name} README (shipped)` : 'README.md'}:${line}`,
      });
    }
  }
  writeFileSync(
    join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        types: ['node'],
        outDir: 'examples-js',
        rootDir: 'examples',
        skipLibCheck: false,
      },
      include: ['examples'],
    }),
  );
  await run(join(project, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], {
    cwd: project,
    timeoutMs: 180_000,
  });
  for (const { base, from } of files) {
    const cwd = join(work, 'run', base); // each example gets an empty working directory (./data, ...)
    mkdirSync(cwd, { recursive: true });
    console.log(`-- ${from}`);
    await run(process.execPath, [join(project, 'examples-js', `${base}.js`)], { cwd, timeoutMs: 60_000 });
  }
  console.log(`${files.length} examples ran and exited by themselves`);

  step('the LogStore conformance suite (@raft/testkit) against the store of docs/log-store.md');
  // The store and its test are the ones docs/log-store.md shows: the guide is tested as written.
  const guide = readFileSync(join(ROOT, 'docs', 'log-store.md'), 'utf8');
  for (const f of ['json-file-log-store.mjs', 'log-store.test.mjs'])
    writeFileSync(join(project, f), fileBlock(guide, f));
  await run(join(project, 'node_modules', '.bin', 'vitest'), ['run', 'log-store.test.mjs'], {
    cwd: project,
    timeoutMs: 300_000,
  });
  ok = true;
} finally {
  if (process.env.KEEP === '1') console.log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
console.log(
  `\npack-install: ${ok ? 'passed' : 'FAILED'} in ${((performance.now() - started) / 1000).toFixed(0)} s`,
);
