import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { webSocketTransport } from '@raft/transport-ws';
import { testCertificates, type TestCertificates } from '@raft/testkit/tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { http, isProblemLine, LocalCluster, runCli, until } from './helpers.js';

const IDS = ['n1', 'n2', 'n3'];
const SECRET = 'tls-test-secret-0123456789abcdef';

let dir: string;
let pki: TestCertificates;
let cluster: LocalCluster;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'raft-kv-tls-'));
  // A throwaway CA, one certificate per node (CN and DNS name = its id), and n9's: valid, but for another name.
  pki = testCertificates([...IDS, 'n9']);
  cluster = await LocalCluster.create({ ids: IDS, dir, secret: SECRET, tls: pki });
  cluster.start();
});

afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(cluster.logs());
});

afterAll(async () => {
  await cluster?.destroy();
  pki?.remove();
  await rm(dir, { recursive: true, force: true });
});

describe(
  'raft-kv over TLS: wss:// between peers (mutual TLS), https:// for clients',
  { timeout: 60_000 },
  () => {
    it('elects a leader, writes through a follower and reads from every node', async () => {
      const leader = await cluster.waitForLeader(IDS, 30_000);
      expect(cluster.url(leader)).toMatch(/^https:/);
      const follower = IDS.find((id) => id !== leader)!;
      const w = await http(`${cluster.url(follower)}/kv/secure`, {
        method: 'PUT',
        body: JSON.stringify({ value: 'over tls' }),
      });
      expect(w).toMatchObject({ status: 200, body: { value: 'over tls' } });
      for (const id of IDS)
        expect(await http(`${cluster.url(id)}/kv/secure`)).toMatchObject({
          status: 200,
          body: { value: 'over tls' },
        });
      // Every node says what protects it.
      for (const id of IDS) {
        const posture = cluster
          .node(id)
          .output.map((l) => JSON.parse(l) as Record<string, unknown>)
          .find((r) => r['msg'] === 'security posture');
        expect(posture).toMatchObject({ secret: true, peerTls: true, clientTls: true });
      }
    });

    it('refuses a peer whose valid certificate names another peer', async () => {
      const leader = await cluster.waitForLeader(IDS, 30_000);
      // An impostor with the secret and a certificate from the cluster's CA, but issued to n9,
      // dials n2 claiming to be n1 (n1 dials n2 in this cluster).
      const impostor = webSocketTransport({
        name: 'n1',
        listen: { port: 0 },
        peers: { n2: cluster.wsUrl('n2').replace(/^https?/, 'wss') },
        secret: SECRET,
        tls: { cert: pki.certs['n9']!.cert, key: pki.certs['n9']!.key, ca: pki.ca },
        reconnect: { initialDelayMs: 50, maxDelayMs: 200 },
      });
      await impostor.start(() => undefined);
      try {
        await until('the impostor to be refused twice', 15_000, () =>
          Promise.resolve(impostor.metrics().refused.auth >= 2 ? true : undefined),
        );
        expect(impostor.connectedPeers()).toEqual([]);
      } finally {
        await impostor.close();
      }
      await until('n2 to log the refusal', 5000, () =>
        Promise.resolve(
          cluster
            .node('n2')
            .output.some((l) => l.includes('its certificate does not name the peer it claims'))
            ? true
            : undefined,
        ),
      );
      // The cluster still serves, and the real n1 still talks to n2.
      expect(await cluster.waitForLeader(IDS, 30_000)).toBe(leader);
      const w = await http(`${cluster.url('n2')}/kv/after-impostor`, { method: 'PUT', body: '{"value": 1}' });
      expect(w.status).toBe(200);
      for (const id of IDS) expect(cluster.node(id).output.filter(isProblemLine)).toEqual([]);
    });

    it('raft-kv members lists the cluster over HTTPS (--cacert)', async () => {
      await cluster.waitForLeader(IDS, 30_000);
      const r = await runCli(['members', '--http', cluster.httpAddr('n1'), '--cacert', pki.caFile]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('members: n1, n2, n3');
      expect(r.stdout).toContain('wss://127.0.0.1:');
    });
  },
);
