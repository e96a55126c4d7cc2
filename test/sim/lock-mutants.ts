/**
 * Broken variants of the lock and log core, each missing one rule of docs/design.md ("The
 * Multi-Paxos log", "Locks"). As with the lease variants (./mutants.ts), they live here, never
 * behind flags in lib/: each is a subclass overriding one hook of the holder (`LockClient`), the
 * leader's service (`LockService`), the table (`LockTable`, `LockStateMachine`) or the log
 * (`LogMachine`), wired into a replica through its factories. The simulator's lock workload
 * must catch every one of them; test/sim/lock-mutants.test.ts says how often.
 */
import { LockClient, type LockClientConfig, type LockClientSink } from '../../lib/locks/client.js';
import type { Grant, LockCommand } from '../../lib/locks/commands.js';
import { LockTable } from '../../lib/locks/lock-table.js';
import { LockService, LockStateMachine, type LockServiceConfig } from '../../lib/locks/service.js';
import { parseSnapshotText } from '../../lib/locks/snapshot.js';
import { LogMachine, type LogConfig, type LogRecord } from '../../lib/log/multi-paxos.js';
import type { LeaseMachine } from '../../lib/lease/machine.js';
import {
  ReplicaMachine,
  type ReplicaConfig,
  type ReplicaRecord,
} from '../../lib/replica/machine.js';

// -------------------------------------------------------------------------------------------
// The holder

/** Times a window from the answer that granted or renewed it, not from the request's first send. */
export class WindowFromAnswerClient extends LockClient {
  protected override validFrom(_firstSentAt: number, _seq: number, now: number): number {
    return now;
  }
}

/** Times a window from the request's latest transmission (its last retry), not its first. */
export class WindowFromLastRetryClient extends LockClient {
  /** When each request was last sent, by seq. */
  readonly #lastSent = new Map<number, number>();

  override tick(now: number, sink: LockClientSink): void {
    const before = sink.send.length;
    super.tick(now, sink);
    // Every request goes out from here (the send path is private): what it added, it sent now.
    for (let i = before; i < sink.send.length; i++) {
      const message = sink.send[i]?.message;
      if (message?.type !== 'lock.request') continue;
      for (const command of message.commands) this.#lastSent.set(command.seq, now);
    }
  }

  protected override validFrom(firstSentAt: number, seq: number): number {
    return this.#lastSent.get(seq) ?? firstSentAt;
  }
}

/** Believes ttl − m: no allowance for its clock and the leader's running at different rates. */
export class WindowNoDriftClient extends LockClient {
  override validMs(ttlMs: number): number {
    return ttlMs - this.config.marginMs;
  }
}

// -------------------------------------------------------------------------------------------
// The table

/**
 * Applies `expire` to the name's grant whatever version it names (the token alone must match):
 * a renew that applied between the expire's proposal and its apply no longer saves the grant.
 * The table itself is left alone: each expire is given the grant's current version just before
 * it applies, which is the same on every node.
 */
export class ExpireIgnoresVersionLocks extends LockStateMachine {
  override apply(slot: number, commands: readonly LockCommand[]): void {
    for (const command of commands) {
      let c = command;
      if (c.op === 'expire') {
        const view = this.table.view(c.name);
        if (view?.token === c.token) c = { ...c, version: view.version };
      }
      super.apply(slot, [c]);
    }
  }
}

/** A table whose tokens are the epoch's base plus the slot being applied. */
class SlotTokenTable extends LockTable {
  slot = 0;
  protected override mintToken(base: bigint): bigint {
    return base + BigInt(this.slot);
  }
}

/**
 * Tokens from log positions: base + slot instead of base + grant counter. Alone in its slot each
 * grant would get a token above the last, but the leader batches commands, so two grants of one
 * slot share a token (and a fencing store cannot tell their writes apart).
 */
export class SlotTokenLocks extends LockStateMachine {
  protected override createTable(text: string | null): LockTable {
    return text === null ? new SlotTokenTable() : SlotTokenTable.restore(parseSnapshotText(text));
  }

  override apply(slot: number, commands: readonly LockCommand[]): void {
    const table = this.table;
    if (table instanceof SlotTokenTable) table.slot = slot;
    super.apply(slot, commands);
  }
}

// -------------------------------------------------------------------------------------------
// The leader's timers

/**
 * The expiry instants each leader computed, per cluster (keyed by its peer list, one per
 * simulation), as wall-clock ms by grant and version: what a successor that "keeps the old
 * leader's expiry times" would find in the table if a leader wrote them there.
 */
const keptExpiries = new WeakMap<readonly string[], Map<string, number>>();

function expiriesOf(peers: readonly string[]): Map<string, number> {
  let map = keptExpiries.get(peers);
  if (map === undefined) {
    map = new Map();
    keptExpiries.set(peers, map);
  }
  return map;
}

/**
 * Keeps the old leader's expiry times: every timer's end is also written down as a wall-clock
 * instant, and at its takeover a leader runs each grant's timer to the instant the leader
 * before it wrote down, read on its own wall clock, instead of restarting it. Wall clocks are
 * apart by up to L/4 here (a few ms to seconds in practice), which no part of a holder's margin
 * covers.
 */
export class KeepsExpiryTimesService extends LockService {
  readonly #expiries: Map<string, number>;

  constructor(config: LockServiceConfig, machine: LockStateMachine, peers: readonly string[]) {
    super(config, machine);
    this.#expiries = expiriesOf(peers);
  }

