import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Packr } from 'msgpackr';
import { validateMessage, seededRandom } from '@raft/core';
import { CloseCode, MessageCodec } from '../src/protocol.js';
import { RawPeer, TestCluster, heartbeat, waitFor } from './helpers.js';

/**
 * Everything here comes from a peer that authenticated as n1 (a configured name: an
 * insider gone bad, or a bug), or from strangers. Each attack must leave n3 running and
 * n2 <-> n3 healthy; afterEach checks that, and that nothing invalid reached onMessage.
 */
const SECRET = 'hostile-tests-secret-0123456789abcdef';
const MAX_PAYLOAD = 64 * 1024;
const packr = new Packr({ useRecords: false });
const codec = new MessageCodec();

const seeded = seededRandom;

function randomBytes(random: () => number, length: number): Buffer {
  return Buffer.from(Array.from({ length }, () => Math.floor(random() * 256)));
}

let c: TestCluster;
let seq = 1000;
const strays: RawPeer[] = [];
const sockets: Socket[] = [];

beforeEach(async () => {
  c = await TestCluster.create(
    ['n2', 'n3'],
    { secret: SECRET, maxPayload: MAX_PAYLOAD, malformedLimit: { count: 10_000 } },
    {},
    { n1: 'ws://127.0.0.1:9' },
  );
  await c.connected();
});

afterEach(async () => {
  // The peers still run, and still talk.
  await c.exchange('n2', 'n3', seq++);
  for (const node of c.nodes.values()) {
    for (const m of node.inbox) {
      expect(validateMessage(m).ok).toBe(true);
      expect(m.to).toBe(node.name);
    }
  }
  for (const peer of strays.splice(0)) await peer.close();
  for (const socket of sockets.splice(0)) socket.destroy();
  await c.close();
});

async function attacker(): Promise<RawPeer> {
  const peer = await RawPeer.authenticated(c.urls.n3!, 'n1', 'n3', SECRET);
  strays.push(peer);
  return peer;
}

async function stranger(): Promise<RawPeer> {
  const peer = await RawPeer.connect(c.urls.n3!);
  strays.push(peer);
  return peer;
}

const n3 = () => c.node('n3').transport;

/** Sends a valid message after the attack and waits for it: frames on one connection arrive in order. */
async function flush(peer: RawPeer): Promise<void> {
  const mark = seq++;
  peer.send(codec.encode(heartbeat('n1', 'n3', mark)));
  await waitFor(
    () => c.node('n3').inbox.some((m) => m.type === 'AppendEntries' && m.seq === mark),
    'the marker',
  );
}

