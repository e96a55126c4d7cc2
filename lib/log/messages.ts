import { adoptable, type Ballot } from '../paxos/ballot.js';

/**
 * A log slot's value: a batch of state-machine commands, or `null` for a no-op (a gap a new
 * leader fills, or the barrier entry that opens its term).
 */
export type LogValue<C> = readonly C[] | null;

/** A value an acceptor accepted for a slot, and in which ballot. */
export interface AcceptedEntry<C> {
  readonly slot: number;
  readonly ballot: Ballot;
  readonly value: LogValue<C>;
}

/** A value for a slot, without its ballot: proposed in an Accept, or known to be chosen. */
export interface SlotValue<C> {
  readonly slot: number;
  readonly value: LogValue<C>;
}

/**
 * Wire messages of the Multi-Paxos log. `attempt` numbers the sends of one proposer: a reply
 * echoes it, so the proposer counts the reply against the send it answers (the vote window W
 * is measured from that send, docs/design.md "Multi-Paxos log").
 */
export type LogMessage<C> =
  /** Phase 1 for every slot from `from` on. Also asks for the next page of a long report. */
  | {
      readonly type: 'log.prepare';
      readonly ballot: Ballot;
      readonly attempt: number;
      readonly from: number;
    }
  | {
      readonly type: 'log.promise';
      readonly ballot: Ballot;
      readonly attempt: number;
      readonly from: number;
      /** Accepted entries with slot ≥ `from` (and above `floor`), in slot order: one page. */
      readonly entries: readonly AcceptedEntry<C>[];
      /** The first slot of the next page, or null if this page ends the report. */
      readonly next: number | null;
      /** Every slot up to here is chosen and folded into this node's state (its log starts after). */
      readonly floor: number;
      /** The highest slot this node has applied. */
      readonly applied: number;
      readonly maxRound: number;
      /** This node recovered while a majority had lost its memory (see LogRecovery). */
      readonly lossy: boolean;
    }
  | {
      readonly type: 'log.accept';
      readonly ballot: Ballot;
      readonly attempt: number;
      readonly entries: readonly SlotValue<C>[];
      /**
       * Every slot up to here is chosen; a slot this node accepted in this same ballot holds
       * the chosen value. An Accept with no entries is a heartbeat carrying only this.
       */
      readonly commit: number;
    }
  | {
      readonly type: 'log.accepted';
      readonly ballot: Ballot;
      readonly attempt: number;
      readonly applied: number;
    }
  | {
      readonly type: 'log.reject';
      readonly ballot: Ballot;
      readonly attempt: number;
      readonly promised: Ballot | null;
      readonly maxRound: number;
    }
  /**
   * A node that started without its log state asks for what the others hold (its
   * `incarnation`, echoed in the answer); `from` > 0 asks for a later page of the report.
   */
  | { readonly type: 'log.recover'; readonly incarnation: string; readonly from: number }
  | {
      readonly type: 'log.recovery';
      readonly incarnation: string;
      /** False: the answering node has no memory either (it is recovering itself). */
      readonly voting: boolean;
      readonly promised: Ballot | null;
      readonly maxRound: number;
      readonly floor: number;
      readonly from: number;
      /** Accepted entries from `from` on (above the floor): one page. */
      readonly entries: readonly AcceptedEntry<C>[];
      readonly next: number | null;
    }
  /** A lagging node asks for the chosen entries from `from` on. */
  | { readonly type: 'log.fetch'; readonly from: number }
  /** Chosen entries, contiguous from the first one's slot. */
  | { readonly type: 'log.chosen'; readonly entries: readonly SlotValue<C>[] }
  /** Asks for part `part` of the snapshot at `slot` (0: whatever snapshot the peer has). */
  | { readonly type: 'log.snapshot-fetch'; readonly slot: number; readonly part: number }
  /** One part of the state at `slot` (base64 of its UTF-8 text), `parts` in all. */
  | {
      readonly type: 'log.snapshot';
      readonly slot: number;
      readonly part: number;
      readonly parts: number;
      readonly data: string;
    };

export type LogMessageType = LogMessage<unknown>['type'];

/** Whether every round the message names is one a node may adopt (see ROUND_LIMIT). */
export function logWithinRoundLimit<C>(message: LogMessage<C>): boolean {
  switch (message.type) {
    case 'log.prepare':
    case 'log.accept':
    case 'log.accepted':
      return adoptable(message.ballot.round);
    case 'log.promise':
      return (
        adoptable(message.ballot.round) &&
        adoptable(message.maxRound) &&
        message.entries.every((e) => adoptable(e.ballot.round))
      );
    case 'log.reject':
      return (
        adoptable(message.ballot.round) &&
        adoptable(message.maxRound) &&
        (message.promised === null || adoptable(message.promised.round))
      );
    case 'log.recovery':
      return (
        adoptable(message.maxRound) &&
        (message.promised === null || adoptable(message.promised.round)) &&
        message.entries.every((e) => adoptable(e.ballot.round))
      );
    case 'log.recover':
    case 'log.fetch':
    case 'log.chosen':
    case 'log.snapshot-fetch':
    case 'log.snapshot':
      return true;
    default: {
      const never: never = message;
      return never;
    }
  }
}
