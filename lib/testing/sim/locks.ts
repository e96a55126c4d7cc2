/**
 * The lock workload of the simulator and the lock invariants it checks. Each node runs one
 * application task that acquires one of a few names, holds it for a while (past its TTL, so
 * renewals run), and releases it; it also gives up waiting (cancel) and tries without waiting.
 * Everything is recorded in true time and judged:
 *
 * - G1: the validity windows holders see for one name never overlap (a window runs from the
 *   grant until release, loss, crash, or the true instant its clock reaches the deadline);
 * - G2: tokens grow in the order grants are first applied, across names and epochs;
 * - G3: every slot applies the same commands on every node;
 * - G5: the history of acquires, releases and expires is linearizable;
 * - liveness: after the heal, every acquire is granted within a bound.
 */
import type { LockClientEvent } from '../../locks/client.js';
import type { ApplyResult, LockCommand } from '../../locks/commands.js';
import type { LogEvent } from '../../log/multi-paxos.js';
import type { ReplicaMachine, ReplicaMessage, ReplicaOutput } from '../../replica/machine.js';
import type { Rng } from '../../random.js';
import { checkLinearizable, type LockHistoryOp } from './lock-history.js';
import type { DriftClock } from './clock.js';

export type LockViolationKind =
  /** G1: two holders' validity windows for one name overlap in true time. */
  | 'lockOverlap'
  /** G2: a grant got a token not above an earlier grant's. */
  | 'tokenOrder'
  /** G3: two nodes applied different commands in one slot. */
  | 'slotDisagrees'
  /** G5: the lock history is not linearizable. */
  | 'notLinearizable'
  /** After the heal, an acquire was not granted within the bound. */
  | 'lockStuck';

export interface LockWorkloadConfig {
  readonly nodes: readonly string[];
  readonly leaseMs: number;
  readonly maxTtlMs: number;
  readonly rng: Rng;
  readonly report: (kind: LockViolationKind, t: number, description: string) => void;
}

/** What one node's application is doing. */
type Task =
  | { readonly kind: 'idle' }
  | {
      readonly kind: 'acquiring';
      readonly seq: number;
      readonly name: string;
      readonly ttlMs: number;
      readonly wait: boolean;
      readonly since: number;
      readonly giveUpAt: number;
      readonly op: AcquireOp;
    }
  | {
      readonly kind: 'holding';
      readonly name: string;
      readonly token: bigint;
      readonly until: number;
      readonly window: Window;
    };

interface Window {
  readonly name: string;
  readonly client: string;
  readonly token: bigint;
  readonly start: number;
  /** True instant its holder's clock reaches the deadline (moved by renewals). */
  end: number;
  /** When it closed (release, loss, crash), or null while open. */
  closedAt: number | null;
}

interface AcquireOp {
  readonly type: 'acquire';
  readonly client: string;
  readonly name: string;
  readonly invokedAt: number;
  respondedAt: number | null;
  token: bigint | null;
  /** The holder and seq of its request, to find the token the log granted it. */
  readonly key: string;
}

interface ReleaseOp {
  readonly type: 'release';
  readonly client: string;
  readonly name: string;
  readonly token: bigint;
  readonly invokedAt: number;
  respondedAt: number | null;
  result: 'released' | 'not-held' | null;
}

interface NodeApp {
  client: string;
  clock: DriftClock | null;
  task: Task;
  /** Releases in flight, by name and token. */
  readonly releases: Map<string, ReleaseOp>;
}

const NAMES = ['a', 'b', 'c'];

export class LockWorkload {
  readonly #config: LockWorkloadConfig;
  readonly #apps: NodeApp[];
  readonly #windows = new Map<string, Window[]>();
  readonly #allWindows: Window[] = [];
  readonly #ops: (AcquireOp | ReleaseOp | LockHistoryOp)[] = [];
  /** When each cancel was asked for, by holder/seq of the acquire it withdraws. */
  readonly #cancels = new Map<string, number>();
  /** Grants ended by a cancel, already recorded as releases. */
  readonly #cancelReleased = new Set<bigint>();
  /**
   * The tokens the log granted each request (holder/seq), as nodes applied them: one, unless a
   * lossy recovery lost the grant and the request was applied again.
   */
  readonly #granted = new Map<string, bigint[]>();
  /** When each token was first granted (applied) anywhere. */
  readonly #grantedAt = new Map<bigint, number>();
  /** Per slot, the commands applied there (as text), from the first node that applied it. */
  readonly #slots = new Map<number, { text: string; who: string; t: number }>();
  /** Tokens in the order grants were first applied anywhere. */
  #lastToken: bigint | null = null;
  /** Every token granted, and the request (holder/seq) it was granted to. */
  readonly #tokensSeen = new Map<bigint, string>();
  /** Expires seen in Accepts, by name/token/version: when first proposed. */
  readonly #expiresProposed = new Map<string, number>();
  readonly #expiresApplied = new Set<string>();
  #healAt: number | null = null;
  /** Acquires issued after the heal, not yet granted: their deadline for liveness. */
  readonly #waiting = new Map<AcquireOp, number>();
  grants = 0;
  releases = 0;
  expires = 0;

