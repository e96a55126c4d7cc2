import { InvariantError } from '../errors.js';
import {
  LeaseMachine,
  type LeaseConfig,
  type LeaseEvent,
  type LeaseOutput,
  type LeaseRecord,
} from '../lease/machine.js';
import type { LeaseMessage } from '../lease/messages.js';
import {
  LockClient,
  type LockClientConfig,
  type LockClientEvent,
  type LockClientSink,
} from '../locks/client.js';
import type { LockCommand } from '../locks/commands.js';
import type { ClientCommand, LockMessage } from '../locks/messages.js';
import {
  LockService,
  LockStateMachine,
  type LockServiceConfig,
  type LockServiceSink,
} from '../locks/service.js';
import { commandBytes } from '../locks/size.js';
import type { LogMessage } from '../log/messages.js';
import {
  LogMachine,
  type LogConfig,
  type LogEvent,
  type LogOutput,
  type LogRecord,
  type LogUpdate,
} from '../log/multi-paxos.js';
import { earliest, emptyOutput } from '../paxos/output.js';
import type { NodeRecord, NodeUpdate } from '../storage.js';
import type { NodeId, Output } from '../types.js';

/** Every message a replica sends and takes. */
export type ReplicaMessage = LeaseMessage | LogMessage<LockCommand> | LockMessage;

export interface ReplicaConfig extends LeaseConfig {
  /** The bound on lock TTLs (docs/design.md, "Decisions"). */
  readonly maxTtlMs: number;
  /** Wall-clock Unix ms, read when this node starts a new cluster epoch (its token base). */
  readonly wallClock: () => number;
  /** Tuning of the log, for tests and benchmarks. */
  readonly log?: Pick<
    LogConfig<LockCommand>,
    'pipeline' | 'pageEntries' | 'retainCommands' | 'maxBatchBytes'
  >;
  /** How long a holder's request waits for an answer before it is sent again. */
  readonly retryMs?: number;
  /** Storage keeps this node's state (the log writes snapshots into it now and then). */
  readonly durable?: boolean;
}

/**
 * What a replica kept across a restart with storage. A part that is null was not kept: the
 * lease learns the highest round, and the log rebuilds its state, from the others.
 */
export type ReplicaRecord = NodeRecord;

/** What to write before sending. */
export type ReplicaUpdate = NodeUpdate;

export type ReplicaEvent =
  | { readonly type: 'lease'; readonly event: LeaseEvent }
  | { readonly type: 'log'; readonly event: LogEvent }
  | { readonly type: 'lock'; readonly event: LockClientEvent };

export type ReplicaOutput = Output<ReplicaMessage, ReplicaUpdate, ReplicaEvent>;

export type ReplicaInput =
  | { readonly type: 'message'; readonly from: NodeId; readonly message: ReplicaMessage }
  | { readonly type: 'tick' };

function isLease(m: ReplicaMessage): m is LeaseMessage {
  return m.type.startsWith('lease.');
}

function isLog(m: ReplicaMessage): m is LogMessage<LockCommand> {
  return m.type.startsWith('log.');
}

/**
 * One node's whole pure core: the leader lease, the Multi-Paxos log the lease holder drives,
 * the lock table applied from it, the leader's lock service and this node's lock holders. Like
 * each part, it reads no clock and does no I/O: every call takes `now` and returns what to
 * persist, send and announce.
 *
 * The parts meet here, and only here:
 * - the lease says who leads, until when: the log leads in that term and sends Accepts only
 *   before that deadline; the holders send their requests to that node;
 * - the log applies chosen commands to the table; the service answers holders and runs TTL
 *   timers while the log serves (its barrier applied);
 * - a node votes in the log only when the lease lets it vote (after its restart silence).
 */
export class ReplicaMachine {
  readonly config: ReplicaConfig;
  readonly lease: LeaseMachine;
  readonly log: LogMachine<LockCommand>;
  readonly locks: LockStateMachine;
  readonly service: LockService;
  readonly client: LockClient;
  #started = false;
  #stopped = false;
  /** The lease machine's last wake-up. */
  #leaseWakeAt: number | null = null;

