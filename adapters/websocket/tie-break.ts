import type { NodeId } from '../../lib/types.js';

/**
 * Which of two connections between the same pair of nodes survives. Both ends run this rule on
 * the same facts and so keep the same connection, whatever order they saw things in:
 *
 * 1. A connection from another instance of the peer than the one on record is newer: the peer
 *    restarted, and the old connection is a leftover (half-open, or about to close).
 * 2. Otherwise the connection dialled by the lower node id wins. A connection that is still
 *    being dialled counts as dialled, so two nodes dialling each other at once settle on the
 *    same one without either waiting for the other's result.
 * 3. Two connections dialled by the same node: the newer one wins, since that node dials only
 *    when it has no connection, so it has given up on the older one.
 */
export interface LinkFacts {
  /** The node that dialled this connection. */
  readonly dialledBy: NodeId;
  /** The peer's instance on this connection; null while an outbound dial is unanswered. */
  readonly peerInstance: string | null;
}

export function newerLinkWins(
  self: NodeId,
  peer: NodeId,
  existing: LinkFacts,
  incoming: LinkFacts,
): boolean {
  if (
    existing.peerInstance !== null &&
    incoming.peerInstance !== null &&
    existing.peerInstance !== incoming.peerInstance
  ) {
    return true;
  }
  if (existing.dialledBy === incoming.dialledBy) return true;
  const lower = self < peer ? self : peer;
  return incoming.dialledBy === lower;
}
