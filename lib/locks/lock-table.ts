import { isValidId } from '../codec/messages.js';
import { InvariantError } from '../errors.js';
import type { Owner } from '../types.js';
import type {
  ApplyResult,
  Grant,
  LockCommand,
  LockReply,
  LockTableStats,
  LockView,
} from './commands.js';
import {
  isIncarnation,
  isLockName,
  isSeq,
  isTtl,
  MAX_TOKEN_BASE,
  parseSnapshotText,
  readSnapshot,
  SNAPSHOT_FORMAT,
  stringifySnapshot,
  type EntrySnapshot,
  type LockTableSnapshot,
} from './snapshot.js';

/**
 * The lock table: the state machine every node applies to the chosen commands, in log order.
 *
 * Applying reads no clock and draws no randomness, and every iteration that can reach a result
 * or a snapshot runs in insertion order, which is the same on every node because every node
 * inserts in apply order: the same commands give the same table, the same replies and the same
 * snapshot everywhere. Time enters only through `expire`, proposed by the leader.
 *
 * Each client command first finds its holder's session (created on first sight): `acked` moves
 * up, deduplication entries below it are forgotten, and a command below it is `stale`. A request
 * `(holder, seq)` already applied is a retry: it changes nothing and reads its entry. An
 * acquire's entry *is* its grant or queue place while it holds or waits, so a retry or a cancel
 * finds it in O(1) and no second index is kept; grants and queues stand on their own, so an ack
 * that drops the entry never drops the grant. (A cancel whose target is below `acked` is
 * therefore 'unknown': the holder had that request's final answer, and releases a grant it won.)
 *
 * Costs: acquire, release, renew (per listed lock), cancel and expire are O(1) (queues are
 * doubly linked lists); forgetting acked entries costs O(min(acked advance, entries of the
 * session)), which is O(1) per request for a holder that numbers its requests without gaps.
 */
export class LockTable {
  #index = 0;
  #base = 0n;
  #counter = 0n;
  /** By owner key (`node/incarnation`), in order of creation. */
  readonly #sessions = new Map<string, Session>();
  /** The current grant of each held name. */
  readonly #grants = new Map<string, Grant>();
  /** The waiters of each name that has some (a name with waiters is always held). */
  readonly #queues = new Map<string, Queue>();
  #waiting = 0;
  #entries = 0;

  /** The apply index of the last applied command (0 before the first). */
  get index(): number {
    return this.#index;
  }

  /** The token of the last grant (the base, if none since it was set). */
  /** The token base of the current epoch: tokens granted in it are above it. */
  get base(): bigint {
    return this.#base;
  }

  get lastToken(): bigint {
    return this.#base + this.#counter;
  }

