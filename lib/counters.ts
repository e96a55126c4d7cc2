/**
 * The one helper behind every `stats()` in synod (the node's and each transport's). A stats shape
 * is declared once, as a readonly interface of counts and of tallies by reason; its counters are
 * a mutable object of that very shape (`Counters<Shape>`), and `snapshot` hands out a frozen copy.
 */

/** Counts by reason; every reason of a fixed list is present, zero when it never happened. */
export type Tally<R extends string> = Readonly<Record<R, number>>;

/** The mutable counters of a stats shape: its counts and the counts in its tallies, writable. */
export type Counters<T> = {
  -readonly [K in keyof T]: T[K] extends number ? number : { -readonly [R in keyof T[K]]: number };
};

/** A fresh tally with every one of `reasons` at zero. */
export function tally<R extends string>(reasons: readonly R[]): Record<R, number> {
  return Object.fromEntries(reasons.map((reason) => [reason, 0])) as Record<R, number>;
}

/**
 * A frozen copy of `counters`, tallies included, with the `live` readings (gauges, another part's
 * stats) after them: what `stats()` returns.
 */
export function snapshot<T extends object, L extends object = object>(
  counters: Counters<T>,
  live?: L,
): Readonly<T & L> {
  const copy: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(counters)) {
    copy[key] = typeof value === 'object' && value !== null ? Object.freeze({ ...value }) : value;
  }
  return Object.freeze(Object.assign(copy, live)) as Readonly<T & L>;
}