  constructor(config: ReplicaConfig, restored: ReplicaRecord | null) {
    this.config = config;
    this.lease = this.createLease(config, restored?.lease ?? null);
    this.locks = this.createLocks();
    this.log = this.createLog(
      {
        id: config.id,
        incarnation: config.incarnation,
        peers: config.peers,
        leaseMs: config.leaseMs,
        maxClockDrift: config.maxClockDrift,
        marginMs: config.marginMs,
        stateMachine: this.locks,
        sizeOf: commandBytes,
        voting: (now) => this.#voting(now),
        recovers: true,
        silentUntil: () => this.lease.silentUntil,
        durable: config.durable === true,
        ...config.log,
      },
      restored?.log ?? null,
    );
    this.service = this.createService(
      {
        id: config.id,
        leaseMs: config.leaseMs,
        maxTtlMs: config.maxTtlMs,
        wallClock: config.wallClock,
      },
      this.locks,
    );
    // A new epoch applied: what a lossy recovery lost can no longer hurt a token or a holder.
    const served = this.locks.onApplied;
    this.locks.onApplied = (result, command) => {
      served(result, command);
      if (command.op === 'epoch') this.log.clearLossy(this.log.applied);
    };
    this.client = this.createClient({
      owner: this.lease.owner,
      maxClockDrift: config.maxClockDrift,
      marginMs: config.marginMs,
      retryMs: config.retryMs ?? Math.max(1, config.leaseMs / 8),
    });
  }

  /**
   * The broken variants of the tests (test/sim/mutants.ts, test/sim/lock-mutants.ts) substitute
   * their own parts here; production never overrides these. They run in the constructor, in this
   * order: lease, locks, log, service, client.
   */
  protected createLease(config: LeaseConfig, restored: LeaseRecord | null): LeaseMachine {
    return new LeaseMachine(config, restored);
  }

  protected createLocks(): LockStateMachine {
    return new LockStateMachine();
  }

  protected createLog(
    config: LogConfig<LockCommand>,
    restored: LogRecord<LockCommand> | null,
  ): LogMachine<LockCommand> {
    return new LogMachine<LockCommand>(config, restored);
  }

  protected createService(config: LockServiceConfig, machine: LockStateMachine): LockService {
    return new LockService(config, machine);
  }

  protected createClient(config: LockClientConfig): LockClient {
    return new LockClient(config);
  }

