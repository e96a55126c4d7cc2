/**
 * One synod node in a process of its own, driven by the lock bench (lock-cluster.ts) over the
 * IPC channel: it takes commands (time lock calls, run holders for a while, hold many locks,
 * measure its heap) and answers each with what it measured. Every figure is taken here, in the
 * node's own process, so the IPC channel is never inside a measurement.
 *
 * Usage: `node --expose-gc lock-node.js '<config as JSON>'` with an IPC channel, and the secret
 * in the environment variable `SYNOD_TEST_SECRET`. The node runs over the built-in WebSocket
 * transport on loopback with its default settings. The process also serves WebSocket echoes
 * (the transport's socket settings), so that another node process can time the raw round trip
 * between the two, beside the lock calls.
 */
import process from 'node:process';
import { pathToFileURL } from 'node:url';
import { writeHeapSnapshot } from 'node:v8';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { socketLimits } from '../../adapters/websocket/dial.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../../lib/codec/messages.js';
import { createNode, type Lock, type LoggerLike, type SynodNode } from '../../lib/index.js';
import { SECRET_ENV, sharedClock } from '../integration/process-node.js';

export interface LockNodeConfig {
  readonly id: string;
  /** Every node's `ws://` URL, by id. */
  readonly peers: Readonly<Record<string, string>>;
  readonly leaseMs: number;
  readonly maxTtlMs: number;
  /**
   * Count the frames the node hands to its transport, by message type (through a logger at
   * trace level: it costs the node a call and a small object per frame). For diagnosis.
   */
  readonly countFrames?: boolean;
}

/** CPU time of the process, µs (`process.cpuUsage()`). */
export interface CpuTime {
  readonly user: number;
  readonly system: number;
}

/** The commands the bench sends, each with an `id` its answer repeats. */
export type LockNodeCommand =
  | { readonly cmd: 'status' }
  /** Takes and releases one lock, waiting up to `timeoutMs` (the first grant of a cluster). */
  | {
      readonly cmd: 'first';
      readonly name: string;
      readonly ttlMs: number;
      readonly timeoutMs: number;
    }
  /** Connects this process's echo client to another process's echo server. */
  | { readonly cmd: 'echo-connect'; readonly port: number }
  /**
   * Uncontended lock calls, one at a time, each beside one echo round trip. `gapMs` > 0: every
   * echo and every cycle starts after an idle gap of that long; 0: back to back.
   */
  | {
      readonly cmd: 'latency';
      readonly samples: number;
      readonly gapMs: number;
      readonly name: string;
      readonly ttlMs: number;
    }
  /**
   * Holders, one per entry of `names` (repeat a name for a contended lock), each taking and
   * releasing its lock again and again from now on. Cycles are counted between two moments on
   * the shared clock, `from` and `to`, when the process's CPU time is also read; the holders stop
   * at `to`. With no names, only the CPU time is read.
   */
  | {
      readonly cmd: 'cycles';
      readonly names: readonly string[];
      readonly ttlMs: number;
      readonly from: number;
      readonly to: number;
    }
  /** The same holders, until `cycles` cycles are done in all. */
  | {
      readonly cmd: 'cycle-count';
      readonly names: readonly string[];
      readonly ttlMs: number;
      readonly cycles: number;
    }
  /**
   * Acquires `count` locks `<prefix><i>`, `concurrency` at a time, and keeps them. With
   * `readSignal`, reads each one's `signal` once granted, as an application that hands it on
   * does (a lock makes its signal on the first read).
   */
  | {
      readonly cmd: 'hold';
      readonly prefix: string;
      readonly count: number;
      readonly concurrency: number;
      readonly ttlMs: number;
      readonly readSignal?: boolean;
    }
  /** Releases every lock `hold` took. */
  | { readonly cmd: 'release-held'; readonly concurrency: number }
  /** The heap after full collections, and the locks still held. */
  | { readonly cmd: 'heap' }
  /** Writes a heap snapshot (after full collections) to `path`. */
  | { readonly cmd: 'heap-snapshot'; readonly path: string }
  | { readonly cmd: 'stop' };

export interface StatusAnswer {
  readonly state: string;
  readonly isLeader: boolean;
  readonly leaderId: string | null;
  readonly term: number | null;
}

export interface LatencyAnswer {
  /** Echo round trip to the connected echo server, ms. */
  readonly rttMs: readonly number[];
  /** `acquireLock` called until it resolved, ms. */
  readonly acquireMs: readonly number[];
  /** `acquireLock` called until `release()` resolved, ms. */
  readonly cycleMs: readonly number[];
}

