import { majority } from '../../paxos/quorum.js';
import type { LockViolationKind } from './locks.js';

export type ViolationKind =
  /** G4: two owners believed they held the lease at one real instant. */
  | 'leaseOverlap'
  /** A leader action outside its actor's belief interval. */
  | 'actionOutsideLease'
  /** G3: two values chosen for one decree instance. */
  | 'twoValuesChosen'
  /** A `chosen` event for a value the acceptors' votes do not make chosen. */
  | 'chosenDisagrees'
  /** Acceptors voted different values in one ballot: the proposer broke phase 2. */
  | 'conflictingVotes'
  /** A node incarnation reported a term below one it reported before. */
  | 'termBackwards'
  /** One ballot used for two rounds. */
  | 'ballotReused'
  /** No leader within two lease periods after the last fault healed. */
  | 'noLeaderAfterHeal'
  /**
   * After the heal, a running node did not name the leader within two lease periods (and a few
   * network delays): a health check built on its `leaderId` would fail.
   */
  | 'followerStuck'
  /**
   * A leader was elected with a term not above an earlier leader's, although fewer than a
   * majority of the nodes had restarted without storage since: anyone fencing with terms
   * would let a stale leader's write through.
   */
  | 'termRegressed'
  /**
   * A stable leader was displaced: in a run without faults, after the first election; after a
   * heal, once the liveness deadline passed (the leader then must keep the lease to the end).
   */
  | 'leaderChanged'
  /** A machine threw. */
  | 'machineError'
  /** Lock invariants (see LockWorkload). */
  | LockViolationKind;

export interface Violation {
  readonly kind: ViolationKind;
  /** True time, in milliseconds since the start of the run. */
  readonly time: number;
  readonly description: string;
}

export interface CheckerConfig {
  /** Every voter (decree acceptors are counted by node id: their state survives restarts). */
  readonly nodes: readonly string[];
  readonly leaseMs: number;
  /** ρ, for the liveness window: two lease periods on a clock that may run slow. */
  readonly maxClockDrift: number;
  /** A run without faults: the first leader must keep the lease to the end. */
  readonly stableLeader?: boolean;
  /** Violations kept per kind (the rest are counted only). Default 10. */
  readonly maxPerKind?: number;
}

interface Belief {
  readonly owner: string;
  readonly term: number;
  start: number;
  /** Exclusive: the first true instant at which the owner no longer believes. */
  end: number;
}

interface BallotVotes {
  readonly value: string;
  readonly voters: Set<string>;
}

interface InstanceVotes {
  chosen: string | null;
  readonly ballots: Map<string, BallotVotes>;
}

/**
 * The invariant checker. The simulator reports what happens, in true time and in order, and the
 * checker judges after every report. It sees only reports, never machine internals, so it can be
 * fed synthetic histories (and is, in the tests: every check must be able to fail).
 *
 * Lease belief: an owner believes from the true instant of its `elected` until the earliest of
 * the true instant its clock reaches the deadline (the simulator computes it from the clock
 * model, not from ticks), `deposed`, or its crash; `renewed` moves the end.
 */
export class Checker {
  readonly violations: Violation[] = [];
  /** Every violation found, kept or not, by kind. */
  readonly found = new Map<ViolationKind, number>();
  readonly #config: CheckerConfig;
  readonly #quorum: number;
  readonly #maxPerKind: number;
  readonly #beliefs = new Map<string, Belief>();
  readonly #terms = new Map<string, number>();
  readonly #leaseBallots = new Map<string, number>();
  readonly #decreeBallots = new Set<string>();
  readonly #instances = new Map<number, InstanceVotes>();
  #chosenInstances = 0;
  #elections = 0;
  /** The owner that must keep the lease from now on, once known. */
  #stable: string | null = null;
  #healAt: number | null = null;
  #leaderAfterHeal: number | null = null;
  #livenessReported = false;
  #viewsReported = false;
  /** Per node id: the owner it runs as (null while down) and the leader it names (or null). */
  readonly #views = new Map<string, { owner: string | null; leader: string | null }>();
  /** The highest term any leader was elected in. */
  #maxTerm = 0;
  /** Nodes restarted without storage since the election of `#maxTerm`, or unrecovered then. */
  readonly #forgot = new Set<string>();

