import { afterEach, describe, expect, it } from 'vitest';
import { RaftError } from '@raft/core';
import type { RaftMessage, Transport } from '@raft/core';
import { WebSocketTransport, webSocketTransport } from './index.js';
import type { WebSocketTransportOptions } from './index.js';

const SECRET = 'a test secret of at least thirty-two bytes';

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const release of cleanup.reverse()) await release();
  cleanup = [];
});

async function until(predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function codeOf(build: () => unknown): string {
  try {
    build();
  } catch (error) {
    if (RaftError.isInstance(error)) return error.code;
    throw error;
  }
  throw new Error('expected the options to be refused');
}

describe('new WebSocketTransport(options), the class of API.md', () => {
  it('is what the factory returns: one implementation under two spellings', () => {
    const options: WebSocketTransportOptions = {
      name: 'n1',
      listen: { port: 0 },
      peers: { n2: 'ws://127.0.0.1:9' },
    };
    const fromFactory = webSocketTransport(options);
    const fromClass = new WebSocketTransport(options);
    expect(fromFactory).toBeInstanceOf(WebSocketTransport);
    expect(Object.getPrototypeOf(fromFactory)).toBe(Object.getPrototypeOf(fromClass));
    expect(fromClass.name).toBe('n1');
    // Neither binds anything before start.
    expect(fromClass.address()).toBeNull();
    expect(fromClass.metrics()).toEqual(fromFactory.metrics());
    // Usable wherever @raft/core wants a Transport (checked by the compiler).
    const asTransport: Transport = fromClass;
    expect(typeof asTransport.send).toBe('function');
  });

  it('refuses bad options in the constructor with RAFT_INVALID_ARGUMENT, as the factory does', () => {
    const bad = [
      { name: '', listen: { port: 0 }, peers: {} },
      { name: 'n1', peers: {} },
      { name: 'n1', listen: { port: 0 }, peers: { n2: 'http://127.0.0.1:1' } },
      { name: 'n1', listen: { port: 0 }, peers: {}, maxPayload: -1 },
    ];
    for (const options of bad) {
      expect(codeOf(() => new WebSocketTransport(options as WebSocketTransportOptions))).toBe(
        'RAFT_INVALID_ARGUMENT',
      );
      expect(codeOf(() => webSocketTransport(options as WebSocketTransportOptions))).toBe(
        'RAFT_INVALID_ARGUMENT',
      );
    }
  });

  it('authenticates with a transport built by the factory and carries messages both ways', async () => {
    const n2 = new WebSocketTransport({
      name: 'n2',
      listen: { port: 0 },
      peers: { n1: 'ws://127.0.0.1:9' },
      secret: SECRET,
    });
    cleanup.push(() => n2.close());
    const atN2: RaftMessage[] = [];
    await n2.start((m) => atN2.push(m));
    const url = `ws://127.0.0.1:${n2.address()!.port}`;
    const n1 = webSocketTransport({
      name: 'n1',
      listen: { port: 0 },
      peers: { n2: url },
      secret: SECRET,
      reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
    });
    cleanup.push(() => n1.close());
    const atN1: RaftMessage[] = [];
    await n1.start((m) => atN1.push(m));
    await until(
      () => n1.connectedPeers().includes('n2') && n2.connectedPeers().includes('n1'),
      'the authenticated connection',
    );

    const heartbeat = (from: string, to: string): RaftMessage => ({
      type: 'AppendEntries',
      term: 1,
      from,
      to,
      prevLogIndex: 0,
      prevLogTerm: 0,
      entries: [],
      leaderCommit: 0,
      seq: 7,
    });
    n1.send('n2', heartbeat('n1', 'n2'));
    n2.send('n1', heartbeat('n2', 'n1'));
    await until(() => atN1.length === 1 && atN2.length === 1, 'a message each way');
    expect(atN2[0]).toEqual(heartbeat('n1', 'n2'));
    expect(atN1[0]).toEqual(heartbeat('n2', 'n1'));
    expect(n2.metrics().refused.auth).toBe(0);
  });
});
