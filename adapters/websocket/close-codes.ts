/** Close codes synod uses (4000–4999 is the range RFC 6455 leaves to applications). */
export const CLOSE_CODES = Object.freeze({
  /** The transport is closing. */
  goingAway: 1001,
  /** The other connection of the pair won the tie-break. */
  duplicate: 4001,
  /** A connection from a newer instance of the peer replaced this one. */
  superseded: 4002,
});
