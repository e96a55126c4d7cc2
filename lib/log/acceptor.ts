import { ballotEquals, compareBallots, type Ballot } from '../paxos/ballot.js';
import type { AcceptedEntry, LogValue, SlotValue } from './messages.js';

/**
 * The log's acceptor: one promise for every slot at once (Multi-Paxos phase 1 covers all slots
 * from a point on), and per slot the last value accepted with its ballot.
 *
 * - Prepare(b, from): promise if `b ≥ promised` (equal: the same proposer asking for the next
 *   page of its report) and report the accepted entries from `from` on.
 * - Accept(b, entries): accept if `b ≥ promised`; the promise moves up to `b`.
 *
 * Slots at or below `floor` are chosen and folded into the node's state: their entries are
 * dropped, and a proposer that needs them is sent the chosen values or a snapshot instead.
 */
export class LogAcceptor<C> {
  #promised: Ballot | null;
  readonly #accepted = new Map<number, AcceptedEntry<C>>();
  #floor: number;
  /** The highest slot with an accepted entry (0: none). */
  #top = 0;

  constructor(promised: Ballot | null, floor: number, accepted: readonly AcceptedEntry<C>[]) {
    this.#promised = promised;
    this.#floor = floor;
    for (const e of accepted) this.#store(e);
  }

  get promised(): Ballot | null {
    return this.#promised;
  }

  get floor(): number {
    return this.#floor;
  }

  get top(): number {
    return this.#top;
  }

  get size(): number {
    return this.#accepted.size;
  }

  /** Whether it may promise `ballot`: above the promise, or equal (a page of the same report). */
  mayPromise(ballot: Ballot): boolean {
    return compareBallots(ballot, this.#promised) >= 0;
  }

  /** Promises `ballot` for every slot (the caller checked `mayPromise`). */
  promise(ballot: Ballot): void {
    if (compareBallots(ballot, this.#promised) > 0) this.#promised = ballot;
  }

  /**
   * Accepts `entries` in `ballot` if no higher ballot was promised. Returns whether it did; the
   * promise moves up to `ballot` (an Accept is a promise not to accept lower ballots either).
   */
  accept(ballot: Ballot, entries: readonly SlotValue<C>[]): boolean {
    if (compareBallots(ballot, this.#promised) < 0) return false;
    this.#promised = ballot;
    for (const { slot, value } of entries) this.#store({ slot, ballot, value });
    return true;
  }

  /**
   * Takes what a recovery learned from the others: their highest promise, and per slot the
   * highest-ballot entry (this node's own votes of its earlier life are among them).
   */
  adopt(promised: Ballot | null, entries: readonly AcceptedEntry<C>[]): void {
    if (compareBallots(promised, this.#promised) > 0) this.#promised = promised;
    for (const e of entries) {
      const known = this.#accepted.get(e.slot);
      if (known === undefined || compareBallots(e.ballot, known.ballot) > 0) this.#store(e);
    }
  }

  /** The entry accepted for `slot`, if any and above the floor. */
  entry(slot: number): AcceptedEntry<C> | undefined {
    return this.#accepted.get(slot);
  }

  /** The value accepted for `slot` in exactly `ballot`, if that is what this acceptor holds. */
  acceptedIn(slot: number, ballot: Ballot): { value: LogValue<C> } | null {
    const e = this.#accepted.get(slot);
    return e !== undefined && ballotEquals(e.ballot, ballot) ? { value: e.value } : null;
  }

  /**
   * One page of the report from `from` on: at most `limit` entries, in slot order, and the slot
   * the next page starts at (null: this page ends the report).
   */
  report(
    from: number,
    limit: number,
    bytesOf: (entry: AcceptedEntry<C>) => number = () => 0,
    maxBytes = Number.POSITIVE_INFINITY,
  ): { entries: AcceptedEntry<C>[]; next: number | null } {
    const entries: AcceptedEntry<C>[] = [];
    let bytes = 0;
    const start = Math.max(from, this.#floor + 1);
    for (let slot = start; slot <= this.#top; slot++) {
      const e = this.#accepted.get(slot);
      if (e === undefined) continue;
      const size = bytesOf(e);
      // At least one entry per page, whatever its size (a batch is cut to fit a frame).
      if (entries.length === limit || (entries.length > 0 && bytes + size > maxBytes)) {
        return { entries, next: slot };
      }
      entries.push(e);
      bytes += size;
    }
    return { entries, next: null };
  }

  /** Every accepted entry above the floor, for storage and recovery answers. */
  all(): AcceptedEntry<C>[] {
    return [...this.#accepted.values()].sort((a, b) => a.slot - b.slot);
  }

  /** Slots up to `through` are chosen and applied: their entries are no longer needed. */
  truncate(through: number): void {
    if (through <= this.#floor) return;
    // Walk whichever is smaller: the slots being dropped, or the entries held.
    if (through - this.#floor <= this.#accepted.size) {
      for (let slot = this.#floor + 1; slot <= through; slot++) this.#accepted.delete(slot);
    } else {
      for (const slot of this.#accepted.keys()) if (slot <= through) this.#accepted.delete(slot);
    }
    this.#floor = through;
    if (this.#top < through) this.#top = through;
  }

  #store(e: AcceptedEntry<C>): void {
    if (e.slot <= this.#floor) return;
    this.#accepted.set(e.slot, e);
    if (e.slot > this.#top) this.#top = e.slot;
  }
}
