import { compareBallots, maxBallot, type Ballot } from '../paxos/ballot.js';
import { majority } from '../paxos/quorum.js';
import type { NodeId } from '../types.js';
import type { AcceptedEntry, LogMessage } from './messages.js';

export interface LogRecoveryConfig {
  /** Every voter, this node included. */
  readonly peers: readonly NodeId[];
  readonly self: NodeId;
  /** How often the question goes out again while answers are missing. */
  readonly retryMs: number;
}

type RecoveryAnswer<C> = Extract<LogMessage<C>, { type: 'log.recovery' }>;

interface Report<C> {
  readonly voting: boolean;
  promised: Ballot | null;
  maxRound: number;
  readonly floor: number;
  readonly entries: AcceptedEntry<C>[];
  /** The next page to ask for; null once the report is complete. */
  next: number | null;
  askedAt: number;
}

/** What the answers told, once enough came. */
export interface RecoveredState<C> {
  readonly promised: Ballot | null;
  readonly maxRound: number;
  /** Per slot, the highest-ballot entry reported. */
  readonly entries: readonly AcceptedEntry<C>[];
  /** The furthest floor reported, and who reported it: the node catches up to it first. */
  readonly floor: number;
  readonly floorFrom: NodeId | null;
  /** A majority lost its memory at once: chosen slots may be gone (see the class comment). */
  readonly lossy: boolean;
}

/**
 * The log's recovery without disk (docs/design.md, "Recovery without disk"). A node that
 * started without its log state, once its restart silence is over, asks every other node for
 * its promised ballot, its accepted entries and its floor, and votes again only once it has
 *
 * - complete reports from `k + 1` other *voting* nodes (N = 3: both others; N = 5: three of
 *   four): every quorum that counted a vote of this node's earlier life did so within the vote
 *   window, before its silence ended, so each of its other members had voted before it answered,
 *   and `k + 1` of the `2k` others meet every such quorum. The node then promises the highest
 *   ballot reported, holds the highest-ballot entry of every slot, and first catches up to the
 *   furthest floor reported (those slots are chosen, and their entries are gone); or
 * - answers from *every* other node, a majority of them (itself included) without memory:
 *   what only the lost memories held is gone. The node takes what the voting nodes reported and
 *   is `lossy`: the leader that next takes over starts a new epoch for the lock table
 *   (docs/design.md, "Whole-cluster restart without disk"), since grants may be lost. Every
 *   node with a memory must have answered: one left out (cut off, say) would come back with
 *   a log the others never saw, and its applied state would part from theirs.
 *
 * Pure: the machine feeds it answers and readings of its clock.
 */
export class LogRecovery<C> {
  readonly #config: LogRecoveryConfig;
  readonly #others: readonly NodeId[];
  readonly #quorum: number;
  /** Complete reports of voting nodes needed: k + 1. */
  readonly #needed: number;
  readonly #reports = new Map<NodeId, Report<C>>();
  #nextAskAt = Number.NEGATIVE_INFINITY;
  #asked = false;

  constructor(config: LogRecoveryConfig) {
    this.#config = config;
    this.#others = config.peers.filter((p) => p !== config.self);
    this.#quorum = majority(config.peers.length);
    this.#needed = config.peers.length - this.#quorum + 1;
  }

  due(now: number): boolean {
    return now >= this.#nextAskAt;
  }

  get nextAskAt(): number | null {
    return this.#nextAskAt === Number.NEGATIVE_INFINITY ? null : this.#nextAskAt;
  }

  /** The nodes to ask now (every one without a report); again a retry interval later. */
  ask(now: number): readonly NodeId[] {
    this.#nextAskAt = now + this.#config.retryMs;
    this.#asked = true;
    return this.#others.filter((p) => !this.#reports.has(p));
  }

  /** Pages of voting reports still missing and due: (node, first slot). */
  pages(now: number): { to: NodeId; from: number }[] {
    const out: { to: NodeId; from: number }[] = [];
    for (const [to, r] of this.#reports) {
      if (r.next !== null && now >= r.askedAt + this.#config.retryMs) {
        r.askedAt = now;
        out.push({ to, from: r.next });
      }
    }
    return out;
  }

  /**
   * Takes one answer (a first page, or a later page asked for). Returns the page to ask for
   * next, if any.
   */
  answer(from: NodeId, message: RecoveryAnswer<C>, now: number): number | null {
    if (!this.#others.includes(from)) return null;
    const known = this.#reports.get(from);
    // The last entry of a page comes before the next page; anything else is not a correct peer.
    const last = message.entries[message.entries.length - 1]?.slot ?? message.from - 1;
    if (message.next !== null && message.next <= Math.max(last, message.from)) return null;
    if (known === undefined) {
      if (message.from !== 0) return null;
      this.#reports.set(from, {
        voting: message.voting,
        promised: message.promised,
        maxRound: message.maxRound,
        floor: message.floor,
        entries: message.voting ? [...message.entries] : [],
        next: message.voting ? message.next : null,
        askedAt: now,
      });
    } else {
      if (known.next === null || message.from !== known.next || !known.voting) return null;
      known.entries.push(...message.entries);
      known.next = message.next;
      known.askedAt = now;
      known.promised = maxBallot(known.promised, message.promised);
      known.maxRound = Math.max(known.maxRound, message.maxRound);
    }
    return this.#reports.get(from)?.next ?? null;
  }

  /** Whether enough reports are in; null while not (see the class comment). */
  result(): RecoveredState<C> | null {
    let complete = 0;
    let forgot = 1;
    for (const r of this.#reports.values()) {
      if (!r.voting) forgot += 1;
      else if (r.next === null) complete += 1;
    }
    if (complete >= this.#needed) return this.#merge(false);
    // A majority forgot, and every node with a memory gave its whole report.
    const all =
      this.#reports.size === this.#others.length && complete + forgot - 1 === this.#others.length;
    if (this.#asked && forgot >= this.#quorum && all) return this.#merge(true);
    return null;
  }

  #merge(lossy: boolean): RecoveredState<C> {
    let promised: Ballot | null = null;
    let maxRound = 0;
    let floor = 0;
    let floorFrom: NodeId | null = null;
    const bySlot = new Map<number, AcceptedEntry<C>>();
    for (const [node, r] of this.#reports) {
      if (r.next !== null) continue;
      // Applied slots are chosen, whoever reports them: even a node that is itself rebuilding.
      if (r.floor > floor) {
        floor = r.floor;
        floorFrom = node;
      }
      if (!r.voting) continue;
      promised = maxBallot(promised, r.promised);
      maxRound = Math.max(maxRound, r.maxRound);
      for (const e of r.entries) {
        const known = bySlot.get(e.slot);
        if (known === undefined || compareBallots(e.ballot, known.ballot) > 0)
          bySlot.set(e.slot, e);
      }
    }
    const entries = [...bySlot.values()]
      .filter((e) => e.slot > floor)
      .sort((a, b) => a.slot - b.slot);
    return { promised, maxRound, entries, floor, floorFrom, lossy };
  }
}
