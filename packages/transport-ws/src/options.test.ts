import { createServer } from 'node:http';
import { describe, expect, it } from 'vitest';
import { RaftError } from '@raft/core';
import { DEFAULTS, resolveOptions } from './options.js';
import type { WebSocketTransportOptions } from './options.js';
import { webSocketTransport } from './transport.js';

const base: WebSocketTransportOptions = {
  name: 'n1',
  listen: { port: 0 },
  peers: { n1: 'ws://127.0.0.1:7001', n2: 'ws://127.0.0.1:7002' },
};

function refusal(options: unknown): RaftError {
  try {
    webSocketTransport(options as WebSocketTransportOptions);
  } catch (error) {
    if (RaftError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('expected the options to be refused');
}

describe('options', () => {
  it('applies the documented defaults', () => {
    const o = resolveOptions(base);
    expect(o.listen).toEqual({ host: '127.0.0.1', port: 0 });
    expect(o.maxPayload).toBe(DEFAULTS.maxPayload);
    expect(o.highWaterMark).toBe(DEFAULTS.highWaterMark);
    expect(o.pingIntervalMs).toBe(5000);
    expect(o.handshakeTimeoutMs).toBe(5000);
    expect(o.reconnect).toEqual({ initialDelayMs: 100, maxDelayMs: 5000, multiplier: 2, jitter: 0.5 });
    expect(o.malformedLimit).toEqual({ count: 10, windowMs: 10_000 });
    expect(o.maxPendingHandshakes).toBe(64);
    expect(o.secret).toBeNull();
    expect(o.tls).toBeNull();
    expect(o.path).toBeNull();
  });

  it('leaves this peer out of the peers it dials, and keeps a secret as bytes', () => {
    const o = resolveOptions({ ...base, secret: 'abc' });
    expect([...o.peers.keys()]).toEqual(['n2']);
    expect(o.secret).toEqual(Buffer.from('abc'));
  });

  it('accepts an existing server instead of listen', () => {
    const server = createServer();
    const { listen: _listen, ...rest } = base;
    expect(resolveOptions({ ...rest, server }).server).toBe(server);
  });

  it.each<[string, unknown]>([
    ['name', { ...base, name: '' }],
    ['name', { ...base, name: 'x'.repeat(257) }],
    ['peers', { ...base, peers: null }],
    ['peers.n2', { ...base, peers: { n2: 'http://127.0.0.1:7002' } }],
    ['peers.n2', { ...base, peers: { n2: 'not a url' } }],
    ['peers.n2', { ...base, peers: { n2: 7002 } }],
    ['listen/server', { name: 'n1', peers: {} }],
    ['listen/server', { ...base, server: createServer() }],
    ['listen.port', { ...base, listen: { port: 70000 } }],
    ['listen.port', { ...base, listen: { host: '127.0.0.1' } }],
    ['listen.host', { ...base, listen: { host: '', port: 0 } }],
    ['server', { name: 'n1', peers: {}, server: {} }],
    ['path', { ...base, path: 'raft' }],
    ['secret', { ...base, secret: '' }],
    ['secret', { ...base, secret: 42 }],
    ['tls', { ...base, tls: 'yes' }],
    ['tls.cert', { ...base, tls: { key: 'k' } }],
    ['tls.key', { ...base, tls: { cert: 'c' } }],
    ['tls.ca', { ...base, tls: { cert: 'c', key: 'k', ca: 5 } }],
    ['tls.requestCert', { ...base, tls: { cert: 'c', key: 'k', requestCert: 'yes' } }],
    ['maxPayload', { ...base, maxPayload: 0 }],
    ['highWaterMark', { ...base, highWaterMark: -1 }],
    ['pingIntervalMs', { ...base, pingIntervalMs: 1.5 }],
    ['handshakeTimeoutMs', { ...base, handshakeTimeoutMs: 0 }],
    ['reconnect', { ...base, reconnect: 5 }],
    ['reconnect.initialDelayMs', { ...base, reconnect: { initialDelayMs: 0 } }],
    ['reconnect.maxDelayMs', { ...base, reconnect: { initialDelayMs: 1000, maxDelayMs: 10 } }],
    ['reconnect.multiplier', { ...base, reconnect: { multiplier: 0.5 } }],
    ['reconnect.jitter', { ...base, reconnect: { jitter: 2 } }],
    ['malformedLimit.count', { ...base, malformedLimit: { count: 0 } }],
    ['malformedLimit.windowMs', { ...base, malformedLimit: { windowMs: -5 } }],
    ['maxPendingHandshakes', { ...base, maxPendingHandshakes: 0 }],
    ['random', { ...base, random: 0.5 }],
    ['onEvent', { ...base, onEvent: 'log' }],
  ])('refuses a bad %s with RAFT_INVALID_ARGUMENT naming it', (option, options) => {
    const error = refusal(options);
    expect(error.code).toBe('RAFT_INVALID_ARGUMENT');
    expect(error.message).toContain(option);
  });

  it('refuses options that are not an object', () => {
    expect(refusal(undefined).code).toBe('RAFT_INVALID_ARGUMENT');
  });
});