describe('hostile input after the handshake', () => {
  it('random bytes are dropped and counted', async () => {
    const peer = await attacker();
    const random = seeded(1);
    let n = 0;
    for (let i = 0; i < 300; i++) {
      const frame = randomBytes(random, Math.floor(random() * 600));
      peer.send(frame);
      n++;
    }
    await flush(peer);
    const dropped = n3().metrics().dropped;
    expect(dropped.undecodable + dropped.invalid).toBe(n);
    expect(c.node('n3').inbox.filter((m) => m.from === 'n1')).toHaveLength(1);
  });

  it('truncated frames are dropped and counted', async () => {
    const peer = await attacker();
    const whole = codec.encode({
      ...heartbeat('n1', 'n3', 1),
      entries: [{ index: 1, term: 1, type: 'command', data: Buffer.alloc(100, 7) }],
    });
    let n = 0;
    for (let length = 0; length < whole.length; length += 3) {
      peer.send(whole.subarray(0, length));
      n++;
    }
    await flush(peer);
    const dropped = n3().metrics().dropped;
    expect(dropped.undecodable + dropped.invalid).toBe(n);
  });

  it(`a frame larger than maxPayload closes that connection (1009) and nothing else`, async () => {
    const peer = await attacker();
    peer.send(Buffer.alloc(MAX_PAYLOAD + 1024, 1));
    expect(await peer.closed).toBe(1009);
    expect(n3().metrics().dropped.frameTooLarge).toBe(1);
  });

  it('messages with fields of the wrong type are dropped and counted', async () => {
    const peer = await attacker();
    const good = heartbeat('n1', 'n3', 1);
    const bad: unknown[] = [
      { ...good, term: '1' },
      { ...good, term: -1 },
      { ...good, term: 1.5 },
      { ...good, term: 2 ** 64 },
      { ...good, seq: null },
      { ...good, entries: 'none' },
      { ...good, entries: [{ index: 1, term: 1, type: 'command', data: 'text, not bytes' }] },
      { ...good, entries: [{ index: 5, term: 1, type: 'command', data: Buffer.alloc(1) }] },
      { ...good, entries: [{ index: 1, term: 9, type: 'command', data: Buffer.alloc(1) }] },
      { ...good, entries: [{ index: 1, term: 1, type: 'evil', data: Buffer.alloc(1) }] },
      { type: 'RequestVote', term: 1, from: 'n1', to: 'n3', lastLogIndex: 0, lastLogTerm: 0, preVote: 'yes' },
      { type: 'RequestVoteResponse', term: 1, from: 'n1', to: 'n3', voteGranted: 1, preVote: false },
      {
        type: 'AppendEntriesResponse',
        term: 1,
        from: 'n1',
        to: 'n3',
        success: true,
        matchIndex: -4,
        prevLogIndex: 0,
        conflictIndex: 0,
        conflictTerm: 0,
        seq: 0,
      },
      { ...good, from: '' },
      { ...good, from: 'n'.repeat(300) },
      null,
      42,
      'AppendEntries',
      [good],
      true,
    ];
    for (const value of bad) peer.send(packr.pack(value));
    await flush(peer);
    expect(n3().metrics().dropped.invalid).toBe(bad.length);
  });

  it('unknown message kinds are dropped and counted', async () => {
    const peer = await attacker();
    const kinds: unknown[] = [
      'Snapshot',
      'appendentries',
      'TimeoutLater',
      '',
      42,
      null,
      undefined,
      { evil: true },
    ];
    for (const type of kinds) peer.send(packr.pack({ ...heartbeat('n1', 'n3', 1), type }));
    await flush(peer);
    expect(n3().metrics().dropped.invalid).toBe(kinds.length);
  });

  it('messages claiming another identity, or addressed to another peer, are dropped and counted', async () => {
    const peer = await attacker();
    peer.send(codec.encode(heartbeat('n2', 'n3', 1)));
    peer.send(codec.encode(heartbeat('mallory', 'n3', 2)));
    peer.send(
      codec.encode({
        type: 'RequestVote',
        term: 99,
        from: 'n2',
        to: 'n3',
        lastLogIndex: 0,
        lastLogTerm: 0,
        preVote: false,
      }),
    );
    peer.send(codec.encode(heartbeat('n1', 'n2', 3)));
    await flush(peer);
    const dropped = n3().metrics().dropped;
    expect(dropped.wrongSender).toBe(3);
    expect(dropped.wrongAddressee).toBe(1);
    expect(c.node('n3').inbox.filter((m) => m.from === 'n2' && m.term === 99)).toHaveLength(0);
  });

  it('text frames are dropped and counted, even when they hold a valid message as JSON', async () => {
    const peer = await attacker();
    peer.send(JSON.stringify(heartbeat('n1', 'n3', 1)));
    peer.send('hello');
    await flush(peer);
    expect(n3().metrics().dropped.nonBinary).toBe(2);
  });

  it('decoding tricks do not escape: __proto__ keys, deep nesting, extension types', async () => {
    const peer = await attacker();
    // { "__proto__": { "polluted": true }, ...a valid heartbeat } written by hand.
    const proto = Buffer.concat([
      Buffer.from([0x81, 0xa9]),
      Buffer.from('__proto__'),
      packr.pack({ polluted: true }),
    ]);
    peer.send(proto);
    peer.send(Buffer.concat([Buffer.alloc(60_000, 0x91), Buffer.from([0xc0])])); // 60 000 nested arrays
    peer.send(Buffer.from([0xc7, 0x05, 0x78, 0x01, 0x02, 0x03, 0x04, 0x05])); // a RegExp extension
    peer.send(Buffer.from([0xd4, 0x72, 0x00])); // a record definition with no body
    peer.send(Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff])); // an array claiming 4 billion items
    peer.send(Buffer.from([0xdb, 0x7f, 0xff, 0xff, 0xff])); // a string claiming 2 GiB
    await flush(peer);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const dropped = n3().metrics().dropped;
    expect(dropped.undecodable + dropped.invalid).toBe(6);
  });

  it('a connection that keeps sending malformed frames is closed (4005); the peer can come back', async () => {
    await c.close();
    c = await TestCluster.create(
      ['n2', 'n3'],
      { secret: SECRET, malformedLimit: { count: 5, windowMs: 60_000 } },
      {},
      { n1: 'ws://127.0.0.1:9' },
    );
    await c.connected();
    const peer = await attacker();
    for (let i = 0; i < 6; i++) peer.send(Buffer.from([0xc1]));
    expect(await peer.closed).toBe(CloseCode.TOO_MANY_MALFORMED);
    expect(n3().metrics().malformedCloses).toBe(1);
    expect(n3().metrics().dropped.undecodable + n3().metrics().dropped.invalid).toBe(6);
    await flush(await attacker());
  });
});

