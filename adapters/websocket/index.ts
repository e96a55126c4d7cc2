/** The WebSocket transport, exported as `synod/adapters/websocket`. */
export { WebSocketTransport } from './transport.js';
export type { ConnectionInfo } from './connection-info.js';
export {
  WEBSOCKET_DEFAULTS,
  MIN_SECRET_BYTES,
  type WebSocketTransportOptions,
  type TlsOptions,
  type PemInput,
} from './options.js';
export type { WebSocketTransportStats } from './stats.js';
export { HANDSHAKE_REJECTIONS, type HandshakeRejection } from './handshake.js';
export { CLOSE_CODES } from './close-codes.js';
