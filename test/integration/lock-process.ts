/**
 * One synod node in a process of its own that takes cluster-wide locks, for the multi-process
 * lock tests (run by ProcessCluster with `runner`). Like process-node.ts it runs over the
 * built-in WebSocket transport on loopback, is given the clock every process on the host shares
 * (`process.hrtime`, see `sharedClock`), and writes what it does to stdout as JSON lines, each
 * with `type`, `id`, `pid` and `t` (that clock when the line was written).
 *
 * Usage: `node lock-process.js '<config as JSON>'`, with the secret in `SYNOD_TEST_SECRET`.
 *
 * A holder's deadline cannot be written when its window ends if the process is killed or
 * stopped then, and the node says nothing when a renewal moves it: so the holder writes its
 * deadline at the grant and with every write (read as `lock.remainingMs` and then the clock, so
 * the figure is at or after the node's own deadline). A window is then [grant, min(release, last
 * deadline written)] on the shared clock; the holder cannot have acted under its lock after it.
 *
 * Two workloads:
 * - `cycle`: one loop per name in `names`: acquire, hold for a random time while writing every
 *   few ms (each write checks `lock.valid` right before it, in the same turn, and goes to the
 *   parent's store as a `write` line carrying the token), release, pause, again.
 * - `hold`: one loop on `names[0]`: acquire, then hold until the lock is lost, looking at it
 *   from a plain `setTimeout` every `tickMs`. Each look reads, in this order, a plain flag set
 *   by the signal's `abort` listener (what a signal aborted only by a timer would say), then
 *   `signal.aborted`, `valid` and `remainingMs`. A look that runs late (after a stall) or sees
 *   the loss writes `look`; after the loss it asks for the lock again.
 *
 * Lines (besides `type`, `id`, `pid`, `t`; tokens are decimal strings):
 * - `start` once the node has started; `leader` at each change of its view of the leader;
 * - `grant` (`name`, `token`, `ttlMs`, `deadline`): the acquire resolved;
 * - `write` (`name`, `token`, `seq`, `checkedAt`: the clock read right before the `valid`
 *   check, `deadline`);
 * - `deadline` (`name`, `token`, `deadline`): in `hold`, the deadline moved (a renewal);
 * - `release` (`name`, `token`, `endedAt`: the clock read right before `release()`, in the
 *   same turn);
 * - `lost` (`name`, `token`, `endedAt`: the clock read before the check, `reason`): a `cycle`
 *   holder found its lock invalid before a write;
 * - `look` (`name`, `token`, `armedAt`, `dueAt`, `ranAt`, `lost`, `flag`, `aborted`, `valid`,
 *   `remainingMs`, `abortedAt`): see `hold`; `abortedAt` is when the abort listener ran;
 * - `acquire-failed` (`name`, `code`); `error`.
 */
import process from 'node:process';
import { pathToFileURL } from 'node:url';
import { createNode, type Lock, type LoggerLike } from '../../lib/index.js';
import { createRng, type Rng } from '../../lib/random.js';
import { SECRET_ENV, sharedClock } from './process-node.js';

export interface LockProcessConfig {
  readonly id: string;
  readonly peers: Readonly<Record<string, string>>;
  readonly leaseMs: number;
  readonly maxTtlMs: number;
  readonly ttlMs: number;
  readonly names: readonly string[];
  readonly mode: 'cycle' | 'hold';
  /** Seeds this process's hold and pause times (with its id and start time mixed in). */
  readonly seed?: number;
  /** `cycle`: how long a holder holds, a range in ms. */
  readonly holdMs?: readonly [number, number];
  /** `cycle`: the share of holds drawn from `longHoldMs` instead (to see renewals). */
  readonly longHoldShare?: number;
  readonly longHoldMs?: readonly [number, number];
  /** `cycle`: the wait between two writes, and after a release, ranges in ms. */
  readonly writeEveryMs?: readonly [number, number];
  readonly pauseMs?: readonly [number, number];
  /** `hold`: how often the holder looks at its lock. */
  readonly tickMs?: number;
  readonly acquireTimeoutMs?: number;
}

type Write = (type: string, fields?: Record<string, unknown>) => void;

function main(): void {
  const config = JSON.parse(process.argv[2] ?? '') as LockProcessConfig;
  const secret = process.env[SECRET_ENV];
  if (secret === undefined) throw new Error(`${SECRET_ENV} is not set`);
  const { id } = config;
  const now = sharedClock.now;
  const write: Write = (type, fields = {}) => {
    // Synchronous on a file or pipe: a line written survives a SIGKILL right after.
    process.stdout.write(
      `${JSON.stringify({ type, id, pid: process.pid, t: now(), ...fields })}\n`,
    );
  };

  const node = createNode({
    id,
    peers: config.peers,
    secret,
    leaseMs: config.leaseMs,
    maxTtlMs: config.maxTtlMs,
    clock: sharedClock,
    logger: stderrLogger(),
    websocket: { pingIntervalMs: 100, peerTimeoutMs: 1000, reconnect: { baseMs: 20, maxMs: 200 } },
  });
  node.on('leaderChange', ({ leaderId, term, isLeader }) => {
    write('leader', { leaderId, term, isLeader });
  });
  node.on('error', (error) => {
    write('error', { message: error.message });
  });

  let idSeed = 0;
  for (const ch of id) idSeed = (Math.imul(idSeed, 31) + ch.charCodeAt(0)) >>> 0;
  const rng = createRng((config.seed ?? 1) ^ idSeed ^ (Math.floor(now()) >>> 0));
  node.start().then(
    () => {
      write('start', { inc: node.incarnation, leaseMs: config.leaseMs });
      if (config.mode === 'cycle') {
        for (const name of config.names) void cycle(node, name, config, rng, write);
      } else {
        const name = config.names[0];
        if (name === undefined) throw new Error('hold needs a name');
        void hold(node, name, config, write);
      }
    },
    (error: unknown) => {
      write('error', { message: String(error) });
      process.exit(1);
    },
  );
}

