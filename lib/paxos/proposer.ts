import { InvariantError } from '../errors.js';
import type { Rng } from '../random.js';
import type { NodeId } from '../types.js';
import type { Accepted } from './acceptor.js';
import { ballotEquals, compareBallots, type Ballot } from './ballot.js';
import { majority, Quorum } from './quorum.js';

export interface ProposerConfig {
  /** Every voter, the proposing node included. Replies from anyone else never count. */
  readonly peers: readonly NodeId[];
  readonly rng: Rng;
  /** How long each phase waits for a majority before the round is abandoned. */
  readonly roundTimeoutMs: number;
  /** The base of the exponential backoff after a failed round. */
  readonly backoffMs: number;
  /** The cap on the backoff window; default `backoffMs · 2^5`. */
  readonly maxBackoffMs?: number;
  /** Rounds to try before giving up; default 20. */
  readonly maxAttempts?: number;
  /** Every fresh ballot comes from here: the caller tags it with its node id and incarnation. */
  readonly makeBallot: (round: number) => Ballot;
}

/**
 * What the proposer asks its caller to do. `prepare` and `accept` go to every voter, the
 * proposing node's own acceptor included.
 */
export type ProposerAction<V> =
  | { readonly type: 'prepare'; readonly ballot: Ballot }
  | { readonly type: 'accept'; readonly ballot: Ballot; readonly value: V }
  | { readonly type: 'chosen'; readonly ballot: Ballot; readonly value: V }
  | { readonly type: 'gaveUp'; readonly attempts: number };

export type ProposerStatus =
  'idle' | 'preparing' | 'accepting' | 'backingOff' | 'chosen' | 'gaveUp';

export const DEFAULT_MAX_ATTEMPTS = 20;
/** The backoff window stops doubling after this many failures unless `maxBackoffMs` caps it. */
const DEFAULT_BACKOFF_DOUBLINGS = 5;

type Phase<V> =
  | { readonly type: 'idle' }
  | {
      readonly type: 'preparing';
      readonly ballot: Ballot;
      readonly timeoutAt: number;
      readonly promises: Quorum;
      readonly rejects: Set<NodeId>;
      /** The highest-ballot value reported by a promise so far. */
      highest: Accepted<V> | null;
    }
  | {
      readonly type: 'accepting';
      readonly ballot: Ballot;
      readonly value: V;
      readonly timeoutAt: number;
      readonly accepts: Quorum;
      readonly rejects: Set<NodeId>;
    }
  | { readonly type: 'backingOff'; readonly ballot: Ballot; readonly retryAt: number }
  | { readonly type: 'chosen'; readonly chosen: Accepted<V> }
  | { readonly type: 'gaveUp' };

/**
 * A single-decree proposer (Paxos Made Simple, section 2.2). Pure: it takes `now` and returns
 * actions; `wakeAt` says when it wants a `tick`, and every decision compares `now` with its own
 * deadlines, so a tick that comes early or late is harmless.
 *
 * One attempt runs rounds until a value is chosen or `maxAttempts` rounds failed. A round is
 * phase 1 (Prepare to every voter, wait for a majority of promises) then phase 2 (Accept of the
 * highest-ballot value the promises reported, or of its own value when none did). A round fails
 * when a majority can no longer answer yes, or when a phase outlives `roundTimeoutMs`; the next
 * one starts after a randomised exponential backoff, with a ballot above every round seen.
 */
export class Proposer<V> {
  readonly #config: ProposerConfig;
  readonly #voters: ReadonlySet<NodeId>;
  readonly #needed: number;
  readonly #maxAttempts: number;
  readonly #maxBackoffMs: number;
  readonly #value: V;
  #phase: Phase<V> = { type: 'idle' };
  #maxRound: number;
  #attempts = 0;
  #failures = 0;

  constructor(config: ProposerConfig, value: V, maxRoundSeen = 0) {
    this.#config = config;
    this.#voters = new Set(config.peers);
    this.#needed = majority(this.#voters.size);
    this.#maxAttempts = config.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    this.#maxBackoffMs = config.maxBackoffMs ?? config.backoffMs * 2 ** DEFAULT_BACKOFF_DOUBLINGS;
    this.#value = value;
    this.#maxRound = maxRoundSeen;
  }

  /** The value this proposer brings; phase 1 may make it propose another. */
  get value(): V {
    return this.#value;
  }

  get status(): ProposerStatus {
    return this.#phase.type;
  }

