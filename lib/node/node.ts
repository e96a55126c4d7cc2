import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'eventemitter3';
import type { WebSocketTransportOptions } from '../../adapters/websocket/options.js';
import { WebSocketTransport } from '../../adapters/websocket/transport.js';
import { systemClock, systemScheduler, type Clock, type Scheduler } from '../clock.js';
import {
  decodeFrame,
  encodeFrame,
  PROTOCOL_VERSION,
  type ProtocolMessage,
} from '../codec/messages.js';
import { snapshot } from '../counters.js';
import { ConfigError, InvariantError, NotStartedError } from '../errors.js';
import type { FollowerHandler, LeaderChange, LeaderHandler, NodeEvents } from '../events.js';
import type { LeaseEvent } from '../lease/machine.js';
import type { ClientCommand } from '../locks/messages.js';
import { commandBytes } from '../locks/size.js';
import type { LogEvent } from '../log/multi-paxos.js';
import { errorFields } from '../logger.js';
import {
  AGREED_SETTINGS,
  agreedSettings,
  validateOptions,
  type NodeOptions,
  type ResolvedOptions,
} from '../options.js';
import { createRng } from '../random.js';
import {
  ReplicaMachine,
  type ReplicaEvent,
  type ReplicaMessage,
  type ReplicaOutput,
  type ReplicaUpdate,
} from '../replica/machine.js';
import type { SettingsRefusal, Transport } from '../transport.js';
import { ownerEquals, type NodeId } from '../types.js';
import { Driver, type MessageJoin } from './driver.js';
import { LeaderRole } from './leader.js';
import type { Lock } from './lock-handle.js';
import { LockManager, type LockInfo, type LockOptions } from './locks.js';
import { NodeLogger } from './logger.js';
import { nodeCounters, type NodeStats } from './stats.js';
import { warmUpHandoff } from './warm-up.js';

/**
 * - `new`: created, not started;
 * - `starting`: loading storage and starting the transport;
 * - `running`: taking part in elections;
 * - `stopping`: a graceful `stop()` is handing leadership on;
 * - `stopped`: done; create a new node to rejoin;
 * - `failed`: halted after a failure it cannot continue after (see the `error` event).
 */
export type NodeState = 'new' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

/**
 * Stops a node at once, as if its process died: no timer, no frame and no Release goes out,
 * and its leadership signals abort. Not part of the public API: the test cluster's `crash`.
 */
export const HALT: unique symbol = Symbol('synod.halt');

function isReplicaMessage(message: ProtocolMessage): message is ReplicaMessage {
  const type = message.type;
  return type.startsWith('lease.') || type.startsWith('log.') || type.startsWith('lock.');
}

/**
 * Lock requests this node's holders send within one turn go to the leader in one frame, and
 * those of one node that arrive in one turn go to the replica as one: the leader then proposes
 * their commands together, in one log slot. Either is what the holder's client does itself with
 * whatever waits when it sends (up to 32 KiB of commands a frame).
 */
const JOIN_LOCK_REQUESTS: MessageJoin<ReplicaMessage> = Object.freeze({
  joinable: (message: ReplicaMessage): boolean => message.type === 'lock.request',
  join: (messages: readonly ReplicaMessage[]): ReplicaMessage => {
    const commands: ClientCommand[] = [];
    for (const m of messages) {
      if (m.type !== 'lock.request') continue;
      for (const c of m.commands) commands.push(c);
    }
    return { type: 'lock.request', commands };
  },
  bytes: (message: ReplicaMessage): number => {
    if (message.type !== 'lock.request') return 0;
    let bytes = 0;
    for (const c of message.commands) bytes += commandBytes(c);
    return bytes;
  },
  maxBytes: 32 * 1024,
});

