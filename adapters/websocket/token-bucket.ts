/**
 * A token bucket: `burst` frames at once, refilled at `ratePerSec`. It is kept per peer id, not
 * per connection, so a peer cannot refill it by reconnecting.
 */
export class TokenBucket {
  readonly #ratePerMs: number;
  readonly #burst: number;
  #tokens: number;
  #lastMs: number;

  constructor(ratePerSec: number, burst: number, nowMs: number) {
    this.#ratePerMs = ratePerSec / 1000;
    this.#burst = burst;
    this.#tokens = burst;
    this.#lastMs = nowMs;
  }

  /** Takes one token if there is one. */
  take(nowMs: number): boolean {
    // A clock that went backwards adds nothing (max with 0) rather than draining the bucket.
    const elapsed = Math.max(0, nowMs - this.#lastMs);
    this.#lastMs = Math.max(this.#lastMs, nowMs);
    this.#tokens = Math.min(this.#burst, this.#tokens + elapsed * this.#ratePerMs);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
