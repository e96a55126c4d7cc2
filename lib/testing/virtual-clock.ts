import type { Scheduler } from '../clock.js';
import { InvariantError } from '../errors.js';
import type { Clock } from '../types.js';

interface VirtualTimer {
  readonly id: number;
  readonly at: number;
  readonly callback: () => void;
}

/** A handle returned by `VirtualClock.setTimeout`. */
export interface VirtualTimerHandle {
  readonly id: number;
}

/** Bound on timers fired by one `advance`: a timer loop that never lets time pass is a bug. */
const MAX_FIRINGS_PER_ADVANCE = 10_000_000;

/**
 * The real event loop's "after every pending microtask", captured when this module loads (so a
 * fake-timer library installed later does not replace it). Between two virtual timers the clock
 * waits for one real macrotask: every promise chain the last timer started has settled by then.
 */
const realSetImmediate: ((callback: () => void) => unknown) | undefined =
  typeof globalThis.setImmediate === 'function'
    ? globalThis.setImmediate.bind(globalThis)
    : undefined;

async function settle(): Promise<void> {
  if (realSetImmediate !== undefined) {
    await new Promise<void>((resolve) => {
      realSetImmediate(resolve);
    });
    return;
  }
  for (let i = 0; i < 100; i++) await Promise.resolve();
}

/**
 * A clock and a scheduler in virtual time, for tests: nothing happens until the test advances
 * it. Timers fire in due order (ties in the order they were set), the clock reading each one's
 * due time while it runs, and all promise work a timer started settles before the next one fires,
 * so a run is deterministic for a given seed.
 *
 * Give the same instance to nodes (`clock` and `scheduler`) and to the network (`scheduler`).
 */
export class VirtualClock implements Clock, Scheduler {
  #now: number;
  #nextId = 1;
  /** Pending timers, kept sorted by (at, id). */
  #timers: VirtualTimer[] = [];

  constructor(startMs = 0) {
    if (!Number.isFinite(startMs)) throw new RangeError('startMs must be a finite number');
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, delayMs: number): VirtualTimerHandle {
    const delay = Number.isFinite(delayMs) && delayMs > 0 ? delayMs : 0;
    const timer: VirtualTimer = { id: this.#nextId++, at: this.#now + delay, callback };
    // Insert after every timer due at the same time or earlier: ties fire in the order set.
    let i = this.#timers.length;
    while (i > 0 && (this.#timers[i - 1]?.at ?? 0) > timer.at) i--;
    this.#timers.splice(i, 0, timer);
    return { id: timer.id };
  }

  clearTimeout(handle: unknown): void {
    if (typeof handle !== 'object' || handle === null) return;
    const id = (handle as { id?: unknown }).id;
    if (typeof id !== 'number') return;
    const index = this.#timers.findIndex((t) => t.id === id);
    if (index >= 0) this.#timers.splice(index, 1);
  }

  /** How many timers are pending. */
  get pending(): number {
    return this.#timers.length;
  }

  /** When the next timer is due, or null when none is pending. */
  nextDueAt(): number | null {
    return this.#timers[0]?.at ?? null;
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due on the way, in order, with
   * the clock reading the timer's due time (or the current time, for one already overdue).
   * Promise work settles after each timer and once more at the end.
   */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0) || !Number.isFinite(ms)) throw new RangeError('ms must be a finite number ≥ 0');
    const target = this.#now + ms;
    await settle();
    let firings = 0;
    for (;;) {
      const timer = this.#timers[0];
      if (timer === undefined || timer.at > target) break;
      this.#fire(timer);
      if (++firings > MAX_FIRINGS_PER_ADVANCE) {
        throw new InvariantError('timers keep rescheduling themselves without letting time pass');
      }
      await settle();
    }
    this.#now = Math.max(this.#now, target);
    await settle();
  }

  /**
   * Advances timer by timer until `predicate()` holds (checked before starting and after each
   * timer), for at most `maxMs`. Resolves whether it held; the clock stops where it did.
   */
  async runUntil(predicate: () => boolean, maxMs: number): Promise<boolean> {
    if (!(maxMs >= 0)) throw new RangeError('maxMs must be a number ≥ 0');
    const limit = this.#now + maxMs;
    await settle();
    if (predicate()) return true;
    let firings = 0;
    for (;;) {
      const timer = this.#timers[0];
      if (timer === undefined || timer.at > limit) break;
      this.#fire(timer);
      if (++firings > MAX_FIRINGS_PER_ADVANCE) {
        throw new InvariantError('timers keep rescheduling themselves without letting time pass');
      }
      await settle();
      if (predicate()) return true;
    }
    this.#now = Math.max(this.#now, limit);
    await settle();
    return predicate();
  }

  /**
   * Moves the clock forward by `ms` *without* firing any timer: a stalled event loop (a long GC
   * pause, a blocked CPU). Overdue timers fire late, at the next `advance`.
   */
  jump(ms: number): void {
    if (!(ms >= 0) || !Number.isFinite(ms)) throw new RangeError('ms must be a finite number ≥ 0');
    this.#now += ms;
  }

  /** Drops every pending timer. */
  reset(): void {
    this.#timers = [];
  }

  #fire(timer: VirtualTimer): void {
    this.#timers.shift();
    if (timer.at > this.#now) this.#now = timer.at;
    // A throwing timer callback would crash a real process; here it fails the test loudly.
    timer.callback();
  }
}