/**
 * How many log slots the leader keeps in flight (the log's own default is 32). The log proposes
 * what is queued at once while fewer slots than this are in flight, and each lock call of this
 * process is a replica call of its own: with room in the pipeline, every `acquireLock` and every
 * `release()` on the leader's process got a slot (and a round of Accepts) of its own. With four,
 * the calls made while four slots travel queue up and go out together, in one slot, when one is
 * chosen: between three processes on two cores, 64 holders took about a seventh of the frames
 * and less than half the CPU per cycle (docs/benchmarks.md). The price: at most four batches of
 * 24 KiB of commands per round trip (about 400 lock commands; on a 50 ms link, some 8,000 a
 * second).
 */
const LOG_PIPELINE = 4;

/**
 * One replica's membership in a synod cluster: it takes part in electing a leader (PaxosLease)
 * and runs the application's leadership work while it leads.
 *
 * Every leadership answer (`isLeader`, `stillLeader()`) compares the lease deadline with the
 * clock at the moment it is read; nothing caches "I am the leader". Re-check after every await.
 */
export class SynodNode extends EventEmitter<NodeEvents> {
  readonly id: NodeId;
  readonly #options: ResolvedOptions;
  readonly #clock: Clock;
  readonly #scheduler: Scheduler;
  readonly #log: NodeLogger;
  readonly #counters = nodeCounters();
  readonly #role: LeaderRole;
  /** The application's transport, or the WebSocket transport built from a map of peer URLs. */
  readonly #transport: Transport;
  #state: NodeState = 'new';
  #machine: ReplicaMachine | null = null;
  #driver: Driver<ReplicaMessage, ReplicaUpdate, ReplicaEvent> | null = null;
  readonly #locks: LockManager;
  #starting: Promise<void> | null = null;
  #stopping: Promise<void> | null = null;
  /** Ends a stopped leader's wait for its successor's election early (see `#successorElected`). */
  #endWait: (() => void) | null = null;