  constructor(config: LockWorkloadConfig) {
    this.#config = config;
    this.#apps = config.nodes.map(() => ({
      client: '',
      clock: null,
      task: { kind: 'idle' },
      releases: new Map(),
    }));
  }

  /** A node (re)started as `owner`: its application starts idle. */
  started(node: number, owner: string, clock: DriftClock, replica: ReplicaMachine): void {
    const app = this.#app(node);
    app.client = owner;
    app.clock = clock;
    app.task = { kind: 'idle' };
    app.releases.clear();
    // Every slot a node applies is compared with what the first node applied there.
    const sm = replica.locks;
    const apply = sm.apply.bind(sm);
    sm.apply = (slot, commands) => {
      this.#slot(slot, commands, this.#now, node);
      apply(slot, commands);
    };
    const applied = sm.onApplied;
    sm.onApplied = (result, command) => {
      this.#applied(result, command, this.#now, node);
      applied(result, command);
    };
  }

  /** The true time of the step being run (the simulator sets it before each machine call). */
  #now = 0;
  at(t: number): void {
    this.#now = t;
  }

  /** The process ended: its windows close, its requests stay unanswered. */
  crashed(node: number, t: number): void {
    const app = this.#app(node);
    if (app.task.kind === 'holding') this.#close(app.task.window, t);
    if (app.task.kind === 'acquiring') this.#waiting.delete(app.task.op);
    app.task = { kind: 'idle' };
    app.releases.clear();
  }

  heal(t: number): void {
    this.#healAt = t;
  }

  /** The application's next step on `node`; returns the replica output to apply, if any. */
  act(node: number, replica: ReplicaMachine, now: number, t: number): ReplicaOutput | null {
    const app = this.#app(node);
    const rng = this.#config.rng;
    const L = this.#config.leaseMs;
    const task = app.task;
    switch (task.kind) {
      case 'idle': {
        const name = NAMES[Math.floor(rng.next() * NAMES.length)] ?? 'a';
        const ttlMs = Math.round(
          L / 2 + rng.next() * Math.min(3 * L, this.#config.maxTtlMs - L / 2),
        );
        const wait = rng.next() < 0.85;
        const r = replica.acquire(name, ttlMs, wait, now);
        const op: AcquireOp = {
          type: 'acquire',
          client: app.client,
          name,
          invokedAt: t,
          respondedAt: null,
          token: null,
          key: `${app.client}#${r.seq}`,
        };
        this.#ops.push(op);
        // Gives up after a while (a cancel), but mostly waits long enough.
        const patience = rng.next() < 0.2 ? L * (0.5 + rng.next() * 3) : L * 40;
        app.task = {
          kind: 'acquiring',
          seq: r.seq,
          name,
          ttlMs,
          wait,
          since: t,
          giveUpAt: t + patience,
          op,
        };
        if (this.#healAt !== null && t >= this.#healAt + L)
          this.#waiting.set(op, t + this.#bound());
        return r.out;
      }
      case 'acquiring': {
        if (t < task.giveUpAt) return null;
        app.task = { kind: 'idle' };
        this.#waiting.delete(task.op);
        this.#cancels.set(task.op.key, t);
        return replica.cancel(task.seq, now);
      }
      case 'holding': {
        if (t < task.until) return null;
        this.#close(task.window, t);
        app.task = { kind: 'idle' };
        const op: ReleaseOp = {
          type: 'release',
          client: app.client,
          name: task.name,
          token: task.token,
          invokedAt: t,
          respondedAt: null,
          result: null,
        };
        this.#ops.push(op);
        app.releases.set(`${task.name}/${task.token}`, op);
        this.releases++;
        return replica.release(task.name, task.token, now);
      }
      default: {
        const never: never = task;
        throw new Error(`unknown task ${JSON.stringify(never)}`);
      }
    }
  }

  /** When the application wants to run next on `node` (true time), or null. */
  nextActAt(node: number, t: number): number | null {
    const task = this.#app(node).task;
    const rng = this.#config.rng;
    switch (task.kind) {
      case 'idle':
        return t + rng.next() * this.#config.leaseMs;
      case 'acquiring':
        return task.giveUpAt;
      case 'holding':
        return task.until;
      default:
        return null;
    }
  }

  /** A holder event of the replica on `node`. */
  event(node: number, e: LockClientEvent, t: number): void {
    const app = this.#app(node);
    const clock = app.clock;
    if (clock === null) return;
    const rng = this.#config.rng;
    switch (e.type) {
      case 'granted': {
        const task = app.task;
        if (task.kind !== 'acquiring' || task.seq !== e.seq) return;
        task.op.respondedAt = t;
        task.op.token = e.token;
        // A holder is never answered with a token of the old epoch's replay (G2 at answer time).
        if (this.#replayBelow !== null && e.token <= this.#replayBelow) {
          const mine = `${app.client}#${e.seq}`;
          const first = this.#tokensSeen.get(e.token);
          if (first !== mine) {
            this.#config.report(
              'tokenOrder',
              t,
              `${mine} was answered token ${e.token}, at or below ${this.#replayBelow} (the highest before the last lossy recovery), first granted to ${first ?? 'a lost request'}`,
            );
          }
        }
        this.#waiting.delete(task.op);
        const window: Window = {
          name: e.name,
          client: app.client,
          token: e.token,
          start: t,
          end: clock.trueAt(e.deadline),
          closedAt: null,
        };
        this.#open(window, t);
        // Held for a while: often past the TTL, so renewals keep it.
        const hold = rng.next() < 0.5 ? rng.next() * e.ttlMs : e.ttlMs * (1 + rng.next() * 2);
        app.task = {
          kind: 'holding',
          name: e.name,
          token: e.token,
          until: t + Math.max(1, hold),
          window,
        };
        this.grants++;
        return;
      }
      case 'renewed': {
        const task = app.task;
        if (task.kind !== 'holding' || task.token !== e.token) return;
        task.window.end = Math.max(task.window.end, clock.trueAt(e.deadline));
        return;
      }
      case 'lost': {
        const task = app.task;
        if (task.kind !== 'holding' || task.token !== e.token) return;
        this.#close(task.window, t);
        app.task = { kind: 'idle' };
        return;
      }
      case 'busy':
      case 'failed': {
        const task = app.task;
        if (task.kind !== 'acquiring' || task.seq !== e.seq) return;
        // No grant this holder knows of (a grant the log made is found at the end).
        this.#waiting.delete(task.op);
        app.task = { kind: 'idle' };
        return;
      }
      case 'released': {
        const op = app.releases.get(`${e.name}/${e.token}`);
        if (op === undefined) return;
        app.releases.delete(`${e.name}/${e.token}`);
        op.respondedAt = t;
        op.result = e.held ? 'released' : 'not-held';
        return;
      }
      case 'returned': {
        const op: ReleaseOp = {
          type: 'release',
          client: app.client,
          name: e.name,
          token: e.token,
          invokedAt: t,
          respondedAt: null,
          result: null,
        };
        this.#ops.push(op);
        app.releases.set(`${e.name}/${e.token}`, op);
        return;
      }
      case 'cancelled':
      case 'queued':
      case 'view':
        return;
      default: {
        const never: never = e;
        throw new Error(`unknown lock event ${JSON.stringify(never)}`);
      }
    }
  }

  /** Messages a node sends: the first Accept carrying an expire marks when it was proposed. */
  sent(message: ReplicaMessage, t: number): void {
    if (message.type !== 'log.accept') return;
    for (const entry of message.entries) {
      for (const c of entry.value ?? []) {
        if (c.op !== 'expire') continue;
        const key = `${c.name}/${c.token}/${c.version}`;
        if (!this.#expiresProposed.has(key)) this.#expiresProposed.set(key, t);
      }
    }
  }

  /** Liveness: acquires issued after the heal must be granted within the bound. */
  advance(t: number): void {
    for (const [op, deadline] of this.#waiting) {
      if (t < deadline) continue;
      this.#waiting.delete(op);
      this.#config.report(
        'lockStuck',
        t,
        `${op.client}'s acquire of ${op.name} (at ${op.invokedAt}) was not granted by ${deadline}`,
      );
    }
  }

  /** The next liveness deadline, for the simulator's queue. */
  nextDeadline(): number | null {
    let at: number | null = null;
    for (const d of this.#waiting.values()) if (at === null || d < at) at = d;
    return at;
  }

  /**
   * A log event on a node. A lossy recovery starts the log over from what survived: slots are
   * compared afresh (the survivors' applied slots agree with it by construction; only the lost
   * memories applied slots the new log fills otherwise), and the history is judged in parts.
   */
  logEvent(e: LogEvent): void {
    if (e.type !== 'recovered' || !e.lossy) return;
    this.#slots.clear();
    this.#losses.push(this.#now);
    if (this.#lastToken !== null) this.#replayBelow = this.#lastToken;
  }

  /**
   * The highest token granted before the last lossy recovery. The log starts over from what
   * survived, and until its new epoch (above every token so far) applies, a node replays the
   * old epoch's table, tokens counted again (a node restarted later, too): nobody is answered
   * from it, and the epoch ends it. Grants at or below this token made after the recovery are
   * such replays, and token order (G2) leaves them out; holders' windows (G1) still judge what
   * anyone did with a grant.
   */
  #replayBelow: bigint | null = null;

  /** When lossy recoveries happened: what only the lost memories held is gone from then on. */
  readonly #losses: number[] = [];

  /**
   * End of the run: windows still open close at `t`, and the history is judged. A majority that
   * lost its memory (a lossy recovery) loses whatever only it held: a grant released in lost
   * slots may be expired again later, say. So the history is cut at every lossy recovery, and a
   * token whose operations fall on both sides of a cut is left out (G1 and G2 still judge it).
   */
  finish(t: number): void {
    for (const w of this.#allWindows) w.closedAt ??= t;
    const ops: LockHistoryOp[] = [];
    for (const op of this.#ops) {
      if (op.type === 'acquire' && 'key' in op) {
        // The grant the client heard of, and any other the log made for the same request
        // (applied again after a lossy recovery), unanswered.
        const tokens = new Set(this.#granted.get(op.key) ?? []);
        if (op.token !== null) tokens.add(op.token);
        for (const token of tokens) {
          const answered = token === op.token;
          ops.push({
            type: 'acquire',
            client: op.client,
            name: op.name,
            invokedAt: op.invokedAt,
            respondedAt: answered ? op.respondedAt : null,
            token,
          });
        }
      } else if (op.type === 'release' || op.type === 'expire') {
        ops.push(op);
      }
    }
    const part = (time: number): number => {
      let i = 0;
      while (i < this.#losses.length && (this.#losses[i] ?? Infinity) <= time) i++;
      return i;
    };
    const tokenPart = new Map<bigint, number>();
    const straddles = new Set<bigint>();
    for (const op of ops) {
      const token = op.token;
      if (token === null) continue;
      const parts = [part(op.invokedAt), part(op.respondedAt ?? t)];
      const first = this.#grantedAt.get(token);
      if (first !== undefined) parts.push(part(first));
      for (const p of parts) {
        const known = tokenPart.get(token);
        if (known === undefined) tokenPart.set(token, p);
        else if (known !== p) straddles.add(token);
      }
    }
    const parts = new Map<number, LockHistoryOp[]>();
    for (const op of ops) {
      if (op.token === null || straddles.has(op.token)) continue;
      const p = tokenPart.get(op.token) ?? 0;
      const list = parts.get(p) ?? [];
      parts.set(p, list);
      list.push(op);
    }
    this.#lastUnknown = false;
    for (const [p, list] of parts) {
      const result = checkLinearizable(list);
      if (result.ok === false) {
        this.#config.report(
          'notLinearizable',
          t,
          `part ${p}, ${result.name}: ${result.explanation}`,
        );
      }
      if (result.ok === 'unknown') this.#lastUnknown = true;
    }
  }

  #lastUnknown = false;

  /** Whether the linearizability search ran out of budget (neither pass nor failure). */
  get linearizabilityUnknown(): boolean {
    return this.#lastUnknown;
  }

  // -------------------------------------------------------------------------------------------

  #bound(): number {
    // FIFO behind every other node's holding (up to three TTLs each), plus a new epoch's wait.
    const L = this.#config.leaseMs;
    const n = this.#config.nodes.length;
    return (
      n * (4 * L + 3 * Math.min(3.5 * L, this.#config.maxTtlMs)) + this.#config.maxTtlMs + 6 * L
    );
  }

  #open(window: Window, t: number): void {
    const open = this.#windows.get(window.name) ?? [];
    for (const w of open) {
      if (w.closedAt === null && w.end > t) {
        this.#config.report(
          'lockOverlap',
          t,
          `${window.client} was granted ${window.name} (token ${window.token}) while ` +
            `${w.client} (token ${w.token}) held it until ${w.end}`,
        );
      }
    }
    this.#windows.set(window.name, [
      ...open.filter((w) => w.closedAt === null && w.end > t),
      window,
    ]);
    this.#allWindows.push(window);
  }

  #close(window: Window, t: number): void {
    window.closedAt ??= Math.min(t, window.end);
  }

  #who(node: number): string {
    return this.#apps[node]?.client ?? String(node);
  }

  #slot(slot: number, commands: readonly LockCommand[], t: number, node: number): void {
    const text = JSON.stringify(commands, (_k, v: unknown) =>
      typeof v === 'bigint' ? v.toString() : v,
    );
    const known = this.#slots.get(slot);
    const who = this.#apps[node]?.client ?? String(node);
    if (known === undefined) this.#slots.set(slot, { text, who, t });
    else if (known.text !== text) {
      this.#config.report(
        'slotDisagrees',
        t,
        `${who} applied ${text.slice(0, 120)} in slot ${slot}, ` +
          `${known.who} at ${known.t}: ${known.text.slice(0, 120)}`,
      );
    }
  }

  #applied(result: ApplyResult, command: LockCommand, t: number, node: number): void {
    const grants: { key: string; token: bigint }[] = [];
    const reply = result.reply;
    if (reply?.reply.type === 'granted' && command.op === 'acquire') {
      grants.push({
        key: `${reply.to.node}/${reply.to.incarnation}#${reply.reply.seq}`,
        token: reply.reply.token,
      });
    }
    for (const g of result.promoted) {
      grants.push({ key: `${g.holder.node}/${g.holder.incarnation}#${g.seq}`, token: g.token });
    }
    for (const g of grants) {
      // Recorded when first made, or a replay after a lossy recovery (see `#replayBelow`).
      if (this.#replayBelow !== null && g.token <= this.#replayBelow) continue;
      const tokens = this.#granted.get(g.key) ?? [];
      if (!tokens.includes(g.token)) tokens.push(g.token);
      this.#granted.set(g.key, tokens);
      const owner = this.#tokensSeen.get(g.token);
      if (owner !== undefined) {
        // One token, two grants: a fencing store could not tell their writes apart.
        if (owner !== g.key) {
          this.#config.report(
            'tokenOrder',
            t,
            `token ${g.token} granted to ${owner} and to ${g.key} (applied on ${this.#who(node)})`,
          );
        }
        continue;
      }
      this.#tokensSeen.set(g.token, g.key);
      this.#grantedAt.set(g.token, t);
      if (this.#lastToken !== null && g.token <= this.#lastToken) {
        this.#config.report(
          'tokenOrder',
          t,
          `token ${g.token} granted after ${this.#lastToken} (applied on ${this.#who(node)})`,
        );
      }
      this.#lastToken = g.token;
    }
    if (command.op === 'cancel' && result.reply?.reply.type === 'cancelled') {
      // A cancel that found its request granted released that grant: a release, in the history.
      const holder = `${command.holder.node}/${command.holder.incarnation}`;
      for (const g of result.ended) {
        if (this.#cancelReleased.has(g.token)) continue;
        this.#cancelReleased.add(g.token);
        this.#ops.push({
          type: 'release',
          client: holder,
          name: g.name,
          token: g.token,
          invokedAt: this.#cancels.get(`${holder}#${command.target}`) ?? t,
          respondedAt: t,
          result: 'released',
        });
      }
    }
    if (command.op === 'epoch') {
      // A new epoch ends every grant of the table before it: an expire of each, in the history
      // (of the grants made, not of their replay: see `started`).
      for (const g of result.ended) {
        if (this.#tokensSeen.get(g.token) !== `${g.holder.node}/${g.holder.incarnation}#${g.seq}`) {
          continue;
        }
        const key = `${g.name}/${g.token}/epoch`;
        if (this.#expiresApplied.has(key)) continue;
        this.#expiresApplied.add(key);
        this.#ops.push({
          type: 'expire',
          name: g.name,
          token: g.token,
          invokedAt: t,
          respondedAt: t,
        });
      }
    }
    if (command.op === 'expire') {
      const key = `${command.name}/${command.token}/${command.version}`;
      if (result.ended.some((g) => g.token === command.token) && !this.#expiresApplied.has(key)) {
        this.#expiresApplied.add(key);
        this.expires++;
        this.#ops.push({
          type: 'expire',
          name: command.name,
          token: command.token,
          invokedAt: this.#expiresProposed.get(key) ?? t,
          respondedAt: t,
        });
      }
    }
  }

  #app(node: number): NodeApp {
    const app = this.#apps[node];
    if (app === undefined) throw new Error(`no node ${node}`);
    return app;
  }
}
