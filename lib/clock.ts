import type { Clock } from './types.js';

export type { Clock } from './types.js';

/** Schedules callbacks. The runtime and adapters take one, so a virtual clock can drive them. */
export interface Scheduler {
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * The process's monotonic clock. It reads the global `performance.now()` at each call (not an
 * import from node:perf_hooks), so fake timers in tests move it too.
 */
export const systemClock: Clock = Object.freeze({
  now: (): number => performance.now(),
});

/** Global timers, looked up at each call for the same reason. */
export const systemScheduler: Scheduler = Object.freeze({
  setTimeout: (callback: () => void, delayMs: number): unknown => setTimeout(callback, delayMs),
  clearTimeout: (handle: unknown): void => {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
});

/** The longest delay a timer can take (Node clamps longer ones to 1 ms). */
export const MAX_TIMER_MS = 2_147_483_647;
