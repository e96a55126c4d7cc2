import {
  adoptable,
  ballotEquals,
  compareBallots,
  ROUND_LIMIT,
  type Ballot,
} from '../paxos/ballot.js';
import { earliest } from '../paxos/output.js';
import { majority } from '../paxos/quorum.js';
import type { Rng } from '../random.js';
import { ownerEquals, type Envelope, type NodeId, type Owner } from '../types.js';
import type { AcceptedLease, LeaseMessage, LeaseValue } from './messages.js';
import type { LeaseEvent } from './machine.js';

export interface LeaseProposerConfig {
  readonly owner: Owner;
  readonly peers: readonly NodeId[];
  readonly leaseMs: number;
  readonly maxClockDrift: number;
  readonly marginMs: number;
  readonly rng: Rng;
  readonly preferredLeader: NodeId | null;
}

/** Where the proposer writes what it wants sent and announced. */
export interface Sink {
  readonly send: Envelope<LeaseMessage>[];
  readonly events: LeaseEvent[];
}

interface Round {
  readonly ballot: Ballot;
  /** Read from the clock before the Prepare went out: the lease is timed from here. */
  readonly t0: number;
  readonly renewal: boolean;
  readonly timeoutAt: number;
  phase: 'prepare' | 'accept';
  /** Per voter in phase 1: did its promise leave the lease free for us? */
  readonly promises: Map<NodeId, boolean>;
  readonly accepts: Set<NodeId>;
  readonly rejects: Set<NodeId>;
  value: LeaseValue | null;
}

interface Held {
  readonly term: number;
  deadline: number;
  /** Voters of the last successful round, in the order they answered: successor candidates. */
  acceptedBy: NodeId[];
}

/** A Release some other owner sent: its values at or below `ballot` are free for our rounds. */
interface Released {
  readonly incarnation: string;
  readonly ballot: Ballot;
}

/**
 * The PaxosLease proposer (Trencseni et al. 2009, with the changes of docs/design.md).
 *
 * - It reads the clock (`t0`) *before* sending Prepare and believes the lease until
 *   `t0 + L·(1−ρ)/(1+ρ) − margin`: every acceptor that voted started its own timer of `L` after
 *   `t0`, and even with this clock slow and theirs fast they hold the value at least that long.
 * - It proposes itself only on a majority of promises free of other owners' leases.
 * - Renewal is a full round (new ballot, Prepare then Accept) at about a third of the lease.
 * - Every use of the lease compares `now` with the deadline; nothing trusts that a timer fired.
 */
export class LeaseProposer {
  readonly #config: LeaseProposerConfig;
  readonly #others: readonly NodeId[];
  readonly #quorum: number;
  #maxRound = 0;
  /** The highest ballot this incarnation ever sent: a Release must cover it. */
  #highest: Ballot | null = null;
  #round: Round | null = null;
  #held: Held | null = null;
  #renewAt: number | null = null;
  /** When the next campaign may start; null until one is wanted (then drawn with jitter). */
  #nextAttemptAt: number | null = null;
  #failures = 0;
  /** The highest term this node has reported: a fresh term of ours must not be below it. */
  #termFloor = 0;
  /**
   * The highest term any voter said its node reported. Above the term we lead in, that node
   * ignores us (terms it reports never go back): the next renewal starts a fresh term above it.
   * It happens only after a majority lost its memory at once while that node was away.
   */
  #votersTerm = 0;
  readonly #released = new Map<NodeId, Released>();
  #stopped = false;
  /** No round is left below ROUND_LIMIT: this incarnation takes no further part as proposer. */
  #exhausted = false;
  /** The node that last led, as far as this node knows: campaign waits are ranked after it. */
  #lastLeader: NodeId | null = null;
  /** Round trip seen between another proposer's Prepare and its Accept (moving average). */
  #roundTripMs: number;
  #measured = false;
  /** Every voter, in one order all nodes agree on. */
  readonly #ordered: readonly NodeId[];