  /** Applies the next command of the log. Every call takes the next apply index. */
  apply(command: LockCommand): ApplyResult {
    const index = ++this.#index;
    const out: Outcome = { index, reply: null, promoted: NONE, ended: NONE, renewed: NONE };
    // A command outside the rules changes nothing but the index, the same on every node: the
    // log's decoder should have refused it, and no state it leaves could be snapshotted.
    if (!isValidCommand(command)) return out;
    switch (command.op) {
      case 'acquire':
      case 'release':
      case 'renew':
      case 'cancel':
        this.#applyClient(command, out);
        break;
      case 'expire': {
        const grant = this.#grants.get(command.name);
        // The version check makes a renew that won the race with the leader's timer win.
        if (grant?.token === command.token && grant.version === command.version) {
          this.#end(grant, out);
        }
        break;
      }
      case 'retire':
        for (const holder of command.holders) {
          const key = ownerKey(holder);
          const session = this.#sessions.get(key);
          if (session !== undefined && isIdleSession(session)) {
            this.#entries -= session.entries.size;
            this.#sessions.delete(key);
          }
        }
        break;
      case 'abandon': {
        // Queue places are found from the queues (a place outlives its entry once acked).
        const sessions = new Set<Session>();
        for (const holder of command.holders) {
          const session = this.#sessions.get(ownerKey(holder));
          if (session !== undefined && session.waiting > 0) sessions.add(session);
        }
        if (sessions.size === 0) break;
        for (const queue of [...this.#queues.values()]) {
          for (let w = queue.head; w !== null;) {
            const next = w.next;
            if (sessions.has(w.session)) this.#dequeue(w);
            w = next;
          }
        }
        break;
      }
      case 'epoch':
        // Tokens never go back: a base at or below the last token is ignored.
        if (command.base > this.#base + this.#counter) {
          this.#base = command.base;
          this.#counter = 0n;
          this.#endEpoch(out);
        }
        break;
      default:
        command satisfies never;
    }
    return out;
  }

  /** The holder and queue length of `name`, or null if it is free. */
  view(name: string): LockView | null {
    const grant = this.#grants.get(name);
    if (grant === undefined) return null;
    return {
      name,
      holder: grant.holder,
      token: grant.token,
      ttlMs: grant.ttlMs,
      version: grant.version,
      waiters: this.#queues.get(name)?.length ?? 0,
    };
  }

  /** Every current grant, in table order (a new leader restarts their TTL timers). */
  grants(): IterableIterator<Grant> {
    return this.#grants.values();
  }

  /** Whether `holder` holds nothing and waits for nothing (true for an unknown holder). */
  isIdle(holder: Owner): boolean {
    const session = this.#sessions.get(ownerKey(holder));
    return session === undefined || isIdleSession(session);
  }

  /**
   * What applying `command` again would answer, if the table already applied it (or it is
   * stale); null for a request the table does not know. Changes nothing: the leader answers a
   * holder's retry from here instead of sending it through the log again.
   */
  replay(command: ClientCommand): LockReply | null {
    const session = this.#sessions.get(ownerKey(command.holder));
    if (session === undefined) return null;
    if (command.seq < session.acked) return { type: 'stale', seq: command.seq };
    const entry = session.entries.get(command.seq);
    return entry === undefined ? null : replay(command.seq, entry, command);
  }

  /** How many deduplication entries `holder` keeps: answers it has not acknowledged yet. */
  outstanding(holder: Owner): number {
    return this.#sessions.get(ownerKey(holder))?.entries.size ?? 0;
  }

  /** Every holder with a place in some queue, in order of creation. */
  *waitingHolders(): IterableIterator<Owner> {
    for (const session of this.#sessions.values()) {
      if (session.waiting > 0) yield session.holder;
    }
  }

  /** Every holder with a session, in order of creation. */
  *sessions(): IterableIterator<Owner> {
    for (const session of this.#sessions.values()) yield session.holder;
  }

  stats(): LockTableStats {
    return {
      held: this.#grants.size,
      waiting: this.#waiting,
      sessions: this.#sessions.size,
      entries: this.#entries,
    };
  }

  /** Everything a later command can observe, as JSON-safe data (see lib/locks/snapshot.ts). */
  snapshot(): LockTableSnapshot {
    // Grants and waiters name their holder by its place in `sessions`.
    const order = new Map<Owner, number>();
    const sessions = [...this.#sessions.values()].map((session, i) => {
      order.set(session.holder, i);
      return {
        node: session.holder.node,
        incarnation: session.holder.incarnation,
        acked: session.acked,
        entries: Array.from(session.entries, ([seq, entry]) => entrySnapshot(seq, entry)),
      };
    });
    const grants = Array.from(this.#grants.values(), (grant) => ({
      name: grant.name,
      holder: order.get(grant.holder) ?? -1,
      seq: grant.seq,
      token: grant.token.toString(),
      ttlMs: grant.ttlMs,
      version: grant.version,
    }));
    const queues = Array.from(this.#queues, ([name, queue]) => {
      const waiters = [];
      for (let w = queue.head; w !== null; w = w.next) {
        waiters.push({ holder: order.get(w.session.holder) ?? -1, seq: w.seq, ttlMs: w.ttlMs });
      }
      return { name, waiters };
    });
    return {
      format: SNAPSHOT_FORMAT,
      index: this.#index,
      base: this.#base.toString(),
      counter: this.#counter.toString(),
      sessions,
      grants,
      queues,
    };
  }

  /**
   * A table equal to the one that took `snapshot`: it answers every later command the same way.
   * Throws `InvalidMessageError` if `snapshot` is not one a table could have produced.
   */
  static restore(snapshot: unknown): LockTable {
    const data = readSnapshot(snapshot);
    // `this`: a subclass (a broken variant of the tests) restores into its own kind.
    const table = new this();
    table.#index = data.index;
    table.#base = BigInt(data.base);
    table.#counter = BigInt(data.counter);
    const sessions = data.sessions.map((s) => {
      const session = newSession({ node: s.node, incarnation: s.incarnation });
      session.acked = s.acked;
      table.#sessions.set(ownerKey(session.holder), session);
      return session;
    });
    // readSnapshot checked every holder index, and that places and entries agree.
    const sessionAt = (i: number): Session => {
      const session = sessions[i];
      if (session === undefined) throw new InvariantError(`snapshot: no session ${i}`);
      return session;
    };
    const places = sessions.map(() => new Map<number, Grant | Waiter>());
    for (const g of data.grants) {
      const session = sessionAt(g.holder);
      const grant = newGrant(g.name, session.holder, g.seq, BigInt(g.token), g.ttlMs, g.version);
      table.#grants.set(g.name, grant);
      session.held += 1;
      places[g.holder]?.set(g.seq, grant);
    }
    for (const q of data.queues) {
      const queue: Queue = { head: null, tail: null, length: 0 };
      for (const w of q.waiters) {
        const session = sessionAt(w.holder);
        const waiter = enqueue(queue, q.name, session, w.seq, w.ttlMs);
        session.waiting += 1;
        places[w.holder]?.set(w.seq, waiter);
      }
      table.#queues.set(q.name, queue);
      table.#waiting += queue.length;
    }
    data.sessions.forEach((s, i) => {
      const session = sessionAt(i);
      for (const entry of s.entries) {
        const place = places[i]?.get(entry.seq);
        session.entries.set(entry.seq, entryFrom(entry, place));
      }
      table.#entries += session.entries.size;
    });
    return table;
  }

  // -------------------------------------------------------------------------------------------

  #applyClient(command: ClientCommand, out: Outcome): void {
    const session = this.#session(command.holder);
    if (command.acked > session.acked) this.#ack(session, command.acked);
    const seq = command.seq === 0 ? 0 : command.seq;
    if (seq < session.acked) {
      out.reply = { to: session.holder, reply: { type: 'stale', seq } };
      return;
    }
    const entry = session.entries.get(seq);
    if (entry !== undefined) {
      out.reply = { to: session.holder, reply: replay(seq, entry, command) };
      return;
    }
    let reply: LockReply;
    switch (command.op) {
      case 'acquire':
        reply = this.#acquire(session, seq, command, out);
        break;
      case 'release': {
        const grant = this.#grants.get(command.name);
        const held = grant?.token === command.token && grant.holder === session.holder;
        if (held) this.#end(grant, out);
        reply = this.#record(session, seq, {
          type: held ? 'released' : 'not-held',
          seq,
          name: command.name,
        });
        break;
      }
      case 'renew': {
        const versions = this.#renew(session, command.locks, out);
        reply = this.#record(session, seq, { type: 'renewed', seq, versions });
        break;
      }
      case 'cancel': {
        const target = command.target === 0 ? 0 : command.target;
        reply = this.#record(session, seq, this.#cancel(session, seq, target, out));
        break;
      }
      default:
        command satisfies never;
        return;
    }
    out.reply = { to: session.holder, reply };
  }

  #acquire(session: Session, seq: number, command: AcquireCommand, out: Outcome): LockReply {
    const { name } = command;
    if (!this.#grants.has(name)) {
      const token = this.#nextToken();
      const grant = newGrant(name, session.holder, seq, token, command.ttlMs, out.index);
      this.#grants.set(name, grant);
      session.held += 1;
      this.#record(session, seq, grant);
      return grantedReply(grant);
    }
    // Locks are not reentrant: the holder itself queues (or is busy) like anyone else.
    if (!command.wait) {
      this.#record(session, seq, settled(name, 'busy'));
      return { type: 'busy', seq, name };
    }
    let queue = this.#queues.get(name);
    if (queue === undefined) {
      queue = { head: null, tail: null, length: 0 };
      this.#queues.set(name, queue);
    }
    const waiter = enqueue(queue, name, session, seq, command.ttlMs);
    session.waiting += 1;
    this.#waiting += 1;
    this.#record(session, seq, waiter);
    return { type: 'queued', seq, name };
  }

  #renew(
    session: Session,
    locks: readonly { readonly name: string; readonly token: bigint }[],
    out: Outcome,
  ): (number | null)[] {
    const renewed: Grant[] = [];
    const versions = locks.map(({ name, token }) => {
      const grant = this.#grants.get(name);
      if (grant?.token !== token || grant.holder !== session.holder) return null;
      // A lock listed twice is renewed once.
      if (grant.version !== out.index) {
        const next = newGrant(name, grant.holder, grant.seq, token, grant.ttlMs, out.index);
        this.#grants.set(name, next);
        if (session.entries.get(grant.seq) === grant) session.entries.set(grant.seq, next);
        renewed.push(next);
      }
      return out.index;
    });
    if (renewed.length > 0) out.renewed = renewed;
    return versions;
  }

  #cancel(session: Session, seq: number, target: number, out: Outcome): StoredReply {
    const entry = session.entries.get(target);
    let was: 'queued' | 'granted' | 'unknown' = 'unknown';
    // Ending a grant or a queue place leaves an 'ended' entry behind.
    if (entry instanceof Waiter) {
      this.#dequeue(entry);
      was = 'queued';
    } else if (entry !== undefined && isGrant(entry)) {
      this.#end(entry, out);
      was = 'granted';
    } else if (entry?.type === 'acquire') {
      session.entries.set(target, settled(entry.name, 'ended'));
    } else if (entry === undefined && target >= session.acked && target !== seq) {
      // A cancel applied before its acquire (a retry that reached another leader late): the
      // acquire, when it comes, is a retry that reads 'ended' instead of a grant nobody awaits.
      this.#record(session, target, settled(null, 'ended'));
    }
    return { type: 'cancelled', seq, target, was };
  }

  /** Ends `grant` and hands the name to the first waiter, if any. */
  #end(grant: Grant, out: Outcome): void {
    const owner = this.#sessions.get(ownerKey(grant.holder));
    if (owner !== undefined) {
      owner.held -= 1;
      if (owner.entries.get(grant.seq) === grant) {
        owner.entries.set(grant.seq, settled(grant.name, 'ended'));
      }
    }
    out.ended = [grant];
    const first = this.#queues.get(grant.name)?.head ?? null;
    if (first === null) {
      this.#grants.delete(grant.name);
      return;
    }
    this.#unlink(first);
    const { session, seq } = first;
    const next = newGrant(
      grant.name,
      session.holder,
      seq,
      this.#nextToken(),
      first.ttlMs,
      out.index,
    );
    // Set over the existing key: the name keeps its place in the table's order.
    this.#grants.set(grant.name, next);
    session.held += 1;
    if (session.entries.get(seq) === first) session.entries.set(seq, next);
    out.promoted = [next];
  }

  /**
   * A new epoch ends every grant and every waiter of the one before: the table it starts from
   * may have lost what a majority forgot (grants released or made in lost slots), so none of it
   * is trusted. Their holders learn it on their next renew ('not-held') or retry ('ended').
   */
  #endEpoch(out: Outcome): void {
    for (const queue of [...this.#queues.values()]) {
      for (let w = queue.head; w !== null; w = queue.head) this.#dequeue(w);
    }
    const ended: Grant[] = [];
    for (const grant of this.#grants.values()) {
      const owner = this.#sessions.get(ownerKey(grant.holder));
      if (owner !== undefined) {
        owner.held -= 1;
        if (owner.entries.get(grant.seq) === grant) {
          owner.entries.set(grant.seq, settled(grant.name, 'ended'));
        }
      }
      ended.push(grant);
    }
    this.#grants.clear();
    // In token order: the same on every node, whatever order the names were first used in.
    out.ended = ended.sort((a, b) => (a.token < b.token ? -1 : a.token > b.token ? 1 : 0));
  }

  /** Withdraws `waiter`: out of its queue, and its entry (if kept) reads 'ended'. */
  #dequeue(waiter: Waiter): void {
    this.#unlink(waiter);
    const { session, seq } = waiter;
    if (session.entries.get(seq) === waiter)
      session.entries.set(seq, settled(waiter.name, 'ended'));
  }

  /** Takes `waiter` out of its queue, wherever it stands (O(1): the queue is doubly linked). */
  #unlink(waiter: Waiter): void {
    const queue = this.#queues.get(waiter.name);
    if (queue === undefined) return;
    if (waiter.prev === null) queue.head = waiter.next;
    else waiter.prev.next = waiter.next;
    if (waiter.next === null) queue.tail = waiter.prev;
    else waiter.next.prev = waiter.prev;
    waiter.prev = null;
    waiter.next = null;
    queue.length -= 1;
    if (queue.length === 0) this.#queues.delete(waiter.name);
    waiter.session.waiting -= 1;
    this.#waiting -= 1;
  }

  #nextToken(): bigint {
    this.#counter += 1n;
    return this.mintToken(this.#base, this.#counter);
  }

  /**
   * The token of a grant: the epoch's base plus the grant counter (counted already). Production
   * never overrides this; it is a hook for the broken variants of the tests
   * (test/sim/lock-mutants.ts), which take tokens from elsewhere.
   */
  protected mintToken(base: bigint, counter: bigint): bigint {
    return base + counter;
  }

  #session(holder: Owner): Session {
    const key = ownerKey(holder);
    let session = this.#sessions.get(key);
    if (session === undefined) {
      session = newSession({ node: holder.node, incarnation: holder.incarnation });
      this.#sessions.set(key, session);
    }
    return session;
  }

  /** Raises `acked` and forgets the entries below it (their grants and places stay). */
  #ack(session: Session, acked: number): void {
    const from = session.acked;
    session.acked = acked;
    const { entries } = session;
    if (entries.size === 0) return;
    const before = entries.size;
    // Entries below the old `acked` are gone already: walk the seqs in between, or the entries,
    // whichever is fewer.
    if (acked - from <= entries.size) {
      for (let seq = from; seq < acked; seq++) entries.delete(seq);
    } else {
      for (const seq of entries.keys()) if (seq < acked) entries.delete(seq);
    }
    this.#entries -= before - entries.size;
  }

  #record<E extends Entry>(session: Session, seq: number, entry: E): E {
    session.entries.set(seq, entry);
    this.#entries += 1;
    return entry;
  }
}

