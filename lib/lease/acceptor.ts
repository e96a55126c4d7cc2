import { Acceptor } from '../paxos/acceptor.js';
import { adoptable, ballotEquals, compareBallots, type Ballot } from '../paxos/ballot.js';
import { ownerEquals, type Owner } from '../types.js';
import type { AcceptedLease, LeaseMessage, LeaseValue } from './messages.js';

export interface LeaseAcceptorConfig {
  readonly leaseMs: number;
}

/** A reply to send back to the proposer, or nothing (silence, or an ignored duplicate). */
export type AcceptorReply = Extract<
  LeaseMessage,
  { type: 'lease.promise' | 'lease.accepted' | 'lease.reject' }
> | null;

/**
 * The PaxosLease acceptor: a Basic Paxos acceptor whose accepted value is a *timed exclusive
 * lock*. Safety of the lease rests on three rules here (docs/design.md, "Leader lease"):
 *
 * 1. A value is held for `leaseMs` on this acceptor's clock from the moment its Accept arrived,
 *    then forgotten; promises report only values still held. A duplicate Accept of the ballot
 *    already accepted never restarts that timer.
 * 2. An Accept is refused while an unexpired value of *another owner* is held, whatever its
 *    ballot: two leases can then never share a majority.
 * 3. After a start without the held values (every start: timers cannot survive a restart), the
 *    acceptor answers nothing for `leaseMs`, so every lease it voted for in its earlier life has
 *    ended before it votes again.
 */
export class LeaseAcceptor extends Acceptor<LeaseValue> {
  readonly #leaseMs: number;
  /** Local time at which the accepted value is forgotten; null when none is held. */
  #expiresAt: number | null = null;
  /** The last ballot accepted, kept after expiry so a late duplicate cannot revive its value. */
  #lastAccepted: Ballot | null = null;
  /** The highest term this node has reported, told in every promise and refusal. */
  termSeen = 0;
  #silentUntil = Number.POSITIVE_INFINITY;
  /** Started without storage and not yet told the highest round seen: it must not vote. */
  #recovering = false;
  #maxRound = 0;
  /** An Accept overheard while silent: not a vote, only a sign that someone holds a lease. */
  #overheard: { readonly owner: Owner; readonly ballot: Ballot; readonly until: number } | null =
    null;

  constructor(config: LeaseAcceptorConfig, restoredPromise: Ballot | null) {
    // The promise survives a restart with storage; the held value never does (its timer
    // cannot be carried across processes), which is what the silence period covers.
    super({ promised: restoredPromise, accepted: null });
    this.#leaseMs = config.leaseMs;
    const restored = restoredPromise?.round ?? 0;
    this.#maxRound = adoptable(restored) ? restored : 0;
  }

  /**
   * Begins the silence. `recovering`: started without storage, it also votes for nothing after
   * the silence until `recovered` (docs/design.md, "Restarts").
   */
  start(now: number, recovering = false): void {
    this.#silentUntil = now + this.silenceMs(this.#leaseMs);
    this.#recovering = recovering;
  }