  constructor(config: CheckerConfig) {
    this.#config = config;
    this.#quorum = majority(config.nodes.length);
    this.#maxPerKind = config.maxPerKind ?? 10;
  }

  get ok(): boolean {
    return this.found.size === 0;
  }

  /** Decree instances with a chosen value, derived from the votes. */
  get chosenInstances(): number {
    return this.#chosenInstances;
  }

  /** The true instant by which a leader must exist: two lease periods on the slowest clock. */
  get livenessDeadline(): number | null {
    if (this.#healAt === null) return null;
    return this.#healAt + (2 * this.#config.leaseMs) / (1 - this.#config.maxClockDrift);
  }

  /**
   * When every running node must name the leader: the liveness deadline plus an eighth of a
   * lease (two network delays under the liveness assumption), for the news of an election
   * that came just before the deadline to arrive.
   */
  get viewDeadline(): number | null {
    const deadline = this.livenessDeadline;
    return deadline === null ? null : deadline + this.#config.leaseMs / 8;
  }

  /** How long after the last heal the first leader came, in true ms (null: none yet). */
  get healToLeaderMs(): number | null {
    const heal = this.#healAt;
    const leader = this.#leaderAfterHeal;
    return heal === null || leader === null ? null : leader - heal;
  }

  /** Whether `owner` believes it holds the lease at true instant `t`. */
  believes(owner: string, t: number): boolean {
    const b = this.#beliefs.get(owner);
    return b !== undefined && b.start <= t && t < b.end;
  }

  /** Owners believing at `t`. */
  believers(t: number): string[] {
    const out: string[] = [];
    for (const b of this.#beliefs.values()) if (b.start <= t && t < b.end) out.push(b.owner);
    return out;
  }

  // Lease

  /**
   * `unrecovered`: nodes restarted without storage that have not yet learned the rounds seen
   * before (they forgot, and still know nothing of this election's predecessors).
   */
  elected(
    t: number,
    owner: string,
    term: number,
    end: number,
    unrecovered: readonly string[] = [],
  ): void {
    if (term <= this.#maxTerm && this.#forgot.size < this.#quorum) {
      this.report(
        'termRegressed',
        t,
        `${owner} elected in term ${term} after term ${this.#maxTerm}, with only ` +
          `${this.#forgot.size} node(s) restarted without storage since`,
      );
    }
    if (term > this.#maxTerm || this.#forgot.size >= this.#quorum) {
      this.#maxTerm = term;
      this.#forgot.clear();
      for (const node of unrecovered) this.#forgot.add(node);
    }
    this.#elections++;
    if (this.#stable !== null && this.#stable !== owner) {
      this.report(
        'leaderChanged',
        t,
        `${owner} elected in term ${term}; ${this.#stable} was stable`,
      );
    }
    if (this.#config.stableLeader === true) this.#stable ??= owner;
    this.#term(t, owner, term, 'elected');
    this.#begin(t, owner, term, end);
  }

  renewed(t: number, owner: string, term: number, end: number): void {
    this.#term(t, owner, term, 'renewed');
    const b = this.#beliefs.get(owner);
    if (b !== undefined && b.start <= t && t < b.end && b.term === term) {
      b.end = end;
      this.#overlaps(t, b);
      this.#sawLeader(t);
      return;
    }
    // A renewal that revives a lapsed lease is a fresh belief from now: judge it as one.
    this.#begin(t, owner, term, end);
  }

  deposed(t: number, owner: string, term: number, reason: string): void {
    // `superseded`: the same owner keeps the lease in a fresh term; it is not displaced.
    if (this.#stable === owner && reason !== 'superseded') {
      this.report(
        'leaderChanged',
        t,
        `stable leader ${owner} deposed from term ${term} (${reason})`,
      );
    }
    this.#end(t, owner);
  }

  /** The owner's process ended (crash or stop): whatever it believed ends now. */
  ended(t: number, owner: string): void {
    if (this.#stable === owner) this.report('leaderChanged', t, `stable leader ${owner} ended`);
    this.#end(t, owner);
    for (const view of this.#views.values()) {
      if (view.owner === owner) {
        view.owner = null;
        view.leader = null;
      }
    }
  }

  /** `node` started as `owner`; `forgot`: it restarted without its storage. */
  started(t: number, node: string, owner: string, forgot: boolean): void {
    this.#views.set(node, { owner, leader: null });
    if (forgot) this.#forgot.add(node);
  }

  /** The node running as `owner` now names `leader` (an owner, or null for nobody). */
  viewed(t: number, owner: string, leader: string | null): void {
    for (const view of this.#views.values()) if (view.owner === owner) view.leader = leader;
  }

  /** A `leader` event naming who the owner believes leads, in `term`. */
  leaderSeen(t: number, owner: string, term: number): void {
    this.#term(t, owner, term, 'leader');
  }

  /** The owner acted as leader at `t` (its `isLeader(now)` said yes). */
  action(t: number, owner: string, what = 'action'): void {
    const b = this.#beliefs.get(owner);
    if (b === undefined || t < b.start || t >= b.end) {
      const where =
        b === undefined ? 'it was never elected' : `its belief is [${b.start}, ${b.end})`;
      this.report('actionOutsideLease', t, `${owner} performed a leader ${what}, but ${where}`);
    }
  }

  /** A lease Prepare on the wire; `turn` identifies the output that sent it (a broadcast is one). */
  leasePrepare(t: number, owner: string, ballot: string, turn: number): void {
    const seen = this.#leaseBallots.get(ballot);
    if (seen === undefined) this.#leaseBallots.set(ballot, turn);
    else if (seen !== turn) {
      this.report('ballotReused', t, `lease ballot ${ballot} prepared again by ${owner}`);
    }
  }

  // Decrees

  decreePrepared(t: number, owner: string, instance: number, ballot: string): void {
    const key = `${instance}|${ballot}`;
    if (this.#decreeBallots.has(key)) {
      this.report(
        'ballotReused',
        t,
        `decree ballot ${ballot} prepared twice for instance ${instance} (${owner})`,
      );
    } else this.#decreeBallots.add(key);
  }

  /** The acceptor on `node` accepted `value` in `ballot`. */
  voted(t: number, node: string, instance: number, ballot: string, value: string): void {
    let inst = this.#instances.get(instance);
    if (inst === undefined) {
      inst = { chosen: null, ballots: new Map() };
      this.#instances.set(instance, inst);
    }
    let votes = inst.ballots.get(ballot);
    if (votes === undefined) {
      votes = { value, voters: new Set() };
      inst.ballots.set(ballot, votes);
    } else if (votes.value !== value) {
      this.report(
        'conflictingVotes',
        t,
        `instance ${instance} ballot ${ballot}: ${node} voted ${value}, others ${votes.value}`,
      );
      return;
    }
    votes.voters.add(node);
    if (votes.voters.size < this.#quorum) return;
    if (inst.chosen === null) {
      inst.chosen = value;
      this.#chosenInstances++;
    } else if (inst.chosen !== value) {
      this.report(
        'twoValuesChosen',
        t,
        `instance ${instance}: ${value} chosen in ballot ${ballot} after ${inst.chosen}`,
      );
    }
  }

  chosen(t: number, owner: string, instance: number, value: string): void {
    const derived = this.#instances.get(instance)?.chosen ?? null;
    if (derived !== value) {
      this.report(
        'chosenDisagrees',
        t,
        `${owner} announced ${value} chosen for instance ${instance}; the votes say ${derived ?? 'nothing'}`,
      );
    }
  }

  // Liveness

  /** Every fault has healed at `t`: a leader must exist within two lease periods. */
  heal(t: number): void {
    this.#healAt = t;
    this.#leaderAfterHeal = null;
    this.#livenessReported = false;
    this.#viewsReported = false;
    for (const b of this.#beliefs.values()) {
      if (b.start <= t && t < b.end) this.#leaderAfterHeal = t;
    }
  }

  /**
   * Moves the checker's notion of time on. Once the liveness deadline passes, a leader must hold
   * the lease at that instant, and from then on it is stable: it must keep the lease.
   */
  advance(t: number): void {
    this.#checkViews(t);
    const deadline = this.livenessDeadline;
    if (deadline === null || this.#livenessReported || t < deadline) return;
    this.#livenessReported = true;
    const holders = this.believers(deadline);
    const [holder] = holders;
    if (holder !== undefined) {
      this.#stable ??= holder;
      return;
    }
    const seen = this.#leaderAfterHeal;
    this.report(
      'noLeaderAfterHeal',
      deadline,
      seen === null
        ? `no leader between the heal at ${this.#healAt ?? 0} and ${deadline}`
        : `a leader at ${seen} after the heal at ${this.#healAt ?? 0}, but none at ${deadline}`,
    );
  }

  /** The run ended at `t`. */
  finish(t: number): void {
    this.advance(t);
    const stable = this.#stable;
    if (stable !== null && !this.believes(stable, t)) {
      this.report(
        'leaderChanged',
        t,
        `stable leader ${stable} no longer holds the lease at the end`,
      );
    }
  }

  report(kind: ViolationKind, time: number, description: string): void {
    const n = (this.found.get(kind) ?? 0) + 1;
    this.found.set(kind, n);
    if (n <= this.#maxPerKind) this.violations.push({ kind, time, description });
  }

  get elections(): number {
    return this.#elections;
  }

  /** At the view deadline, every running node must name the leader holding the lease then. */
  #checkViews(t: number): void {
    const at = this.viewDeadline;
    if (at === null || this.#viewsReported || t < at) return;
    this.#viewsReported = true;
    const [holder] = this.believers(at);
    // No leader at all is `noLeaderAfterHeal`'s to report.
    if (holder === undefined) return;
    for (const [node, view] of this.#views) {
      if (view.owner === null || view.leader === holder) continue;
      this.report(
        'followerStuck',
        at,
        `${node} names ${view.leader ?? 'nobody'} as leader at ${at}, while ${holder} leads ` +
          `(heal at ${this.#healAt ?? 0})`,
      );
    }
  }

  #begin(t: number, owner: string, term: number, end: number): void {
    const b: Belief = { owner, term, start: t, end };
    this.#beliefs.set(owner, b);
    this.#overlaps(t, b);
    this.#sawLeader(t);
  }

  #overlaps(t: number, b: Belief): void {
    for (const [key, other] of this.#beliefs) {
      if (other === b) continue;
      if (other.end <= t) {
        this.#beliefs.delete(key);
        continue;
      }
      if (other.start <= t && other.end > t && b.end > t) {
        this.report(
          'leaseOverlap',
          t,
          `${b.owner} (term ${b.term}) believes from ${b.start} while ${other.owner} ` +
            `(term ${other.term}) believes until ${other.end}`,
        );
      }
    }
  }

  #end(t: number, owner: string): void {
    const b = this.#beliefs.get(owner);
    if (b !== undefined && t < b.end) b.end = Math.max(t, b.start);
  }

  #sawLeader(t: number): void {
    if (this.#healAt !== null && t >= this.#healAt && this.#leaderAfterHeal === null) {
      this.#leaderAfterHeal = t;
    }
  }

  #term(t: number, owner: string, term: number, source: string): void {
    const last = this.#terms.get(owner);
    if (last !== undefined && term < last) {
      this.report('termBackwards', t, `${owner} reported term ${term} (${source}) after ${last}`);
      return;
    }
    this.#terms.set(owner, term);
  }
}
