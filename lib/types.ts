/** A node's id, unique in its cluster and stable across restarts. */
export type NodeId = string;

/**
 * Who holds a lease: a node in one incarnation. The incarnation is a random 64-bit id drawn at
 * every start (16 lowercase hex digits), so a restarted node is a different owner and never
 * reuses a ballot of its earlier life.
 */
export interface Owner {
  readonly node: NodeId;
  readonly incarnation: string;
}

/** Monotonic milliseconds. Production uses the global `performance.now()`. */
export interface Clock {
  now(): number;
}

/** A message addressed to one node. The runtime wraps it in the wire envelope. */
export interface Envelope<M> {
  readonly to: NodeId;
  readonly message: M;
}

/**
 * What a pure machine returns from every input. The runtime applies it in this order: persist
 * (durably, before anything is sent), then send, then emit events; it keeps one timer at the
 * smallest `wakeAt` and calls the machine's `tick` when it fires. A `wakeAt` is a hint, never
 * a fact: the machine decides on the `now` it is given.
 */
export interface Output<M, R, E> {
  send: Envelope<M>[];
  persist: R | null;
  events: E[];
  wakeAt: number | null;
}

export function ownerEquals(a: Owner, b: Owner): boolean {
  return a.node === b.node && a.incarnation === b.incarnation;
}

export function ownerKey(o: Owner): string {
  return `${o.node}/${o.incarnation}`;
}
