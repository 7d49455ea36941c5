import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, freePorts, runCli, until } from './helpers.js';

describe('raft-kv --version', () => {
  it("prints the package's version", async () => {
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    expect(pkg.version).not.toBe('0.0.0');
    const r = await runCli(['--version']);
    expect(r).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
  });
});

describe('raft-kv cluster (the demo)', { timeout: 60_000 }, () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'raft-kv-cluster-cmd-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('prints the curl lines, answers :PORT clients, and exits 0 on one Ctrl-C delivered twice', async () => {
    const [peerPort, httpPort] = await freePorts(2);
    const child = spawn(
      process.execPath,
      [
        CLI,
        'cluster',
        '--nodes',
        '1',
        '--data',
        join(dir, 'data'),
        '--peer-port',
        String(peerPort),
        '--http-port',
        String(httpPort),
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await until(
        'the demo to be ready',
        30_000,
        () => out.includes('Ctrl-C stops the cluster') || undefined,
      );
      const url = `http://127.0.0.1:${httpPort}`;
      for (const line of [
        `curl -X PUT ${url}/kv/hello`,
        `curl ${url}/kv/hello`,
        `curl -X POST ${url}/kv/hello/cas`,
        `curl -X DELETE ${url}/kv/hello`,
        `curl ${url}/status`,
      ])
        expect(out).toContain(line);

      // :PORT as a client address is this machine.
      const members = await runCli(['members', '--http', `:${httpPort}`]);
      expect(members.code).toBe(0);
      expect(members.stdout).toContain('n1');

      // A terminal's Ctrl-C under pnpm: the SIGINT of the terminal and pnpm's copy of it.
      child.kill('SIGINT');
      child.kill('SIGINT');
      expect(await exited).toBe(0);
      expect(out).toContain('all nodes stopped');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
