import assert from 'node:assert/strict';
import type { ProfileName } from '../../lib/testing/sim/index.js';
import { runSeeds, type SeedSummary } from './pool.js';

/**
 * The liveness and term invariants can fail: with the fix they guard removed, random seeds of
 * the profile aimed at it find the violation, and the correct core passes the same seeds. These
 * variants are rare on random seeds (they need a duel that repeats, or a restart without storage
 * beside a partition), so each also has a named scenario in test/scenarios that fails every time.
 */
interface Case {
  readonly variant: string;
  readonly label: string;
  readonly kind: string;
  readonly profile: ProfileName;
  readonly nodes: number;
  readonly periods: number;
  readonly seeds: number;
}

const CASES: readonly Case[] = [
  {
    variant: 'narrowWaits',
    label: 'one campaign window of L/10 for all and a backoff from L/8 (no ranked waits)',
    kind: 'noLeaderAfterHeal',
    profile: 'duels',
    nodes: 5,
    periods: 30,
    seeds: 400,
  },
  {
    variant: 'noTermRecovery',
    label: 'a node back without storage votes without learning the rounds seen',
    kind: 'termRegressed',
    profile: 'staleAccepts',
    nodes: 3,
    periods: 200,
    seeds: 100,
  },
];

describe('liveness and term invariants, with their fix removed', function () {
  this.timeout(10 * 60_000);
  const broken = new Map<string, SeedSummary[]>();
  const correct = new Map<string, SeedSummary[]>();

  before(async () => {
    const jobs = CASES.flatMap((c) =>
      [c.variant, undefined].flatMap((variant) =>
        Array.from({ length: c.seeds }, (_, i) => ({
          seed: i + 1,
          profile: c.profile,
          nodes: c.nodes,
          periods: c.periods,
          ...(variant === undefined ? {} : { variant }),
        })),
      ),
    );
    const results = await runSeeds(jobs);
    let at = 0;
    for (const c of CASES) {
      broken.set(c.variant, results.slice(at, at + c.seeds));
      correct.set(c.variant, results.slice(at + c.seeds, at + 2 * c.seeds));
      at += 2 * c.seeds;
    }
    console.log(
      CASES.map((c) => {
        const hits = (broken.get(c.variant) ?? []).filter((r) =>
          r.violations.some((v) => v.kind === c.kind),
        );
        return `      ${c.label}: ${c.kind} on ${hits.length}/${c.seeds} seeds of '${c.profile}' × ${c.periods} periods, ${c.nodes} nodes`;
      }).join('\n'),
    );
  });

  for (const c of CASES) {
    it(`finds ${c.kind} when ${c.label}; the correct core passes the same seeds`, () => {
      const runs = broken.get(c.variant) ?? [];
      assert.equal(runs.length, c.seeds);
      assert.ok(runs.some((r) => r.violations.some((v) => v.kind === c.kind)));
      const bad = (correct.get(c.variant) ?? []).filter((r) => r.violationCount > 0);
      assert.deepEqual(
        bad.map((r) => r.replay),
        [],
      );
    });
  }
});
