import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DIRECTORY_FILE, PeerDirectory } from './directory.js';

const FLAG = new Map([
  ['n1', 'ws://127.0.0.1:7001/'],
  ['n2', 'ws://127.0.0.1:7002/'],
]);

let dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  dirs = [];
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'raft-kv-dir-'));
  dirs.push(d);
  return d;
}

const logger = () => ({ info: vi.fn(), warn: vi.fn() });

describe('PeerDirectory', () => {
  it('starts from --peers alone when the data directory has no file', async () => {
    const d = await PeerDirectory.open(FLAG, await tempDir(), logger());
    expect(d.toJSON()).toEqual({ n1: 'ws://127.0.0.1:7001/', n2: 'ws://127.0.0.1:7002/' });
  });

  it('sends every change to the transport and to its file, which the next start reads (--peers wins for the ids it lists)', async () => {
    const dir = await tempDir();
    const d = await PeerDirectory.open(FLAG, dir, logger());
    const transport = { setPeer: vi.fn(), removePeer: vi.fn() };
    d.attach(transport);
    d.changed('n4', 'ws://127.0.0.1:7004/');
    d.changed('n1', null);
    d.changed('n2', 'ws://10.0.0.2:7002/');
    d.changed('n9', null); // unknown: nothing to do
    expect(transport.setPeer.mock.calls).toEqual([
      ['n4', 'ws://127.0.0.1:7004/'],
      ['n2', 'ws://10.0.0.2:7002/'],
    ]);
    expect(transport.removePeer.mock.calls).toEqual([['n1']]);
    await d.flushed();
    const saved = JSON.parse(await readFile(join(dir, DIRECTORY_FILE), 'utf8')) as unknown;
    expect(saved).toEqual({ version: 1, peers: { n2: 'ws://10.0.0.2:7002/', n4: 'ws://127.0.0.1:7004/' } });

    const again = await PeerDirectory.open(FLAG, dir, logger());
    expect(again.toJSON()).toEqual({
      n1: 'ws://127.0.0.1:7001/',
      n2: 'ws://127.0.0.1:7002/',
      n4: 'ws://127.0.0.1:7004/',
    });
  });

  it('takes URLs from a restored snapshot but forgets none', async () => {
    const d = await PeerDirectory.open(FLAG, null, logger());
    const transport = { setPeer: vi.fn(), removePeer: vi.fn() };
    d.attach(transport);
    d.restored(new Map([['n3', 'ws://127.0.0.1:7003/']]));
    expect(d.toJSON()).toEqual({
      n1: 'ws://127.0.0.1:7001/',
      n2: 'ws://127.0.0.1:7002/',
      n3: 'ws://127.0.0.1:7003/',
    });
    expect(transport.removePeer).not.toHaveBeenCalled();
  });

  it('ignores an unreadable file (with a warning) and entries that are not an id and a ws:// URL', async () => {
    const dir = await tempDir();
    await writeFile(
      join(dir, DIRECTORY_FILE),
      '{"version": 1, "peers": {"n3": "ws://h:3", "bad id": "ws://h:4", "n5": "http://h:5", "n6": 6}}',
    );
    expect((await PeerDirectory.open(new Map(), dir, logger())).toJSON()).toEqual({ n3: 'ws://h:3/' });
    await writeFile(join(dir, DIRECTORY_FILE), '{"version": 1, "pee');
    const log = logger();
    expect((await PeerDirectory.open(FLAG, dir, log)).toJSON()).toEqual(Object.fromEntries(FLAG));
    expect(log.warn).toHaveBeenCalledTimes(1);
  });
});
