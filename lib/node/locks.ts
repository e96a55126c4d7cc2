import type { Clock, Scheduler } from '../clock.js';
import {
  AbortError,
  ConfigError,
  LockTimeoutError,
  NotStartedError,
  type SynodError,
} from '../errors.js';
import type { LockClientEvent } from '../locks/client.js';
import { MAX_LOCK_NAME_LENGTH } from '../locks/commands.js';
import type { ReplicaMachine, ReplicaOutput } from '../replica/machine.js';
import type { NodeId } from '../types.js';
import { Lock, type LockHost } from './lock-handle.js';
import type { NodeLogger } from './logger.js';

/** Options of `acquireLock`, `tryLock` and `withLock`. */
export interface LockOptions {
  /** How long the lock lasts without renewal, in ms (default 10000, at most `maxTtlMs`). */
  readonly ttlMs?: number;
  /** How long to wait for the lock before `LockTimeoutError` (default 30000; `tryLock` 5000). */
  readonly timeoutMs?: number;
  /** Cancels the request (`AbortError`); a grant that won the race is released at once. */
  readonly signal?: AbortSignal;
}

/** Who holds a lock, as the leader's table says (`getLock`). */
export interface LockInfo {
  readonly name: string;
  /** The holding node, or null if the lock is free. */
  readonly holder: NodeId | null;
  readonly token: bigint | null;
  /** Requests queued behind the holder. */
  readonly waiters: number;
}

export const LOCK_DEFAULTS = Object.freeze({
  ttlMs: 10_000,
  timeoutMs: 30_000,
  tryTimeoutMs: 5000,
});

export interface LockManagerOptions {
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  readonly log: NodeLogger;
  readonly maxTtlMs: number;
  /** The shortest TTL that leaves a holder any time (its drift allowance and margin). */
  readonly minTtlMs: number;
  /** Runs one call of the replica with the clock's reading and applies its output. */
  readonly step: (call: (machine: ReplicaMachine, now: number) => ReplicaOutput) => void;
  /** Whether the node runs (takes requests). */
  readonly running: () => boolean;
  readonly machine: () => ReplicaMachine | null;
}

interface PendingAcquire {
  readonly name: string;
  readonly ttlMs: number;
  readonly wait: boolean;
  readonly resolve: (lock: Lock | null) => void;
  readonly reject: (error: SynodError) => void;
  seq: number;
  timer: unknown;
  /** The caller's signal and this request's listener on it, if it gave one. */
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | null;
}

interface PendingRelease {
  readonly name: string;
  readonly done: () => void;
}

interface PendingRead {
  readonly resolve: (info: LockInfo) => void;
  readonly reject: (error: SynodError) => void;
  timer: unknown;
}

/**
 * The node's side of the lock API: it turns the replica's holder events into promises and
 * `Lock` objects, with timeouts and cancellation. Every request goes through the replica (and
 * the log), even on the leader.
 */
export class LockManager implements LockHost {
  readonly #options: LockManagerOptions;
  readonly #acquires = new Map<number, PendingAcquire>();
  readonly #reads = new Map<number, PendingRead>();
  readonly #held = new Map<string, Lock>();
  /** Releases waiting for their answer, by token (a token names one grant of one lock). */
  readonly #releases = new Map<bigint, PendingRelease>();

  constructor(options: LockManagerOptions) {
    this.#options = options;
  }

  /** Locks this process holds now. */
  get held(): number {
    return this.#held.size;
  }

  now(): number {
    return this.#options.clock.now();
  }

  valid(name: string, token: bigint, now: number): boolean {
    return this.#options.machine()?.client.valid(name, token, now) === true;
  }

  deadline(name: string, token: bigint): number | null {
    const h = this.#options.machine()?.client.holding(name) ?? null;
    return h?.token === token ? h.deadline : null;
  }

