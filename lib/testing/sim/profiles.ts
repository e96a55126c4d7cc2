import { createRng, type Rng } from '../../random.js';

/** Named fault mixes. Every one runs the same checker; they differ in what they stress. */
export const PROFILES = [
  'default',
  'quiet',
  'crashAfterSend',
  'stalls',
  'drift',
  'partitions',
  'restarts',
  'staleAccepts',
  'slowVotes',
  'lateReplies',
  'driftCuts',
  'duels',
  'lockTimers',
  'lockDrift',
  'lateGrants',
] as const;

export type ProfileName = (typeof PROFILES)[number];

export function isProfileName(name: string): name is ProfileName {
  return (PROFILES as readonly string[]).includes(name);
}

/**
 * How often each fault strikes. Message faults are probabilities per message; node and link
 * faults are expected occurrences per lease period across the cluster (a Poisson process each);
 * `crashAfterSend` is a probability per output that carries a vote or a proposer's request.
 * Safety may depend on no delay bound, so slow links (delays far above L/16) are fair game
 * before the heal; they stretch the window between a proposer's view and its acceptors'.
 */
export interface FaultRates {
  readonly loss: number;
  readonly duplicate: number;
  readonly longDelay: number;
  readonly partition: number;
  readonly oneWay: number;
  /** Episodes of slow links around one node: one-way delays between L/16 and L/2. */
  readonly slow: number;
  readonly crash: number;
  readonly stall: number;
  readonly gracefulStop: number;
  readonly crashAfterSend: number;
  /**
   * A probability per output that carries a proposer's Prepare or Accept: the event loop
   * stalls right after sending (as after a burst of work), so replies wait for the late `now`.
   */
  readonly stallAfterSend: number;
  /** The share of restarts that keep their storage. */
  readonly keepStorage: number;
  /**
   * A probability per crash right after a promise: the network then turns adversary against
   * that promise's proposer (its next Accept to the crashed voter is held until the voter, back
   * without its storage, has voted for someone else's lower ballot; the proposer stalls
   * meanwhile and its other links are cut). The "no overwrite" rule is all that stands in front
   * of two leaders then.
   */
  readonly staleAcceptTrap: number;
  /**
   * 1: the leader crashes at the heal (and restarts at once, silent), so every other node
   * campaigns as soon as the lease it last heard of lapses, all at about the same time.
   */
  readonly crashLeaderAtHeal: number;
  /**
   * With the lock workload, a probability per grant the leader answers: the answer is held until
   * just before the grant's TTL runs out on the leader, and the leader's Accepts are slowed
   * meanwhile, so the holder's renew races the leader's expire (see GrantTrap).
   */
  readonly lateGrantTrap: number;
  /**
   * With the lock workload, a probability per lock request carrying a renew: that node's lock
   * requests are lost for one to four lease periods, from that one on (see LockAdversary).
   */
  readonly muteRenewals: number;
}

export const NO_FAULTS: FaultRates = Object.freeze({
  loss: 0,
  duplicate: 0,
  longDelay: 0,
  partition: 0,
  oneWay: 0,
  slow: 0,
  crash: 0,
  stall: 0,
  gracefulStop: 0,
  crashAfterSend: 0,
  stallAfterSend: 0,
  keepStorage: 0.5,
  staleAcceptTrap: 0,
  crashLeaderAtHeal: 0,
  lateGrantTrap: 0,
  muteRenewals: 0,
});

/** Everything one run is made of, drawn from its seed (and the few options given). */
export interface SimParams {
  readonly seed: number;
  readonly profile: ProfileName;
  readonly nodes: number;
  readonly leaseMs: number;
  readonly maxClockDrift: number;
  readonly marginMs: number;
  /** Clock rates: each incarnation at +ρ, −ρ or uniform within ('mixed'), or only at ±ρ. */
  readonly drift: 'mixed' | 'bound';
  /** One-way network delay in true ms; at most leaseMs/16, so the quiet phase is fair. */
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  readonly rates: FaultRates;
  /** Lease periods in the run, the quiet phase included. */
  readonly periods: number;
  /** Lease periods at the end with every fault healed. */
  readonly quietPeriods: number;
  /** A preferred successor for graceful handoffs, or null. */
  readonly preferredLeader: string | null;
  /** Mean true ms between a node's proposals of decree values. */
  readonly proposeEveryMs: number;
  /** Mean true ms between a node's attempts at a leader action. */
  readonly actEveryMs: number;
}

