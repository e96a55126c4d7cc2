import { majority } from '../paxos/quorum.js';
import type { NodeId } from '../types.js';

export interface RecoveryConfig {
  /** Every voter, this node included. */
  readonly peers: readonly NodeId[];
  readonly self: NodeId;
  /** How often the question goes out again while answers are missing. */
  readonly retryMs: number;
}

interface Answer {
  readonly maxRound: number;
  readonly recovered: boolean;
}

/**
 * What a node that started without storage must learn before it votes: the highest round any
 * node has seen (docs/design.md, "Restarts"). Without it, a later leader's term could be below
 * one that a node which kept running has already reported: its view would ignore that leader,
 * and anyone fencing with terms would let a stale write through.
 *
 * It asks every other node, once its restart silence is over, and is done when either
 *
 * - `N − q + 1` other nodes *with their memory* have answered (q = a majority): every majority
 *   that chose a lease has at least `q − 1` members besides this node, and these answers meet
 *   them all. Every vote this node cast in its earlier life was counted within a round's timeout,
 *   before its silence ended, so those members had seen the round before they answered; or
 * - every other node has answered: the highest round any live node has seen is then known, even
 *   when the others lost their memory too (a whole-cluster restart; the first start of all); or
 * - a majority, this node included, has answered that it lost its memory, and a whole retry
 *   interval went by for the others to answer: a majority restarted at once (the first start of
 *   a cluster with a node missing, say). What only the lost memories held is gone, so terms may
 *   restart lower than a node that was away has seen: the leader moves to a fresh term above it
 *   as soon as that node's answers reach it (see the proposer), so every node follows it.
 *
 * Pure: the machine feeds it answers and readings of its clock.
 */
export class TermRecovery {
  readonly #config: RecoveryConfig;
  readonly #others: readonly NodeId[];
  readonly #needed: number;
  readonly #answers = new Map<NodeId, Answer>();
  readonly #quorum: number;
  #nextAskAt = Number.NEGATIVE_INFINITY;
  #asked = false;

  constructor(config: RecoveryConfig) {
    this.#config = config;
    this.#others = config.peers.filter((p) => p !== config.self);
    this.#quorum = majority(config.peers.length);
    this.#needed = config.peers.length - this.#quorum + 1;
  }

  /** Whether the question is due at `now` (once per `retryMs` while answers are missing). */
  due(now: number): boolean {
    return now >= this.#nextAskAt;
  }

  /** When the question last went out. */
  get askedAt(): number | null {
    return this.#asked ? this.#nextAskAt - this.#config.retryMs : null;
  }

  /** The nodes to ask now; the next time is a retry interval later. */
  ask(now: number): readonly NodeId[] {
    this.#nextAskAt = now + this.#config.retryMs;
    this.#asked = true;
    return this.#others.filter((p) => this.#answers.get(p)?.recovered !== true);
  }

  /**
   * Whether a majority, this node included, lost its memory (judged when the question is due
   * again, so every node in reach had a whole interval to answer).
   */
  get majorityForgot(): boolean {
    if (!this.#asked) return false;
    let forgot = 1;
    for (const a of this.#answers.values()) if (!a.recovered) forgot++;
    return forgot >= this.#quorum;
  }

  /** When to ask again, while answers are missing. */
  get nextAskAt(): number | null {
    return this.complete || this.#nextAskAt === Number.NEGATIVE_INFINITY ? null : this.#nextAskAt;
  }

  answer(from: NodeId, maxRound: number, recovered: boolean): void {
    if (from === this.#config.self || !this.#others.includes(from)) return;
    const known = this.#answers.get(from);
    this.#answers.set(from, {
      maxRound: Math.max(known?.maxRound ?? 0, maxRound),
      recovered: recovered || known?.recovered === true,
    });
  }

  /** Whether enough nodes have answered (see the class comment). */
  get complete(): boolean {
    if (this.#answers.size === this.#others.length) return true;
    let withMemory = 0;
    for (const a of this.#answers.values()) if (a.recovered) withMemory++;
    return withMemory >= this.#needed;
  }

  /** The highest round in any answer. */
  get maxRound(): number {
    let max = 0;
    for (const a of this.#answers.values()) max = Math.max(max, a.maxRound);
    return max;
  }
}
