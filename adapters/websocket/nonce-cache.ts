/**
 * The nonces of recently accepted handshakes, so a captured handshake cannot be replayed.
 *
 * A handshake is accepted only while its timestamp is within the freshness window of the
 * listener's wall clock, so a nonce needs remembering only until its timestamp leaves that
 * window: each entry expires at `timestamp + windowMs`. Only handshakes with a valid HMAC get
 * here, so only holders of the secret can add entries; the size is capped all the same, and a
 * full cache refuses (fails closed) rather than forgetting a nonce that could still be replayed.
 */
export class NonceCache {
  readonly #capacity: number;
  /** nonce → expiry (wall-clock ms). Insertion order is roughly expiry order. */
  readonly #entries = new Map<string, number>();

  constructor(capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError('capacity must be a positive integer');
    }
    this.#capacity = capacity;
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * Records `nonce` until `expiresAtMs`. Returns `'replayed'` if it is already known, `'full'` if
   * there is no room even after dropping expired entries, `'ok'` once recorded.
   */
  add(nonce: string, expiresAtMs: number, nowMs: number): 'ok' | 'replayed' | 'full' {
    this.#sweep(nowMs, false);
    if (this.#entries.has(nonce)) return 'replayed';
    if (this.#entries.size >= this.#capacity) {
      this.#sweep(nowMs, true);
      if (this.#entries.size >= this.#capacity) return 'full';
    }
    this.#entries.set(nonce, expiresAtMs);
    return 'ok';
  }

  /**
   * Drops expired entries. The cheap pass stops at the first live entry (amortised O(1) per
   * add); the full pass, run only when the cache is full, looks at every entry.
   */
  #sweep(nowMs: number, full: boolean): void {
    for (const [nonce, expiresAt] of this.#entries) {
      if (expiresAt <= nowMs) this.#entries.delete(nonce);
      else if (!full) return;
    }
  }
}