  constructor(config: LeaseProposerConfig, restoredMaxRound: number) {
    this.#config = config;
    this.#others = config.peers.filter((p) => p !== config.owner.node);
    this.#quorum = majority(config.peers.length);
    this.#roundTripMs = config.leaseMs / 16;
    this.#ordered = [...config.peers].sort();
    this.see(restoredMaxRound);
  }

  get maxRound(): number {
    return this.#maxRound;
  }

  /** Notes a round seen in a message; the next ballot climbs above it (within ROUND_LIMIT). */
  see(round: number): void {
    if (round > this.#maxRound && adoptable(round)) this.#maxRound = round;
  }

  /** This node reported `term`: its own fresh terms must not be below it. */
  seeTerm(term: number): void {
    if (term > this.#termFloor && adoptable(term)) this.#termFloor = term;
    this.see(term);
  }

  /** Whether a lease is held, without looking at the clock. Only for the broken variants. */
  get holdsLease(): boolean {
    return this.#held !== null;
  }

  /** The one check before every leader action: a lease is held and `now` is before its end. */
  believes(now: number): boolean {
    return this.#held !== null && now < this.#held.deadline;
  }

  get deadline(): number | null {
    return this.#held?.deadline ?? null;
  }

  get term(): number | null {
    return this.#held?.term ?? null;
  }

  /** The lease length believed from `t0`: L·(1−ρ)/(1+ρ) − margin. */
  believeMs(): number {
    const { leaseMs, maxClockDrift: rho, marginMs } = this.#config;
    return (leaseMs * (1 - rho)) / (1 + rho) - marginMs;
  }

  /**
   * Called on every input after the acceptor has had its say. Ends a lapsed lease, times out a
   * stuck round, renews, or campaigns when no other owner's lease is known to be live.
   */
  tick(now: number, mayCampaign: boolean, out: Sink): void {
    if (this.#stopped || this.#exhausted) {
      this.expire(now, out);
      return;
    }
    this.expire(now, out);
    if (this.#round !== null && now >= this.#round.timeoutAt) this.#fail(now, out);
    if (this.#round !== null) return;
    if (this.#held !== null) {
      if (this.#renewAt !== null && now >= this.#renewAt) this.renew(now, out);
      return;
    }
    if (!mayCampaign) {
      // Someone else's lease is live: that wait spaces the attempts out by itself, so draw a
      // fresh jitter once it lapses (and never leave a wake-up in the past meanwhile).
      this.#nextAttemptAt = null;
      return;
    }
    this.#nextAttemptAt ??= now + this.campaignWaitMs();
    if (now >= this.#nextAttemptAt) this.startRound(now, false, out);
  }

  /** Ends a lease whose deadline has passed. Runs before any input is acted on. */
  expire(now: number, out: Sink): void {
    if (this.#held === null || now < this.#held.deadline) return;
    out.events.push({ type: 'deposed', term: this.#held.term, reason: 'expired' });
    this.#held = null;
    this.#renewAt = null;
    this.#nextAttemptAt = null;
  }

  wakeAt(): number | null {
    if (this.#stopped) return null;
    if (this.#exhausted) return this.#held?.deadline ?? null;
    let at = this.#held?.deadline ?? null;
    if (this.#round !== null) return earliest(at, this.#round.timeoutAt);
    if (this.#held !== null) return earliest(at, this.#renewAt);
    at = earliest(at, this.#nextAttemptAt);
    return at;
  }

  /**
   * Starts a round. The clock is read first (`t0`), then the Prepare goes out: timing the lease
   * from any later moment (say, when a majority accepted) lets it outlive the acceptors' timers.
   */
  startRound(now: number, renewal: boolean, out: Sink): void {
    const t0 = now;
    // After a failed round, climb further, by the rank and a random step: a node ranked before
    // this one whose own Prepares do not get through goes first every time, and the rounds its
    // acceptor reports would otherwise refuse ours in lockstep, round after round.
    const n = this.#ordered.length;
    const skip =
      renewal || this.#failures === 0 ? 0 : this.#rank() + Math.floor(this.#config.rng.next() * n);
    // Above every round seen and every ballot this incarnation sent (a ballot sent twice would
    // let a duplicate Accept stand for a renewal), and below the round limit, or nothing at all.
    const above = Math.max(this.#maxRound, this.#highest?.round ?? 0) + 1;
    const next = Math.min(above + skip, ROUND_LIMIT - 1);
    if (next < above) {
      // The rounds are used up: campaign and renew no more; a lease held lapses at its deadline.
      this.#round = null;
      this.#renewAt = null;
      this.#nextAttemptAt = null;
      this.#exhausted = true;
      return;
    }
    const ballot = this.makeBallot(next);
    this.see(ballot.round);
    this.#highest = ballot;
    this.#round = {
      ballot,
      t0,
      renewal,
      timeoutAt: now + this.#roundTimeoutMs(),
      phase: 'prepare',
      promises: new Map(),
      accepts: new Set(),
      rejects: new Set(),
      value: null,
    };
    this.#nextAttemptAt = null;
    this.#broadcast({ type: 'lease.prepare', ballot }, out);
  }

  onPromise(
    from: NodeId,
    ballot: Ballot,
    accepted: AcceptedLease | null,
    maxRound: number,
    termSeen: number,
    now: number,
    out: Sink,
  ): void {
    this.see(maxRound);
    this.#noteVotersTerm(termSeen);
    const round = this.#round;
    if (round?.phase !== 'prepare' || !ballotEquals(round.ballot, ballot)) return;
    if (round.promises.has(from) || round.rejects.has(from)) return;
    if (maxRound >= ballot.round) {
      // This voter has seen our round or a later one: it may not be part of the quorum that
      // makes our term, which must be above every round its voters saw. Count it as a refusal;
      // the other voters may still make a majority.
      round.rejects.add(from);
    } else {
      round.promises.set(from, this.#isFree(accepted));
    }
    let free = 0;
    for (const ok of round.promises.values()) if (ok) free++;
    if (free >= this.#quorum) {
      this.#beginAccept(round, now, out);
      return;
    }
    const blocked = round.promises.size - free + round.rejects.size;
    if (this.#config.peers.length - blocked < this.#quorum) this.#fail(now, out);
  }

  onAccepted(from: NodeId, ballot: Ballot, now: number, out: Sink): void {
    const round = this.#round;
    if (round?.phase !== 'accept' || !this.votesFor(round.ballot, ballot)) return;
    if (round.rejects.has(from)) return;
    round.accepts.add(from);
    if (round.accepts.size >= this.#quorum) this.#succeed(round, now, out);
  }

  onReject(
    from: NodeId,
    ballot: Ballot,
    phase: 'prepare' | 'accept',
    promised: Ballot | null,
    maxRound: number,
    termSeen: number,
    now: number,
    out: Sink,
  ): void {
    this.see(maxRound);
    this.#noteVotersTerm(termSeen);
    if (promised !== null) this.see(promised.round);
    const round = this.#round;
    if (round?.phase !== phase || !ballotEquals(round.ballot, ballot)) return;
    const answered = phase === 'prepare' ? round.promises.has(from) : round.accepts.has(from);
    if (answered || round.rejects.has(from)) return;
    round.rejects.add(from);
    let blocked = round.rejects.size;
    if (phase === 'prepare') for (const ok of round.promises.values()) if (!ok) blocked++;
    if (this.#config.peers.length - blocked < this.#quorum) this.#fail(now, out);
  }

  /** Another owner released: its values at or below `ballot` no longer block our rounds. */
  onRelease(owner: Owner, ballot: Ballot, successor: NodeId | null, now: number): void {
    this.see(ballot.round);
    const known = this.#released.get(owner.node);
    if (known?.incarnation !== owner.incarnation || compareBallots(known.ballot, ballot) < 0) {
      this.#released.set(owner.node, { incarnation: owner.incarnation, ballot });
    }
    if (this.#held !== null || this.#round !== null || successor === null) return;
    // A handoff: the named successor proposes at once; the others wait long enough for it to
    // win first, so followers do not duel.
    const { leaseMs, rng, owner: self } = this.#config;
    this.#failures = 0;
    this.#nextAttemptAt =
      successor === self.node ? now : now + leaseMs / 4 + rng.next() * (leaseMs / 8);
  }

  /** Whether `owner` released `ballot`: a Release of its covering that ballot arrived here. */
  released(owner: Owner, ballot: Ballot): boolean {
    const known = this.#released.get(owner.node);
    return known?.incarnation === owner.incarnation && compareBallots(ballot, known.ballot) <= 0;
  }

  /**
   * Ends this proposer. With `release`, belief ends first, then the Release goes out naming the
   * highest ballot ever sent (a renewal in flight included) and a successor.
   */
  stop(now: number, release: boolean, out: Sink): void {
    if (this.#stopped) return;
    this.expire(now, out);
    const held = this.#held;
    const wasLeader = held !== null;
    if (held !== null) {
      out.events.push({
        type: 'deposed',
        term: held.term,
        reason: release ? 'released' : 'stopped',
      });
    }
    this.#held = null;
    this.#round = null;
    this.#renewAt = null;
    this.#nextAttemptAt = null;
    this.#stopped = true;
    if (!release || this.#highest === null) return;
    const successor = wasLeader ? this.#successor(held.acceptedBy) : null;
    const owner = this.#config.owner;
    this.#broadcast({ type: 'lease.release', owner, ballot: this.#highest, successor }, out);
  }

  // Hooks: each is one rule of the design, overridden only by the broken variants in the tests.

  /** Every fresh ballot comes from here: above every round seen, tagged with the incarnation. */
  protected makeBallot(round: number): Ballot {
    const { node, incarnation } = this.#config.owner;
    return { round, node, incarnation };
  }

  /** Where the lease is timed from: `t0`, read before the Prepare went out. */
  protected leaseStart(t0: number, _now: number): number {
    return t0;
  }

  /** The lease length believed; see believeMs. */
  protected believedMs(): number {
    return this.believeMs();
  }

  /**
   * Whether a term must give way to a fresh one above the highest term a voter reported: that
   * voter's node ignores lower terms, so it would never name this leader (docs/design.md,
   * "Terms").
   */
  protected movesToFreshTerm(term: number, votersTerm: number): boolean {
    return votersTerm > term;
  }

  /** An `accepted` reply is a vote only for the very ballot it names, incarnation included. */
  protected votesFor(current: Ballot, reply: Ballot): boolean {
    return ballotEquals(current, reply);
  }

  /** Renewal: a full round with a fresh ballot. */
  protected renew(now: number, out: Sink): void {
    this.startRound(now, true, out);
  }

  #beginAccept(round: Round, now: number, out: Sink): void {
    const held = this.#held;
    const live = round.renewal && held !== null && now < held.deadline;
    // A renewal keeps the term, unless a voter's node reported a higher one: it would ignore us.
    const continuing = live && !this.movesToFreshTerm(held.term, this.#votersTerm);
    if (
      !continuing &&
      (round.ballot.round < this.#termFloor ||
        (this.movesToFreshTerm(round.ballot.round, this.#votersTerm) &&
          round.ballot.round <= this.#votersTerm))
    ) {
      // A fresh term below one this node reported since the Prepare went out (it could never
      // be claimed, see #succeed), or not above one a voter reported: leave no value behind and
      // go again, above it. A live lease stays held meanwhile: the round is then a renewal.
      this.#round = null;
      this.startRound(now, live, out);
      return;
    }
    const term = continuing ? held.term : round.ballot.round;
    const value: LeaseValue = { owner: this.#config.owner, leaseMs: this.#config.leaseMs, term };
    this.sendAccepts(round.ballot, value, round.t0, round.renewal, now, out);
  }

  /** Phase 2: asks every voter to accept `value` in `ballot`; the lease is timed from `t0`. */
  protected sendAccepts(
    ballot: Ballot,
    value: LeaseValue,
    t0: number,
    renewal: boolean,
    now: number,
    out: Sink,
  ): void {
    this.#round = {
      ballot,
      t0,
      renewal,
      timeoutAt: this.#round?.timeoutAt ?? now + this.#roundTimeoutMs(),
      phase: 'accept',
      promises: new Map(),
      accepts: new Set(),
      rejects: new Set(),
      value,
    };
    this.#broadcast({ type: 'lease.accept', ballot, value }, out);
  }

  #succeed(round: Round, now: number, out: Sink): void {
    const value = round.value;
    if (value === null) return;
    this.#round = null;
    this.#failures = 0;
    const deadline = this.leaseStart(round.t0, now) + this.believedMs();
    if (now >= deadline) {
      // Won too late to be worth anything: the acceptors may already have forgotten it. Those
      // that have not would hold it, blocking every other owner (A2), for up to a lease: release
      // the round, as an abandoned campaign does (it was never believed; only this owner's
      // values at or below this ballot clear, A4).
      this.#nextAttemptAt = null;
      this.#broadcast(
        { type: 'lease.release', owner: this.#config.owner, ballot: round.ballot, successor: null },
        out,
      );
      return;
    }
    const acceptedBy = [...round.accepts];
    const held = this.#held;
    if (held !== null && value.term === held.term && now < held.deadline) {
      held.deadline = Math.max(held.deadline, deadline);
      held.acceptedBy = acceptedBy;
      out.events.push({ type: 'renewed', term: held.term, deadline: held.deadline });
    } else if (
      (held === null || (now < held.deadline && value.term > held.term)) &&
      value.term === round.ballot.round &&
      value.term >= this.#termFloor
    ) {
      if (held !== null) {
        // The lease never lapsed, but it moves to a fresh term (see #votersTerm): the old term's
        // work ends and the new term's begins; this round is a full round, timed from its t0.
        out.events.push({ type: 'deposed', term: held.term, reason: 'superseded' });
      }
      this.#held = { term: value.term, deadline, acceptedBy };
      out.events.push({ type: 'elected', term: value.term, deadline });
      this.#broadcast({ type: 'lease.chosen', ballot: round.ballot, term: value.term }, out);
    } else {
      // A renewal that came back after the lease it meant to extend had lapsed: its value
      // carries the old term, so start a fresh term at once instead of resurrecting that one.
      // Likewise a fresh term below one this node reported meanwhile (its quorum had not seen
      // that round, as after a majority restarted without storage): the node would report a
      // term going backwards, so it claims nothing and goes again, with a round above it. Its
      // voters hold its own value, which does not block its next round.
      if (held !== null) out.events.push({ type: 'deposed', term: held.term, reason: 'expired' });
      this.#held = null;
      this.startRound(now, false, out);
      return;
    }
    this.#renewAt = round.t0 + this.#config.leaseMs / 3;
  }

  #fail(now: number, out: Sink): void {
    const round = this.#round;
    this.#round = null;
    if (round === null) return;
    const { leaseMs, rng } = this.#config;
    if (this.#held !== null) {
      // A renewal must land before the deadline: retry almost at once, jittered a little.
      this.#renewAt = now + rng.next() * (leaseMs / 32);
      return;
    }
    if (round.phase === 'accept') {
      // A campaign abandoned in phase 2 may have left its value with some acceptors, where it
      // would block every other owner for a whole lease (A2). This proposer never believed it
      // and never will (late replies are ignored), so it releases that round: a Release clears
      // only this owner's values at or below this ballot, never a later round of ours.
      this.#broadcast(
        { type: 'lease.release', owner: this.#config.owner, ballot: round.ballot, successor: null },
        out,
      );
    }
    this.#failures++;
    // Ranked, then jittered over a slot that doubles with each failure: the nodes that collided
    // go again a slot apart, so a duel rarely repeats.
    this.#nextAttemptAt = now + this.retryWaitMs(this.#failures);
  }

  /** The wait after `failures` failed or blocked rounds in a row (see #fail). */
  protected retryWaitMs(failures: number): number {
    const slot = this.#slotMs();
    const jitter = this.#config.rng.next() * slot * 2 ** Math.min(failures - 1, 3);
    return Math.min(this.#config.leaseMs, this.#rank() * slot + jitter);
  }

  /** Who led last (this node included): the next campaigns are ranked after it. */
  noteLeader(node: NodeId): void {
    this.#lastLeader = node;
  }

  /** A round trip seen between another proposer's Prepare and its Accept for one ballot. */
  noteRoundTrip(ms: number): void {
    if (!(ms >= 0 && ms < this.#config.leaseMs)) return;
    // The first sample replaces the guess; later ones move a quarter of the way.
    this.#roundTripMs = this.#measured ? 0.75 * this.#roundTripMs + 0.25 * ms : ms;
    this.#measured = true;
  }

  /**
   * The first wait before campaigning, once no live lease of another owner is known: a slot per
   * rank plus a jitter of half a slot. Ranks follow the last leader in one order every node
   * shares, so when a leader dies its successors start a slot apart instead of all within one
   * window (windows about a round long let seven rounds collide among five proposers).
   */
  protected campaignWaitMs(): number {
    const slot = this.#slotMs();
    return this.#rank() * slot + this.#config.rng.next() * (slot / 2);
  }

  /**
   * Twice the round trip seen (long enough for a higher rank's Prepare to arrive and be
   * promised, which makes this node yield), plus what clocks drifting apart by 2ρ do to the
   * moments the nodes' holds lapse: at least L/50, at most L/4.
   */
  #slotMs(): number {
    const { leaseMs: L, maxClockDrift: rho } = this.#config;
    return Math.min(L / 4, Math.max(L / 50, 2 * this.#roundTripMs + 2 * rho * L));
  }

  /**
   * 0 for the node right after the last leader in the shared order, 1 for the next, and so on;
   * the last leader itself comes last (it lost its lease: it may be the one cut off). A node
   * that knows of no leader yet ranks by its place in the order (a first start: n1 goes first).
   */
  #rank(): number {
    const order = this.#ordered;
    const self = this.#config.owner.node;
    const n = order.length;
    const last = this.#lastLeader === null ? -1 : order.indexOf(this.#lastLeader);
    if (last >= 0 && order[last] === self) return n - 1;
    const index = order.indexOf(self);
    return (((index - last - 1) % n) + n) % n;
  }

  /**
   * This node's acceptor just promised another proposer's fresh ballot. Campaigning now would
   * only pre-empt that round, so wait longer than a round trip first (as a Raft follower
   * restarts its election timer when it grants a vote).
   */
  yieldTo(now: number): void {
    if (this.#stopped || this.#held !== null || this.#round !== null) return;
    const { leaseMs, rng } = this.#config;
    const after = now + leaseMs / 8 + rng.next() * (leaseMs / 8);
    if (this.#nextAttemptAt === null || this.#nextAttemptAt < after) this.#nextAttemptAt = after;
  }

  #noteVotersTerm(term: number): void {
    if (term > this.#votersTerm && adoptable(term)) this.#votersTerm = term;
    this.see(term);
  }

  #isFree(accepted: AcceptedLease | null): boolean {
    if (accepted === null) return true;
    const holder = accepted.value.owner;
    if (ownerEquals(holder, this.#config.owner)) return true;
    const released = this.#released.get(holder.node);
    return (
      released?.incarnation === holder.incarnation &&
      compareBallots(accepted.ballot, released.ballot) <= 0
    );
  }

  #successor(acceptedBy: readonly NodeId[]): NodeId | null {
    const preferred = this.#config.preferredLeader;
    if (preferred !== null && preferred !== this.#config.owner.node) return preferred;
    return acceptedBy.find((id) => id !== this.#config.owner.node) ?? null;
  }

  #broadcast(message: LeaseMessage, out: Sink): void {
    out.send.push({ to: this.#config.owner.node, message });
    for (const to of this.#others) out.send.push({ to, message });
  }

  #roundTimeoutMs(): number {
    return this.#config.leaseMs / 4;
  }
}
