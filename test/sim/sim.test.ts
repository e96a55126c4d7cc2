import assert from 'node:assert/strict';
import type { FaultCounts, ProfileName } from '../../lib/testing/sim/index.js';
import { runSeeds, type SeedJob, type SeedSummary } from './pool.js';

/**
 * The simulator's share of CI: 500 seeds of every fault at once on 3- and 5-node clusters, and a
 * smaller share of every named profile, 200 lease periods each, with zero violations (the
 * liveness invariants included: a leader within two lease periods of the heal, every running
 * node naming it an eighth of a lease later). The
 * minimums below keep "all faults on" honest: a change that quietly stops injecting a fault (or
 * stops leaders from changing) fails here instead of passing on an easy run.
 */
const PERIODS = 200;
const DEFAULT_SEEDS = 500;
/** Seeds per named profile: the rarer broken variants are caught mostly by these. */
const NAMED_SEEDS: Partial<Record<ProfileName, number>> = {
  quiet: 50,
  crashAfterSend: 100,
  stalls: 100,
  drift: 100,
  partitions: 100,
  staleAccepts: 60,
  restarts: 60,
  slowVotes: 40,
  lateReplies: 30,
  driftCuts: 30,
  duels: 100,
};

/** Per-seed averages each fault must reach over the default share (about half of what it does). */
const MIN_FAULTS_PER_SEED: FaultCounts = {
  loss: 50,
  duplicate: 40,
  longDelay: 5,
  partition: 2,
  oneWay: 2,
  crash: 4,
  restartWithStorage: 3,
  restartWithoutStorage: 3,
  crashAfterSend: 2.5,
  stall: 5,
  gracefulStop: 0.8,
  slow: 2,
  // Only the staleAccepts profile lays that trap.
  staleAccept: 0,
};

function jobs(): SeedJob[] {
  const out: SeedJob[] = [];
  for (let seed = 1; seed <= DEFAULT_SEEDS; seed++) {
    out.push({ seed, profile: 'default', nodes: seed % 2 === 1 ? 3 : 5, periods: PERIODS });
  }
  for (const [profile, seeds] of Object.entries(NAMED_SEEDS) as [ProfileName, number][]) {
    for (let i = 0; i < seeds; i++) out.push({ seed: 100_000 + i, profile, periods: PERIODS });
  }
  return out;
}

function sum(results: readonly SeedSummary[], pick: (s: SeedSummary) => number): number {
  return results.reduce((a, s) => a + pick(s), 0);
}

describe('simulator (CI share)', function () {
  // About half a minute on two cores; the bound only guards against a hang.
  this.timeout(15 * 60_000);
  let results: SeedSummary[] = [];
  let seconds = 0;

  before(async () => {
    const started = performance.now();
    results = await runSeeds(jobs());
    seconds = (performance.now() - started) / 1000;
  });

  const of = (profile: ProfileName): SeedSummary[] => results.filter((s) => s.profile === profile);

  it('finds no violation on any seed of any profile', () => {
    const failures = results
      .filter((s) => s.violationCount > 0)
      .map((s) => {
        const v = s.violations[0];
        return `${v?.kind ?? '?'} at ${v?.time ?? '?'}: ${v?.description ?? ''} | ${s.replay}`;
      });
    assert.deepEqual(failures, [], `${failures.length} failing seeds`);
    // A machine that keeps asking to be woken at once is a busy loop, not a safety bug, but a bug.
    assert.equal(
      sum(results, (s) => s.counts.busyWakeups),
      0,
      'busy wake-ups',
    );
    console.log(
      `      ${results.length} seeds × ${PERIODS} lease periods in ${seconds.toFixed(1)} s, ` +
        `${sum(results, (s) => s.events)} events, ` +
        `${sum(results, (s) => s.counts.busyWakeups)} busy wake-ups`,
    );
  });

  it('runs 3- and 5-node clusters with every fault, often, and leaders that change', () => {
    const share = of('default');
    assert.equal(share.length, DEFAULT_SEEDS);
    assert.ok(share.some((s) => s.nodes === 3) && share.some((s) => s.nodes === 5));
    for (const [kind, min] of Object.entries(MIN_FAULTS_PER_SEED) as [
      keyof FaultCounts,
      number,
    ][]) {
      const total = sum(share, (s) => s.counts.faults[kind]);
      assert.ok(total >= min * share.length, `${kind}: ${total} over ${share.length} seeds`);
    }
    assert.ok(sum(share, (s) => s.counts.leaderChanges) >= 8 * share.length, 'leader changes');
    for (const s of share) {
      const f = s.counts.faults;
      const nodeAndLink =
        f.crash + f.crashAfterSend + f.stall + f.gracefulStop + f.partition + f.oneWay + f.slow;
      assert.ok(nodeAndLink >= 10, `seed ${s.seed}: only ${nodeAndLink} node and link faults`);
      assert.ok(s.counts.leaderChanges >= 3, `seed ${s.seed}: ${s.counts.leaderChanges} changes`);
      assert.ok(s.counts.decreesChosen >= 50, `seed ${s.seed}: ${s.counts.decreesChosen} decrees`);
      assert.ok(s.counts.actions > 0, `seed ${s.seed}: no leader action`);
    }
  });

  it('keeps one leader for the whole of every run without faults', () => {
    const share = of('quiet');
    assert.equal(share.length, NAMED_SEEDS.quiet);
    for (const s of share) {
      const faults = (Object.values(s.counts.faults) as number[]).reduce((a, b) => a + b, 0);
      assert.equal(faults, 0, `seed ${s.seed}: faults in the quiet profile`);
      assert.equal(s.counts.elections, 1, `seed ${s.seed}: ${s.counts.elections} elections`);
      // A renewal every third of a lease, less the start-up (silence, then a campaign).
      assert.ok(s.counts.renewals >= 2.8 * PERIODS, `seed ${s.seed}: ${s.counts.renewals}`);
    }
  });

  it('stresses what each named profile is named for', () => {
    const perSeed = (profile: ProfileName, pick: (f: FaultCounts) => number): number =>
      sum(of(profile), (s) => pick(s.counts.faults)) / of(profile).length;
    const base = (pick: (f: FaultCounts) => number): number => perSeed('default', pick);
    assert.ok(
      perSeed('crashAfterSend', (f) => f.crashAfterSend) >= 4 * base((f) => f.crashAfterSend),
    );
    assert.ok(perSeed('stalls', (f) => f.stall) >= 2.5 * base((f) => f.stall));
    const cuts = (f: FaultCounts): number => f.partition + f.oneWay;
    assert.ok(perSeed('partitions', cuts) >= 2.5 * base(cuts));
    for (const s of of('drift')) assert.ok(s.leaseMs >= 1000, `seed ${s.seed}: ${s.leaseMs} ms`);
    // The adversary holds an Accept past its voter's restart several times a run.
    assert.ok(perSeed('staleAccepts', (f) => f.staleAccept) >= 3);
    assert.equal(
      base((f) => f.staleAccept),
      0,
    );
  });
});