  /** The ballot of the current (or last failed) round; null before the first. */
  get ballot(): Ballot | null {
    switch (this.#phase.type) {
      case 'preparing':
      case 'accepting':
      case 'backingOff':
        return this.#phase.ballot;
      case 'chosen':
        return this.#phase.chosen.ballot;
      case 'idle':
      case 'gaveUp':
        return null;
      default:
        return unreachable(this.#phase);
    }
  }

  /** The value this proposer saw chosen, with the ballot a majority accepted it in. */
  get chosen(): Accepted<V> | null {
    return this.#phase.type === 'chosen' ? this.#phase.chosen : null;
  }

  /** Rounds started so far. */
  get attempts(): number {
    return this.#attempts;
  }

  /** The highest round seen in any message or issued; the next ballot goes above it. */
  get maxRound(): number {
    return this.#maxRound;
  }

  /** When the proposer wants a tick: the end of the current phase's wait or of its backoff. */
  get wakeAt(): number | null {
    switch (this.#phase.type) {
      case 'preparing':
      case 'accepting':
        return this.#phase.timeoutAt;
      case 'backingOff':
        return this.#phase.retryAt;
      case 'idle':
      case 'chosen':
      case 'gaveUp':
        return null;
      default:
        return unreachable(this.#phase);
    }
  }

  /**
   * Records a round seen anywhere (another instance, another proposer's message). The next
   * ballot climbs above it: a proposer whose ballots stay below a promise would lose forever.
   */
  observe(round: number): void {
    if (round > this.#maxRound) this.#maxRound = round;
  }

  /** Starts the first round. Calling it again does nothing. */
  start(now: number): ProposerAction<V>[] {
    if (this.#phase.type !== 'idle') return [];
    return this.#startRound(now);
  }

  /** Phase 1b arrived: counts it once per voter, for the current ballot only. */
  onPromise(
    from: NodeId,
    ballot: Ballot,
    accepted: Accepted<V> | null,
    now: number,
  ): ProposerAction<V>[] {
    this.observe(ballot.round);
    if (accepted !== null) this.observe(accepted.ballot.round);
    const phase = this.#phase;
    if (phase.type !== 'preparing' || !ballotEquals(phase.ballot, ballot)) return [];
    if (!this.#voters.has(from) || !phase.promises.add(from)) return [];
    // The constraint of phase 2 (P2c): propose the value of the highest-numbered proposal
    // among the majority's replies, so a value that may already be chosen is never replaced.
    if (accepted !== null && compareBallots(accepted.ballot, phase.highest?.ballot ?? null) > 0) {
      phase.highest = accepted;
    }
    if (!phase.promises.reached) return [];
    const value = phase.highest?.value ?? this.#value;
    this.#phase = {
      type: 'accepting',
      ballot: phase.ballot,
      value,
      timeoutAt: now + this.#config.roundTimeoutMs,
      accepts: new Quorum(this.#voters.size),
      // A voter that refused this ballot has promised a higher one and refuses its Accept too.
      rejects: phase.rejects,
    };
    return [{ type: 'accept', ballot: phase.ballot, value }];
  }

  /** Phase 2b arrived: the value is chosen once a majority accepted this same ballot. */
  onAccepted(from: NodeId, ballot: Ballot): ProposerAction<V>[] {
    this.observe(ballot.round);
    const phase = this.#phase;
    if (phase.type !== 'accepting' || !ballotEquals(phase.ballot, ballot)) return [];
    if (!this.#voters.has(from) || !phase.accepts.add(from)) return [];
    if (!phase.accepts.reached) return [];
    const chosen: Accepted<V> = { ballot: phase.ballot, value: phase.value };
    this.#phase = { type: 'chosen', chosen };
    return [{ type: 'chosen', ...chosen }];
  }

  /**
   * A voter refused the ballot because it promised `promised`. Its round is remembered even if
   * the reply is stale, so the next ballot climbs above it. The round fails once too few voters
   * are left to make a majority; a refusal never cancels a promise or vote already counted.
   */
  onReject(
    from: NodeId,
    ballot: Ballot,
    promised: Ballot | null,
    now: number,
  ): ProposerAction<V>[] {
    this.observe(ballot.round);
    if (promised !== null) this.observe(promised.round);
    const phase = this.#phase;
    if (phase.type !== 'preparing' && phase.type !== 'accepting') return [];
    if (!ballotEquals(phase.ballot, ballot) || !this.#voters.has(from)) return [];
    const yes = phase.type === 'preparing' ? phase.promises : phase.accepts;
    if (yes.has(from)) return [];
    phase.rejects.add(from);
    let refused = 0;
    for (const voter of phase.rejects) if (!yes.has(voter)) refused++;
    if (this.#voters.size - refused >= this.#needed) return [];
    return this.#fail(now);
  }

  /** Abandons a phase that waited past its timeout; starts the next round once backoff ends. */
  tick(now: number): ProposerAction<V>[] {
    const phase = this.#phase;
    switch (phase.type) {
      case 'preparing':
      case 'accepting':
        return now >= phase.timeoutAt ? this.#fail(now) : [];
      case 'backingOff':
        return now >= phase.retryAt ? this.#startRound(now) : [];
      case 'idle':
      case 'chosen':
      case 'gaveUp':
        return [];
      default:
        return unreachable(phase);
    }
  }

  #startRound(now: number): ProposerAction<V>[] {
    const ballot = this.#config.makeBallot(this.#maxRound + 1);
    this.observe(ballot.round);
    this.#attempts++;
    this.#phase = {
      type: 'preparing',
      ballot,
      timeoutAt: now + this.#config.roundTimeoutMs,
      promises: new Quorum(this.#voters.size),
      rejects: new Set(),
      highest: null,
    };
    return [{ type: 'prepare', ballot }];
  }

  #fail(now: number): ProposerAction<V>[] {
    const phase = this.#phase;
    if (phase.type !== 'preparing' && phase.type !== 'accepting') return [];
    if (this.#attempts >= this.#maxAttempts) {
      this.#phase = { type: 'gaveUp' };
      return [{ type: 'gaveUp', attempts: this.#attempts }];
    }
    this.#failures++;
    // Duelling proposers (Paxos Made Simple, section 2.4): progress needs one of them to run a
    // round alone. Full jitter over a window that doubles per failure spreads their retries.
    const retryAt = now + this.#config.rng.next() * this.backoffWindowMs(this.#failures);
    this.#phase = { type: 'backingOff', ballot: phase.ballot, retryAt };
    return retryAt <= now ? this.#startRound(now) : [];
  }

  /** The backoff after the `failures`-th failed round is drawn uniformly from [0, this). */
  backoffWindowMs(failures: number): number {
    const doubled = this.#config.backoffMs * 2 ** Math.max(0, failures - 1);
    return Math.min(this.#maxBackoffMs, doubled);
  }
}

function unreachable(x: never): never {
  throw new InvariantError(`unexpected proposer phase ${JSON.stringify(x)}`);
}
