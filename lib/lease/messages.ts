import type { Ballot } from '../paxos/ballot.js';
import type { NodeId, Owner } from '../types.js';

/**
 * The value a PaxosLease round chooses: who holds the lease, for how long (on each acceptor's
 * own clock, from receipt), and the leadership term it belongs to. A renewal keeps the term; a
 * fresh acquisition starts a term equal to its ballot's round.
 */
export interface LeaseValue {
  readonly owner: Owner;
  readonly leaseMs: number;
  readonly term: number;
}

export interface AcceptedLease {
  readonly ballot: Ballot;
  readonly value: LeaseValue;
}

/** Wire messages of the lease layer. Every field is checked by the codec before it gets here. */
export type LeaseMessage =
  | { readonly type: 'lease.prepare'; readonly ballot: Ballot }
  | {
      readonly type: 'lease.promise';
      readonly ballot: Ballot;
      /** The acceptor's accepted value, only while its timer for it still runs. */
      readonly accepted: AcceptedLease | null;
      /**
       * The highest round the acceptor had seen *before* this Prepare. A proposer whose round is
       * not above it retries higher, so a fresh term is above every round its quorum has seen.
       */
      readonly maxRound: number;
    }
  | { readonly type: 'lease.accept'; readonly ballot: Ballot; readonly value: LeaseValue }
  | { readonly type: 'lease.accepted'; readonly ballot: Ballot; readonly maxRound: number }
  | {
      readonly type: 'lease.reject';
      readonly ballot: Ballot;
      readonly phase: 'prepare' | 'accept';
      /** The acceptor's promised ballot (a proposer climbs above it). */
      readonly promised: Ballot | null;
      /** Set when an accept was refused because another owner's unexpired lease is held. */
      readonly holder: Owner | null;
      readonly maxRound: number;
    }
  /**
   * Sent once by a proposer that won a fresh term, so followers learn the leader at once
   * (renewals need no such notice: a renewal's Accept carries a term below its round).
   */
  | { readonly type: 'lease.chosen'; readonly ballot: Ballot; readonly term: number }
  | {
      readonly type: 'lease.release';
      readonly owner: Owner;
      /** The owner's highest ballot, a renewal in flight included: values at or below it clear. */
      readonly ballot: Ballot;
      readonly successor: NodeId | null;
    };

export type LeaseMessageType = LeaseMessage['type'];