  /** Other nodes told the highest round they have seen: it votes again, above it. */
  recovered(maxRound: number): void {
    if (adoptable(maxRound) && maxRound > this.#maxRound) this.#maxRound = maxRound;
    this.#recovering = false;
  }

  get silentUntil(): number {
    return this.#silentUntil;
  }

  /** Whether it answers nothing at `now`: its restart silence, then until it has recovered. */
  isSilent(now: number): boolean {
    return now < this.#silentUntil || this.#recovering;
  }

  /** The value held at `now`, if its timer still runs. */
  held(now: number): AcceptedLease | null {
    this.#expire(now);
    return this.accepted;
  }

  /** When the held value (or an overheard lease) lapses, if later than `now`: wake then. */
  nextExpiry(now: number): number | null {
    this.#expire(now);
    if (this.#overheard !== null && now >= this.#overheard.until) this.#overheard = null;
    const overheard = this.#overheard?.until ?? null;
    if (this.#expiresAt === null) return overheard;
    return overheard === null ? this.#expiresAt : Math.min(this.#expiresAt, overheard);
  }

  /** Whether a lease of an owner other than `self` may be live, as far as this acceptor knows. */
  foreignLease(self: Owner, now: number): Owner | null {
    const held = this.held(now);
    if (held !== null && !ownerEquals(held.value.owner, self)) return held.value.owner;
    if (this.#overheard !== null) {
      if (now >= this.#overheard.until) this.#overheard = null;
      else if (!ownerEquals(this.#overheard.owner, self)) return this.#overheard.owner;
    }
    return null;
  }

  onPrepare(ballot: Ballot, now: number): AcceptorReply {
    const seenBefore = this.#maxRound;
    this.#see(ballot);
    if (!this.votesAt(now)) return null;
    this.#expire(now);
    const result = this.prepare(ballot);
    if (!result.ok) {
      return this.#reject(ballot, 'prepare', null);
    }
    return {
      type: 'lease.promise',
      ballot,
      accepted: result.accepted,
      maxRound: seenBefore,
      termSeen: this.termSeen,
    };
  }

  onAccept(ballot: Ballot, value: LeaseValue, now: number): AcceptorReply {
    this.#see(ballot);
    if (!this.votesAt(now)) {
      this.#overheard = { owner: value.owner, ballot, until: now + this.#leaseMs };
      return null;
    }
    this.#expire(now);
    if (!this.admitsAccept(ballot)) return this.#reject(ballot, 'accept', null);
    const held = this.accepted;
    if (held !== null && ballotEquals(held.ballot, ballot)) {
      // A duplicate: answer again, but the timer keeps running from the first receipt.
      return { type: 'lease.accepted', ballot, maxRound: this.#maxRound };
    }
    if (this.isDuplicateOfExpired(ballot)) return null;
    if (held !== null && this.blocks(held, value)) {
      return this.#reject(ballot, 'accept', held.value.owner);
    }
    const result = this.accept(ballot, value);
    if (!result.ok) return this.#reject(ballot, 'accept', null);
    this.#expiresAt = now + Math.max(value.leaseMs, this.#leaseMs);
    this.#lastAccepted = ballot;
    return { type: 'lease.accepted', ballot, maxRound: this.#maxRound };
  }

  /** Clears the releasing owner's value at or below the released ballot, never another's. */
  onRelease(owner: Owner, ballot: Ballot, now: number): void {
    this.#see(ballot);
    const overheard = this.#overheard;
    if (
      overheard !== null &&
      ownerEquals(overheard.owner, owner) &&
      compareBallots(overheard.ballot, ballot) <= 0
    ) {
      this.#overheard = null;
    }
    const held = this.held(now);
    if (held !== null && this.releaseClears(held, owner, ballot)) {
      this.accepted = null;
      this.#expiresAt = null;
    }
  }

  /** Rounds seen in any message, so the proposer's next ballot climbs above them. */
  get maxRound(): number {
    return this.#maxRound;
  }

  // Hooks: each is one rule of the design, overridden only by the broken variants in the tests.

  /** Silence after a start, on this acceptor's clock. */
  protected silenceMs(leaseMs: number): number {
    return leaseMs;
  }

  /** Rule 3: no promise and no vote while the restart silence lasts. */
  protected votesAt(now: number): boolean {
    return !this.isSilent(now);
  }

  /** Rule 2: another owner's unexpired value blocks an Accept whatever its ballot. */
  protected blocks(held: AcceptedLease, incoming: LeaseValue): boolean {
    return !ownerEquals(held.value.owner, incoming.owner);
  }

  /** A Release clears only its owner's values, at or below the ballot it names. */
  protected releaseClears(held: AcceptedLease, owner: Owner, ballot: Ballot): boolean {
    return ownerEquals(held.value.owner, owner) && compareBallots(held.ballot, ballot) <= 0;
  }

  /** Rule 1: a late duplicate of an accepted ballot whose value has lapsed changes nothing. */
  protected isDuplicateOfExpired(ballot: Ballot): boolean {
    return ballotEquals(this.#lastAccepted, ballot);
  }

  #expire(now: number): void {
    if (this.#expiresAt !== null && now >= this.#expiresAt) {
      this.accepted = null;
      this.#expiresAt = null;
    }
  }

  #see(ballot: Ballot): void {
    if (ballot.round > this.#maxRound && adoptable(ballot.round)) this.#maxRound = ballot.round;
  }

  #reject(ballot: Ballot, phase: 'prepare' | 'accept', holder: Owner | null): AcceptorReply {
    return {
      type: 'lease.reject',
      ballot,
      phase,
      promised: this.promised,
      holder,
      maxRound: this.#maxRound,
      termSeen: this.termSeen,
    };
  }
}
