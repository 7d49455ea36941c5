import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { clientApi } from './client-api.js';
import { HttpGuard, hostName } from './http-guard.js';
import { sendReply } from './http-util.js';
import type { HttpReply, Op } from './ops.js';

const TOKEN = 'admin-token-for-tests';
let server: Server;
let port: number;
const execute = vi.fn((_op: Op, _deadline: number, _hops: number) =>
  Promise.resolve<HttpReply>({ status: 200, body: { ran: true } }),
);

beforeAll(async () => {
  let guard: HttpGuard | null = null;
  const api = (): ((req: IncomingMessage, res: ServerResponse) => void) =>
    clientApi({
      execute,
      status: () => ({}) as never,
      view: () => ({}) as never,
      closing: () => false,
      requestTimeoutMs: 5000,
      onInternalError: () => undefined,
      guard: guard!,
    });
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | null = null;
  // As node.ts composes them: the Host check first, for every route.
  server = createServer((req, res) => {
    const misdirected = guard!.checkHost(req);
    if (misdirected !== undefined) sendReply(res, misdirected, { close: true });
    else handler!(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  guard = new HttpGuard({ allowedHosts: ['127.0.0.1', 'kv.example'], port, adminToken: TOKEN });
  handler = api();
});

afterAll(async () => {
  await new Promise((r) => {
    server.close(r);
    server.closeAllConnections();
  });
});

beforeEach(() => execute.mockClear());

function send(
  method: string,
  path: string,
  body: string | undefined,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: { host: `127.0.0.1:${port}`, ...headers },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const JSON_TYPE = { 'content-type': 'application/json' };

describe('the client API refuses what a web page could send', () => {
  it('a write with a body that is not application/json: 415, nothing runs', async () => {
    for (const [method, path] of [
      ['PUT', '/kv/x'],
      ['POST', '/kv/x/cas'],
    ] as const) {
      const body = '{"expected": null, "value": 1}';
      expect((await send(method, path, body, { 'content-type': 'text/plain' })).status).toBe(415);
      expect((await send(method, path, body, {})).status).toBe(415);
      expect(
        (await send(method, path, body, { 'content-type': 'application/x-www-form-urlencoded' })).status,
      ).toBe(415);
    }
    expect(execute).not.toHaveBeenCalled();
    expect(
      (await send('PUT', '/kv/x', '{"value": 1}', { 'content-type': 'application/json; charset=utf-8' }))
        .status,
    ).toBe(200);
  });

  it('a Host that is not allowed (DNS rebinding): 421 on every route', async () => {
    for (const path of ['/kv/x', '/status', '/cluster', '/metrics']) {
      const r = await send('GET', path, undefined, { host: `evil.example:${port}` });
      expect(r).toMatchObject({ status: 421, body: { error: 'misdirected_request' } });
    }
    expect((await send('GET', '/kv/x', undefined, { host: 'kv.example' })).status).toBe(200);
    expect((await send('GET', '/kv/x', undefined, { host: `localhost:${port}` })).status).toBe(200);
    expect((await send('GET', '/kv/x', undefined, { host: `[::1]:${port}` })).status).toBe(200);
  });

  it('a state-changing request from a foreign Origin: 403; the API’s own origin passes', async () => {
    const put = (origin: string) => send('PUT', '/kv/x', '{"value": 1}', { ...JSON_TYPE, origin });
    expect(await put('http://evil.example')).toMatchObject({
      status: 403,
      body: { error: 'forbidden_origin' },
    });
    expect((await put('null')).status).toBe(403);
    expect((await put(`http://127.0.0.1:${port + 1}`)).status).toBe(403);
    expect(execute).not.toHaveBeenCalled();
    expect((await put(`http://127.0.0.1:${port}`)).status).toBe(200);
    // A read changes nothing: no Origin check.
    expect((await send('GET', '/kv/x', undefined, { origin: 'http://evil.example' })).status).toBe(200);
  });

  it('/cluster/* changes need the admin token: 401 without it or with a wrong one', async () => {
    const add = '{"id": "n9", "url": "ws://127.0.0.1:7009"}';
    for (const auth of [undefined, 'Bearer wrong', `Basic ${TOKEN}`, `Bearer ${TOKEN}x`]) {
      const headers = auth === undefined ? JSON_TYPE : { ...JSON_TYPE, authorization: auth };
      expect((await send('POST', '/cluster/members', add, headers)).status).toBe(401);
      expect((await send('POST', '/cluster/leader', '{"id": "n2"}', headers)).status).toBe(401);
      expect((await send('DELETE', '/cluster/members/n2', undefined, headers)).status).toBe(401);
      expect((await send('DELETE', '/cluster/learners', undefined, headers)).status).toBe(401);
    }
    expect(execute).not.toHaveBeenCalled();
    const auth = { ...JSON_TYPE, authorization: `Bearer ${TOKEN}` };
    expect((await send('POST', '/cluster/members', add, auth)).status).toBe(200);
    expect((await send('DELETE', '/cluster/learners', undefined, auth)).status).toBe(200);
    expect(execute.mock.calls.map((c) => c[0].kind)).toEqual(['member-add', 'member-cancel']);
  });

  it('deeply nested JSON: 400 at the door, on any node', async () => {
    const deep = `{"value": ${'['.repeat(5000)}${']'.repeat(5000)}}`;
    expect(await send('PUT', '/kv/x', deep, JSON_TYPE)).toMatchObject({
      status: 400,
      body: { error: 'bad_request' },
    });
    expect(execute).not.toHaveBeenCalled();
    const ok = `{"value": ${'['.repeat(100)}${']'.repeat(100)}}`;
    expect((await send('PUT', '/kv/x', ok, JSON_TYPE)).status).toBe(200);
  });
});

describe('HttpGuard', () => {
  it('without an admin token, takes /cluster/* changes from loopback clients only', () => {
    const guard = new HttpGuard({ allowedHosts: [], port: 8001, adminToken: null });
    const req = (remoteAddress: string) =>
      ({ headers: {}, socket: { remoteAddress } }) as unknown as IncomingMessage;
    expect(guard.checkAdmin(req('127.0.0.1'))).toBeUndefined();
    expect(guard.checkAdmin(req('::1'))).toBeUndefined();
    expect(guard.checkAdmin(req('::ffff:127.0.0.1'))).toBeUndefined();
    expect(guard.checkAdmin(req('10.0.0.7'))).toMatchObject({ status: 403 });
  });

  it('parses Host headers', () => {
    expect(hostName('LocalHost:8001')).toBe('localhost');
    expect(hostName('[::1]:8001')).toBe('::1');
    expect(hostName('kv.example')).toBe('kv.example');
    expect(hostName('a@b')).toBeNull();
  });
});