  start(now: number): ReplicaOutput {
    this.#at(now);
    const out = emptyOutput<ReplicaMessage, ReplicaUpdate, ReplicaEvent>();
    if (this.#started) return out;
    this.#started = true;
    this.#lease(this.lease.start(now), out);
    return this.#finish(now, out);
  }

  handle(input: ReplicaInput, now: number): ReplicaOutput {
    this.#at(now);
    const out = emptyOutput<ReplicaMessage, ReplicaUpdate, ReplicaEvent>();
    if (!this.#started || this.#stopped) return out;
    switch (input.type) {
      case 'tick':
        this.#lease(this.lease.handle({ type: 'tick' }, now), out);
        this.#sync(now, out);
        this.#logOut(this.log.handle({ type: 'tick' }, now), now, out);
        break;
      case 'message':
        this.#receive(input.from, input.message, now, out);
        break;
      default: {
        const never: never = input;
        throw new InvariantError(`unknown input ${JSON.stringify(never)}`);
      }
    }
    return this.#finish(now, out);
  }

  /** Asks for lock `name` for this node's holder; returns the request's seq. */
  acquire(
    name: string,
    ttlMs: number,
    wait: boolean,
    now: number,
  ): { seq: number; out: ReplicaOutput } {
    this.#at(now);
    const out = emptyOutput<ReplicaMessage, ReplicaUpdate, ReplicaEvent>();
    const sink = this.#clientSink();
    const seq = this.client.acquire(name, ttlMs, wait, now, sink);
    this.#afterClient(sink, now, out);
    return { seq, out: this.#finish(now, out) };
  }

  release(name: string, token: bigint, now: number): ReplicaOutput {
    this.#at(now);
    const out = emptyOutput<ReplicaMessage, ReplicaUpdate, ReplicaEvent>();
    const sink = this.#clientSink();
    this.client.release(name, token, now, sink);
    this.#afterClient(sink, now, out);
    return this.#finish(now, out);
  }

  cancel(seq: number, now: number): ReplicaOutput {
    this.#at(now);
    const out = emptyOutput<ReplicaMessage, ReplicaUpdate, ReplicaEvent>();
    const sink = this.#clientSink();
    this.client.cancel(seq, now, sink);
    this.#afterClient(sink, now, out);
    return this.#finish(now, out);
  }

  read(name: string, now: number): { id: number; out: ReplicaOutput } {
    this.#at(now);
    const out = emptyOutput<ReplicaMessage, ReplicaUpdate, ReplicaEvent>();
    const sink = this.#clientSink();
    const id = this.client.read(name, now, sink);
    this.#afterClient(sink, now, out);
    return { id, out: this.#finish(now, out) };
  }

  /** Ends this node's part (see LeaseMachine.stop); its log leadership ends with the lease. */
  stop(now: number, release: boolean): ReplicaOutput {
    this.#at(now);
    const out = emptyOutput<ReplicaMessage, ReplicaUpdate, ReplicaEvent>();
    if (this.#stopped) return out;
    this.#lease(this.lease.stop(now, release), out);
    this.#stopped = true;
    this.service.leading = false;
    this.service.stopServing();
    this.#logOut(this.log.unlead(now), now, out);
    out.wakeAt = null;
    return out;
  }

  // -------------------------------------------------------------------------------------------

  /** Every step begins here: timers the service starts while commands apply start at `now`. */
  #at(now: number): void {
    this.service.setNow(now);
  }

  #voting(now: number): boolean {
    return !this.#stopped && now >= this.lease.silentUntil && !this.lease.recovering;
  }

  #receive(from: NodeId, message: ReplicaMessage, now: number, out: ReplicaOutput): void {
    if (isLease(message)) {
      this.#lease(this.lease.handle({ type: 'message', from, message }, now), out);
      this.#sync(now, out);
      return;
    }
    this.#sync(now, out);
    if (isLog(message)) {
      this.#logOut(this.log.handle({ type: 'message', from, message }, now), now, out);
      return;
    }
    switch (message.type) {
      case 'lock.request':
        this.#onRequest(from, message.commands, now, out);
        return;
      case 'lock.read':
        // Reads are served under the lease only; elsewhere the holder asks again.
        if (this.log.isServing(now) && this.lease.isLeader(now)) {
          const sink = this.#serviceSink();
          this.service.view(from, message.incarnation, message.id, message.name, sink);
          this.#afterService(sink, now, out);
        }
        return;
      case 'lock.reply':
      case 'lock.redirect':
      case 'lock.view': {
        const sink = this.#clientSink();
        this.client.handle(from, message, now, sink);
        this.#afterClient(sink, now, out);
        return;
      }
      default: {
        const never: never = message;
        throw new InvariantError(`unknown message ${JSON.stringify(never)}`);
      }
    }
  }

  #onRequest(
    from: NodeId,
    commands: readonly ClientCommand[],
    now: number,
    out: ReplicaOutput,
  ): void {
    const sink = this.#serviceSink();
    if (this.log.leaderTerm !== null && this.lease.isLeader(now)) {
      this.service.request(from, commands, now, sink);
    } else {
      const leader = this.lease.leader(now)?.owner.node ?? null;
      this.service.redirect(from, commands, leader === this.config.id ? null : leader, sink);
    }
    this.#afterService(sink, now, out);
  }

  /** Takes a lease output: its persist, sends and events (its wakeAt covers its whole state). */
  #lease(lease: LeaseOutput, out: ReplicaOutput): void {
    this.#leaseWakeAt = lease.wakeAt;
    out.send.push(...lease.send);
    if (lease.persist !== null)
      out.persist = { lease: lease.persist, log: out.persist?.log ?? null };
    for (const event of lease.events) out.events.push({ type: 'lease', event });
  }

