import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { RaftError } from '@raft/core';
import type { RaftMessage } from '@raft/core';
import { webSocketTransport } from '../src/index.js';
import { closeServer, heartbeat, listeningServer, waitFor } from './helpers.js';

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const release of cleanup.reverse()) await release();
  cleanup = [];
});

async function rejection(promise: Promise<unknown>): Promise<RaftError> {
  try {
    await promise;
  } catch (error) {
    if (RaftError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}

describe('listening', () => {
  it('rejects start with RAFT_TRANSPORT_UNAVAILABLE, with the cause, when the port is in use', async () => {
    const { server, port } = await listeningServer();
    cleanup.push(() => closeServer(server));
    const t = webSocketTransport({ name: 'n1', listen: { host: '127.0.0.1', port }, peers: {} });
    cleanup.push(() => t.close());
    const error = await rejection(t.start(() => {}));
    expect(error.code).toBe('RAFT_TRANSPORT_UNAVAILABLE');
    expect((error.cause as NodeJS.ErrnoException).code).toBe('EADDRINUSE');
    // The failed start left nothing behind: once the port is free, start works.
    await closeServer(server);
    await t.start(() => {});
    expect(t.address()?.port).toBe(port);
  });

  it('listens on port 0, tells its address, and peers reach it there', async () => {
    const n2 = webSocketTransport({ name: 'n2', listen: { port: 0 }, peers: { n1: 'ws://127.0.0.1:9' } });
    cleanup.push(() => n2.close());
    const got: RaftMessage[] = [];
    await n2.start((m) => got.push(m));
    const address = n2.address()!;
    expect(address.host).toBe('127.0.0.1');
    expect(address.port).toBeGreaterThan(0);
    const n1 = webSocketTransport({
      name: 'n1',
      listen: { port: 0 },
      peers: { n2: `ws://127.0.0.1:${address.port}` },
    });
    cleanup.push(() => n1.close());
    await n1.start(() => {});
    await waitFor(() => n1.connectedPeers().includes('n2'), 'the connection');
    n1.send('n2', heartbeat('n1', 'n2', 1));
    await waitFor(() => got.length === 1, 'a message');
    await n2.close();
    expect(n2.address()).toBeNull();
  });

  it('answers plain HTTP on its own server with 426 Upgrade Required', async () => {
    const t = webSocketTransport({ name: 'n1', listen: { port: 0 }, peers: {} });
    cleanup.push(() => t.close());
    await t.start(() => {});
    const status = await new Promise<number | undefined>((resolve, reject) => {
      request({ host: '127.0.0.1', port: t.address()!.port, path: '/' }, (res) => {
        res.resume();
        resolve(res.statusCode);
      })
        .on('error', reject)
        .end();
    });
    expect(status).toBe(426);
  });
});

describe('start and close', () => {
  it('rejects a second start (RAFT_INVALID_ARGUMENT) and a start after close (RAFT_TRANSPORT_UNAVAILABLE)', async () => {
    const t = webSocketTransport({ name: 'n1', listen: { port: 0 }, peers: {} });
    cleanup.push(() => t.close());
    await t.start(() => {});
    expect((await rejection(t.start(() => {}))).code).toBe('RAFT_INVALID_ARGUMENT');
    await t.close();
    expect((await rejection(t.start(() => {}))).code).toBe('RAFT_TRANSPORT_UNAVAILABLE');
  });

  it('rejects a start without a handler', async () => {
    const t = webSocketTransport({ name: 'n1', listen: { port: 0 }, peers: {} });
    expect((await rejection(t.start(undefined as unknown as () => void))).code).toBe('RAFT_INVALID_ARGUMENT');
  });

  it('closes before start, and while starting', async () => {
    const idle = webSocketTransport({ name: 'n1', listen: { port: 0 }, peers: {} });
    await idle.close();
    const t = webSocketTransport({ name: 'n1', listen: { port: 0 }, peers: {} });
    const starting = t.start(() => {});
    const closing = t.close();
    expect((await rejection(starting)).code).toBe('RAFT_TRANSPORT_UNAVAILABLE');
    await closing;
    expect(t.address()).toBeNull();
  });

  it('on a shared server: leaves the server running after close and other upgrade paths alone', async () => {
    const server = createServer((_req, res) => res.end('app'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => closeServer(server));
    const port = (server.address() as AddressInfo).port;
    // Another WebSocket endpoint of the application, on /app.
    const app = new WebSocketServer({ noServer: true });
    server.on('upgrade', (req, socket, head) => {
      if (req.url === '/app') app.handleUpgrade(req, socket, head, (ws) => ws.send('app says hi'));
    });
    const n2 = webSocketTransport({ name: 'n2', server, path: '/raft', peers: { n1: 'ws://127.0.0.1:9' } });
    await n2.start(() => {});
    const n1 = webSocketTransport({
      name: 'n1',
      listen: { port: 0 },
      peers: { n2: `ws://127.0.0.1:${port}/raft` },
    });
    cleanup.push(() => n1.close());
    await n1.start(() => {});
    await waitFor(() => n1.connectedPeers().includes('n2'), 'the connection on /raft');
    const hi = await new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/app`);
      ws.on('message', (data: Buffer) => {
        resolve(data.toString());
        ws.close();
      });
      ws.on('error', reject);
    });
    expect(hi).toBe('app says hi');
    await n2.close();
    expect(server.listening).toBe(true);
    const body = await new Promise<string>((resolve) => {
      request({ host: '127.0.0.1', port, path: '/' }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve(text));
      }).end();
    });
    expect(body).toBe('app');
  });
});
