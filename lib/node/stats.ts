import { tally, type Counters, type Tally } from '../counters.js';
import type { TransportStats } from '../transport.js';

/**
 * Why an arriving frame was dropped before reaching the protocol:
 * - `oversized`: above the frame size limit;
 * - `malformed`: not JSON, or nested too deep;
 * - `version`: another protocol version;
 * - `schema`: a missing, unknown or ill-typed field;
 * - `cluster`: a frame of another cluster;
 * - `misaddressed`: addressed to another node;
 * - `sender`: from a node that is not a peer, claiming to be this node, or naming a sender
 *   other than the peer whose link it came over;
 * - `unsupported`: a well-formed message this node has no part for (yet);
 * - `round-limit`: a message naming a round or term above the round limit (2^48), refused
 *   whole by the protocol before any part of it was acted on.
 */
export const INVALID_FRAME_REASONS = [
  'oversized',
  'malformed',
  'version',
  'schema',
  'cluster',
  'misaddressed',
  'sender',
  'unsupported',
  'round-limit',
] as const;

export type InvalidFrameReason = (typeof INVALID_FRAME_REASONS)[number];

/** The counters behind `node.stats()`. Every field counts from the node's creation. */
export interface NodeStats {
  /** Valid frames handed to the protocol. */
  readonly framesIn: number;
  /** Frames handed to the transport. */
  readonly framesOut: number;
  /** Frames dropped on arrival, by reason; every reason is present, zero when it never happened. */
  readonly invalidFrames: Tally<InvalidFrameReason>;
  /** Times this node won a fresh leadership term. */
  readonly elections: number;
  /** Renewals that extended this node's lease within a term. */
  readonly renewals: number;
  /** Times this node's leadership ended (lapsed, released or stopped). */
  readonly depositions: number;
  /** Changes of this node's view of who leads. */
  readonly leaderChanges: number;
  /** `onLeader` handler runs started. */
  readonly leaderHandlerRuns: number;
  /** Handlers and event listeners that threw or rejected (each is logged). */
  readonly handlerErrors: number;
  /** Records written to storage. */
  readonly storageSaves: number;
  /** Timer wake-ups of the protocol. */
  readonly wakeups: number;
  /**
   * Frames from a peer id under an incarnation it had lately replaced (a stray frame, one
   * delayed across a restart, or one id in two processes).
   */
  readonly staleIncarnations: number;
  /**
   * Of those, frames that went back and forth between two incarnations of one peer, several
   * times within a short window: one node id runs in two processes.
   */
  readonly incarnationConflicts: number;
  /** The transport's own counters (`null` before the node was created with one). */
  readonly transport: TransportStats | null;
}

/** Mutable counters behind `node.stats()`; the transport's stats are added when read. */
export type NodeCounters = Counters<Omit<NodeStats, 'transport'>>;

export function nodeCounters(): NodeCounters {
  return {
    framesIn: 0,
    framesOut: 0,
    invalidFrames: tally(INVALID_FRAME_REASONS),
    elections: 0,
    renewals: 0,
    depositions: 0,
    leaderChanges: 0,
    leaderHandlerRuns: 0,
    handlerErrors: 0,
    storageSaves: 0,
    wakeups: 0,
    staleIncarnations: 0,
    incarnationConflicts: 0,
  };
}
