import assert from 'node:assert/strict';
import type { ProfileName } from '../../lib/testing/sim/index.js';
import { runSeeds, type SeedJob, type SeedSummary } from './pool.js';

/**
 * The checker is proven able to fail: every broken variant of the core (test/sim/mutants.ts)
 * runs on random seeds and must be caught on at least MIN_RATE of them; the correct core runs
 * the very same seeds (profile, length, cluster size) and must not be. Detection rates are
 * printed, and listed in docs/design.md. A variant that opens only a short window (a vote for
 * the wrong round, a lease timed a little too long) is caught on 0.2–2% of the seeds of 60
 * periods of the CI mix: such variants run on the named profile that stresses them
 * (lib/testing/sim/profiles.ts), for longer runs, and each also has a named scenario in
 * test/scenarios that catches it every time.
 *
 * An acceptor that lets an Accept overwrite another owner's live lease is the hardest to reach:
 * the ballot rule and the proposers' round check stand in front of that rule, so two leaders
 * need a promise lost to a restart without storage, an Accept delayed past that restart and the
 * voter's new vote for a lower ballot of someone else, a stalled proposer and a lost Prepare
 * all at once. Random faults alone never lined these up (0 of 1,100 seeds); the 'staleAccepts'
 * profile adds an adversary that holds such an Accept on purpose, on 3-node clusters (with 5
 * nodes it would need two such voters).
 */
interface Case {
  /** A name from LEASE_MUTANTS, or `module#export` for a variant with its own decree machine. */
  readonly variant: string;
  readonly label: string;
  readonly profile: ProfileName;
  readonly seeds: number;
  readonly periods: number;
  /** Cluster size, else drawn from the seed. */
  readonly nodes?: number;
}

const IGNORES_PROMISE = 'dist-test/test/sim/mutants.js#ignoresPromiseVariant';

/**
 * Each variant on the profile, cluster size and run length that catch it most for the time
 * spent, over fixed seeds (1..seeds). Every case must be caught on at least MIN_RATE of its seeds;
 * the rates printed (and listed in docs/design.md) are well above that, so a change of the core
 * that moves them a little does not fail the suite, but one that hides a variant does.
 * Long runs of few seeds suit the variants a fault must strike at the right moment: the chance
 * that one run catches them grows with its length. Most run on 3 nodes, where one vote that
 * should not count completes a majority with the proposer's own, and runs cost less.
 */
const CASES: readonly Case[] = [
  {
    variant: IGNORES_PROMISE,
    label: 'acceptor ignores its promise',
    profile: 'default',
    seeds: 40,
    periods: 60,
  },
  {
    variant: 'reacceptRenewal',
    label: 'renewal re-sends Accept in the old ballot',
    profile: 'default',
    seeds: 20,
    periods: 60,
  },
  {
    variant: 'releaseClearsAny',
    label: "Release clears another owner's value",
    profile: 'default',
    seeds: 40,
    periods: 60,
  },
  {
    variant: 'flagLeader',
    label: 'leader acts on a flag set by a timer',
    profile: 'stalls',
    seeds: 20,
    periods: 60,
  },
  {
    // The term recovery also stands in front of this rule: a voter back without storage waits
    // for the stalled proposer's answer before it votes, so the stale Accept never finds another
    // owner's value to overwrite (alone, this variant is caught on 1 of these 60 seeds). The
    // variant run here turns the recovery off too, to show the rule itself is checked.
    variant: 'overwritesLeaseNoRecovery',
    label: "Accept overwrites another owner's unexpired lease (term recovery off)",
    profile: 'staleAccepts',
    seeds: 60,
    periods: 200,
    nodes: 3,
  },
  {
    variant: 'timerFromMajority',
    label: 'lease timed from the majority, not before Prepare',
    profile: 'staleAccepts',
    seeds: 50,
    periods: 200,
    nodes: 3,
  },
  {
    variant: 'noSilence',
    label: 'restarted node answers and campaigns without silence',
    profile: 'staleAccepts',
    seeds: 30,
    periods: 200,
    nodes: 3,
  },
  {
    variant: 'votesWhileSilent',
    label: 'restarted acceptor votes during its silence',
    profile: 'staleAccepts',
    seeds: 40,
    periods: 200,
    nodes: 3,
  },
  {
    variant: 'noIncarnation',
    label: 'ballots without the incarnation (reused after a restart)',
    profile: 'staleAccepts',
    seeds: 30,
    periods: 200,
    nodes: 3,
  },
  {
    variant: 'noDrift',
    label: 'no drift allowance: L − margin',
    profile: 'driftCuts',
    seeds: 30,
    periods: 400,
    nodes: 3,
  },
  {
    variant: 'halfDrift',
    label: 'drift allowance L·(1−ρ), not L·(1−ρ)/(1+ρ)',
    profile: 'driftCuts',
    seeds: 60,
    periods: 400,
    nodes: 3,
  },
  {
    variant: 'staleVotes',
    label: "an older ballot's accepted counted for the current round",
    profile: 'lateReplies',
    seeds: 80,
    periods: 400,
    nodes: 3,
  },
  {
    variant: 'renewalFromMajority',
    label: 'renewal timed from the majority, not before Prepare',
    profile: 'lateReplies',
    seeds: 40,
    periods: 400,
    nodes: 3,
  },
  {
    variant: 'releaseIgnoresBallot',
    label: "Release clears its owner's value at any ballot",
    profile: 'lateReplies',
    seeds: 30,
    periods: 400,
    nodes: 3,
  },
];