export interface CyclesAnswer {
  /** Cycles (acquire resolved, then release resolved) completed inside the window. */
  readonly cycles: number;
  /** The window, ms, as this process read it. */
  readonly ms: number;
  readonly cpu: CpuTime;
  /** Frames handed to the transport and valid frames received, inside the window. */
  readonly framesOut: number;
  readonly framesIn: number;
  /** With `countFrames`: frames out inside the window by message type. */
  readonly framesOutByType: Readonly<Record<string, number>> | null;
  /** Lock calls that failed (each would be a bug or an overload here). */
  readonly errors: number;
  readonly firstError: string | null;
}

export interface CycleCountAnswer {
  readonly cycles: number;
  readonly ms: number;
  readonly errors: number;
  readonly firstError: string | null;
}

export interface HoldAnswer {
  readonly held: number;
  readonly ms: number;
  readonly errors: number;
  readonly firstError: string | null;
}

export interface HeapAnswer {
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly arrayBuffers: number;
  readonly rss: number;
  /** Locks this process holds through `hold`. */
  readonly held: number;
  /** Warnings and errors the node logged since it started, by message. */
  readonly warnings: Readonly<Record<string, number>>;
  /** Info lines the node logged since it started, by message. */
  readonly messages: Readonly<Record<string, number>>;
  /** Frames the node handed to its transport since it started, and by type with `countFrames`. */
  readonly framesOut: number;
  readonly framesOutByType: Readonly<Record<string, number>> | null;
}

export type LockNodeAnswer =
  | StatusAnswer
  | LatencyAnswer
  | CyclesAnswer
  | CycleCountAnswer
  | HoldAnswer
  | HeapAnswer
  | { readonly ms: number }
  | null;

/** From the child: `ready` once started, then one `answer` per command. */
export type LockNodeReport =
  | { readonly type: 'ready'; readonly echoPort: number }
  | { readonly type: 'answer'; readonly id: number; readonly answer: LockNodeAnswer }
  | { readonly type: 'failed'; readonly id: number; readonly error: string }
  | { readonly type: 'error'; readonly error: string };

const LIMITS = socketLimits(DEFAULT_MAX_FRAME_BYTES);
/** A frame the size of a lock request (about 200 bytes on the wire). */
const ECHO_FRAME = JSON.stringify({ echo: 'x'.repeat(180) });

function text(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Sleeps until the shared clock reads `at` (at once if it already has). */
function sleepUntil(at: number): Promise<void> {
  return sleep(Math.max(0, at - sharedClock.now()));
}

function message(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

class Errors {
  count = 0;
  first: string | null = null;
  note(error: unknown): void {
    this.count += 1;
    this.first ??= message(error);
  }
}

/**
 * The node's logger: counts `frame out` lines by message type when asked to, and counts
 * warnings and errors by message, writing only the first few of each to stderr (a cluster in
 * trouble can log one line per lock), and info lines by message, writing none.
 */
class BenchLogger implements LoggerLike {
  readonly frames = new Map<string, number>();
  readonly warnings = new Map<string, number>();
  /** Info lines by message (not written anywhere): snapshots installed, leaders changed… */
  readonly messages = new Map<string, number>();
  readonly #counting: boolean;

  constructor(counting: boolean) {
    this.#counting = counting;
  }

  /** Frames out by type so far, or null when not counting. */
  frameCounts(): Record<string, number> | null {
    return this.#counting ? Object.fromEntries(this.frames) : null;
  }

  fatal = this.#loud('fatal');
  error = this.#loud('error');
  warn = this.#loud('warn');
  info = (_fields: object, text: string): void => {
    const key = `info: ${text}`;
    this.messages.set(key, (this.messages.get(key) ?? 0) + 1);
  };
  debug = (): void => undefined;
  trace = (fields: object, text: string): void => {
    if (text !== 'frame out') return;
    const type = String((fields as { type?: unknown }).type);
    this.frames.set(type, (this.frames.get(type) ?? 0) + 1);
  };

  isLevelEnabled(level: string): boolean {
    return (
      level === 'fatal' ||
      level === 'error' ||
      level === 'warn' ||
      level === 'info' ||
      (this.#counting && level === 'trace')
    );
  }

  #loud(level: string) {
    return (fields: object, text: string): void => {
      const key = `${level}: ${text}`;
      const seen = (this.warnings.get(key) ?? 0) + 1;
      this.warnings.set(key, seen);
      if (seen <= 3) {
        process.stderr.write(`${JSON.stringify({ level, message: text, ...fields })}\n`);
      }
    };
  }
}

function difference(
  after: Record<string, number> | null,
  before: Record<string, number> | null,
): Record<string, number> | null {
  if (after === null || before === null) return null;
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]));
}

