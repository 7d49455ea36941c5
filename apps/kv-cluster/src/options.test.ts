import { RaftError } from '@raft/core';
import { describe, expect, it } from 'vitest';
import { clusterOptions, nodeOptions, parseHostPort, parsePeers, type RawNodeOptions } from './options.js';

const NODE: RawNodeOptions = {
  id: 'n1',
  listen: '127.0.0.1:7001',
  http: '127.0.0.1:8001',
  data: './data/n1',
  peers: 'n1=ws://127.0.0.1:7001,n2=ws://127.0.0.1:7002,n3=ws://127.0.0.1:7003',
};

/** The error `fn` throws: a RaftError with code RAFT_INVALID_ARGUMENT whose message names `option`. */
function invalid(fn: () => unknown, option: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(RaftError.isInstance(caught) && caught.code).toBe('RAFT_INVALID_ARGUMENT');
  expect((caught as Error).message).toContain(option);
}

describe('raft-kv node options', () => {
  it('accepts the command line of API.md, with defaults', () => {
    const o = nodeOptions(NODE);
    expect(o).toMatchObject({
      id: 'n1',
      listen: { host: '127.0.0.1', port: 7001 },
      http: { host: '127.0.0.1', port: 8001 },
      secret: null,
      requestTimeoutMs: 5000,
      logLevel: 'info',
    });
    expect([...o.peers.keys()]).toEqual(['n1', 'n2', 'n3']);
    expect(o.peers.get('n2')).toBe('ws://127.0.0.1:7002/');
  });

  it('takes the secret from --secret, else RAFT_SECRET', () => {
    expect(nodeOptions(NODE, { RAFT_SECRET: 'env' }).secret).toBe('env');
    expect(nodeOptions({ ...NODE, secret: 'flag' }, { RAFT_SECRET: 'env' }).secret).toBe('flag');
    invalid(() => nodeOptions({ ...NODE, secret: '' }), '--secret');
    invalid(() => nodeOptions(NODE, { RAFT_SECRET: '' }), 'RAFT_SECRET');
  });

  it('names the missing or bad option', () => {
    for (const option of ['id', 'listen', 'http', 'data', 'peers'] as const) {
      invalid(() => nodeOptions({ ...NODE, [option]: undefined }), `--${option}`);
    }
    invalid(() => nodeOptions({ ...NODE, id: 'n 1' }), '--id');
    invalid(() => nodeOptions({ ...NODE, id: 'n4' }), '--peers');
    invalid(() => nodeOptions({ ...NODE, listen: '7001' }), '--listen');
    invalid(() => nodeOptions({ ...NODE, http: '127.0.0.1:99999' }), '--http');
    invalid(() => nodeOptions({ ...NODE, http: NODE.listen }), '--http');
    invalid(() => nodeOptions({ ...NODE, 'request-timeout': '5s' }), '--request-timeout');
    invalid(() => nodeOptions({ ...NODE, 'request-timeout': '10' }), '--request-timeout');
    invalid(() => nodeOptions({ ...NODE, 'log-level': 'verbose' }), '--log-level');
  });

  it('takes --election-timeout MIN-MAX and --heartbeat-interval, each checked against the other', () => {
    expect(nodeOptions(NODE).timing).toEqual({ electionTimeoutMs: [1000, 2000], heartbeatIntervalMs: 100 });
    expect(
      nodeOptions({ ...NODE, 'election-timeout': '300-600', 'heartbeat-interval': '50' }).timing,
    ).toEqual({ electionTimeoutMs: [300, 600], heartbeatIntervalMs: 50 });
    // A short election timeout alone brings the default heartbeat down with it.
    expect(nodeOptions({ ...NODE, 'election-timeout': '150-300' }).timing).toEqual({
      electionTimeoutMs: [150, 300],
      heartbeatIntervalMs: 75,
    });
    expect(nodeOptions({ ...NODE, 'election-timeout': '500-500' }).timing.electionTimeoutMs).toEqual([
      500, 500,
    ]);
    invalid(() => nodeOptions({ ...NODE, 'election-timeout': '1000' }), '--election-timeout');
    invalid(() => nodeOptions({ ...NODE, 'election-timeout': '2000-1000' }), '--election-timeout');
    invalid(() => nodeOptions({ ...NODE, 'election-timeout': '5-10' }), '--election-timeout');
    invalid(() => nodeOptions({ ...NODE, 'heartbeat-interval': '1000' }), '--heartbeat-interval');
    invalid(() => nodeOptions({ ...NODE, 'heartbeat-interval': '0' }), '--heartbeat-interval');
    invalid(
      () => clusterOptions({ nodes: '3', data: 'd', 'election-timeout': '400-300' }),
      '--election-timeout',
    );
  });

  it('takes --snapshot-every (0 turns snapshots off) and --join', () => {
    expect(nodeOptions(NODE)).toMatchObject({ snapshotEvery: 10000, join: false });
    expect(nodeOptions({ ...NODE, 'snapshot-every': '0', join: true })).toMatchObject({
      snapshotEvery: 0,
      join: true,
    });
    expect(nodeOptions({ ...NODE, 'snapshot-every': '500' }).snapshotEvery).toBe(500);
    invalid(() => nodeOptions({ ...NODE, 'snapshot-every': '-1' }), '--snapshot-every');
    invalid(() => nodeOptions({ ...NODE, 'snapshot-every': '1e4' }), '--snapshot-every');
    invalid(() => nodeOptions({ ...NODE, 'snapshot-every': '' }), '--snapshot-every');
    expect(clusterOptions({ nodes: '3', data: 'd', 'snapshot-every': '0' }).snapshotEvery).toBe(0);
    invalid(() => clusterOptions({ nodes: '3', data: 'd', 'snapshot-every': 'x' }), '--snapshot-every');
  });

  it('parses IPv6 addresses in brackets', () => {
    expect(parseHostPort('--http', '[::1]:8001')).toEqual({ host: '::1', port: 8001 });
    expect(parseHostPort('--http', 'localhost:1')).toEqual({ host: 'localhost', port: 1 });
    invalid(() => parseHostPort('--http', '::1:8001'), '--http');
    invalid(() => parseHostPort('--http', '127.0.0.1:0'), '--http');
  });

  it('accepts :PORT (every interface), as etcd and rqlite do', () => {
    expect(parseHostPort('--listen', ':29001')).toEqual({ host: '', port: 29001 });
    // Every interface is not loopback: a secret is required (secure by default).
    invalid(() => nodeOptions({ ...NODE, listen: ':7001', http: ':8001' }), '--secret');
    expect(nodeOptions({ ...NODE, secret: 's', listen: ':7001', http: ':8001' })).toMatchObject({
      listen: { host: '', port: 7001 },
      http: { host: '', port: 8001 },
    });
    invalid(() => nodeOptions({ ...NODE, secret: 's', listen: ':7001', http: ':7001' }), '--http');
    invalid(() => parseHostPort('--http', ':'), '--http');
    invalid(() => parseHostPort('--http', ':0'), '--http');
    invalid(() => parseHostPort('--http', '8001'), '--http');
  });

  it('checks every member of --peers', () => {
    invalid(() => parsePeers('--peers', ''), '--peers');
    invalid(() => parsePeers('--peers', 'n1'), '--peers');
    invalid(() => parsePeers('--peers', 'n1=http://127.0.0.1:7001'), 'ws://');
    invalid(() => parsePeers('--peers', 'n1=ws://127.0.0.1'), 'port');
    invalid(() => parsePeers('--peers', 'n1=ws://127.0.0.1:7001,n1=ws://127.0.0.1:7002'), 'twice');
    invalid(() => parsePeers('--peers', 'n1=not a url'), 'not a URL');
    expect([...parsePeers('--peers', ' a=ws://h:1 , b=ws://[::1]:2 ').entries()]).toEqual([
      ['a', 'ws://h:1/'],
      ['b', 'ws://[::1]:2/'],
    ]);
  });
});

