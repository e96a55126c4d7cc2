/**
 * The one source of randomness for the pure core. Seeded in tests and the simulator, so that a
 * seed replays the same run; the runtime seeds it from the operating system.
 */
export interface Rng {
  /** A float uniformly distributed in [0, 1). */
  next(): number;
}

/**
 * sfc32, a small fast generator with a 128-bit state; the seed is spread over the state with
 * splitmix32 so that nearby seeds give unrelated streams.
 */
export function createRng(seed: number): Rng {
  let s = seed >>> 0;
  const split = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = split();
  let b = split();
  let c = split();
  let d = split();
  const rng: Rng = {
    next(): number {
      const t = (((a + b) >>> 0) + d) >>> 0;
      d = (d + 1) >>> 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) >>> 0;
      c = ((c << 21) | (c >>> 11)) >>> 0;
      c = (c + t) >>> 0;
      return t / 4294967296;
    },
  };
  for (let i = 0; i < 12; i++) rng.next();
  return rng;
}

/** A uniformly random integer in [lo, hi]. */
export function randomInt(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng.next() * (hi - lo + 1));
}

/** A random 64-bit id as 16 lowercase hex digits: the incarnation of a node's life. */
export function randomIncarnation(rng: Rng): string {
  const word = (): string =>
    Math.floor(rng.next() * 4294967296)
      .toString(16)
      .padStart(8, '0');
  return word() + word();
}
