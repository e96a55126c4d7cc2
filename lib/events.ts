import type { NodeId } from './types.js';

/**
 * What an `onLeader` handler receives when this node becomes leader. Leadership work must stop
 * when `signal` aborts, and check `stillLeader()` after every `await` before acting as leader.
 */
export interface LeaderInfo {
  /** The leadership term: grows with every new leader (a renewal keeps it). */
  readonly term: number;
  /**
   * Aborts, with a `LeadershipLostError` as its reason, the moment this term's leadership ends:
   * the lease lapsed or was lost, or the node is stopping. Exact when read: `aborted`, `reason`
   * and `throwIfAborted()` compare the lease deadline with the clock and abort it first if the
   * deadline has passed, even after a stall in which no timer has run.
   */
  readonly signal: AbortSignal;
  /**
   * Whether this node still holds the lease of this term *now*: `!signal.aborted`, so it
   * compares the lease deadline with the clock at the moment of the call, is false after a
   * stall even before any timer has run, and a false answer aborts `signal`. Call it right
   * before every leader action, in the same synchronous turn.
   */
  readonly stillLeader: () => boolean;
}

/** What an `onFollower` handler receives: the leader this node knows, if any. */
export interface FollowerInfo {
  /** The leader's id, or `null` while no leader is known. Never this node's own id. */
  readonly leaderId: NodeId | null;
  readonly term: number | null;
}

/** The payload of the `leaderChange` event: this node's view of who leads changed. */
export interface LeaderChange {
  /** The leader's id (this node's own when it leads), or `null` while unknown. */
  readonly leaderId: NodeId | null;
  readonly term: number | null;
  /** Whether this node is the leader. */
  readonly isLeader: boolean;
}

/**
 * Leadership work. It may return a promise: a graceful `stop()` waits for it (up to
 * `handoffTimeoutMs`) before handing leadership on.
 */
export type LeaderHandler = (info: LeaderInfo) => unknown;

export type FollowerHandler = (info: FollowerInfo) => unknown;

/** The events a node emits, each with one payload object. */
export interface NodeEvents {
  leaderChange: [change: LeaderChange];
  /**
   * The node hit a failure it cannot continue after (its storage refused a write) and stopped
   * taking part; it lets any lease it held lapse. Create a new node to rejoin.
   */
  error: [error: Error];
}