  protected override timerStart(grant: Grant, start: number, takeover: boolean): number {
    const key = `${grant.name}/${grant.token}/${grant.version}`;
    const wall = this.config.wallClock();
    const kept = takeover ? this.#expiries.get(key) : undefined;
    if (kept !== undefined) return start + (kept - wall) - grant.ttlMs;
    this.#expiries.set(key, wall + grant.ttlMs);
    return start;
  }
}

/**
 * Times every TTL from the start of its node's current lease round (the instant its lease is
 * timed from, before that round's Prepare), instead of from its takeover or the apply.
 */
export class TimersFromLeaseRoundService extends LockService {
  readonly #lease: () => LeaseMachine;
  readonly #believedMs: number;

  constructor(
    config: LockServiceConfig,
    machine: LockStateMachine,
    lease: () => LeaseMachine,
    believedMs: number,
  ) {
    super(config, machine);
    this.#lease = lease;
    this.#believedMs = believedMs;
  }

  protected override timerStart(_grant: Grant, start: number): number {
    const deadline = this.#lease().deadline;
    return deadline === null ? start : Math.min(start, deadline - this.#believedMs);
  }
}

// -------------------------------------------------------------------------------------------
// The log

/** Serves (answers holders, starts timers, decides on a new epoch) as soon as it leads. */
export class ServesBeforeBarrierLog<C> extends LogMachine<C> {
  protected override serves(): boolean {
    return true;
  }
}

/** Counts every reply to its current send, however late it arrives (no vote window W). */
export class CountsLateRepliesLog<C> extends LogMachine<C> {
  protected override inVoteWindow(): boolean {
    return true;
  }
}

// -------------------------------------------------------------------------------------------
// Replicas

export type ReplicaFactory = (
  config: ReplicaConfig,
  restored: ReplicaRecord | null,
) => ReplicaMachine;

type ClientClass = new (config: LockClientConfig) => LockClient;
type LocksClass = new () => LockStateMachine;
type LogClass = new (
  config: LogConfig<LockCommand>,
  restored: LogRecord<LockCommand> | null,
) => LogMachine<LockCommand>;

/** A replica built with broken parts (the others correct). */
export function replicaWith(parts: {
  client?: ClientClass;
  locks?: LocksClass;
  log?: LogClass;
  /** Changes the log's configuration (as its replica wires it). */
  logConfig?: (config: LogConfig<LockCommand>) => LogConfig<LockCommand>;
  service?: (
    replica: ReplicaMachine,
    config: LockServiceConfig,
    machine: LockStateMachine,
  ) => LockService;
}): ReplicaFactory {
  const Client = parts.client ?? LockClient;
  const Locks = parts.locks ?? LockStateMachine;
  const Log = parts.log ?? LogMachine<LockCommand>;
  const logConfig = parts.logConfig ?? ((c) => c);
  const service = parts.service ?? ((_r, config, machine) => new LockService(config, machine));
  class Variant extends ReplicaMachine {
    protected override createLocks(): LockStateMachine {
      return new Locks();
    }
    protected override createLog(
      config: LogConfig<LockCommand>,
      restored: LogRecord<LockCommand> | null,
    ): LogMachine<LockCommand> {
      return new Log(logConfig(config), restored);
    }
    protected override createService(
      config: LockServiceConfig,
      machine: LockStateMachine,
    ): LockService {
      return service(this, config, machine);
    }
    protected override createClient(config: LockClientConfig): LockClient {
      return new Client(config);
    }
  }
  return (config, restored) => new Variant(config, restored);
}

/** How long a lease is believed, from its round's start: L·(1−ρ)/(1+ρ) − m. */
function believedMs(replica: ReplicaMachine): number {
  const { leaseMs, maxClockDrift: rho, marginMs } = replica.config;
  return (leaseMs * (1 - rho)) / (1 + rho) - marginMs;
}

/** Every broken lock and log variant, by name. */
export const LOCK_MUTANTS = {
  windowFromAnswer: replicaWith({ client: WindowFromAnswerClient }),
  windowFromLastRetry: replicaWith({ client: WindowFromLastRetryClient }),
  windowNoDrift: replicaWith({ client: WindowNoDriftClient }),
  expireIgnoresVersion: replicaWith({ locks: ExpireIgnoresVersionLocks }),
  keepsExpiryTimes: replicaWith({
    service: (replica, config, machine) =>
      new KeepsExpiryTimesService(config, machine, replica.config.peers),
  }),
  timersFromLeaseRound: replicaWith({
    service: (replica, config, machine) =>
      new TimersFromLeaseRoundService(config, machine, () => replica.lease, believedMs(replica)),
  }),
  servesBeforeBarrier: replicaWith({ log: ServesBeforeBarrierLog<LockCommand> }),
  /**
   * A node back without storage votes in the log at once: no silence, no rebuild from the
   * others (it learns the chosen slots as a follower does, from the leader).
   */
  votesBeforeRebuild: replicaWith({
    logConfig: (config) => ({ ...config, recovers: false, voting: () => true }),
  }),
  countsLateReplies: replicaWith({ log: CountsLateRepliesLog<LockCommand> }),
  slotTokens: replicaWith({ locks: SlotTokenLocks }),
} satisfies Record<string, ReplicaFactory>;

export type LockMutantName = keyof typeof LOCK_MUTANTS;
