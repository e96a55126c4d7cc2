import type { NodeId, Owner } from '../types.js';

/**
 * The lock table's commands: what the log chooses and every node applies in slot order.
 *
 * A holder is one incarnation of a node (`Owner`): a restarted process is a new holder, and the
 * locks of its earlier life expire by TTL. Each holder numbers its requests (`seq`, from 1 up,
 * never reused within an incarnation): a request is identified by `(holder, seq)`, which is the
 * key of the replicated deduplication table, so a retry after a leader change finds the original
 * outcome instead of making a second grant.
 *
 * Every client command carries `acked`: the holder has the final answer to every request of
 * its own numbered below it, and will never send one of them again. The table forgets those
 * entries, and ignores a late copy of such a request (`stale`): the table stays bounded by
 * what is outstanding, and a duplicate delivered after a release cannot grant again.
 *
 * `expire`, `retire`, `abandon` and `epoch` are proposed by the leader only, from its own timers; applying any
 * command reads no clock, so every node computes the same table.
 */
export type LockCommand =
  | {
      readonly op: 'acquire';
      readonly holder: Owner;
      readonly seq: number;
      readonly acked: number;
      readonly name: string;
      /** The TTL granted: the leader's timer and the holder's deadline both use it. */
      readonly ttlMs: number;
      /** Queue behind the current holder (true) or answer `busy` at once (false: `tryLock`). */
      readonly wait: boolean;
    }
  | {
      readonly op: 'release';
      readonly holder: Owner;
      readonly seq: number;
      readonly acked: number;
      readonly name: string;
      readonly token: bigint;
    }
  | {
      /** One command renews every listed lock of one holder (renewals are batched per node). */
      readonly op: 'renew';
      readonly holder: Owner;
      readonly seq: number;
      readonly acked: number;
      readonly locks: readonly { readonly name: string; readonly token: bigint }[];
    }
  | {
      /** Withdraws acquire request `target`: dequeues it, or releases its grant if it won. */
      readonly op: 'cancel';
      readonly holder: Owner;
      readonly seq: number;
      readonly acked: number;
      readonly target: number;
    }
  | {
      /**
       * The leader's TTL timer for a grant ran out. Applies only if the grant's `version` is
       * still the one the timer was started for: a renew applied in between makes it a no-op.
       */
      readonly op: 'expire';
      readonly name: string;
      readonly token: bigint;
      readonly version: number;
    }
  | {
      /**
       * Forgets the sessions of these holders: they hold nothing, wait for nothing, and the
       * leader saw them idle for `maxTtlMs` (a process that died leaves its session behind).
       * A session that holds or waits is kept whatever the command says.
       */
      readonly op: 'retire';
      readonly holders: readonly Owner[];
    }
  | {
      /**
       * Withdraws every queue place of these holders: the leader has not heard from them for a
       * while (a process that died waiting must not be handed a lock). Their grants stay: those
       * end by release or TTL. A retry of a withdrawn request reads 'ended'.
       */
      readonly op: 'abandon';
      readonly holders: readonly Owner[];
    }
  | {
      /**
       * Sets the token base at the start of a cluster epoch (a whole cluster that restarted
       * without storage): every later token is above every token of earlier epochs.
       */
      readonly op: 'epoch';
      readonly base: bigint;
    };

export type LockCommandOp = LockCommand['op'];

/** A grant as the table holds it. */
export interface Grant {
  readonly name: string;
  readonly holder: Owner;
  /** The acquire request that won it. */
  readonly seq: number;
  readonly token: bigint;
  readonly ttlMs: number;
  /**
   * The apply index of its grant or of its last applied renew: an `expire` carries the version
   * its timer was started for.
   */
  readonly version: number;
}

/**
 * The answer to one client command, sent to the holder's node once the command applied.
 * (`expire`, `retire`, `abandon` and `epoch` have none.)
 */
export type LockReply =
  | {
      readonly type: 'granted';
      readonly seq: number;
      readonly name: string;
      readonly token: bigint;
      readonly ttlMs: number;
      readonly version: number;
    }
  /** Queued behind the holder; a `granted` follows when it is its turn (see `promoted`). */
  | { readonly type: 'queued'; readonly seq: number; readonly name: string }
  /** `wait: false` and the name is held. */
  | { readonly type: 'busy'; readonly seq: number; readonly name: string }
  /** The request's grant already ended (released, expired or cancelled). */
  | { readonly type: 'ended'; readonly seq: number; readonly name: string }
  | { readonly type: 'released'; readonly seq: number; readonly name: string }
  /** Release of a grant this holder does not hold (already released or expired): idempotent. */
  | { readonly type: 'not-held'; readonly seq: number; readonly name: string }
  | {
      readonly type: 'renewed';
      readonly seq: number;
      /** Per listed lock, in order: its new version, or null if the holder no longer holds it. */
      readonly versions: readonly (number | null)[];
    }
  /** A cancel: the request was dequeued (`was: 'queued'`), its grant released, or unknown. */
  | {
      readonly type: 'cancelled';
      readonly seq: number;
      readonly target: number;
      readonly was: 'queued' | 'granted' | 'unknown';
    }
  /** `seq` is below the holder's `acked`: a late copy of a finished request. Nothing changed. */
  | { readonly type: 'stale'; readonly seq: number };

/** What applying one command did, for the node that serves it (the leader) and for the checker. */
export interface ApplyResult {
  /** The apply index of this command (each applied command takes the next one, from 1). */
  readonly index: number;
  /** To the command's holder; null for leader commands. */
  readonly reply: { readonly to: Owner; readonly reply: LockReply } | null;
  /** Waiters that became holders (FIFO), each to be told; their timers start now. */
  readonly promoted: readonly Grant[];
  /** Grants that ended (released, expired or cancelled), so their timers stop. */
  readonly ended: readonly Grant[];
  /** Grants whose version changed (renewed): their timers restart. */
  readonly renewed: readonly Grant[];
}

/** The holder of a name and its queue, for reads served under the leader's lease. */
export interface LockView {
  readonly name: string;
  readonly holder: Owner;
  readonly token: bigint;
  readonly ttlMs: number;
  readonly version: number;
  readonly waiters: number;
}

/** Counts for stats and the memory benchmark. */
export interface LockTableStats {
  readonly held: number;
  readonly waiting: number;
  readonly sessions: number;
  /** Deduplication entries kept (outstanding requests and grants). */
  readonly entries: number;
}

/** Lock names, as users give them: 1 to 256 UTF-16 code units. */
export const MAX_LOCK_NAME_LENGTH = 256;

/** The node a holder lives on: replies go there. */
export function holderNode(holder: Owner): NodeId {
  return holder.node;
}
