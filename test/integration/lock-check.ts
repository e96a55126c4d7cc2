import { FencingGuard } from '../../lib/index.js';
import type { RunLine } from './leadership-check.js';

/**
 * Checks the JSON lines of lock-holding node processes (see lock-process.ts) against each other,
 * and the store they write to: per lock name, holders' validity windows never overlap, tokens
 * grow in grant order, and the store accepted no stale write.
 *
 * All times are readings of the one clock every process on the host shares. A window runs from
 * the `grant` line to the end of what the holder may do under the lock: its release (or the
 * check that found the lock lost) if that came before the last deadline the holder wrote, and
 * otherwise that deadline (a killed or stopped process writes no end, but it cannot believe past
 * the last deadline it computed, and it writes its deadline at the grant and with every write,
 * so any renewal it acted on was written first).
 */

/** A line of a lock process, tagged with the run (one process's life) that wrote it. */
export interface LockLine extends RunLine {
  readonly name?: string;
  /** A fencing token as a decimal string. */
  readonly token?: string;
  readonly seq?: number;
  readonly ttlMs?: number;
  readonly armedAt?: number;
  readonly dueAt?: number;
  readonly ranAt?: number;
  readonly lost?: boolean;
  readonly flag?: boolean;
  readonly aborted?: boolean;
  readonly valid?: boolean;
  readonly remainingMs?: number;
  readonly abortedAt?: number | null;
  readonly code?: string;
  /** On `release` and `lost`: when the holder stopped acting under the lock. */
  readonly endedAt?: number;
}

export interface LockWindow {
  readonly run: number;
  readonly id: string;
  readonly name: string;
  readonly token: bigint;
  /** When the holder wrote its grant. */
  readonly start: number;
  /** The last deadline it wrote. */
  readonly lastDeadline: number;
  /** When belief ended: the release (or loss), or the last deadline if that came first. */
  readonly end: number;
  /** Whether a deadline written after the grant was later than the grant's (a renewal). */
  readonly renewed: boolean;
}

function key(run: number, name: string, token: string): string {
  return `${run}/${name}/${token}`;
}

function describe(w: LockWindow): string {
  return (
    `${w.id} (run ${w.run}) ${w.name} token ${w.token} ` +
    `[${w.start.toFixed(3)}, ${w.end.toFixed(3)}]`
  );
}

/** Whether the holder could have acted in the window at all (it was not lost at the grant). */
export function nonEmpty(w: LockWindow): boolean {
  return w.end > w.start;
}

/** Every holder's window in the lines, in order of start. */
export function lockWindows(lines: readonly LockLine[]): {
  windows: LockWindow[];
  problems: string[];
} {
  const problems: string[] = [];
  const open = new Map<
    string,
    {
      run: number;
      id: string;
      name: string;
      token: bigint;
      start: number;
      first: number;
      last: number;
      stop: number | null;
    }
  >();
  for (const line of lines) {
    if (line.name === undefined || line.token === undefined) continue;
    const k = key(line.run, line.name, line.token);
    const where = `${line.id} (run ${line.run}) ${line.name} token ${line.token}`;
    switch (line.type) {
      case 'grant': {
        if (typeof line.deadline !== 'number') {
          problems.push(`${where} granted with no deadline`);
          break;
        }
        if (open.has(k)) problems.push(`${where} granted twice`);
        open.set(k, {
          run: line.run,
          id: line.id,
          name: line.name,
          token: BigInt(line.token),
          start: line.t,
          first: line.deadline,
          last: line.deadline,
          stop: null,
        });
        break;
      }
      case 'write':
      case 'deadline': {
        const entry = open.get(k);
        if (entry === undefined || typeof line.deadline !== 'number') {
          problems.push(`${where}: a ${line.type} line without a grant before it`);
          break;
        }
        entry.last = Math.max(entry.last, line.deadline);
        break;
      }
      case 'release':
      case 'lost': {
        const entry = open.get(k);
        if (entry === undefined) problems.push(`${where}: a ${line.type} line without a grant`);
        else entry.stop ??= line.endedAt ?? line.t;
        break;
      }
      default:
        break;
    }
  }
  const windows = [...open.values()]
    .map((e) => ({
      run: e.run,
      id: e.id,
      name: e.name,
      token: e.token,
      start: e.start,
      lastDeadline: e.last,
      end: e.stop === null ? e.last : Math.min(e.stop, e.last),
      // A deadline estimate moves by the clock reads around it; a renewal moves it by ~ttl/3.
      renewed: e.last > e.first + 5,
    }))
    .sort((a, b) => a.start - b.start);
  return { windows, problems };
}

/** One write request the store received, and its answer. */
export interface StoreRecord {
  readonly line: LockLine;
  readonly accepted: boolean;
}

/**
 * The storage server of the lock tests: one `FencingGuard` per lock name; it admits or refuses
 * each `write` request by its token.
 *
 * Requests reach it as the parent reads the processes' files: each read takes one process's
 * lines after another's, so lines of different processes that arrive together are taken in the
 * order they were written (`t`), as a network that keeps the senders' order would deliver them.
 * A write still arrives after a later one of another holder if its process was held up between
 * its check and its line (a freeze or a preemption right there): refusing it is fencing's job.
 */
