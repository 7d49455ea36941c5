#!/usr/bin/env node
// `pnpm release`: versions the packages from the changesets in .changeset/ (versions,
// CHANGELOGs, internal ranges), commits that, builds, checks the tarballs (publint, attw,
// the pack-and-install test) and publishes with `changeset publish`, which runs
// `pnpm publish` so `workspace:` ranges become the versions published. Run it on a clean
// checkout of main with npm credentials; then `git push --follow-tags`.
//
// `pnpm release:dry` (`--dry-run`): the same on a temporary copy of the working tree
// (uncommitted changesets included): versions, packs and `pnpm publish --dry-run`s there,
// prints the release plan and the dependency ranges of each tarball, publishes nothing and
// leaves the repository as it was (it checks).
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { pack, publishablePackages, ROOT } from './packages.mjs';

const dry = process.argv.includes('--dry-run');
const sh = (cmd, args, cwd, opts = {}) =>
  execFileSync(cmd, args, {
    cwd,
    stdio: opts.capture ? ['ignore', 'pipe', 'inherit'] : 'inherit',
    encoding: 'utf8',
    env: opts.env ?? process.env,
  });
const gitStatus = () =>
  sh('git', ['status', '--porcelain', '--untracked-files=all'], ROOT, { capture: true });

/** Versions before and after, and the ranges on other @raft packages, of every publishable package. */
function plan(before, root) {
  const rows = [];
  for (const p of publishablePackages(root, { all: true })) {
    const old = before.find((b) => b.name === p.name)?.version ?? '-';
    rows.push(
      `${p.name.padEnd(26)} ${old.padEnd(8)} -> ${p.version}${p.private ? ' (private: not published)' : ''}`,
    );
  }
  return rows.join('\n');
}

/** Refuses a release plan that takes a 0.x package to 1.0.0 unless RAFT_RELEASE_MAJOR=1. */
function checkNoAccidentalMajor(before, root) {
  const jumped = publishablePackages(root).filter((p) => {
    const old = before.find((b) => b.name === p.name)?.version;
    return old !== undefined && old.startsWith('0.') && !p.version.startsWith('0.');
  });
  if (jumped.length > 0 && process.env.RAFT_RELEASE_MAJOR !== '1') {
    throw new Error(
      `the changesets take ${jumped.map((p) => `${p.name} to ${p.version}`).join(', ')}: a 1.0 release must be ` +
        'deliberate (RAFT_RELEASE_MAJOR=1)',
    );
  }
}

/**
 * Runs `changeset version` in `root`. Changesets bumps every package with a peer
 * dependency on a package that gets a minor release to the next major, and for 0.x that is
 * 1.0.0. So during the versioning, the `workspace:^` peer ranges on @raft packages are
 * widened to `<1.0.0` (a minor of @raft/core stays in range); then they are put back, and
 * `pnpm publish` turns them into `^` + the version released. The packages are one fixed
 * group (.changeset/config.json), so they are always released together, each time with
 * `^` the same version of @raft/core.
 */
function changesetVersion(root) {
  const manifests = publishablePackages(root).map((p) => join(p.dir, 'package.json'));
  const originals = new Map(manifests.map((f) => [f, readFileSync(f, 'utf8')]));
  const widened = [];
  for (const [file, text] of originals) {
    const pkg = JSON.parse(text);
    let changed = false;
    for (const name of Object.keys(pkg.peerDependencies ?? {})) {
      if (name.startsWith('@raft/') && pkg.peerDependencies[name] === 'workspace:^') {
        pkg.peerDependencies[name] = 'workspace:<1.0.0';
        widened.push([file, name]);
        changed = true;
      }
    }
    if (changed) writeFileSync(file, `${JSON.stringify(pkg, null, 2)}\n`);
  }
  try {
    sh('pnpm', ['changeset', 'version'], root);
  } finally {
    for (const [file, name] of widened) {
      const pkg = JSON.parse(readFileSync(file, 'utf8'));
      pkg.peerDependencies[name] = 'workspace:^';
      writeFileSync(file, `${JSON.stringify(pkg, null, 2)}\n`);
    }
  }
}

