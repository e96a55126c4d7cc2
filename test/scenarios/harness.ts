/**
 * A scripted cluster for named fault schedules: pure lease machines on drifting clocks, a network
 * whose every message the script can deliver, hold, delay or drop, and the simulator's checker
 * judging every belief and action in true time. Unlike the seeded simulator, nothing here is
 * random but the machines' own seeded jitter: a scenario replays the same schedule every time.
 */
import assert from 'node:assert/strict';
import {
  LeaseMachine,
  type LeaseConfig,
  type LeaseOutput,
  type LeaseRecord,
} from '../../lib/lease/machine.js';
import type { LeaseMessage } from '../../lib/lease/messages.js';
import { ballotKey } from '../../lib/paxos/ballot.js';
import { createRng, type Rng } from '../../lib/random.js';
import { Checker } from '../../lib/testing/sim/checker.js';
import { DriftClock } from '../../lib/testing/sim/clock.js';
import { ownerKey } from '../../lib/types.js';

export type LeaseFactory = (config: LeaseConfig, restored: LeaseRecord | null) => LeaseMachine;

export interface Wire {
  readonly from: string;
  readonly to: string;
  readonly message: LeaseMessage;
  /** The true instant it was sent. */
  readonly sentAt: number;
}

interface Pending {
  /** When it runs (later than `due` if its node was stalled). */
  readonly at: number;
  /** When it was due. */
  readonly due: number;
  readonly seq: number;
  readonly kind: 'deliver' | 'timer' | 'resume';
  readonly node: string;
  readonly wire: Wire | null;
  /** The incarnation a timer belongs to. */
  readonly gen: number;
}

interface ScriptNode {
  readonly id: string;
  machine: LeaseMachine;
  clock: DriftClock;
  rate: number;
  up: boolean;
  gen: number;
  owner: string;
  record: LeaseRecord | null;
  stalledUntil: number;
  /** What came due while it was stalled, in due order. */
  deferred: Pending[];
  /** The true instant of its armed timer, or null. */
  timerAt: number | null;
}

export interface ScenarioOptions {
  readonly ids: readonly string[];
  readonly leaseMs?: number;
  readonly maxClockDrift?: number;
  readonly marginMs?: number;
  /** Clock rates by node (default 1). */
  readonly rates?: Readonly<Record<string, number>>;
  /** One-way delay of every message the script does not intercept, in true ms. */
  readonly delayMs?: number;
  readonly seed?: number;
  readonly factory?: LeaseFactory;
  /** What each node's storage holds at its first start (default nothing). */
  readonly records?: Readonly<Record<string, LeaseRecord>>;
}

/** Incarnations are deterministic here: node index and life number, as 16 hex digits. */
function incarnationOf(index: number, gen: number): string {
  return (index * 0x1000 + gen).toString(16).padStart(16, '0');
}

export class Scenario {
  readonly checker: Checker;
  readonly leaseMs: number;
  readonly maxClockDrift: number;
  readonly marginMs: number;
  delayMs: number;
  /** True time now. */
  t = 0;
  /** Every message sent, in order, intercepted or not. */
  readonly sent: Wire[] = [];
  /** Messages a rule held back; deliver them with `release`. */
  readonly held: Wire[] = [];
  readonly #nodes = new Map<string, ScriptNode>();
  readonly #ids: readonly string[];
  readonly #queue: Pending[] = [];
  readonly #rules: { pick: (w: Wire) => boolean; action: 'hold' | 'drop' | number }[] = [];
  readonly #rng: Rng;
  readonly #factory: LeaseFactory;
  #seq = 0;
  #turn = 0;

