/**
 * Broken variants of the core, each missing one rule of docs/design.md. They live here, never
 * behind flags in lib/: each is a subclass that overrides exactly one hook. The simulator must
 * catch every one of them on random seeds; test/sim/mutants.test.ts says how often.
 */
import { LeaseAcceptor } from '../../lib/lease/acceptor.js';
import { LeaseMachine, type LeaseConfig, type LeaseRecord } from '../../lib/lease/machine.js';
import type { AcceptedLease, LeaseValue } from '../../lib/lease/messages.js';
import { LeaseProposer, type LeaseProposerConfig, type Sink } from '../../lib/lease/proposer.js';
import type { LeaseAcceptorConfig } from '../../lib/lease/acceptor.js';
import { Acceptor, type AcceptorState } from '../../lib/paxos/acceptor.js';
import type { Ballot } from '../../lib/paxos/ballot.js';
import { DecreeMachine, type DecreeConfig, type DecreeRecord } from '../../lib/paxos/decree.js';
import { ownerEquals, type Owner } from '../../lib/types.js';

/** Accepts and promises whatever ballot comes, ignoring its promise. */
export class IgnoresPromiseAcceptor extends LeaseAcceptor {
  protected override admitsPrepare(): boolean {
    return true;
  }
  protected override admitsAccept(): boolean {
    return true;
  }
}

/** Lets an Accept overwrite another owner's unexpired lease. */
export class OverwritingAcceptor extends LeaseAcceptor {
  protected override blocks(): boolean {
    return false;
  }
}

/** A Release clears whatever the acceptor holds, whoever owns it. */
export class ReleaseClearsAnyAcceptor extends LeaseAcceptor {
  protected override releaseClears(_held: AcceptedLease, _owner: Owner, _ballot: Ballot): boolean {
    return true;
  }
}

/** Answers at once after a restart, without its silence period. */
export class NoSilenceAcceptor extends LeaseAcceptor {
  protected override silenceMs(): number {
    return 0;
  }
}

/** Answers Prepare and Accept during its restart silence (its node still does not campaign). */
export class VotesWhileSilentAcceptor extends LeaseAcceptor {
  protected override votesAt(): boolean {
    return true;
  }
}

/** A Release clears its owner's value whatever ballot it names (a later round's included). */
export class ReleaseIgnoresBallotAcceptor extends LeaseAcceptor {
  protected override releaseClears(held: AcceptedLease, owner: Owner): boolean {
    return ownerEquals(held.value.owner, owner);
  }
}

/** Times the lease from the moment a majority accepted instead of from before Prepare. */
export class TimerFromMajorityProposer extends LeaseProposer {
  protected override leaseStart(_t0: number, now: number): number {
    return now;
  }
}

/** Believes L − margin: no allowance for clocks running at different rates. */
export class NoDriftProposer extends LeaseProposer {
  readonly #config: LeaseProposerConfig;
  constructor(config: LeaseProposerConfig, maxRound: number) {
    super(config, maxRound);
    this.#config = config;
  }
  protected override believedMs(): number {
    return this.#config.leaseMs - this.#config.marginMs;
  }
}

/**
 * The waits before campaigning as they were: one jittered window of L/10 for everyone, and a
 * backoff starting at L/8, about one round long each, so duels among four or five proposers
 * repeat (a leader 2.08 L after the heal was seen). Not unsafe: caught by the liveness bound.
 */
export class NarrowWaitsProposer extends LeaseProposer {
  readonly #config: LeaseProposerConfig;
  constructor(config: LeaseProposerConfig, maxRound: number) {
    super(config, maxRound);
    this.#config = config;
  }
  protected override campaignWaitMs(): number {
    return this.#config.rng.next() * (this.#config.leaseMs / 10);
  }
  protected override retryWaitMs(failures: number): number {
    const L = this.#config.leaseMs;
    return this.#config.rng.next() * Math.min(L, (L / 8) * 2 ** Math.min(failures - 1, 3));
  }
}

/** Believes L·(1−ρ) − margin: allows for its own slow clock, not for a fast acceptor's. */
export class HalfDriftProposer extends LeaseProposer {
  readonly #config: LeaseProposerConfig;
  constructor(config: LeaseProposerConfig, maxRound: number) {
    super(config, maxRound);
    this.#config = config;
  }
  protected override believedMs(): number {
    const { leaseMs, maxClockDrift, marginMs } = this.#config;
    return leaseMs * (1 - maxClockDrift) - marginMs;
  }
}

/** Times a renewal (not a fresh term) from the moment a majority accepted it. */
export class RenewalFromMajorityProposer extends LeaseProposer {
  protected override leaseStart(t0: number, now: number): number {
    // Called before the round is applied: a lease still held means this round renews it.
    return this.holdsLease ? now : t0;
  }
}

/** Counts an `accepted` for an older ballot of its own as a vote for its current round. */
export class StaleVotesProposer extends LeaseProposer {
  protected override votesFor(current: Ballot, reply: Ballot): boolean {
    return (
      reply.node === current.node &&
      reply.incarnation === current.incarnation &&
      reply.round <= current.round
    );
  }
}

/** Renews by re-sending Accept in the ballot it last won (phase 2 alone). */
export class ReacceptRenewalProposer extends LeaseProposer {
  #last: { ballot: Ballot; value: LeaseValue } | null = null;
  protected override sendAccepts(
    ballot: Ballot,
    value: LeaseValue,
    t0: number,
    renewal: boolean,
    now: number,
    out: Sink,
  ): void {
    this.#last = { ballot, value };
    super.sendAccepts(ballot, value, t0, renewal, now, out);
  }
  protected override renew(now: number, out: Sink): void {
    const last = this.#last;
    if (last === null) {
      super.renew(now, out);
      return;
    }
    super.sendAccepts(last.ballot, last.value, now, true, now, out);
  }
}

