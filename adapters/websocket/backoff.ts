import type { Rng } from '../../lib/random.js';

/**
 * Redial delays: capped exponential backoff with full jitter (a uniform draw below the cap), so
 * peers that lost each other at the same moment do not redial in lockstep, and a peer that
 * stays down costs at most one dial per `maxMs`.
 */
export interface BackoffPolicy {
  readonly baseMs: number;
  readonly maxMs: number;
}

/** The delay before the dial numbered `attempt` (0 for the first redial), in whole ms. */
export function backoffDelayMs(attempt: number, policy: BackoffPolicy, rng: Rng): number {
  // 2^30 already exceeds any cap a timer can take; clamping keeps the product finite.
  const cap = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(Math.max(attempt, 0), 30));
  return Math.floor(rng.next() * cap);
}

/** `Math.random` as an Rng: jitter needs no seed outside tests. */
export const mathRandom: Rng = Object.freeze({ next: (): number => Math.random() });