/** The share of its seeds on which every variant must be caught. */
const MIN_RATE = 0.05;

const FIRST_SEED = 1;

/** Profile, run length and cluster size: the correct core runs each shape a variant uses. */
function shapeOf(c: Case): string {
  return `'${c.profile}' × ${c.periods} periods${c.nodes === undefined ? '' : `, ${c.nodes} nodes`}`;
}

function jobsFor(c: Case, variant: string | undefined): SeedJob[] {
  return Array.from({ length: c.seeds }, (_, i) => ({
    seed: FIRST_SEED + i,
    profile: c.profile,
    periods: c.periods,
    ...(c.nodes === undefined ? {} : { nodes: c.nodes }),
    stopAtFirstViolation: true,
    ...(variant === undefined ? {} : { variant }),
  }));
}

describe('broken variants of the core (detection on random seeds)', function () {
  this.timeout(15 * 60_000);
  const caught = new Map<string, SeedSummary[]>();
  /** The correct core's runs, by run shape. */
  const correct = new Map<string, SeedSummary[]>();

  before(async () => {
    const started = performance.now();
    const jobs: SeedJob[] = [];
    const owners: { key: string; broken: boolean }[] = [];
    for (const c of CASES) {
      for (const job of jobsFor(c, c.variant)) {
        jobs.push(job);
        owners.push({ key: c.variant, broken: true });
      }
    }
    // The correct core on every run shape used (profile, run length, cluster size), over the
    // largest seed range used with it: it must pass every seed a variant is caught on.
    const shapes = new Map<string, Case>();
    for (const c of CASES) {
      const known = shapes.get(shapeOf(c));
      if (known === undefined || known.seeds < c.seeds) shapes.set(shapeOf(c), c);
    }
    for (const [shape, c] of shapes) {
      for (const job of jobsFor(c, undefined)) {
        jobs.push(job);
        owners.push({ key: shape, broken: false });
      }
    }
    const results = await runSeeds(jobs);
    results.forEach((r, i) => {
      const owner = owners[i];
      assert.ok(owner !== undefined);
      const into = owner.broken ? caught : correct;
      into.set(owner.key, [...(into.get(owner.key) ?? []), r]);
    });
    const seconds = (performance.now() - started) / 1000;
    const lines = CASES.map((c) => {
      const runs = caught.get(c.variant) ?? [];
      const hits = runs.filter((r) => r.violationCount > 0);
      const kinds = [...new Set(hits.map((r) => r.violations[0]?.kind ?? '?'))].join(', ');
      const rate = ((100 * hits.length) / Math.max(1, runs.length)).toFixed(1);
      return `      ${c.label}: caught on ${hits.length}/${runs.length} seeds (${rate}%) of ${shapeOf(c)}${kinds === '' ? '' : ` by ${kinds}`}`;
    });
    const correctSeeds = [...correct.values()].reduce((a, runs) => a + runs.length, 0);
    lines.push(
      `      ${jobs.length} runs (${correctSeeds} of the correct core) in ${seconds.toFixed(1)} s`,
    );
    console.log(lines.join('\n'));
  });

  it('passes the correct core on every seed the variants run', () => {
    for (const [shape, runs] of correct) {
      const bad = runs.filter((r) => r.violationCount > 0);
      assert.deepEqual(
        bad.map((r) => `${r.replay}: ${r.violations[0]?.description ?? ''}`),
        [],
        `the correct core failed on ${shape}`,
      );
    }
  });

  for (const c of CASES) {
    it(`catches: ${c.label}`, () => {
      const runs = caught.get(c.variant) ?? [];
      assert.equal(runs.length, c.seeds);
      const hits = runs.filter((r) => r.violationCount > 0);
      assert.ok(
        hits.length >= MIN_RATE * c.seeds,
        `caught on ${hits.length} of ${c.seeds} seeds of ${shapeOf(c)}, below ${100 * MIN_RATE}%`,
      );
    });
  }
});
