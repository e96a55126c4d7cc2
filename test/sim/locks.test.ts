import assert from 'node:assert/strict';
import { runSeeds, type SeedJob, type SeedSummary } from './pool.js';

/**
 * The lock workload's share of CI: 300 seeds of every fault at once, on 3- and 5-node clusters,
 * each node running its whole replica (lease, log, lock table) while an application on every
 * node takes, holds, renews, gives up on and releases locks. Zero violations of the lock
 * invariants (no two holders of a name at one instant, tokens in grant order, one command per
 * slot on every node, a linearizable history, acquires granted after the heal), and of the
 * lease's. The minimums keep the workload honest: a change that stops grants or expiries from
 * happening fails here instead of passing on an empty run.
 */
const SEEDS = 300;
const PERIODS = 100;

function jobs(): SeedJob[] {
  const out: SeedJob[] = [];
  for (let seed = 1; seed <= SEEDS; seed++) {
    out.push({
      seed,
      profile: 'default',
      nodes: seed % 2 === 1 ? 3 : 5,
      periods: PERIODS,
      locks: true,
    });
  }
  return out;
}

function sum(results: readonly SeedSummary[], pick: (s: SeedSummary) => number): number {
  return results.reduce((a, s) => a + pick(s), 0);
}

describe('simulator: locks (CI share)', function () {
  this.timeout(15 * 60_000);
  let results: SeedSummary[] = [];

  before(async () => {
    results = await runSeeds(jobs());
  });

  it('finds no violation on any seed', () => {
    const failures = results
      .filter((s) => s.violationCount > 0)
      .map((s) => {
        const v = s.violations[0];
        return `${v?.kind ?? '?'} at ${v?.time ?? '?'}: ${v?.description ?? ''} | ${s.replay}`;
      });
    assert.deepEqual(failures, []);
  });

  it('grants, releases and expires locks under every fault', () => {
    const locks = (pick: (l: NonNullable<SeedSummary['counts']['locks']>) => number): number =>
      sum(results, (s) => (s.counts.locks === null ? 0 : pick(s.counts.locks)));
    // About half of what the workload does, per seed.
    assert.ok(locks((l) => l.grants) >= SEEDS * 30, `grants: ${locks((l) => l.grants)}`);
    assert.ok(locks((l) => l.releases) >= SEEDS * 25, `releases: ${locks((l) => l.releases)}`);
    assert.ok(locks((l) => l.expires) >= SEEDS * 0.5, `expires: ${locks((l) => l.expires)}`);
    assert.ok(sum(results, (s) => s.counts.faults.crash) >= SEEDS * 2);
    assert.ok(sum(results, (s) => s.counts.faults.restartWithoutStorage) >= SEEDS * 1);
    assert.ok(sum(results, (s) => s.counts.leaderChanges) >= SEEDS * 2);
  });

  it('decides linearizability on every seed (the search never runs out of budget)', () => {
    const unknown = results.filter((s) => s.counts.locks?.unknown === true).map((s) => s.replay);
    assert.deepEqual(unknown, []);
  });
});