  constructor(options: ScenarioOptions) {
    this.#ids = options.ids;
    this.leaseMs = options.leaseMs ?? 1000;
    this.maxClockDrift = options.maxClockDrift ?? 0.01;
    this.marginMs = options.marginMs ?? 10;
    this.delayMs = options.delayMs ?? 2;
    this.#rng = createRng(options.seed ?? 1);
    this.#factory = options.factory ?? ((config, restored) => new LeaseMachine(config, restored));
    this.checker = new Checker({
      nodes: this.#ids,
      leaseMs: this.leaseMs,
      maxClockDrift: this.maxClockDrift,
    });
    options.ids.forEach((id) => {
      const rate = options.rates?.[id] ?? 1;
      const record = options.records?.[id] ?? null;
      this.#nodes.set(id, {
        id,
        machine: this.#make(id, 0, record),
        clock: new DriftClock(0, 0, rate),
        rate,
        up: false,
        gen: 0,
        owner: '',
        record,
        stalledUntil: 0,
        deferred: [],
        timerAt: null,
      });
    });
  }

  node(id: string): ScriptNode {
    const n = this.#nodes.get(id);
    assert.ok(n, `no node ${id}`);
    return n;
  }

  machine(id: string): LeaseMachine {
    return this.node(id).machine;
  }

  /** The node's own clock reading now. */
  local(id: string): number {
    return this.node(id).clock.local(this.t);
  }

  /** Starts nodes (all by default) at the current instant. */
  start(...ids: string[]): void {
    for (const id of ids.length === 0 ? this.#ids : ids) {
      const n = this.node(id);
      n.up = true;
      n.clock = new DriftClock(this.t, 1_000_000 * (n.gen + 1), n.rate);
      n.owner = ownerKey(n.machine.owner);
      // A later life without its record forgot what it had seen (first starts forget nothing).
      this.checker.started(this.t, id, n.owner, n.gen > 0 && n.record === null);
      this.#apply(n, n.machine.start(n.clock.local(this.t)));
    }
  }

  /** From now on, messages matching `pick` are held back (see `release`), dropped, or delayed. */
  rule(pick: (w: Wire) => boolean, action: 'hold' | 'drop' | number): () => void {
    const entry = { pick, action };
    this.#rules.unshift(entry);
    return () => {
      const i = this.#rules.indexOf(entry);
      if (i >= 0) this.#rules.splice(i, 1);
    };
  }

  /** Delivers held messages matching `pick`, each after `delayMs` from now. */
  release(pick: (w: Wire) => boolean = () => true, delayMs = this.delayMs): number {
    let n = 0;
    for (let i = 0; i < this.held.length;) {
      const w = this.held[i];
      if (w !== undefined && pick(w)) {
        this.held.splice(i, 1);
        this.#push(this.t + delayMs, 'deliver', w.to, w, 0);
        n++;
      } else i++;
    }
    return n;
  }

  /** Runs every message and timer due up to true instant `until`, in due order. */
  runUntil(until: number): void {
    for (;;) {
      this.#queue.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.#queue[0];
      if (next === undefined || next.at > until) break;
      this.#queue.shift();
      this.t = Math.max(this.t, next.at);
      this.checker.advance(this.t);
      this.#run(next);
    }
    this.t = Math.max(this.t, until);
    this.checker.advance(this.t);
  }

  /** Runs for `ms` of true time. */
  run(ms: number): void {
    this.runUntil(this.t + ms);
  }

  /** Runs until `predicate` holds, checking after every event; fails after `maxMs`. */
  runUntilTrue(predicate: () => boolean, maxMs: number, what = 'the condition'): void {
    const limit = this.t + maxMs;
    while (!predicate()) {
      this.#queue.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.#queue[0];
      assert.ok(
        next !== undefined && next.at <= limit,
        `${what} did not happen within ${maxMs} ms`,
      );
      this.#queue.shift();
      this.t = Math.max(this.t, next.at);
      this.checker.advance(this.t);
      this.#run(next);
    }
  }

  /** The process dies: its belief ends; what it sent stays in flight, what was on its way to it is lost. */
  crash(id: string): void {
    const n = this.node(id);
    n.up = false;
    n.timerAt = null;
    n.deferred = [];
    for (let i = this.#queue.length - 1; i >= 0; i--) {
      const p = this.#queue[i];
      if (p?.kind === 'deliver' && p.node === id) this.#queue.splice(i, 1);
    }
    this.checker.ended(this.t, n.owner);
  }

  /** A new incarnation, with its stored record or without; it starts silent. */
  restart(id: string, options: { storage: boolean; rate?: number }): void {
    const n = this.node(id);
    assert.equal(n.up, false, `${id} is still up`);
    n.gen++;
    if (options.rate !== undefined) n.rate = options.rate;
    n.machine = this.#make(id, n.gen, options.storage ? n.record : null);
    if (!options.storage) n.record = null;
    this.start(id);
  }

  /**
   * The event loop stalls for `ms`: nothing runs there until it ends; then what came due runs
   * in due order, each seeing the late clock, as Node runs overdue timers.
   */
  stall(id: string, ms: number): void {
    this.node(id).stalledUntil = this.t + ms;
    this.#push(this.t + ms, 'resume', id, null, 0);
  }

  /** Ends a stall now. */
  resume(id: string): void {
    const n = this.node(id);
    n.stalledUntil = this.t;
    this.#flush(n);
  }

  /** Graceful stop, with or without Release. */
  stop(id: string, release: boolean): void {
    const n = this.node(id);
    this.#apply(n, n.machine.stop(n.clock.local(this.t), release));
    n.up = false;
    n.timerAt = null;
    this.checker.ended(this.t, n.owner);
  }

  /** Feeds the node a tick now, as an early timer would. */
  tick(id: string): void {
    const n = this.node(id);
    if (n.up && this.t >= n.stalledUntil) {
      this.#apply(n, n.machine.handle({ type: 'tick' }, n.clock.local(this.t)));
    }
  }

  /** The node's application tries a leader action now; returns whether it acted. */
  act(id: string): boolean {
    const n = this.node(id);
    if (!n.up || this.t < n.stalledUntil) return false;
    const acted = n.machine.isLeader(n.clock.local(this.t));
    if (acted) this.checker.action(this.t, n.owner);
    return acted;
  }

  /** Whoever believes it leads now, by node id. */
  leaders(): string[] {
    return this.#ids.filter((id) => {
      const n = this.node(id);
      return n.up && n.machine.isLeader(n.clock.local(this.t));
    });
  }

  assertSafe(): void {
    assert.deepEqual(this.checker.violations, [], 'the checker found violations');
  }

  #make(id: string, gen: number, restored: LeaseRecord | null): LeaseMachine {
    const index = this.#ids.indexOf(id);
    return this.#factory(
      {
        id,
        incarnation: incarnationOf(index + 1, gen),
        peers: this.#ids,
        leaseMs: this.leaseMs,
        maxClockDrift: this.maxClockDrift,
        marginMs: this.marginMs,
        rng: this.#rng,
      },
      restored,
    );
  }

  #push(at: number, kind: Pending['kind'], node: string, wire: Wire | null, gen: number): void {
    this.#queue.push({ at, due: at, seq: this.#seq++, kind, node, wire, gen });
  }

  #flush(n: ScriptNode): void {
    const due = n.deferred.sort((a, b) => a.due - b.due || a.seq - b.seq);
    n.deferred = [];
    for (const p of due) this.#queue.push({ ...p, at: this.t, seq: this.#seq++ });
  }

  #run(p: Pending): void {
    const n = this.node(p.node);
    if (p.kind === 'resume') {
      if (this.t >= n.stalledUntil) this.#flush(n);
      return;
    }
    if (!n.up) return;
    if (p.kind === 'timer' && (p.gen !== n.gen || n.timerAt !== p.due)) return;
    if (this.t < n.stalledUntil) {
      // A stalled loop runs nothing; the event waits, keeping its place in due order.
      n.deferred.push(p);
      return;
    }
    const now = n.clock.local(this.t);
    if (p.kind === 'timer') {
      n.timerAt = null;
      this.#apply(n, n.machine.handle({ type: 'tick' }, now));
      return;
    }
    const w = p.wire;
    assert.ok(w !== null);
    this.#apply(n, n.machine.handle({ type: 'message', from: w.from, message: w.message }, now));
  }

  #apply(n: ScriptNode, out: LeaseOutput): void {
    if (out.persist !== null) n.record = out.persist;
    const turn = ++this.#turn;
    for (const e of out.send) {
      const w: Wire = { from: n.id, to: e.to, message: e.message, sentAt: this.t };
      this.sent.push(w);
      if (w.message.type === 'lease.prepare') {
        this.checker.leasePrepare(this.t, n.owner, ballotKey(w.message.ballot), turn);
      }
      const rule = this.#rules.find((r) => r.pick(w));
      if (rule?.action === 'drop') continue;
      if (rule?.action === 'hold') {
        this.held.push(w);
        continue;
      }
      const delay = typeof rule?.action === 'number' ? rule.action : this.delayMs;
      this.#push(this.t + delay, 'deliver', w.to, w, 0);
    }
    for (const e of out.events) {
      switch (e.type) {
        case 'elected':
          this.checker.elected(this.t, n.owner, e.term, n.clock.trueAt(e.deadline));
          break;
        case 'renewed':
          this.checker.renewed(this.t, n.owner, e.term, n.clock.trueAt(e.deadline));
          break;
        case 'deposed':
          this.checker.deposed(this.t, n.owner, e.term, e.reason);
          break;
        case 'leader':
          if (e.term !== null) this.checker.leaderSeen(this.t, n.owner, e.term);
          break;
        case 'recovered':
        case 'refused':
          break;
      }
    }
    // A machine never asks to be woken in the past: that would be a busy loop.
    assert.ok(
      out.wakeAt === null || out.wakeAt > n.clock.local(this.t),
      `${n.id} asked to be woken at ${out.wakeAt}, not after its now ${n.clock.local(this.t)}`,
    );
    if (out.wakeAt !== null && n.up) {
      const at = Math.max(this.t, n.clock.trueAt(out.wakeAt));
      n.timerAt = at;
      this.#push(at, 'timer', n.id, null, n.gen);
    }
  }
}

/** Message filters for rules. */
export const is =
  (type: LeaseMessage['type'], from?: string, to?: string) =>
  (w: Wire): boolean =>
    w.message.type === type &&
    (from === undefined || w.from === from) &&
    (to === undefined || w.to === to);

export const between =
  (from: string, to: string) =>
  (w: Wire): boolean =>
    w.from === from && w.to === to;
