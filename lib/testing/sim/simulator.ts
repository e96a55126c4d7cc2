/**
 * The deterministic simulator: N nodes, each running the pure lease machine and a decree
 * workload, on drifting clocks, over a faulty network, under crashes, restarts, stalls and
 * graceful stops, all driven by one seed. Time is true time in a discrete-event queue; each node
 * sees only its own clock. Outputs are applied as the runtime applies them (persist, then send,
 * then events), with one timer per machine at its latest `wakeAt`, fired like Node's timers.
 * The checker judges every report as it happens; the run ends with a quiet phase in which a
 * leader must appear and then stay.
 */
import { createHash, type Hash } from 'node:crypto';
import {
  LeaseMachine,
  type LeaseConfig,
  type LeaseEvent,
  type LeaseOutput,
  type LeaseRecord,
} from '../../lease/machine.js';
import type { LeaseMessage } from '../../lease/messages.js';
import { ballotKey, compareBallots, type Ballot } from '../../paxos/ballot.js';
import {
  DecreeMachine,
  type DecreeConfig,
  type DecreeEvent,
  type DecreeOutput,
  type DecreeRecord,
} from '../../paxos/decree.js';
import type { PaxosMessage } from '../../paxos/messages.js';
import { createRng, randomIncarnation, type Rng } from '../../random.js';
import {
  ReplicaMachine,
  type ReplicaConfig,
  type ReplicaEvent,
  type ReplicaMessage,
  type ReplicaOutput,
  type ReplicaRecord,
} from '../../replica/machine.js';
import { foldNodeUpdate } from '../../storage.js';
import { ownerKey, type Output } from '../../types.js';
import { Checker, type Violation } from './checker.js';
import { DriftClock } from './clock.js';
import { formatEvent, formatJson, formatMessage } from './format.js';
import { LockAdversary } from './lock-adversary.js';
import { LockWorkload } from './locks.js';
import {
  deriveParams,
  logUniform,
  mix,
  nodeIds,
  type ParamOptions,
  type SimParams,
} from './profiles.js';
import { FaultyNetwork } from './network.js';
import { EventQueue, type Scheduled } from './queue.js';

export type LeaseFactory = (config: LeaseConfig, restored: LeaseRecord | null) => LeaseMachine;
export type DecreeFactory = (config: DecreeConfig, restored: DecreeRecord | null) => DecreeMachine;
export type ReplicaFactory = (
  config: ReplicaConfig,
  restored: ReplicaRecord | null,
) => ReplicaMachine;

export interface SimulateOptions extends ParamOptions {
  /** Keep the trace lines (the hash is computed either way). */
  readonly trace?: boolean;
  /** End the run at the first violation (faster when hunting broken variants). */
  readonly stopAtFirstViolation?: boolean;
  /** Substitute machines, e.g. the broken variants of the tests. */
  readonly createLease?: LeaseFactory;
  readonly createDecree?: DecreeFactory;
  /**
   * The workload: `lease` (the lease and Basic Paxos decrees, the default) or `locks` (each node
   * runs the whole replica, lease, log and lock table, and an application takes locks).
   */
  readonly workload?: 'lease' | 'locks';
  readonly createReplica?: ReplicaFactory;
  /** Named in the replay command (`--variant`), for runs with substituted machines. */
  readonly variant?: string;
}

export interface FaultCounts {
  loss: number;
  duplicate: number;
  longDelay: number;
  partition: number;
  oneWay: number;
  crash: number;
  restartWithStorage: number;
  restartWithoutStorage: number;
  crashAfterSend: number;
  stall: number;
  gracefulStop: number;
  /** Episodes of slow links (one-way delays L/16 to L/2) around one node. */
  slow: number;
  /** Stale Accepts the adversary of the staleAccepts profile held and then delivered. */
  staleAccept: number;
}

/** What the lock workload did in one run. */
export interface LockCounts {
  grants: number;
  releases: number;
  expires: number;
  /** The linearizability search ran out of budget (neither a pass nor a failure). */
  unknown: boolean;
}

export interface SimCounts {
  readonly faults: FaultCounts;
  /** Elections of an owner other than the previous one. */
  leaderChanges: number;
  elections: number;
  renewals: number;
  /** Leader actions performed (`isLeader(now)` said yes). */
  actions: number;
  /** Decree instances with a chosen value (derived from the votes). */
  decreesChosen: number;
  /** Envelopes sent, before loss and duplication. */
  messages: number;
  /** With the lock workload. */
  locks: LockCounts | null;
  /**
   * Timer ticks that did nothing and asked to be woken again at once (a `wakeAt` not after
   * `now`): a machine polling every millisecond, as Node would run it. Not a violation, but
   * each one costs a real node a timer turn; a healthy run has next to none.
   */
  busyWakeups: number;
}

export interface SimResult {
  readonly seed: number;
  readonly params: SimParams;
  /** The first few violations of each kind. */
  readonly violations: Violation[];
  /** Every violation found, including those not kept in `violations`. */
  readonly violationCount: number;
  readonly counts: SimCounts;
  /** sha-256 over every delivery and every output, in order: equal runs have equal hashes. */
  readonly traceHash: string;
  /** A one-line command that replays this run. */
  readonly replay: string;
  /** The trace lines, when asked for. */
  readonly trace: string[] | null;
  /** Simulated events processed. */
  readonly events: number;
  /** How long after the heal the first leader came, in lease periods (null: none). */
  readonly healToLeader: number | null;
}

/** Runs one seed and returns what happened. Deterministic: a function of the options alone. */
export function simulate(options: SimulateOptions): SimResult {
  return new Simulation(options).run();
}

export function replayCommand(
  params: SimParams,
  variant?: string,
  workload: 'lease' | 'locks' = 'lease',
): string {
  let base =
    `npm run sim -- --seed ${params.seed} --profile ${params.profile} ` +
    `--nodes ${params.nodes} --periods ${params.periods}`;
  if (workload === 'locks') base += ' --locks';
  return variant === undefined ? base : `${base} --variant ${variant}`;
}

// Event kinds. One object shape for every event keeps the hot path monomorphic.
const DELIVER = 0;
const LEASE_TIMER = 1;
const DECREE_TIMER = 2;
const ACT = 3;
const PROPOSE = 4;
const START = 5;
const STALL_END = 6;
const PARTITION_END = 7;
const FAULT = 8;
const HEAL = 9;
const LIVENESS = 10;
const END = 11;
const TRAP = 12;

// Fault processes (the `aux` of FAULT events).
const F_PARTITION = 0;
const F_ONE_WAY = 1;
const F_CRASH = 2;
const F_STALL = 3;
const F_STOP = 4;
const F_SLOW = 5;

/** Chance that a timer fires up to 1 ms (local) early, as Node's timers do. */
const EARLY_TIMER = 0.2;
/** Chance that a leader action is attempted at the instant the lease timer is due. */
const ACT_AT_TIMER = 0.25;
/** Events per lease period beyond which a run is a storm (healthy runs use a few hundred). */
const EVENTS_PER_PERIOD_LIMIT = 20_000;
/** Same-instant timer firings of one node before the run is declared live-locked. */
const SPIN_LIMIT = 10_000;

