/**
 * The wire protocol, in one place: version, close codes, handshake frames, the HMAC
 * transcript, and the MessagePack codec of data frames.
 *
 * Handshake (every frame binary MessagePack; the acceptor is the peer with the greater name):
 *
 * 1. acceptor → dialer: `{ t: 'hello', v, name, nonce }` (32 random bytes)
 * 2. dialer → acceptor: `{ t: 'auth', v, name, nonce, mac }` where
 *    `mac = HMAC-SHA256(secret, transcript('dialer', dialerName, acceptorName, acceptorNonce, dialerNonce))`
 * 3. acceptor → dialer: `{ t: 'welcome', mac }` with the `'acceptor'` transcript, so the
 *    dialer knows the acceptor holds the secret too.
 *
 * Without a secret, `mac` is null and only names and versions are checked. After the
 * handshake every binary frame is one MessagePack-encoded RaftMessage.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Packr, Unpackr } from 'msgpackr';
import type { PeerId, RaftMessage } from '@raft/core';
import type { RefusalReason } from './metrics.js';
import { MAX_NAME_LENGTH } from './options.js';

/** Version of this wire protocol, exchanged in the handshake. */
export const PROTOCOL_VERSION = 1;

/** Bytes of a handshake nonce. */
export const NONCE_BYTES = 32;

/** Bytes of an HMAC-SHA256. */
const MAC_BYTES = 32;

/** Largest handshake frame accepted, in bytes: names are at most 256 characters. */
export const MAX_HANDSHAKE_FRAME = 4096;

/** WebSocket close codes (4000-4999 are for applications). */
export const CloseCode = {
  /** Closing the transport. */
  GOING_AWAY: 1001,
  /** Garbage or an unexpected frame during the handshake. */
  PROTOCOL_ERROR: 4000,
  /**
   * Bad or missing HMAC, a name that is not a configured peer (or must not dial this one),
   * or a certificate that does not name the peer: one code for all, so that a stranger
   * cannot tell which names exist.
   */
  AUTH_FAILED: 4001,
  /** Another protocol version. */
  VERSION_MISMATCH: 4002,
  /**
   * The peer was removed (`removePeer`), or the acceptor a dialer reached is not the peer its
   * URL names. (An acceptor refuses an unknown dialer with 4001, like a wrong MAC.)
   */
  UNKNOWN_PEER: 4003,
  /** The handshake took longer than `handshakeTimeoutMs`. */
  HANDSHAKE_TIMEOUT: 4004,
  /** Too many malformed frames. */
  TOO_MANY_MALFORMED: 4005,
  /** A newer connection from the same peer took over. */
  REPLACED: 4006,
  /** The peer's URL changed (`setPeer`): the dialer redials it at the new one. */
  PEER_MOVED: 4007,
} as const;

/** Standard close code "try again later": a pending handshake evicted to make room. */
export const TRY_AGAIN_LATER = 1013;

/** The refusal a close code stands for, if any. */
export function refusalOf(code: number): RefusalReason | null {
  switch (code) {
    case CloseCode.PROTOCOL_ERROR:
      return 'protocol';
    case CloseCode.AUTH_FAILED:
      return 'auth';
    case CloseCode.VERSION_MISMATCH:
      return 'version';
    case CloseCode.UNKNOWN_PEER:
      return 'unknownPeer';
    case CloseCode.HANDSHAKE_TIMEOUT:
      return 'timeout';
    case TRY_AGAIN_LATER:
      return 'busy';
    default:
      return null;
  }
}

/** The acceptor's challenge. */
export interface Hello {
  t: 'hello';
  v: number;
  name: PeerId;
  nonce: Uint8Array;
}

/** The dialer's answer. */
export interface Auth {
  t: 'auth';
  v: number;
  name: PeerId;
  nonce: Uint8Array;
  mac: Uint8Array | null;
}

/** The acceptor's proof. */
export interface Welcome {
  t: 'welcome';
  mac: Uint8Array | null;
}

