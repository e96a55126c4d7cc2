/**
 * A node's monotonic clock under rate drift: `local = offset + rate · (true − start)`, with
 * `rate` in [1 − ρ, 1 + ρ]. Each incarnation gets its own clock (a restarted process reads a new
 * monotonic clock, so the offset is new too). The simulator keeps true time; the machines only
 * ever see `local`.
 */
export class DriftClock {
  constructor(
    /** The true instant the incarnation started. */
    readonly start: number,
    /** The local reading at `start`. */
    readonly offset: number,
    readonly rate: number,
  ) {}

  /** The local reading at true instant `t`. Monotonic in `t`, also in floating point. */
  local(t: number): number {
    return this.offset + this.rate * (t - this.start);
  }

  /**
   * The earliest true instant at which this clock reads at least `local`. Exact in floating
   * point: `local(trueAt(x)) >= x` and `local(prev(trueAt(x))) < x`, so "`now < deadline`" on
   * the node and "`t < trueAt(deadline)`" in the checker agree on every instant.
   */
  trueAt(local: number): number {
    let t = this.start + (local - this.offset) / this.rate;
    if (t < this.start) t = this.start;
    // Rounding may leave `t` a few ulps off; walk to the exact boundary.
    for (let i = 0; i < 64 && this.local(t) < local; i++) t = nextUp(t);
    for (let i = 0; i < 64; i++) {
      const before = nextDown(t);
      if (before < this.start || this.local(before) < local) break;
      t = before;
    }
    return t;
  }
}

const f64 = new Float64Array(1);
const i64 = new BigInt64Array(f64.buffer);

/** The next representable double above `x` (x finite). */
export function nextUp(x: number): number {
  if (x === 0) return Number.MIN_VALUE;
  f64[0] = x;
  i64[0] = x > 0 ? (i64[0] ?? 0n) + 1n : (i64[0] ?? 0n) - 1n;
  return f64[0];
}

/** The next representable double below `x` (x finite). */
export function nextDown(x: number): number {
  return -nextUp(-x);
}
