import { InvariantError } from '../errors.js';
import { ballotEquals, ballotOwner, compareBallots, type Ballot } from '../paxos/ballot.js';
import { earliest, emptyOutput } from '../paxos/output.js';
import type { Rng } from '../random.js';
import { ownerEquals, type NodeId, type Output, type Owner } from '../types.js';
import { LeaseAcceptor, type AcceptorReply, type LeaseAcceptorConfig } from './acceptor.js';
import { withinRoundLimit, type LeaseMessage } from './messages.js';
import { LeaseProposer, type LeaseProposerConfig } from './proposer.js';
import { TermRecovery } from './recovery.js';

export interface LeaseConfig {
  readonly id: NodeId;
  /** 16 hex digits, drawn at every start. */
  readonly incarnation: string;
  /** Every voter, this node included. */
  readonly peers: readonly NodeId[];
  readonly leaseMs: number;
  /** ρ: the bound on clock rate drift, a ratio (0.01 = 1%). */
  readonly maxClockDrift: number;
  readonly marginMs: number;
  readonly rng: Rng;
  /** Named as successor on a graceful handoff when it is not this node. */
  readonly preferredLeader?: NodeId | null;
}

/** Kept across a restart with storage: the promise, and the highest round seen. */
export interface LeaseRecord {
  readonly promised: Ballot | null;
  readonly maxRound: number;
}

export type LeaseInput =
  | { readonly type: 'message'; readonly from: NodeId; readonly message: LeaseMessage }
  | { readonly type: 'tick' };

export type LeaseEvent =
  /** This node now holds the lease, in a new term, until `deadline` on its own clock. */
  | { readonly type: 'elected'; readonly term: number; readonly deadline: number }
  /** A renewal applied before the old deadline: same term, later deadline. */
  | { readonly type: 'renewed'; readonly term: number; readonly deadline: number }
  /** This node no longer holds the lease. */
  | {
      readonly type: 'deposed';
      readonly term: number;
      /** `superseded`: the lease held on, in a fresh term (an `elected` follows at once). */
      readonly reason: 'expired' | 'released' | 'stopped' | 'superseded';
    }
  /** Who this node believes leads changed (itself included); null while unknown. */
  | { readonly type: 'leader'; readonly leader: Owner | null; readonly term: number | null }
  /** Started without storage, it learned the highest round seen and votes again. */
  | { readonly type: 'recovered'; readonly maxRound: number }
  /** A message naming a round above ROUND_LIMIT was refused whole. */
  | { readonly type: 'refused'; readonly from: NodeId; readonly reason: 'round-limit' };

export type LeaseOutput = Output<LeaseMessage, LeaseRecord, LeaseEvent>;

export interface LeaderView {
  readonly owner: Owner;
  readonly term: number;
}

/**
 * One node's PaxosLease: its acceptor, its proposer and its view of who leads. Pure: it reads
 * no clock, sets no timer and does no I/O; each call takes `now` (this node's monotonic clock)
 * and returns what to persist, send and announce, and when to be called again.
 */
export class LeaseMachine {
  readonly config: LeaseConfig;
  readonly #owner: Owner;
  readonly #acceptor: LeaseAcceptor;
  readonly #proposer: LeaseProposer;
  #started = false;
  #stopped = false;
  /** Who this node believes leads, learned only from evidence that a lease was chosen. */
  #view: { owner: Owner; term: number; until: number; ballot: Ballot | null } | null = null;
  /** Terms this node reports never go backwards. */
  #termFloor = 0;
  #announced: { owner: Owner; term: number } | null = null;
  #persisted: LeaseRecord;
  /** The last Prepare of another proposer, to time its round trip when its Accept arrives. */
  #lastPrepare: { readonly ballot: Ballot; readonly at: number } | null = null;
  /** Started without storage: what it must learn before it votes; null once known. */
  #recovery: TermRecovery | null;

