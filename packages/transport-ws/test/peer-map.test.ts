import { afterEach, describe, expect, it } from 'vitest';
import { RaftError } from '@raft/core';
import type { RaftMessage } from '@raft/core';
import { webSocketTransport } from '../src/index.js';
import type { WebSocketTransport, WebSocketTransportEvent, WebSocketTransportOptions } from '../src/index.js';
import { closeServer, heartbeat, listeningServer, waitFor } from './helpers.js';

const SECRET = 'a test secret of at least thirty-two bytes';

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const release of cleanup.reverse()) await release();
  cleanup = [];
});

interface Started {
  t: WebSocketTransport;
  url: string;
  inbox: RaftMessage[];
  events: WebSocketTransportEvent[];
}

/** A transport on its own HTTP server (port 0), started; closed after the test. */
async function start(
  name: string,
  peers: Record<string, string>,
  options: Partial<WebSocketTransportOptions> = {},
): Promise<Started> {
  const { server, url } = await listeningServer();
  const inbox: RaftMessage[] = [];
  const events: WebSocketTransportEvent[] = [];
  const t = webSocketTransport({
    name,
    server,
    peers,
    secret: SECRET,
    pingIntervalMs: 0,
    reconnect: { initialDelayMs: 20, maxDelayMs: 100 },
    onEvent: (e) => events.push(e),
    ...options,
  });
  cleanup.push(async () => {
    await t.close();
    await closeServer(server);
  });
  await t.start((m) => inbox.push(m));
  return { t, url, inbox, events };
}

/** Sends a heartbeat a → b and waits for it. */
async function deliver(a: Started, b: Started, seq: number): Promise<void> {
  a.t.send(b.t.name, heartbeat(a.t.name, b.t.name, seq));
  await waitFor(
    () => b.inbox.some((m) => m.type === 'AppendEntries' && m.from === a.t.name && m.seq === seq),
    `${a.t.name} -> ${b.t.name} (seq ${seq})`,
  );
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return RaftError.isInstance(error) ? error.code : 'not a RaftError';
  }
  return undefined;
}

