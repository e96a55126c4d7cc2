import { LockLostError } from '../errors.js';
import { exactAbortController } from './exact-signal.js';

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

/**
 * A lock this process holds: granted by the cluster, renewed in the background while the
 * process lives, lost when it cannot be renewed in time.
 *
 * Every answer about validity (`valid`, `remainingMs`, `assertValid()`, `signal.aborted`) is
 * computed from the clock at the moment it is read: after a stalled event loop the process's own
 * overdue timers may run before synod's, so read it right before each side effect, and pass
 * `token` to the storage you write to so that it can refuse a stale holder (`FencingGuard`).
 */
export class Lock {
  readonly name: string;
  /** The fencing token: larger than every earlier grant's token, of any lock of the cluster. */
  readonly token: bigint;
  /** The TTL the leader applied, in ms. */
  readonly ttlMs: number;
  readonly #host: LockHost;
  readonly #controller: AbortController;
  #releasing: Promise<void> | null = null;
  #lostReason: LockLostError | null = null;

  constructor(host: LockHost, name: string, token: bigint, ttlMs: number) {
    this.#host = host;
    this.name = name;
    this.token = token;
    this.ttlMs = ttlMs;
    this.#controller = exactAbortController({
      now: () => host.now(),
      valid: (now) => this.#releasing === null && host.valid(name, token, now),
      reason: () => this.#lostReason ?? this.#reason(),
    });
  }

  /**
   * Aborts as soon as this holder may no longer hold the lock: before anyone else can be
   * granted it. Reading `aborted` (or `reason`, or calling `throwIfAborted()`) checks the
   * deadline first. `reason` is a `LockLostError` saying why.
   */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Whether this holder holds the lock now (computed from the clock when read). */
  get valid(): boolean {
    return !this.signal.aborted;
  }

  /** How long this holder may still act, on its own clock; 0 once the lock is lost. */
  get remainingMs(): number {
    if (this.signal.aborted) return 0;
    const deadline = this.#host.deadline(this.name, this.token);
    return deadline === null ? 0 : Math.max(0, deadline - this.#host.now());
  }

  /** Throws the `LockLostError` (the signal's reason) unless the lock is still held now. */
  assertValid(): void {
    this.signal.throwIfAborted();
  }

  /**
   * Gives the lock back. The signal aborts at once; the promise resolves once the release
   * applied, or once the lock would have expired anyway (it is no longer renewed). Idempotent.
   */
  release(): Promise<void> {
    if (this.#releasing === null) {
      const held = !this.#controller.signal.aborted;
      this.#releasing = held ? this.#host.release(this.name, this.token) : Promise.resolve();
      this.#lostReason ??= new LockLostError(`lock ${JSON.stringify(this.name)} was released`);
      this.#controller.abort(this.#lostReason);
    }
    return this.#releasing;
  }

  /** For `await using lock = await node.acquireLock(…)`: releases at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }

  /** The node learned the lock is gone (expired, or a renew found it held by no one). */
  lose(reason: 'expired' | 'not-held' | 'stopped'): void {
    if (this.#controller.signal.aborted) return;
    const why =
      reason === 'expired'
        ? 'could not be renewed before its deadline'
        : reason === 'not-held'
          ? 'is no longer held (it expired at the leader)'
          : 'was given up: the node stopped';
    this.#lostReason = new LockLostError(`lock ${JSON.stringify(this.name)} ${why}`);
    this.#controller.abort(this.#lostReason);
  }

  #reason(): LockLostError {
    return new LockLostError(
      `lock ${JSON.stringify(this.name)} (token ${this.token}) passed its deadline`,
    );
  }
}
