import type { Ballot } from '../paxos/ballot.js';
import type { NodeId } from '../types.js';
import type { AcceptedEntry, LogValue } from './messages.js';

/** What one voter's promise told the leader: its floor, and whether its report is complete. */
export interface Promiser {
  readonly floor: number;
  readonly applied: number;
  /** The slot its next report page starts at; null once the report is complete. */
  next: number | null;
  /** When that page was last asked for. */
  askedAt: number;
  /** It recovered while a majority had lost its memory. */
  readonly lossy: boolean;
}

/** One slot the leader proposed in its ballot and has not yet seen chosen. */
export interface Proposal<C> {
  readonly value: LogValue<C>;
  readonly acks: Set<NodeId>;
  /** The attempt it was last sent in. */
  attempt: number;
}

/** One send of Accepts: replies are counted against its send time. */
export interface Attempt {
  readonly sentAt: number;
  readonly slots: readonly number[];
}

/**
 * The log leader's state for one lease term (docs/design.md, "Multi-Paxos log"): leadership
 * starts afresh with every term, with phase 1 in a ballot above any seen.
 *
 * - `prepare`: phase 1 for every slot from the first this node has not applied; promises count
 *   only inside the vote window of their Prepare, and long reports come in pages.
 * - `catch-up`: a voter of the majority has applied further: the leader first learns those
 *   chosen slots (entries or a snapshot), since that voter no longer reports them.
 * - `accept`: it re-proposes what the majority reported (the highest ballot per slot), fills
 *   gaps with no-ops, and proposes a no-op *barrier*: its first own entry. It serves commands
 *   and reads only once the barrier is applied: every slot before it is then in its state.
 */
export class LogLeaderTerm<C> {
  readonly term: number;
  ballot: Ballot;
  deadline: number;
  phase: 'prepare' | 'catch-up' | 'accept' = 'prepare';
  /** The attempt of the current Prepare, and when it went out. */
  prepareAttempt = 0;
  prepareSentAt = 0;
  /** The slot the Prepare covers from. */
  prepareFrom = 0;
  readonly promisers = new Map<NodeId, Promiser>();
  /** The highest-ballot report per slot. */
  readonly reports = new Map<number, AcceptedEntry<C>>();
  /** In catch-up: the slot to have applied before proposing, and whom to ask. */
  catchUpTo = 0;
  catchUpFrom: NodeId | null = null;
  readonly proposals = new Map<number, Proposal<C>>();
  readonly attempts = new Map<number, Attempt>();
  nextSlot = 0;
  /** The slot of the barrier no-op; commands are served once it is applied. */
  barrier: number | null = null;
  /** Whether the barrier has been applied (the `serving` event went out). */
  serving = false;
  /** The highest commit index sent to the others, and when the next heartbeat is due. */
  commitSent = 0;
  heartbeatAt = 0;
  /** Commands waiting for a slot. */
  queue: C[] = [];
  queueBytes = 0;
  /** Per follower, the last slot it reported applied: laggards are offered what they miss. */
  readonly followerApplied = new Map<NodeId, number>();

  constructor(term: number, ballot: Ballot, deadline: number) {
    this.term = term;
    this.ballot = ballot;
    this.deadline = deadline;
  }

  /** Voters whose whole report has arrived. */
  completePromisers(): number {
    let n = 0;
    for (const p of this.promisers.values()) if (p.next === null) n += 1;
    return n;
  }

  /** Keeps the highest-ballot value reported for each slot. */
  addReport(entry: AcceptedEntry<C>, compare: (a: Ballot, b: Ballot) => number): void {
    const known = this.reports.get(entry.slot);
    if (known === undefined || compare(entry.ballot, known.ballot) > 0) {
      this.reports.set(entry.slot, entry);
    }
  }

  /** Starts phase 1 over in `ballot` (a refusal named a higher one, or the window passed). */
  restart(ballot: Ballot): void {
    this.ballot = ballot;
    this.phase = 'prepare';
    this.promisers.clear();
    this.reports.clear();
    this.proposals.clear();
    this.attempts.clear();
    this.barrier = null;
    this.serving = false;
    this.catchUpFrom = null;
  }
}