  /** Takes a log output, and starts or stops the service on its events. */
  #logOut(log: LogOutput<LockCommand>, now: number, out: ReplicaOutput): void {
    out.send.push(...log.send);
    if (log.persist !== null) {
      const earlier = out.persist?.log ?? null;
      out.persist = {
        lease: out.persist?.lease ?? null,
        log:
          earlier === null
            ? log.persist
            : {
                ...log.persist,
                accepted: [...earlier.accepted, ...log.persist.accepted],
                snapshot: log.persist.snapshot ?? earlier.snapshot,
              },
      };
    }
    for (const event of log.events) {
      out.events.push({ type: 'log', event });
      if (event.type === 'serving') {
        const sink = this.#serviceSink();
        this.service.startServing(now, sink, event.lossy);
        this.#afterService(sink, now, out);
      } else if (event.type === 'unserving') {
        this.service.stopServing();
      }
    }
    this.service.leading = this.log.leaderTerm !== null;
  }

  /**
   * Brings the log and the holders in line with the lease: the log leads while the lease is
   * held (in its term, until its deadline), and holders send to whoever leads.
   */
  #sync(now: number, out: ReplicaOutput): void {
    const term = this.lease.isLeader(now) ? this.lease.term : null;
    const deadline = this.lease.deadline;
    if (term !== null && deadline !== null) {
      this.#logOut(this.log.lead(term, deadline, now), now, out);
    } else if (this.log.leaderTerm !== null) {
      this.service.stopServing();
      this.#logOut(this.log.unlead(now), now, out);
    }
    const leader = this.lease.leader(now)?.owner.node ?? null;
    const sink = this.#clientSink();
    this.client.setLeader(leader, now, sink);
    this.#afterClient(sink, now, out);
  }

  #clientSink(): LockClientSink {
    return { send: [], events: [] };
  }

  #serviceSink(): LockServiceSink {
    return { send: [], propose: [] };
  }

  /** Sends the holders' messages; those to this node itself are handled here at once. */
  #afterClient(sink: LockClientSink, now: number, out: ReplicaOutput): void {
    for (const event of sink.events) out.events.push({ type: 'lock', event });
    for (const { to, message } of sink.send) {
      if (to !== this.config.id) {
        out.send.push({ to, message });
        continue;
      }
      if (message.type === 'lock.request') this.#onRequest(to, message.commands, now, out);
      else if (message.type === 'lock.read') this.#receive(to, message, now, out);
    }
  }

  /** Proposes the service's commands, and sends (or hands this node's holder) its answers. */
  #afterService(sink: LockServiceSink, now: number, out: ReplicaOutput): void {
    if (sink.propose.length > 0) {
      const logOut = emptyOutput<LogMessage<LockCommand>, LogUpdate<LockCommand>, LogEvent>();
      this.service.setNow(now);
      this.log.submit(sink.propose, now, logOut);
      this.#logOut(logOut, now, out);
    }
    this.#deliver(sink.send, now, out);
  }

  #deliver(send: LockServiceSink['send'], now: number, out: ReplicaOutput): void {
    for (const { to, message } of send) {
      if (to !== this.config.id) {
        out.send.push({ to, message });
        continue;
      }
      const sink = this.#clientSink();
      this.client.handle(to, message, now, sink);
      this.#afterClient(sink, now, out);
    }
  }

  #finish(now: number, out: ReplicaOutput): ReplicaOutput {
    // Timers, and answers of everything applied in this step.
    this.service.setNow(now);
    const sink = this.#serviceSink();
    this.service.tick(now, sink);
    this.service.flush(sink);
    this.#afterService(sink, now, out);
    const clientSink = this.#clientSink();
    this.client.tick(now, clientSink);
    this.#afterClient(clientSink, now, out);
    // Answers to this node's own holder, produced by what its holder just sent.
    const again = this.#serviceSink();
    this.service.flush(again);
    this.#deliver(again.send, now, out);
    let wakeAt = this.#leaseWakeAt;
    wakeAt = earliest(wakeAt, this.log.wakeAt(now));
    wakeAt = earliest(wakeAt, this.service.wakeAt());
    wakeAt = earliest(wakeAt, this.client.wakeAt());
    out.wakeAt = this.#stopped ? null : wakeAt;
    return out;
  }
}
