import { compareBallots, type Ballot } from './ballot.js';

export interface Accepted<V> {
  readonly ballot: Ballot;
  readonly value: V;
}

/** What an acceptor must keep across a restart with storage. */
export interface AcceptorState<V> {
  readonly promised: Ballot | null;
  readonly accepted: Accepted<V> | null;
}

export type PrepareResult<V> =
  | { readonly ok: true; readonly accepted: Accepted<V> | null }
  | { readonly ok: false; readonly promised: Ballot | null };

export type AcceptResult =
  { readonly ok: true } | { readonly ok: false; readonly promised: Ballot | null };

/**
 * A single-decree acceptor (Paxos Made Simple, section 2.2). Pure: it decides on ballots alone.
 *
 * Phase 1b: promise a ballot at or above every ballot promised before (an equal ballot is the
 * same proposer's duplicate Prepare, answered again) and report the accepted value.
 * Phase 2b: accept unless a higher ballot was promised.
 */
export class Acceptor<V> {
  protected promised: Ballot | null;
  protected accepted: Accepted<V> | null;

  constructor(restored: AcceptorState<V> | null = null) {
    this.promised = restored?.promised ?? null;
    this.accepted = restored?.accepted ?? null;
  }

  prepare(ballot: Ballot): PrepareResult<V> {
    if (!this.admitsPrepare(ballot)) return { ok: false, promised: this.promised };
    this.promised = ballot;
    return { ok: true, accepted: this.accepted };
  }

  accept(ballot: Ballot, value: V): AcceptResult {
    if (!this.admitsAccept(ballot)) return { ok: false, promised: this.promised };
    this.promised = ballot;
    this.accepted = { ballot, value };
    return { ok: true };
  }

  state(): AcceptorState<V> {
    return { promised: this.promised, accepted: this.accepted };
  }

  get promisedBallot(): Ballot | null {
    return this.promised;
  }

  get acceptedValue(): Accepted<V> | null {
    return this.accepted;
  }

  /** The promise rule of phase 1. Broken variants in the tests override it; nothing else should. */
  protected admitsPrepare(ballot: Ballot): boolean {
    return compareBallots(ballot, this.promised) >= 0;
  }

  /** The promise rule of phase 2: never accept below a promise. */
  protected admitsAccept(ballot: Ballot): boolean {
    return compareBallots(ballot, this.promised) >= 0;
  }
}
