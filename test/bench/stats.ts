/** Summary statistics of a sample, by the nearest-rank method (no interpolation). */
export interface Summary {
  readonly count: number;
  readonly min: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

/** The value at or below which `p` percent of the sorted sample lies (nearest rank). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError('percentile of an empty sample');
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] ?? Number.NaN;
}

export function summarize(values: readonly number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    count: sorted.length,
    min: sorted[0] ?? Number.NaN,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? Number.NaN,
    mean: sum / sorted.length,
  };
}

/** Every field of `summary` divided by `unit` (e.g. milliseconds into lease periods). */
export function scale(summary: Summary, unit: number): Summary {
  return {
    count: summary.count,
    min: summary.min / unit,
    p50: summary.p50 / unit,
    p90: summary.p90 / unit,
    p99: summary.p99 / unit,
    max: summary.max / unit,
    mean: summary.mean / unit,
  };
}

/** Rounds to `digits` decimals, for printing and for the JSON file. */
export function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export function roundSummary(summary: Summary, digits = 3): Summary {
  return {
    count: summary.count,
    min: round(summary.min, digits),
    p50: round(summary.p50, digits),
    p90: round(summary.p90, digits),
    p99: round(summary.p99, digits),
    max: round(summary.max, digits),
    mean: round(summary.mean, digits),
  };
}