type Message = LeaseMessage | PaxosMessage | ReplicaMessage;

interface SimEvent extends Scheduled {
  kind: number;
  /** Target node index, or −1. */
  node: number;
  /**
   * The incarnation the event belongs to (timers, app, stall ends, deferred deliveries), or the
   * trap a TRAP event belongs to.
   */
  gen: number;
  /** Per kind: timer generation, fault process, partition or stall id, recurring flag. */
  aux: number;
  from: number;
  msg: Message | null;
}

class SimNode {
  up = false;
  gen = 0;
  incarnation = '';
  owner = '';
  clock = new DriftClock(0, 0, 1);
  lease: LeaseMachine | null = null;
  decree: DecreeMachine | null = null;
  /** With the lock workload: the whole replica (its lease is `lease`). */
  replica: ReplicaMachine | null = null;
  /** The replica's disk: every update folded, as the storage adapters keep it. */
  replicaRecord: ReplicaRecord | null = null;
  /** The application's one pending wake-up (PROPOSE events carry its number). */
  appTimer = 0;
  appAt = Number.NaN;
  /** The disk: what survives a restart with storage. */
  leaseRecord: LeaseRecord | null = null;
  decreeRecord: DecreeRecord | null = null;
  leaseTimer = 0;
  leaseArmed = false;
  leaseWake = Number.NaN;
  leaseEarlyFor = Number.NaN;
  leaseActFor = Number.NaN;
  decreeTimer = 0;
  decreeArmed = false;
  decreeWake = Number.NaN;
  decreeEarlyFor = Number.NaN;
  stalledUntil = 0;
  stallId = 0;
  /** When a crashed node comes back (its START event). */
  restartAt = 0;
  deferred: SimEvent[] = [];
  proposals = 0;
  spinAt = Number.NaN;
  spins = 0;

  constructor(
    readonly index: number,
    readonly id: string,
  ) {}
}

const TICK = { type: 'tick' } as const;

/**
 * The adversary of the staleAccepts profile, after voter `acceptor` crashed right after
 * promising `ballot` to `proposer`: it holds the proposer's Accept of that ballot to the voter
 * until the voter, restarted without its storage, votes for another owner's lower ballot (or
 * until `deadline`), cuts the proposer's links to everyone else meanwhile, and stalls the
 * proposer from the moment it sent that Accept until just after the Accept arrives.
 */
interface Trap {
  /** Numbers the traps of a run: a timer event acts only on the trap that set it. */
  readonly id: number;
  readonly proposer: number;
  readonly proposerOwner: string;
  readonly acceptor: number;
  /** The voter's incarnation that crashed; the trap waits for a later one. */
  readonly acceptorGen: number;
  readonly ballot: Ballot;
  /** The proposer's Accept must be sent by then (its round times out at L/4). */
  readonly armedUntil: number;
  readonly deadline: number;
  /** The partition that cuts the proposer from everyone but the voter. */
  readonly cut: number;
  held: SimEvent | null;
  /** The proposer's stall, once the Accept is held. */
  stallId: number;
}

// The aux of TRAP events.
const TRAP_ARMED = 0;
const TRAP_DEADLINE = 1;

class Simulation {
  readonly #p: SimParams;
  readonly #opts: SimulateOptions;
  readonly #ids: string[];
  readonly #index = new Map<string, number>();
  readonly #nodes: SimNode[];
  readonly #queue = new EventQueue<SimEvent>();
  readonly #checker: Checker;
  readonly #createLease: LeaseFactory;
  readonly #createDecree: DecreeFactory;
  readonly #createReplica: ReplicaFactory;
  /** The lock workload, when the run has one. */
  readonly #locks: LockWorkload | null;
  /** The adversaries of the lock profiles, when the run has one. */
  readonly #lockAdversary: LockAdversary | null;
  // Independent streams, so that a change in one kind of randomness leaves the others alone.
  readonly #faultRng: Rng;
  readonly #nodeRng: Rng;
  readonly #appRng: Rng;
  readonly #timerRng: Rng;
  readonly #counts: SimCounts;
  readonly #hash: Hash = createHash('sha256');
  #hashBuf = '';
  readonly #trace: string[] | null;
  readonly #net: FaultyNetwork;
  /** Scratch for the delays of one message's copies. */
  readonly #delays: number[] = [0, 0];
  readonly #healAt: number;
  readonly #endAt: number;
  #turn = 0;
  #events = 0;
  #lastLeader = '';
  #leaderNode = -1;
  #halted = false;
  #trap: Trap | null = null;
  #traps = 0;
  /** The true time of the event being run (the replicas' wall clocks read it). */
  #wallNow = 0;

