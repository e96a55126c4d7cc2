import { InvariantError } from '../errors.js';
import { earliest } from '../paxos/output.js';
import type { Envelope, NodeId, Owner } from '../types.js';
import type { LockReply } from './commands.js';
import { TimeHeap } from './heap.js';
import type { ClientCommand, LockMessage } from './messages.js';
import { commandBytes } from './size.js';

export interface LockClientConfig {
  /** This node in this incarnation: the holder its requests name. */
  readonly owner: Owner;
  readonly maxClockDrift: number;
  readonly marginMs: number;
  /** How long a request waits for an answer before it is sent again. */
  readonly retryMs: number;
  /** Locks listed in one renew command. */
  readonly maxLocksPerRenew?: number;
  /** Bytes of commands in one request frame. */
  readonly maxRequestBytes?: number;
}

export type LockClientEvent =
  /** The lock is this holder's until `deadline` on its own clock. */
  | {
      readonly type: 'granted';
      readonly seq: number;
      readonly name: string;
      readonly token: bigint;
      readonly ttlMs: number;
      readonly deadline: number;
    }
  | { readonly type: 'queued'; readonly seq: number; readonly name: string }
  | { readonly type: 'busy'; readonly seq: number; readonly name: string }
  /**
   * The acquire cannot be granted any more: its grant ended before the holder heard of it, or
   * the request was forgotten as finished. A new acquire may be made.
   */
  | { readonly type: 'failed'; readonly seq: number; readonly name: string }
  | {
      readonly type: 'renewed';
      readonly name: string;
      readonly token: bigint;
      readonly deadline: number;
    }
  /** The lock is no longer this holder's: its deadline passed, or a renew found it gone. */
  | {
      readonly type: 'lost';
      readonly name: string;
      readonly token: bigint;
      readonly reason: 'expired' | 'not-held';
    }
  | {
      readonly type: 'released';
      readonly seq: number;
      readonly name: string;
      readonly token: bigint;
      /** False: the grant had already ended (expired) when the release applied. */
      readonly held: boolean;
    }
  | {
      readonly type: 'cancelled';
      readonly seq: number;
      readonly target: number;
      readonly was: 'queued' | 'granted' | 'unknown';
    }
  /** A grant nobody waited for any more (its acquire was withdrawn) is being given back. */
  | {
      readonly type: 'returned';
      readonly seq: number;
      readonly name: string;
      readonly token: bigint;
    }
  | {
      readonly type: 'view';
      readonly id: number;
      readonly name: string;
      readonly holder: Owner | null;
      readonly token: bigint | null;
      readonly waiters: number;
    };

export interface LockClientSink {
  readonly send: Envelope<LockMessage>[];
  readonly events: LockClientEvent[];
}

/** A command of this holder waiting for its answer. */
interface Request {
  readonly command: ClientCommand;
  /** The first transmission (the holder's deadline counts from it); null: never sent. */
  firstSentAt: number | null;
  sentAt: number | null;
  /** An acquire the table queued: a grant follows when its turn comes. */
  queued: boolean;
}

/** A lock this holder was granted. */
interface Held {
  readonly name: string;
  readonly token: bigint;
  readonly ttlMs: number;
  /** The acquire that won it. */
  readonly seq: number;
  deadline: number;
  renewAt: number;
  /** The renew in flight, if any. */
  renewing: number | null;
  /** Granted after its deadline had passed: handed out only once a renew makes it valid. */
  awaitingValid: boolean;
}

interface Read {
  readonly name: string;
  sentAt: number | null;
}

const DEFAULT_LOCKS_PER_RENEW = 400;
const DEFAULT_REQUEST_BYTES = 32 * 1024;