  constructor(config: LeaseConfig, restored: LeaseRecord | null) {
    if (!config.peers.includes(config.id)) {
      throw new InvariantError(`node ${config.id} is not among its peers`);
    }
    this.config = config;
    this.#owner = { node: config.id, incarnation: config.incarnation };
    this.#acceptor = this.createAcceptor({ leaseMs: config.leaseMs }, restored?.promised ?? null);
    // With storage the acceptor's highest round comes back too, not only the promise's: its
    // promises report it, so fresh terms go above every round it saw.
    if (restored !== null) this.#acceptor.recovered(restored.maxRound);
    this.#proposer = this.createProposer(
      {
        owner: this.#owner,
        peers: config.peers,
        leaseMs: config.leaseMs,
        maxClockDrift: config.maxClockDrift,
        marginMs: config.marginMs,
        rng: config.rng,
        preferredLeader: config.preferredLeader ?? null,
      },
      Math.max(restored?.maxRound ?? 0, restored?.promised?.round ?? 0),
    );
    if (this.#proposer.believeMs() <= 0) {
      throw new InvariantError('leaseMs·(1−ρ)/(1+ρ) − marginMs must be positive');
    }
    this.#persisted = { promised: restored?.promised ?? null, maxRound: this.#proposer.maxRound };
    this.#recovery =
      restored === null && this.recoversTerms()
        ? new TermRecovery({ peers: config.peers, self: config.id, retryMs: config.leaseMs / 8 })
        : null;
  }

  get owner(): Owner {
    return this.#owner;
  }

  get maxRound(): number {
    return this.#proposer.maxRound;
  }

  /**
   * The answer to a recovering node's question (its `incarnation`): the highest round this node
   * has seen, and whether it has its memory. Answering is not voting: even a silent, recovering
   * or stopped node tells what it has seen.
   */
  recoveryAnswer(incarnation: string): Extract<LeaseMessage, { type: 'lease.recovery' }> {
    return {
      type: 'lease.recovery',
      incarnation,
      maxRound: Math.max(this.#proposer.maxRound, this.#acceptor.maxRound),
      recovered: this.#recovery === null,
    };
  }

  /** Whether it started without storage and has not yet learned the highest round seen. */
  get recovering(): boolean {
    return this.#recovery !== null;
  }

  get silentUntil(): number {
    return this.#acceptor.silentUntil;
  }

  /** The lease deadline on this node's clock while a lease is held. */
  get deadline(): number | null {
    return this.#proposer.deadline;
  }

  get term(): number | null {
    return this.#proposer.term;
  }

  /** Begins the restart silence: this node votes for nothing during its first lease period. */
  start(now: number): LeaseOutput {
    const out = emptyOutput<LeaseMessage, LeaseRecord, LeaseEvent>();
    if (this.#started) return out;
    this.#started = true;
    this.#acceptor.start(now, this.#recovery !== null);
    return this.#finish(now, out);
  }

  handle(input: LeaseInput, now: number): LeaseOutput {
    const out = emptyOutput<LeaseMessage, LeaseRecord, LeaseEvent>();
    if (!this.#started || this.#stopped) return out;
    // A lapsed lease ends before anything else is done, whatever input came first.
    this.#proposer.expire(now, out);
    switch (input.type) {
      case 'message':
        this.#deliver(input.from, input.message, now, out);
        break;
      case 'tick':
        break;
      default: {
        const never: never = input;
        throw new InvariantError(`unknown input ${JSON.stringify(never)}`);
      }
    }
    this.#finish(now, out);
    if (input.type === 'message') this.#relayRelease(input.from, input.message, out);
    return out;
  }

  /**
   * Ends this node's part. With `release`, belief ends now and a Release naming a successor goes
   * out; without, the lease is left to lapse (for when leadership work may still be running).
   * Every later input is ignored.
   */
  stop(now: number, release: boolean): LeaseOutput {
    const out = emptyOutput<LeaseMessage, LeaseRecord, LeaseEvent>();
    if (this.#stopped) return out;
    this.#proposer.stop(now, release, out);
    this.#route(out, now);
    this.#stopped = true;
    this.#view = null;
    this.#announce(now, out);
    out.wakeAt = null;
    return out;
  }

  /** The one check before any leader action: a lease is held and `now` is before its end. */
  isLeader(now: number): boolean {
    return !this.#stopped && this.#proposer.believes(now);
  }

  /** Who this node believes leads (itself included), or null while unknown. */
  leader(now: number): LeaderView | null {
    if (this.isLeader(now)) {
      const term = this.#proposer.term;
      if (term !== null) return { owner: this.#owner, term };
    }
    const view = this.#view;
    if (view === null || now >= view.until || ownerEquals(view.owner, this.#owner)) return null;
    return { owner: view.owner, term: view.term };
  }

  // Factories: the broken variants in the tests substitute their own acceptor or proposer here.

  protected createAcceptor(config: LeaseAcceptorConfig, promised: Ballot | null): LeaseAcceptor {
    return new LeaseAcceptor(config, promised);
  }

  protected createProposer(config: LeaseProposerConfig, maxRound: number): LeaseProposer {
    return new LeaseProposer(config, maxRound);
  }

  /** A start without storage first learns the highest round seen (docs/design.md, Restarts). */
  protected recoversTerms(): boolean {
    return true;
  }

  /** Whether a lease is held, ignoring the clock. Only for the broken variants in the tests. */
  protected get holdsLease(): boolean {
    return this.#proposer.holdsLease;
  }

  #deliver(from: NodeId, message: LeaseMessage, now: number, out: LeaseOutput): void {
    if (!withinRoundLimit(message)) {
      out.events.push({ type: 'refused', from, reason: 'round-limit' });
      return;
    }
    this.#receive(from, message, now, out);
    this.#route(out, now);
  }

  /** Handles messages to this node itself without a network hop, until none are left. */
  #route(out: LeaseOutput, now: number): void {
    for (let guard = 0; guard < 64; guard++) {
      const local = out.send.filter((e) => e.to === this.config.id);
      if (local.length === 0) return;
      out.send = out.send.filter((e) => e.to !== this.config.id);
      for (const e of local) this.#receive(this.config.id, e.message, now, out);
    }
    throw new InvariantError('messages to self did not settle');
  }

  #receive(from: NodeId, message: LeaseMessage, now: number, out: LeaseOutput): void {
    const proposer = this.#proposer;
    switch (message.type) {
      case 'lease.prepare': {
        proposer.see(message.ballot.round);
        if (from !== this.config.id) this.#lastPrepare = { ballot: message.ballot, at: now };
        const reply = this.#acceptor.onPrepare(message.ballot, now);
        if (reply?.type === 'lease.promise' && from !== this.config.id) proposer.yieldTo(now);
        this.#reply(from, reply, out);
        break;
      }
      case 'lease.accept': {
        proposer.see(message.ballot.round);
        const prepared = this.#lastPrepare;
        if (from !== this.config.id && ballotEquals(prepared?.ballot ?? null, message.ballot)) {
          proposer.noteRoundTrip(now - (prepared?.at ?? now));
          this.#lastPrepare = null;
        }
        const { value } = message;
        // Its owner has released this ballot: the Accept was overtaken by the Release on the
        // way (or came round by a slower path). Accepting it now would hold, for a whole lease,
        // a value its owner no longer believes in and will never renew, and block the
        // successor's round (A2). Declining an Accept is always safe.
        if (proposer.released(value.owner, message.ballot)) break;
        // A renewal's Accept (term below its round) is evidence its owner was elected.
        if (value.term < message.ballot.round) {
          this.#learn(value.owner, value.term, message.ballot, now);
        }
        this.#reply(from, this.#acceptor.onAccept(message.ballot, value, now), out);
        break;
      }
      case 'lease.release': {
        this.#acceptor.onRelease(message.owner, message.ballot, now);
        // Only a Release that covers the round we learned the leader from ends the view: a
        // delayed Release of an older, abandoned round of the same owner says nothing of it.
        const view = this.#view;
        if (
          view !== null &&
          ownerEquals(view.owner, message.owner) &&
          compareBallots(view.ballot, message.ballot) <= 0
        ) {
          this.#view = null;
        }
        if (!ownerEquals(message.owner, this.#owner)) {
          proposer.onRelease(message.owner, message.ballot, message.successor, now);
        }
        break;
      }
      case 'lease.chosen': {
        proposer.see(message.ballot.round);
        this.#learn(ballotOwner(message.ballot), message.term, message.ballot, now);
        break;
      }
      case 'lease.promise':
        proposer.onPromise(
          from,
          message.ballot,
          message.accepted,
          message.maxRound,
          message.termSeen,
          now,
          out,
        );
        break;
      case 'lease.accepted':
        proposer.see(message.maxRound);
        proposer.onAccepted(from, message.ballot, now, out);
        break;
      case 'lease.recover':
        out.send.push({ to: from, message: this.recoveryAnswer(message.incarnation) });
        break;
      case 'lease.recovery': {
        const recovery = this.#recovery;
        if (recovery === null || message.incarnation !== this.#owner.incarnation) break;
        // The first round trip this node sees: its campaign waits are sized by it.
        const askedAt = recovery.askedAt;
        if (askedAt !== null) proposer.noteRoundTrip(now - askedAt);
        recovery.answer(from, message.maxRound, message.recovered);
        if (recovery.complete) this.#recover(recovery, out);
        break;
      }
      case 'lease.reject':
        proposer.onReject(
          from,
          message.ballot,
          message.phase,
          message.promised,
          message.maxRound,
          message.termSeen,
          now,
          out,
        );
        break;
      default: {
        const never: never = message;
        throw new InvariantError(`unknown lease message ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * The named successor passes the Release it got from the old leader on to the other voters,
   * after its own Prepares. A voter whose copy from the old leader comes late (that leader's
   * process paused between its sends) or never (a link down) would otherwise still hold the
   * old lease when the successor's Accept arrives, refuse it (A2), and stall the handoff for a
   * round timeout. On each link the relayed Release goes ahead of the successor's Accept. It is
   * the old leader's own Release, sent after it stopped believing (P5): one more copy of it,
   * which the protocol tolerates like any duplicate.
   */
  #relayRelease(from: NodeId, message: LeaseMessage, out: LeaseOutput): void {
    if (
      message.type !== 'lease.release' ||
      message.successor !== this.config.id ||
      from !== message.owner.node ||
      ownerEquals(message.owner, this.#owner)
    ) {
      return;
    }
    for (const to of this.config.peers) {
      if (to !== this.config.id && to !== from) out.send.push({ to, message });
    }
  }

  #reply(to: NodeId, reply: AcceptorReply, out: LeaseOutput): void {
    if (reply === null) return;
    // A vote is written down before it is sent (persist, then send).
    this.#persist(out);
    out.send.push({ to, message: reply });
  }

  #learn(owner: Owner, term: number, ballot: Ballot, now: number): void {
    // While this node believes its own lease, evidence of another owner's election can only be
    // of an earlier lease (a delayed Accept or notice): it says nothing of who leads now.
    if (!ownerEquals(owner, this.#owner) && this.#proposer.believes(now)) return;
    if (term < this.#termFloor) return;
    this.#termFloor = term;
    this.#acceptor.termSeen = term;
    this.#proposer.noteLeader(owner.node);
    this.#proposer.seeTerm(term);
    this.#view = { owner, term, until: now + this.config.leaseMs, ballot };
  }

  /** Enough nodes told the highest round seen: climb above it, and vote again. */
  #recover(recovery: TermRecovery, out: LeaseOutput): void {
    const maxRound = recovery.maxRound;
    this.#recovery = null;
    this.#proposer.see(maxRound);
    this.#acceptor.recovered(maxRound);
    out.events.push({ type: 'recovered', maxRound: this.#proposer.maxRound });
  }

  /** After the silence, asks the others for the highest round seen, again while answers lack. */
  #askRecovery(now: number, out: LeaseOutput): void {
    const recovery = this.#recovery;
    if (recovery === null || now < this.#acceptor.silentUntil || !recovery.due(now)) return;
    // Complete already: a cluster of one, with nobody to ask.
    if (recovery.complete || recovery.majorityForgot) {
      this.#recover(recovery, out);
      return;
    }
    const incarnation = this.#owner.incarnation;
    for (const to of recovery.ask(now)) {
      out.send.push({ to, message: { type: 'lease.recover', incarnation } });
    }
  }

  #persist(out: LeaseOutput): void {
    const promised = this.#acceptor.promisedBallot;
    const maxRound = this.#proposer.maxRound;
    const last = this.#persisted;
    if (last.maxRound === maxRound && ballotEquals(last.promised, promised)) return;
    this.#persisted = { promised, maxRound };
    out.persist = this.#persisted;
  }

  #finish(now: number, out: LeaseOutput): LeaseOutput {
    this.#askRecovery(now, out);
    const mayCampaign =
      !this.#acceptor.isSilent(now) && this.#acceptor.foreignLease(this.#owner, now) === null;
    this.#proposer.tick(now, mayCampaign, out);
    this.#route(out, now);
    for (const e of out.events) {
      if (e.type === 'elected') {
        this.#proposer.noteLeader(this.config.id);
        this.#termFloor = Math.max(this.#termFloor, e.term);
        this.#acceptor.termSeen = this.#termFloor;
        this.#view = {
          owner: this.#owner,
          term: e.term,
          until: now + this.config.leaseMs,
          ballot: null,
        };
      }
    }
    // A fresh ballot is written down before its Prepare goes out.
    this.#persist(out);
    this.#announce(now, out);
    let wakeAt = this.#proposer.wakeAt();
    wakeAt = earliest(wakeAt, this.#acceptor.nextExpiry(now));
    if (now < this.#acceptor.silentUntil) wakeAt = earliest(wakeAt, this.#acceptor.silentUntil);
    wakeAt = earliest(wakeAt, this.#recovery?.nextAskAt ?? null);
    if (this.#view !== null && now < this.#view.until) wakeAt = earliest(wakeAt, this.#view.until);
    out.wakeAt = wakeAt;
    return out;
  }

  /** Emits a `leader` event when the view of who leads changed. */
  #announce(now: number, out: LeaseOutput): void {
    const view = this.#stopped ? null : this.leader(now);
    const last = this.#announced;
    const same =
      view === null
        ? last === null
        : last !== null && last.term === view.term && ownerEquals(last.owner, view.owner);
    if (same) return;
    this.#announced = view;
    out.events.push({ type: 'leader', leader: view?.owner ?? null, term: view?.term ?? null });
  }
}
