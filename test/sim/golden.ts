import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isProfileName } from '../../lib/testing/sim/index.js';
import type { SeedJob } from './pool.js';

/** A run whose trace hash is pinned: any change of behaviour changes it. */
export interface GoldenRun {
  readonly seed: number;
  readonly profile: string;
  readonly nodes?: number;
  readonly periods: number;
  readonly hash: string | null;
}

export interface Golden {
  readonly note: string;
  readonly runs: readonly GoldenRun[];
}

/** test/sim/golden.json, read from the source tree (tsc does not copy it to dist-test). */
export const GOLDEN_PATH = fileURLToPath(new URL('../../../test/sim/golden.json', import.meta.url));

export function readGolden(): Golden {
  return JSON.parse(readFileSync(GOLDEN_PATH, 'utf8')) as Golden;
}

export function goldenJob(run: GoldenRun): SeedJob {
  if (!isProfileName(run.profile)) throw new Error(`golden.json: unknown profile ${run.profile}`);
  return {
    seed: run.seed,
    profile: run.profile,
    periods: run.periods,
    ...(run.nodes === undefined ? {} : { nodes: run.nodes }),
  };
}