describe('hostile input before or around the handshake', () => {
  it('an unauthenticated connection sending messages is refused (4000) and nothing is delivered', async () => {
    const peer = await stranger();
    peer.send(codec.encode(heartbeat('n1', 'n3', 1)));
    expect(await peer.closed).toBe(CloseCode.PROTOCOL_ERROR);
    expect(n3().metrics().refused.protocol).toBe(1);
    expect(c.node('n3').inbox.filter((m) => m.from === 'n1')).toHaveLength(0);
  });

  it('garbage during the handshake is refused (4000): random bytes, text, a hello of its own', async () => {
    const random = seeded(3);
    const frames: (Buffer | string)[] = [
      randomBytes(random, 100),
      'GET / HTTP/1.1',
      packr.pack({ t: 'hello', v: 1, name: 'n1', nonce: Buffer.alloc(32) }),
      Buffer.alloc(0),
    ];
    for (const frame of frames) {
      const peer = await stranger();
      peer.send(frame);
      expect(await peer.closed).toBe(CloseCode.PROTOCOL_ERROR);
    }
    expect(n3().metrics().refused.protocol).toBe(frames.length);
  });

  it('a stranger may not send more than a few KiB before authenticating, even under maxPayload', async () => {
    const peer = await stranger();
    peer.send(Buffer.alloc(48 * 1024, 0x20));
    expect(await peer.closed).toBe(1006);
    expect(n3().metrics().refused.protocol).toBe(1);
  });

  it('a connection that never authenticates is cut after handshakeTimeoutMs (4004)', async () => {
    await c.close();
    c = await TestCluster.create(['n2', 'n3'], { handshakeTimeoutMs: 100 }, {}, { n1: 'ws://127.0.0.1:9' });
    await c.connected();
    const peer = await stranger();
    expect(await peer.closed).toBe(CloseCode.HANDSHAKE_TIMEOUT);
    expect(n3().metrics().refused.timeout).toBe(1);
  });

  it('too many handshakes at once from strangers: the extra connections are refused (busy)', async () => {
    await c.close();
    c = await TestCluster.create(['n2', 'n3'], { maxPendingHandshakes: 2 }, {}, { n1: 'ws://127.0.0.1:9' });
    await c.connected();
    // 127.0.0.2 and 127.0.0.3 are loopback too, but no configured peer's address.
    strays.push(await RawPeer.connect(c.urls.n3!, { localAddress: '127.0.0.2' }));
    strays.push(await RawPeer.connect(c.urls.n3!, { localAddress: '127.0.0.3' }));
    await expect(RawPeer.connect(c.urls.n3!, { localAddress: '127.0.0.2' })).rejects.toThrow(/503/);
    expect(n3().metrics().refused.busy).toBe(1);
  });

  it('raw TCP garbage, a half-sent upgrade and broken WebSocket frames leave the peer running', async () => {
    const port = Number(new URL(c.urls.n3!).port);
    const random = seeded(4);
    // Not HTTP at all.
    await tcp(port, randomBytes(random, 2000));
    // An upgrade request cut in the middle.
    await tcp(port, Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Up'));
    // A real upgrade, then a frame header that promises 1000 bytes and delivers 10.
    const s1 = await upgraded(port);
    s1.write(Buffer.concat([Buffer.from([0x82, 0x80 | 126, 0x03, 0xe8]), Buffer.alloc(4), Buffer.alloc(10)]));
    s1.end();
    // A real upgrade, then a frame with a reserved opcode, then an unmasked frame.
    const s2 = await upgraded(port);
    s2.write(Buffer.from([0x83, 0x80, 0, 0, 0, 0]));
    await closedSocket(s2);
    const s3 = await upgraded(port);
    s3.write(Buffer.from([0x82, 0x01, 0x00]));
    await closedSocket(s3);
    await closedSocket(s1);
    expect(n3().metrics().refused.protocol).toBe(2);
  });
});

/** Opens a TCP connection, writes `data`, and waits for the server to close it. */
async function tcp(port: number, data: Buffer): Promise<void> {
  const socket = connect(port, '127.0.0.1');
  sockets.push(socket);
  socket.on('error', () => {});
  socket.on('data', () => {});
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write(data);
  socket.end();
  await closedSocket(socket);
}

function closedSocket(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once('close', () => resolve());
  });
}

/** A TCP socket after a hand-made WebSocket upgrade. */
async function upgraded(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  sockets.push(socket);
  socket.on('error', () => {});
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write(
    'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: ${Buffer.alloc(16, 9).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  let response = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer): void => {
      response += d.toString('latin1');
      if (response.includes('\r\n\r\n')) {
        socket.removeListener('data', onData);
        if (response.startsWith('HTTP/1.1 101')) resolve();
        else reject(new Error(response));
      }
    };
    socket.on('data', onData);
  });
  socket.on('data', () => {});
  return socket;
}
