/**
 * A scripted cluster of whole replicas (lease, log, lock table, service and holders) for named
 * lock schedules: clocks that drift at set rates, a network whose every message the script can
 * hold, delay or drop, and holders' validity windows recorded in true time and judged by the
 * simulator's G1 check. Nothing here is random but the machines' own seeded jitter: a scenario
 * replays the same schedule every time.
 */
import assert from 'node:assert/strict';
import type { LockClientEvent } from '../../lib/locks/client.js';
import { createRng, type Rng } from '../../lib/random.js';
import {
  ReplicaMachine,
  type ReplicaConfig,
  type ReplicaMessage,
  type ReplicaOutput,
  type ReplicaRecord,
} from '../../lib/replica/machine.js';
import { DriftClock } from '../../lib/testing/sim/clock.js';
import { overlappingWindows, type HolderWindow } from '../../lib/testing/sim/lock-windows.js';

export type ReplicaFactory = (
  config: ReplicaConfig,
  restored: ReplicaRecord | null,
) => ReplicaMachine;

export interface ReplicaWire {
  readonly from: string;
  readonly to: string;
  readonly message: ReplicaMessage;
  /** The true instant it was sent. */
  readonly sentAt: number;
}

interface Pending {
  readonly at: number;
  readonly seq: number;
  readonly kind: 'deliver' | 'timer';
  readonly node: string;
  readonly wire: ReplicaWire | null;
}

interface ScriptReplica {
  readonly id: string;
  readonly machine: ReplicaMachine;
  readonly clock: DriftClock;
  /** The true instant of its armed timer, or null. */
  timerAt: number | null;
  spinAt: number;
  spins: number;
}

/** A holder's window on one lock, in true time (open while `end` may still move). */
interface Window {
  readonly name: string;
  readonly client: string;
  readonly token: bigint;
  readonly start: number;
  end: number;
  closed: boolean;
}

export interface ReplicaScenarioOptions {
  readonly ids: readonly string[];
  readonly leaseMs?: number;
  readonly maxClockDrift?: number;
  readonly marginMs?: number;
  readonly maxTtlMs?: number;
  /** Clock rates by node (default 1). */
  readonly rates?: Readonly<Record<string, number>>;
  /** One-way delay of every message no rule intercepts, in true ms. */
  readonly delayMs?: number;
  readonly seed?: number;
  readonly preferredLeader?: string;
  readonly factory?: ReplicaFactory;
}

/** Timer firings at one instant without progress before the run is declared a busy loop. */
const SPIN_LIMIT = 1000;

export class ReplicaScenario {
  readonly leaseMs: number;
  readonly maxClockDrift: number;
  readonly marginMs: number;
  readonly delayMs: number;
  /** True time now. */
  t = 0;
  /** Every message sent, in order, intercepted or not. */
  readonly sent: ReplicaWire[] = [];
  /** Messages a rule held back; deliver them with `release`. */
  readonly held: ReplicaWire[] = [];
  /** Every holder event, with its node and true time. */
  readonly events: { readonly node: string; readonly t: number; readonly e: LockClientEvent }[] =
    [];
  readonly #nodes = new Map<string, ScriptReplica>();
  readonly #queue: Pending[] = [];
  readonly #rules: { pick: (w: ReplicaWire) => boolean; action: 'hold' | 'drop' | number }[] = [];
  readonly #windows: Window[] = [];
  #seq = 0;