type SynodNode = ReturnType<typeof createNode>;

/**
 * The deadline of `lock` on the shared clock, at or after the node's own figure (and at most
 * about a millisecond after it).
 */
function deadlineOf(lock: Lock): number {
  for (let tries = 1; ; tries++) {
    const before = sharedClock.now();
    // remainingMs reads the node's clock after `before`: the clock read after it is no earlier.
    const remaining = lock.remainingMs;
    const after = sharedClock.now();
    // A preemption between the reads would push the figure later by as much: read again.
    if (after - before < 1 || tries === 5) return after + remaining;
  }
}

function between(rng: Rng, range: readonly [number, number]): number {
  return range[0] + rng.next() * (range[1] - range[0]);
}

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : String(error);
}

async function acquire(
  node: SynodNode,
  name: string,
  config: LockProcessConfig,
  write: Write,
): Promise<Lock> {
  for (;;) {
    try {
      return await node.acquireLock(name, {
        ttlMs: config.ttlMs,
        timeoutMs: config.acquireTimeoutMs ?? 20_000,
      });
    } catch (error) {
      write('acquire-failed', { name, code: codeOf(error) });
      await sleep(50);
    }
  }
}

async function cycle(
  node: SynodNode,
  name: string,
  config: LockProcessConfig,
  rng: Rng,
  write: Write,
): Promise<void> {
  let seq = 0;
  for (;;) {
    const lock = await acquire(node, name, config, write);
    const token = lock.token.toString();
    write('grant', { name, token, ttlMs: lock.ttlMs, deadline: deadlineOf(lock) });
    const long = rng.next() < (config.longHoldShare ?? 0);
    const holdMs = between(rng, long ? (config.longHoldMs ?? [0, 0]) : (config.holdMs ?? [0, 0]));
    const until = sharedClock.now() + holdMs;
    while (sharedClock.now() < until) {
      await sleep(between(rng, config.writeEveryMs ?? [10, 20]));
      // The write: the check and the request to the store in one synchronous turn.
      const checkedAt = sharedClock.now();
      if (!lock.valid) {
        const reason = lock.signal.reason as unknown;
        write('lost', {
          name,
          token,
          endedAt: checkedAt,
          reason: reason instanceof Error ? reason.message : null,
        });
        break;
      }
      write('write', { name, token, seq: seq++, checkedAt, deadline: deadlineOf(lock) });
    }
    // Read before release(): once this turn reaches it, the holder does nothing more under the
    // lock, and nobody else can be granted it before the release goes out. (A clock read after
    // it could come late, if the process were preempted right there, after the grant that
    // followed.)
    const endedAt = sharedClock.now();
    const released = lock.release();
    write('release', { name, token, endedAt });
    await released.catch(() => undefined);
    await sleep(between(rng, config.pauseMs ?? [0, 50]));
  }
}

async function hold(
  node: SynodNode,
  name: string,
  config: LockProcessConfig,
  write: Write,
): Promise<void> {
  const tickMs = config.tickMs ?? 5;
  for (;;) {
    const lock = await acquire(node, name, config, write);
    const token = lock.token.toString();
    let lastDeadline = deadlineOf(lock);
    write('grant', { name, token, ttlMs: lock.ttlMs, deadline: lastDeadline });
    // What a signal aborted only by the node's timers would say: a flag set by its listener.
    let flag = false;
    let abortedAt: number | null = null;
    lock.signal.addEventListener(
      'abort',
      () => {
        flag = true;
        abortedAt = sharedClock.now();
      },
      { once: true },
    );
    await new Promise<void>((done) => {
      const look = (armedAt: number): void => {
        const ranAt = sharedClock.now();
        // The flag first: reading `aborted` runs the listener when it finds the deadline past.
        const flagBefore = flag;
        const aborted = lock.signal.aborted;
        const valid = lock.valid;
        const remainingMs = lock.remainingMs;
        const lost = aborted || flagBefore;
        if (lost || ranAt - (armedAt + tickMs) > STALL_MS) {
          write('look', {
            name,
            token,
            armedAt,
            dueAt: armedAt + tickMs,
            ranAt,
            lost,
            flag: flagBefore,
            aborted,
            valid,
            remainingMs,
            abortedAt,
          });
        }
        if (lost) {
          done();
          return;
        }
        const deadline = deadlineOf(lock);
        if (deadline > lastDeadline + 1) {
          lastDeadline = deadline;
          write('deadline', { name, token, deadline });
        }
        arm();
      };
      // A plain timer, not one that wakes on the signal: the application's own timer.
      const arm = (): void => {
        const armedAt = sharedClock.now();
        setTimeout(() => {
          look(armedAt);
        }, tickMs);
      };
      arm();
    });
  }
}

/** `hold`: a look this late ran after a stall of the process; it is written whatever it saw. */
const STALL_MS = 50;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Warnings and errors to stderr (the parent keeps the first and last ones); the rest dropped. */
function stderrLogger(): LoggerLike {
  const quiet = (): void => undefined;
  const loud =
    (level: string) =>
    (fields: object, message: string): void => {
      process.stderr.write(`${JSON.stringify({ level, message, ...fields })}\n`);
    };
  return {
    fatal: loud('fatal'),
    error: loud('error'),
    warn: loud('warn'),
    info: quiet,
    debug: quiet,
    trace: quiet,
    isLevelEnabled: (level) => level === 'warn' || level === 'error' || level === 'fatal',
  };
}

// Run only as a process of its own, not when a test imports the types.
const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) main();
