import type { Envelope, Output } from '../types.js';

/** An empty output to fill in: the pure machines build their results with it. */
export function emptyOutput<M, R, E>(): Output<M, R, E> {
  return { send: [], persist: null, events: [], wakeAt: null };
}

/** Appends `extra` to `into` (sends and events in order; the later persist wins; the earliest wakeAt). */
export function mergeOutput<M, R, E>(
  into: Output<M, R, E>,
  extra: Output<M, R, E>,
): Output<M, R, E> {
  into.send.push(...extra.send);
  into.events.push(...extra.events);
  if (extra.persist !== null) into.persist = extra.persist;
  into.wakeAt = earliest(into.wakeAt, extra.wakeAt);
  return into;
}

export function earliest(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}

export function broadcast<M>(peers: readonly string[], message: M): Envelope<M>[] {
  return peers.map((to) => ({ to, message }));
}
