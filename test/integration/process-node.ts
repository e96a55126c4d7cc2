/**
 * One synod node in a process of its own, for the multi-process tests, the bench and anything
 * else that needs real processes: it runs over the built-in WebSocket transport on loopback and
 * writes what it does to stdout as JSON lines, so a parent can check every process's view
 * against the others'.
 *
 * Usage: `node process-node.js '<config as JSON>'`, with the secret in the environment variable
 * `SYNOD_TEST_SECRET` (never on the command line). SIGTERM or SIGINT stops the node gracefully.
 *
 * Every process on one host reads the same clock, `process.hrtime` (CLOCK_MONOTONIC), and the
 * node is given it as its `clock`. Every time in the output (`t`, `deadline`) is a reading of
 * that clock, so times from different processes compare directly. A lease deadline is written
 * each time it moves (election, each renewal), because a process that is killed or stopped
 * cannot write when its leadership ends: its last deadline is the latest it may have believed.
 *
 * Lines (every one has `type`, `id`, `pid` and `t`):
 * - `start` once the node has started (`inc`, `leaseMs`; it votes only `leaseMs` later);
 * - `leader` for every change of the node's view of the leader (`leaderId`, `term`, `isLeader`);
 * - `elected` when its leadership work starts (`term`, `deadline`);
 * - `renewal` each time the deadline of the current term moves (`term`, `deadline`);
 * - `action` for each leader action: every `actionEveryMs` while leading, it checks
 *   `stillLeader()` (or, with `guard: 'signal'`, only `signal.aborted`) and, in the same turn,
 *   reads the clock *after* that check (`term`; `checkedAt`, the clock read right before it);
 * - `stepdown` when the term's signal aborts (`term`, `reason`);
 * - `work-ended` when the term's leadership work has returned (`term`): a graceful stop
 *   releases the lease only after that;
 * - `stopping` when a signal asks for a graceful stop (read right before `stop()`), `stopped`
 *   once `stop()` has resolved (`successor`: the node its Release named, or null;
 *   `successorElected`: whether it heard of that election, as its `stopped` log line says);
 * - `error` if the node fails;
 * - with `traceFrames`, `frame` for every protocol frame handed to or received from the
 *   transport (`dir`: in or out, `peer`, `msg`: its type), and `log` for every info and debug
 *   line the node logs (`level`, `message`: a connection closed, a redial failed…), to see
 *   where time goes (test/bench/handoff-trace.ts reads them).
 */
import process from 'node:process';
import { pathToFileURL } from 'node:url';
import { createNode, type LoggerLike } from '../../lib/index.js';

export interface ProcessNodeConfig {
  readonly id: string;
  /** Every node's `ws://` URL, by id. */
  readonly peers: Readonly<Record<string, string>>;
  readonly leaseMs: number;
  readonly cluster?: string;
  /** How often the leader acts; default 5. */
  readonly actionEveryMs?: number;
  /**
   * What the leader checks right before each action: `stillLeader()` (the default), or only
   * `signal.aborted`, as much application code does after an `await`.
   */
  readonly guard?: 'stillLeader' | 'signal';
  readonly handoffTimeoutMs?: number;
  /** The node this one names as its successor when it stops as leader. */
  readonly preferredLeader?: string;
  /**
   * Also write a `frame` line per protocol frame in and out, and a `log` line per info or debug
   * line of the node.
   */
  readonly traceFrames?: boolean;
}

/** The secret's environment variable. */
export const SECRET_ENV = 'SYNOD_TEST_SECRET';

/** The clock every process on this host shares: CLOCK_MONOTONIC, in milliseconds. */
export const sharedClock = Object.freeze({
  now: (): number => Number(process.hrtime.bigint()) / 1e6,
});

