import { describe, expect, it } from 'vitest';
import { clusterMembers, dashboardLine, prettyLine } from './cluster.js';
import { clusterOptions } from './options.js';

describe('raft-kv cluster', () => {
  it('runs n1..nN on consecutive ports, each knowing every member', () => {
    const members = clusterMembers(
      clusterOptions({ nodes: '3', data: 'd', 'peer-port': '9001', 'http-port': '9101' }),
    );
    expect(members.map((m) => [m.id, m.peerUrl, m.httpUrl])).toEqual([
      ['n1', 'ws://127.0.0.1:9001', 'http://127.0.0.1:9101'],
      ['n2', 'ws://127.0.0.1:9002', 'http://127.0.0.1:9102'],
      ['n3', 'ws://127.0.0.1:9003', 'http://127.0.0.1:9103'],
    ]);
    const args = members[1]!.args;
    expect(args.slice(0, 3)).toEqual(['node', '--id', 'n2']);
    expect(args[args.indexOf('--peers') + 1]).toBe(
      'n1=ws://127.0.0.1:9001,n2=ws://127.0.0.1:9002,n3=ws://127.0.0.1:9003',
    );
    expect(args[args.indexOf('--data') + 1]).toMatch(/^d[/\\]n2$/);
    // The secret travels in the environment, never on a command line others can read.
    expect(args).not.toContain('--secret');
    expect(args[args.indexOf('--snapshot-every') + 1]).toBe('10000');
    const off = clusterMembers(clusterOptions({ nodes: '1', data: 'd', 'snapshot-every': '0' }))[0]!.args;
    expect(off[off.indexOf('--snapshot-every') + 1]).toBe('0');
  });

  it('names the dashboard of n1 first', () => {
    const members = clusterMembers(clusterOptions({ nodes: '3', data: 'd', 'http-port': '9101' }));
    expect(dashboardLine(members)).toBe(
      'dashboard: http://127.0.0.1:9101/dashboard  (every node serves it at /dashboard)',
    );
  });

  it('renders a node log line for a terminal', () => {
    const line = JSON.stringify({
      level: 30,
      time: Date.UTC(2025, 0, 1, 12, 0, 0, 5),
      pid: 1,
      node: 'n1',
      peer: 'n1',
      msg: 'role changed',
      role: 'leader',
      term: 2,
    });
    expect(prettyLine('n1', line)).toBe('n1 | 12:00:00.005 INFO  role changed role=leader term=2');
    expect(prettyLine('n2', 'not json')).toBe('n2 | not json');
  });
});