const before = publishablePackages(ROOT, { all: true });

if (!dry) {
  if (gitStatus() !== '')
    throw new Error('pnpm release: the working tree is not clean; commit or stash first');
  changesetVersion(ROOT);
  checkNoAccidentalMajor(before, ROOT);
  console.log(plan(before, ROOT));
  sh('pnpm', ['install', '--lockfile-only'], ROOT);
  sh('pnpm', ['format'], ROOT);
  sh('git', ['add', '-A'], ROOT);
  sh('git', ['commit', '-m', 'Version packages (changeset version)'], ROOT);
  sh('pnpm', ['turbo', 'run', 'build', '--filter=./packages/*', '--output-logs=errors-only'], ROOT);
  sh('node', ['scripts/lint-packages.mjs'], ROOT);
  sh('node', ['scripts/pack-install.mjs'], ROOT);
  sh('pnpm', ['changeset', 'publish'], ROOT);
  console.log('published; now: git push --follow-tags');
} else {
  const statusBefore = gitStatus();
  for (const p of before.filter((b) => !b.private)) {
    if (!existsSync(join(p.dir, 'dist', 'index.js')))
      throw new Error(`${p.name} is not built: run pnpm release:dry (it builds) or pnpm build`);
  }
  const work = mkdtempSync(join(tmpdir(), 'raft-release-dry-'));
  try {
    // A copy of the working tree as git sees it (tracked and untracked, not ignored files),
    // plus the built dist/ of each package: versioning changes no source.
    const copy = join(work, 'repo');
    const files = sh('git', ['ls-files', '-co', '--exclude-standard', '-z'], ROOT, { capture: true })
      .split('\0')
      .filter((f) => f !== '' && existsSync(join(ROOT, f)));
    for (const f of files) {
      mkdirSync(dirname(join(copy, f)), { recursive: true });
      cpSync(join(ROOT, f), join(copy, f));
    }
    for (const p of before.filter((b) => !b.private))
      cpSync(join(p.dir, 'dist'), join(copy, relative(ROOT, p.dir), 'dist'), { recursive: true });
    console.log(`== a copy of the working tree in ${copy}; pnpm install --offline`);
    sh('pnpm', ['install', '--frozen-lockfile', '--offline', '--reporter=silent'], copy);

    console.log('\n== changeset version (in the copy)');
    changesetVersion(copy);
    checkNoAccidentalMajor(before, copy);
    console.log(`\nrelease plan:\n${plan(before, copy)}`);

    console.log('\n== pnpm pack: the dependency ranges each tarball publishes');
    const tarballs = join(work, 'tarballs');
    mkdirSync(tarballs);
    for (const p of publishablePackages(copy)) {
      const tgz = pack(p.dir, tarballs);
      const manifest = JSON.parse(
        sh('tar', ['-xzf', tgz, '-O', 'package/package.json'], work, { capture: true }),
      );
      const ranges = ['dependencies', 'peerDependencies']
        .flatMap((t) =>
          Object.entries(manifest[t] ?? {}).map(
            ([n, r]) => `${t === 'peerDependencies' ? 'peer ' : ''}${n}@${r}`,
          ),
        )
        .join(', ');
      if (ranges.includes('workspace:'))
        throw new Error(`${p.name}: the tarball keeps a workspace: range (${ranges})`);
      console.log(`${manifest.name}@${manifest.version}: ${ranges}`);
    }

    console.log('\n== pnpm publish -r --dry-run (in the copy; nothing is published)');
    sh('pnpm', ['publish', '-r', '--dry-run', '--no-git-checks', '--report-summary'], copy);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  if (gitStatus() !== statusBefore) throw new Error('release:dry changed the working tree');
  console.log('\nrelease:dry: nothing published, the working tree is unchanged');
}
