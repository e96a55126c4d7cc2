/** The WebSocket transport, exported as `synod/adapters/websocket`. */
export { WebSocketTransport, type ConnectionInfo } from './transport.js';
export {
  WEBSOCKET_DEFAULTS,
  MIN_SECRET_BYTES,
  type WebSocketTransportOptions,
  type TlsOptions,
  type PemInput,
} from './options.js';
export type { WebSocketTransportStats } from './stats.js';
export { HANDSHAKE_REJECTIONS, type HandshakeRejection } from './handshake.js';
export { CLOSE_CODES } from './link.js';
