import type { PeerId } from '@raft/core';

/** Why a message was not sent or not delivered. */
export type DropCause =
  // Outgoing: dropped by `send`.
  /** The transport is not started, or is closed. */
  | 'closed'
  /** The addressee is not in `peers` (or is this peer). */
  | 'unknownPeer'
  /** No authenticated connection to the addressee right now (it is down or being dialed). */
  | 'notConnected'
  /** The connection's `bufferedAmount` is above `highWaterMark`. */
  | 'backpressure'
  /** The encoded message is larger than `maxPayload`. */
  | 'tooLarge'
  /** The message cannot be encoded. */
  | 'unencodable'
  /** `message.to` is not the addressee, or `message.from` is not this peer. */
  | 'misaddressed'
  // Incoming: dropped before it reaches `onMessage`.
  /** A text frame (only binary frames carry messages). */
  | 'nonBinary'
  /** A binary frame that is not MessagePack. */
  | 'undecodable'
  /** Decoded, but not a valid RaftMessage (wrong types, unknown kind, ...). */
  | 'invalid'
  /** `message.from` is not the peer authenticated on this connection. */
  | 'wrongSender'
  /** `message.to` is not this peer. */
  | 'wrongAddressee'
  /** A frame larger than `maxPayload`; its connection is closed (1009). */
  | 'frameTooLarge';

/** Why a connection was refused during the handshake. */
export type RefusalReason =
  /** Bad or missing HMAC: the other side does not know the secret. */
  | 'auth'
  /** A name not in `peers`, one that must not dial this peer, or not the peer the URL points to. */
  | 'unknownPeer'
  /** Another protocol version. */
  | 'version'
  /** Garbage or an unexpected frame during the handshake. */
  | 'protocol'
  /** The handshake did not finish within `handshakeTimeoutMs`. */
  | 'timeout'
  /**
   * Too many handshakes in progress (`maxPendingHandshakes`, `maxPendingHandshakesPerAddress`):
   * a newcomer refused, or a pending handshake evicted to make room.
   */
  | 'busy'
  /** The peer's TLS certificate does not name the peer it claims to be (`tls.verifyPeerName`). */
  | 'identity'
  /**
   * Without a secret or a verified certificate, a second connection claimed a peer whose
   * connection is alive (it answered a ping): the newcomer is refused, the live one kept.
   */
  | 'duplicate'
  /** The TLS handshake failed (for example, no client certificate under mutual TLS). */
  | 'tls';

/** Counters of a WebSocket transport, from `transport.metrics()`. */
export interface WebSocketTransportMetrics {
  /** Authenticated connections open now. */
  connections: number;
  /** Authenticated connections established since start. */
  connectionsOpened: number;
  /** Dials made to retry after a failed dial or a lost connection. */
  reconnects: number;
  /** Dials that failed before the handshake (refused, unreachable, TLS error...). */
  dialFailures: number;
  /** Handshakes refused, in either direction, by reason. */
  refused: Record<RefusalReason, number>;
  /** Messages written to a connection. */
  messagesSent: number;
  /** Bytes of the messages written (MessagePack frames, without WebSocket framing). */
  bytesSent: number;
  /** Messages delivered to `onMessage`. */
  messagesReceived: number;
  /** Bytes of every data frame received after the handshake, valid or not. */
  bytesReceived: number;
  /** Messages dropped, by cause. */
  dropped: Record<DropCause, number>;
  /** Connections closed for sending too many malformed frames. */
  malformedCloses: number;
  /** Connections terminated because they stopped answering pings. */
  pingTimeouts: number;
  /** Times `onMessage` threw (caught; the transport keeps going). */
  handlerErrors: number;
}

/** What a transport reports through `onEvent`. */
export type WebSocketTransportEvent =
  /** An authenticated connection to `peer` is open. */
  | { type: 'connected'; peer: PeerId; direction: 'inbound' | 'outbound' }
  /** The connection to `peer` closed; a dialing peer will retry. */
  | { type: 'disconnected'; peer: PeerId; code: number; reason: string }
  /** A handshake was refused. `peer` is the claimed or dialed name, when known. */
  | { type: 'refused'; reason: RefusalReason; peer?: PeerId; remoteAddress?: string }
  /** A frame from `peer` was dropped as malformed. */
  | { type: 'malformed'; peer: PeerId; cause: DropCause; detail: string }
  /** `onMessage` threw. */
  | { type: 'handlerError'; error: unknown };

const DROP_CAUSES: readonly DropCause[] = [
  'closed',
  'unknownPeer',
  'notConnected',
  'backpressure',
  'tooLarge',
  'unencodable',
  'misaddressed',
  'nonBinary',
  'undecodable',
  'invalid',
  'wrongSender',
  'wrongAddressee',
  'frameTooLarge',
];

const REFUSAL_REASONS: readonly RefusalReason[] = [
  'auth',
  'unknownPeer',
  'version',
  'protocol',
  'timeout',
  'busy',
  'tls',
  'identity',
  'duplicate',
];

/** Fresh counters, all zero. */
export function emptyMetrics(): WebSocketTransportMetrics {
  return {
    connections: 0,
    connectionsOpened: 0,
    reconnects: 0,
    dialFailures: 0,
    refused: Object.fromEntries(REFUSAL_REASONS.map((r) => [r, 0])) as Record<RefusalReason, number>,
    messagesSent: 0,
    bytesSent: 0,
    messagesReceived: 0,
    bytesReceived: 0,
    dropped: Object.fromEntries(DROP_CAUSES.map((c) => [c, 0])) as Record<DropCause, number>,
    malformedCloses: 0,
    pingTimeouts: 0,
    handlerErrors: 0,
  };
}

/** A deep copy, safe to hand out. */
export function copyMetrics(m: WebSocketTransportMetrics): WebSocketTransportMetrics {
  return { ...m, refused: { ...m.refused }, dropped: { ...m.dropped } };
}