describe('raft-kv node: secure by default', () => {
  const exposed = { ...NODE, listen: '0.0.0.0:7001', peers: 'n1=ws://10.0.0.1:7001,n2=ws://10.0.0.2:7001' };

  it('refuses a non-loopback --listen or --http without a secret, unless --insecure', () => {
    invalid(() => nodeOptions(exposed), '--secret');
    invalid(() => nodeOptions({ ...NODE, http: '192.168.1.5:8001' }), '--insecure');
    expect(nodeOptions({ ...exposed, insecure: true })).toMatchObject({ insecure: true, secret: null });
    expect(nodeOptions({ ...exposed, secret: 's' })).toMatchObject({ insecure: false, secret: 's' });
    expect(nodeOptions(exposed, { RAFT_SECRET: 's' })).toMatchObject({ secret: 's' });
    // Loopback in every spelling needs no secret.
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '[::1]'])
      expect(nodeOptions({ ...NODE, listen: `${host}:7001`, http: `${host}:8001` }).secret).toBeNull();
  });

  it('takes the peer TLS files together, and wss:// peer URLs only with them', () => {
    const tls = { 'peer-cert-file': 'n1.crt', 'peer-key-file': 'n1.key', 'peer-trusted-ca-file': 'ca.crt' };
    const wss = 'n1=wss://127.0.0.1:7001,n2=wss://127.0.0.1:7002';
    expect(nodeOptions({ ...NODE, ...tls, peers: wss }).peerTls).toEqual({
      certFile: 'n1.crt',
      keyFile: 'n1.key',
      caFile: 'ca.crt',
    });
    invalid(() => nodeOptions({ ...NODE, peers: wss }), '--peer-cert-file');
    invalid(() => nodeOptions({ ...NODE, ...tls }), 'wss://');
    invalid(() => nodeOptions({ ...NODE, peers: wss, 'peer-cert-file': 'n1.crt' }), '--peer-key-file');
  });

  it('takes the client API TLS files, the allowed hosts and the admin token', () => {
    expect(nodeOptions({ ...NODE, 'cert-file': 'a.crt', 'key-file': 'a.key' }).clientTls).toEqual({
      certFile: 'a.crt',
      keyFile: 'a.key',
      caFile: null,
    });
    invalid(() => nodeOptions({ ...NODE, 'cert-file': 'a.crt' }), '--key-file');
    invalid(() => nodeOptions({ ...NODE, 'trusted-ca-file': 'ca.crt' }), '--trusted-ca-file');
    expect(nodeOptions({ ...NODE, 'allowed-hosts': 'kv.example, [fd00::1]' }).allowedHosts).toEqual([
      'kv.example',
      'fd00::1',
    ]);
    invalid(() => nodeOptions({ ...NODE, 'allowed-hosts': 'http://x' }), '--allowed-hosts');
    expect(nodeOptions(NODE, { RAFT_KV_ADMIN_TOKEN: 't' }).adminToken).toBe('t');
    expect(nodeOptions({ ...NODE, 'admin-token': 'u' }, { RAFT_KV_ADMIN_TOKEN: 't' }).adminToken).toBe('u');
    invalid(() => nodeOptions({ ...NODE, 'admin-token': '' }), '--admin-token');
  });
});

describe('raft-kv cluster options', () => {
  it('has the defaults of API.md', () => {
    expect(clusterOptions({ nodes: '3', data: './data' })).toEqual({
      nodes: 3,
      data: './data',
      host: '127.0.0.1',
      peerPort: 7001,
      httpPort: 8001,
      secret: null,
      requestTimeoutMs: 5000,
      logLevel: 'info',
      snapshotEvery: 10000,
      timing: { electionTimeoutMs: [1000, 2000], heartbeatIntervalMs: 100 },
      adminToken: null,
    });
  });

  it('names the bad option', () => {
    invalid(() => clusterOptions({ data: 'd' }), '--nodes');
    invalid(() => clusterOptions({ nodes: '0', data: 'd' }), '--nodes');
    invalid(() => clusterOptions({ nodes: '16', data: 'd' }), '--nodes');
    invalid(() => clusterOptions({ nodes: '3' }), '--data');
    invalid(() => clusterOptions({ nodes: '3', data: 'd', 'peer-port': '8000' }), '--http-port');
    invalid(() => clusterOptions({ nodes: '3', data: 'd', 'http-port': '65535' }), '--http-port');
  });
});