function main(): void {
  const config = JSON.parse(process.argv[2] ?? '') as ProcessNodeConfig;
  const secret = process.env[SECRET_ENV];
  if (secret === undefined) throw new Error(`${SECRET_ENV} is not set`);
  const { id } = config;
  const now = sharedClock.now;

  const write = (type: string, fields: Record<string, unknown> = {}): void => {
    // stdout is a file or a pipe, and Node writes to both synchronously on Linux: a line
    // written is kept even if the process is killed right after.
    process.stdout.write(
      `${JSON.stringify({ type, id, pid: process.pid, t: now(), ...fields })}\n`,
    );
  };

  /** The term whose work runs now, and the last deadline written for it. */
  let current: number | null = null;
  let lastDeadline: number | null = null;
  /** What the node's own `stopped` log line said. */
  let stoppedFields: Record<string, unknown> = {};

  const node = createNode({
    id,
    peers: config.peers,
    secret,
    leaseMs: config.leaseMs,
    clock: sharedClock,
    logger: observingLogger(
      (fields, message) => {
        noteDeadline();
        if (message === 'stopped') stoppedFields = fields as Record<string, unknown>;
      },
      config.traceFrames === true ? write : null,
    ),
    websocket: {
      // Dead peers are noticed and redialled quickly: processes here are killed on purpose.
      pingIntervalMs: 100,
      peerTimeoutMs: 1000,
      reconnect: { baseMs: 20, maxMs: 200 },
    },
    ...(config.cluster === undefined ? {} : { cluster: config.cluster }),
    ...(config.handoffTimeoutMs === undefined ? {} : { handoffTimeoutMs: config.handoffTimeoutMs }),
    ...(config.preferredLeader === undefined ? {} : { preferredLeader: config.preferredLeader }),
  });

  /** Writes the deadline of the current term if it moved (a renewal). */
  function noteDeadline(): void {
    if (current === null) return;
    const deadline = node.leaseDeadline;
    if (deadline === null || deadline === lastDeadline || node.term !== current) return;
    lastDeadline = deadline;
    write('renewal', { term: current, deadline });
  }

  node.on('leaderChange', ({ leaderId, term, isLeader }) => {
    noteDeadline();
    write('leader', { leaderId, term, isLeader });
  });
  node.on('error', (error) => {
    write('error', { message: error.message });
    process.exitCode = 1;
  });

  const everyMs = config.actionEveryMs ?? 5;
  node.onLeader(async ({ term, signal, stillLeader }) => {
    current = term;
    lastDeadline = node.leaseDeadline;
    write('elected', { term, deadline: lastDeadline });
    signal.addEventListener(
      'abort',
      () => {
        const reason = signal.reason as unknown;
        write('stepdown', { term, reason: reason instanceof Error ? reason.message : null });
        if (current === term) current = null;
      },
      { once: true },
    );
    const mayAct = config.guard === 'signal' ? () => !signal.aborted : stillLeader;
    while (!signal.aborted) {
      noteDeadline();
      // The action: the check and the clock readings around it, in one synchronous turn. The
      // loop's timer may have fallen due during a stall: the check then runs after it.
      const checkedAt = now();
      if (mayAct()) write('action', { term, checkedAt });
      await sleep(everyMs, signal);
    }
    write('work-ended', { term });
  });

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    write('stopping');
    node.stop().then(
      () => {
        const { successor = null, successorElected = null } = stoppedFields;
        write('stopped', { successor, successorElected });
        process.exit();
      },
      (error: unknown) => {
        write('error', { message: String(error) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  // Read before start(): the restart silence begins inside it, after the transport is up, so
  // this is at or before the silence's start however long the rest of start() takes.
  const begun = now();
  node.start().then(
    () => {
      write('start', { inc: node.incarnation, leaseMs: config.leaseMs, begun });
    },
    (error: unknown) => {
      write('error', { message: String(error) });
      process.exit(1);
    },
  );
}

/** Resolves after `ms`, or at once when `signal` aborts: a graceful stop waits for no sleep. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * A logger that writes warnings and errors to stderr and calls `observe` on every line: the
 * node logs each renewal (at debug), so the new deadline is written in the same turn as the
 * renewal. (The leader's action loop also looks every few ms, in case a renewal is not logged.)
 * With `trace`, frames (trace level) and info and debug lines become lines of their own.
 */
function observingLogger(
  observe: (fields: object, message: string) => void,
  trace: ((type: string, fields: Record<string, unknown>) => void) | null,
): LoggerLike {
  const quiet =
    (level: string) =>
    (fields: object, message: string): void => {
      observe(fields, message);
      if (trace !== null) trace('log', { level, message });
    };
  const frames = (fields: object, message: string): void => {
    const f = fields as { from?: unknown; to?: unknown; type?: unknown };
    if (trace !== null && (message === 'frame in' || message === 'frame out')) {
      trace('frame', {
        dir: message === 'frame in' ? 'in' : 'out',
        peer: f.from ?? f.to,
        msg: f.type,
      });
    }
  };
  const loud =
    (level: string) =>
    (fields: object, message: string): void => {
      observe(fields, message);
      process.stderr.write(`${JSON.stringify({ level, message, ...fields })}\n`);
    };
  return {
    fatal: loud('fatal'),
    error: loud('error'),
    warn: loud('warn'),
    info: quiet('info'),
    debug: quiet('debug'),
    trace: frames,
    isLevelEnabled: (level) => level !== 'trace' || trace !== null,
  };
}

// Run only as a process of its own, not when a test imports the types and the clock.
const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) main();
