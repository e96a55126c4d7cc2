import type { Rng } from '../../random.js';
import type { SimParams } from './profiles.js';

/** What the network did to the messages so far (the message faults of the run's counts). */
export interface NetworkFaults {
  loss: number;
  duplicate: number;
  longDelay: number;
}

/**
 * The simulated network between `n` nodes, on directed links `from · n + to`, in true time.
 * Best effort, like the transports the protocols must survive: a message may be lost,
 * duplicated, delayed at random (so messages overtake each other), rarely delayed beyond a whole
 * lease, and dropped on links that a partition cut (checked at sending and at arrival). Links
 * around a node may turn slow for a while. Once `quiet`, only random delays within the
 * configured bound (≤ L/16) remain: the liveness assumption.
 */
export class FaultyNetwork {
  quiet = false;
  readonly #p: SimParams;
  readonly #rng: Rng;
  readonly #faults: NetworkFaults;
  readonly #n: number;
  /** Per link, how many active cuts cover it. */
  readonly #cuts: Int32Array;
  /** Per link, the true instant until which it is slow. */
  readonly #slowUntil: Float64Array;
  readonly #partitions: { readonly links: readonly number[]; active: boolean }[] = [];
  /** Long delays must end before this instant, so nothing slow is in flight after the heal. */
  readonly #healAt: number;

  constructor(params: SimParams, rng: Rng, faults: NetworkFaults, healAt: number) {
    this.#p = params;
    this.#rng = rng;
    this.#faults = faults;
    this.#n = params.nodes;
    this.#cuts = new Int32Array(this.#n * this.#n);
    this.#slowUntil = new Float64Array(this.#n * this.#n);
    this.#healAt = healAt;
  }

  /** Whether a partition cuts the link `from → to` now. */
  cut(from: number, to: number): boolean {
    return this.#cuts[from * this.#n + to] !== 0;
  }

  /**
   * The delays of the copies of one message sent at `t` on `from → to`, written to `into`:
   * none if it is lost, two if it is duplicated. Returns the number of copies.
   */
  transmit(from: number, to: number, t: number, into: number[]): number {
    const link = from * this.#n + to;
    if (this.#cuts[link] !== 0) return 0;
    const rng = this.#rng;
    const p = this.#p;
    let copies = 1;
    if (!this.quiet) {
      if (rng.next() < p.rates.loss) {
        this.#faults.loss++;
        return 0;
      }
      if (rng.next() < p.rates.duplicate) {
        this.#faults.duplicate++;
        copies = 2;
      }
    }
    const slow = t < (this.#slowUntil[link] ?? 0);
    for (let c = 0; c < copies; c++) {
      let delay = p.minDelayMs + rng.next() * (p.maxDelayMs - p.minDelayMs);
      if (slow) delay = p.maxDelayMs + rng.next() * (p.leaseMs / 2 - p.maxDelayMs);
      if (!this.quiet && rng.next() < p.rates.longDelay) {
        const long = p.leaseMs * (1 + 2 * rng.next());
        if (t + long < this.#healAt) {
          delay = long;
          this.#faults.longDelay++;
        }
      }
      into[c] = delay;
    }
    return copies;
  }

  /** Cuts `links` until `restore` is called with the returned id. */
  partition(links: readonly number[]): number {
    for (const l of links) this.#cuts[l] = (this.#cuts[l] ?? 0) + 1;
    this.#partitions.push({ links, active: true });
    return this.#partitions.length - 1;
  }

  restore(id: number): void {
    const part = this.#partitions[id];
    if (part?.active !== true) return;
    part.active = false;
    for (const l of part.links) this.#cuts[l] = (this.#cuts[l] ?? 1) - 1;
  }

  /** Makes the links into and/or out of node `x` slow until `until`. */
  slow(x: number, inbound: boolean, outbound: boolean, until: number): void {
    const n = this.#n;
    for (let y = 0; y < n; y++) {
      if (y === x) continue;
      if (outbound) this.#slowUntil[x * n + y] = Math.max(this.#slowUntil[x * n + y] ?? 0, until);
      if (inbound) this.#slowUntil[y * n + x] = Math.max(this.#slowUntil[y * n + x] ?? 0, until);
    }
  }

  /** Every fault ends: no cuts, no slow links, and from now on no message faults. */
  heal(): void {
    for (const part of this.#partitions) part.active = false;
    this.#cuts.fill(0);
    this.#slowUntil.fill(0);
    this.quiet = true;
  }
}
