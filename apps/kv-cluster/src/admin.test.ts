import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RaftError } from '@raft/core';
import { afterEach, describe, expect, it } from 'vitest';
import { adminCommand, formatView, runAdmin } from './admin.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return RaftError.isInstance(err) ? err.code : 'not a RaftError';
  }
  return undefined;
}

describe('raft-kv members / transfer: arguments', () => {
  const http = { http: '127.0.0.1:8001' };
  it('parses list, add, remove and transfer', () => {
    expect(adminCommand('members', http, [])).toEqual({
      http: { host: '127.0.0.1', port: 8001 },
      timeoutMs: 60_000,
      adminToken: null,
      ca: null,
      action: 'list',
    });
    expect(adminCommand('members', { ...http, timeout: '5000' }, ['list'])).toMatchObject({
      action: 'list',
      timeoutMs: 5000,
    });
    expect(adminCommand('members', http, ['add', 'n4', 'ws://127.0.0.1:7004'])).toMatchObject({
      action: 'add',
      id: 'n4',
      url: 'ws://127.0.0.1:7004/',
    });
    expect(adminCommand('members', http, ['remove', 'n1'])).toMatchObject({ action: 'remove', id: 'n1' });
    expect(adminCommand('transfer', http, ['n2'])).toMatchObject({ action: 'transfer', id: 'n2' });
    expect(adminCommand('members', http, ['cancel'])).toMatchObject({ action: 'cancel' });
    expect(adminCommand('members', { ...http, 'admin-token': 'a' }, [])).toMatchObject({ adminToken: 'a' });
    expect(adminCommand('members', http, [], { RAFT_KV_ADMIN_TOKEN: 'b' })).toMatchObject({
      adminToken: 'b',
    });
  });

  it('refuses a missing --http, a bad id or URL and stray arguments with RAFT_INVALID_ARGUMENT', () => {
    for (const fn of [
      () => adminCommand('members', {}, []),
      () => adminCommand('members', { http: 'nope' }, []),
      () => adminCommand('members', http, ['add', 'n4']),
      () => adminCommand('members', http, ['add', 'n 4', 'ws://h:1']),
      () => adminCommand('members', http, ['add', 'n4', 'http://h:1']),
      () => adminCommand('members', http, ['remove']),
      () => adminCommand('members', http, ['drop', 'n1']),
      () => adminCommand('members', http, ['list', 'x']),
      () => adminCommand('transfer', http, []),
      () => adminCommand('transfer', http, ['n1', 'n2']),
      () => adminCommand('members', { ...http, timeout: '0' }, []),
    ]) {
      expect(code(fn)).toBe('RAFT_INVALID_ARGUMENT');
    }
  });

  it('renders the cluster view', () => {
    expect(
      formatView({
        leader: null,
        configuration: { members: ['n1', 'n2'], learners: ['n3'] },
        peers: { n1: 'ws://h:1/' },
      }),
    ).toEqual([
      'leader:  (none known)',
      'members: n1, n2',
      'learners (catching up): n3',
      'peers:',
      '  n1  ws://h:1/',
    ]);
  });
});

describe('raft-kv members: talking to a node', () => {
  let server: Server | null = null;
  afterEach(async () => {
    await new Promise((r) => server?.close(r) ?? r(undefined));
    server = null;
  });

  /** A fake node: `answers` are given in turn to the membership request; GET /cluster answers `view`. */
  async function node(
    answers: [number, object][],
    view: (requests: string[]) => object,
  ): Promise<{ port: number; requests: string[] }> {
    const requests: string[] = [];
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      requests.push(`${req.method} ${req.url}`);
      req.resume();
      const [status, body] =
        req.url === '/cluster' && req.method === 'GET'
          ? [200, view(requests)]
          : (answers.shift() ?? [500, {}]);
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    return { port: (server.address() as AddressInfo).port, requests };
  }

  const VIEW = {
    leader: 'n1',
    configuration: { members: ['n1', 'n2', 'n3', 'n4'] },
    peers: { n4: 'ws://127.0.0.1:7004/' },
  };
  const CATCHING_UP = { ...VIEW, configuration: { members: ['n1', 'n2', 'n3'], learners: ['n4'] } };

  it('retries an answer that leaves the outcome open, and after a 504 waits for the cluster to show the change', async () => {
    const posts = (requests: string[]): number =>
      requests.filter((r) => r === 'POST /cluster/members').length;
    const { port, requests } = await node(
      [
        [503, { error: 'election_in_progress' }],
        [504, { error: 'timeout' }],
        [409, { error: 'config_change_in_progress' }],
      ],
      // The earlier attempt, still running when the 409 came, is done after it.
      (requests) => (posts(requests) >= 3 ? VIEW : CATCHING_UP),
    );
    const lines: string[] = [];
    const cmd = adminCommand('members', { http: `127.0.0.1:${port}`, timeout: '20000' }, [
      'add',
      'n4',
      'ws://127.0.0.1:7004',
    ]);
    expect(await runAdmin(cmd, (l) => lines.push(l), 10)).toBe(0);
    expect(lines).toContain('members: n1, n2, n3, n4');
    expect(posts(requests)).toBe(3);
  });

  it('fails at once on 400, and on a 409 when nothing of its own may be running', async () => {
    const bad = await node([[400, { error: 'bad_request', message: 'n9 is not a member' }]], () => VIEW);
    const run = (action: string[]): Promise<number> =>
      runAdmin(adminCommand('members', { http: `127.0.0.1:${bad.port}` }, action), () => undefined);
    await expect(run(['remove', 'n9'])).rejects.toMatchObject({
      code: 'RAFT_INVALID_ARGUMENT',
      message: expect.stringContaining('n9 is not a member') as string,
    });
    await new Promise((r) => server?.close(r));
    const busy = await node([[409, { error: 'config_change_in_progress' }]], () => VIEW);
    await expect(
      runAdmin(
        adminCommand('members', { http: `127.0.0.1:${busy.port}` }, ['remove', 'n2']),
        () => undefined,
      ),
    ).rejects.toMatchObject({
      code: 'RAFT_CONFIG_CHANGE_IN_PROGRESS',
    });
  });
});