export interface ParamOptions {
  readonly seed: number;
  readonly profile?: ProfileName;
  readonly nodes?: number;
  readonly periods?: number;
}

export const DEFAULT_PERIODS = 200;

export function nodeIds(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `n${i + 1}`);
}

/**
 * Draws a run's parameters from its seed. The draws happen in one fixed order whatever the
 * options, so `--nodes 5` changes the cluster size and nothing else about the seed's run.
 */
export function deriveParams(options: ParamOptions): SimParams {
  const profile = options.profile ?? 'default';
  const rng = createRng(mix(options.seed, 0x5eed));
  const drawnNodes = rng.next() < 0.5 ? 3 : 5;
  const nodes = options.nodes ?? drawnNodes;
  const logLease = rng.next();
  const rhoDraw = rng.next();
  const delayScale = logUniform(rng, 1 / 64, 1);
  const minDelayShare = rng.next() * 0.5;
  const preferredDraw = rng.next();
  const preferredIndex = Math.floor(rng.next() * nodes);
  const rates = drawRates(rng, profile);
  let leaseMs = Math.round(100 * 300 ** logLease);
  let maxDelayMs: number;
  let minDelayMs: number;
  let maxClockDrift = rhoDraw < 0.7 ? 0.01 : rhoDraw < 0.85 ? 0.05 : 0.001;
  let drift: SimParams['drift'] = 'mixed';
  if (profile === 'drift' || profile === 'driftCuts') {
    // Clocks at the bound, where a lease's safety margin is thinnest, on leases of a second
    // or more (so the drift, not the margin, dominates).
    drift = 'bound';
    leaseMs = Math.round(1000 * 30 ** logLease);
    maxClockDrift = rhoDraw < 0.5 ? 0.01 : 0.05;
  }
  if (profile === 'lockDrift') {
    // Clocks at a bound near its limit (0.1), where a holder's allowance for drift is largest.
    drift = 'bound';
    maxClockDrift = 0.09;
  }
  const marginMs = 10;
  if (profile === 'duels') {
    // One-way delays at the bound of the liveness assumption: a round takes up to L/4.
    maxDelayMs = leaseMs / 16;
    minDelayMs = leaseMs / 32;
  } else {
    maxDelayMs = (leaseMs / 16) * delayScale;
    minDelayMs = maxDelayMs * minDelayShare;
  }
  const preferredLeader = preferredDraw < 0.3 ? `n${preferredIndex + 1}` : null;
  const periods = Math.max(10, Math.floor(options.periods ?? DEFAULT_PERIODS));
  const quietPeriods = profile === 'quiet' ? periods : Math.max(6, Math.ceil(periods / 20));
  return {
    seed: options.seed,
    profile,
    nodes,
    leaseMs,
    maxClockDrift,
    marginMs,
    drift,
    minDelayMs,
    maxDelayMs,
    rates,
    periods,
    quietPeriods,
    preferredLeader,
    proposeEveryMs: leaseMs * 1.5,
    actEveryMs: leaseMs / 6,
  };
}

