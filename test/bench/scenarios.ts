import { InvariantError } from '../../lib/errors.js';
import { createRng, type Rng } from '../../lib/random.js';
import { BenchCluster } from './cluster.js';

/**
 * The measurements, each on fresh clusters of real nodes in virtual time. Every trial has its
 * own seed, so a trial replays exactly, and the whole bench gives the same figures on every run
 * and every machine.
 */
export interface Setup {
  readonly size: number;
  readonly leaseMs: number;
  readonly delayMs: number;
}

/** Virtual ms to wait for an election before a trial counts as broken. */
function bound(setup: Setup): number {
  return 10 * setup.leaseMs;
}

function cluster(setup: Setup, seed: number): BenchCluster {
  return new BenchCluster({ ...setup, seed });
}

/** A moment drawn uniformly from [L, 2L) after the election: several renewal cycles in. */
function steadyOffset(rng: Rng, leaseMs: number): number {
  return leaseMs + rng.next() * leaseMs;
}

/** Cold start: every node starts at time 0; ms until the first `onLeader` runs. */
export async function coldStart(setup: Setup, seeds: readonly number[]): Promise<number[]> {
  const out: number[] = [];
  for (const seed of seeds) {
    const c = cluster(setup, seed);
    try {
      await c.start();
      const first = await c.nextElection(0, () => true, bound(setup));
      out.push(first.at);
    } finally {
      await c.close();
    }
  }
  return out;
}

export interface FailoverSample {
  /** ms from the crash until another node's `onLeader` ran. */
  readonly ms: number;
  /** Lease rounds (Prepare broadcasts) started meanwhile: more than one means a duel. */
  readonly rounds: number;
}

/**
 * Leader crash: after the first election, run to a random moment of the renewal cycle, kill the
 * leader's process (no Release), and measure until another node's `onLeader` runs.
 */
export async function failover(setup: Setup, seeds: readonly number[]): Promise<FailoverSample[]> {
  const out: FailoverSample[] = [];
  for (const seed of seeds) {
    const rng = createRng(seed ^ 0x5a5a5a5a);
    const c = cluster(setup, seed);
    try {
      await c.start();
      const first = await c.nextElection(0, () => true, bound(setup));
      await c.run(steadyOffset(rng, setup.leaseMs));
      const leader = c.leader();
      if (leader?.id !== first.id) throw new InvariantError(`seed ${seed}: leader changed`);
      const since = c.elections.length;
      const crashAt = c.clock.now();
      c.crash(leader.id);
      c.sends.reset();
      const next = await c.nextElection(since, (e) => e.id !== leader.id, bound(setup));
      // A Prepare goes to every other node, the crashed one included.
      const rounds = (c.sends.byType.get('lease.prepare') ?? 0) / (setup.size - 1);
      out.push({ ms: next.at - crashAt, rounds });
    } finally {
      await c.close();
    }
  }
  return out;
}

/**
 * Graceful handoff: `stop()` on the leader at a random moment of the renewal cycle; ms until
 * the successor's `onLeader` runs. The leader's work ends on its signal at once.
 */
/** One graceful stop: ms from stop() to the successor's onLeader, and until stop() resolved. */
export interface HandoffTrial {
  readonly handoffMs: number;
  readonly stopMs: number;
}

export async function handoff(setup: Setup, seeds: readonly number[]): Promise<HandoffTrial[]> {
  const out: HandoffTrial[] = [];
  for (const seed of seeds) {
    const rng = createRng(seed ^ 0x3c3c3c3c);
    const c = cluster(setup, seed);
    try {
      await c.start();
      const first = await c.nextElection(0, () => true, bound(setup));
      await c.run(steadyOffset(rng, setup.leaseMs));
      const since = c.elections.length;
      const stopAt = c.clock.now();
      await c.stop(first.id, bound(setup));
      const stoppedAt = c.clock.now();
      const next = await c.nextElection(since, (e) => e.id !== first.id, bound(setup));
      out.push({ handoffMs: next.at - stopAt, stopMs: stoppedAt - stopAt });
    } finally {
      await c.close();
    }
  }
  return out;
}

export interface RenewalTraffic {
  readonly renewals: number;
  readonly frames: number;
  /** Frames per renewal, by message type. */
  readonly byType: Record<string, number>;
}

/**
 * Steady state: frames handed to the transports (every node's `send`, counted) while one stable
 * leader makes `renewals` renewals. The window opens and closes the moment a renewal completes:
 * by then every frame of that round has been sent, and the next round has not begun.
 */
export async function renewalTraffic(
  setup: Setup,
  seed: number,
  renewals: number,
): Promise<RenewalTraffic> {
  const c = cluster(setup, seed);
  try {
    await c.start();
    const first = await c.nextElection(0, () => true, bound(setup));
    const leader = c.node(first.id);
    const count = (): number => leader.stats().renewals;
    const opened = count() + 1;
    await c.runUntil(() => count() >= opened, setup.leaseMs);
    c.sends.reset();
    const closed = opened + renewals;
    await c.runUntil(() => count() >= closed, (renewals + 2) * setup.leaseMs);
    if (count() !== closed || c.leader() !== leader || c.elections.length !== 1) {
      throw new InvariantError(`seed ${seed}: no steady renewals (the leader changed?)`);
    }
    const byType: Record<string, number> = {};
    for (const [type, n] of [...c.sends.byType].sort()) byType[type] = n / renewals;
    return { renewals, frames: c.sends.total, byType };
  } finally {
    await c.close();
  }
}
