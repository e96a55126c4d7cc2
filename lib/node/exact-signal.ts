/**
 * An `AbortSignal` that is exact when read.
 *
 * A signal aborted only by a timer lies after a stall of the event loop: Node.js runs overdue
 * timers in the order they fell due, so the application's own timer that fell due during a GC
 * pause or a SIGSTOP runs before the runtime's deadline timer and reads `aborted === false` well
 * past the deadline. The signal made here has `aborted` and `reason` getters and a
 * `throwIfAborted()` of its own (on a prototype every such signal shares): each first asks whether
 * what it stands for still holds (`valid(now())`) and, when it does not, aborts the controller
 * there and then, so every `abort` listener runs (synchronously, inside the read) and every read
 * after the deadline sees the abort.
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

/** What an exact signal asks of what it stands for, on every read until it aborts. */
export interface ExactSource {
  /**
   * Whether it still holds, read from its clock now. It may abort the signal's controller
   * itself when it finds that it does not.
   */
  stillValid(): boolean;
  /** The abort reason when a read finds that it no longer holds. */
  lostReason(): unknown;
}

/** The state Node.js keeps for the signal, read past the getters defined below. */
function abortedOf(signal: AbortSignal): boolean {
  return Reflect.get(AbortSignal.prototype, 'aborted', signal);
}

function reasonOf(signal: AbortSignal): unknown {
  return Reflect.get(AbortSignal.prototype, 'reason', signal);
}

const SOURCE: unique symbol = Symbol('synod.exactSource');
const CONTROLLER: unique symbol = Symbol('synod.exactController');

interface ExactSignal extends AbortSignal {
  [SOURCE]: ExactSource;
  [CONTROLLER]: AbortController;
}

/** Asks the source, and aborts when it no longer holds; true once aborted. Never throws. */
function settle(signal: ExactSignal): boolean {
  if (abortedOf(signal)) return true;
  const source = signal[SOURCE];
  if (source.stillValid()) return false;
  // Node.js runs the listeners inside abort(), and reports one that throws as an uncaught
  // exception on a later tick: this read never throws.
  if (!abortedOf(signal)) signal[CONTROLLER].abort(source.lostReason());
  return true;
}

/**
 * The getters every exact signal shares: its prototype sits between it and
 * `AbortSignal.prototype`, so a signal costs two fields more than Node's own, not a set of
 * closures and property descriptors of its own.
 */
const EXACT_SIGNAL_PROTOTYPE: object = Object.create(AbortSignal.prototype, {
  aborted: {
    configurable: true,
    enumerable: true,
    get(this: ExactSignal): boolean {
      return settle(this);
    },
  },
  reason: {
    configurable: true,
    enumerable: true,
    get(this: ExactSignal): unknown {
      settle(this);
      return reasonOf(this);
    },
  },
  throwIfAborted: {
    configurable: true,
    writable: true,
    value(this: ExactSignal): void {
      if (settle(this)) throw reasonOf(this);
    },
  },
}) as object;

/**
 * An `AbortController` whose `signal` asks `source.stillValid()` on every read of `aborted`,
 * `reason` and `throwIfAborted()`, and aborts with `source.lostReason()` when it is false.
 * `abort()` on the controller works as usual; once aborted, the signal never asks again. The
 * signal is still an `AbortSignal` (`instanceof`, `addEventListener`, `onabort`,
 * `AbortSignal.any`).
 */
export function exactController(source: ExactSource): AbortController {
  const controller = new AbortController();
  const signal = controller.signal as ExactSignal;
  Object.setPrototypeOf(signal, EXACT_SIGNAL_PROTOTYPE);
  signal[SOURCE] = source;
  signal[CONTROLLER] = controller;
  return controller;
}

/**
 * `exactController` with the clock, the check and the reason as functions: the signal checks
 * `valid(now())` on every read.
 */
export function exactAbortController(options: ExactSignalOptions): AbortController {
  const { now, valid, reason } = options;
  return exactController({
    stillValid: () => valid(now()),
    lostReason: reason,
  });
}
