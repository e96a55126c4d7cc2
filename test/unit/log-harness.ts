import type { LogMessage } from '../../lib/log/messages.js';
import {
  LogMachine,
  type LogConfig,
  type LogEvent,
  type LogOutput,
  type StateMachine,
} from '../../lib/log/multi-paxos.js';
import { createRng, type Rng } from '../../lib/random.js';

export const L = 1000;
export const RHO = 0.01;
export const MARGIN = 10;
/** The vote window W. */
export const W = (L * (1 - RHO)) / (1 + RHO) - MARGIN;

/** A state machine that records every command in order: nodes agree iff their lists agree. */
export class Journal implements StateMachine<string> {
  applied: string[] = [];
  slots = 0;

  apply(slot: number, commands: readonly string[]): void {
    this.slots = slot;
    this.applied.push(...commands);
  }

  snapshot(): string {
    return JSON.stringify({ applied: this.applied, slots: this.slots });
  }

  restore(text: string): boolean {
    try {
      const parsed = JSON.parse(text) as { applied: unknown; slots: unknown };
      if (!Array.isArray(parsed.applied) || typeof parsed.slots !== 'number') return false;
      this.applied = parsed.applied.map(String);
      this.slots = parsed.slots;
      return true;
    } catch {
      return false;
    }
  }
}

export interface Wire {
  from: string;
  to: string;
  message: LogMessage<string>;
  sentAt: number;
}

/**
 * Log machines whose messages wait on a wire until a test delivers them, on a shared clock
 * that tests move by hand. Leadership is given by the test (no lease machine here): the log's
 * safety is Paxos's and must hold whoever proposes.
 */
export class LogHarness {
  readonly machines = new Map<string, LogMachine<string>>();
  readonly journals = new Map<string, Journal>();
  wire: Wire[] = [];
  readonly events: { id: string; event: LogEvent }[] = [];
  readonly wake = new Map<string, number | null>();
  now = 0;
  readonly rng: Rng;
  /** Nodes that answer nothing (their restart silence, say). */
  readonly silent = new Set<string>();

  constructor(
    readonly ids: string[],
    options: Partial<
      Pick<LogConfig<string>, 'pageEntries' | 'retainCommands' | 'pipeline' | 'maxBatchBytes'>
    > = {},
    seed = 1,
  ) {
    this.rng = createRng(seed);
    for (const id of ids) this.add(id, options);
  }

  add(
    id: string,
    options: Partial<
      Pick<LogConfig<string>, 'pageEntries' | 'retainCommands' | 'pipeline' | 'maxBatchBytes'>
    > = {},
  ): void {
    const journal = new Journal();
    this.journals.set(id, journal);
    const incarnation = (this.ids.indexOf(id) + 1).toString(16).padStart(16, '0');
    this.machines.set(
      id,
      new LogMachine<string>(
        {
          id,
          incarnation,
          peers: this.ids,
          leaseMs: L,
          maxClockDrift: RHO,
          marginMs: MARGIN,
          stateMachine: journal,
          sizeOf: (c) => c.length + 8,
          voting: () => !this.silent.has(id),
          ...options,
        },
        null,
      ),
    );
  }

  machine(id: string): LogMachine<string> {
    const m = this.machines.get(id);
    if (m === undefined) throw new Error(`no machine ${id}`);
    return m;
  }

  take(id: string, out: LogOutput<string>): void {
    for (const { to, message } of out.send) {
      this.wire.push({ from: id, to, message, sentAt: this.now });
    }
    for (const event of out.events) this.events.push({ id, event });
    this.wake.set(id, out.wakeAt);
  }

  lead(id: string, term: number, deadline = this.now + W): void {
    this.take(id, this.machine(id).lead(term, deadline, this.now));
  }

  submit(id: string, commands: string[]): boolean {
    const out: LogOutput<string> = { send: [], persist: null, events: [], wakeAt: null };
    const ok = this.machine(id).submit(commands, this.now, out);
    this.take(id, out);
    return ok;
  }

  tick(id: string): void {
    this.take(id, this.machine(id).handle({ type: 'tick' }, this.now));
  }

  /** Delivers the message at `index` of the wire. */
  deliverAt(index: number): void {
    const [w] = this.wire.splice(index, 1);
    if (w === undefined) return;
    const m = this.machines.get(w.to);
    if (m === undefined) return;
    this.take(w.to, m.handle({ type: 'message', from: w.from, message: w.message }, this.now));
  }

  /** Delivers everything (and what that sends), in order, until the wire is empty. */
  settle(limit = 100_000, filter: (w: Wire) => boolean = () => true): void {
    for (let i = 0; i < limit; i++) {
      const index = this.wire.findIndex(filter);
      if (index < 0) return;
      this.deliverAt(index);
    }
    throw new Error('the wire did not settle');
  }

  drop(filter: (w: Wire) => boolean): number {
    const before = this.wire.length;
    this.wire = this.wire.filter((w) => !filter(w));
    return before - this.wire.length;
  }

  /** Moves the clock and ticks every machine whose wake-up has come. */
  advance(ms: number): void {
    this.now += ms;
    for (const id of this.ids) {
      const at = this.wake.get(id);
      if (at !== null && at !== undefined && at <= this.now) this.tick(id);
    }
  }

  served(id: string): boolean {
    return this.events.some((e) => e.id === id && e.event.type === 'serving');
  }

  applied(id: string): string[] {
    return this.journals.get(id)?.applied ?? [];
  }
}
