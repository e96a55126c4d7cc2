import type { NodeId } from '../types.js';

/** The smallest majority of `n` voters: any two such sets intersect. */
export function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}

/** Counts distinct voters; a duplicate reply never counts twice. */
export class Quorum {
  readonly #voters = new Set<NodeId>();
  readonly #needed: number;

  constructor(clusterSize: number) {
    this.#needed = majority(clusterSize);
  }

  /** Records a vote; returns true if it was new. */
  add(voter: NodeId): boolean {
    if (this.#voters.has(voter)) return false;
    this.#voters.add(voter);
    return true;
  }

  has(voter: NodeId): boolean {
    return this.#voters.has(voter);
  }

  get size(): number {
    return this.#voters.size;
  }

  get reached(): boolean {
    return this.#voters.size >= this.#needed;
  }

  voters(): NodeId[] {
    return [...this.#voters];
  }
}