export class LockStore {
  readonly records: StoreRecord[] = [];
  readonly #guards = new Map<string, FencingGuard>();
  #next = 0;

  /** Takes the write requests among `lines` from where the last call stopped. */
  take(lines: readonly LockLine[]): void {
    const arrived: LockLine[] = [];
    for (; this.#next < lines.length; this.#next++) {
      const line = lines[this.#next];
      if (line?.type === 'write' && line.name !== undefined && line.token !== undefined) {
        arrived.push(line);
      }
    }
    arrived.sort((a, b) => a.t - b.t);
    for (const line of arrived) {
      const name = line.name ?? '';
      let guard = this.#guards.get(name);
      if (guard === undefined) {
        guard = new FencingGuard();
        this.#guards.set(name, guard);
      }
      this.records.push({ line, accepted: guard.admit(BigInt(line.token ?? '0')) });
    }
  }
}

/**
 * Every violation found: overlapping windows of one name, a token shared by two grants, tokens
 * not growing in grant order, a write outside its holder's window, and a store that accepted a
 * write older than one it had accepted (by arrival, or by the moment of its check). Empty when
 * all is well.
 */
export function checkLocks(
  lines: readonly LockLine[],
  records: readonly StoreRecord[] = [],
): string[] {
  const { windows, problems } = lockWindows(lines);
  const violations = [...problems];

  const byToken = new Map<bigint, LockWindow>();
  for (const w of windows) {
    const other = byToken.get(w.token);
    if (other !== undefined) {
      violations.push(`one token for two grants: ${describe(other)} and ${describe(w)}`);
    }
    byToken.set(w.token, w);
  }

  const names = [...new Set(windows.map((w) => w.name))];
  for (const name of names) {
    // A grant the holder learned of after its deadline (it was stopped in between) gave it no
    // time to act: it is no window.
    const mine = windows.filter((w) => w.name === name && nonEmpty(w));
    for (let i = 0; i < mine.length; i++) {
      const a = mine[i];
      if (a === undefined) continue;
      for (let j = i + 1; j < mine.length; j++) {
        const b = mine[j];
        if (b === undefined || b.start >= a.end) continue;
        violations.push(
          `two holders of ${name}: ${describe(a)} and ${describe(b)} overlap by ` +
            `${(Math.min(a.end, b.end) - b.start).toFixed(3)} ms`,
        );
      }
      const next = mine[i + 1];
      if (next !== undefined && next.token <= a.token) {
        violations.push(
          `tokens out of grant order on ${name}: ${describe(a)}, then ${describe(next)}`,
        );
      }
    }
  }

  const byKey = new Map(windows.map((w) => [key(w.run, w.name, w.token.toString()), w]));
  for (const line of lines) {
    if (line.type !== 'write' || line.name === undefined || line.token === undefined) continue;
    const w = byKey.get(key(line.run, line.name, line.token));
    const checkedAt = line.checkedAt ?? line.t;
    if (w !== undefined && (checkedAt < w.start || checkedAt > w.end)) {
      violations.push(
        `${line.id} (run ${line.run}) wrote ${line.name} (checked at ${checkedAt.toFixed(3)}) ` +
          `outside ${describe(w)}`,
      );
    }
  }

  for (const name of new Set(records.map((r) => r.line.name))) {
    const accepted = records.filter((r) => r.accepted && r.line.name === name);
    let highest: bigint | null = null;
    for (const r of accepted) {
      const token = BigInt(r.line.token ?? '0');
      if (highest !== null && token < highest) {
        violations.push(
          `the store accepted a stale write on ${name}: token ${token} after ${highest} ` +
            `(${r.line.id}, run ${r.line.run}, seq ${String(r.line.seq)})`,
        );
      }
      if (highest === null || token > highest) highest = token;
    }
    // In real time too: sorted by the moment each write was checked, tokens never go back.
    const byCheck = [...accepted].sort(
      (a, b) => (a.line.checkedAt ?? a.line.t) - (b.line.checkedAt ?? b.line.t),
    );
    for (let i = 1; i < byCheck.length; i++) {
      const a = byCheck[i - 1];
      const b = byCheck[i];
      if (a === undefined || b === undefined) continue;
      if (BigInt(b.line.token ?? '0') < BigInt(a.line.token ?? '0')) {
        violations.push(
          `accepted writes on ${name} go back in token: ${a.line.token ?? '?'} checked at ` +
            `${(a.line.checkedAt ?? a.line.t).toFixed(3)} by ${a.line.id} (run ${a.line.run}), ` +
            `then ${b.line.token ?? '?'} checked at ${(b.line.checkedAt ?? b.line.t).toFixed(3)} ` +
            `by ${b.line.id} (run ${b.line.run})`,
        );
      }
    }
  }
  return violations;
}