// ---------------------------------------------------------------------------------------------
// Internal state

interface Session {
  readonly holder: Owner;
  /** Every request below it has its final answer: its entry is gone, a copy of it is stale. */
  acked: number;
  /** The deduplication table: what each request at or above `acked` became. */
  readonly entries: Map<number, Entry>;
  /** How many names it holds, and how many queue places it has. */
  held: number;
  waiting: number;
}

/**
 * What a request became. An acquire's entry is its grant while it holds, its queue place while
 * it waits, then a settled acquire; other requests keep their first reply, given again to a
 * retry.
 */
type Entry = Grant | Waiter | SettledAcquire | StoredReply;

/** An acquire that holds and waits for nothing: it was busy, or has ended. */
interface SettledAcquire {
  readonly type: 'acquire';
  /** Null when a cancel came before the acquire it withdraws. */
  readonly name: string | null;
  readonly state: 'busy' | 'ended';
}

type StoredReply = Extract<LockReply, { type: 'released' | 'not-held' | 'renewed' | 'cancelled' }>;

/** A queue place: a node of its name's doubly linked FIFO list. */
class Waiter {
  prev: Waiter | null;
  next: Waiter | null = null;

  constructor(
    readonly name: string,
    readonly session: Session,
    readonly seq: number,
    readonly ttlMs: number,
    prev: Waiter | null,
  ) {
    this.prev = prev;
  }
}

