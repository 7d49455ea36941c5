import { describe, expect, it } from 'vitest';
import { seededRandom } from '@raft/core';
import { Packr } from 'msgpackr';
import {
  MAX_HANDSHAKE_FRAME,
  MessageCodec,
  PROTOCOL_VERSION,
  decodeAuth,
  decodeHello,
  decodeWelcome,
  encodeHandshake,
  handshakeMac,
  macMatches,
  newNonce,
  refusalOf,
  versionOf,
  CloseCode,
} from './protocol.js';

/** mulberry32: seeded bytes for the fuzz loops. */
const seeded = seededRandom;

describe('handshake MAC', () => {
  const secret = Buffer.from('s3cret');
  const an = newNonce();
  const dn = newNonce();

  it('is 32 bytes and reproducible', () => {
    const mac = handshakeMac(secret, 'dialer', 'n1', 'n2', an, dn);
    expect(mac).toHaveLength(32);
    expect(macMatches(mac, handshakeMac(secret, 'dialer', 'n1', 'n2', an, dn))).toBe(true);
  });

  it('binds the secret, the role, both names and both nonces', () => {
    const mac = handshakeMac(secret, 'dialer', 'n1', 'n2', an, dn);
    const variants = [
      handshakeMac(Buffer.from('other'), 'dialer', 'n1', 'n2', an, dn),
      handshakeMac(secret, 'acceptor', 'n1', 'n2', an, dn),
      handshakeMac(secret, 'dialer', 'n3', 'n2', an, dn),
      handshakeMac(secret, 'dialer', 'n1', 'n3', an, dn),
      handshakeMac(secret, 'dialer', 'n1', 'n2', newNonce(), dn),
      handshakeMac(secret, 'dialer', 'n1', 'n2', an, newNonce()),
      // Length prefixes: moving a character from one name to the other changes the MAC.
      handshakeMac(secret, 'dialer', 'n1n', '2', an, dn),
    ];
    for (const other of variants) expect(macMatches(mac, other)).toBe(false);
  });

  it('refuses a missing or short MAC', () => {
    const mac = handshakeMac(secret, 'dialer', 'n1', 'n2', an, dn);
    expect(macMatches(mac, null)).toBe(false);
    expect(macMatches(mac, mac.subarray(0, 31))).toBe(false);
    expect(macMatches(mac, new Uint8Array(0))).toBe(false);
  });
});

describe('handshake frames', () => {
  it('round-trip', () => {
    const nonce = newNonce();
    expect(
      decodeHello(encodeHandshake({ t: 'hello', v: PROTOCOL_VERSION, name: 'n2', nonce })),
    ).toMatchObject({ t: 'hello', v: 1, name: 'n2' });
    expect(
      decodeAuth(encodeHandshake({ t: 'auth', v: PROTOCOL_VERSION, name: 'n1', nonce, mac: null })),
    ).toMatchObject({ name: 'n1', mac: null });
    expect(decodeWelcome(encodeHandshake({ t: 'welcome', mac: Buffer.alloc(32, 1) }))?.mac).toHaveLength(32);
  });

  it('refuse frames of the wrong shape', () => {
    const packr = new Packr({ useRecords: false });
    const nonce = newNonce();
    const bad: unknown[] = [
      null,
      42,
      'hello',
      [1, 2],
      { t: 'hello', v: 1, name: 'n2', nonce: nonce.subarray(0, 8) },
      { t: 'hello', v: 1, name: '', nonce },
      { t: 'hello', v: '1', name: 'n2', nonce },
      { t: 'auth', v: 1, name: 'n1', nonce, mac: Buffer.alloc(31) },
      { t: 'auth', v: 1, name: 'x'.repeat(257), nonce, mac: null },
      { t: 'welcome', mac: 'mac' },
    ];
    for (const value of bad) {
      const data = packr.pack(value);
      expect(decodeHello(data)).toBeNull();
      expect(decodeAuth(data)).toBeNull();
      expect(decodeWelcome(data)).toBeNull();
    }
    expect(decodeAuth(Buffer.alloc(MAX_HANDSHAKE_FRAME + 1))).toBeNull();
  });

  it('never throw on random bytes', () => {
    const random = seeded(99);
    for (let i = 0; i < 2000; i++) {
      const data = Buffer.from(
        Array.from({ length: Math.floor(random() * 64) }, () => Math.floor(random() * 256)),
      );
      expect(() => [decodeHello(data), decodeAuth(data), decodeWelcome(data), versionOf(data)]).not.toThrow();
    }
  });

  it('read the version of any frame that has one', () => {
    expect(versionOf(encodeHandshake({ t: 'auth', v: 7, name: 'n1', nonce: newNonce(), mac: null }))).toBe(7);
    expect(versionOf(Buffer.from([0xc1]))).toBeNull();
  });

  it('map close codes to refusal reasons', () => {
    expect(refusalOf(CloseCode.AUTH_FAILED)).toBe('auth');
    expect(refusalOf(CloseCode.UNKNOWN_PEER)).toBe('unknownPeer');
    expect(refusalOf(CloseCode.VERSION_MISMATCH)).toBe('version');
    expect(refusalOf(CloseCode.PROTOCOL_ERROR)).toBe('protocol');
    expect(refusalOf(CloseCode.HANDSHAKE_TIMEOUT)).toBe('timeout');
    expect(refusalOf(1006)).toBeNull();
  });
});

describe('MessageCodec', () => {
  it('round-trips a message with binary data, as a copy of the frame', () => {
    const codec = new MessageCodec();
    const frame = codec.encode({
      type: 'AppendEntries',
      term: 2,
      from: 'n1',
      to: 'n2',
      prevLogIndex: 0,
      prevLogTerm: 0,
      entries: [{ index: 1, term: 2, type: 'command', data: Uint8Array.of(1, 2, 3) }],
      leaderCommit: 0,
      seq: 1,
    });
    const decoded = codec.decode(frame) as { entries: { data: Uint8Array }[] };
    const data = decoded.entries[0]!.data;
    expect([...data]).toEqual([1, 2, 3]);
    expect(data.buffer).not.toBe(frame.buffer);
  });

  it('throws on trailing bytes and truncated frames (the transport counts them)', () => {
    const codec = new MessageCodec();
    const frame = codec.encode({
      type: 'RequestVoteResponse',
      term: 1,
      from: 'n1',
      to: 'n2',
      voteGranted: true,
      preVote: false,
    });
    expect(() => codec.decode(Buffer.concat([frame, Buffer.from([0])]))).toThrow();
    expect(() => codec.decode(frame.subarray(0, frame.length - 3))).toThrow();
  });
});
