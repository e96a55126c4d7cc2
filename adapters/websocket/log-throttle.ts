/**
 * A cap on how many lines one kind of event may log per window. Anyone who can reach the port
 * can cause a handshake rejection, and each one deserves a line, but not without bound: past the
 * cap lines are counted instead, and the next line written says how many were left out.
 */
export class LogThrottle {
  readonly #limit: number;
  readonly #windowMs: number;
  #windowStart = Number.NEGATIVE_INFINITY;
  #written = 0;
  #suppressed = 0;

  constructor(limit: number, windowMs: number) {
    this.#limit = limit;
    this.#windowMs = windowMs;
  }

  /** Null: skip this line. Otherwise write it, with the count of lines skipped before it. */
  admit(nowMs: number): number | null {
    if (!(nowMs - this.#windowStart < this.#windowMs)) {
      this.#windowStart = nowMs;
      this.#written = 0;
    }
    if (this.#written >= this.#limit) {
      this.#suppressed += 1;
      return null;
    }
    this.#written += 1;
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    return suppressed;
  }
}