const handshakePackr = new Packr({ useRecords: false });
const handshakeUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** Encodes a handshake frame. */
export function encodeHandshake(frame: Hello | Auth | Welcome): Buffer {
  return handshakePackr.pack(frame);
}

function decodeFields(data: Buffer): Record<string, unknown> | null {
  if (data.length > MAX_HANDSHAKE_FRAME) return null;
  let value: unknown;
  try {
    value = handshakeUnpackr.unpack(data);
  } catch {
    return null;
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : null;
}

function isName(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_NAME_LENGTH;
}

function isNonce(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array && v.byteLength === NONCE_BYTES;
}

function isMac(v: unknown): v is Uint8Array | null {
  return v === null || v === undefined || (v instanceof Uint8Array && v.byteLength === MAC_BYTES);
}

/** The version a handshake frame claims, if it has one: checked before the rest, so another version gets its own close code. */
export function versionOf(data: Buffer): number | null {
  const f = decodeFields(data);
  return f !== null && typeof f.v === 'number' ? f.v : null;
}

/** Decodes a `hello`, or null if it is not one. Never throws. */
export function decodeHello(data: Buffer): Hello | null {
  const f = decodeFields(data);
  if (f === null || f.t !== 'hello' || typeof f.v !== 'number' || !isName(f.name) || !isNonce(f.nonce))
    return null;
  return { t: 'hello', v: f.v, name: f.name, nonce: f.nonce };
}

/** Decodes an `auth`, or null if it is not one. Never throws. */
export function decodeAuth(data: Buffer): Auth | null {
  const f = decodeFields(data);
  if (
    f === null ||
    f.t !== 'auth' ||
    typeof f.v !== 'number' ||
    !isName(f.name) ||
    !isNonce(f.nonce) ||
    !isMac(f.mac)
  )
    return null;
  return { t: 'auth', v: f.v, name: f.name, nonce: f.nonce, mac: f.mac ?? null };
}

/** Decodes a `welcome`, or null if it is not one. Never throws. */
export function decodeWelcome(data: Buffer): Welcome | null {
  const f = decodeFields(data);
  if (f === null || f.t !== 'welcome' || !isMac(f.mac)) return null;
  return { t: 'welcome', mac: f.mac ?? null };
}

/** A fresh random nonce. */
export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

/**
 * HMAC-SHA256 over an unambiguous transcript (each field length-prefixed): the protocol,
 * the role of the prover, both names and both nonces. Binding both names stops a MAC
 * from being replayed for another pair; the fresh acceptor nonce stops replays in time;
 * the role stops reflecting the dialer's MAC back as the acceptor's.
 */
export function handshakeMac(
  secret: Uint8Array,
  role: 'dialer' | 'acceptor',
  dialer: PeerId,
  acceptor: PeerId,
  acceptorNonce: Uint8Array,
  dialerNonce: Uint8Array,
): Buffer {
  const hmac = createHmac('sha256', secret);
  for (const field of [
    Buffer.from(`raft-ws/${PROTOCOL_VERSION}`),
    Buffer.from(role),
    Buffer.from(dialer, 'utf8'),
    Buffer.from(acceptor, 'utf8'),
    acceptorNonce,
    dialerNonce,
  ]) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(field.byteLength);
    hmac.update(length);
    hmac.update(field);
  }
  return hmac.digest();
}

/** Compares a received MAC with the expected one in constant time. */
export function macMatches(expected: Buffer, received: Uint8Array | null): boolean {
  return (
    received !== null && received.byteLength === expected.byteLength && timingSafeEqual(expected, received)
  );
}

/** Encodes and decodes data frames: one RaftMessage per binary frame. */
export class MessageCodec {
  readonly #packr = new Packr({ useRecords: false });
  // copyBuffers: entry data must not pin the socket's receive buffers in memory.
  readonly #unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, copyBuffers: true });

  encode(message: RaftMessage): Buffer {
    return this.#packr.pack(message);
  }

  /** Decodes a frame; throws on bytes that are not MessagePack. */
  decode(data: Buffer): unknown {
    return this.#unpackr.unpack(data);
  }
}
