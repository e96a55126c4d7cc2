import { InvariantError } from '../errors.js';
import {
  adoptable,
  ballotEquals,
  compareBallots,
  nextBallot,
  ROUND_LIMIT,
  type Ballot,
} from '../paxos/ballot.js';
import { earliest, emptyOutput } from '../paxos/output.js';
import { majority } from '../paxos/quorum.js';
import type { NodeId, Output } from '../types.js';
import { LogAcceptor } from './acceptor.js';
import { LogLeaderTerm } from './leader.js';
import {
  logWithinRoundLimit,
  type AcceptedEntry,
  type LogMessage,
  type LogValue,
  type SlotValue,
} from './messages.js';
import { LogRecovery } from './recovery.js';
import { SnapshotAssembly, SnapshotParts } from './snapshot.js';

/**
 * What the log drives: a deterministic state machine applied in slot order. `snapshot` and
 * `restore` move its whole state between nodes (a node behind the log's truncation point).
 */
export interface StateMachine<C> {
  apply(slot: number, commands: readonly C[]): void;
  snapshot(): string;
  /** Replaces the state; false (and no change) if the text is not a valid snapshot. */
  restore(text: string): boolean;
}

export interface LogConfig<C> {
  readonly id: NodeId;
  readonly incarnation: string;
  /** Every voter, this node included. */
  readonly peers: readonly NodeId[];
  readonly leaseMs: number;
  readonly maxClockDrift: number;
  readonly marginMs: number;
  readonly stateMachine: StateMachine<C>;
  /** About how many bytes a command takes on the wire: batches stay under the frame limit. */
  readonly sizeOf: (command: C) => number;
  /** Whether the lease lets this node vote at `now` (its restart silence is over). */
  readonly voting: (now: number) => boolean;
  /**
   * Started without its log state: it rebuilds it from the others before it votes (see
   * LogRecovery), asking once `silentUntil()` has passed.
   */
  readonly recovers?: boolean;
  readonly silentUntil?: () => number;
  /**
   * Storage keeps this node's state: a snapshot goes into the update every `snapshotEvery`
   * applied slots (and after installing one from a peer), so what is stored stays bounded.
   */
  readonly durable?: boolean;
  readonly snapshotEvery?: number;
  /** Bytes of commands in one slot. */
  readonly maxBatchBytes?: number;
  /** Slots in flight at once. */
  readonly pipeline?: number;
  /** Entries per report page, catch-up reply or Accept. */
  readonly pageEntries?: number;
  /**
   * Bytes of entries per page: with the envelope, a frame stays under the transport's limit
   * (64 KiB by default; a batch is at most `maxBatchBytes`).
   */
  readonly maxPageBytes?: number;
  /** Chosen commands kept after applying, to serve lagging nodes without a snapshot. */
  readonly retainCommands?: number;
}

/** State a node keeps across a restart with storage. */
export interface LogRecord<C> {
  readonly promised: Ballot | null;
  readonly maxRound: number;
  /** The state at `slot`; every slot up to it is chosen. */
  readonly snapshot: { readonly slot: number; readonly text: string } | null;
  /** Accepted entries above the snapshot. */
  readonly accepted: readonly AcceptedEntry<C>[];
  /**
   * Chosen entries above the snapshot that this node applied without having accepted them
   * (learned by catching up): replayed at a restart, so what it applied is never forgotten.
   */
  readonly chosen: readonly SlotValue<C>[];
  /**
   * Set while its state is lossy (rebuilt after a majority lost its memory, until a new epoch
   * applied above this slot): a restart from this record is lossy still. Absent: not lossy.
   */
  readonly lossyAbove?: number | null;
}

/**
 * What to write before sending: the promise, what was accepted since the last write, and now and
 * then (with durable storage) a snapshot of the state, so the stored entries stay few.
 */
export interface LogUpdate<C> {
  readonly promised: Ballot | null;
  readonly maxRound: number;
  readonly accepted: readonly AcceptedEntry<C>[];
  /** Applied without having been accepted here (see LogRecord). */
  readonly chosen: readonly SlotValue<C>[];
  readonly snapshot: { readonly slot: number; readonly text: string } | null;
  /** See LogRecord: replaces the stored value (absent: not lossy). */
  readonly lossyAbove?: number | null;
}

export type LogEvent =
  /**
   * Every slot up to this term's barrier is applied: the leader serves commands and reads.
   * `lossy`: a voter of its majority recovered while a majority had lost its memory, so
   * chosen slots may be gone (the lock table starts a new epoch).
   */
  | {
      readonly type: 'serving';
      readonly term: number;
      readonly slot: number;
      readonly lossy: boolean;
    }
  /** Rebuilt from the others after a start without state: it votes again. */
  | { readonly type: 'recovered'; readonly lossy: boolean; readonly floor: number }
  /** Log leadership of `term` ended (the lease ended, or a higher ballot took over). */
  | { readonly type: 'unserving'; readonly term: number }
  /** A snapshot from another node replaced this node's state. */
  | { readonly type: 'installed'; readonly slot: number; readonly from: NodeId }
  /** A message naming a round above ROUND_LIMIT was refused whole. */
  | { readonly type: 'refused'; readonly from: NodeId; readonly reason: 'round-limit' };

export type LogOutput<C> = Output<LogMessage<C>, LogUpdate<C>, LogEvent>;

export type LogInput<C> =
  | { readonly type: 'message'; readonly from: NodeId; readonly message: LogMessage<C> }
  | { readonly type: 'tick' };

const DEFAULTS = {
  maxBatchBytes: 24 * 1024,
  maxPageBytes: 40 * 1024,
  pipeline: 32,
  pageEntries: 64,
  retainCommands: 16_384,
};
/** Applied slots between two snapshots written to durable storage. */
const DURABLE_SNAPSHOT_EVERY = 4096;
/** Snapshot parts asked for at once by a node installing one. */
const SNAPSHOT_WINDOW = 4;

/**
 * One node's part of the Multi-Paxos log (docs/design.md, "Multi-Paxos log"): its acceptor, its
 * learner (which applies chosen slots in order to the state machine), and, while it holds the
 * leader lease, the log leader of that term. Pure: each call takes `now` and returns what to
 * persist, send and announce; the lease machine beside it says when this node leads.
 *
 * Safety is Paxos's, per slot; the lease only keeps one leader proposing at a time (for
 * progress) and bounds when the leader may act (for the locks above). Two rules come from the
 * restart without disk: a reply counts only if it arrives within the vote window W of the send
 * it answers, and only the leader declares a slot chosen.
 */
