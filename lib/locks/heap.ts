/**
 * A binary min-heap of (time, key) pairs, for the many timers of the lock layer (renewals,
 * deadlines, TTLs): a node holding 100,000 locks must not scan them all on every wake-up.
 * Entries are never removed from the middle: a caller that moved a key's time pushes it again
 * and skips stale entries when they surface (it knows the key's current time).
 */
export class TimeHeap<K> {
  #times: number[] = [];
  #keys: K[] = [];

  get size(): number {
    return this.#times.length;
  }

  push(at: number, key: K): void {
    const times = this.#times;
    const keys = this.#keys;
    let i = times.length;
    times.push(at);
    keys.push(key);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const pt = times[parent] ?? 0;
      if (pt <= at) break;
      times[i] = pt;
      keys[i] = keys[parent] as K;
      i = parent;
    }
    times[i] = at;
    keys[i] = key;
  }

  /** The earliest time, or null when empty. */
  peekTime(): number | null {
    return this.#times[0] ?? null;
  }

  /** Removes and returns the earliest entry. */
  pop(): { at: number; key: K } | null {
    const times = this.#times;
    const keys = this.#keys;
    const n = times.length;
    if (n === 0) return null;
    const top = { at: times[0] ?? 0, key: keys[0] as K };
    const lastAt = times.pop() ?? 0;
    const lastKey = keys.pop() as K;
    if (n === 1) return top;
    let i = 0;
    const size = n - 1;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) break;
      const r = l + 1;
      const c = r < size && (times[r] ?? 0) < (times[l] ?? 0) ? r : l;
      if ((times[c] ?? 0) >= lastAt) break;
      times[i] = times[c] ?? 0;
      keys[i] = keys[c] as K;
      i = c;
    }
    times[i] = lastAt;
    keys[i] = lastKey;
    return top;
  }

  clear(): void {
    this.#times = [];
    this.#keys = [];
  }
}