class Child {
  readonly #node: SynodNode;
  readonly #logger: BenchLogger;
  readonly #held: Lock[] = [];
  #echo: WebSocket | null = null;

  constructor(node: SynodNode, logger: BenchLogger) {
    this.#node = node;
    this.#logger = logger;
  }

  async run(command: LockNodeCommand): Promise<LockNodeAnswer> {
    switch (command.cmd) {
      case 'status':
        return {
          state: this.#node.state,
          isLeader: this.#node.isLeader,
          leaderId: this.#node.leaderId,
          term: this.#node.term,
        };
      case 'first': {
        const began = performance.now();
        const lock = await this.#node.acquireLock(command.name, {
          ttlMs: command.ttlMs,
          timeoutMs: command.timeoutMs,
        });
        await lock.release();
        return { ms: performance.now() - began };
      }
      case 'echo-connect':
        this.#echo = await connect(command.port);
        // Warm the connection up, both ways.
        for (let i = 0; i < 20; i++) await this.#roundTrip();
        return null;
      case 'latency':
        return this.#latency(command.samples, command.gapMs, command.name, command.ttlMs);
      case 'cycles':
        return this.#cycles(command.names, command.ttlMs, command.from, command.to);
      case 'cycle-count':
        return this.#cycleCount(command.names, command.ttlMs, command.cycles);
      case 'hold':
        return this.#hold(
          command.prefix,
          command.count,
          command.concurrency,
          command.ttlMs,
          command.readSignal === true,
        );
      case 'release-held': {
        const began = performance.now();
        const locks = this.#held.splice(0);
        await pool(locks.length, command.concurrency, (i) => locks[i]?.release());
        return { ms: performance.now() - began };
      }
      case 'heap':
        return this.#heap();
      case 'heap-snapshot':
        await this.#heap();
        writeHeapSnapshot(command.path);
        return null;
      case 'stop':
        await this.#node.stop();
        this.#echo?.terminate();
        return null;
      default: {
        const never: never = command;
        throw new Error(`unknown command ${JSON.stringify(never)}`);
      }
    }
  }

  #roundTrip(): Promise<number> {
    const echo = this.#echo;
    if (echo === null) throw new Error('no echo connection');
    return new Promise((resolve) => {
      const start = performance.now();
      echo.once('message', () => {
        resolve(performance.now() - start);
      });
      echo.send(ECHO_FRAME);
    });
  }

  async #latency(
    samples: number,
    gapMs: number,
    name: string,
    ttlMs: number,
  ): Promise<LatencyAnswer> {
    const rttMs: number[] = [];
    const acquireMs: number[] = [];
    const cycleMs: number[] = [];
    for (let i = 0; i < samples; i++) {
      if (gapMs > 0) await sleep(gapMs);
      rttMs.push(await this.#roundTrip());
      if (gapMs > 0) await sleep(gapMs);
      const began = performance.now();
      const lock = await this.#node.acquireLock(name, { ttlMs });
      const acquired = performance.now();
      await lock.release();
      const released = performance.now();
      acquireMs.push(acquired - began);
      cycleMs.push(released - began);
    }
    return { rttMs, acquireMs, cycleMs };
  }

  async #cycles(
    names: readonly string[],
    ttlMs: number,
    from: number,
    to: number,
  ): Promise<CyclesAnswer> {
    const errors = new Errors();
    const window = { open: false, closed: false, cycles: 0 };
    const counting = (): boolean => window.open && !window.closed;
    const holders = names.map(async (name) => {
      while (!window.closed) {
        try {
          const lock = await this.#node.acquireLock(name, { ttlMs });
          await lock.release();
          if (counting()) window.cycles += 1;
        } catch (error) {
          errors.note(error);
          await sleep(10);
        }
      }
    });
    await sleepUntil(from);
    const cpu0 = process.cpuUsage();
    const stats0 = this.#node.stats();
    const types0 = this.#logger.frameCounts();
    const t0 = performance.now();
    window.open = true;
    await sleepUntil(to);
    window.closed = true;
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const stats1 = this.#node.stats();
    const types1 = this.#logger.frameCounts();
    const cycles = window.cycles;
    await Promise.all(holders);
    return {
      cycles,
      ms,
      cpu,
      framesOut: stats1.framesOut - stats0.framesOut,
      framesIn: stats1.framesIn - stats0.framesIn,
      framesOutByType: difference(types1, types0),
      errors: errors.count,
      firstError: errors.first,
    };
  }

  async #cycleCount(
    names: readonly string[],
    ttlMs: number,
    cycles: number,
  ): Promise<CycleCountAnswer> {
    const errors = new Errors();
    let started = 0;
    let done = 0;
    const began = performance.now();
    await Promise.all(
      names.map(async (name) => {
        while (started < cycles) {
          started += 1;
          try {
            const lock = await this.#node.acquireLock(name, { ttlMs });
            await lock.release();
            done += 1;
          } catch (error) {
            errors.note(error);
            started -= 1;
            await sleep(10);
          }
        }
      }),
    );
    return {
      cycles: done,
      ms: performance.now() - began,
      errors: errors.count,
      firstError: errors.first,
    };
  }

  async #hold(
    prefix: string,
    count: number,
    concurrency: number,
    ttlMs: number,
    readSignal: boolean,
  ): Promise<HoldAnswer> {
    const errors = new Errors();
    const began = performance.now();
    await pool(count, concurrency, async (i) => {
      try {
        const lock = await this.#node.acquireLock(`${prefix}${i}`, { ttlMs });
        if (readSignal && lock.signal.aborted) errors.note(new Error('aborted at once'));
        this.#held.push(lock);
      } catch (error) {
        errors.note(error);
      }
    });
    return {
      held: this.#held.filter((lock) => lock.valid).length,
      ms: performance.now() - began,
      errors: errors.count,
      firstError: errors.first,
    };
  }

  async #heap(): Promise<HeapAnswer> {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc === undefined) throw new Error('run with --expose-gc');
    // Twice, with a turn between: finalizers and weak references settle after the first.
    gc();
    await sleep(50);
    gc();
    const m = process.memoryUsage();
    return {
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
      rss: m.rss,
      held: this.#held.filter((lock) => lock.valid).length,
      warnings: Object.fromEntries(this.#logger.warnings),
      messages: Object.fromEntries(this.#logger.messages),
      framesOut: this.#node.stats().framesOut,
      framesOutByType: this.#logger.frameCounts(),
    };
  }
}

