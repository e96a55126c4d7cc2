/**
 * An `AbortSignal` that is exact when read.
 *
 * A signal aborted only by a timer lies after a stall of the event loop: Node.js runs overdue
 * timers in the order they fell due, so the application's own timer that fell due during a GC
 * pause or a SIGSTOP runs before the runtime's deadline timer and reads `aborted === false` well
 * past the deadline. The signal made here has its own `aborted` and `reason` getters and its own
 * `throwIfAborted()`: each first asks `valid(now())` and, when that is false, aborts the
 * controller there and then, so every `abort` listener runs (synchronously, inside the read) and
 * every read after the deadline sees the abort.
 *
 * What holds and what does not (Node.js 20; the tests pin the first three):
 * - Node.js APIs that take the signal (`timers/promises`, `events.once`, `fetch`, `fs`,
 *   `AbortSignal.any`) read its `aborted` property when called, so they see the abort.
 * - An operation already waiting on the signal (a sleep started before the stall) only learns
 *   of it through the `abort` event: when someone reads the signal or the runtime's timer runs.
 *   Its own timer may run first and let it finish normally; read the signal after it.
 * - A signal derived earlier with `AbortSignal.any([signal, …])` keeps its own state: it reads
 *   `false` until this signal is read or aborted.
 * - `AbortSignal.any([derived])`, after a stall, of such an earlier derived signal throws
 *   `ERR_INTERNAL_ASSERTION` in Node.js 20 (it asserts that the sources it reads are not
 *   aborted, and reading this one aborts it). Derive from this signal itself instead.
 */

export interface ExactSignalOptions {
  /** The clock the deadline is on. */
  readonly now: () => number;
  /** Whether what the signal stands for (a lease, a lock) still holds at `now`. */
  readonly valid: (now: number) => boolean;
  /** The abort reason when a read finds `valid` false. */
  readonly reason: () => unknown;
}

/** The state Node.js keeps for the signal, read past the getters defined below. */
function abortedOf(signal: AbortSignal): boolean {
  return Reflect.get(AbortSignal.prototype, 'aborted', signal);
}

function reasonOf(signal: AbortSignal): unknown {
  return Reflect.get(AbortSignal.prototype, 'reason', signal);
}

/**
 * An `AbortController` whose `signal` checks `valid(now())` on every read of `aborted`,
 * `reason` and `throwIfAborted()`, and aborts with `reason()` when it is false. `abort()` on the
 * controller works as usual; once aborted, the signal never calls `valid` again. The signal is
 * still an `AbortSignal` (`instanceof`, `addEventListener`, `onabort`, `AbortSignal.any`).
 */
export function exactAbortController(options: ExactSignalOptions): AbortController {
  const { now, valid, reason } = options;
  const controller = new AbortController();
  const signal = controller.signal;
  const settle = (): boolean => {
    if (abortedOf(signal)) return true;
    if (valid(now())) return false;
    // Node.js runs the listeners inside abort(), and reports one that throws as an uncaught
    // exception on a later tick: this read never throws.
    controller.abort(reason());
    return true;
  };
  Object.defineProperties(signal, {
    aborted: { configurable: true, enumerable: true, get: settle },
    reason: {
      configurable: true,
      enumerable: true,
      get: (): unknown => {
        settle();
        return reasonOf(signal);
      },
    },
    throwIfAborted: {
      configurable: true,
      writable: true,
      value: (): void => {
        if (settle()) throw reasonOf(signal);
      },
    },
  });
  return controller;
}