export class LogMachine<C> {
  readonly config: LogConfig<C>;
  readonly #others: readonly NodeId[];
  readonly #quorum: number;
  /** The vote window W = L·(1−ρ)/(1+ρ) − margin, on this node's clock. */
  readonly #windowMs: number;
  /** How long an unanswered send waits before it is sent again. */
  readonly #retryMs: number;
  /** How often an idle leader tells the others its commit index. */
  readonly #heartbeatMs: number;
  readonly #maxBatchBytes: number;
  readonly #pipeline: number;
  readonly #pageEntries: number;
  readonly #maxPageBytes: number;
  readonly #retainCommands: number;
  readonly #acceptor: LogAcceptor<C>;
  #maxRound: number;
  #attempts = 0;
  /** The highest slot applied to the state machine; every slot up to it is chosen. */
  #applied: number;
  /** Chosen values learned beyond `#applied`, waiting for the slots before them. */
  readonly #known = new Map<number, LogValue<C>>();
  /** Chosen entries kept after applying, oldest first from `#retainedHead`, to serve `log.fetch`. */
  #retained: SlotValue<C>[] = [];
  #retainedHead = 0;
  #retainedCommands = 0;
  /** The highest commit index heard, and from whom (the leader, to fetch from). */
  #commitSeen = 0;
  #commitFrom: NodeId | null = null;
  /** One fetch in flight at a time: where to, from which slot, and when. */
  #fetching: { to: NodeId; from: number; at: number } | null = null;
  #assembly: SnapshotAssembly | null = null;
  #assemblyAskedAt = 0;
  /** The last snapshot this node cut into parts to serve. */
  #served: SnapshotParts | null = null;
  #leader: LogLeaderTerm<C> | null = null;
  /** Entries accepted since the last persist. */
  #unsaved: AcceptedEntry<C>[] = [];
  /** Entries applied without being accepted here, since the last persist (durable only). */
  #unsavedChosen: SlotValue<C>[] = [];
  /** A snapshot to write with the next persist (durable storage only). */
  #unsavedSnapshot: { slot: number; text: string } | null = null;
  /** The slot of the last snapshot written. */
  #savedSnapshotSlot: number;
  #savedPromise: Ballot | null;
  #savedMaxRound: number;
  /** Started without state: what it must learn before it votes; null once learned. */
  #recovery: LogRecovery<C> | null;
  /** Recovered, but must first apply up to this slot (chosen slots gone from every report). */
  #recoveryFloor: number | null = null;
  /** Recovered while a majority had lost its memory, until the epoch moves on. */
  #lossy = false;
  /** The highest slot the lossy recovery knew of: only an epoch applied above it clears it. */
  #lossyAbove = 0;
  /** While catching up after a recovery: when `#applied` last moved. */
  #recoveryProgressAt = 0;

  constructor(config: LogConfig<C>, restored: LogRecord<C> | null) {
    if (!config.peers.includes(config.id)) {
      throw new InvariantError(`node ${config.id} is not among its peers`);
    }
    this.config = config;
    this.#others = config.peers.filter((p) => p !== config.id);
    this.#quorum = majority(config.peers.length);
    const rho = config.maxClockDrift;
    this.#windowMs = (config.leaseMs * (1 - rho)) / (1 + rho) - config.marginMs;
    if (this.#windowMs <= 0) throw new InvariantError('the vote window must be positive');
    this.#retryMs = Math.max(1, Math.min(this.#windowMs / 2, config.leaseMs / 8));
    this.#heartbeatMs = config.leaseMs / 4;
    this.#maxBatchBytes = config.maxBatchBytes ?? DEFAULTS.maxBatchBytes;
    this.#pipeline = config.pipeline ?? DEFAULTS.pipeline;
    this.#pageEntries = config.pageEntries ?? DEFAULTS.pageEntries;
    this.#maxPageBytes = config.maxPageBytes ?? DEFAULTS.maxPageBytes;
    this.#retainCommands = config.retainCommands ?? DEFAULTS.retainCommands;
    const snapshot = restored?.snapshot ?? null;
    if (snapshot !== null && !config.stateMachine.restore(snapshot.text)) {
      throw new InvariantError('the stored snapshot is not valid');
    }
    this.#applied = snapshot?.slot ?? 0;
    // What it had applied beyond the snapshot without accepting it is applied again.
    const chosen = [...(restored?.chosen ?? [])].sort((a, b) => a.slot - b.slot);
    for (const e of chosen) {
      if (e.slot !== this.#applied + 1) continue;
      config.stateMachine.apply(e.slot, e.value ?? []);
      this.#applied = e.slot;
    }
    this.#acceptor = new LogAcceptor<C>(
      restored?.promised ?? null,
      this.#applied,
      restored?.accepted ?? [],
    );
    this.#maxRound = Math.max(restored?.maxRound ?? 0, restored?.promised?.round ?? 0);
    this.#savedPromise = restored?.promised ?? null;
    this.#savedMaxRound = this.#maxRound;
    this.#savedSnapshotSlot = snapshot?.slot ?? 0;
    // Lossy still, if it was when it stopped: the epoch that ends it has not applied here.
    const lossyAbove = restored?.lossyAbove ?? null;
    if (lossyAbove !== null) {
      this.#lossy = true;
      this.#lossyAbove = lossyAbove;
    }
    this.#savedLossy = this.#lossy;
    this.#recovery =
      restored === null && config.recovers === true
        ? new LogRecovery<C>({ peers: config.peers, self: config.id, retryMs: config.leaseMs / 8 })
        : null;
  }

  /** Whether it votes at `now`: the lease lets it, and its state is rebuilt if it had none. */
  #voting(now: number): boolean {
    return this.#recovery === null && this.#recoveryFloor === null && this.config.voting(now);
  }

  /** Whether it is still rebuilding its state from the others. */
  get recovering(): boolean {
    return this.#recovery !== null || this.#recoveryFloor !== null;
  }

  get lossy(): boolean {
    return this.#lossy;
  }

  /**
   * The lock table applied a new epoch at `slot`: what a lossy recovery lost no longer matters,
   * if that epoch was proposed after it (above every slot the recovery knew of; an old epoch
   * met while catching up does not count).
   */
  clearLossy(slot: number): void {
    if (slot > this.#lossyAbove) this.#lossy = false;
  }

  /** Whether the lossy state on disk is out of date. */
  #savedLossy = false;

  /** About how many bytes an entry with `value` takes in a frame (ballot and slot included). */
  #valueBytes(value: LogValue<C>): number {
    let bytes = 120;
    for (const c of value ?? []) bytes += this.config.sizeOf(c);
    return bytes;
  }