/**
 * The holder's side of the lock service, for one node in one incarnation (docs/design.md,
 * "Locks as a replicated state machine", Holder side). Pure: every call takes `now`.
 *
 * - A holder's deadline is `firstSend + ttl·(1−ρ)/(1+ρ) − margin` on its own clock, where
 *   `firstSend` is the clock read before the first transmission of the request that won or
 *   renewed the grant (retries never move it), and `ttl` the TTL the leader applied. The
 *   leader's timer for the grant starts only once the command applied, after that send, and
 *   runs `ttl` on a clock at most (1+ρ) fast: the holder's window ends first in real time.
 * - It extends only on a renew that applied, from that renew's first send.
 * - A grant that arrives after its deadline (a long queue) is handed out only once a renew
 *   made it valid again; a lock once lost is never valid again.
 * - Renewals are batched: one command renews every lock due.
 */
export class LockClient {
  readonly config: LockClientConfig;
  readonly #maxLocksPerRenew: number;
  readonly #maxRequestBytes: number;
  #nextSeq = 1;
  /** In seq order (seqs only grow, and a request is added once). */
  readonly #pending = new Map<number, Request>();
  /** When each request is due to be sent (again); stale entries are skipped when they surface. */
  readonly #sends = new TimeHeap<number>();
  /** Cancels waiting for their answer, by seq: their targets hold `acked` down. */
  readonly #cancels = new Map<number, number>();
  /** Releases waiting for their answer (`name\0token`): a grant is given back once. */
  readonly #releasing = new Set<string>();
  readonly #held = new Map<string, Held>();
  readonly #renewals = new TimeHeap<string>();
  readonly #deadlines = new TimeHeap<string>();
  #nextRead = 1;
  readonly #reads = new Map<number, Read>();
  /** Where requests go: the lease's leader, or the one a redirect named. */
  #leader: NodeId | null = null;
  /** The leader the lease last named (`setLeader`). */
  #leaseLeader: NodeId | null = null;
  /** When requests last followed a redirect to the leader it named. */
  #hopAt = Number.NEGATIVE_INFINITY;

  constructor(config: LockClientConfig) {
    this.config = config;
    this.#maxLocksPerRenew = config.maxLocksPerRenew ?? DEFAULT_LOCKS_PER_RENEW;
    this.#maxRequestBytes = config.maxRequestBytes ?? DEFAULT_REQUEST_BYTES;
  }

  /**
   * Where a holder's window from request `seq` starts: its first send (retries never move it).
   * Production never overrides this; it is a hook for the broken variants of the tests
   * (test/sim/lock-mutants.ts), which time the window from the answer or the latest retry.
   */
  protected validFrom(firstSentAt: number, _seq: number, _now: number): number {
    return firstSentAt;
  }

  /** How long a grant of `ttlMs` is valid for its holder, from the first send. */
  validMs(ttlMs: number): number {
    const rho = this.config.maxClockDrift;
    return (ttlMs * (1 - rho)) / (1 + rho) - this.config.marginMs;
  }

  get held(): number {
    return this.#held.size;
  }

  get pending(): number {
    return this.#pending.size;
  }

  /** The token and deadline of a lock this holder holds, if it does (and it is handed out). */
  holding(name: string): { token: bigint; deadline: number } | null {
    const h = this.#held.get(name);
    return h === undefined || h.awaitingValid ? null : { token: h.token, deadline: h.deadline };
  }

