import type { Clock, Scheduler } from '../clock.js';
import {
  decodeFrame,
  encodeEnvelope,
  encodeFrameWith,
  encodeMessage,
  PROTOCOL_VERSION,
  type EncodedEnvelope,
  type EncodedMessage,
  type ProtocolMessage,
} from '../codec/messages.js';
import { InvariantError, type InvalidMessageError } from '../errors.js';
import { errorFields } from '../logger.js';
import type { Storage } from '../storage.js';
import type { Transport } from '../transport.js';
import type { NodeId, Output } from '../types.js';
import { CONFLICT_WINDOW_MS, IncarnationTracker, LOG_INTERVAL_MS } from './incarnations.js';
import type { NodeLogger } from './logger.js';
import type { InvalidFrameReason, NodeCounters } from './stats.js';

/** The input every pure machine takes: a message from a peer, or a timer tick. */
export type MachineInput<M> =
  | { readonly type: 'message'; readonly from: NodeId; readonly message: M }
  | { readonly type: 'tick' };

/** What the driver needs of a pure machine. */
export interface PureMachine<M, R, E> {
  start(now: number): Output<M, R, E>;
  handle(input: MachineInput<M>, now: number): Output<M, R, E>;
}

export interface DriverOptions<M extends ProtocolMessage, R, E> {
  readonly id: NodeId;
  readonly incarnation: string;
  readonly cluster: string;
  /** Every voter, this node included. */
  readonly peers: readonly NodeId[];
  readonly transport: Transport;
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  readonly storage: Storage<R> | null;
  readonly log: NodeLogger;
  readonly counters: NodeCounters;
  /** Which decoded messages belong to this machine; the others are dropped as `unsupported`. */
  readonly accepts: (message: ProtocolMessage) => message is M;
  /** Applies the events of one output, after its persist and its sends. */
  readonly onEvents: (events: readonly E[], now: number) => void;
  /** Runs after every step, in the same turn: the node re-checks its lease here. */
  readonly afterStep: (now: number) => void;
  /** An extra wake-up the node wants besides the machine's (its lease deadline). */
  readonly extraWake: () => number | null;
  /**
   * A failure the node cannot continue after: storage refused a write (nothing more may be
   * sent), or the machine threw (a bug). The node halts.
   */
  readonly onFatal: (error: unknown) => void;
  /**
   * Messages that may travel and be taken as one (the node: lock requests, whose commands then
   * share a log slot), and how to join them: those one sender's that arrive in a row within a
   * turn go to the machine as one, and those this node sends to one node within a turn go out
   * as one frame (up to `maxBytes`).
   */
  readonly join?: MessageJoin<M>;
}

/** See `DriverOptions.join`. */
export interface MessageJoin<M> {
  readonly joinable: (message: M) => boolean;
  /** One message standing for `messages` (two or more, in the order they arrived or were sent). */
  readonly join: (messages: readonly M[]) => M;
  /** About how many bytes a message's content takes on the wire. */
  readonly bytes: (message: M) => number;
  /** Joined messages sent as one frame stay under this (one larger on its own goes alone). */
  readonly maxBytes: number;
}

/** A frame taken off the wire and waiting for the end of its turn. */
interface Arrival<M> {
  readonly from: NodeId;
  message: M;
  /** Joinable messages of the same sender that arrived after this one, with nothing between. */
  more: M[] | null;
}

/**
 * Drives one pure machine: feeds it frames and timer ticks with `clock.now()`, and applies
 * each output in the order safety needs: persist (durably), then send, then events.
 *
 * - Frames are checked as they arrive and handed to the machine together once the turn of the
 *   event loop that brought them ends (a microtask queued by the first): one step for all of
 *   them, each frame a machine call of its own, in arrival order, with a fresh clock reading,
 *   and its output applied before the next call. Consecutive joinable messages of one sender
 *   go in as one (`join`). Any other step (a timer, a call of the application) takes what
 *   waits first, so nothing is handled out of arrival order. Holding a frame to the end of its
 *   turn is a delay the protocol already allows; every decision still reads the clock when made.
 * - Joinable messages an output sends (lock requests) wait for the end of the turn (the
 *   microtasks it queued), and those to one node go out joined, in one frame: like a client that
 *   sent what it had pending at once. Each still goes out after its output's persist.
 *
 * - Without storage, an output is applied in the same turn as the step that made it.
 * - With storage, outputs queue behind the pending write, and each is applied whole and in
 *   order: a later output's sends may rely on what an earlier output persisted.
 * - Exactly one timer is set, at the earliest wake-up the machine (or the node) asks for. A
 *   machine's `wakeAt` covers its whole state, so each output's replaces the last. The timer
 *   feeds a `tick` with the clock's reading, and the machine decides on that reading, never on
 *   "the timer fired" (timers can fire early or, after a stall, very late).
 * - Frames are decoded strictly; an invalid one is dropped, counted by reason and logged, and
 *   never reaches the machine.
 */
