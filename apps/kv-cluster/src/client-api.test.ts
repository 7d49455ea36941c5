import { describe, expect, it } from 'vitest';
import { clusterOpFromBody, opFromBody, route } from './client-api.js';

describe('routing', () => {
  it('routes the API of API.md', () => {
    expect(route('GET', '/kv/x')).toEqual({ kind: 'kv', key: 'x', method: 'GET' });
    expect(route('PUT', '/kv/x?ignored=1')).toEqual({ kind: 'kv', key: 'x', method: 'PUT' });
    expect(route('DELETE', '/kv/x')).toEqual({ kind: 'kv', key: 'x', method: 'DELETE' });
    expect(route('POST', '/kv/x/cas')).toEqual({ kind: 'cas', key: 'x' });
    expect(route('GET', '/status')).toEqual({ kind: 'status' });
  });

  it('decodes the key after splitting the path, so a key may hold any character', () => {
    expect(route('GET', '/kv/a%2Fb%20c')).toMatchObject({ key: 'a/b c' });
    expect(route('GET', '/kv/..')).toMatchObject({ key: '..' });
    expect(route('GET', '/kv/cas')).toMatchObject({ kind: 'kv', key: 'cas' });
    expect(route('GET', `/kv/${'%C3%A9'.repeat(512)}`)).toMatchObject({ kind: 'kv' });
  });

  it('answers 400 for a bad key, 404 for an unknown path, 405 for a wrong method', () => {
    const status = (method: string, url: string): number | undefined => {
      const r = route(method, url);
      return r.kind === 'reply' ? r.reply.status : undefined;
    };
    expect(status('GET', '/kv/')).toBe(400);
    expect(status('GET', `/kv/${'k'.repeat(1025)}`)).toBe(400);
    expect(status('GET', `/kv/${'%C3%A9'.repeat(512)}x`)).toBe(400);
    expect(status('GET', '/kv/%ZZ')).toBe(400);
    expect(status('GET', '/kv/%ED%A0%80')).toBe(400);
    expect(status('GET', '/')).toBe(404);
    expect(status('GET', '/kv')).toBe(404);
    expect(status('GET', '/kv/a/b')).toBe(404);
    expect(status('GET', '/status/')).toBe(404);
    expect(status('GET', 'http://host/kv/x')).toBe(404);
    expect(status('POST', '/kv/x')).toBe(405);
    expect(status('PATCH', '/kv/x')).toBe(405);
    expect(status('GET', '/kv/x/cas')).toBe(405);
    expect(status('PUT', '/status')).toBe(405);
    const r = route('POST', '/kv/x');
    expect(r.kind === 'reply' && r.reply.headers).toEqual({ allow: 'GET, PUT, DELETE' });
  });
});

describe('request bodies', () => {
  const put = { kind: 'kv', key: 'k', method: 'PUT' } as const;
  const cas = { kind: 'cas', key: 'k' } as const;
  const body = (s: string): Buffer => Buffer.from(s, 'utf8');

  it('takes any JSON value', () => {
    expect(opFromBody(put, body('{"value": {"a": [1, null, "x"]}}'))).toEqual({
      kind: 'put',
      key: 'k',
      value: { a: [1, null, 'x'] },
    });
    expect(opFromBody(put, body('{"value": null}'))).toEqual({ kind: 'put', key: 'k', value: null });
    expect(opFromBody(cas, body('{"expected": 1, "value": 2}'))).toEqual({
      kind: 'cas',
      key: 'k',
      expected: 1,
      value: 2,
    });
  });

  it('answers 400 for malformed JSON or a missing field', () => {
    for (const [r, text] of [
      [put, ''],
      [put, '{"value": '],
      [put, '[]'],
      [put, '"value"'],
      [put, '{"v": 1}'],
      [cas, '{"value": 1}'],
      [cas, '{"expected": 1}'],
    ] as const) {
      expect(opFromBody(r, body(text)), text).toMatchObject({
        status: 400,
        body: { error: 'bad_request', message: expect.any(String) as string },
      });
    }
  });
});

describe('the /cluster routes', () => {
  it('routes the cluster view, membership and leadership', () => {
    expect(route('GET', '/cluster')).toEqual({ kind: 'cluster' });
    expect(route('POST', '/cluster/members')).toEqual({ kind: 'members-add' });
    expect(route('DELETE', '/cluster/members/n4')).toEqual({ kind: 'members-remove', id: 'n4' });
    expect(route('POST', '/cluster/leader')).toEqual({ kind: 'leader' });
    const status = (method: string, url: string): number | undefined => {
      const r = route(method, url);
      return r.kind === 'reply' ? r.reply.status : undefined;
    };
    expect(status('POST', '/cluster')).toBe(405);
    expect(status('GET', '/cluster/members')).toBe(405);
    expect(status('GET', '/cluster/members/n4')).toBe(405);
    expect(status('GET', '/cluster/leader')).toBe(405);
    expect(status('DELETE', '/cluster/members/a%20b')).toBe(400);
    expect(status('DELETE', '/cluster/members/%ZZ')).toBe(400);
    expect(status('DELETE', '/cluster/members/')).toBe(400);
    expect(status('GET', '/cluster/other')).toBe(404);
    expect(status('DELETE', '/cluster/members/n4/x')).toBe(404);
  });

  it('parses {"id", "url"} and {"id"}, answering 400 for anything else', () => {
    const body = (v: unknown): Buffer => Buffer.from(JSON.stringify(v), 'utf8');
    expect(
      clusterOpFromBody({ kind: 'members-add' }, body({ id: 'n4', url: 'ws://127.0.0.1:7004' })),
    ).toEqual({ kind: 'member-add', id: 'n4', url: 'ws://127.0.0.1:7004/' });
    expect(clusterOpFromBody({ kind: 'leader' }, body({ id: 'n2' }))).toEqual({ kind: 'transfer', id: 'n2' });
    for (const [r, v] of [
      ['members-add', { id: 'n4' }],
      ['members-add', { id: 'n4', url: 'http://h:1' }],
      ['members-add', { id: 'n4', url: 'ws://h' }],
      ['members-add', { id: '', url: 'ws://h:1' }],
      ['members-add', [1]],
      ['leader', { id: 7 }],
      ['leader', {}],
    ] as const) {
      expect(clusterOpFromBody({ kind: r }, body(v)), JSON.stringify(v)).toMatchObject({
        status: 400,
        body: { error: 'bad_request' },
      });
    }
    expect(clusterOpFromBody({ kind: 'leader' }, Buffer.from('{'))).toMatchObject({ status: 400 });
  });
});