  constructor(options: NodeOptions) {
    super();
    const resolved = validateOptions(options);
    this.#options = resolved;
    this.id = resolved.id;
    this.#clock = resolved.clock ?? systemClock;
    this.#scheduler = resolved.scheduler ?? systemScheduler;
    this.#log = new NodeLogger({
      logger: resolved.logger,
      logLevel: resolved.logLevel,
      id: resolved.id,
    });
    this.#transport = resolved.transport ?? webSocketTransport(resolved.websocket, this.#log);
    this.#role = new LeaderRole({
      now: () => this.#clock.now(),
      holds: (term, now) => this.#holds(term, now),
      scheduler: this.#scheduler,
      log: this.#log,
      counters: this.#counters,
    });
    this.#locks = new LockManager({
      clock: this.#clock,
      scheduler: this.#scheduler,
      log: this.#log,
      maxTtlMs: resolved.maxTtlMs,
      minTtlMs: minTtlMs(resolved.maxClockDrift, resolved.marginMs),
      step: (call) => {
        const machine = this.#machine;
        this.#driver?.step((now) => (machine === null ? emptyReplicaOutput() : call(machine, now)));
      },
      running: () => this.#state === 'running',
      machine: () => this.#machine,
    });
    if (resolved.peers.length % 2 === 0) {
      this.#log.warn(
        { peers: resolved.peers.length },
        'an even number of peers tolerates no more failures than one node fewer',
      );
    }
  }

  get state(): NodeState {
    return this.#state;
  }

  /** This run's incarnation (16 hex digits, random per start); null before `start()`. */
  get incarnation(): string | null {
    return this.#machine?.lease.owner.incarnation ?? null;
  }

  /**
   * Whether this node leads *now*: it holds the lease and the clock is before its deadline.
   * Read it right before acting, never across an await. False once a graceful stop began.
   */
  get isLeader(): boolean {
    const machine = this.#machine;
    return this.#state === 'running' && machine?.lease.isLeader(this.#clock.now()) === true;
  }

  /** The leader this node knows (its own id while it leads), or null while unknown. */
  get leaderId(): NodeId | null {
    return this.#view()?.leaderId ?? null;
  }

  /** The term of the leader this node knows, or null while unknown. */
  get term(): number | null {
    return this.#view()?.term ?? null;
  }

  /** While this node leads: when its lease ends, on its own clock (`clock.now()` units). */
  get leaseDeadline(): number | null {
    return this.isLeader ? (this.#machine?.lease.deadline ?? null) : null;
  }

  /**
   * Joins the cluster: loads storage, starts the transport and begins the restart silence (a
   * node votes for nothing during its first lease period, so it may lead only after that).
   */
  start(): Promise<void> {
    if (this.#starting !== null) return this.#starting;
    if (this.#state !== 'new') {
      return Promise.reject(
        new NotStartedError('a stopped node cannot start again; create a new node'),
      );
    }
    this.#starting = this.#start();
    return this.#starting;
  }

  /**
   * Leaves the cluster gracefully. On the leader: aborts the leadership signal, waits for
   * running `onLeader` work (at most `handoffTimeoutMs`) while still renewing the lease, then
   * releases it naming a successor and, taking no part, waits to hear of the successor's
   * election (at most `leaseMs/4`, and at most `handoffTimeoutMs`); if the work did not end in
   * time, it lets the lease lapse instead (it never releases while its work may still run).
   * Then closes the transport.
   * Idempotent.
   */
  stop(): Promise<void> {
    if (this.#stopping === null) {
      if (this.#state === 'running') {
        // Leadership work hears of the stop in the same turn as the call.
        this.#state = 'stopping';
        this.#role.stepDown();
      }
      this.#stopping = this.#stop();
    }
    return this.#stopping;
  }

  /**
   * Runs `handler` each time this node becomes leader, and at once (in a microtask, after the
   * lease is re-checked) if it already leads. The handler may return a promise: its leadership
   * work, which a graceful stop waits for.
   * Returns the unsubscribe function.
   */
  onLeader(handler: LeaderHandler): () => void {
    if (typeof handler !== 'function') throw new ConfigError('onLeader needs a function');
    return this.#role.onLeader(handler);
  }

  /**
   * Runs `handler` when this node learns of a leader that is not itself, and with `leaderId`
   * null when the leader becomes unknown. Returns the unsubscribe function.
   */
  onFollower(handler: FollowerHandler): () => void {
    if (typeof handler !== 'function') throw new ConfigError('onFollower needs a function');
    return this.#role.onFollower(handler);
  }

  /**
   * Takes the cluster-wide lock `name`, waiting in line (FIFO) behind its holder for at most
   * `timeoutMs` (`LockTimeoutError`). Any node may be asked: it forwards to the leader. The lock
   * is renewed in the background while this process lives; a holder that dies or is cut off
   * loses it when its TTL runs out. Check `lock.signal` (or `lock.valid`) right before each
   * side effect, and hand `lock.token` to what you write to (`FencingGuard`).
   */
  acquireLock(name: string, options: LockOptions = {}): Promise<Lock> {
    return this.#lockCall(() => this.#locks.acquire(name, options, true)) as Promise<Lock>;
  }

  /** Takes lock `name` if it is free; resolves to null if someone holds it. */
  tryLock(name: string, options: LockOptions = {}): Promise<Lock | null> {
    return this.#lockCall(() => this.#locks.acquire(name, options, false));
  }

  /**
   * Runs `work` while holding lock `name`, and always releases it. `work` gets the lock: check
   * its `signal` before each side effect (it aborts when the lock may be lost).
   */
  async withLock<T>(
    name: string,
    work: (lock: Lock) => Promise<T> | T,
    options: LockOptions = {},
  ): Promise<T> {
    if (typeof work !== 'function') throw new ConfigError('withLock needs a function');
    const lock = await this.acquireLock(name, options);
    try {
      return await work(lock);
    } finally {
      await lock.release();
    }
  }

  /** Who holds lock `name`, as the leader's table says (read under its lease). */
  getLock(name: string, options: { timeoutMs?: number } = {}): Promise<LockInfo> {
    const timeoutMs = options.timeoutMs ?? 5000;
    return this.#lockCall(() => this.#locks.read(name, timeoutMs));
  }

  #lockCall<T>(call: () => Promise<T>): Promise<T> {
    try {
      return call();
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  stats(): NodeStats {
    return snapshot(this.#counters, { transport: this.#transport.stats() });
  }

  /** See `HALT`. */
  [HALT](): void {
    if (this.#state === 'stopped' || this.#state === 'failed') return;
    this.#state = 'stopped';
    this.#halt();
    this.#log.info({}, 'halted');
  }

  async #start(): Promise<void> {
    this.#state = 'starting';
    const options = this.#options;
    try {
      const restored = options.storage === null ? null : await options.storage.load();
      if (!this.#is('starting')) return;
      const rng = options.rng ?? createRng(randomBytes(4).readUInt32LE(0));
      // A fresh 64-bit incarnation per start, from the operating system even when a test gives
      // its own rng: a restarted node never reuses a ballot, and two nodes (or two lives of
      // one) built with the same seeded rng still differ.
      const incarnation = randomBytes(8).toString('hex');
      const machine = new ReplicaMachine(
        {
          id: options.id,
          incarnation,
          peers: options.peers,
          leaseMs: options.leaseMs,
          maxClockDrift: options.maxClockDrift,
          marginMs: options.marginMs,
          rng,
          preferredLeader: options.preferredLeader,
          maxTtlMs: options.maxTtlMs,
          // The one use of wall-clock time: the token base of a new cluster epoch.
          wallClock: options.wallClock ?? Date.now,
          durable: options.storage !== null,
          log: { pipeline: LOG_PIPELINE },
        },
        restored,
      );
      this.#machine = machine;
      const driver = new Driver<ReplicaMessage, ReplicaUpdate, ReplicaEvent>(machine, {
        id: options.id,
        incarnation,
        cluster: options.cluster,
        peers: options.peers,
        transport: this.#transport,
        clock: this.#clock,
        scheduler: this.#scheduler,
        storage: options.storage,
        log: this.#log,
        counters: this.#counters,
        accepts: isReplicaMessage,
        onEvents: (events) => {
          this.#onEvents(events);
        },
        afterStep: (now) => {
          this.#role.check(now);
        },
        extraWake: () => (this.#role.term === null ? null : machine.lease.deadline),
        onFatal: (error) => {
          this.#fail(error);
        },
        join: JOIN_LOCK_REQUESTS,
      });
      this.#driver = driver;
      // Subscribed before the transport starts, so no early frame is missed.
      driver.listen();
      this.#transport.onRefusal((refusal) => {
        this.#refused(refusal);
      });
      // Peers whose timing settings differ from this node's are refused before any frame.
      await this.#transport.start(agreedSettings(options));
      if (!this.#is('starting')) return;
      this.#state = 'running';
      driver.begin();
      // Inside the restart silence: the first run of the handoff's code costs nothing here.
      try {
        warmUpHandoff(this.#scheduler);
      } catch (error) {
        this.#log.warn(errorFields(error), 'the warm-up of the handoff code failed');
      }
      this.#log.info(
        {
          incarnation,
          peers: options.peers,
          leaseMs: options.leaseMs,
          restored: restored !== null,
        },
        'started',
      );
    } catch (error) {
      if (this.#state === 'starting') {
        this.#state = 'stopped';
        this.#halt();
      }
      throw error;
    }
  }

  async #stop(): Promise<void> {
    if (this.#starting !== null) {
      await this.#starting.catch(() => undefined);
    }
    const driver = this.#driver;
    const machine = this.#machine;
    if (this.#is('running')) {
      // A stop called while starting: the start has just completed.
      this.#state = 'stopping';
      this.#role.stepDown();
    }
    if (this.#is('stopping')) {
      // Held locks are given back while the cluster still has this node's vote.
      await this.#locks.releaseAll(Math.min(this.#options.handoffTimeoutMs, this.#options.leaseMs));
      this.#locks.stop(new NotStartedError('the node stopped'));
    }
    if (this.#is('stopping') && driver !== null && machine !== null) {
      // The machine keeps running meanwhile: the lease is still renewed, so no other node
      // leads while this node's work may still be running.
      const ended = await this.#role.drain(this.#options.handoffTimeoutMs);
      if (this.#is('stopping')) {
        if (!ended) {
          this.#log.warn(
            { handoffTimeoutMs: this.#options.handoffTimeoutMs, running: this.#role.running },
            'onLeader work did not end in time: letting the lease lapse instead of releasing it',
          );
        }
        const successor = this.#stopMachine(driver, machine, ended);
        await driver.settled();
        this.#halt();
        const elected = successor === null ? null : await this.#successorElected();
        if (this.#is('stopping')) {
          this.#state = 'stopped';
          this.#log.info({ released: ended, successor, successorElected: elected }, 'stopped');
        }
      }
    } else if (this.#state === 'new') {
      this.#state = 'stopped';
    }
    await this.#transport.close();
  }

  /** The state now (read through a call: it may have changed across an await). */
  #is(state: NodeState): boolean {
    return this.#state === state;
  }

  /** Stops the machine, releasing if `release`; returns the successor the Release names. */
  #stopMachine(
    driver: Driver<ReplicaMessage, ReplicaUpdate, ReplicaEvent>,
    machine: ReplicaMachine,
    release: boolean,
  ): NodeId | null {
    let successor: NodeId | null = null;
    driver.step((now) => {
      const out = successorFirst(machine.stop(now, release));
      successor = releasedTo(out);
      return out;
    });
    return successor;
  }

  /**
   * After a Release naming a successor, keeps the connections open until the successor's
   * election is heard (a `lease.chosen` notice, from whichever node won), taking no part: the
   * machine is stopped and the driver halted. Closing them at once made every node handle this
   * one's going away (close frames, sockets ending, redials) in the middle of the round that
   * elects the successor: between processes on one host that cost a handoff about a
   * millisecond at the median and two at p90 (docs/benchmarks.md).
   *
   * Bounded by `leaseMs/4`, the least the other nodes wait for the successor before they
   * campaign themselves, and by `handoffTimeoutMs` (0: no wait); a halt ends it at once.
   * Resolves whether the election was heard.
   */
  #successorElected(): Promise<boolean> {
    const { cluster, id, peers, leaseMs, handoffTimeoutMs } = this.#options;
    const boundMs = Math.min(Math.ceil(leaseMs / 4), handoffTimeoutMs);
    if (boundMs <= 0) return Promise.resolve(false);
    const expect = { cluster, self: id, peers: new Set(peers.filter((p) => p !== id)) };
    return new Promise<boolean>((resolve) => {
      let finished = false;
      const done = (heard: boolean): void => {
        if (finished) return;
        finished = true;
        unsubscribe();
        this.#scheduler.clearTimeout(timer);
        this.#endWait = null;
        resolve(heard);
      };
      const unsubscribe = this.#transport.onMessage((from, text) => {
        const result = decodeFrame(text, expect);
        if (!result.ok || result.frame.from !== from) return;
        const msg = result.frame.msg;
        if (msg.type === 'lease.chosen') done(true);
        else if (msg.type === 'lease.recover') this.#answerRecovery(from, msg.incarnation);
        else if (msg.type === 'log.recover') {
          const answer = this.#machine?.log.recoveryAnswer(
            msg.incarnation,
            msg.from,
            this.#clock.now(),
          );
          if (answer !== undefined && answer !== null) this.#sendRaw(from, answer);
        }
      });
      const timer = this.#scheduler.setTimeout(() => {
        done(false);
      }, boundMs);
      this.#endWait = () => {
        done(false);
      };
    });
  }

  /**
   * While a stopped leader waits for its successor's election, a node that has just started
   * without storage may ask it for the highest round seen, and cannot vote before enough nodes
   * have answered: with three nodes, the successor would need that node's vote and that node
   * would wait for this one forever. Answering is not voting: it says what this incarnation saw.
   */
  #answerRecovery(to: NodeId, incarnation: string): void {
    const machine = this.#machine;
    if (machine === null) return;
    this.#sendRaw(to, machine.lease.recoveryAnswer(incarnation));
  }

  /** Sends one message outside the driver (the machine is stopped). */
  #sendRaw(to: NodeId, msg: ProtocolMessage): void {
    const machine = this.#machine;
    if (machine === null) return;
    const { cluster, id } = this.#options;
    try {
      const text = encodeFrame({
        v: PROTOCOL_VERSION,
        cluster,
        from: id,
        to,
        inc: machine.lease.owner.incarnation,
        msg,
      });
      this.#transport.send(to, text);
    } catch (error) {
      this.#log.warn(errorFields(error), 'could not answer a recovery question while stopping');
    }
  }

  /** Stops timers, input and leadership at once; sends nothing more. */
  #halt(): void {
    this.#endWait?.();
    this.#locks.stop(new NotStartedError('the node stopped'));
    this.#role.halt();
    this.#driver?.halt();
    const machine = this.#machine;
    // Ends the machine's part without applying its output: nothing more goes out.
    if (machine !== null) machine.stop(this.#clock.now(), false);
  }

  /**
   * A peer refused because one of the settings every node must agree on differs: the two can
   * never work together (each one's restart silence and lease arithmetic use its own values),
   * so it is an error, on both sides, until one of them restarts with the other's settings.
   */
  #refused(refusal: SettingsRefusal): void {
    this.#log.error(
      { peer: refusal.peer, setting: refusal.setting, ours: refusal.ours, theirs: refusal.theirs },
      `refused a peer whose ${refusal.setting} differs: every node must use the same ` +
        AGREED_SETTINGS.join(', '),
    );
  }

  #fail(error: unknown): void {
    if (this.#state === 'stopped' || this.#state === 'failed') return;
    this.#state = 'failed';
    this.#halt();
    void this.#transport.close().catch(() => undefined);
    const err = error instanceof Error ? error : new Error(String(error));
    this.#emitSafely('error', err);
  }

  #holds(term: number, now: number): boolean {
    const machine = this.#machine;
    return (
      machine !== null &&
      (this.#state === 'running' || this.#state === 'stopping') &&
      machine.lease.term === term &&
      machine.lease.isLeader(now)
    );
  }

  #view(): { leaderId: NodeId; term: number } | null {
    const machine = this.#machine;
    if (machine === null || (this.#state !== 'running' && this.#state !== 'stopping')) {
      return null;
    }
    const view = machine.lease.leader(this.#clock.now());
    if (view === null) return null;
    if (ownerEquals(view.owner, machine.lease.owner) && !this.isLeader) return null;
    return { leaderId: view.owner.node, term: view.term };
  }

  #onEvents(events: readonly ReplicaEvent[]): void {
    for (const e of events) {
      switch (e.type) {
        case 'lease':
          this.#onLeaseEvent(e.event);
          break;
        case 'log':
          this.#onLogEvent(e.event);
          break;
        case 'lock':
          this.#locks.onEvent(e.event);
          break;
        default: {
          const never: never = e;
          this.#log.error({ event: never }, 'unknown event');
        }
      }
    }
  }

  #onLogEvent(event: LogEvent): void {
    switch (event.type) {
      case 'serving':
        this.#log.info(
          { term: event.term, slot: event.slot, lossy: event.lossy },
          'the log is caught up: serving locks',
        );
        break;
      case 'unserving':
        if (this.#log.enabled('debug'))
          this.#log.debug({ term: event.term }, 'log leadership ended');
        break;
      case 'installed':
        this.#log.info({ slot: event.slot, from: event.from }, 'installed a snapshot');
        break;
      case 'recovered':
        this.#log.info(
          { lossy: event.lossy, slot: event.floor },
          'rebuilt the log state from the other nodes: voting again',
        );
        break;
      case 'refused':
        this.#counters.invalidFrames['round-limit'] += 1;
        this.#log.warn(
          { peer: event.from, reason: event.reason },
          'refused a message naming a round above the round limit',
        );
        break;
      default: {
        const never: never = event;
        this.#log.error({ event: never }, 'unknown log event');
      }
    }
  }

  #onLeaseEvent(event: LeaseEvent): void {
    const machine = this.#machine;
    if (machine === null) return;
    {
      switch (event.type) {
        case 'elected':
          this.#counters.elections += 1;
          this.#log.info({ term: event.term }, 'elected leader');
          this.#role.elected(event.term);
          break;
        case 'renewed':
          this.#counters.renewals += 1;
          if (this.#log.enabled('debug')) this.#log.debug({ term: event.term }, 'lease renewed');
          break;
        case 'deposed':
          this.#counters.depositions += 1;
          this.#role.end(event.reason);
          break;
        case 'leader': {
          this.#counters.leaderChanges += 1;
          const owner = event.leader;
          const isSelf = owner !== null && ownerEquals(owner, machine.lease.owner);
          const change: LeaderChange = Object.freeze({
            leaderId: owner?.node ?? null,
            term: event.term,
            isLeader: isSelf,
          });
          this.#log.info(change, 'leader changed');
          this.#emitSafely('leaderChange', change);
          if (!isSelf)
            this.#role.follow(Object.freeze({ leaderId: change.leaderId, term: change.term }));
          break;
        }
        case 'recovered':
          this.#log.info(
            { maxRound: event.maxRound },
            'learned the highest round seen from the other nodes: voting again',
          );
          break;
        case 'refused':
          this.#counters.invalidFrames['round-limit'] += 1;
          this.#log.warn(
            { peer: event.from, reason: event.reason },
            'refused a message naming a round above the round limit',
          );
          break;
        default: {
          const never: never = event;
          this.#log.error({ event: never }, 'unknown lease event');
        }
      }
    }
  }

  /**
   * Emits to the listeners; one that throws is caught and logged (eventemitter3 then skips the
   * listeners after it for this one event) and never breaks the node.
   */
  #emitSafely<K extends keyof NodeEvents>(event: K, ...args: NodeEvents[K]): void {
    try {
      (this.emit as (event: K, ...args: NodeEvents[K]) => boolean)(event, ...args);
    } catch (error) {
      this.#counters.handlerErrors += 1;
      this.#log.error({ ...errorFields(error), event }, 'an event listener failed');
    }
  }
}