  #report(from: number): { entries: AcceptedEntry<C>[]; next: number | null } {
    return this.#acceptor.report(
      from,
      this.#pageEntries,
      (e) => this.#valueBytes(e.value),
      this.#maxPageBytes,
    );
  }

  /** The highest slot applied. */
  get applied(): number {
    return this.#applied;
  }

  get maxRound(): number {
    return this.#maxRound;
  }

  /** Accepted entries held (above the floor): memory grows with this, not with history. */
  get acceptedEntries(): number {
    return this.#acceptor.size;
  }

  get retainedEntries(): number {
    return this.#retained.length - this.#retainedHead;
  }

  /** The first slot still retained (applied + 1 when none is). */
  #retainedFirst(): number {
    return this.#retained[this.#retainedHead]?.slot ?? this.#applied + 1;
  }

  /** The term this node leads the log in, while it does. */
  get leaderTerm(): number | null {
    return this.#leader?.term ?? null;
  }

  /** Whether the leader serves at `now`: its barrier is applied and its lease holds. */
  isServing(now: number): boolean {
    const leader = this.#leader;
    return leader !== null && leader.serving && now < leader.deadline;
  }

  /** Commands queued or in flight on this leader. */
  get backlog(): number {
    const leader = this.#leader;
    return leader === null ? 0 : leader.queue.length + leader.proposals.size;
  }

  /**
   * The lease says this node leads `term` until `deadline` (its own clock). A new term starts
   * log leadership afresh with phase 1; the same term only moves the deadline.
   */
  lead(term: number, deadline: number, now: number): LogOutput<C> {
    const out = emptyOutput<LogMessage<C>, LogUpdate<C>, LogEvent>();
    const leader = this.#leader;
    if (leader !== null && leader.term === term) {
      leader.deadline = deadline;
      this.#drive(now, out);
      return this.#finish(now, out);
    }
    if (leader !== null) out.events.push({ type: 'unserving', term: leader.term });
    const ballot = this.#nextBallot();
    if (ballot === null) {
      this.#leader = null;
      return this.#finish(now, out);
    }
    this.#leader = new LogLeaderTerm<C>(term, ballot, deadline);
    this.#prepare(now, out);
    // No barrier yet: serves nothing (but in a broken variant of the tests).
    this.#maybeServe(out);
    return this.#finish(now, out);
  }

  /** Log leadership ends (the lease ended). Queued commands are dropped: clients retry. */
  unlead(now: number): LogOutput<C> {
    const out = emptyOutput<LogMessage<C>, LogUpdate<C>, LogEvent>();
    const leader = this.#leader;
    if (leader !== null) {
      this.#leader = null;
      out.events.push({ type: 'unserving', term: leader.term });
    }
    return this.#finish(now, out);
  }

  /**
   * Queues commands on the leader; they go out in the next batch (at once while the pipeline
   * has room). Returns false, queuing nothing, if this node does not lead the log.
   */
  submit(commands: readonly C[], now: number, out: LogOutput<C>): boolean {
    const leader = this.#leader;
    if (leader === null || now >= leader.deadline) return false;
    for (const c of commands) {
      leader.queue.push(c);
      leader.queueBytes += this.config.sizeOf(c);
    }
    this.#drive(now, out);
    this.#finishInto(now, out);
    return true;
  }

  handle(input: LogInput<C>, now: number): LogOutput<C> {
    const out = emptyOutput<LogMessage<C>, LogUpdate<C>, LogEvent>();
    switch (input.type) {
      case 'message':
        if (!logWithinRoundLimit(input.message)) {
          out.events.push({ type: 'refused', from: input.from, reason: 'round-limit' });
          break;
        }
        this.#receive(input.from, input.message, now, out);
        break;
      case 'tick':
        break;
      default: {
        const never: never = input;
        throw new InvariantError(`unknown input ${JSON.stringify(never)}`);
      }
    }
    this.#drive(now, out);
    return this.#finish(now, out);
  }

  /** Appends `extra`'s wake-up and persist rules onto an output the caller builds. */
  #finishInto(now: number, out: LogOutput<C>): void {
    this.#persist(out);
    out.wakeAt = earliest(out.wakeAt, this.wakeAt(now));
  }

  #finish(now: number, out: LogOutput<C>): LogOutput<C> {
    this.#persist(out);
    out.wakeAt = this.wakeAt(now);
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // Messages

  #receive(from: NodeId, message: LogMessage<C>, now: number, out: LogOutput<C>): void {
    switch (message.type) {
      case 'log.prepare':
        this.#see(message.ballot.round);
        this.#onPrepare(from, message, now, out);
        break;
      case 'log.accept':
        this.#see(message.ballot.round);
        this.#onAccept(from, message, now, out);
        break;
      case 'log.promise':
        this.#see(message.maxRound);
        this.#onPromise(from, message, now, out);
        break;
      case 'log.accepted':
        this.#onAccepted(from, message, now, out);
        break;
      case 'log.reject':
        this.#see(message.maxRound);
        if (message.promised !== null) this.#see(message.promised.round);
        this.#onReject(message, now, out);
        break;
      case 'log.recover':
        this.#onRecover(from, message.incarnation, message.from, now, out);
        break;
      case 'log.recovery':
        this.#see(message.maxRound);
        this.#onRecovery(from, message, now, out);
        break;
      case 'log.fetch':
        this.#onFetch(from, message.from, now, out);
        break;
      case 'log.chosen':
        this.#onChosen(from, message.entries, now, out);
        break;
      case 'log.snapshot-fetch':
        this.#serveSnapshot(from, message.slot, message.part, out);
        break;
      case 'log.snapshot':
        this.#onSnapshotPart(from, message, now, out);
        break;
      default: {
        const never: never = message;
        throw new InvariantError(`unknown log message ${JSON.stringify(never)}`);
      }
    }
  }

  #onPrepare(
    from: NodeId,
    message: Extract<LogMessage<C>, { type: 'log.prepare' }>,
    now: number,
    out: LogOutput<C>,
  ): void {
    if (!this.#voting(now)) return;
    const { ballot, attempt } = message;
    if (!this.#acceptor.mayPromise(ballot)) {
      out.send.push({ to: from, message: this.#reject(ballot, attempt) });
      return;
    }
    this.#acceptor.promise(ballot);
    // A promise for a later ballot ends any log leadership of ours in an earlier one.
    this.#yieldTo(ballot, now, out);
    const page = this.#report(message.from);
    this.#persist(out);
    out.send.push({
      to: from,
      message: {
        type: 'log.promise',
        ballot,
        attempt,
        from: message.from,
        entries: page.entries,
        next: page.next,
        floor: this.#acceptor.floor,
        applied: this.#applied,
        maxRound: this.#maxRound,
        lossy: this.#lossy,
      },
    });
  }

  #onAccept(
    from: NodeId,
    message: Extract<LogMessage<C>, { type: 'log.accept' }>,
    now: number,
    out: LogOutput<C>,
  ): void {
    if (!this.#voting(now)) return;
    const { ballot, attempt, entries } = message;
    if (!this.#acceptor.accept(ballot, entries)) {
      out.send.push({ to: from, message: this.#reject(ballot, attempt) });
      return;
    }
    this.#yieldTo(ballot, now, out);
    for (const { slot, value } of entries) {
      if (slot > this.#acceptor.floor) this.#unsaved.push({ slot, ballot, value });
    }
    if (entries.length > 0) {
      // The vote is written down before it is sent (persist, then send).
      this.#persist(out);
      out.send.push({
        to: from,
        message: { type: 'log.accepted', ballot, attempt, applied: this.#applied },
      });
    }
    this.#learnCommit(from, ballot, message.commit, now, out);
  }

  #reject(ballot: Ballot, attempt: number): LogMessage<C> {
    return {
      type: 'log.reject',
      ballot,
      attempt,
      promised: this.#acceptor.promised,
      maxRound: this.#maxRound,
    };
  }

  /**
   * Another proposer's higher ballot was promised or accepted here. While this node holds the
   * lease that can only be a late message of an earlier leader: phase 1 again, above it.
   */
  #yieldTo(ballot: Ballot, now: number, out: LogOutput<C>): void {
    const leader = this.#leader;
    if (leader === null || compareBallots(ballot, leader.ballot) <= 0) return;
    this.#outbid(now, out);
  }

  /** Starts phase 1 again in a ballot above every round seen (the lease still holds). */
  #outbid(now: number, out: LogOutput<C>): void {
    const leader = this.#leader;
    if (leader === null) return;
    const ballot = this.#nextBallot();
    const wasServing = leader.serving;
    if (ballot === null) {
      this.#leader = null;
      out.events.push({ type: 'unserving', term: leader.term });
      return;
    }
    leader.restart(ballot);
    if (wasServing) out.events.push({ type: 'unserving', term: leader.term });
    this.#prepare(now, out);
    // No barrier yet: serves nothing (but in a broken variant of the tests).
    this.#maybeServe(out);
  }

  // -------------------------------------------------------------------------------------------
  // Learning and applying

  /**
   * The leader says every slot up to `commit` is chosen. A slot this node accepted in that
   * same ballot holds the chosen value; any other slot is fetched.
   */
  #learnCommit(from: NodeId, ballot: Ballot, commit: number, now: number, out: LogOutput<C>): void {
    if (commit > this.#commitSeen) {
      this.#commitSeen = commit;
      this.#commitFrom = from;
    }
    for (let slot = this.#applied + 1; slot <= commit; slot++) {
      if (this.#known.has(slot)) continue;
      const accepted = this.#acceptor.acceptedIn(slot, ballot);
      if (accepted === null) break;
      this.#known.set(slot, accepted.value);
    }
    this.#applyKnown(now, out);
  }

  #applyKnown(now: number, out: LogOutput<C>): void {
    const sm = this.config.stateMachine;
    const before = this.#applied;
    for (;;) {
      const slot = this.#applied + 1;
      if (!this.#known.has(slot)) break;
      const value = this.#known.get(slot) ?? null;
      this.#known.delete(slot);
      this.#applied = slot;
      if (this.config.durable === true && !this.#acceptedHere(slot, value)) {
        this.#unsavedChosen.push({ slot, value });
      }
      sm.apply(slot, value ?? []);
      this.#retain(slot, value);
    }
    // Chosen and applied: the acceptor no longer needs these entries.
    this.#acceptor.truncate(this.#applied);
    if (
      this.config.durable === true &&
      this.#applied - this.#savedSnapshotSlot >=
        (this.config.snapshotEvery ?? DURABLE_SNAPSHOT_EVERY)
    ) {
      this.#snapshotToStorage();
    }
    if (this.#applied > before) this.#recoveryProgressAt = now;
    if (this.#recoveryFloor !== null && this.#applied >= this.#recoveryFloor) {
      this.#recoveryFloor = null;
      // Whole now: written before it votes.
      this.#persist(out);
      out.events.push({ type: 'recovered', lossy: this.#lossy, floor: this.#applied });
    }
    this.#maybeServe(out);
    this.#maybeFetch(now, out);
  }

  /** The leader starts serving (its takeover) once its barrier is applied. */
  #maybeServe(out: LogOutput<C>): void {
    const leader = this.#leader;
    if (leader === null || leader.serving || !this.serves(leader.barrier, this.#applied)) return;
    leader.serving = true;
    let lossy = false;
    for (const p of leader.promisers.values()) if (p.next === null && p.lossy) lossy = true;
    // (`serves` holds only once the barrier is set, but in a broken variant of the tests.)
    const slot = leader.barrier ?? this.#applied;
    out.events.push({ type: 'serving', term: leader.term, slot, lossy });
  }

  /**
   * Whether a leader whose barrier is `barrier` (null: not proposed yet) serves once `applied`
   * is: when its barrier is, and so every slot before it (M3). This rule and `inVoteWindow` are
   * never overridden in production; they are hooks for the broken variants of the tests
   * (test/sim/lock-mutants.ts).
   */
  protected serves(barrier: number | null, applied: number): boolean {
    return barrier !== null && applied >= barrier;
  }

  /** Whether a reply that arrives at `now` counts for a send at `sentAt`: within W of it (M5). */
  protected inVoteWindow(sentAt: number, now: number): boolean {
    return now <= sentAt + this.#windowMs;
  }

  /** Whether this acceptor holds `value` for `slot` (so storage has it already). */
  #acceptedHere(slot: number, value: LogValue<C>): boolean {
    return this.#acceptor.entry(slot)?.value === value;
  }

  #retain(slot: number, value: LogValue<C>): void {
    this.#retained.push({ slot, value });
    this.#retainedCommands += Math.max(1, value?.length ?? 0);
    while (
      this.#retainedCommands > this.#retainCommands &&
      this.#retainedHead < this.#retained.length - 1
    ) {
      this.#retainedCommands -= Math.max(1, this.#retained[this.#retainedHead]?.value?.length ?? 0);
      this.#retained[this.#retainedHead] = undefined as unknown as SlotValue<C>;
      this.#retainedHead += 1;
    }
    // Compacted now and then, so dropping the oldest stays O(1) amortised.
    if (this.#retainedHead > 1024 && this.#retainedHead * 2 > this.#retained.length) {
      this.#retained = this.#retained.slice(this.#retainedHead);
      this.#retainedHead = 0;
    }
  }

  /** Behind the commit index heard and not filling the gap by itself: asks for what it lacks. */
  #maybeFetch(now: number, out: LogOutput<C>): void {
    if (this.#assembly !== null) return;
    const to = this.#commitFrom;
    if (to === null || this.#commitSeen <= this.#applied || this.#leader !== null) return;
    const fetching = this.#fetching;
    const from = this.#applied + 1;
    if (fetching !== null && fetching.from === from && now < fetching.at + this.#retryMs) return;
    this.#fetching = { to, from, at: now };
    out.send.push({ to, message: { type: 'log.fetch', from } });
  }

  #onFetch(from: NodeId, slot: number, _now: number, out: LogOutput<C>): void {
    if (slot > this.#applied) return;
    const first = this.#retainedFirst();
    if (slot < first) {
      this.#offerSnapshot(from, out);
      return;
    }
    const start = this.#retainedHead + slot - first;
    const entries: SlotValue<C>[] = [];
    let bytes = 0;
    for (let i = start; i < this.#retained.length && entries.length < this.#pageEntries; i++) {
      const e = this.#retained[i];
      if (e === undefined) break;
      const size = this.#valueBytes(e.value);
      if (entries.length > 0 && bytes + size > this.#maxPageBytes) break;
      entries.push(e);
      bytes += size;
    }
    out.send.push({ to: from, message: { type: 'log.chosen', entries } });
  }

  #onChosen(from: NodeId, entries: readonly SlotValue<C>[], now: number, out: LogOutput<C>): void {
    let expect = entries[0]?.slot ?? 0;
    for (const e of entries) {
      // Contiguous, as sent; anything else is not from a correct peer.
      if (e.slot !== expect) return;
      expect += 1;
      if (e.slot > this.#applied) this.#known.set(e.slot, e.value);
    }
    if (this.#fetching?.to === from) this.#fetching = null;
    this.#applyKnown(now, out);
    // A leader catching up before it proposes.
    const leader = this.#leader;
    if (leader?.phase === 'catch-up') this.#continueTakeover(now, out);
  }

  // -------------------------------------------------------------------------------------------
  // Snapshots

  #offerSnapshot(to: NodeId, out: LogOutput<C>): void {
    const parts = this.#snapshotParts(0);
    out.send.push({
      to,
      message: {
        type: 'log.snapshot',
        slot: parts.slot,
        part: 0,
        parts: parts.parts,
        data: parts.part(0),
      },
    });
  }

  /** The snapshot at `slot` if still held (0: any), else a fresh one of the current state. */
  #snapshotParts(slot: number): SnapshotParts {
    const served = this.#served;
    if (served !== null && (slot === 0 || served.slot === slot)) {
      // A snapshot far behind what is applied is not worth sending any more.
      if (slot !== 0 || served.slot >= this.#retainedFirst() - 1) {
        return served;
      }
    }
    const parts = new SnapshotParts(this.#applied, this.config.stateMachine.snapshot());
    this.#served = parts;
    return parts;
  }

  #serveSnapshot(to: NodeId, slot: number, part: number, out: LogOutput<C>): void {
    const parts = this.#snapshotParts(slot);
    const index = parts.slot === slot && part < parts.parts ? part : 0;
    out.send.push({
      to,
      message: {
        type: 'log.snapshot',
        slot: parts.slot,
        part: index,
        parts: parts.parts,
        data: parts.part(index),
      },
    });
  }

  #onSnapshotPart(
    from: NodeId,
    message: Extract<LogMessage<C>, { type: 'log.snapshot' }>,
    now: number,
    out: LogOutput<C>,
  ): void {
    if (message.slot <= this.#applied) return;
    let assembly = this.#assembly;
    if (
      assembly?.from !== from ||
      message.slot > assembly.slot ||
      message.parts !== assembly.parts
    ) {
      if (assembly !== null && message.slot < assembly.slot) return;
      assembly = new SnapshotAssembly(from, message.slot, message.parts);
      this.#assembly = assembly;
    }
    if (message.slot !== assembly.slot) return;
    if (!assembly.add(message.part, message.parts, message.data)) {
      this.#assembly = null;
      return;
    }
    if (!assembly.complete) {
      this.#askParts(assembly, now, out);
      return;
    }
    this.#assembly = null;
    this.#fetching = null;
    const text = assembly.text();
    if (text === null || !this.config.stateMachine.restore(text)) return;
    this.#install(assembly.slot, from, now, out);
  }

  /** Asks for the next missing parts (a window at a time). */
  #askParts(assembly: SnapshotAssembly, now: number, out: LogOutput<C>): void {
    this.#assemblyAskedAt = now;
    for (const part of assembly.missing(SNAPSHOT_WINDOW)) {
      out.send.push({
        to: assembly.from,
        message: { type: 'log.snapshot-fetch', slot: assembly.slot, part },
      });
    }
  }

  /** With durable storage: the state as it is now goes into the next write. */
  #snapshotToStorage(): void {
    this.#unsavedSnapshot = { slot: this.#applied, text: this.config.stateMachine.snapshot() };
    this.#savedSnapshotSlot = this.#applied;
  }

  /** The state machine now holds the state at `slot`: the log moves up to it. */
  #install(slot: number, from: NodeId, now: number, out: LogOutput<C>): void {
    this.#applied = slot;
    this.#recoveryProgressAt = now;
    for (const s of [...this.#known.keys()]) if (s <= slot) this.#known.delete(s);
    this.#retained = [];
    this.#retainedHead = 0;
    this.#retainedCommands = 0;
    this.#served = null;
    this.#acceptor.truncate(slot);
    out.events.push({ type: 'installed', slot, from });
    // Stored entries below it are gone from the acceptor: the state they led to must be stored.
    if (this.config.durable === true) this.#snapshotToStorage();
    this.#persist(out);
    this.#applyKnown(now, out);
    const leader = this.#leader;
    if (leader?.phase === 'catch-up') this.#continueTakeover(now, out);
  }

  // -------------------------------------------------------------------------------------------
  // Leading: phase 1

  #nextBallot(): Ballot | null {
    const round = Math.max(this.#maxRound, this.#acceptor.promised?.round ?? 0);
    if (round + 1 >= ROUND_LIMIT) return null;
    const ballot = nextBallot(round, {
      node: this.config.id,
      incarnation: this.config.incarnation,
    });
    this.#maxRound = ballot.round;
    return ballot;
  }

  #see(round: number): void {
    if (adoptable(round) && round > this.#maxRound) this.#maxRound = round;
  }

  #prepare(now: number, out: LogOutput<C>): void {
    const leader = this.#leader;
    if (leader === null) return;
    if (now >= leader.deadline) return;
    leader.prepareAttempt = ++this.#attempts;
    leader.prepareSentAt = now;
    leader.prepareFrom = this.#applied + 1;
    const message: LogMessage<C> = {
      type: 'log.prepare',
      ballot: leader.ballot,
      attempt: leader.prepareAttempt,
      from: leader.prepareFrom,
    };
    for (const to of this.#others) out.send.push({ to, message });
    // Its own promise, without a network hop.
    if (this.#voting(now) && this.#acceptor.mayPromise(leader.ballot)) {
      this.#acceptor.promise(leader.ballot);
      const report = this.#acceptor.report(leader.prepareFrom, Number.MAX_SAFE_INTEGER);
      for (const e of report.entries) leader.addReport(e, compareBallots);
      leader.promisers.set(this.config.id, {
        floor: this.#acceptor.floor,
        applied: this.#applied,
        next: null,
        askedAt: now,
        lossy: this.#lossy,
      });
      this.#persist(out);
    }
  }

  #onPromise(
    from: NodeId,
    message: Extract<LogMessage<C>, { type: 'log.promise' }>,
    now: number,
    out: LogOutput<C>,
  ): void {
    const leader = this.#leader;
    if (leader?.phase !== 'prepare' || !ballotEquals(message.ballot, leader.ballot)) return;
    // A page ends before the next one starts; anything else is not from a correct peer.
    const last = message.entries[message.entries.length - 1]?.slot ?? message.from - 1;
    if (message.next !== null && message.next <= Math.max(last, message.from)) return;
    const promiser = leader.promisers.get(from);
    if (promiser === undefined) {
      // A first page: a vote, counted only inside the window of the Prepare it answers.
      if (message.attempt !== leader.prepareAttempt || message.from !== leader.prepareFrom) {
        return;
      }
      if (!this.inVoteWindow(leader.prepareSentAt, now)) return;
      leader.promisers.set(from, {
        floor: message.floor,
        applied: message.applied,
        next: message.next,
        askedAt: now,
        lossy: message.lossy,
      });
    } else {
      // A later page of a report already counted: only the one asked for.
      if (promiser.next === null || message.from !== promiser.next) return;
      promiser.next = message.next;
      promiser.askedAt = now;
    }
    for (const e of message.entries) leader.addReport(e, compareBallots);
    if (message.next !== null) {
      out.send.push({
        to: from,
        message: {
          type: 'log.prepare',
          ballot: leader.ballot,
          attempt: leader.prepareAttempt,
          from: message.next,
        },
      });
      return;
    }
    if (leader.completePromisers() >= this.#quorum) this.#takeOver(now, out);
  }

  /** A majority promised and reported: catch up if one of them is further, then propose. */
  #takeOver(now: number, out: LogOutput<C>): void {
    const leader = this.#leader;
    if (leader === null) return;
    let target = this.#applied;
    let ahead: NodeId | null = null;
    for (const [node, p] of leader.promisers) {
      if (p.next === null && p.floor > target) {
        target = p.floor;
        ahead = node;
      }
    }
    leader.catchUpTo = target;
    leader.catchUpFrom = ahead;
    leader.phase = 'catch-up';
    this.#continueTakeover(now, out);
  }

  #continueTakeover(now: number, out: LogOutput<C>): void {
    const leader = this.#leader;
    if (leader?.phase !== 'catch-up') return;
    if (this.#applied < leader.catchUpTo) {
      const to = leader.catchUpFrom;
      const fetching = this.#fetching;
      if (
        to !== null &&
        this.#assembly === null &&
        (fetching?.from !== this.#applied + 1 || now >= fetching.at + this.#retryMs)
      ) {
        this.#fetching = { to, from: this.#applied + 1, at: now };
        out.send.push({ to, message: { type: 'log.fetch', from: this.#applied + 1 } });
      }
      return;
    }
    // Re-propose the highest-ballot report of every slot after what is applied, fill the gaps
    // with no-ops, and open the term with a no-op barrier.
    let top = this.#applied;
    for (const slot of leader.reports.keys()) if (slot > top) top = slot;
    for (let slot = this.#applied + 1; slot <= top; slot++) {
      const value = this.#known.has(slot)
        ? (this.#known.get(slot) ?? null)
        : (leader.reports.get(slot)?.value ?? null);
      leader.proposals.set(slot, { value, acks: new Set(), attempt: 0 });
    }
    leader.reports.clear();
    leader.barrier = top + 1;
    leader.proposals.set(top + 1, { value: null, acks: new Set(), attempt: 0 });
    leader.nextSlot = top + 2;
    leader.phase = 'accept';
    this.#sendAccepts([...leader.proposals.keys()], now, out);
  }

  // -------------------------------------------------------------------------------------------
  // Leading: phase 2

  /** Sends Accepts for `slots` (in pages), counting its own vote at once. */
  #sendAccepts(slots: readonly number[], now: number, out: LogOutput<C>): void {
    const leader = this.#leader;
    // Accepts go out only while the lease holds (checked on this very reading of the clock).
    if (leader === null || now >= leader.deadline || slots.length === 0) return;
    let i = 0;
    while (i < slots.length) {
      const attempt = ++this.#attempts;
      const entries: SlotValue<C>[] = [];
      let bytes = 0;
      for (; i < slots.length && entries.length < this.#pageEntries; i++) {
        const slot = slots[i] ?? 0;
        const p = leader.proposals.get(slot);
        if (p === undefined) continue;
        const size = this.#valueBytes(p.value);
        if (entries.length > 0 && bytes + size > this.#maxPageBytes) break;
        // A majority is counted from one send alone: votes gathered across sends could include
        // one cast before a voter's restart without disk and others cast after its rebuild,
        // which that rebuild never saw (docs/design.md, "Recovery without disk").
        p.attempt = attempt;
        p.acks.clear();
        entries.push({ slot, value: p.value });
        bytes += size;
      }
      if (entries.length === 0) continue;
      leader.attempts.set(attempt, { sentAt: now, slots: entries.map((e) => e.slot) });
      const commit = this.#applied;
      leader.commitSent = Math.max(leader.commitSent, commit);
      leader.heartbeatAt = now + this.#heartbeatMs;
      const message: LogMessage<C> = {
        type: 'log.accept',
        ballot: leader.ballot,
        attempt,
        entries,
        commit,
      };
      for (const to of this.#others) out.send.push({ to, message });
      // Its own vote.
      if (this.#voting(now) && this.#acceptor.accept(leader.ballot, entries)) {
        for (const { slot, value } of entries) {
          this.#unsaved.push({ slot, ballot: leader.ballot, value });
        }
        this.#persist(out);
        this.#count(this.config.id, attempt, now, out);
      }
    }
  }

  #onAccepted(
    from: NodeId,
    message: Extract<LogMessage<C>, { type: 'log.accepted' }>,
    now: number,
    out: LogOutput<C>,
  ): void {
    const leader = this.#leader;
    if (leader === null || !ballotEquals(message.ballot, leader.ballot)) return;
    leader.followerApplied.set(from, message.applied);
    this.#count(from, message.attempt, now, out);
  }

  /** Counts `voter`'s acceptance of one attempt, if inside its vote window. */
  #count(voter: NodeId, attempt: number, now: number, out: LogOutput<C>): void {
    const leader = this.#leader;
    if (leader === null) return;
    const sent = leader.attempts.get(attempt);
    if (sent === undefined || !this.inVoteWindow(sent.sentAt, now)) return;
    let chose = false;
    for (const slot of sent.slots) {
      const p = leader.proposals.get(slot);
      if (p?.attempt !== attempt) continue;
      p.acks.add(voter);
      if (p.acks.size >= this.#quorum) {
        // Chosen: only the leader declares it (the others learn it from the commit index).
        leader.proposals.delete(slot);
        this.#known.set(slot, p.value);
        chose = true;
      }
    }
    if (chose) {
      this.#applyKnown(now, out);
      this.#forgetAttempts();
    }
  }

  /** Drops attempts none of whose slots is still open. */
  #forgetAttempts(): void {
    const leader = this.#leader;
    if (leader === null) return;
    for (const [attempt, sent] of leader.attempts) {
      if (!sent.slots.some((s) => leader.proposals.has(s))) leader.attempts.delete(attempt);
    }
  }

  #onReject(
    message: Extract<LogMessage<C>, { type: 'log.reject' }>,
    now: number,
    out: LogOutput<C>,
  ): void {
    const leader = this.#leader;
    if (leader === null || !ballotEquals(message.ballot, leader.ballot)) return;
    if (compareBallots(message.promised, leader.ballot) <= 0) return;
    // A higher ballot was promised: phase 1 again, above it, while the lease holds.
    this.#outbid(now, out);
  }

  /**
   * Moves the leader on: retries what waited too long, proposes queued commands while the
   * pipeline has room, and tells the others the commit index when nothing else carries it.
   */
  #drive(now: number, out: LogOutput<C>): void {
    this.#driveRecovery(now, out);
    // Catching up (a follower behind the commit index, a leader in its takeover, a node
    // rebuilding its state): whatever it waits for is asked for again when due.
    this.#retryFetch(now, out);
    const leader = this.#leader;
    if (leader === null || now >= leader.deadline) return;
    switch (leader.phase) {
      case 'prepare':
        this.#retryPrepare(leader, now, out);
        return;
      case 'catch-up':
        this.#continueTakeover(now, out);
        return;
      case 'accept':
        break;
      default: {
        const never: never = leader.phase;
        throw new InvariantError(`unknown phase ${String(never)}`);
      }
    }
    // Resend what has waited a retry interval.
    const late: number[] = [];
    for (const [slot, p] of leader.proposals) {
      const sent = leader.attempts.get(p.attempt);
      if (sent === undefined || now >= sent.sentAt + this.#retryMs) late.push(slot);
    }
    if (late.length > 0) this.#sendAccepts(late, now, out);
    // New batches, only once serving, while the pipeline has room.
    while (leader.serving && leader.queue.length > 0 && leader.proposals.size < this.#pipeline) {
      const batch = this.#takeBatch(leader);
      const slot = leader.nextSlot++;
      leader.proposals.set(slot, { value: batch, acks: new Set(), attempt: 0 });
      this.#sendAccepts([slot], now, out);
    }
    if (this.#applied > leader.commitSent || now >= leader.heartbeatAt) {
      leader.commitSent = this.#applied;
      leader.heartbeatAt = now + this.#heartbeatMs;
      const message: LogMessage<C> = {
        type: 'log.accept',
        ballot: leader.ballot,
        attempt: 0,
        entries: [],
        commit: this.#applied,
      };
      for (const to of this.#others) out.send.push({ to, message });
    }
  }

  #takeBatch(leader: LogLeaderTerm<C>): C[] {
    let bytes = 0;
    let n = 0;
    for (const c of leader.queue) {
      const size = this.config.sizeOf(c);
      if (n > 0 && bytes + size > this.#maxBatchBytes) break;
      bytes += size;
      n += 1;
    }
    const batch = leader.queue.slice(0, n);
    leader.queue = leader.queue.slice(n);
    leader.queueBytes -= bytes;
    return batch;
  }

  #retryPrepare(leader: LogLeaderTerm<C>, now: number, out: LogOutput<C>): void {
    if (now < leader.prepareSentAt + this.#retryMs) {
      // Pages of a counted report that went missing are asked for again.
      for (const [node, p] of leader.promisers) {
        if (p.next !== null && now >= p.askedAt + this.#retryMs) {
          p.askedAt = now;
          out.send.push({
            to: node,
            message: {
              type: 'log.prepare',
              ballot: leader.ballot,
              attempt: leader.prepareAttempt,
              from: p.next,
            },
          });
        }
      }
      return;
    }
    if (leader.completePromisers() >= this.#quorum) return;
    // No majority inside the window: phase 1 again with a fresh ballot and send time.
    this.#outbid(now, out);
  }

  #retryFetch(now: number, out: LogOutput<C>): void {
    const assembly = this.#assembly;
    if (assembly !== null) {
      if (now >= this.#assemblyAskedAt + this.#retryMs) this.#askParts(assembly, now, out);
      return;
    }
    const fetching = this.#fetching;
    if (fetching !== null && now >= fetching.at + this.#retryMs) {
      if (fetching.from <= this.#applied) this.#fetching = null;
      else {
        fetching.at = now;
        out.send.push({ to: fetching.to, message: { type: 'log.fetch', from: fetching.from } });
      }
    }
    this.#maybeFetch(now, out);
  }

  /** When this machine wants to be called again (covers its whole state). */
  wakeAt(now: number): number | null {
    let at: number | null = null;
    const leader = this.#leader;
    if (leader !== null && now < leader.deadline) {
      if (leader.phase === 'prepare') at = earliest(at, leader.prepareSentAt + this.#retryMs);
      for (const p of leader.promisers.values()) {
        if (p.next !== null) at = earliest(at, p.askedAt + this.#retryMs);
      }
      for (const p of leader.proposals.values()) {
        const sent = leader.attempts.get(p.attempt);
        at = earliest(at, sent === undefined ? now : sent.sentAt + this.#retryMs);
      }
      if (leader.phase === 'accept') at = earliest(at, leader.heartbeatAt);
    }
    const recovery = this.#recovery;
    if (recovery !== null) {
      const silentUntil = this.config.silentUntil?.() ?? 0;
      at = earliest(at, now < silentUntil ? silentUntil : (recovery.nextAskAt ?? now));
    }
    if (this.#assembly !== null) at = earliest(at, this.#assemblyAskedAt + this.#retryMs);
    if (this.#fetching !== null) at = earliest(at, this.#fetching.at + this.#retryMs);
    return at;
  }

  // -------------------------------------------------------------------------------------------
  // Recovery without disk

  #driveRecovery(now: number, out: LogOutput<C>): void {
    if (this.#recoveryFloor !== null && now >= this.#recoveryProgressAt + 2 * this.config.leaseMs) {
      // The node it catches up from went away (or lost its memory too): ask everyone again.
      this.#recoveryFloor = null;
      this.#recovery = new LogRecovery<C>({
        peers: this.config.peers,
        self: this.config.id,
        retryMs: this.config.leaseMs / 8,
      });
    }
    const recovery = this.#recovery;
    if (recovery === null || now < (this.config.silentUntil?.() ?? 0)) return;
    const incarnation = this.config.incarnation;
    this.#maybeRecovered(recovery, now, out);
    if (this.#recovery === null) return;
    if (recovery.due(now)) {
      for (const to of recovery.ask(now)) {
        out.send.push({ to, message: { type: 'log.recover', incarnation, from: 0 } });
      }
    }
    for (const { to, from } of recovery.pages(now)) {
      out.send.push({ to, message: { type: 'log.recover', incarnation, from } });
    }
  }

  /** Answers a recovering node. */
  #onRecover(
    from: NodeId,
    incarnation: string,
    slot: number,
    now: number,
    out: LogOutput<C>,
  ): void {
    const answer = this.recoveryAnswer(incarnation, slot, now);
    if (answer !== null) out.send.push({ to: from, message: answer });
  }

  /**
   * The answer to a recovering node's question (its `incarnation`, from slot `slot`): nothing
   * during this node's own restart silence, `voting: false` while it recovers itself, and while
   * its state is lossy (rebuilt after a majority lost its memory, until the new epoch applies):
   * its memory is not whole, so a node rebuilding from it must count it among those that forgot
   * and be lossy too, or a leader it helps elect would serve the old epoch's table (a token
   * granted twice). Answering is not voting: a stopping node still tells what it holds.
   */
  recoveryAnswer(incarnation: string, slot: number, now: number): LogMessage<C> | null {
    if (now < (this.config.silentUntil?.() ?? 0)) return null;
    const voting = this.#recovery === null && this.#recoveryFloor === null && !this.#lossy;
    const page = voting ? this.#report(slot) : { entries: [], next: null };
    return {
      type: 'log.recovery',
      incarnation,
      voting,
      promised: voting ? this.#acceptor.promised : null,
      maxRound: this.#maxRound,
      // What it has applied is chosen, voting or not: a node rebuilding after a loss of memory
      // must not start the log over below it.
      floor: this.#acceptor.floor,
      from: slot,
      entries: page.entries,
      next: page.next,
    };
  }

  #onRecovery(
    from: NodeId,
    message: Extract<LogMessage<C>, { type: 'log.recovery' }>,
    now: number,
    out: LogOutput<C>,
  ): void {
    const recovery = this.#recovery;
    if (recovery === null || message.incarnation !== this.config.incarnation) return;
    const next = recovery.answer(from, message, now);
    if (next !== null) {
      out.send.push({
        to: from,
        message: { type: 'log.recover', incarnation: this.config.incarnation, from: next },
      });
    }
    this.#maybeRecovered(recovery, now, out);
  }

  #maybeRecovered(recovery: LogRecovery<C>, now: number, out: LogOutput<C>): void {
    const state = recovery.result();
    if (state === null) return;
    this.#recovery = null;
    this.#acceptor.adopt(state.promised, state.entries);
    // Written down before it votes (once whole): what it holds then is what it would report.
    for (const e of state.entries) if (e.slot > this.#acceptor.floor) this.#unsaved.push(e);
    this.#see(state.maxRound);
    if (state.promised !== null) this.#see(state.promised.round);
    this.#lossy = state.lossy;
    if (state.lossy) {
      const top = state.entries[state.entries.length - 1]?.slot ?? 0;
      this.#lossyAbove = Math.max(state.floor, top, this.#acceptor.top, this.#applied);
    }
    if (state.floor > this.#applied && state.floorFrom !== null) {
      // Those slots are chosen and gone from every report: learn them before voting.
      this.#recoveryFloor = state.floor;
      this.#recoveryProgressAt = now;
      if (state.floor > this.#commitSeen) {
        this.#commitSeen = state.floor;
        this.#commitFrom = state.floorFrom;
      }
      this.#maybeFetch(now, out);
      return;
    }
    this.#persist(out);
    out.events.push({ type: 'recovered', lossy: state.lossy, floor: this.#applied });
  }

  #persist(out: LogOutput<C>): void {
    // Nothing is written while rebuilding, up to the furthest floor reported: a record on disk
    // says "this state is whole", and a restart that found one would vote without the rebuild
    // (the disk would hold only what a forgetful node saw since, or entries copied from others
    // for slots chosen since with other values). What it learns meanwhile is written once it
    // has recovered.
    if (this.recovering) return;
    const promised = this.#acceptor.promised;
    if (
      this.#unsaved.length === 0 &&
      this.#unsavedChosen.length === 0 &&
      this.#unsavedSnapshot === null &&
      this.#savedMaxRound === this.#maxRound &&
      this.#savedLossy === this.#lossy &&
      ballotEquals(this.#savedPromise, promised)
    ) {
      return;
    }
    const earlier = out.persist?.accepted ?? [];
    out.persist = {
      promised,
      maxRound: this.#maxRound,
      accepted: earlier.length === 0 ? this.#unsaved : [...earlier, ...this.#unsaved],
      chosen: [...(out.persist?.chosen ?? []), ...this.#unsavedChosen],
      snapshot: this.#unsavedSnapshot ?? out.persist?.snapshot ?? null,
      lossyAbove: this.#lossy ? this.#lossyAbove : null,
    };
    this.#unsaved = [];
    this.#unsavedChosen = [];
    this.#unsavedSnapshot = null;
    this.#savedPromise = promised;
    this.#savedMaxRound = this.#maxRound;
    this.#savedLossy = this.#lossy;
  }
}
