import type { Scheduler } from '../clock.js';
import { LeadershipLostError } from '../errors.js';
import type { FollowerHandler, FollowerInfo, LeaderHandler, LeaderInfo } from '../events.js';
import { errorFields } from '../logger.js';
import { exactAbortController } from './exact-signal.js';
import type { NodeLogger } from './logger.js';
import type { NodeCounters } from './stats.js';

/** Why a term's leadership ended, as its signal's reason says. */
export type EndReason =
  'expired' | 'released' | 'stopped' | 'superseded' | 'stepping-down' | 'halted';

const END_MESSAGES: Readonly<Record<EndReason, string>> = {
  expired: 'the leader lease expired',
  released: 'leadership was released',
  stopped: 'the node stopped',
  superseded: 'the lease moved to a fresh term, which starts its own leadership',
  'stepping-down': 'the node is stopping and hands leadership on',
  halted: 'the node halted',
};

export interface LeaderRoleDeps {
  readonly now: () => number;
  /** The lease check: this node holds the lease of `term` and `now` is before its deadline. */
  readonly holds: (term: number, now: number) => boolean;
  readonly scheduler: Scheduler;
  readonly log: NodeLogger;
  readonly counters: NodeCounters;
}

interface Term {
  readonly term: number;
  readonly controller: AbortController;
  readonly info: LeaderInfo;
}

/** One registration; the same function registered twice is two registrations. */
interface Entry<H> {
  readonly handler: H;
}

/**
 * The `onLeader` / `onFollower` bookkeeping of one node, and the order of a graceful handoff.
 *
 * - Each term gets its own `AbortController`; its signal aborts (with a `LeadershipLostError`)
 *   the moment the term ends. It is exact when read (see exact-signal.ts): a read after the
 *   lease deadline aborts it first, even when no timer has run since a stall, so the
 *   application's own overdue timer cannot see `aborted === false` past the deadline.
 *   `stillLeader()` is that same read: it asks the lease, never a flag, and a false answer
 *   aborts the signal too.
 * - A handler is started only after re-checking the lease in the same turn, so a handler never
 *   starts outside its node's lease.
 * - Handlers that throw or reject are caught, logged and counted; they never break the node.
 * - Stepping down (graceful stop) aborts the current term and starts no more handlers;
 *   `drain` then waits for the running work, bounded, so the node releases the lease only once
 *   its work has ended (and otherwise lets it lapse).
 */
export class LeaderRole {
  readonly #deps: LeaderRoleDeps;
  #leaderEntries: Entry<LeaderHandler>[] = [];
  #followerEntries: Entry<FollowerHandler>[] = [];
  #current: Term | null = null;
  /** Promises of running `onLeader` work, of every term; they never reject. */
  readonly #running = new Set<Promise<void>>();
  /** Pending `drain` calls, each ended early by `halt`. */
  readonly #drains = new Set<() => void>();
  #steppingDown = false;
  /** Who this node last knew as leader: nobody, itself, or another node (`#follower`). */
  #known: 'none' | 'self' | 'other' = 'none';
  #follower: FollowerInfo | null = null;

  constructor(deps: LeaderRoleDeps) {
    this.#deps = deps;
  }

  /** The term this node currently leads in, as far as the handlers know. */
  get term(): number | null {
    return this.#current?.term ?? null;
  }

  /** How many `onLeader` handlers have not finished yet. */
  get running(): number {
    return this.#running.size;
  }

  onLeader(handler: LeaderHandler): () => void {
    const entry: Entry<LeaderHandler> = { handler };
    this.#leaderEntries = [...this.#leaderEntries, entry];
    const current = this.#current;
    if (current !== null) {
      // Registered while leading: starts at once, in a microtask so that the caller has its
      // unsubscribe function first; the lease is re-checked then.
      queueMicrotask(() => {
        if (this.#current === current && this.#leaderEntries.includes(entry)) {
          this.#start(entry, current);
        }
      });
    }
    return () => {
      this.#leaderEntries = this.#leaderEntries.filter((e) => e !== entry);
    };
  }

  onFollower(handler: FollowerHandler): () => void {
    const entry: Entry<FollowerHandler> = { handler };
    this.#followerEntries = [...this.#followerEntries, entry];
    const view = this.#follower;
    if (this.#known === 'other' && view !== null) {
      queueMicrotask(() => {
        if (this.#follower === view && this.#followerEntries.includes(entry)) {
          this.#callFollower(entry, view);
        }
      });
    }
    return () => {
      this.#followerEntries = this.#followerEntries.filter((e) => e !== entry);
    };
  }