  constructor(options: ReplicaScenarioOptions) {
    this.leaseMs = options.leaseMs ?? 1000;
    this.maxClockDrift = options.maxClockDrift ?? 0.01;
    this.marginMs = options.marginMs ?? 10;
    this.delayMs = options.delayMs ?? 2;
    const maxTtlMs = options.maxTtlMs ?? 4 * this.leaseMs;
    const rng: Rng = createRng(options.seed ?? 1);
    const factory = options.factory ?? ((c, r) => new ReplicaMachine(c, r));
    options.ids.forEach((id, i) => {
      const machine = factory(
        {
          id,
          incarnation: (i + 1).toString(16).padStart(16, '0'),
          peers: options.ids,
          leaseMs: this.leaseMs,
          maxClockDrift: this.maxClockDrift,
          marginMs: this.marginMs,
          rng,
          ...(options.preferredLeader === undefined
            ? {}
            : { preferredLeader: options.preferredLeader }),
          maxTtlMs,
          wallClock: () => 1_700_000_000_000 + this.t,
        },
        null,
      );
      const clock = new DriftClock(0, 1_000_000 * (i + 1), options.rates?.[id] ?? 1);
      this.#nodes.set(id, { id, machine, clock, timerAt: null, spinAt: -1, spins: 0 });
    });
  }

  replica(id: string): ReplicaMachine {
    return this.#node(id).machine;
  }

  /** The node's own clock reading now. */
  local(id: string): number {
    return this.#node(id).clock.local(this.t);
  }

  /** Starts every node at the current instant. */
  start(): void {
    for (const n of this.#nodes.values()) this.#apply(n, n.machine.start(this.local(n.id)));
  }

  /** From now on, messages matching `pick` are held back (see `release`), dropped, or delayed. */
  rule(pick: (w: ReplicaWire) => boolean, action: 'hold' | 'drop' | number): () => void {
    const entry = { pick, action };
    this.#rules.unshift(entry);
    return () => {
      const i = this.#rules.indexOf(entry);
      if (i >= 0) this.#rules.splice(i, 1);
    };
  }

  /** Delivers held messages matching `pick`, each after `delayMs` from now. */
  release(pick: (w: ReplicaWire) => boolean = () => true, delayMs = this.delayMs): number {
    let n = 0;
    for (let i = 0; i < this.held.length;) {
      const w = this.held[i];
      if (w !== undefined && pick(w)) {
        this.held.splice(i, 1);
        this.#push(this.t + delayMs, 'deliver', w.to, w);
        n++;
      } else i++;
    }
    return n;
  }

  /** Runs every message and timer due up to true instant `until`, in due order. */
  runUntil(until: number): void {
    for (;;) {
      const next = this.#peek();
      if (next === undefined || next.at > until) break;
      this.#run(this.#take());
    }
    this.t = Math.max(this.t, until);
  }

  /** Runs for `ms` of true time. */
  run(ms: number): void {
    this.runUntil(this.t + ms);
  }

  /** Runs until `predicate` holds, checking after every event; fails after `maxMs`. */
  runUntilTrue(predicate: () => boolean, maxMs: number, what = 'the condition'): void {
    const limit = this.t + maxMs;
    while (!predicate()) {
      const next = this.#peek();
      assert.ok(
        next !== undefined && next.at <= limit,
        `${what} did not happen within ${maxMs} ms`,
      );
      this.#run(this.#take());
    }
  }

  /** The node that leads the lock service now (its log serves), if any. */
  serving(): string | null {
    for (const n of this.#nodes.values()) {
      if (n.machine.log.isServing(this.local(n.id))) return n.id;
    }
    return null;
  }

  /** The node's holder asks for `name`; returns the request's seq. */
  acquire(id: string, name: string, ttlMs: number, wait: boolean): number {
    const n = this.#node(id);
    const r = n.machine.acquire(name, ttlMs, wait, this.local(id));
    this.#apply(n, r.out);
    return r.seq;
  }

  /** The node's holder gives `name` back: its window ends now. */
  releaseLock(id: string, name: string, token: bigint): void {
    const n = this.#node(id);
    this.#close(id, name, token);
    this.#apply(n, n.machine.release(name, token, this.local(id)));
  }

  /** Who believes it holds `name` now (by node), from each holder's own clock. */
  holders(name: string): string[] {
    return [...this.#nodes.values()]
      .filter((n) => {
        const held = n.machine.client.holding(name);
        return held !== null && n.machine.client.valid(name, held.token, this.local(n.id));
      })
      .map((n) => n.id);
  }

  /** G1 over every window so far (open ones end at their deadline): the first overlap, or null. */
  overlap(): { a: HolderWindow; b: HolderWindow } | null {
    return overlappingWindows(this.#windows);
  }

  #node(id: string): ScriptReplica {
    const n = this.#nodes.get(id);
    assert.ok(n, `no node ${id}`);
    return n;
  }

  #push(at: number, kind: Pending['kind'], node: string, wire: ReplicaWire | null): void {
    this.#queue.push({ at, seq: this.#seq++, kind, node, wire });
  }

  /** The next event due, left in the queue. */
  #peek(): Pending | undefined {
    this.#queue.sort((a, b) => a.at - b.at || a.seq - b.seq);
    return this.#queue[0];
  }

