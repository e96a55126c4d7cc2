import type { NodeId } from '../../lib/types.js';

export type LinkDirection = 'inbound' | 'outbound';

/** One open connection, as `WebSocketTransport.connections()` lists it. */
export interface ConnectionInfo {
  readonly peer: NodeId;
  readonly direction: LinkDirection;
  readonly dialledBy: NodeId;
}