interface Queue {
  head: Waiter | null;
  tail: Waiter | null;
  length: number;
}

/** An ApplyResult under construction. */
interface Outcome {
  readonly index: number;
  reply: { readonly to: Owner; readonly reply: LockReply } | null;
  promoted: readonly Grant[];
  ended: readonly Grant[];
  renewed: readonly Grant[];
}

type ClientCommand = Extract<LockCommand, { op: 'acquire' | 'release' | 'renew' | 'cancel' }>;
type AcquireCommand = Extract<LockCommand, { op: 'acquire' }>;

const NONE: readonly Grant[] = Object.freeze([]);

function newSession(holder: Owner): Session {
  return { holder: Object.freeze(holder), acked: 0, entries: new Map(), held: 0, waiting: 0 };
}

/** Every grant has this one shape (one hidden class: 100,000 grants stay small). */
function newGrant(
  name: string,
  holder: Owner,
  seq: number,
  token: bigint,
  ttlMs: number,
  version: number,
): Grant {
  return { name, holder, seq, token, ttlMs, version };
}

function settled(name: string | null, state: 'busy' | 'ended'): SettledAcquire {
  return { type: 'acquire', name, state };
}

function isGrant(entry: Entry): entry is Grant {
  return !(entry instanceof Waiter) && !('type' in entry);
}