// Each test waits for several events in a row, each with its own 5 s deadline (waitFor);
// the test's budget must cover their sum, or a loaded CI machine reports vitest's 5 s
// default instead of the step that was slow.
describe('the peer map at runtime: setPeer and removePeer', { timeout: 20_000 }, () => {
  it('setPeer on the dialer: it dials the new peer at once', async () => {
    const n1 = await start('n1', {});
    const n2 = await start('n2', { n1: n1.url });
    expect(n1.t.connectedPeers()).toEqual([]);
    n1.t.setPeer('n2', n2.url);
    expect(n1.t.peers()).toEqual({ n2: `${n2.url}/` });
    await waitFor(
      () => n1.t.connectedPeers().includes('n2') && n2.t.connectedPeers().includes('n1'),
      'the connection',
    );
    await deliver(n1, n2, 1);
    await deliver(n2, n1, 2);
  });

  it('setPeer on the acceptor: a peer it refused as unknown is let in', async () => {
    const n2 = await start('n2', {});
    const n1 = await start('n1', { n2: n2.url });
    await waitFor(() => n2.t.metrics().refused.unknownPeer > 0, 'n1 refused as an unknown peer');
    n2.t.setPeer('n1', n1.url);
    // The acceptor opens the link when it sends its welcome, the dialer once it reads it: a
    // message sent by the dialer before then is dropped (no link yet), so wait for both sides.
    await waitFor(
      () => n2.t.connectedPeers().includes('n1') && n1.t.connectedPeers().includes('n2'),
      'n1 let in on its next attempt',
    );
    await deliver(n1, n2, 1);
    await deliver(n2, n1, 2);
  });

  it('removePeer closes its connection (4003), refuses it from then on and drops messages to it', async () => {
    const n2 = await start('n2', {});
    const n1 = await start('n1', { n2: n2.url });
    n2.t.setPeer('n1', n1.url);
    await waitFor(() => n2.t.connectedPeers().includes('n1'), 'the connection');

    const refusedBefore = n2.t.metrics().refused.unknownPeer;
    n2.t.removePeer('n1');
    expect(n2.t.peers()).toEqual({});
    await waitFor(
      () => n1.events.some((e) => e.type === 'disconnected' && e.peer === 'n2' && e.code === 4003),
      'n1 to see 4003',
    );
    // n1 still knows n2 and redials: each attempt is refused, as for any unknown peer.
    await waitFor(() => n2.t.metrics().refused.unknownPeer > refusedBefore, 'the next dial refused');
    expect(n2.t.connectedPeers()).toEqual([]);
    n2.t.send('n1', heartbeat('n2', 'n1', 3));
    expect(n2.t.metrics().dropped.unknownPeer).toBe(1);

    // Known again: connected again.
    n2.t.setPeer('n1', n1.url);
    await waitFor(() => n2.t.connectedPeers().includes('n1'), 'the connection again');
    await deliver(n2, n1, 4);
  });

  it('removePeer on the dialer stops dialing; setPeer brings the peer back', async () => {
    const n2 = await start('n2', {});
    const n1 = await start('n1', { n2: n2.url });
    n2.t.setPeer('n1', n1.url);
    await waitFor(() => n1.t.connectedPeers().includes('n2'), 'the connection');
    const opened = n1.t.metrics().connectionsOpened;
    n1.t.removePeer('n2');
    await waitFor(
      () => n2.t.connectedPeers().length === 0 && n1.t.connectedPeers().length === 0,
      'both sides to drop the connection',
    );
    expect(n2.events.some((e) => e.type === 'disconnected' && e.peer === 'n1' && e.code === 4003)).toBe(true);
    n1.t.send('n2', heartbeat('n1', 'n2', 5));
    expect(n1.t.metrics().dropped.unknownPeer).toBe(1);
    n1.t.setPeer('n2', n2.url);
    await waitFor(() => n1.t.connectedPeers().includes('n2'), 'the connection again');
    expect(n1.t.metrics().connectionsOpened).toBe(opened + 1);
    await deliver(n1, n2, 6);
  });

  it('setPeer with a new URL: the dialer drops the old connection (4007) and dials the new address', async () => {
    const n1 = await start('n1', {});
    const oldN2 = await start('n2', { n1: n1.url });
    n1.t.setPeer('n2', oldN2.url);
    await waitFor(() => oldN2.t.connectedPeers().includes('n1'), 'the connection to the old n2');
    // n2 moves: a new process of it listens elsewhere.
    const newN2 = await start('n2', { n1: n1.url });
    n1.t.setPeer('n2', newN2.url);
    await waitFor(
      () => oldN2.events.some((e) => e.type === 'disconnected' && e.peer === 'n1' && e.code === 4007),
      'the old n2 to see 4007',
    );
    // The old process goes away, as a moved peer's does. (While it runs it is a second
    // process claiming the name n2, which also dials n1: n1 would accept it and might route
    // to it, a race that made this test flaky.)
    await oldN2.t.close();
    await waitFor(
      () => newN2.t.connectedPeers().includes('n1') && n1.t.connectedPeers().includes('n2'),
      'the connection to the new n2',
    );
    await deliver(n1, newN2, 7);
    expect(oldN2.inbox.some((m) => m.type === 'AppendEntries' && m.seq === 7)).toBe(false);
    // The same URL again changes nothing.
    const opened = n1.t.metrics().connectionsOpened;
    n1.t.setPeer('n2', newN2.url);
    expect(n1.t.connectedPeers()).toEqual(['n2']);
    expect(n1.t.metrics().connectionsOpened).toBe(opened);
  });

  it('setPeer before start is dialed by start; a bad name or URL is RAFT_INVALID_ARGUMENT', async () => {
    const n2 = await start('n2', {});
    const { server, url } = await listeningServer();
    const n1 = webSocketTransport({ name: 'n1', server, peers: {}, secret: SECRET, pingIntervalMs: 0 });
    cleanup.push(async () => {
      await n1.close();
      await closeServer(server);
    });
    n2.t.setPeer('n1', url);
    n1.setPeer('n2', n2.url);
    // Its own name is ignored, as in the peers option.
    n1.setPeer('n1', 'ws://127.0.0.1:9');
    expect(n1.peers()).toEqual({ n2: `${n2.url}/` });
    await n1.start(() => {});
    await waitFor(() => n1.connectedPeers().includes('n2'), 'the connection');

    expect(codeOf(() => n1.setPeer('', 'ws://127.0.0.1:9'))).toBe('RAFT_INVALID_ARGUMENT');
    expect(codeOf(() => n1.setPeer('n3', 'http://127.0.0.1:9'))).toBe('RAFT_INVALID_ARGUMENT');
    expect(codeOf(() => n1.setPeer('n3', 'not a url'))).toBe('RAFT_INVALID_ARGUMENT');
    expect(codeOf(() => n1.removePeer(7 as unknown as string))).toBe('RAFT_INVALID_ARGUMENT');
    expect(codeOf(() => n1.removePeer('n9'))).toBeUndefined();
    expect(n1.peers()).toEqual({ n2: `${n2.url}/` });
  });
});
