import type { StateMachine } from '../log/multi-paxos.js';
import { earliest } from '../paxos/output.js';
import { ownerKey, type Envelope, type NodeId, type Owner } from '../types.js';
import type { ApplyResult, Grant, LockCommand, LockReply } from './commands.js';
import { TimeHeap } from './heap.js';
import { decodeSnapshot, encodeSnapshot, LockTable } from './lock-table.js';
import type { ClientCommand, LockMessage } from './messages.js';
import { replyBytes } from './size.js';

/**
 * The lock table as the log's state machine. Every node applies the same commands in slot
 * order; the results go to `onApplied` (the service, which answers holders while this node
 * leads). A restored snapshot replaces the table whole.
 */
export class LockStateMachine implements StateMachine<LockCommand> {
  #table = this.createTable(null);
  onApplied: (result: ApplyResult, command: LockCommand) => void = () => undefined;

  get table(): LockTable {
    return this.#table;
  }

  apply(_slot: number, commands: readonly LockCommand[]): void {
    for (const command of commands) this.onApplied(this.#table.apply(command), command);
  }

  snapshot(): string {
    return encodeSnapshot(this.#table);
  }

  restore(text: string): boolean {
    try {
      this.#table = this.createTable(text);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * An empty table, or one from snapshot `text` (throwing as `decodeSnapshot` does). Production
   * never overrides this; the broken variants of the tests (test/sim/lock-mutants.ts) run their
   * own kind of table. Runs as the machine is built: an override must not read its own fields.
   */
  protected createTable(text: string | null): LockTable {
    return text === null ? new LockTable() : decodeSnapshot(text);
  }
}

export interface LockServiceConfig {
  readonly id: NodeId;
  readonly leaseMs: number;
  /** The bound on TTLs: idle sessions are retired after it, and a fresh epoch waits it out. */
  readonly maxTtlMs: number;
  /**
   * Wall-clock Unix ms, read when this node starts a new cluster epoch: its token base. The one
   * use of wall-clock time in synod (docs/design.md, "Decisions"); read at that moment, after
   * any grant the epoch must stay above was made.
   */
  readonly wallClock: () => number;
  /** Bytes of replies in one frame. */
  readonly maxReplyBytes?: number;
  /**
   * A holder not heard from for this long loses its places in queues (`abandon`): a process
   * that died while it waited must not be handed a lock it will never use. Its holder's node
   * resends every pending request far more often. Default: 2 · leaseMs.
   */
  readonly silentHolderMs?: number;
  /** Holders' commands kept while a fresh epoch waits (beyond it they are dropped: retried). */
  readonly maxHeld?: number;
}

/** What the service asks of the log and the transport. */
export interface LockServiceSink {
  readonly send: Envelope<LockMessage>[];
  /** Commands for the log (the leader's own: expire, retire, epoch; and holders'). */
  readonly propose: LockCommand[];
}

interface Timer {
  readonly token: bigint;
  readonly version: number;
  readonly expireAt: number;
  proposed: boolean;
}

const DEFAULT_REPLY_BYTES = 32 * 1024;
const DEFAULT_MAX_HELD = 65_536;
/** How many `maxTtlMs` an idle holder with unacknowledged answers is kept before retiring. */
const RETIRE_UNACKED_FACTOR = 16;
/** Holders named in one `abandon` or `retire` command. */
const HOLDERS_PER_COMMAND = 256;

/** A request's key: its holder and seq. */
function requestKey(command: ClientCommand): string {
  return `${ownerKey(command.holder)}#${command.seq}`;
}

/** Proposes `op` for `holders`, at most HOLDERS_PER_COMMAND to a command. */
function proposeForHolders(
  op: 'retire' | 'abandon',
  holders: readonly Owner[],
  sink: LockServiceSink,
): void {
  for (let i = 0; i < holders.length; i += HOLDERS_PER_COMMAND) {
    sink.propose.push({ op, holders: holders.slice(i, i + HOLDERS_PER_COMMAND) });
  }
}

function isClientCommand(command: LockCommand): command is ClientCommand {
  return (
    command.op === 'acquire' ||
    command.op === 'release' ||
    command.op === 'renew' ||
    command.op === 'cancel'
  );
}

/**
 * The leader's side of the lock service (docs/design.md, "Locks as a replicated state
 * machine"). Pure: every call takes `now`.
 *
 * - It answers a holder once its command applied, and tells a waiter when its turn came.
 * - TTL timers run only while this node serves (its log barrier applied, "takeover"): each
 *   grant's timer starts at takeover or when its grant or renew applied, whichever is later,
 *   so a new leader may extend a grant but never shortens it. When one runs out it proposes
 *   `expire` with the grant's version: a renew that applied first makes it a no-op.
 * - A table that has never granted in its epoch (a whole cluster started without storage)
 *   grants only after `maxTtlMs + leaseMs` of serving: every holder of an earlier life of the
 *   cluster has lost its lock by then. Commands wait for it in a bounded queue, one copy per
 *   request.
 * - A retry of a request the table already applied is answered from the table (what applying
 *   it again would answer), and a request already proposed is not proposed again: holders
 *   resend what waits (a queue place, say) and those resends never reach the log.
 * - Holders not heard from for `silentHolderMs` lose their queue places (`abandon`).
 */
export class LockService {
  readonly config: LockServiceConfig;
  readonly #machine: LockStateMachine;
  readonly #maxReplyBytes: number;
  #serving = false;
  readonly #timers = new Map<string, Timer>();
  readonly #heap = new TimeHeap<string>();
  /** Replies waiting to go out, per holder. */
  readonly #replies = new Map<string, { holder: Owner; replies: LockReply[] }>();
  /** Sessions seen idle, and since when (this node's clock, while serving). */
  readonly #idleSince = new Map<string, { holder: Owner; since: number }>();
  #nextSweepAt: number | null = null;
  /** Holders' commands held back until a fresh epoch may grant. */
  #holdUntil: number | null = null;
  /** One copy of each held request (the latest: its `acked` is the highest), in arrival order. */
  readonly #held = new Map<string, ClientCommand>();
  readonly #maxHeld: number;
  /** Requests proposed and not yet applied, and when: a copy is not proposed again. */
  readonly #inflight = new Map<string, number>();
  /** An `epoch` was proposed and has not applied: the table is not to be answered from. */
  #epochPending = false;
  /** When each holder was last heard from, while this node serves. */
  readonly #heard = new Map<string, number>();
  #servingSince = 0;
  #nextSilenceCheckAt: number | null = null;
  readonly #silentHolderMs: number;
  /** Commands dropped because the held queue was full (their holders send them again). */
  droppedHeld = 0;
  /** The clock reading of the current step (timers started while commands apply use it). */
  #now = 0;
  /** Whether this node leads the log (it answers holders) — set by the replica. */
  leading = false;

  constructor(config: LockServiceConfig, machine: LockStateMachine) {
    this.config = config;
    this.#machine = machine;
    this.#maxReplyBytes = config.maxReplyBytes ?? DEFAULT_REPLY_BYTES;
    this.#maxHeld = config.maxHeld ?? DEFAULT_MAX_HELD;
    this.#silentHolderMs = config.silentHolderMs ?? 2 * config.leaseMs;
    machine.onApplied = (result, command) => {
      this.#onApplied(result, command);
    };
  }

  get table(): LockTable {
    return this.#machine.table;
  }

  get serving(): boolean {
    return this.#serving;
  }

  /** Timers running (one per grant while serving). */
  get timers(): number {
    return this.#timers.size;
  }

  /**
   * The log applied this term's barrier: every grant's timer starts now (or keeps a later
   * start), and holders' commands are taken from here on.
   */
  startServing(now: number, sink: LockServiceSink, lossy = false): void {
    this.#serving = true;
    this.#timers.clear();
    this.#heap.clear();
    for (const grant of this.table.grants()) this.#startTimer(grant, now);
    this.#idleSince.clear();
    this.#nextSweepAt = now + this.#sweepMs();
    this.#inflight.clear();
    this.#heard.clear();
    this.#servingSince = now;
    this.#nextSilenceCheckAt = now + this.#silentHolderMs;
    const table = this.table;
    this.#epochPending = false;
    if (table.base === 0n || lossy) {
      // A table that never had an epoch, or one a majority lost its memory of: a new cluster
      // epoch. Its tokens start above every token of an earlier life of this cluster (wall-clock
      // ms · 2^20, read now), it ends every grant of the table before it, and it grants only
      // once every earlier holder lost its lock (below).
      sink.propose.push({ op: 'epoch', base: BigInt(Math.floor(this.config.wallClock())) << 20n });
      this.#epochPending = true;
    }
    this.#holdUntil =
      lossy || this.#freshEpoch() ? now + this.config.maxTtlMs + this.config.leaseMs : null;
    if (this.#holdUntil === null) this.#releaseHeld(now, sink);
  }

  /** Log leadership ended: held commands are dropped (their holders retry elsewhere). */
  stopServing(): void {
    this.#serving = false;
    this.#timers.clear();
    this.#heap.clear();
    this.#idleSince.clear();
    this.#nextSweepAt = null;
    this.#holdUntil = null;
    this.#held.clear();
    this.#inflight.clear();
    this.#heard.clear();
    this.#nextSilenceCheckAt = null;
    this.#epochPending = false;
  }

  /**
   * Holders' commands that reached this node while it leads the log. Before it serves (its
   * barrier not yet applied) they wait here: whether a fresh epoch must wait out earlier
   * holders first is known only once the table is up to date.
   */
  request(
    from: NodeId,
    commands: readonly ClientCommand[],
    now: number,
    sink: LockServiceSink,
  ): void {
    for (const command of commands) {
      // A node speaks for its own holders only.
      if (command.holder.node !== from) continue;
      this.#heard.set(ownerKey(command.holder), now);
      if (!this.#serving || (this.#holdUntil !== null && now < this.#holdUntil)) {
        this.#hold(command);
      } else {
        this.#propose(command, now, sink);
      }
    }
  }

  /** Held requests (while a fresh epoch waits, or before serving). */
  get held(): number {
    return this.#held.size;
  }

  #hold(command: ClientCommand): void {
    const key = requestKey(command);
    // A resend replaces its earlier copy (keeping its place); a new request past the bound is
    // dropped: its holder sends it again.
    if (this.#held.has(key) || this.#held.size < this.#maxHeld) this.#held.set(key, command);
    else this.droppedHeld += 1;
  }

  /** Proposes every held request (through the same checks as a new one). */
  #releaseHeld(now: number, sink: LockServiceSink): void {
    const held = [...this.#held.values()];
    this.#held.clear();
    for (const command of held) this.#propose(command, now, sink);
  }

  /**
   * A holder's request, while this node serves: a retry of one the table applied is answered
   * from the table, one already on its way through the log is not proposed twice.
   */
  #propose(command: ClientCommand, now: number, sink: LockServiceSink): void {
    if (!this.#epochPending) {
      const reply = this.table.replay(command);
      if (reply !== null) {
        this.#queueReply(command.holder, reply);
        return;
      }
    }
    const key = requestKey(command);
    const at = this.#inflight.get(key);
    // Proposed and not applied: it is in the log's pipeline (or was lost with a slot a new
    // ballot filled with a no-op: then it goes again once a lease's worth of time has passed).
    if (at !== undefined && now - at < this.config.leaseMs) return;
    this.#inflight.set(key, now);
    sink.propose.push(command);
  }

  /** Tells the sender to try elsewhere: this node does not serve. */
  redirect(
    from: NodeId,
    commands: readonly ClientCommand[],
    leader: NodeId | null,
    sink: LockServiceSink,
  ): void {
    const byIncarnation = new Map<string, number[]>();
    for (const c of commands) {
      if (c.holder.node !== from) continue;
      const seqs = byIncarnation.get(c.holder.incarnation) ?? [];
      seqs.push(c.seq);
      byIncarnation.set(c.holder.incarnation, seqs);
    }
    for (const [incarnation, seqs] of byIncarnation) {
      sink.send.push({ to: from, message: { type: 'lock.redirect', incarnation, seqs, leader } });
    }
  }

  /** Proposes expires whose time came, retires idle sessions, lets held commands through. */
  tick(now: number, sink: LockServiceSink): void {
    this.#now = now;
    if (!this.#serving) return;
    if (this.#holdUntil !== null && now >= this.#holdUntil) {
      this.#holdUntil = null;
      this.#releaseHeld(now, sink);
    }
    for (;;) {
      const at = this.#heap.peekTime();
      if (at === null || at > now) break;
      const entry = this.#heap.pop();
      if (entry === null) break;
      const timer = this.#timers.get(entry.key);
      if (timer === undefined || timer.proposed || timer.expireAt > now) continue;
      timer.proposed = true;
      sink.propose.push({
        op: 'expire',
        name: entry.key,
        token: timer.token,
        version: timer.version,
      });
    }
    if (this.#nextSweepAt !== null && now >= this.#nextSweepAt) this.#sweep(now, sink);
    if (this.#nextSilenceCheckAt !== null && now >= this.#nextSilenceCheckAt) {
      this.#abandonSilent(now, sink);
    }
  }

  wakeAt(): number | null {
    if (!this.#serving) return null;
    let at = earliest(this.#heap.peekTime(), this.#nextSweepAt);
    at = earliest(at, this.#holdUntil);
    at = earliest(at, this.#nextSilenceCheckAt);
    return at;
  }

  /** The answers of this step, one frame per holder (or more, if they are many). */
  flush(sink: LockServiceSink): void {
    for (const { holder, replies } of this.#replies.values()) {
      let batch: LockReply[] = [];
      let bytes = 0;
      for (const reply of replies) {
        const size = replyBytes(reply);
        if (batch.length > 0 && bytes + size > this.#maxReplyBytes) {
          this.#sendReplies(holder, batch, sink);
          batch = [];
          bytes = 0;
        }
        batch.push(reply);
        bytes += size;
      }
      if (batch.length > 0) this.#sendReplies(holder, batch, sink);
    }
    this.#replies.clear();
  }

  /** Who holds `name`, for a read served under the lease (the caller checked it serves). */
  view(to: NodeId, incarnation: string, id: number, name: string, sink: LockServiceSink): void {
    const view = this.table.view(name);
    sink.send.push({
      to,
      message: {
        type: 'lock.view',
        incarnation,
        id,
        name,
        holder: view?.holder ?? null,
        token: view?.token ?? null,
        waiters: view?.waiters ?? 0,
      },
    });
  }

  // -------------------------------------------------------------------------------------------

  #sendReplies(holder: Owner, replies: LockReply[], sink: LockServiceSink): void {
    sink.send.push({
      to: holder.node,
      message: { type: 'lock.reply', incarnation: holder.incarnation, replies },
    });
  }

  #onApplied(result: ApplyResult, command: LockCommand): void {
    if (isClientCommand(command)) this.#inflight.delete(requestKey(command));
    else if (command.op === 'epoch') this.#epochPending = false;
    // Holders are answered only once this node serves (its barrier applied): what it re-applies
    // while taking over may belong to a table a new epoch is about to end.
    if (this.leading && this.#serving) {
      if (result.reply !== null) this.#queueReply(result.reply.to, result.reply.reply);
      for (const grant of result.promoted) {
        this.#queueReply(grant.holder, {
          type: 'granted',
          seq: grant.seq,
          name: grant.name,
          token: grant.token,
          ttlMs: grant.ttlMs,
          version: grant.version,
        });
      }
    }
    if (!this.#serving) return;
    for (const grant of result.ended) this.#timers.delete(grant.name);
    for (const grant of result.promoted) this.#startTimer(grant, null);
    for (const grant of result.renewed) this.#startTimer(grant, null);
    const reply = result.reply?.reply;
    if (reply?.type === 'granted') {
      // A fresh grant, or the answer to a retry of one: its timer starts now unless it runs.
      const view = this.table.view(reply.name);
      const timer = this.#timers.get(reply.name);
      if (view?.token === reply.token && timer?.token !== reply.token) {
        this.#startTimer(
          {
            name: reply.name,
            holder: view.holder,
            seq: reply.seq,
            token: view.token,
            ttlMs: view.ttlMs,
            version: view.version,
          },
          null,
        );
      }
    }
  }

  /** Starts (or restarts) `grant`'s timer at `now` (null: the time of the current step). */
  #startTimer(grant: Grant, now: number | null): void {
    const at = this.timerStart(grant, now ?? this.#now, now !== null) + grant.ttlMs;
    this.#timers.set(grant.name, {
      token: grant.token,
      version: grant.version,
      expireAt: at,
      proposed: false,
    });
    this.#heap.push(at, grant.name);
  }

  /**
   * Where `grant`'s timer starts: at `start`, the takeover (`takeover`) or the step in which its
   * grant or renew applied. Production never overrides this; it is a hook for the broken
   * variants of the tests (test/sim/lock-mutants.ts), which start timers earlier.
   */
  protected timerStart(_grant: Grant, start: number, _takeover: boolean): number {
    return start;
  }

  /** The current step's clock reading, for timers started while applying. */
  setNow(now: number): void {
    this.#now = now;
  }

  #queueReply(holder: Owner, reply: LockReply): void {
    const key = ownerKey(holder);
    let entry = this.#replies.get(key);
    if (entry === undefined) {
      entry = { holder, replies: [] };
      this.#replies.set(key, entry);
    }
    entry.replies.push(reply);
  }

  #sweepMs(): number {
    return Math.max(this.config.leaseMs, this.config.maxTtlMs / 4);
  }

  /** Retires sessions idle for `maxTtlMs` (a holder process that went away for good). */
  #sweep(now: number, sink: LockServiceSink): void {
    this.#nextSweepAt = now + this.#sweepMs();
    const table = this.table;
    const seen = new Set<string>();
    const retire: Owner[] = [];
    for (const holder of table.sessions()) {
      const key = ownerKey(holder);
      // Holding or waiting, or heard from lately (a holder whose answers were lost still sends
      // its finished requests again: retired, a retry would be applied afresh and answered
      // wrongly, a release as `not-held` say).
      if (!table.isIdle(holder) || this.#heard.has(key)) continue;
      seen.add(key);
      const idle = this.#idleSince.get(key);
      // A holder that has not yet acknowledged the answers to its last requests (it sends no
      // more, or it is cut off and will send them again) is given far longer: retired, it
      // would be answered afresh. One that has is forgotten after `maxTtlMs`.
      const after =
        table.outstanding(holder) > 0
          ? RETIRE_UNACKED_FACTOR * this.config.maxTtlMs
          : this.config.maxTtlMs;
      if (idle === undefined) this.#idleSince.set(key, { holder, since: now });
      else if (now - idle.since >= after) retire.push(holder);
    }
    for (const key of this.#idleSince.keys()) if (!seen.has(key)) this.#idleSince.delete(key);
    proposeForHolders('retire', retire, sink);
    for (const holder of retire) this.#idleSince.delete(ownerKey(holder));
    // Proposed requests that never applied (their slot went to another value) may go again.
    for (const [key, at] of this.#inflight) {
      if (now - at >= this.config.leaseMs) this.#inflight.delete(key);
    }
  }

  /**
   * Withdraws the queue places of holders not heard from for `silentHolderMs` (since this node
   * began to serve, at the earliest): a live holder resends what waits many times over in that
   * time, so these are processes that died or cannot reach this leader. One that can after all
   * learns its request ended ('ended') and asks again.
   */
  #abandonSilent(now: number, sink: LockServiceSink): void {
    const every = this.#silentHolderMs;
    this.#nextSilenceCheckAt = now + Math.max(1, every / 2);
    const silent: Owner[] = [];
    for (const holder of this.table.waitingHolders()) {
      const heard = this.#heard.get(ownerKey(holder)) ?? this.#servingSince;
      if (now - heard >= every) silent.push(holder);
    }
    proposeForHolders('abandon', silent, sink);
    // Forget holders silent that long: waiting, they were just abandoned; otherwise their next
    // request records them again. The map stays as small as the holders heard from lately.
    for (const [key, at] of this.#heard) if (now - at >= every) this.#heard.delete(key);
  }

  /** A table whose epoch has not granted yet: it waits out every earlier holder first. */
  #freshEpoch(): boolean {
    const table = this.table;
    if (table.index === 0) return true;
    return table.lastToken === table.base;
  }
}
