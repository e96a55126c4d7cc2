import { adoptable, type Ballot } from '../paxos/ballot.js';
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
      /**
       * The highest term the voter's node has reported (0: none). A leader below it moves to a
       * fresh term above it, so that node, which ignores lower terms, follows it again.
       */
      readonly termSeen: number;
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
      /** As in a promise. */
      readonly termSeen: number;
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
    }
  /**
   * Asked by a node that started without storage, once its restart silence is over: what is the
   * highest round you have seen? It votes again only once enough nodes have answered.
   */
  | { readonly type: 'lease.recover'; readonly incarnation: string }
  | {
      readonly type: 'lease.recovery';
      /** The asking incarnation, echoed: an answer to an earlier life's request does not count. */
      readonly incarnation: string;
      /** The highest round the answering node has seen, and any term it reported. */
      readonly maxRound: number;
      /** Whether the answering node has its memory (it has storage or has recovered). */
      readonly recovered: boolean;
    };

export type LeaseMessageType = LeaseMessage['type'];

/** Every round and term a message names. */
function roundsOf(message: LeaseMessage): number[] {
  switch (message.type) {
    case 'lease.prepare':
      return [message.ballot.round];
    case 'lease.promise':
      return message.accepted === null
        ? [message.ballot.round, message.maxRound, message.termSeen]
        : [
            message.ballot.round,
            message.maxRound,
            message.termSeen,
            message.accepted.ballot.round,
            message.accepted.value.term,
          ];
    case 'lease.accept':
      return [message.ballot.round, message.value.term];
    case 'lease.accepted':
      return [message.ballot.round, message.maxRound];
    case 'lease.reject':
      return [
        message.ballot.round,
        message.maxRound,
        message.termSeen,
        message.promised?.round ?? 0,
      ];
    case 'lease.chosen':
      return [message.ballot.round, message.term];
    case 'lease.release':
      return [message.ballot.round];
    case 'lease.recover':
      return [];
    case 'lease.recovery':
      return [message.maxRound];
    default: {
      const never: never = message;
      return never;
    }
  }
}

/**
 * Whether every round and term a message names is below `ROUND_LIMIT`. A message that names
 * more is refused whole, before any part of it is acted on: a node that promised, or adopted,
 * such a round could never again build a ballot its peers accept.
 */
export function withinRoundLimit(message: LeaseMessage): boolean {
  return roundsOf(message).every(adoptable);
}