/** Runs `task(0 … count−1)`, at most `concurrency` at a time. */
async function pool(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<unknown> | undefined,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

async function connect(port: number): Promise<WebSocket> {
  const client = new WebSocket(`ws://127.0.0.1:${port}`, LIMITS);
  await new Promise<void>((resolve, reject) => {
    client.once('open', resolve);
    client.once('error', reject);
  });
  return client;
}

async function echoServer(): Promise<number> {
  const server = new WebSocketServer({ ...LIMITS, host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => server.once('listening', resolve));
  server.on('connection', (ws) => {
    ws.on('message', (data) => {
      ws.send(text(data));
    });
  });
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('echo server has no port');
  return address.port;
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '') as LockNodeConfig;
  const secret = process.env[SECRET_ENV];
  if (secret === undefined) throw new Error(`${SECRET_ENV} is not set`);
  const report = (r: LockNodeReport): void => {
    process.send?.(r);
  };
  const logger = new BenchLogger(config.countFrames === true);
  const node = createNode({
    id: config.id,
    logger,
    peers: config.peers,
    secret,
    leaseMs: config.leaseMs,
    maxTtlMs: config.maxTtlMs,
    clock: sharedClock,
  });
  node.on('error', (error) => {
    report({ type: 'error', error: message(error) });
  });
  const child = new Child(node, logger);
  process.on('message', (raw) => {
    const { id, ...command } = raw as LockNodeCommand & { id: number };
    child.run(command).then(
      (answer) => {
        report({ type: 'answer', id, answer });
        if (command.cmd === 'stop') process.disconnect();
      },
      (error: unknown) => {
        report({ type: 'failed', id, error: message(error) });
      },
    );
  });
  // The bench going away ends this process.
  process.on('disconnect', () => {
    process.exit();
  });
  const echoPort = await echoServer();
  await node.start();
  report({ type: 'ready', echoPort });
}

// Run only as a process of its own, not when the bench imports the types.
const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) await main();