  /**
   * Whom the lease names as leader; a change sends everything pending there at once. (Called
   * on every step: the same leader again keeps a redirect's better hint in force.)
   */
  setLeader(leader: NodeId | null, now: number, sink: LockClientSink): void {
    if (leader === this.#leaseLeader) return;
    this.#leaseLeader = leader;
    this.#leader = leader;
    if (leader === null) return;
    for (const [seq, r] of this.#pending) this.#sendNow(seq, r);
    for (const r of this.#reads.values()) r.sentAt = null;
    this.tick(now, sink);
  }

  /** Asks for `name`; returns the request's seq (`cancel` takes it). */
  acquire(name: string, ttlMs: number, wait: boolean, now: number, sink: LockClientSink): number {
    if (this.validMs(ttlMs) <= 0) {
      throw new InvariantError('ttlMs·(1−ρ)/(1+ρ) − marginMs must be positive');
    }
    const seq = this.#nextSeq++;
    this.#add(seq, { op: 'acquire', holder: this.config.owner, seq, acked: 0, name, ttlMs, wait });
    this.tick(now, sink);
    return seq;
  }

  /**
   * Gives a held lock back. It stops being this holder's at once (no more renewals); the
   * `released` event says whether the grant was still held when the release applied.
   */
  release(name: string, token: bigint, now: number, sink: LockClientSink): number | null {
    const h = this.#held.get(name);
    if (h?.token !== token) return null;
    this.#held.delete(name);
    const seq = this.#sendRelease(name, token);
    this.tick(now, sink);
    return seq;
  }

  /** Withdraws acquire `target`: dequeued, or its grant released if it won the race. */
  cancel(target: number, now: number, sink: LockClientSink): void {
    const request = this.#pending.get(target);
    if (request?.command.op !== 'acquire') return;
    this.#settle(target);
    // Never sent: nothing to withdraw.
    if (request.firstSentAt === null) return;
    const seq = this.#nextSeq++;
    this.#add(seq, { op: 'cancel', holder: this.config.owner, seq, acked: 0, target });
    this.tick(now, sink);
  }

  /** Asks the leader who holds `name`; the answer is a `view` event with the returned id. */
  read(name: string, now: number, sink: LockClientSink): number {
    const id = this.#nextRead++;
    this.#reads.set(id, { name, sentAt: null });
    this.tick(now, sink);
    return id;
  }

  /** Drops a read nobody waits for any more. */
  forgetRead(id: number): void {
    this.#reads.delete(id);
  }

  /** Whether `name` is held and handed out, and its deadline still ahead. */
  valid(name: string, token: bigint, now: number): boolean {
    const h = this.#held.get(name);
    return h?.token === token && !h.awaitingValid && now < h.deadline;
  }

  handle(from: NodeId, message: LockMessage, now: number, sink: LockClientSink): void {
    switch (message.type) {
      case 'lock.reply':
        if (message.incarnation !== this.config.owner.incarnation) return;
        for (const reply of message.replies) this.#onReply(reply, now, sink);
        break;
      case 'lock.redirect': {
        if (message.incarnation !== this.config.owner.incarnation) return;
        // That node does not lead. Named another leader: sent there, at once but at most four
        // times a retry interval (nodes whose views disagree must not bounce requests at the
        // speed of the network). Otherwise sent again after the retry interval, to the leader
        // the lease names.
        if (this.#leader !== from) break;
        const better = message.leader !== null && message.leader !== from;
        this.#leader = better ? message.leader : this.#leaseLeader;
        const hop = Math.max(now, this.#hopAt + this.config.retryMs / 4);
        if (better) this.#hopAt = hop;
        const at = better ? hop : now + this.config.retryMs;
        for (const seq of message.seqs) {
          const r = this.#pending.get(seq);
          if (r === undefined) continue;
          // Due at `at`: as if last sent a retry interval before it.
          r.sentAt = at - this.config.retryMs;
          this.#sends.push(at, seq);
        }
        break;
      }
      case 'lock.view': {
        if (message.incarnation !== this.config.owner.incarnation) return;
        const read = this.#reads.get(message.id);
        if (read === undefined) return;
        this.#reads.delete(message.id);
        sink.events.push({
          type: 'view',
          id: message.id,
          name: read.name,
          holder: message.holder,
          token: message.token,
          waiters: message.waiters,
        });
        break;
      }
      case 'lock.request':
      case 'lock.read':
        break;
      default: {
        const never: never = message;
        throw new InvariantError(`unknown lock message ${JSON.stringify(never)}`);
      }
    }
    this.tick(now, sink);
  }

  /** Loses what expired, renews what is due, and sends what waits. */
  tick(now: number, sink: LockClientSink): void {
    this.#expire(now, sink);
    this.#renew(now);
    this.#flush(now, sink);
  }

  wakeAt(): number | null {
    let at = earliest(this.#renewals.peekTime(), this.#deadlines.peekTime());
    if (this.#leader !== null) {
      const send = this.#sends.peekTime();
      // Due at once (never sent) reads as 0, as every clock reading is above it.
      if (send !== null) at = earliest(at, Math.max(0, send));
      for (const r of this.#reads.values()) {
        at = earliest(at, r.sentAt === null ? 0 : r.sentAt + this.config.retryMs);
      }
    }
    return at;
  }

  // -------------------------------------------------------------------------------------------

  #add(seq: number, command: ClientCommand): void {
    const request: Request = { command, firstSentAt: null, sentAt: null, queued: false };
    this.#pending.set(seq, request);
    if (command.op === 'cancel') this.#cancels.set(seq, command.target);
    if (command.op === 'release') this.#releasing.add(releaseKey(command.name, command.token));
    this.#sendNow(seq, request);
  }

  /** Marks a request to go out on the next flush. */
  #sendNow(seq: number, request: Request): void {
    request.sentAt = null;
    this.#sends.push(Number.NEGATIVE_INFINITY, seq);
  }

  /** A request has its final answer. */
  #settle(seq: number): void {
    const request = this.#pending.get(seq);
    if (request === undefined) return;
    this.#pending.delete(seq);
    const { command } = request;
    if (command.op === 'cancel') this.#cancels.delete(seq);
    if (command.op === 'release') this.#releasing.delete(releaseKey(command.name, command.token));
  }

  /** Queues a release (sent by the flush that follows). */
  #sendRelease(name: string, token: bigint): number {
    const seq = this.#nextSeq++;
    this.#add(seq, { op: 'release', holder: this.config.owner, seq, acked: 0, name, token });
    return seq;
  }

  /** Releases a grant nobody wants (once per token; the tick that follows sends it). */
  #giveBack(name: string, token: bigint, sink: LockClientSink): void {
    if (this.#releasing.has(releaseKey(name, token))) return;
    const seq = this.#sendRelease(name, token);
    sink.events.push({ type: 'returned', seq, name, token });
  }

  #onReply(reply: LockReply, now: number, sink: LockClientSink): void {
    const request = this.#pending.get(reply.seq);
    switch (reply.type) {
      case 'granted': {
        if (request?.command.op !== 'acquire') {
          // A grant this holder no longer wants (its acquire was cancelled or timed out), or a
          // duplicate of one it has: the first is given back at once.
          const h = this.#held.get(reply.name);
          if (h?.token !== reply.token) this.#giveBack(reply.name, reply.token, sink);
          return;
        }
        this.#settle(reply.seq);
        const first = request.firstSentAt;
        // Answered before it was ever sent: not an answer to this holder's request.
        if (first === null) {
          this.#giveBack(reply.name, reply.token, sink);
          return;
        }
        const from = this.validFrom(first, reply.seq, now);
        const deadline = from + this.validMs(reply.ttlMs);
        const held: Held = {
          name: reply.name,
          token: reply.token,
          ttlMs: reply.ttlMs,
          seq: reply.seq,
          deadline,
          renewAt: from + this.validMs(reply.ttlMs) / 3,
          renewing: null,
          awaitingValid: now >= deadline,
        };
        this.#held.set(reply.name, held);
        if (held.awaitingValid) {
          // Valid only from a renew's first send: renew at once, hand it out when it applied.
          held.renewAt = now;
          this.#renewals.push(now, reply.name);
          return;
        }
        this.#renewals.push(held.renewAt, reply.name);
        this.#deadlines.push(deadline, reply.name);
        sink.events.push({
          type: 'granted',
          seq: reply.seq,
          name: reply.name,
          token: reply.token,
          ttlMs: reply.ttlMs,
          deadline,
        });
        return;
      }
      case 'queued':
        if (request?.command.op !== 'acquire' || request.queued) return;
        request.queued = true;
        sink.events.push({ type: 'queued', seq: reply.seq, name: reply.name });
        return;
      case 'busy':
        if (request?.command.op !== 'acquire') return;
        this.#settle(reply.seq);
        sink.events.push({ type: 'busy', seq: reply.seq, name: reply.name });
        return;
      case 'ended':
        if (request?.command.op !== 'acquire') return;
        this.#settle(reply.seq);
        sink.events.push({ type: 'failed', seq: reply.seq, name: reply.name });
        return;
      case 'released':
      case 'not-held':
        if (request?.command.op !== 'release') return;
        this.#settle(reply.seq);
        sink.events.push({
          type: 'released',
          seq: reply.seq,
          name: request.command.name,
          token: request.command.token,
          held: reply.type === 'released',
        });
        return;
      case 'renewed':
        if (request?.command.op !== 'renew') return;
        this.#settle(reply.seq);
        this.#onRenewed(request, reply.versions, now, sink);
        return;
      case 'cancelled':
        if (request?.command.op !== 'cancel') return;
        this.#settle(reply.seq);
        sink.events.push({
          type: 'cancelled',
          seq: reply.seq,
          target: reply.target,
          was: reply.was,
        });
        return;
      case 'stale':
        // A request this holder had already finished: nothing waits on it.
        if (request === undefined) return;
        this.#settle(reply.seq);
        if (request.command.op === 'acquire') {
          sink.events.push({ type: 'failed', seq: reply.seq, name: request.command.name });
        }
        return;
      default: {
        const never: never = reply;
        throw new InvariantError(`unknown lock reply ${JSON.stringify(never)}`);
      }
    }
  }

  #onRenewed(
    request: Request,
    versions: readonly (number | null)[],
    now: number,
    sink: LockClientSink,
  ): void {
    const first = request.firstSentAt;
    if (request.command.op !== 'renew' || first === null) return;
    request.command.locks.forEach(({ name, token }, i) => {
      const h = this.#held.get(name);
      if (h?.token !== token || h.renewing !== request.command.seq) return;
      h.renewing = null;
      if (!h.awaitingValid && now >= h.deadline) {
        // Its deadline passed before the answer came: lost, and never valid again, whatever
        // the renew says (someone may have been granted it since). Still held at the table if
        // the renew applied: given back, so the next waiter need not wait out the TTL.
        this.#held.delete(name);
        sink.events.push({ type: 'lost', name, token, reason: 'expired' });
        const version = versions[i];
        if (version !== null && version !== undefined) this.#giveBack(name, token, sink);
        return;
      }
      const version = versions[i];
      if (version === null || version === undefined) {
        this.#held.delete(name);
        if (h.awaitingValid) {
          sink.events.push({ type: 'failed', seq: h.seq, name });
        } else {
          sink.events.push({ type: 'lost', name, token, reason: 'not-held' });
        }
        return;
      }
      const from = this.validFrom(first, request.command.seq, now);
      const deadline = from + this.validMs(h.ttlMs);
      if (deadline > h.deadline) h.deadline = deadline;
      h.renewAt = from + this.validMs(h.ttlMs) / 3;
      this.#renewals.push(h.renewAt, name);
      this.#deadlines.push(h.deadline, name);
      if (h.awaitingValid) {
        if (now >= h.deadline) {
          // Even the renew's window is over: it renews again at once.
          h.renewAt = now;
          this.#renewals.push(now, name);
          return;
        }
        h.awaitingValid = false;
        sink.events.push({
          type: 'granted',
          seq: h.seq,
          name,
          token,
          ttlMs: h.ttlMs,
          deadline: h.deadline,
        });
      } else {
        sink.events.push({ type: 'renewed', name, token, deadline: h.deadline });
      }
    });
  }

