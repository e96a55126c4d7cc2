import type { NodeId, Owner } from '../types.js';

/**
 * A proposal number. Ordered by round, then node id, then incarnation, so two proposers never
 * share one; the incarnation (random per start) means a node restarted without disk never reuses
 * a ballot of its earlier life. Equality includes the incarnation.
 */
export interface Ballot {
  readonly round: number;
  readonly node: NodeId;
  readonly incarnation: string;
}

/**
 * Rounds a node acts on are below this bound. A message naming a round or term at or above it
 * is refused whole; a node never adopts such a round, and never builds a ballot at or above it:
 * when its next round would reach it, it campaigns and renews no more (its lease lapses). At
 * three renewals a second a cluster would need about three million years to get here; a round
 * beyond it comes from a buggy or hostile peer, and refusing it keeps that one frame from taking
 * a node out of elections. The codec's wire cap (2^52) is far above it.
 */
export const ROUND_LIMIT = 2 ** 48;

/** Whether a round is within the bound: one a node may adopt as seen, and act on. */
export function adoptable(round: number): boolean {
  return round < ROUND_LIMIT;
}

function cmp(a: string, b: string): -1 | 0 | 1 {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Lexicographic order on (round, node, incarnation). `null` (no ballot) is below every ballot. */
export function compareBallots(a: Ballot | null, b: Ballot | null): -1 | 0 | 1 {
  if (a === null) return b === null ? 0 : -1;
  if (b === null) return 1;
  if (a.round !== b.round) return a.round < b.round ? -1 : 1;
  const byNode = cmp(a.node, b.node);
  return byNode !== 0 ? byNode : cmp(a.incarnation, b.incarnation);
}

export function ballotEquals(a: Ballot | null, b: Ballot | null): boolean {
  return compareBallots(a, b) === 0;
}

export function maxBallot(a: Ballot | null, b: Ballot | null): Ballot | null {
  return compareBallots(a, b) >= 0 ? a : b;
}

/** A stable string form, for maps and logs. */
export function ballotKey(b: Ballot): string {
  return `${b.round}.${b.node}.${b.incarnation}`;
}

/** The owner a ballot belongs to. */
export function ballotOwner(b: Ballot): Owner {
  return { node: b.node, incarnation: b.incarnation };
}

/**
 * The next ballot for `owner`: its round is above every round the proposer has seen in any
 * message, rejections included, so a proposer that keeps losing keeps climbing.
 */
export function nextBallot(maxRoundSeen: number, owner: Owner): Ballot {
  return { round: maxRoundSeen + 1, node: owner.node, incarnation: owner.incarnation };
}