export class Driver<M extends ProtocolMessage, R, E> {
  readonly #options: DriverOptions<M, R, E>;
  readonly #machine: PureMachine<M, R, E>;
  readonly #expect: { cluster: string; self: NodeId; peers: ReadonlySet<NodeId> };
  #unsubscribe: (() => void) | null = null;
  #timer: unknown = null;
  #timerAt: number | null = null;
  /** The tail of the queue of outputs waiting on storage; null when nothing waits. */
  #pending: Promise<void> | null = null;
  #queued = 0;
  #halted = false;
  /** Per peer: its current incarnation and the few it replaced last (bounded). */
  readonly #incarnations = new IncarnationTracker();
  /** Frames of this turn, not yet handed to the machine. */
  #inbox: Arrival<M>[] = [];
  /** Per sender: its last arrival in the inbox, while joinable messages may join it. */
  readonly #joining = new Map<NodeId, Arrival<M>>();
  /** While the inbox is handed over: a call made meanwhile does not take later frames first. */
  #draining = false;
  /** The wake-up the machine's latest output asked for. */
  #machineWake: number | null = null;
  readonly #drain = (): void => {
    this.#drainInbox();
  };
  /** The envelope of the frames to each node, encoded once. */
  readonly #envelopes = new Map<NodeId, EncodedEnvelope>();
  /** Joinable messages of this turn waiting to go out, per addressee (see `join`). */
  readonly #outbox = new Map<NodeId, M[]>();
  readonly #flush = (): void => {
    this.#flushOutbox();
  };

  constructor(machine: PureMachine<M, R, E>, options: DriverOptions<M, R, E>) {
    this.#machine = machine;
    this.#options = options;
    this.#expect = {
      cluster: options.cluster,
      self: options.id,
      peers: new Set(options.peers.filter((p) => p !== options.id)),
    };
  }

  get halted(): boolean {
    return this.#halted;
  }

  /** How many incarnations of peers are remembered (bounded by the number of peers). */
  get incarnationsTracked(): number {
    return this.#incarnations.size;
  }

  /** Subscribes to the transport; call `begin` once the transport has started. */
  listen(): void {
    if (this.#unsubscribe !== null || this.#halted) return;
    this.#unsubscribe = this.#options.transport.onMessage((from, frame) => {
      this.#receive(from, frame);
    });
  }

  /** Starts the machine (its restart silence begins now). */
  begin(): void {
    this.step((now) => this.#machine.start(now));
  }

  /**
   * Runs one machine call with the clock's current reading and applies its output. Every
   * input goes through here, so the node's after-step check runs on every wake.
   */
  step(call: (now: number) => Output<M, R, E>): void {
    if (this.#halted) return;
    // Frames that arrived before this call go in first.
    if (this.#inbox.length > 0 && !this.#draining) {
      this.#drainInbox();
      if (this.halted) return;
    }
    const now = this.#options.clock.now();
    if (!this.#run(call, now)) return;
    this.#schedule(this.#machineWake, now);
    this.#options.afterStep(now);
  }

  /** Resolves once every queued output has been applied (or dropped by a halt). */
  async settled(): Promise<void> {
    while (this.#pending !== null) await this.#pending;
  }

  /** Re-arms the timer, for when the node's own wake-up changed. */
  reschedule(wakeAt: number | null): void {
    if (this.#halted) return;
    this.#schedule(wakeAt, this.#options.clock.now());
  }

  /**
   * Stops everything at once: no timer, no more input, and nothing queued is sent. Used after a
   * fatal error and when the node stops (once its last output went out).
   */
  halt(): void {
    if (this.#halted) return;
    this.#halted = true;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#clearTimer();
    this.#inbox = [];
    this.#joining.clear();
    this.#outbox.clear();
  }

  /**
   * One machine call with `now`, its output applied. False if the driver halted (the machine
   * threw, or applying the output halted it).
   */
  #run(call: (now: number) => Output<M, R, E>, now: number): boolean {
    let out: Output<M, R, E>;
    try {
      out = call(now);
    } catch (error) {
      this.#fatal(error);
      return false;
    }
    // A machine's wakeAt covers its whole state: the latest output's is the one that counts,
    // also when applying this one runs a call of its own (an event handler's).
    this.#machineWake = out.wakeAt;
    this.#apply(out, now);
    return !this.#halted;
  }

  /** Hands the frames of this turn to the machine: one step (see the class comment). */
  #drainInbox(): void {
    const inbox = this.#inbox;
    if (inbox.length === 0 || this.#halted || this.#draining) return;
    this.#inbox = [];
    this.#joining.clear();
    const { clock, join } = this.#options;
    let now = clock.now();
    this.#draining = true;
    try {
      for (const arrival of inbox) {
        const { from } = arrival;
        const message =
          arrival.more === null || join === undefined
            ? arrival.message
            : join.join([arrival.message, ...arrival.more]);
        now = clock.now();
        if (!this.#run((t) => this.#machine.handle({ type: 'message', from, message }, t), now)) {
          return;
        }
      }
    } finally {
      this.#draining = false;
    }
    this.#schedule(this.#machineWake, now);
    this.#options.afterStep(now);
    // Frames that arrived while these were handed over (none, with a transport that never
    // delivers inside a send) wait for their own microtask.
  }

  #receive(from: NodeId, text: string): void {
    if (this.#halted) return;
    const { counters, log } = this.#options;
    const result = decodeFrame(text, this.#expect);
    if (!result.ok) {
      this.#drop(from, result.reason, result.error);
      return;
    }
    const { frame } = result;
    if (frame.from !== from) {
      // The transport knows which link a frame came over: a frame naming another sender is
      // spoofed or misrouted.
      this.#drop(from, 'sender', null);
      return;
    }
    if (!this.#options.accepts(frame.msg)) {
      this.#drop(from, 'unsupported', null);
      return;
    }
    this.#noteIncarnation(frame.from, frame.inc);
    counters.framesIn += 1;
    if (log.enabled('trace')) log.trace({ from: frame.from, type: frame.msg.type }, 'frame in');
    this.#arrive(frame.from, frame.msg);
  }

  /** Puts a checked message in this turn's inbox, joined to its sender's last if it may be. */
  #arrive(from: NodeId, message: M): void {
    const inbox = this.#inbox;
    if (inbox.length === 0) queueMicrotask(this.#drain);
    const joinable = this.#options.join?.joinable(message) === true;
    if (joinable) {
      const last = this.#joining.get(from);
      if (last !== undefined) {
        (last.more ??= []).push(message);
        return;
      }
    }
    const arrival: Arrival<M> = { from, message, more: null };
    inbox.push(arrival);
    if (joinable) this.#joining.set(from, arrival);
    else this.#joining.delete(from);
  }

  #drop(from: NodeId, reason: InvalidFrameReason, error: InvalidMessageError | null): void {
    const { counters, log } = this.#options;
    counters.invalidFrames[reason] += 1;
    if (log.enabled('warn')) {
      // The codec's message quotes at most a short, escaped prefix of the input.
      log.warn({ from, reason, detail: error?.message ?? null }, 'dropped an invalid frame');
    }
  }

  /**
   * One id in two live processes is an operator error outside the fault model: it adds a voter.
   * Its sign is frames of that peer going back and forth between two incarnations, several times
   * within a short window: that is counted and logged at error (at most once a minute per
   * peer). A new incarnation that goes on is a restart (info); a single frame under another
   * incarnation (a stray, or one delayed across a restart) is counted and nothing more.
   */
  #noteIncarnation(peer: NodeId, incarnation: string): void {
    const { counters, log, clock } = this.#options;
    const note = this.#incarnations.note(peer, incarnation, clock.now());
    switch (note.type) {
      case 'same':
        return;
      case 'restart':
        if (note.log !== null && log.enabled('info')) {
          log.info(
            { peer, incarnation, previous: note.previous, suppressed: note.log.suppressed },
            'a peer runs under a new incarnation (it restarted)',
          );
        }
        return;
      case 'returned':
        counters.staleIncarnations += 1;
        if (!note.conflict) return;
        counters.incarnationConflicts += 1;
        if (note.log !== null) {
          log.error(
            {
              peer,
              incarnations: [incarnation, note.replaced],
              windowMs: CONFLICT_WINDOW_MS,
              suppressed: note.log.suppressed,
              intervalMs: LOG_INTERVAL_MS,
            },
            'frames of one peer alternate between two incarnations: is one node id running in two processes?',
          );
        }
        return;
      default: {
        const never: never = note;
        throw new InvariantError(`unknown incarnation note ${JSON.stringify(never)}`);
      }
    }
  }

  #apply(out: Output<M, R, E>, now: number): void {
    if (this.#options.storage === null || (out.persist === null && this.#pending === null)) {
      this.#send(out);
      this.#options.onEvents(out.events, now);
      return;
    }
    const storage = this.#options.storage;
    const previous = this.#pending ?? Promise.resolve();
    this.#queued += 1;
    const next = previous.then(async () => {
      if (this.#halted) return;
      if (out.persist !== null) {
        try {
          await storage.save(out.persist);
        } catch (error) {
          // What was not durably written must never be sent: a vote forgotten after a crash.
          this.#fatal(error);
          return;
        }
        this.#options.counters.storageSaves += 1;
      }
      if (this.halted) return;
      this.#send(out);
      this.#options.onEvents(out.events, this.#options.clock.now());
    });
    this.#pending = next;
    void next.finally(() => {
      this.#queued -= 1;
      if (this.#queued === 0) this.#pending = null;
    });
  }

  #send(out: Output<M, R, E>): void {
    const { id } = this.#options;
    const join = this.#options.join;
    // A message to several nodes (the machines push one object per addressee, in a row) is
    // encoded once.
    let last: M | null = null;
    let encoded: EncodedMessage | null = null;
    for (const { to, message } of out.send) {
      if (to === id) continue;
      if (join?.joinable(message) === true) {
        this.#hold(to, message);
        continue;
      }
      try {
        if (message !== last || encoded === null) {
          encoded = encodeMessage(message);
          last = message;
        }
      } catch (error) {
        this.#fatal(error);
        return;
      }
      if (!this.#sendFrame(to, message, encoded)) return;
    }
  }

  /** Frames `message` (encoded) for `to` and hands it to the transport; false on a fatal error. */
  #sendFrame(to: NodeId, message: M, encoded: EncodedMessage): boolean {
    const { transport, counters, log, id, incarnation, cluster } = this.#options;
    let frame: string;
    try {
      let envelope = this.#envelopes.get(to);
      if (envelope === undefined) {
        envelope = encodeEnvelope({ v: PROTOCOL_VERSION, cluster, from: id, to, inc: incarnation });
        this.#envelopes.set(to, envelope);
      }
      frame = encodeFrameWith(envelope, encoded);
    } catch (error) {
      this.#fatal(error);
      return false;
    }
    counters.framesOut += 1;
    if (log.enabled('trace')) log.trace({ to, type: message.type }, 'frame out');
    transport.send(to, frame);
    return true;
  }

  /** Keeps a joinable message for the end of the turn (see `join`). */
  #hold(to: NodeId, message: M): void {
    const outbox = this.#outbox;
    if (outbox.size === 0) queueMicrotask(this.#flush);
    const held = outbox.get(to);
    if (held === undefined) outbox.set(to, [message]);
    else held.push(message);
  }

  /** Sends what the turn held back: per node, joined into frames of at most `maxBytes`. */
  #flushOutbox(): void {
    const join = this.#options.join;
    if (this.#halted || join === undefined) return;
    for (const [to, messages] of this.#outbox) {
      this.#outbox.delete(to);
      let batch: M[] = [];
      let bytes = 0;
      const sendBatch = (): boolean => {
        const message = batch.length === 1 ? batch[0] : join.join(batch);
        batch = [];
        bytes = 0;
        if (message === undefined) return true;
        let encoded: EncodedMessage;
        try {
          encoded = encodeMessage(message);
        } catch (error) {
          this.#fatal(error);
          return false;
        }
        return this.#sendFrame(to, message, encoded);
      };
      for (const message of messages) {
        const size = join.bytes(message);
        if (batch.length > 0 && bytes + size > join.maxBytes && !sendBatch()) return;
        batch.push(message);
        bytes += size;
      }
      if (batch.length > 0 && !sendBatch()) return;
    }
  }

  #schedule(machineWake: number | null, now: number): void {
    const extra = this.#options.extraWake();
    let at = machineWake;
    if (extra !== null && (at === null || extra < at)) at = extra;
    if (at === this.#timerAt && this.#timer !== null) return;
    this.#clearTimer();
    if (at === null) return;
    // Rounded up: a timer must not fire before `at` on a clock that counts whole milliseconds
    // (fake timers truncate fractional delays). At least 1 ms, as Node's own timers: a wake-up
    // asked for in the past must not spin a virtual clock at one instant.
    const delay = Math.max(1, Math.ceil(at - now));
    this.#timerAt = at;
    this.#timer = this.#options.scheduler.setTimeout(() => {
      this.#timer = null;
      this.#timerAt = null;
      this.#options.counters.wakeups += 1;
      this.step((t) => this.#machine.handle({ type: 'tick' }, t));
    }, delay);
  }

  #clearTimer(): void {
    if (this.#timer !== null) this.#options.scheduler.clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = null;
  }

  #fatal(error: unknown): void {
    if (this.#halted) return;
    this.#options.log.error(errorFields(error), 'the node cannot continue and halts');
    this.halt();
    this.#options.onFatal(error);
  }
}