  /** This node won `term`: starts every `onLeader` handler (unless it is stepping down). */
  elected(term: number): void {
    // A new term without a `deposed` for the old one: the old one has lapsed.
    if (this.#current !== null) this.end('expired');
    if (this.#steppingDown) return;
    const { holds, now } = this.#deps;
    const controller = exactAbortController({
      now,
      valid: (at) => holds(term, at),
      reason: () => new LeadershipLostError(END_MESSAGES.expired),
    });
    const { signal } = controller;
    const info: LeaderInfo = Object.freeze({
      term,
      signal,
      stillLeader: (): boolean => !signal.aborted,
    });
    const current: Term = { term, controller, info };
    this.#current = current;
    this.#known = 'self';
    for (const entry of this.#leaderEntries) {
      if (this.#current !== current) break;
      this.#start(entry, current);
    }
  }

  /** The current term ended: its signal aborts now. */
  end(reason: EndReason): void {
    const current = this.#current;
    if (current === null) return;
    this.#current = null;
    const error = new LeadershipLostError(END_MESSAGES[reason]);
    this.#deps.log.info({ term: current.term, reason }, 'leadership ended');
    // Abort listeners are the user's code: one that throws must not break the node.
    try {
      current.controller.abort(error);
    } catch (thrown) {
      this.#handlerError(thrown, 'an abort listener of an onLeader signal');
    }
  }

  /** Ends the current term if its lease has lapsed at `now`: run on every wake of the node. */
  check(now: number): void {
    const current = this.#current;
    if (current !== null && !this.#deps.holds(current.term, now)) this.end('expired');
  }

  /** This node's view of the leader changed to another node, or to unknown. */
  follow(view: FollowerInfo): void {
    const last = this.#follower;
    if (view.leaderId === null) {
      // Unknown after unknown is no news (at the very start nothing was known either).
      if (this.#known === 'none') return;
      this.#known = 'none';
    } else {
      if (this.#known === 'other' && last?.leaderId === view.leaderId && last.term === view.term) {
        return;
      }
      this.#known = 'other';
    }
    this.#follower = view;
    if (this.#steppingDown) return;
    for (const entry of this.#followerEntries) this.#callFollower(entry, view);
  }

  /** Graceful stop, first step: leadership work ends now, and none starts again. */
  stepDown(): void {
    this.#steppingDown = true;
    this.end('stepping-down');
  }

  /**
   * Waits until every running `onLeader` handler has finished, at most `timeoutMs` on the
   * node's scheduler. Resolves `true` when all ended, `false` when some may still be running.
   */
  drain(timeoutMs: number): Promise<boolean> {
    if (this.#running.size === 0) return Promise.resolve(true);
    const { scheduler } = this.#deps;
    return new Promise<boolean>((resolve) => {
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        scheduler.clearTimeout(timer);
        this.#drains.delete(finish);
        resolve(this.#running.size === 0);
      };
      const timer = scheduler.setTimeout(finish, timeoutMs);
      this.#drains.add(finish);
      const wait = async (): Promise<void> => {
        while (this.#running.size > 0 && !done) await Promise.all([...this.#running]);
        finish();
      };
      void wait();
    });
  }

  /** Stops all: the current term ends, no handler starts again, and pending drains resolve. */
  halt(): void {
    this.#steppingDown = true;
    this.end('halted');
    for (const finish of [...this.#drains]) finish();
  }

  #start(entry: Entry<LeaderHandler>, current: Term): void {
    // The handler start is a leader action: it must fall inside the lease (the read of the
    // exact signal checks the lease against the clock).
    if (current.controller.signal.aborted) return;
    this.#deps.counters.leaderHandlerRuns += 1;
    let result: unknown;
    try {
      result = entry.handler(current.info);
    } catch (error) {
      this.#leaderError(error, current);
      return;
    }
    if (!isThenable(result)) return;
    const work: Promise<void> = Promise.resolve(result).then(
      () => undefined,
      (error: unknown) => {
        this.#leaderError(error, current);
      },
    );
    this.#running.add(work);
    void work.then(() => this.#running.delete(work));
  }

  #leaderError(error: unknown, term: Term): void {
    // Rethrowing the signal's own reason is how well-behaved work ends: not a failure.
    if (term.controller.signal.aborted && error === term.controller.signal.reason) {
      this.#deps.log.debug({ term: term.term }, 'onLeader work ended on its signal');
      return;
    }
    this.#handlerError(error, 'an onLeader handler');
  }

  #callFollower(entry: Entry<FollowerHandler>, view: FollowerInfo): void {
    let result: unknown;
    try {
      result = entry.handler(view);
    } catch (error) {
      this.#handlerError(error, 'an onFollower handler');
      return;
    }
    if (isThenable(result)) {
      Promise.resolve(result).catch((error: unknown) => {
        this.#handlerError(error, 'an onFollower handler');
      });
    }
  }

  #handlerError(error: unknown, where: string): void {
    this.#deps.counters.handlerErrors += 1;
    this.#deps.log.error({ ...errorFields(error), where }, `${where} failed`);
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
