import { tally, type Counters, type Tally } from '../../lib/counters.js';
import { transportCounters, type TransportStats } from '../../lib/transport.js';
import { HANDSHAKE_REJECTIONS, type HandshakeRejection } from './handshake.js';

/** `Transport.stats()` of the WebSocket adapter: the shared counters and the adapter's own. */
export interface WebSocketTransportStats extends TransportStats {
  /** Handshakes this node refused or abandoned, by reason; every reason is present. */
  readonly handshakeRejections: Tally<HandshakeRejection>;
  /** Outbound dials started, the first one to each peer included. */
  readonly dials: number;
  /** Times a peer came back up after it had been up and gone down. */
  readonly reconnects: number;
  /** Connections terminated because the peer went silent for `peerTimeoutMs`. */
  readonly peerTimeouts: number;
  /** Connections closed because the other one of the pair won the tie-break, or replaced it. */
  readonly duplicatesClosed: number;
  /** Binary frames received and dropped: peers send text frames only. */
  readonly binaryFrames: number;
  /**
   * Connections the peer broke the WebSocket protocol on (invalid UTF-8, a bad opcode, too many
   * fragments): `ws` closes them. An oversized frame counts in `dropped.oversized` instead.
   */
  readonly protocolErrors: number;
  /** Open connections now. */
  readonly connections: number;
  /** Nonces of recent handshakes remembered now (bounded). */
  readonly nonceCacheSize: number;
}

/** Readings of the moment, not counts: `stats()` adds them to a snapshot of the counters. */
type Live = 'connections' | 'nonceCacheSize';

/** The mutable counters behind `stats()`. */
export type WebSocketCounters = Counters<Omit<WebSocketTransportStats, Live>>;

export function webSocketCounters(): WebSocketCounters {
  return {
    ...transportCounters(),
    handshakeRejections: tally(HANDSHAKE_REJECTIONS),
    dials: 0,
    reconnects: 0,
    peerTimeouts: 0,
    duplicatesClosed: 0,
    binaryFrames: 0,
    protocolErrors: 0,
  };
}