function drawRates(rng: Rng, profile: ProfileName): FaultRates {
  // Always the same draws, whatever the profile, so that profiles differ only where they mean to.
  const base: FaultRates = {
    loss: logUniform(rng, 0.002, 0.08),
    duplicate: logUniform(rng, 0.002, 0.05),
    longDelay: logUniform(rng, 0.0003, 0.004),
    partition: logUniform(rng, 0.01, 0.06),
    oneWay: logUniform(rng, 0.01, 0.06),
    crash: logUniform(rng, 0.02, 0.1),
    stall: logUniform(rng, 0.02, 0.1),
    gracefulStop: logUniform(rng, 0.005, 0.03),
    crashAfterSend: logUniform(rng, 0.0003, 0.003),
    keepStorage: 0.2 + 0.6 * rng.next(),
    slow: logUniform(rng, 0.01, 0.06),
    stallAfterSend: logUniform(rng, 0.001, 0.01),
    // Not drawn: only the profiles aimed at them set these.
    staleAcceptTrap: 0,
    crashLeaderAtHeal: 0,
    lateGrantTrap: 0,
    muteRenewals: 0,
  };
  switch (profile) {
    case 'default':
    case 'drift':
      return base;
    case 'quiet':
      return NO_FAULTS;
    case 'crashAfterSend':
      return { ...base, crash: base.crash / 4, crashAfterSend: base.crashAfterSend * 15 };
    case 'stalls':
      return {
        ...base,
        crash: base.crash / 2,
        stall: base.stall * 4,
        stallAfterSend: base.stallAfterSend * 4,
      };
    case 'partitions':
      return {
        ...base,
        partition: base.partition * 4,
        oneWay: base.oneWay * 4,
        slow: base.slow * 2,
      };
    case 'restarts':
      // Voters that die and come back at once without their storage, while one-way partitions
      // keep some followers from hearing the leader: what the restart silence is for.
      return {
        ...base,
        crash: base.crash * 6,
        keepStorage: 0,
        oneWay: base.oneWay * 4,
        crashAfterSend: base.crashAfterSend * 10,
      };
    case 'staleAccepts':
      // Accepts that outlive their sender's round: sent just before a stall or a crash, delayed
      // past a restart of their receiver without its storage, and the adversary that aims one at
      // a live lease of another owner.
      return {
        ...base,
        keepStorage: 0,
        loss: base.loss * 4,
        longDelay: base.longDelay * 20,
        crashAfterSend: base.crashAfterSend * 30,
        stallAfterSend: base.stallAfterSend * 15,
        staleAcceptTrap: 1,
      };
    case 'slowVotes':
      // Slow links around leaders, then cuts: votes that come back late, then a successor as
      // soon as the acceptors' timers allow.
      return {
        ...base,
        slow: base.slow * 6,
        oneWay: base.oneWay * 4,
        partition: base.partition * 2,
      };
    case 'lateReplies':
      // Links around some node slow most of the time (replies come back after the round that
      // asked moved on, or a round trip after its t0), messages duplicated (a second copy of a
      // reply, later still), and stalls, after sending too: a proposer that counts a vote for
      // the wrong round, or times a lease from when the votes came, shows it here.
      return {
        ...base,
        slow: base.slow * 30,
        duplicate: base.duplicate * 10,
        stall: base.stall * 4,
        stallAfterSend: base.stallAfterSend * 10,
      };
    case 'driftCuts':
      // Clocks at the drift bound on long leases (as in 'drift'), with the leader cut off
      // often: its successor is elected as soon as the acceptors' timers allow, which is where
      // a drift allowance that is too small shows.
      return {
        ...base,
        partition: base.partition * 4,
        oneWay: base.oneWay * 3,
        crash: base.crash / 2,
      };
    case 'lockTimers':
      return lockTimerRates(base);
    case 'lockDrift':
      // As 'lockTimers', on clocks at a drift bound of 0.09 (see deriveParams).
      return lockTimerRates(base);
    case 'lateGrants':
      // Grants whose answers come late, just before their TTL runs out on the leader (the
      // late-grant adversary, see LockAdversary), and fewer crashes: a holder that renews as
      // the leader expires.
      return {
        ...base,
        crash: base.crash / 4,
        gracefulStop: base.gracefulStop / 4,
        crashAfterSend: base.crashAfterSend / 4,
        lateGrantTrap: 0.3,
      };
    case 'duels':
      // The leader dies at the heal on a slow network, and its successors all campaign as its
      // lease lapses: how quickly their duel ends is what the liveness bound then measures.
      return { ...base, crashLeaderAtHeal: 1 };
    default: {
      const never: never = profile;
      throw new Error(`unknown profile ${String(never)}`);
    }
  }
}

/**
 * Holders that stop renewing while the leader's TTL timers run on: the mute-holder adversary
 * (see LockAdversary), and fewer crashes, which would end their windows. A holder that times
 * its window too long, or a leader that starts its timers too early, shows here.
 */
function lockTimerRates(base: FaultRates): FaultRates {
  return {
    ...base,
    crash: base.crash / 4,
    gracefulStop: base.gracefulStop / 4,
    crashAfterSend: base.crashAfterSend / 4,
    muteRenewals: 0.1,
  };
}

/** A uniform draw on a log scale between `lo` and `hi`. */
export function logUniform(rng: Rng, lo: number, hi: number): number {
  return Math.exp(Math.log(lo) + rng.next() * (Math.log(hi) - Math.log(lo)));
}

/** Mixes a seed with a stream tag, so each stream of a run gets unrelated numbers. */
export function mix(seed: number, stream: number): number {
  let h = (seed ^ Math.imul(stream, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}
