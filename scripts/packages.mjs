// The publishable packages of the workspace and a helper that packs them with pnpm (which
// rewrites `workspace:` ranges to the versions being published). Used by lint-packages.mjs,
// pack-install.mjs and release.mjs.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root directory. */
export const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

/** Every non-private package under packages/ and apps/ (every package with `all`): { name, version, dir, private }. */
export function publishablePackages(root = ROOT, { all = false } = {}) {
  const found = [];
  for (const group of ['packages', 'apps']) {
    const base = join(root, group);
    if (!existsSync(base)) continue;
    for (const entry of readdirSync(base, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const dir = join(base, entry.name);
      const file = join(dir, 'package.json');
      if (!existsSync(file)) continue;
      const pkg = JSON.parse(readFileSync(file, 'utf8'));
      if (pkg.private === true && !all) continue;
      found.push({ name: pkg.name, version: pkg.version, dir, private: pkg.private === true });
    }
  }
  return found.sort((a, b) => a.name.localeCompare(b.name));
}

/** Packs one package with `pnpm pack` into `dest`; returns the tarball's absolute path. */
export function pack(dir, dest) {
  const out = execFileSync('pnpm', ['pack', '--pack-destination', dest], {
    cwd: dir,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const tgz = out
    .trim()
    .split('\n')
    .map((l) => l.trim())
    .findLast((l) => l.endsWith('.tgz'));
  if (tgz === undefined) throw new Error(`pnpm pack in ${dir} printed no tarball:\n${out}`);
  return resolve(dest, tgz.replace(/^.*\//, ''));
}