  acquire(name: string, options: LockOptions, wait: boolean): Promise<Lock | null> {
    const ttlMs = this.#ttl(options);
    const timeoutMs = this.#timeout(options, wait);
    validateName(name);
    const signal = options.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new ConfigError('signal must be an AbortSignal');
    }
    if (!this.#options.running()) {
      return Promise.reject(new NotStartedError('the node is not running'));
    }
    if (signal?.aborted === true) {
      return Promise.reject(
        new AbortError('the lock request was aborted', { cause: signal.reason }),
      );
    }
    return new Promise<Lock | null>((resolve, reject) => {
      const pending: PendingAcquire = {
        name,
        ttlMs,
        wait,
        resolve,
        reject,
        seq: 0,
        timer: null,
        signal,
        onAbort: null,
      };
      if (signal !== undefined) {
        const onAbort = (): void => {
          this.#giveUp(
            pending,
            new AbortError('the lock request was aborted', { cause: signal.reason }),
          );
        };
        pending.onAbort = onAbort;
        signal.addEventListener('abort', onAbort, { once: true });
      }
      pending.timer = this.#options.scheduler.setTimeout(() => {
        this.#giveUp(
          pending,
          new LockTimeoutError(
            `lock ${JSON.stringify(name)} was not acquired within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      this.#send(pending);
    });
  }

  /** The request is answered or given up: its timer and its abort listener go. */
  #cleanup(pending: PendingAcquire): void {
    this.#options.scheduler.clearTimeout(pending.timer);
    if (pending.onAbort !== null) pending.signal?.removeEventListener('abort', pending.onAbort);
  }

  read(name: string, timeoutMs: number): Promise<LockInfo> {
    validateName(name);
    if (!this.#options.running()) {
      return Promise.reject(new NotStartedError('the node is not running'));
    }
    return new Promise<LockInfo>((resolve, reject) => {
      let id = 0;
      const pending: PendingRead = { resolve, reject, timer: null };
      this.#options.step((machine, now) => {
        const r = machine.read(name, now);
        id = r.id;
        this.#reads.set(id, pending);
        return r.out;
      });
      pending.timer = this.#options.scheduler.setTimeout(() => {
        if (!this.#reads.delete(id)) return;
        this.#options.machine()?.client.forgetRead(id);
        reject(new LockTimeoutError(`no leader answered for lock ${JSON.stringify(name)} in time`));
      }, timeoutMs);
    });
  }

  release(name: string, token: bigint): Promise<void> {
    const lock = this.#held.get(name);
    if (lock?.token === token) this.#held.delete(name);
    const machine = this.#options.machine();
    const deadline = this.deadline(name, token);
    if (machine === null || !this.#options.running() || deadline === null) return Promise.resolve();
    return new Promise<void>((resolve) => {
      // Resolves at the answer, or once the lock would have expired anyway: it is not renewed.
      const done = (): void => {
        this.#options.scheduler.clearTimeout(timer);
        if (this.#releases.get(token) === pending) this.#releases.delete(token);
        resolve();
      };
      const timer = this.#options.scheduler.setTimeout(
        done,
        Math.max(1, Math.ceil(deadline - this.now())),
      );
      const pending: PendingRelease = { name, done };
      this.#releases.set(token, pending);
      this.#options.step((m, now) => m.release(name, token, now));
    });
  }

  /** A holder event of the replica. */
  onEvent(event: LockClientEvent): void {
    switch (event.type) {
      case 'granted': {
        const pending = this.#acquires.get(event.seq);
        if (pending === undefined) {
          // Nobody waits for it any more (timed out in the same turn): give it back.
          this.#options.step((m, now) => m.release(event.name, event.token, now));
          return;
        }
        this.#acquires.delete(event.seq);
        this.#cleanup(pending);
        const lock = new Lock(this, event.name, event.token, event.ttlMs);
        this.#held.set(event.name, lock);
        pending.resolve(lock);
        return;
      }
      case 'busy': {
        const pending = this.#acquires.get(event.seq);
        if (pending === undefined) return;
        this.#acquires.delete(event.seq);
        this.#cleanup(pending);
        pending.resolve(null);
        return;
      }
      case 'failed': {
        // Its grant ended before the answer came: ask again while time remains.
        const pending = this.#acquires.get(event.seq);
        if (pending === undefined) return;
        this.#acquires.delete(event.seq);
        this.#send(pending);
        return;
      }
      case 'lost': {
        const lock = this.#held.get(event.name);
        if (lock?.token !== event.token) return;
        this.#held.delete(event.name);
        lock.lose(event.reason);
        this.#options.log.warn({ lock: event.name, reason: event.reason }, 'lost a lock');
        return;
      }
      case 'released': {
        const pending = this.#releases.get(event.token);
        if (pending?.name === event.name) pending.done();
        return;
      }
      case 'view': {
        const pending = this.#reads.get(event.id);
        if (pending === undefined) return;
        this.#reads.delete(event.id);
        this.#options.scheduler.clearTimeout(pending.timer);
        pending.resolve({
          name: event.name,
          holder: event.holder?.node ?? null,
          token: event.token,
          waiters: event.waiters,
        });
        return;
      }
      case 'queued':
      case 'renewed':
      case 'cancelled':
      case 'returned':
        return;
      default: {
        const never: never = event;
        this.#options.log.error({ event: never }, 'unknown lock event');
      }
    }
  }

  /** The node stopped or halted: requests fail, held locks are lost. */
  stop(error: SynodError): void {
    for (const pending of this.#acquires.values()) {
      this.#cleanup(pending);
      pending.reject(error);
    }
    this.#acquires.clear();
    for (const pending of this.#reads.values()) {
      this.#options.scheduler.clearTimeout(pending.timer);
      pending.reject(error);
    }
    this.#reads.clear();
    for (const lock of this.#held.values()) lock.lose('stopped');
    this.#held.clear();
    for (const pending of [...this.#releases.values()]) pending.done();
  }

  /** Releases every held lock (a graceful stop), waiting at most `timeoutMs` for answers. */
  async releaseAll(timeoutMs: number): Promise<void> {
    const releases = [...this.#held.values()].map((lock) => lock.release());
    if (releases.length === 0) return;
    let timer: unknown = null;
    await Promise.race([
      Promise.all(releases),
      new Promise<void>((resolve) => {
        timer = this.#options.scheduler.setTimeout(resolve, timeoutMs);
      }),
    ]);
    this.#options.scheduler.clearTimeout(timer);
  }

  #send(pending: PendingAcquire): void {
    if (!this.#options.running()) {
      this.#cleanup(pending);
      pending.reject(new NotStartedError('the node stopped'));
      return;
    }
    this.#options.step((machine, now) => {
      const r = machine.acquire(pending.name, pending.ttlMs, pending.wait, now);
      pending.seq = r.seq;
      this.#acquires.set(r.seq, pending);
      return r.out;
    });
  }

  /** Timed out or aborted: withdrawn (a grant that won the race is released by the table). */
  #giveUp(pending: PendingAcquire, error: SynodError): void {
    if (this.#acquires.get(pending.seq) !== pending) return;
    this.#acquires.delete(pending.seq);
    this.#cleanup(pending);
    this.#options.step((machine, now) => machine.cancel(pending.seq, now));
    pending.reject(error);
  }

  #ttl(options: LockOptions): number {
    const ttlMs = options.ttlMs ?? Math.min(LOCK_DEFAULTS.ttlMs, this.#options.maxTtlMs);
    if (
      typeof ttlMs !== 'number' ||
      !Number.isInteger(ttlMs) ||
      ttlMs < this.#options.minTtlMs ||
      ttlMs > this.#options.maxTtlMs
    ) {
      throw new ConfigError(
        `ttlMs must be a whole number of ms from ${this.#options.minTtlMs} to maxTtlMs (${this.#options.maxTtlMs})`,
      );
    }
    return ttlMs;
  }

  #timeout(options: LockOptions, wait: boolean): number {
    const timeoutMs =
      options.timeoutMs ?? (wait ? LOCK_DEFAULTS.timeoutMs : LOCK_DEFAULTS.tryTimeoutMs);
    if (
      typeof timeoutMs !== 'number' ||
      !Number.isInteger(timeoutMs) ||
      timeoutMs < 0 ||
      timeoutMs > 2_147_483_647
    ) {
      throw new ConfigError('timeoutMs must be a whole number of ms from 0 to 2147483647');
    }
    return timeoutMs;
  }
}

function validateName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_LOCK_NAME_LENGTH) {
    throw new ConfigError(`a lock name is a string of 1 to ${MAX_LOCK_NAME_LENGTH} characters`);
  }
}
