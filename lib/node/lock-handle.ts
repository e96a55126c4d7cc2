import { LockLostError } from '../errors.js';
import { exactController, type ExactSource } from './exact-signal.js';

/** What a `Lock` asks of the node that holds it. */
export interface LockHost {
  now(): number;
  /** Whether this holder still holds `name` with `token` at `now` (its deadline is ahead). */
  valid(name: string, token: bigint, now: number): boolean;
  /** The holder's deadline for the lock, on the node's clock; null once it no longer holds it. */
  deadline(name: string, token: bigint): number | null;
  /** Gives the lock back; resolves once the release applied or the lock expired anyway. */
  release(name: string, token: bigint): Promise<void>;
}

/** Why a lock ended for its holder. */
type LockEnd = 'released' | 'expired' | 'not-held' | 'stopped' | 'deadline';

const WHY: Readonly<Record<Exclude<LockEnd, 'deadline'>, string>> = Object.freeze({
  released: 'was released',
  expired: 'could not be renewed before its deadline',
  'not-held': 'is no longer held (it expired at the leader)',
  stopped: 'was given up: the node stopped',
});

/** `Lock`'s own check and reason, for its signal (set in its static block; not public API). */
let stillHeld: (lock: Lock) => boolean;
let lostReason: (lock: Lock) => LockLostError;

/** What a lock's exact signal asks, made only when the application reads `signal`. */
class LockSignalSource implements ExactSource {
  readonly #lock: Lock;

  constructor(lock: Lock) {
    this.#lock = lock;
  }

  stillValid(): boolean {
    return stillHeld(this.#lock);
  }

  lostReason(): unknown {
    return lostReason(this.#lock);
  }
}

/**
 * A lock this process holds: granted by the cluster, renewed in the background while the
 * process lives, lost when it cannot be renewed in time.
 *
 * Every answer about validity (`valid`, `remainingMs`, `assertValid()`, `signal.aborted`) is
 * computed from the clock at the moment it is read: after a stalled event loop the process's own
 * overdue timers may run before synod's, so read it right before each side effect, and pass
 * `token` to the storage you write to so that it can refuse a stale holder (`FencingGuard`).
 *
 * A lock that nobody asks for its `signal` has none: the signal (Node.js's `AbortController`
 * and `AbortSignal`, most of a held lock's memory) is made on the first read of `signal`, already
 * aborted if the lock has ended. The `LockLostError` is likewise made only when something reads
 * it (the signal's `reason`, `assertValid()`, or an abort of a signal that exists).
 */
export class Lock {
  readonly name: string;
  /** The fencing token: larger than every earlier grant's token, of any lock of the cluster. */
  readonly token: bigint;
  /** The TTL the leader applied, in ms. */
  readonly ttlMs: number;
  readonly #host: LockHost;
  #controller: AbortController | null = null;
  #releasing: Promise<void> | null = null;
  /** Why it ended, once it has (the first reason found wins); null while held. */
  #end: LockEnd | null = null;
  #reason: LockLostError | null = null;

  static {
    stillHeld = (lock) => lock.#check();
    lostReason = (lock) => lock.#lostReason();
  }

  constructor(host: LockHost, name: string, token: bigint, ttlMs: number) {
    this.#host = host;
    this.name = name;
    this.token = token;
    this.ttlMs = ttlMs;
  }

  /**
   * Aborts as soon as this holder may no longer hold the lock: before anyone else can be
   * granted it. Reading `aborted` (or `reason`, or calling `throwIfAborted()`) checks the
   * deadline first. `reason` is a `LockLostError` saying why.
   */
  get signal(): AbortSignal {
    let controller = this.#controller;
    if (controller === null) {
      if (this.#end === null) {
        controller = exactController(new LockSignalSource(this));
      } else {
        controller = new AbortController();
        controller.abort(this.#lostReason());
      }
      this.#controller = controller;
    }
    return controller.signal;
  }

  /** Whether this holder holds the lock now (computed from the clock when read). */
  get valid(): boolean {
    return this.#check();
  }

  /** How long this holder may still act, on its own clock; 0 once the lock is lost. */
  get remainingMs(): number {
    if (!this.#check()) return 0;
    const deadline = this.#host.deadline(this.name, this.token);
    return deadline === null ? 0 : Math.max(0, deadline - this.#host.now());
  }

  /** Throws the `LockLostError` (the signal's reason) unless the lock is still held now. */
  assertValid(): void {
    if (!this.#check()) throw this.#lostReason();
  }

  /**
   * Gives the lock back. The signal aborts at once; the promise resolves once the release
   * applied, or once the lock would have expired anyway (it is no longer renewed). Idempotent.
   */
  release(): Promise<void> {
    if (this.#releasing === null) {
      const held = this.#check();
      this.#releasing = held ? this.#host.release(this.name, this.token) : Promise.resolve();
      this.#finish('released');
    }
    return this.#releasing;
  }

  /** For `await using lock = await node.acquireLock(…)`: releases at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }

  /** The node learned the lock is gone (expired, or a renew found it held by no one). */
  lose(reason: 'expired' | 'not-held' | 'stopped'): void {
    this.#finish(reason);
  }

  /**
   * Whether the lock is still held now. The first check that finds it is not ends it for good
   * (and aborts the signal, if there is one): a lock never comes back.
   */
  #check(): boolean {
    if (this.#end !== null) return false;
    if (this.#releasing === null && this.#host.valid(this.name, this.token, this.#host.now())) {
      return true;
    }
    this.#finish('deadline');
    return false;
  }

  #finish(end: LockEnd): void {
    if (this.#end !== null) return;
    this.#end = end;
    // Listeners run inside abort() and may read the lock: it has ended by then.
    this.#controller?.abort(this.#lostReason());
  }

  #lostReason(): LockLostError {
    const end = this.#end ?? 'deadline';
    this.#reason ??= new LockLostError(
      end === 'deadline'
        ? `lock ${JSON.stringify(this.name)} (token ${this.token}) passed its deadline`
        : `lock ${JSON.stringify(this.name)} ${WHY[end]}`,
    );
    return this.#reason;
  }
}
