/** Something that happens at a true instant; `seq` breaks ties in insertion order. */
export interface Scheduled {
  t: number;
  seq: number;
}

/**
 * The simulator's agenda: a binary min-heap on (true time, insertion sequence). The stable
 * tie-break makes the run a function of the seed alone: two events at one instant always run
 * in the order they were scheduled.
 */
export class EventQueue<E extends Scheduled> {
  readonly #heap: E[] = [];
  #seq = 0;

  get size(): number {
    return this.#heap.length;
  }

  /** Schedules `event` at `event.t`, after everything already scheduled for that instant. */
  push(event: E): void {
    event.seq = this.#seq++;
    const heap = this.#heap;
    let i = heap.length;
    heap.push(event);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent];
      if (p === undefined || !before(event, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = event;
  }

  peek(): E | undefined {
    return this.#heap[0];
  }

  pop(): E | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    const n = heap.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      let c = l;
      let child = heap[l];
      const right = heap[l + 1];
      if (child === undefined) break;
      if (right !== undefined && before(right, child)) {
        c = l + 1;
        child = right;
      }
      if (!before(child, last)) break;
      heap[i] = child;
      i = c;
    }
    heap[i] = last;
    return top;
  }
}

function before(a: Scheduled, b: Scheduled): boolean {
  return a.t < b.t || (a.t === b.t && a.seq < b.seq);
}