/** The successor a Release in `out` names, or null if none goes out. */
function releasedTo(out: ReplicaOutput): NodeId | null {
  for (const { message } of out.send) {
    if (message.type === 'lease.release') return message.successor;
  }
  return null;
}

/**
 * Puts the Release addressed to the successor it names ahead of the others. The successor
 * campaigns the moment its Release arrives, and the frames go out one after the other: every
 * frame encoded and written before the successor's adds to the handoff.
 */
function successorFirst(out: ReplicaOutput): ReplicaOutput {
  const successor = releasedTo(out);
  if (successor === null || out.send[0]?.to === successor) return out;
  const send = [
    ...out.send.filter((e) => e.to === successor),
    ...out.send.filter((e) => e.to !== successor),
  ];
  return { ...out, send };
}

function emptyReplicaOutput(): ReplicaOutput {
  return { send: [], persist: null, events: [], wakeAt: null };
}

/** The shortest lock TTL that leaves a holder any time after its drift allowance and margin. */
function minTtlMs(maxClockDrift: number, marginMs: number): number {
  return Math.ceil(((marginMs + 1) * (1 + maxClockDrift)) / (1 - maxClockDrift));
}

/** The transport a node builds from a map of peer URLs (`validateOptions` checked them). */
function webSocketTransport(
  options: WebSocketTransportOptions | null,
  log: NodeLogger,
): WebSocketTransport {
  if (options === null) throw new InvariantError('a node needs a transport or peer URLs');
  // The node's logger is itself a LoggerLike: the transport's lines carry the node's bindings,
  // and disabled levels cost the transport nothing.
  return new WebSocketTransport({ ...options, logger: log });
}

/**
 * Creates a node; call `start()` to join the cluster. Options are validated here. With `peers`
 * as a map of URLs, the node builds its WebSocket transport (it listens on `start()`).
 */
export function createNode(options: NodeOptions): SynodNode {
  return new SynodNode(options);
}