  constructor(options: SimulateOptions) {
    this.#opts = options;
    const p = deriveParams(options);
    this.#p = p;
    this.#ids = nodeIds(p.nodes);
    this.#ids.forEach((id, i) => this.#index.set(id, i));
    this.#nodes = this.#ids.map((id, i) => new SimNode(i, id));
    this.#checker = new Checker({
      nodes: this.#ids,
      leaseMs: p.leaseMs,
      maxClockDrift: p.maxClockDrift,
      stableLeader: p.profile === 'quiet',
    });
    this.#createLease = options.createLease ?? ((c, r) => new LeaseMachine(c, r));
    this.#createDecree = options.createDecree ?? ((c, r) => new DecreeMachine(c, r));
    this.#createReplica = options.createReplica ?? ((c, r) => new ReplicaMachine(c, r));
    this.#faultRng = createRng(mix(p.seed, 2));
    this.#nodeRng = createRng(mix(p.seed, 3));
    this.#appRng = createRng(mix(p.seed, 4));
    this.#timerRng = createRng(mix(p.seed, 5));
    this.#counts = {
      faults: {
        loss: 0,
        duplicate: 0,
        longDelay: 0,
        partition: 0,
        oneWay: 0,
        crash: 0,
        restartWithStorage: 0,
        restartWithoutStorage: 0,
        crashAfterSend: 0,
        stall: 0,
        gracefulStop: 0,
        slow: 0,
        staleAccept: 0,
      },
      leaderChanges: 0,
      elections: 0,
      renewals: 0,
      actions: 0,
      decreesChosen: 0,
      messages: 0,
      busyWakeups: 0,
      locks: null,
    };
    this.#trace = options.trace === true ? [] : null;
    this.#endAt = p.periods * p.leaseMs;
    this.#healAt = (p.periods - p.quietPeriods) * p.leaseMs;
    const netRng = createRng(mix(p.seed, 1));
    this.#net = new FaultyNetwork(p, netRng, this.#counts.faults, this.#healAt);
    this.#locks =
      options.workload === 'locks'
        ? new LockWorkload({
            nodes: this.#ids,
            leaseMs: p.leaseMs,
            maxTtlMs: maxTtlMsOf(p.leaseMs),
            rng: createRng(mix(p.seed, 6)),
            report: (kind, t, description) => {
              this.#checker.report(kind, t, description);
            },
          })
        : null;
    this.#lockAdversary =
      this.#locks !== null && (p.rates.lateGrantTrap > 0 || p.rates.muteRenewals > 0)
        ? new LockAdversary(p, createRng(mix(p.seed, 7)), this.#healAt)
        : null;
  }

  run(): SimResult {
    const p = this.#p;
    this.#line(
      `sim seed=${p.seed} profile=${p.profile} nodes=${p.nodes} leaseMs=${p.leaseMs} ` +
        `rho=${p.maxClockDrift} delay=${p.minDelayMs}..${p.maxDelayMs} periods=${p.periods}`,
    );
    // Staggered first starts: nobody shares an instant by accident.
    for (const node of this.#nodes) {
      this.#push(START, this.#appRng.next() * (p.leaseMs / 10), node.index, 0, 1);
    }
    if (this.#healAt <= 0) {
      // No faults at all: the liveness window opens once the last node has started.
      this.#net.heal();
    } else {
      this.#push(HEAL, this.#healAt, -1, 0, 0);
      for (const [kind, rate] of this.#faultRates()) {
        if (rate > 0) this.#push(FAULT, this.#nextFault(0, rate), -1, 0, kind);
      }
    }
    this.#push(END, this.#endAt, -1, 0, 0);
    const stopEarly = this.#opts.stopAtFirstViolation === true;
    // A run that needs far more events than its periods can explain is a message or timer
    // storm: stopped and reported, rather than left to run for hours.
    const eventLimit = p.periods * EVENTS_PER_PERIOD_LIMIT;
    for (;;) {
      const ev = this.#queue.pop();
      if (ev === undefined) break;
      this.#events++;
      this.#wallNow = ev.t;
      if (this.#events > eventLimit) {
        this.#checker.report('machineError', ev.t, `more than ${eventLimit} events: a storm`);
        this.#halted = true;
        break;
      }
      try {
        if (ev.kind === END) break;
        this.#dispatch(ev);
      } catch (error) {
        const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
        this.#checker.report('machineError', ev.t, text.split('\n').slice(0, 4).join(' | '));
        this.#halted = true;
      }
      if (this.#halted || (stopEarly && !this.#checker.ok)) break;
    }
    const cutShort = this.#halted || (stopEarly && !this.#checker.ok);
    if (!cutShort) this.#checker.finish(this.#endAt);
    const locks = this.#locks;
    if (locks !== null) {
      if (!cutShort) {
        locks.advance(this.#endAt);
        locks.finish(this.#endAt);
      }
      this.#counts.locks = {
        grants: locks.grants,
        releases: locks.releases,
        expires: locks.expires,
        unknown: locks.linearizabilityUnknown,
      };
    }
    this.#counts.decreesChosen = this.#checker.chosenInstances;
    this.#hash.update(this.#hashBuf);
    this.#hashBuf = '';
    return {
      seed: p.seed,
      params: p,
      violations: this.#checker.violations,
      violationCount: [...this.#checker.found.values()].reduce((a, b) => a + b, 0),
      counts: this.#counts,
      healToLeader:
        this.#checker.healToLeaderMs === null ? null : this.#checker.healToLeaderMs / p.leaseMs,
      traceHash: this.#hash.digest('hex'),
      replay: replayCommand(p, this.#opts.variant, this.#opts.workload),
      trace: this.#trace,
      events: this.#events,
    };
  }

  #dispatch(ev: SimEvent): void {
    switch (ev.kind) {
      case DELIVER:
      case LEASE_TIMER:
      case DECREE_TIMER:
      case ACT:
      case PROPOSE:
        this.#nodeEvent(ev);
        return;
      case START: {
        const node = this.#node(ev.node);
        if (node.up) return;
        this.#start(node, ev.t, ev.aux === 1);
        return;
      }
      case STALL_END: {
        const node = this.#node(ev.node);
        if (node.up && node.gen === ev.gen && node.stallId === ev.aux && node.stalledUntil > 0) {
          this.#endStall(node, ev.t);
        }
        return;
      }
      case PARTITION_END:
        this.#net.restore(ev.aux);
        return;
      case FAULT:
        if (ev.t >= this.#healAt) return;
        this.#fault(ev.aux, ev.t);
        return;
      case HEAL:
        this.#healAll(ev.t);
        return;
      case LIVENESS:
        this.#checker.advance(ev.t);
        this.#locks?.advance(ev.t);
        return;
      case TRAP:
        this.#trapTimeout(ev.gen, ev.aux, ev.t);
        return;
      default:
        throw new Error(`unknown event kind ${ev.kind}`);
    }
  }

  /** Events that a node's process handles: lost while it is down, deferred while it stalls. */
  #nodeEvent(ev: SimEvent): void {
    const node = this.#node(ev.node);
    if (!node.up) return;
    if (ev.kind === DELIVER) {
      if (this.#net.cut(ev.from, ev.node)) return;
      ev.gen = node.gen;
    } else if (ev.gen !== node.gen) return;
    if (node.stalledUntil > ev.t) {
      node.deferred.push(ev);
      return;
    }
    this.#run(node, ev, ev.t);
  }

  #run(node: SimNode, ev: SimEvent, t: number): void {
    if (node.replica !== null) {
      this.#runReplica(node, node.replica, ev, t);
      return;
    }
    const now = node.clock.local(t);
    const lease = node.lease;
    const decree = node.decree;
    if (lease === null || decree === null) return;
    switch (ev.kind) {
      case DELIVER: {
        const msg = ev.msg;
        if (msg === null) return;
        const from = this.#ids[ev.from] ?? '';
        this.#line(`${t} > ${from} ${node.id} ${formatAny(msg)}`);
        if (isLeaseMessage(msg)) {
          this.#applyLease(node, lease.handle({ type: 'message', from, message: msg }, now), t);
        } else if (isPaxosMessage(msg)) {
          this.#applyDecree(node, decree.handle({ type: 'message', from, message: msg }, now), t);
        }
        break;
      }
      case LEASE_TIMER:
        if (ev.aux !== node.leaseTimer) return;
        node.leaseArmed = false;
        this.#spin(node, t);
        this.#applyLease(node, this.#busy(lease.handle(TICK, now), now), t);
        break;
      case DECREE_TIMER:
        if (ev.aux !== node.decreeTimer) return;
        node.decreeArmed = false;
        this.#spin(node, t);
        this.#applyDecree(node, this.#busy(decree.handle(TICK, now), now), t);
        break;
      case ACT:
        if (lease.isLeader(now)) {
          this.#counts.actions++;
          this.#line(`${t} ! ${node.owner}`);
          this.#checker.action(t, node.owner);
        }
        if (ev.aux === 1) {
          this.#push(ACT, t + this.#exp(this.#appRng, this.#p.actEveryMs), node.index, node.gen, 1);
        }
        break;
      case PROPOSE: {
        // A small sliding set of instances: every node proposes into the same few, so
        // proposers duel, and instances keep coming for the whole run.
        const window = Math.floor(t / (2 * this.#p.leaseMs));
        const instance = window + Math.floor(this.#appRng.next() * 3);
        const value = `${node.id}.${node.gen}.${++node.proposals}`;
        this.#applyDecree(node, decree.propose(instance, value, now), t);
        if (node.up && node.gen === ev.gen) {
          const next = t + this.#exp(this.#appRng, this.#p.proposeEveryMs);
          this.#push(PROPOSE, next, node.index, node.gen, 1);
        }
        break;
      }
      default:
        throw new Error(`not a node event: ${ev.kind}`);
    }
  }

  /** A node event with the lock workload: the replica takes messages, ticks and app calls. */
  #runReplica(node: SimNode, replica: ReplicaMachine, ev: SimEvent, t: number): void {
    const now = node.clock.local(t);
    const locks = this.#locks;
    locks?.at(t);
    switch (ev.kind) {
      case DELIVER: {
        const msg = ev.msg;
        if (msg === null) return;
        const from = this.#ids[ev.from] ?? '';
        this.#line(`${t} > ${from} ${node.id} ${formatAny(msg)}`);
        if (isPaxosMessage(msg)) return;
        this.#applyReplica(node, replica.handle({ type: 'message', from, message: msg }, now), t);
        break;
      }
      case LEASE_TIMER:
        if (ev.aux !== node.leaseTimer) return;
        node.leaseArmed = false;
        this.#spin(node, t);
        this.#applyReplica(node, this.#busy(replica.handle(TICK, now), now), t);
        break;
      case ACT:
        if (replica.lease.isLeader(now)) {
          this.#counts.actions++;
          this.#line(`${t} ! ${node.owner}`);
          this.#checker.action(t, node.owner);
        }
        if (ev.aux === 1) {
          this.#push(ACT, t + this.#exp(this.#appRng, this.#p.actEveryMs), node.index, node.gen, 1);
        }
        break;
      case PROPOSE: {
        if (locks === null || ev.aux !== node.appTimer) return;
        node.appAt = Number.NaN;
        const out = locks.act(node.index, replica, now, t);
        if (out !== null) this.#applyReplica(node, out, t);
        if (node.up && node.gen === ev.gen) this.#wakeApp(node, t);
        break;
      }
      case DECREE_TIMER:
        break;
      default:
        throw new Error(`not a node event: ${ev.kind}`);
    }
  }

  #busy<O extends LeaseOutput | DecreeOutput | ReplicaOutput>(out: O, now: number): O {
    if (
      out.wakeAt !== null &&
      out.wakeAt <= now &&
      out.send.length === 0 &&
      out.events.length === 0 &&
      out.persist === null
    ) {
      this.#counts.busyWakeups++;
    }
    return out;
  }

  #spin(node: SimNode, t: number): void {
    if (node.spinAt === t) {
      if (++node.spins > SPIN_LIMIT) {
        throw new Error(`${node.owner}: its timer keeps firing at ${t} without progress`);
      }
    } else {
      node.spinAt = t;
      node.spins = 0;
    }
  }

  // Applying outputs: persist, then send, then events (the runtime's order).

  /** A replica's output: its lease part is judged as the lease's, the rest by the workload. */
  #applyReplica(node: SimNode, out: ReplicaOutput, t: number): void {
    if (out.persist !== null) {
      if (out.persist.lease !== null) node.leaseRecord = out.persist.lease;
      node.replicaRecord = foldNodeUpdate(node.replicaRecord, out.persist);
    }
    const locks = this.#locks;
    const leaseEvents: LeaseEvent[] = [];
    for (const e of out.events) if (e.type === 'lease') leaseEvents.push(e.event);
    if (locks !== null) for (const env of out.send) locks.sent(env.message, t);
    this.#applyLease(
      node,
      { send: out.send, persist: null, events: leaseEvents, wakeAt: out.wakeAt },
      t,
      out,
    );
    if (locks === null || !node.up) return;
    for (const e of out.events) {
      if (e.type === 'lock') locks.event(node.index, e.event, t);
      else if (e.type === 'log') locks.logEvent(e.event);
    }
    // The application reacts to what it learned (a grant to hold, a loss).
    this.#wakeApp(node, t);
  }

  /** Sets the application's wake-up to when it next has something to do (the earliest kept). */
  #wakeApp(node: SimNode, t: number): void {
    const next = this.#locks?.nextActAt(node.index, t) ?? null;
    if (next === null) return;
    const at = Math.max(t, next);
    if (!Number.isNaN(node.appAt) && node.appAt <= at) return;
    node.appAt = at;
    this.#push(PROPOSE, at, node.index, node.gen, ++node.appTimer);
  }

  #applyLease(
    node: SimNode,
    out: Output<Message, LeaseRecord, LeaseEvent>,
    t: number,
    whole: ReplicaOutput | null = null,
  ): void {
    if (out.persist !== null) node.leaseRecord = out.persist;
    const turn = ++this.#turn;
    let risky = false;
    let proposing = false;
    let promise: { to: string; ballot: Ballot } | null = null;
    let trapped = false;
    for (const env of out.send) {
      const msg = env.message;
      if (msg.type === 'lease.prepare') {
        proposing = true;
        this.#checker.leasePrepare(t, node.owner, ballotKey(msg.ballot), turn);
      } else if (msg.type === 'lease.accept') {
        proposing = true;
        risky = true;
        if (this.#trap !== null && this.#holdAccept(node, env.to, msg, t)) {
          trapped = true;
          continue;
        }
      } else if (msg.type === 'lease.promise') {
        risky = true;
        promise ??= { to: env.to, ballot: msg.ballot };
      } else if (msg.type === 'lease.accepted') {
        risky = true;
        if (this.#trap !== null) this.#springOnVote(node, msg.ballot, t);
      } else if (this.#lockAdversary !== null) {
        const adversary = this.#lockAdversary;
        const at = adversary.holdGrant(node.index, node.clock.rate, msg, t);
        if (at !== null) {
          this.#line(`${t} hold ${node.id} ${env.to} until ${at}`);
          this.#send(node, env.to, msg, t, at - t);
          continue;
        }
        if (adversary.mutes(node.index, msg, t)) {
          this.#line(`${t} mute ${node.id} ${env.to}`);
          continue;
        }
      }
      this.#send(node, env.to, msg, t);
    }
    for (const e of out.events) this.#leaseEvent(node, e, t);
    this.#armLease(node, out.wakeAt, t);
    if (whole === null) {
      this.#output(t, node, out, out.persist === null ? '' : JSON.stringify(out.persist));
    } else {
      this.#output(t, node, whole, whole.persist === null ? '' : formatJson(whole.persist.lease));
    }
    if (risky && this.#maybeCrashAfterSend(node, t) && promise !== null) {
      this.#setTrap(node, promise.to, promise.ballot, t);
    }
    if (trapped) this.#stallForTrap(node, t);
    else if (proposing) this.#maybeStallAfterSend(node, t);
  }

  #applyDecree(node: SimNode, out: DecreeOutput, t: number): void {
    if (out.persist !== null) node.decreeRecord = out.persist;
    let risky = false;
    for (const env of out.send) {
      const type = env.message.type;
      if (type === 'paxos.promise' || type === 'paxos.accepted' || type === 'paxos.accept') {
        risky = true;
      }
      this.#send(node, env.to, env.message, t);
    }
    // Votes first: a `chosen` in the same output must find the majority it rests on.
    for (const e of out.events) {
      if (e.type === 'voted') {
        this.#checker.voted(t, node.id, e.instance, ballotKey(e.ballot), e.value);
      }
    }
    for (const e of out.events) this.#decreeEvent(node, e, t);
    this.#armDecree(node, out.wakeAt, t);
    const record = out.persist;
    this.#output(
      t,
      node,
      out,
      record === null ? '' : `${record.maxRound}/${record.acceptors.length}`,
    );
    if (risky) this.#maybeCrashAfterSend(node, t);
  }

  #leaseEvent(node: SimNode, e: LeaseEvent, t: number): void {
    const checker = this.#checker;
    switch (e.type) {
      case 'elected': {
        this.#counts.elections++;
        if (this.#lastLeader !== '' && this.#lastLeader !== node.owner) {
          this.#counts.leaderChanges++;
        }
        this.#lastLeader = node.owner;
        this.#leaderNode = node.index;
        checker.elected(
          t,
          node.owner,
          e.term,
          node.clock.trueAt(e.deadline),
          this.#nodes.filter((n) => n.lease?.recovering === true).map((n) => n.id),
        );
        // The voter's own vote for itself goes unseen on the network: its election is the sign
        // (nearly always: its own acceptor is usually part of the majority it won).
        if (this.#trap !== null) {
          this.#springOnVote(
            node,
            { round: e.term, node: node.id, incarnation: node.incarnation },
            t,
          );
        }
        break;
      }
      case 'renewed':
        this.#counts.renewals++;
        checker.renewed(t, node.owner, e.term, node.clock.trueAt(e.deadline));
        break;
      case 'deposed':
        if (this.#leaderNode === node.index) this.#leaderNode = -1;
        checker.deposed(t, node.owner, e.term, e.reason);
        break;
      case 'leader':
        if (e.term !== null) checker.leaderSeen(t, node.owner, e.term);
        checker.viewed(t, node.owner, e.leader === null ? null : ownerKey(e.leader));
        break;
      case 'recovered':
      case 'refused':
        break;
      default: {
        const never: never = e;
        throw new Error(`unknown lease event ${JSON.stringify(never)}`);
      }
    }
  }

  #decreeEvent(node: SimNode, e: DecreeEvent, t: number): void {
    switch (e.type) {
      case 'prepared':
        this.#checker.decreePrepared(t, node.owner, e.instance, ballotKey(e.ballot));
        break;
      case 'chosen':
        this.#checker.chosen(t, node.owner, e.instance, e.value);
        break;
      case 'voted':
      case 'gaveUp':
        break;
      default: {
        const never: never = e;
        throw new Error(`unknown decree event ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * One timer per machine at its latest `wakeAt`, set on the node's clock: it fires at the
   * true instant that clock reaches `wakeAt`, or (like Node's timers) up to 1 ms early.
   */
  #armLease(node: SimNode, wakeAt: number | null, t: number): void {
    if (wakeAt === null) {
      if (node.leaseArmed) node.leaseTimer++;
      node.leaseArmed = false;
      node.leaseWake = Number.NaN;
      return;
    }
    if (node.leaseArmed && node.leaseWake === wakeAt) return;
    node.leaseTimer++;
    node.leaseArmed = true;
    node.leaseWake = wakeAt;
    const clock = node.clock;
    const due = clock.trueAt(wakeAt);
    let early = false;
    if (node.leaseEarlyFor !== wakeAt && this.#timerRng.next() < EARLY_TIMER) {
      node.leaseEarlyFor = wakeAt;
      early = true;
    }
    const fireAt = this.#timerAt(node, wakeAt, t, early);
    // The app sometimes acts at the very instant the lease timer is due, before the timer runs:
    // a machine that trusts "the timer has not fired yet" instead of `now` gets caught here.
    if (node.leaseActFor !== wakeAt && this.#appRng.next() < ACT_AT_TIMER) {
      node.leaseActFor = wakeAt;
      this.#push(ACT, Math.max(t, due), node.index, node.gen, 0);
    }
    this.#push(LEASE_TIMER, fireAt, node.index, node.gen, node.leaseTimer);
  }

  #armDecree(node: SimNode, wakeAt: number | null, t: number): void {
    if (wakeAt === null) {
      if (node.decreeArmed) node.decreeTimer++;
      node.decreeArmed = false;
      node.decreeWake = Number.NaN;
      return;
    }
    if (node.decreeArmed && node.decreeWake === wakeAt) return;
    node.decreeTimer++;
    node.decreeArmed = true;
    node.decreeWake = wakeAt;
    let early = false;
    if (node.decreeEarlyFor !== wakeAt && this.#timerRng.next() < EARLY_TIMER) {
      node.decreeEarlyFor = wakeAt;
      early = true;
    }
    const fireAt = this.#timerAt(node, wakeAt, t, early);
    this.#push(DECREE_TIMER, fireAt, node.index, node.gen, node.decreeTimer);
  }

  /**
   * When a timer set at true instant `t` for local `wakeAt` fires. Like Node's `setTimeout`: the
   * delay is at least 1 ms (a `wakeAt` already past fires a millisecond later, not at once), and
   * an early timer fires up to 1 ms before its delay is up (Node times it from a cached loop
   * time); never before it was set.
   */
  #timerAt(node: SimNode, wakeAt: number, t: number, early: boolean): number {
    const now = node.clock.local(t);
    let at = Math.max(wakeAt, now + 1);
    if (early) at = Math.max(now, at - this.#timerRng.next());
    return Math.max(t, node.clock.trueAt(at));
  }

  // The network

  /** Sends `msg` over the network; `heldMs`: an adversary holds it that long first. */
  #send(node: SimNode, to: string, msg: Message, t: number, heldMs = 0): void {
    this.#counts.messages++;
    const dest = this.#index.get(to);
    if (dest === undefined) return;
    const delays = this.#delays;
    const copies = this.#net.transmit(node.index, dest, t, delays);
    const extra = heldMs + (this.#lockAdversary?.extraDelay(node.index, msg, t) ?? 0);
    for (let c = 0; c < copies; c++) {
      this.#push(DELIVER, t + (delays[c] ?? 0) + extra, dest, 0, 0, node.index, msg);
    }
  }

  // Faults

  #faultRates(): [number, number][] {
    const r = this.#p.rates;
    return [
      [F_PARTITION, r.partition],
      [F_ONE_WAY, r.oneWay],
      [F_CRASH, r.crash],
      [F_STALL, r.stall],
      [F_STOP, r.gracefulStop],
      [F_SLOW, r.slow],
    ];
  }

  #nextFault(t: number, ratePerPeriod: number): number {
    return t + this.#exp(this.#faultRng, this.#p.leaseMs / ratePerPeriod);
  }

  #fault(kind: number, t: number): void {
    const rng = this.#faultRng;
    const L = this.#p.leaseMs;
    switch (kind) {
      case F_PARTITION:
        this.#partition(t, false);
        break;
      case F_ONE_WAY:
        this.#partition(t, true);
        break;
      case F_CRASH: {
        const node = this.#target();
        if (node.up && this.#mayTakeDown()) {
          this.#counts.faults.crash++;
          this.#crash(node, t, 'crash');
        }
        break;
      }
      case F_STALL: {
        const node = this.#target();
        if (node.up && node.stalledUntil === 0) this.#stall(node, t);
        break;
      }
      case F_STOP: {
        const node =
          rng.next() < 0.8 && this.#leaderNode >= 0 ? this.#node(this.#leaderNode) : this.#target();
        // A stalled process cannot run its own stop.
        if (node.up && node.stalledUntil === 0 && node.lease !== null && this.#mayTakeDown()) {
          this.#counts.faults.gracefulStop++;
          const replica = node.replica;
          // A Release is neither a vote nor a proposal: nothing above can have crashed the node.
          if (replica !== null) {
            this.#locks?.at(t);
            this.#applyReplica(node, replica.stop(node.clock.local(t), true), t);
          } else {
            this.#applyLease(node, node.lease.stop(node.clock.local(t), true), t);
          }
          this.#crash(node, t, 'stop');
        }
        break;
      }
      case F_SLOW: {
        const x = this.#target().index;
        const end = Math.min(t + logUniform(rng, L / 4, 3 * L), this.#healAt);
        const inbound = rng.next() < 0.7;
        const outbound = !inbound || rng.next() < 0.6;
        this.#net.slow(x, inbound, outbound, end);
        this.#counts.faults.slow++;
        this.#line(`${t} slow n${x + 1} in=${inbound} out=${outbound} until ${end}`);
        break;
      }
      default:
        throw new Error(`unknown fault ${kind}`);
    }
    const rate = this.#faultRates()[kind]?.[1] ?? 0;
    const next = this.#nextFault(t, rate);
    if (next < this.#healAt) this.#push(FAULT, next, -1, 0, kind);
  }

  /** A node to strike: the leader half the time (where the interesting bugs are), else any. */
  #target(): SimNode {
    const rng = this.#faultRng;
    if (this.#leaderNode >= 0 && rng.next() < 0.5) return this.#node(this.#leaderNode);
    return this.#node(Math.floor(rng.next() * this.#p.nodes));
  }

  /** Down to a minority freely; further (a majority down) only sometimes. */
  #mayTakeDown(): boolean {
    let down = 0;
    for (const n of this.#nodes) if (!n.up) down++;
    if (down < (this.#p.nodes - 1) / 2) return true;
    return this.#faultRng.next() < 0.2;
  }

  #partition(t: number, oneWay: boolean): void {
    const rng = this.#faultRng;
    const n = this.#p.nodes;
    const L = this.#p.leaseMs;
    const links: number[] = [];
    if (oneWay) {
      // One node that cannot send (or cannot hear), to all or to a random part of the rest.
      const x = this.#target().index;
      const deaf = rng.next() < 0.5;
      const all = rng.next() < 0.5;
      for (let y = 0; y < n; y++) {
        if (y === x || (!all && rng.next() < 0.5)) continue;
        links.push(deaf ? y * n + x : x * n + y);
      }
      this.#counts.faults.oneWay++;
    } else {
      // A random split, or the leader cut off alone (a leader that lives on but cannot renew
      // is where lease bugs show).
      const side: boolean[] = [];
      const isolate = this.#leaderNode >= 0 && rng.next() < 0.5 ? this.#leaderNode : -1;
      for (let i = 0; i < n; i++) side.push(isolate < 0 ? rng.next() < 0.5 : i === isolate);
      if (side.every((s) => s) || side.every((s) => !s)) {
        const i = Math.floor(rng.next() * n);
        side[i] = !side[i];
      }
      for (let a = 0; a < n; a++) {
        for (let b = 0; b < n; b++) if (side[a] !== side[b]) links.push(a * n + b);
      }
      this.#counts.faults.partition++;
    }
    if (links.length === 0) return;
    const id = this.#net.partition(links);
    const end = Math.min(t + logUniform(rng, L / 4, 5 * L), this.#healAt);
    const text = links.map(
      (l) => `${this.#ids[Math.floor(l / n)] ?? ''}>${this.#ids[l % n] ?? ''}`,
    );
    this.#line(`${t} ${oneWay ? 'oneway' : 'partition'} ${text.join(',')} until ${end}`);
    this.#push(PARTITION_END, end, -1, 0, id);
  }

  /**
   * The process ends: timers, stalls and queued work die with it; what it sent stays in flight.
   * It comes back after a downtime (at the heal at the latest), with or without its storage.
   */
  #crash(node: SimNode, t: number, why: 'crash' | 'stop' | 'crashAfterSend'): void {
    this.#line(`${t} ${why} ${node.owner}`);
    node.up = false;
    this.#checker.ended(t, node.owner);
    if (this.#leaderNode === node.index) this.#leaderNode = -1;
    node.lease = null;
    node.decree = null;
    node.replica = null;
    node.appAt = Number.NaN;
    this.#locks?.crashed(node.index, t);
    node.stalledUntil = 0;
    node.deferred = [];
    node.leaseArmed = false;
    node.decreeArmed = false;
    const rng = this.#faultRng;
    const L = this.#p.leaseMs;
    // Many short downtimes: a node back without its storage while the lease it voted for still
    // runs is what the restart silence is for.
    const downtime =
      why === 'stop' ? logUniform(rng, L / 10, 2 * L) : logUniform(rng, L / 100, 4 * L);
    const keep = rng.next() < this.#p.rates.keepStorage;
    node.restartAt = Math.min(t + downtime, this.#healAt);
    this.#push(START, node.restartAt, node.index, node.gen, keep ? 1 : 0);
  }

  /** Whether the node crashed. */
  #maybeCrashAfterSend(node: SimNode, t: number): boolean {
    const rate = this.#p.rates.crashAfterSend;
    if (rate === 0 || this.#net.quiet || !node.up || t >= this.#healAt) return false;
    if (this.#faultRng.next() >= rate || !this.#mayTakeDown()) return false;
    this.#counts.faults.crashAfterSend++;
    this.#crash(node, t, 'crashAfterSend');
    return true;
  }

  // The stale-Accept adversary (see Trap)

  /** Voter `node` crashed right after promising `ballot` to `to`: maybe lay a trap. */
  #setTrap(node: SimNode, to: string, ballot: Ballot, t: number): void {
    const rate = this.#p.rates.staleAcceptTrap;
    if (rate === 0 || this.#trap !== null) return;
    if (this.#faultRng.next() >= rate) return;
    const proposer = this.#index.get(to);
    if (proposer === undefined || proposer === node.index) return;
    const x = this.#node(proposer);
    if (
      !x.up ||
      x.stalledUntil > 0 ||
      ballot.node !== x.id ||
      ballot.incarnation !== x.incarnation
    ) {
      return;
    }
    const L = this.#p.leaseMs;
    // The voter is back after its downtime and silent for a lease; someone else may win it then.
    const deadline = Math.min(
      node.restartAt + L * (2 + 3 * this.#faultRng.next()),
      this.#healAt - L / 4,
    );
    if (deadline < node.restartAt + 1.5 * L) return;
    const n = this.#p.nodes;
    const links: number[] = [];
    for (let y = 0; y < n; y++)
      if (y !== proposer && y !== node.index) links.push(proposer * n + y);
    const cut = this.#net.partition(links);
    const id = ++this.#traps;
    this.#trap = {
      id,
      proposer,
      proposerOwner: x.owner,
      acceptor: node.index,
      acceptorGen: node.gen,
      ballot,
      armedUntil: t + L / 4,
      deadline,
      cut,
      held: null,
      stallId: -1,
    };
    this.#line(`${t} trap ${x.owner} ${ballotKey(ballot)} > ${node.id} until ${deadline}`);
    this.#push(TRAP, t + L / 4, -1, id, TRAP_ARMED);
    this.#push(TRAP, deadline, -1, id, TRAP_DEADLINE);
  }

  /** Holds the trapped proposer's Accept to the crashed voter, if this is it. */
  #holdAccept(
    node: SimNode,
    to: string,
    msg: Extract<LeaseMessage, { type: 'lease.accept' }>,
    t: number,
  ): boolean {
    const trap = this.#trap;
    if (trap?.held !== null || node.index !== trap.proposer) return false;
    if (node.owner !== trap.proposerOwner || t > trap.armedUntil) return false;
    if (this.#index.get(to) !== trap.acceptor || compareBallots(msg.ballot, trap.ballot) !== 0) {
      return false;
    }
    this.#counts.messages++;
    trap.held = {
      t: 0,
      seq: 0,
      kind: DELIVER,
      node: trap.acceptor,
      gen: 0,
      aux: 0,
      from: node.index,
      msg,
    };
    this.#line(`${t} hold ${node.id}>${to} ${formatMessage(msg)}`);
    return true;
  }

  /** The trapped proposer stalls from its held Accept until just after that Accept arrives. */
  #stallForTrap(node: SimNode, t: number): void {
    const trap = this.#trap;
    // A proposer that crashed right after sending has nothing left to stall.
    if (trap === null || !node.up || node.stalledUntil > 0) return;
    this.#stall(node, t, trap.deadline + this.#p.leaseMs / 8);
    trap.stallId = node.stallId;
  }

  /** The voter, back, voted for another owner's ballot below the held one: deliver it now. */
  #springOnVote(node: SimNode, ballot: Ballot, t: number): void {
    const trap = this.#trap;
    const held = trap?.held ?? null;
    if (
      trap === null ||
      held === null ||
      node.index !== trap.acceptor ||
      node.gen <= trap.acceptorGen
    ) {
      return;
    }
    if (compareBallots(ballot, trap.ballot) >= 0 || ballot.node === this.#ids[trap.proposer]) {
      return;
    }
    this.#spring(t + this.#p.minDelayMs, 'vote');
  }

  #trapTimeout(id: number, aux: number, t: number): void {
    const trap = this.#trap;
    if (trap?.id !== id) return;
    if (trap.held !== null) {
      if (aux === TRAP_DEADLINE) this.#spring(t, 'deadline');
      return;
    }
    // The Accept was never sent (the round ended otherwise): nothing to hold.
    this.#net.restore(trap.cut);
    this.#trap = null;
    this.#line(`${t} trap off`);
  }

  /** Delivers the held Accept at `at`, lifts the cut and lets the proposer run just after. */
  #spring(at: number, why: 'vote' | 'deadline'): void {
    const trap = this.#trap;
    const ev = trap?.held ?? null;
    if (trap === null || ev === null) return;
    this.#trap = null;
    this.#counts.faults.staleAccept++;
    ev.t = at;
    this.#queue.push(ev);
    this.#net.restore(trap.cut);
    this.#line(
      `${at} spring ${this.#ids[trap.proposer] ?? ''}>${this.#ids[trap.acceptor] ?? ''} on ${why}`,
    );
    const x = this.#node(trap.proposer);
    if (x.up && x.owner === trap.proposerOwner && x.stallId === trap.stallId) {
      const resume = at + this.#faultRng.next() * (this.#p.leaseMs / 16);
      this.#push(STALL_END, resume, x.index, x.gen, x.stallId);
    }
  }

  #maybeStallAfterSend(node: SimNode, t: number): void {
    const rate = this.#p.rates.stallAfterSend;
    if (rate === 0 || this.#net.quiet || !node.up || node.stalledUntil > 0) return;
    if (this.#faultRng.next() >= rate) return;
    this.#stall(node, t);
  }

  /** The event loop blocks: nothing runs on the node until the end, then all that is overdue. */
  #stall(node: SimNode, t: number, until?: number): void {
    const L = this.#p.leaseMs;
    this.#counts.faults.stall++;
    const end = Math.min(until ?? t + logUniform(this.#faultRng, L / 20, 3 * L), this.#healAt);
    node.stalledUntil = end;
    node.stallId++;
    this.#line(`${t} stall ${node.owner} until ${end}`);
    this.#push(STALL_END, end, node.index, node.gen, node.stallId);
  }

  #endStall(node: SimNode, t: number): void {
    node.stalledUntil = 0;
    const gen = node.gen;
    const overdue = node.deferred;
    node.deferred = [];
    this.#line(`${t} unstall ${node.owner} ${overdue.length}`);
    // Overdue timers and messages run in due order, each seeing the late `now`.
    for (const ev of overdue) {
      if (!node.up || node.gen !== gen) return;
      this.#run(node, ev, t);
    }
  }

  #healAll(t: number): void {
    this.#line(`${t} heal`);
    this.#net.heal();
    for (const node of this.#nodes) {
      if (node.up && node.stalledUntil > 0) this.#endStall(node, t);
    }
    const leader = this.#nodes[this.#leaderNode];
    if (this.#p.rates.crashLeaderAtHeal > 0 && leader?.up === true) this.#crash(leader, t, 'crash');
    for (const node of this.#nodes) {
      if (!node.up) this.#start(node, t, this.#faultRng.next() < this.#p.rates.keepStorage);
    }
    this.#checker.heal(t);
    this.#locks?.heal(t);
    this.#pushLiveness(t);
  }

  /** The checker judges liveness at its deadlines: a leader, then every node naming it. */
  #pushLiveness(t: number): void {
    this.#push(LIVENESS, this.#checker.livenessDeadline ?? t, -1, 0, 0);
    this.#push(LIVENESS, this.#checker.viewDeadline ?? t, -1, 0, 0);
  }

  // Incarnations

  #start(node: SimNode, t: number, keepStorage: boolean): void {
    const p = this.#p;
    const rng = this.#nodeRng;
    const first = node.gen === 0;
    node.gen++;
    node.up = true;
    node.incarnation = randomIncarnation(rng);
    node.owner = `${node.id}/${node.incarnation}`;
    const rho = p.maxClockDrift;
    const pick = rng.next();
    const rate =
      p.drift === 'bound'
        ? pick < 0.5
          ? 1 + rho
          : 1 - rho
        : pick < 1 / 3
          ? 1 + rho
          : pick < 2 / 3
            ? 1 - rho
            : 1 - rho + 2 * rho * rng.next();
    node.clock = new DriftClock(t, rng.next() * 1e6, rate);
    const leaseRng = createRng(Math.floor(rng.next() * 4294967296));
    const decreeRng = createRng(Math.floor(rng.next() * 4294967296));
    if (!first) {
      if (keepStorage) this.#counts.faults.restartWithStorage++;
      else this.#counts.faults.restartWithoutStorage++;
    }
    if (!keepStorage) node.leaseRecord = null;
    this.#checker.started(t, node.id, node.owner, !first && !keepStorage);
    const leaseConfig: LeaseConfig = {
      id: node.id,
      incarnation: node.incarnation,
      peers: this.#ids,
      leaseMs: p.leaseMs,
      maxClockDrift: p.maxClockDrift,
      marginMs: p.marginMs,
      rng: leaseRng,
      ...(p.preferredLeader === null ? {} : { preferredLeader: p.preferredLeader }),
    };
    // Basic Paxos assumes stable storage: a decree acceptor's promise and vote always survive a
    // restart (forgetting them could choose two values). Only the proposer's highest round is
    // lost without storage; the new incarnation keeps its ballots distinct anyway.
    const saved = node.decreeRecord;
    const decreeRecord: DecreeRecord | null =
      saved === null || keepStorage ? saved : { ...saved, maxRound: 0 };
    const locks = this.#locks;
    if (locks !== null) {
      // The whole replica, with its disk when the restart keeps it (the log rebuilds its state
      // from the others otherwise).
      const replica = this.#createReplica(
        {
          ...leaseConfig,
          maxTtlMs: maxTtlMsOf(p.leaseMs),
          // Wall clocks a little apart (each incarnation its own skew), read at true time.
          wallClock: (
            (skew: number) => () =>
              WALL_EPOCH_MS + this.#wallNow + skew
          )((rng.next() - 0.5) * (p.leaseMs / 4)),
          durable: true,
        },
        keepStorage ? node.replicaRecord : null,
      );
      if (!keepStorage) node.replicaRecord = null;
      node.replica = replica;
      node.lease = replica.lease;
      node.decree = null;
      node.leaseArmed = false;
      node.leaseWake = Number.NaN;
      node.appAt = Number.NaN;
      this.#line(
        `${t} start ${node.owner} rate=${rate} offset=${node.clock.offset} storage=${keepStorage} ` +
          `record=${JSON.stringify(node.leaseRecord)}`,
      );
      locks.started(node.index, node.owner, node.clock, replica);
      locks.at(t);
      this.#applyReplica(node, replica.start(node.clock.local(t)), t);
      if (first && this.#healAt <= 0 && this.#nodes.every((n) => n.up)) {
        this.#checker.heal(t);
        this.#pushLiveness(t);
      }
      this.#push(ACT, t + this.#exp(this.#appRng, p.actEveryMs), node.index, node.gen, 1);
      return;
    }
    node.lease = this.#createLease(leaseConfig, node.leaseRecord);
    node.decree = this.#createDecree(
      {
        id: node.id,
        incarnation: node.incarnation,
        peers: this.#ids,
        rng: decreeRng,
        roundTimeoutMs: p.leaseMs / 4,
        backoffMs: p.leaseMs / 8,
        maxAttempts: 6,
      },
      decreeRecord,
    );
    node.leaseArmed = false;
    node.decreeArmed = false;
    node.leaseWake = Number.NaN;
    node.decreeWake = Number.NaN;
    this.#line(
      `${t} start ${node.owner} rate=${rate} offset=${node.clock.offset} storage=${keepStorage} ` +
        `record=${JSON.stringify(node.leaseRecord)}`,
    );
    // A start sends nothing (restart silence), so it cannot crash right after sending.
    this.#applyLease(node, node.lease.start(node.clock.local(t)), t);
    if (first && this.#healAt <= 0 && this.#nodes.every((n) => n.up)) {
      this.#checker.heal(t);
      this.#pushLiveness(t);
    }
    this.#push(ACT, t + this.#exp(this.#appRng, p.actEveryMs), node.index, node.gen, 1);
    this.#push(PROPOSE, t + this.#exp(this.#appRng, p.proposeEveryMs), node.index, node.gen, 1);
  }

  // Plumbing

  #node(i: number): SimNode {
    const node = this.#nodes[i];
    if (node === undefined) throw new Error(`no node ${i}`);
    return node;
  }

  #push(
    kind: number,
    t: number,
    node: number,
    gen: number,
    aux: number,
    from = -1,
    msg: Message | null = null,
  ): void {
    this.#queue.push({ t, seq: 0, kind, node, gen, aux, from, msg });
  }

  #exp(rng: Rng, mean: number): number {
    return -Math.log(1 - rng.next()) * mean;
  }

  /**
   * One trace line per output: what it sends, announces and persists, and when it wakes. A
   * decree record (every instance's acceptor) is a function of what is already in the trace,
   * so only its size is written; in full it would dominate the run time.
   */
  #output(
    t: number,
    node: SimNode,
    out: Output<Message, unknown, LeaseEvent | DecreeEvent | ReplicaEvent>,
    record: string,
  ): void {
    let line = `${t} ${node.id}`;
    let last: unknown = null;
    for (const env of out.send) {
      // A broadcast is one message object to every peer: format it once.
      line += env.message === last ? ` ${env.to}<"` : ` ${env.to}< ${formatAny(env.message)}`;
      last = env.message;
    }
    for (const e of out.events) {
      line += ` | ${isReplicaEvent(e) ? formatJson(e) : formatEvent(e)}`;
    }
    if (record !== '') line += ` p=${record}`;
    this.#line(`${line} w=${out.wakeAt}`);
  }

  #line(s: string): void {
    if (this.#trace !== null) this.#trace.push(s);
    this.#hashBuf += s;
    this.#hashBuf += '\n';
    if (this.#hashBuf.length > 65536) {
      this.#hash.update(this.#hashBuf);
      this.#hashBuf = '';
    }
  }
}

/** Wall-clock ms of the simulated runs' start (2026-01-01): the token base of an epoch. */
const WALL_EPOCH_MS = 1_767_225_600_000;

/** The bound on lock TTLs in a run: a few leases, so a new epoch's wait stays short. */
export function maxTtlMsOf(leaseMs: number): number {
  return 4 * leaseMs;
}

function isReplicaEvent(e: LeaseEvent | DecreeEvent | ReplicaEvent): e is ReplicaEvent {
  return e.type === 'lease' || e.type === 'log' || e.type === 'lock';
}

function isPaxosMessage(msg: Message): msg is PaxosMessage {
  return msg.type.startsWith('paxos.');
}

function formatAny(msg: Message): string {
  return msg.type.startsWith('lease.') || msg.type.startsWith('paxos.')
    ? formatMessage(msg as LeaseMessage | PaxosMessage)
    : formatJson(msg);
}

function isLeaseMessage(msg: Message): msg is LeaseMessage {
  return msg.type.startsWith('lease.');
}
