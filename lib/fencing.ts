import { StaleTokenError } from './errors.js';

/**
 * The check a storage server (or any resource guarded by a lock) makes on every write: it keeps
 * the largest fencing token it has seen and refuses a write carrying a smaller one. A holder
 * that paused past its lock's deadline comes back with a token below its successor's, so its
 * late write is refused even though it still believes it holds the lock (Kleppmann, "How to do
 * distributed locking"; Chubby's sequencers).
 *
 * Keep one guard per resource (per row, file, or key, as the data needs), and make the check and
 * the write one atomic step: in a database, `UPDATE … SET token = $t WHERE token <= $t`.
 * Tokens of a whole-cluster restart without storage start a new epoch above every earlier
 * token; a clock that went backwards between epochs makes writes refused, never accepted.
 */
export class FencingGuard {
  #highest: bigint | null;

  /** `highest`: the largest token already accepted (for instance read back from storage). */
  constructor(highest: bigint | null = null) {
    this.#highest = highest;
  }

  /** The largest token accepted so far. */
  get highest(): bigint | null {
    return this.#highest;
  }

  /**
   * Whether a write carrying `token` may go ahead: true (and remembered) if no larger token was
   * accepted before; equal tokens pass (one holder writing several times).
   */
  admit(token: bigint): boolean {
    if (typeof token !== 'bigint') throw new TypeError('a fencing token is a bigint');
    if (this.#highest !== null && token < this.#highest) return false;
    this.#highest = token;
    return true;
  }

  /** As `admit`, but throws `StaleTokenError` for a token below the largest accepted. */
  check(token: bigint): void {
    if (!this.admit(token)) {
      throw new StaleTokenError(
        `token ${token} is below ${String(this.#highest)}: a newer holder has written since`,
      );
    }
  }
}
