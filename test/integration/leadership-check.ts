/**
 * Checks the JSON lines of many node processes (see process-node.ts) against each other: at
 * most one leader at any instant, and every leader action inside its actor's leadership.
 *
 * All times are readings of one clock that every process on the host shares, so intervals of
 * different processes compare directly. A leadership interval runs from its `elected` line to
 * the end of belief: the `stepdown` line if the process wrote one before its last deadline ran
 * out, and otherwise its last deadline (a killed or stopped process writes no end, but it cannot
 * believe past the last deadline it computed, and it writes every deadline as it computes it).
 */

/** One line a node process wrote, tagged with the run (one process's life) that wrote it. */
export interface RunLine {
  /** Which process: a restarted node is a new run. */
  readonly run: number;
  readonly type: string;
  readonly id: string;
  readonly t: number;
  readonly term?: number;
  readonly deadline?: number | null;
  readonly leaderId?: string | null;
  readonly isLeader?: boolean;
  readonly reason?: string | null;
  /** An action's clock reading right before its check. */
  readonly checkedAt?: number;
  /** On a `start` line: the clock read before `start()` was called. */
  readonly begun?: number;
  /** On a `stopped` line: the successor its Release named, and whether it heard of its election. */
  readonly successor?: string | null;
  readonly successorElected?: boolean | null;
}

export interface LeaderInterval {
  readonly run: number;
  readonly id: string;
  readonly term: number;
  readonly start: number;
  /** The last deadline computed in this term. */
  readonly lastDeadline: number;
  /** When belief ended: the stepdown, or the last deadline if that came first or none was written. */
  readonly end: number;
}

function key(run: number, term: number): string {
  return `${run}/${term}`;
}

/** Every leadership interval in the lines, in order of start. */
export function leaderIntervals(lines: readonly RunLine[]): {
  intervals: LeaderInterval[];
  problems: string[];
} {
  const problems: string[] = [];
  const open = new Map<
    string,
    { run: number; id: string; term: number; start: number; last: number; stop: number | null }
  >();
  for (const line of lines) {
    if (line.term === undefined) continue;
    const k = key(line.run, line.term);
    switch (line.type) {
      case 'elected': {
        if (typeof line.deadline !== 'number') {
          problems.push(
            `${line.id} (run ${line.run}) elected in term ${line.term} with no deadline`,
          );
          break;
        }
        if (open.has(k))
          problems.push(`${line.id} (run ${line.run}) elected twice in term ${line.term}`);
        open.set(k, {
          run: line.run,
          id: line.id,
          term: line.term,
          start: line.t,
          last: line.deadline,
          stop: null,
        });
        break;
      }
      case 'renewal': {
        const entry = open.get(k);
        if (entry === undefined || typeof line.deadline !== 'number') {
          problems.push(
            `${line.id} (run ${line.run}) renewed term ${line.term} it was not elected in`,
          );
          break;
        }
        if (line.deadline < entry.last) {
          problems.push(
            `${line.id} (run ${line.run}) moved its deadline back in term ${line.term}: ` +
              `${entry.last.toFixed(3)} → ${line.deadline.toFixed(3)}`,
          );
        }
        entry.last = Math.max(entry.last, line.deadline);
        break;
      }
      case 'stepdown': {
        const entry = open.get(k);
        if (entry !== undefined) entry.stop ??= line.t;
        break;
      }
      default:
        break;
    }
  }
  const intervals = [...open.values()]
    .map((e) => ({
      run: e.run,
      id: e.id,
      term: e.term,
      start: e.start,
      lastDeadline: e.last,
      end: e.stop === null ? e.last : Math.min(e.stop, e.last),
    }))
    .sort((a, b) => a.start - b.start);
  return { intervals, problems };
}

function describe(i: LeaderInterval): string {
  return `${i.id} (run ${i.run}) term ${i.term} [${i.start.toFixed(3)}, ${i.end.toFixed(3)}]`;
}

/**
 * Every violation found in the lines: overlapping leaderships of different processes, and
 * actions outside their actor's interval. Empty when all is well.
 */
export function checkLeadership(lines: readonly RunLine[]): string[] {
  const { intervals, problems } = leaderIntervals(lines);
  const violations = [...problems];
  for (let i = 0; i < intervals.length; i++) {
    const a = intervals[i];
    if (a === undefined) continue;
    for (let j = i + 1; j < intervals.length; j++) {
      const b = intervals[j];
      if (b === undefined || b.start >= a.end) continue;
      if (b.run === a.run) continue;
      violations.push(
        `two leaders: ${describe(a)} and ${describe(b)} overlap by ` +
          `${(Math.min(a.end, b.end) - b.start).toFixed(3)} ms`,
      );
    }
  }
  const byKey = new Map(intervals.map((i) => [key(i.run, i.term), i]));
  for (const line of lines) {
    if (line.type !== 'action' || line.term === undefined) continue;
    const interval = byKey.get(key(line.run, line.term));
    if (interval === undefined) {
      violations.push(
        `${line.id} (run ${line.run}) acted at ${line.t.toFixed(3)} in term ${line.term} without leading`,
      );
    } else if (line.t < interval.start || line.t > interval.end) {
      violations.push(
        `${line.id} (run ${line.run}) acted at ${line.t.toFixed(3)} outside ${describe(interval)}`,
      );
    }
  }
  return violations;
}