function enqueue(queue: Queue, name: string, session: Session, seq: number, ttlMs: number): Waiter {
  const waiter = new Waiter(name, session, seq, ttlMs, queue.tail);
  if (queue.tail === null) queue.head = waiter;
  else queue.tail.next = waiter;
  queue.tail = waiter;
  queue.length += 1;
  return waiter;
}

function isIdleSession(session: Session): boolean {
  return session.held === 0 && session.waiting === 0;
}

function ownerKey(holder: Owner): string {
  // Incarnations are hex: the last '/' separates the two parts whatever the node id holds.
  return `${holder.node}/${holder.incarnation}`;
}

function grantedReply(grant: Grant): LockReply {
  return {
    type: 'granted',
    seq: grant.seq,
    name: grant.name,
    token: grant.token,
    ttlMs: grant.ttlMs,
    version: grant.version,
  };
}

/** The answer to a retry of request `seq`, from its entry. */
function replay(seq: number, entry: Entry, command: ClientCommand): LockReply {
  if (entry instanceof Waiter) return { type: 'queued', seq, name: entry.name };
  if (isGrant(entry)) return grantedReply(entry);
  if (entry.type !== 'acquire') return entry;
  const name = entry.name ?? ('name' in command ? command.name : '');
  return { type: entry.state, seq, name };
}

