export { WebSocketTransport, webSocketTransport } from './transport.js';
export { certificateNamesPeer } from './identity.js';
export type {
  WebSocketTransportOptions,
  ListenOptions,
  TlsOptions,
  Pem,
  ReconnectOptions,
  MalformedLimitOptions,
} from './options.js';
export type {
  WebSocketTransportMetrics,
  WebSocketTransportEvent,
  DropCause,
  RefusalReason,
} from './metrics.js';
