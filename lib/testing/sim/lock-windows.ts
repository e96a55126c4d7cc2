import { InvariantError } from '../../errors.js';

/**
 * The true-time interval in which a holder believed it held a lock: from the grant until its
 * `lock.signal` aborted or it released. `end` is exclusive (the first instant it no longer
 * believes); Infinity if it still believed at the end of the run.
 */
export interface HolderWindow {
  readonly name: string;
  readonly client: string;
  readonly token: bigint;
  readonly start: number;
  readonly end: number;
}

/**
 * G1: the windows of one name must be disjoint. Returns the first overlap found (by start
 * time, per name), or null. Ends are exclusive, so a window may start at the instant the
 * previous one ends; an empty window (`end === start`) contains no instant and overlaps
 * nothing. Sort and sweep: O(n log n).
 */
export function overlappingWindows(
  windows: readonly HolderWindow[],
): { a: HolderWindow; b: HolderWindow } | null {
  for (const w of windows) {
    if (Number.isNaN(w.start) || Number.isNaN(w.end) || !Number.isFinite(w.start)) {
      throw new InvariantError(`holder window of ${w.client} on ${w.name}: bad start or end`);
    }
    if (w.end < w.start) {
      throw new InvariantError(
        `holder window of ${w.client} on ${w.name} ends (${w.end}) before it starts (${w.start})`,
      );
    }
  }
  const sorted = windows
    .filter((w) => w.end > w.start)
    .sort((x, y) => compare(x.name, y.name) || x.start - y.start || x.end - y.end);
  // Per name, the window reaching furthest so far: a later-starting window overlaps some
  // earlier one exactly when it starts before that one's end.
  let reach: HolderWindow | null = null;
  for (const w of sorted) {
    if (reach !== null && reach.name === w.name && w.start < reach.end) return { a: reach, b: w };
    if (reach?.name !== w.name || w.end > reach.end) reach = w;
  }
  return null;
}

/** One grant as the log applied it. */
export interface GrantRecord {
  readonly name: string;
  readonly token: bigint;
  /** The apply index of the command that made the grant (an acquire, or a promotion). */
  readonly applyIndex: number;
}

/**
 * G2: fencing tokens strictly increase with the apply index, across all names. Returns the
 * first grant (in apply order) whose token is not above every earlier grant's, with the earlier
 * grant holding the largest token so far, or null. Grants at one apply index (one command may
 * end a grant and promote a waiter, on one name only, but the check does not rely on it) are
 * taken in token order, so they need only distinct tokens. Sort and sweep: O(n log n).
 */
export function tokensOutOfOrder(
  grants: readonly GrantRecord[],
): { earlier: GrantRecord; later: GrantRecord } | null {
  for (const g of grants) {
    if (!Number.isSafeInteger(g.applyIndex)) {
      throw new InvariantError(`grant of token ${g.token} on ${g.name}: bad apply index`);
    }
  }
  const sorted = [...grants].sort(
    (x, y) => x.applyIndex - y.applyIndex || (x.token < y.token ? -1 : x.token > y.token ? 1 : 0),
  );
  let max: GrantRecord | null = null;
  for (const g of sorted) {
    if (max !== null && g.token <= max.token) return { earlier: max, later: g };
    max = g;
  }
  return null;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