/** Makes ballots without the incarnation, so a node restarted without disk reuses them. */
export class NoIncarnationProposer extends LeaseProposer {
  readonly #node: string;
  constructor(config: LeaseProposerConfig, maxRound: number) {
    super(config, maxRound);
    this.#node = config.owner.node;
  }
  protected override makeBallot(round: number): Ballot {
    return { round, node: this.#node, incarnation: '0000000000000000' };
  }
}

export type LeaseFactory = (config: LeaseConfig, restored: LeaseRecord | null) => LeaseMachine;

type AcceptorClass = new (config: LeaseAcceptorConfig, promised: Ballot | null) => LeaseAcceptor;
type ProposerClass = new (config: LeaseProposerConfig, maxRound: number) => LeaseProposer;

/** A machine built from a broken acceptor or proposer. */
export function machineWith(parts: {
  acceptor?: AcceptorClass;
  proposer?: ProposerClass;
  /** false: also skips the term recovery after a start without storage. */
  termRecovery?: boolean;
}): LeaseFactory {
  const Acc = parts.acceptor ?? LeaseAcceptor;
  const Prop = parts.proposer ?? LeaseProposer;
  const recovers = parts.termRecovery ?? true;
  class Variant extends LeaseMachine {
    protected override recoversTerms(): boolean {
      return recovers;
    }
    protected override createAcceptor(config: LeaseAcceptorConfig, promised: Ballot | null) {
      return new Acc(config, promised);
    }
    protected override createProposer(config: LeaseProposerConfig, maxRound: number) {
      return new Prop(config, maxRound);
    }
  }
  return (config, restored) => new Variant(config, restored);
}

/** Acts on a flag set when the lease was won and cleared by a later tick, not on `now`. */
export class FlagLeaderMachine extends LeaseMachine {
  override isLeader(_now: number): boolean {
    return this.holdsLease;
  }
}

/** Keeps leading in a term below one a voter's node reported: that node never follows it. */
export class NoFreshTermProposer extends LeaseProposer {
  protected override movesToFreshTerm(): boolean {
    return false;
  }
}

/** Back without storage, votes after its silence without learning the highest round seen. */
export class NoTermRecoveryMachine extends LeaseMachine {
  protected override recoversTerms(): boolean {
    return false;
  }
}

/** Every broken lease variant, by name. */
export const LEASE_MUTANTS = {
  ignoresPromise: machineWith({ acceptor: IgnoresPromiseAcceptor }),
  timerFromMajority: machineWith({ proposer: TimerFromMajorityProposer }),
  reacceptRenewal: machineWith({ proposer: ReacceptRenewalProposer }),
  releaseClearsAny: machineWith({ acceptor: ReleaseClearsAnyAcceptor }),
  noDrift: machineWith({ proposer: NoDriftProposer }),
  overwritesLease: machineWith({ acceptor: OverwritingAcceptor }),
  /**
   * The same, with the term recovery off too: in the staleAccepts schedule the restarted voter
   * would otherwise wait for the stalled proposer's answer before voting, which keeps the stale
   * Accept from ever finding a lower ballot's value to overwrite.
   */
  overwritesLeaseNoRecovery: machineWith({ acceptor: OverwritingAcceptor, termRecovery: false }),
  noSilence: machineWith({ acceptor: NoSilenceAcceptor }),
  flagLeader: (config, restored) => new FlagLeaderMachine(config, restored),
  noIncarnation: machineWith({ proposer: NoIncarnationProposer }),
  noTermRecovery: (config, restored) => new NoTermRecoveryMachine(config, restored),
  noFreshTerm: machineWith({ proposer: NoFreshTermProposer }),
  narrowWaits: machineWith({ proposer: NarrowWaitsProposer }),
  votesWhileSilent: machineWith({ acceptor: VotesWhileSilentAcceptor }),
  releaseIgnoresBallot: machineWith({ acceptor: ReleaseIgnoresBallotAcceptor }),
  halfDrift: machineWith({ proposer: HalfDriftProposer }),
  staleVotes: machineWith({ proposer: StaleVotesProposer }),
  renewalFromMajority: machineWith({ proposer: RenewalFromMajorityProposer }),
} satisfies Record<string, LeaseFactory>;

export type LeaseMutantName = keyof typeof LEASE_MUTANTS;

/** The Basic Paxos acceptor that ignores its promise, for the decree workload. */
class IgnoresPromiseDecreeAcceptor extends Acceptor<string> {
  protected override admitsPrepare(): boolean {
    return true;
  }
  protected override admitsAccept(): boolean {
    return true;
  }
}

class IgnoresPromiseDecree extends DecreeMachine {
  protected override createAcceptor(restored: AcceptorState<string> | null): Acceptor<string> {
    return new IgnoresPromiseDecreeAcceptor(restored);
  }
}

/**
 * Acceptors that ignore their promise, in both the lease and the Basic Paxos decrees. For the
 * lease alone the exclusive rule (A2) and the timing keep leases disjoint anyway (docs/design.md),
 * so it is the decrees, where two values get chosen, that give this variant away.
 */
export const ignoresPromiseVariant = {
  createLease: LEASE_MUTANTS.ignoresPromise,
  createDecree: (config: DecreeConfig, restored: DecreeRecord | null): DecreeMachine =>
    new IgnoresPromiseDecree(config, restored),
};