  /** Drops every handed-out lock whose deadline has passed. */
  #expire(now: number, sink: LockClientSink): void {
    for (;;) {
      const at = this.#deadlines.peekTime();
      if (at === null || at > now) return;
      const entry = this.#deadlines.pop();
      if (entry === null) return;
      const h = this.#held.get(entry.key);
      if (h === undefined || h.awaitingValid || h.deadline > now) continue;
      this.#held.delete(entry.key);
      sink.events.push({ type: 'lost', name: h.name, token: h.token, reason: 'expired' });
      // The leader may still hold it for this holder (its renewals did not get through in
      // time): given back, so the next waiter need not wait out the leader's timer.
      this.#giveBack(h.name, h.token, sink);
    }
  }

  /** Every lock due for renewal (or nearly: batches form) goes into renew commands. */
  #renew(now: number): void {
    const due: Held[] = [];
    const horizon = now + this.config.retryMs;
    for (;;) {
      const at = this.#renewals.peekTime();
      if (at === null || at > horizon) break;
      const entry = this.#renewals.pop();
      if (entry === null) break;
      const h = this.#held.get(entry.key);
      if (h?.renewing !== null || h.renewAt > horizon) continue;
      due.push(h);
    }
    for (let i = 0; i < due.length; i += this.#maxLocksPerRenew) {
      const batch = due.slice(i, i + this.#maxLocksPerRenew);
      const seq = this.#nextSeq++;
      for (const h of batch) h.renewing = seq;
      this.#add(seq, {
        op: 'renew',
        holder: this.config.owner,
        seq,
        acked: 0,
        locks: batch.map((h) => ({ name: h.name, token: h.token })),
      });
    }
  }

  /** Sends what has not been sent, or waited a retry interval, to the leader it knows. */
  #flush(now: number, sink: LockClientSink): void {
    const leader = this.#leader;
    if (leader === null) return;
    const acked = this.#acked();
    let batch: ClientCommand[] = [];
    let bytes = 0;
    for (;;) {
      const at = this.#sends.peekTime();
      if (at === null || at > now) break;
      const seq = this.#sends.pop()?.key;
      if (seq === undefined) break;
      const r = this.#pending.get(seq);
      // Gone, or sent since this entry was pushed (a second entry finds it sent).
      if (r === undefined) continue;
      if (r.sentAt !== null && (r.sentAt === now || now < r.sentAt + this.config.retryMs)) {
        continue;
      }
      // The clock was read before this send: the deadline counts from here.
      r.firstSentAt ??= now;
      r.sentAt = now;
      this.#sends.push(now + this.config.retryMs, seq);
      const command = { ...r.command, acked };
      const size = commandBytes(command);
      if (batch.length > 0 && bytes + size > this.#maxRequestBytes) {
        sink.send.push({ to: leader, message: { type: 'lock.request', commands: batch } });
        batch = [];
        bytes = 0;
      }
      batch.push(command);
      bytes += size;
    }
    if (batch.length > 0) {
      sink.send.push({ to: leader, message: { type: 'lock.request', commands: batch } });
    }
    for (const [id, read] of this.#reads) {
      if (read.sentAt !== null && now < read.sentAt + this.config.retryMs) continue;
      read.sentAt = now;
      sink.send.push({
        to: leader,
        message: {
          type: 'lock.read',
          incarnation: this.config.owner.incarnation,
          id,
          name: read.name,
        },
      });
    }
  }

  /**
   * Every request numbered below this has its final answer here. An acquire being cancelled
   * counts as unanswered until the cancel is: the table must still know it when the cancel
   * applies, or the cancel finds nothing to withdraw and the waiter stays queued.
   */
  #acked(): number {
    let lowest = this.#nextSeq;
    // The lowest pending seq is the first: requests are added in seq order.
    for (const seq of this.#pending.keys()) {
      lowest = seq;
      break;
    }
    for (const target of this.#cancels.values()) if (target < lowest) lowest = target;
    return lowest;
  }
}

function releaseKey(name: string, token: bigint): string {
  return `${name}\u0000${token}`;
}