function entrySnapshot(seq: number, entry: Entry): EntrySnapshot {
  if (entry instanceof Waiter) return { seq, op: 'acquire', name: entry.name, state: 'queued' };
  if (isGrant(entry)) return { seq, op: 'acquire', name: entry.name, state: 'granted' };
  switch (entry.type) {
    case 'acquire':
      return { seq, op: 'acquire', name: entry.name, state: entry.state };
    case 'released':
    case 'not-held':
      return { seq, op: 'release', name: entry.name, released: entry.type === 'released' };
    case 'renewed':
      return { seq, op: 'renew', versions: entry.versions };
    case 'cancelled':
      return { seq, op: 'cancel', target: entry.target, was: entry.was };
    default:
      return entry satisfies never;
  }
}

/** An entry of a snapshot; `place` is the request's grant or queue place, if it has one. */
function entryFrom(entry: EntrySnapshot, place: Grant | Waiter | undefined): Entry {
  switch (entry.op) {
    case 'acquire':
      if (entry.state === 'granted' || entry.state === 'queued') {
        if (place === undefined) throw new InvariantError('snapshot: an entry without its place');
        return place;
      }
      return settled(entry.name, entry.state);
    case 'release':
      return { type: entry.released ? 'released' : 'not-held', seq: entry.seq, name: entry.name };
    case 'renew':
      return { type: 'renewed', seq: entry.seq, versions: entry.versions };
    case 'cancel':
      return { type: 'cancelled', seq: entry.seq, target: entry.target, was: entry.was };
    default:
      return entry satisfies never;
  }
}

// ---------------------------------------------------------------------------------------------
// Commands outside the rules

function isOwner(value: unknown): value is Owner {
  if (typeof value !== 'object' || value === null) return false;
  const { node, incarnation } = value as Partial<Record<keyof Owner, unknown>>;
  return isValidId(node) && isIncarnation(incarnation);
}

/** Whether `command` keeps to the rules a snapshot is held to (names, TTLs, seqs, bases). */
function isValidCommand(command: LockCommand): boolean {
  const c = command as unknown as Record<string, unknown>;
  switch (command.op) {
    case 'acquire':
    case 'release':
    case 'renew':
    case 'cancel':
      if (!isOwner(c['holder']) || !isSeq(c['seq']) || !isSeq(c['acked'])) return false;
      break;
    case 'expire':
      return (
        typeof c['name'] === 'string' &&
        typeof c['token'] === 'bigint' &&
        typeof c['version'] === 'number'
      );
    case 'retire':
    case 'abandon':
      return Array.isArray(c['holders']) && (c['holders'] as unknown[]).every(isOwner);
    case 'epoch':
      return typeof c['base'] === 'bigint' && c['base'] >= 0n && c['base'] <= MAX_TOKEN_BASE;
    default:
      return false;
  }
  switch (command.op) {
    case 'acquire':
      return isLockName(c['name']) && isTtl(c['ttlMs']) && typeof c['wait'] === 'boolean';
    case 'release':
      return isLockName(c['name']) && typeof c['token'] === 'bigint';
    case 'renew':
      return (
        Array.isArray(c['locks']) &&
        (c['locks'] as unknown[]).every((lock) => {
          if (typeof lock !== 'object' || lock === null) return false;
          const { name, token } = lock as Record<string, unknown>;
          return isLockName(name) && typeof token === 'bigint';
        })
      );
    case 'cancel':
      return isSeq(c['target']);
  }
}

/** `LockTable#snapshot` as JSON text. */
export function encodeSnapshot(table: LockTable): string {
  return stringifySnapshot(table.snapshot());
}

/** A table from JSON text; throws `InvalidMessageError` on anything `LockTable.restore` refuses. */
export function decodeSnapshot(text: string): LockTable {
  return LockTable.restore(parseSnapshotText(text));
}