  /** Takes the next event due (there is one: `#peek` said so) and moves the clock to it. */
  #take(): Pending {
    const next = this.#queue.shift();
    assert.ok(next !== undefined);
    this.t = Math.max(this.t, next.at);
    return next;
  }

  #run(p: Pending): void {
    const n = this.#node(p.node);
    const now = this.local(n.id);
    if (p.kind === 'timer') {
      if (n.timerAt !== p.at) return;
      n.timerAt = null;
      if (n.spinAt === this.t) {
        assert.ok(++n.spins < SPIN_LIMIT, `${n.id}: its timer keeps firing at ${this.t}`);
      } else {
        n.spinAt = this.t;
        n.spins = 0;
      }
      this.#apply(n, n.machine.handle({ type: 'tick' }, now));
      return;
    }
    const w = p.wire;
    assert.ok(w !== null);
    this.#apply(n, n.machine.handle({ type: 'message', from: w.from, message: w.message }, now));
  }

  #apply(n: ScriptReplica, out: ReplicaOutput): void {
    for (const e of out.send) {
      const w: ReplicaWire = { from: n.id, to: e.to, message: e.message, sentAt: this.t };
      this.sent.push(w);
      const rule = this.#rules.find((r) => r.pick(w));
      if (rule?.action === 'drop') continue;
      if (rule?.action === 'hold') {
        this.held.push(w);
        continue;
      }
      const delay = typeof rule?.action === 'number' ? rule.action : this.delayMs;
      this.#push(this.t + delay, 'deliver', w.to, w);
    }
    for (const e of out.events) if (e.type === 'lock') this.#lockEvent(n, e.event);
    // A replica's wake-up covers its whole state: null means nothing to wait for.
    n.timerAt = null;
    if (out.wakeAt !== null) {
      const at = Math.max(this.t, n.clock.trueAt(out.wakeAt));
      n.timerAt = at;
      this.#push(at, 'timer', n.id, null);
    }
  }

  #lockEvent(n: ScriptReplica, e: LockClientEvent): void {
    this.events.push({ node: n.id, t: this.t, e });
    switch (e.type) {
      case 'granted':
        this.#windows.push({
          name: e.name,
          client: n.id,
          token: e.token,
          start: this.t,
          end: n.clock.trueAt(e.deadline),
          closed: false,
        });
        return;
      case 'renewed':
        for (const w of this.#windows) {
          if (w.client === n.id && w.token === e.token && !w.closed) {
            w.end = Math.max(w.end, n.clock.trueAt(e.deadline));
          }
        }
        return;
      case 'lost':
        this.#close(n.id, e.name, e.token);
        return;
      case 'busy':
      case 'cancelled':
      case 'failed':
      case 'queued':
      case 'released':
      case 'returned':
      case 'view':
        return;
      default: {
        const never: never = e;
        throw new Error(`unknown lock event ${JSON.stringify(never)}`);
      }
    }
  }

  #close(client: string, name: string, token: bigint): void {
    for (const w of this.#windows) {
      if (w.client === client && w.name === name && w.token === token && !w.closed) {
        w.closed = true;
        w.end = Math.min(w.end, this.t);
      }
    }
  }
}
