import { mkdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { LockCluster } from './lock-cluster.js';
import type { CyclesAnswer, HeapAnswer, LatencyAnswer } from './lock-node.js';
import { round, roundSummary, summarize, type Summary } from './stats.js';

/**
 * Cluster-wide locks between real processes: three node processes on loopback over the
 * built-in WebSocket transport (lock-node.ts, driven by lock-cluster.ts). Every figure is
 * measured inside a node process, beside the raw WebSocket round trip between two of the same
 * processes, measured in the same run by the same process:
 *
 * - Latency: one holder at a time, on the leader and on a follower, takes an uncontended lock
 *   and releases it: `acquireLock` until it resolved, and until `release()` resolved. Each
 *   call is paired with one echo to the other process its request goes through (the leader's
 *   echo to a follower, the follower's to the leader). Two ways: after an idle gap before every
 *   echo and every call (as an occasional lock call starts), and back to back.
 * - Throughput: 64 holders, each taking and releasing its lock again and again, on distinct
 *   names and on one name; all on the leader's process, and spread over the three. Cycles are
 *   counted in a window every process reads on the clock they share, after a warm-up; each
 *   process also reads its CPU time at both ends of the window.
 * - Memory (`--lock-memory`): heap after full collections in every process while one process
 *   holds 100,000 locks, and at every 250,000 of one million acquire/release cycles.
 */

const LEASE_MS = 1000;
/** A brand-new cluster grants its first lock `maxTtlMs + leaseMs` after its leader serves. */
const MAX_TTL_MS = 5000;
const TTL_MS = 5000;
const LATENCY_SAMPLES = 300;
const LATENCY_GAP_MS = 10;
const WARM_UP_SAMPLES = 50;
const HOLDERS = 64;
const WARM_UP_MS = 1000;
const WINDOW_MS = 4000;

/** p50 targets, in raw round trips. */
const TARGETS = {
  leaderAcquire: 3,
  leaderCycle: 6,
  followerAcquire: 5,
  followerCycle: 10,
} as const;
const DISTINCT_TARGET_PER_S = 20_000;
const CONTENDED_TARGET_PER_S = 2000;

export interface LockCheck {
  readonly name: string;
  readonly pass: boolean;
}

/** Latency of one node's lock calls, beside the round trip it measured. */
export interface LatencyFigures {
  readonly role: 'leader' | 'follower';
  readonly node: string;
  /** To the process its requests go through. */
  readonly echoTo: string;
  readonly gapMs: number;
  readonly rttMs: Summary;
  readonly acquireMs: Summary;
  readonly cycleMs: Summary;
  /** p50, p90, p99 of each figure divided by the same percentile of the round trip. */
  readonly acquireRatio: { readonly p50: number; readonly p90: number; readonly p99: number };
  readonly cycleRatio: { readonly p50: number; readonly p90: number; readonly p99: number };
}

export interface ThroughputFigures {
  readonly names: 'distinct' | 'one';
  readonly placement: 'leader' | 'spread';
  readonly holders: number;
  /** Cycles per second, all processes together. */
  readonly perSecond: number;
  readonly cycles: number;
  readonly windowMs: number;
  /** CPU time of all three processes over the window, per cycle, µs; and the kernel's part. */
  readonly cpuPerCycleUs: number;
  readonly systemPerCycleUs: number;
  /** CPU time of each process over the window, as a share of one core. */
  readonly cpuShare: Readonly<Record<string, number>>;
  /** Frames handed to the transports per cycle, all processes. */
  readonly framesPerCycle: number;
  /** The same by message type, when the processes counted them (`--cpu-prof` runs). */
  readonly framesPerCycleByType: Readonly<Record<string, number>> | null;
  /** The window on the clock every process shares (CLOCK_MONOTONIC ms), to cut a CPU profile. */
  readonly from: number;
  readonly to: number;
  readonly errors: number;
  readonly firstError: string | null;
}

export interface LockBenchSettings {
  readonly leaseMs: number;
  readonly maxTtlMs: number;
  readonly ttlMs: number;
  readonly latencySamples: number;
  readonly latencyGapMs: number;
  readonly holders: number;
  readonly warmUpMs: number;
  readonly windowMs: number;
}

export interface LockBenchResult {
  readonly settings: LockBenchSettings;
  readonly loadAverage: { readonly before: number; readonly after: number };
  readonly leader: string;
  /**
   * The first lock of the new cluster: from `acquireLock` (called once every node named the
   * leader) until its `release()` resolved, ms. A new cluster waits `maxTtlMs + leaseMs`.
   */
  readonly firstGrantMs: number;
  readonly latency: readonly LatencyFigures[];
  readonly throughput: readonly ThroughputFigures[];
  readonly checks: readonly LockCheck[];
}

function ratios(
  figure: Summary,
  rtt: Summary,
): { readonly p50: number; readonly p90: number; readonly p99: number } {
  return {
    p50: round(figure.p50 / rtt.p50, 2),
    p90: round(figure.p90 / rtt.p90, 2),
    p99: round(figure.p99 / rtt.p99, 2),
  };
}

function latencyFigures(
  role: 'leader' | 'follower',
  node: string,
  echoTo: string,
  gapMs: number,
  answer: LatencyAnswer,
): LatencyFigures {
  const rttMs = summarize(answer.rttMs);
  const acquireMs = summarize(answer.acquireMs);
  const cycleMs = summarize(answer.cycleMs);
  return {
    role,
    node,
    echoTo,
    gapMs,
    rttMs: roundSummary(rttMs),
    acquireMs: roundSummary(acquireMs),
    cycleMs: roundSummary(cycleMs),
    acquireRatio: ratios(acquireMs, rttMs),
    cycleRatio: ratios(cycleMs, rttMs),
  };
}

function load(): number {
  return round(loadavg()[0] ?? Number.NaN, 2);
}

/** Starts a cluster and waits for its leader and its first grant. */
async function startCluster(
  maxTtlMs: number,
  ttlMs: number,
  cpuProfileDir: string | null,
): Promise<{ cluster: LockCluster; leader: string; firstGrantMs: number }> {
  const cluster = await LockCluster.start({
    leaseMs: LEASE_MS,
    maxTtlMs,
    cpuProfileDir,
    countFrames: cpuProfileDir !== null,
  });
  try {
    const leader = await cluster.leader();
    process.stderr.write(`  leader ${leader}; waiting for the first grant (maxTtlMs + leaseMs)…\n`);
    const first = (await cluster.ask(
      leader,
      { cmd: 'first', name: 'first', ttlMs, timeoutMs: maxTtlMs + LEASE_MS + 30_000 },
      maxTtlMs + LEASE_MS + 60_000,
    )) as { ms: number };
    return { cluster, leader, firstGrantMs: first.ms };
  } catch (error) {
    await cluster.close();
    throw error;
  }
}

/** Holders per process: all on `leader`, or spread over every process in turn. */
function placeHolders(
  ids: readonly string[],
  leader: string,
  placement: 'leader' | 'spread',
  names: 'distinct' | 'one',
  prefix: string,
): Map<string, string[]> {
  const byNode = new Map<string, string[]>(ids.map((id) => [id, []]));
  const others = ids.filter((id) => id !== leader);
  const order = [leader, ...others];
  for (let i = 0; i < HOLDERS; i++) {
    const id = placement === 'leader' ? leader : (order[i % order.length] ?? leader);
    byNode.get(id)?.push(names === 'one' ? `${prefix}hot` : `${prefix}d${i}`);
  }
  return byNode;
}

async function throughput(
  cluster: LockCluster,
  leader: string,
  names: 'distinct' | 'one',
  placement: 'leader' | 'spread',
  ttlMs: number,
): Promise<ThroughputFigures> {
  const byNode = placeHolders(cluster.ids, leader, placement, names, `${names}-${placement}-`);
  const from = cluster.now() + 200 + WARM_UP_MS;
  const to = from + WINDOW_MS;
  const answers = await Promise.all(
    cluster.ids.map(async (id): Promise<[string, CyclesAnswer]> => [
      id,
      await cluster.cycles(id, { names: byNode.get(id) ?? [], ttlMs, from, to }),
    ]),
  );
  let cycles = 0;
  let perSecond = 0;
  let cpuUs = 0;
  let systemUs = 0;
  let frames = 0;
  let errors = 0;
  let firstError: string | null = null;
  let windowMs = 0;
  const cpuShare: Record<string, number> = {};
  let byType: Record<string, number> | null = {};
  for (const [id, a] of answers) {
    if (a.framesOutByType === null) byType = null;
    else if (byType !== null) {
      for (const [type, n] of Object.entries(a.framesOutByType))
        byType[type] = (byType[type] ?? 0) + n;
    }
    cycles += a.cycles;
    perSecond += (a.cycles * 1000) / a.ms;
    const us = a.cpu.user + a.cpu.system;
    cpuUs += us;
    systemUs += a.cpu.system;
    cpuShare[id] = round(us / 1000 / a.ms, 2);
    frames += a.framesOut;
    errors += a.errors;
    firstError ??= a.firstError;
    windowMs = Math.max(windowMs, a.ms);
  }
  return {
    names,
    placement,
    holders: HOLDERS,
    perSecond: Math.round(perSecond),
    cycles,
    windowMs: round(windowMs, 1),
    cpuPerCycleUs: round(cpuUs / cycles, 1),
    systemPerCycleUs: round(systemUs / cycles, 1),
    cpuShare,
    framesPerCycle: round(frames / cycles, 2),
    framesPerCycleByType:
      byType === null
        ? null
        : Object.fromEntries(
            Object.entries(byType)
              .map(([type, n]): [string, number] => [type, round(n / cycles, 2)])
              .filter(([, n]) => n > 0)
              .sort((a, b) => b[1] - a[1]),
          ),
    from: round(from, 1),
    to: round(to, 1),
    errors,
    firstError,
  };
}

export interface LockBenchOptions {
  /**
   * Write CPU profiles of the node processes here (`node --cpu-prof`); the processes then also
   * count the frames they send by type.
   */
  readonly cpuProfileDir?: string | null;
}

/** Latency and throughput of locks between three processes (about a minute). */
export async function measureLocks(options: LockBenchOptions = {}): Promise<LockBenchResult> {
  const loadBefore = load();
  process.stderr.write('measuring locks between three processes…\n');
  const { cluster, leader, firstGrantMs } = await startCluster(
    MAX_TTL_MS,
    TTL_MS,
    options.cpuProfileDir ?? null,
  );
  try {
    const follower = cluster.ids.find((id) => id !== leader) ?? leader;
    // Each one times its echo to the process its requests go through.
    await cluster.ask(leader, { cmd: 'echo-connect', port: cluster.echoPort(follower) });
    await cluster.ask(follower, { cmd: 'echo-connect', port: cluster.echoPort(leader) });
    const roles = [
      { role: 'leader', node: leader, echoTo: follower },
      { role: 'follower', node: follower, echoTo: leader },
    ] as const;
    for (const r of roles) {
      await cluster.latency(r.node, {
        samples: WARM_UP_SAMPLES,
        gapMs: 0,
        name: `warm-${r.node}`,
        ttlMs: TTL_MS,
      });
    }
    const latency: LatencyFigures[] = [];
    for (const gapMs of [LATENCY_GAP_MS, 0]) {
      for (const r of roles) {
        process.stderr.write(`  latency on the ${r.role}, gap ${gapMs} ms…\n`);
        const answer = await cluster.latency(r.node, {
          samples: LATENCY_SAMPLES,
          gapMs,
          name: `solo-${r.node}`,
          ttlMs: TTL_MS,
        });
        latency.push(latencyFigures(r.role, r.node, r.echoTo, gapMs, answer));
      }
    }
    const runs: ThroughputFigures[] = [];
    for (const names of ['distinct', 'one'] as const) {
      for (const placement of ['leader', 'spread'] as const) {
        process.stderr.write(`  throughput, ${names} name(s), holders on ${placement}…\n`);
        runs.push(await throughput(cluster, leader, names, placement, TTL_MS));
      }
    }
    if (cluster.errors.length > 0) throw new Error(`a node failed: ${cluster.errors.join('; ')}`);
    const loadAfter = load();
    return {
      settings: {
        leaseMs: LEASE_MS,
        maxTtlMs: MAX_TTL_MS,
        ttlMs: TTL_MS,
        latencySamples: LATENCY_SAMPLES,
        latencyGapMs: LATENCY_GAP_MS,
        holders: HOLDERS,
        warmUpMs: WARM_UP_MS,
        windowMs: WINDOW_MS,
      },
      loadAverage: { before: loadBefore, after: loadAfter },
      leader,
      firstGrantMs: round(firstGrantMs, 1),
      latency,
      throughput: runs,
      checks: lockChecks(latency, runs),
    };
  } finally {
    await cluster.close();
  }
}

function lockChecks(
  latency: readonly LatencyFigures[],
  runs: readonly ThroughputFigures[],
): LockCheck[] {
  const checks: LockCheck[] = [];
  const idle = (role: 'leader' | 'follower') => latency.find((l) => l.role === role && l.gapMs > 0);
  const leader = idle('leader');
  const follower = idle('follower');
  if (leader !== undefined) {
    checks.push(
      {
        name: `locks: acquireLock on the leader, p50 ≤ ${TARGETS.leaderAcquire}× the round trip`,
        pass: leader.acquireRatio.p50 <= TARGETS.leaderAcquire,
      },
      {
        name: `locks: acquireLock + release on the leader, p50 ≤ ${TARGETS.leaderCycle}× the round trip`,
        pass: leader.cycleRatio.p50 <= TARGETS.leaderCycle,
      },
    );
  }
  if (follower !== undefined) {
    checks.push(
      {
        name: `locks: acquireLock on a follower, p50 ≤ ${TARGETS.followerAcquire}× the round trip`,
        pass: follower.acquireRatio.p50 <= TARGETS.followerAcquire,
      },
      {
        name: `locks: acquireLock + release on a follower, p50 ≤ ${TARGETS.followerCycle}× the round trip`,
        pass: follower.cycleRatio.p50 <= TARGETS.followerCycle,
      },
    );
  }
  for (const run of runs) {
    const target = run.names === 'distinct' ? DISTINCT_TARGET_PER_S : CONTENDED_TARGET_PER_S;
    checks.push({
      name:
        `locks: ${run.holders} holders on ${run.names === 'distinct' ? 'distinct names' : 'one name'}, ` +
        `all on ${run.placement === 'leader' ? "the leader's process" : 'the three processes'}, ` +
        `≥ ${target.toLocaleString('en-US')} cycles/s`,
      pass: run.perSecond >= target && run.errors === 0,
    });
  }
  return checks;
}

function mark(pass: boolean | undefined): string {
  return pass === true ? 'PASS' : 'MISS';
}

function row(cells: readonly string[], widths: readonly number[]): string {
  return `  ${cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ')}`.trimEnd();
}

function ms(value: number): string {
  return value.toFixed(3);
}

export function printLocks(r: LockBenchResult): void {
  const check = (start: string): boolean | undefined =>
    r.checks.find((c) => c.name.startsWith(start))?.pass;
  console.log(
    `\nLocks between three node processes on loopback (leaseMs ${r.settings.leaseMs}, ` +
      `maxTtlMs ${r.settings.maxTtlMs}, ttlMs ${r.settings.ttlMs}; 1-minute load ` +
      `average ${r.loadAverage.before} before, ${r.loadAverage.after} after). Leader ${r.leader}; ` +
      `first grant ${(r.firstGrantMs / 1000).toFixed(2)} s after the bench asked (a new cluster ` +
      'waits maxTtlMs + leaseMs).',
  );
  console.log(
    `Uncontended latency (${r.settings.latencySamples} calls each, one at a time), ms, ` +
      'beside the raw WebSocket round trip\nthe same process measured to the process its ' +
      'requests go through, interleaved with the calls. ×: the same percentile over the round trip.',
  );
  const w = [44, 8, 8, 8, 22];
  for (const l of r.latency) {
    const how = l.gapMs > 0 ? `after an idle gap of ${l.gapMs} ms` : 'back to back';
    console.log(`  on the ${l.role} (${l.node}), ${how}:`);
    console.log(row(['', 'p50', 'p90', 'p99', 'p50 × round trip'], w));
    console.log(
      row(
        [`  round trip ${l.node} ↔ ${l.echoTo}`, ms(l.rttMs.p50), ms(l.rttMs.p90), ms(l.rttMs.p99)],
        w,
      ),
    );
    const target = (kind: 'acquire' | 'cycle'): string => {
      if (l.gapMs === 0) return '';
      const t =
        l.role === 'leader'
          ? kind === 'acquire'
            ? TARGETS.leaderAcquire
            : TARGETS.leaderCycle
          : kind === 'acquire'
            ? TARGETS.followerAcquire
            : TARGETS.followerCycle;
      const start = `locks: acquireLock ${kind === 'cycle' ? '+ release ' : ''}on ${
        l.role === 'leader' ? 'the leader' : 'a follower'
      }`;
      return ` (≤ ${t}) ${mark(check(start))}`;
    };
    console.log(
      row(
        [
          '  acquireLock',
          ms(l.acquireMs.p50),
          ms(l.acquireMs.p90),
          ms(l.acquireMs.p99),
          `${l.acquireRatio.p50.toFixed(2)}×${target('acquire')}`,
        ],
        w,
      ),
    );
    console.log(
      row(
        [
          '  acquireLock + release',
          ms(l.cycleMs.p50),
          ms(l.cycleMs.p90),
          ms(l.cycleMs.p99),
          `${l.cycleRatio.p50.toFixed(2)}×${target('cycle')}`,
        ],
        w,
      ),
    );
    console.log(
      `    p90 ×: ${l.acquireRatio.p90.toFixed(2)} and ${l.cycleRatio.p90.toFixed(2)}; ` +
        `p99 ×: ${l.acquireRatio.p99.toFixed(2)} and ${l.cycleRatio.p99.toFixed(2)}`,
    );
  }
  console.log(
    `\nThroughput: ${r.settings.holders} holders, each taking and releasing its lock ` +
      `again and again; cycles counted over ${r.settings.windowMs / 1000} s after ` +
      `${r.settings.warmUpMs / 1000} s of warm-up. CPU: all three processes, per ` +
      'cycle, µs (in brackets: the system time in it); share: of one core, per process.',
  );
  const v = [40, 12, 12, 13, 30];
  console.log(row(['holders', 'cycles/s', 'CPU/cycle', 'frames/cycle', 'CPU share'], v));
  for (const t of r.throughput) {
    const target = t.names === 'distinct' ? DISTINCT_TARGET_PER_S : CONTENDED_TARGET_PER_S;
    const pass = t.perSecond >= target && t.errors === 0;
    console.log(
      row(
        [
          `${t.names === 'distinct' ? 'distinct names' : 'one name'}, ${
            t.placement === 'leader' ? "on the leader's process" : 'spread over the three'
          }`,
          `${t.perSecond} ${mark(pass)}`,
          `${t.cpuPerCycleUs.toFixed(0)} (${t.systemPerCycleUs.toFixed(0)})`,
          t.framesPerCycle.toFixed(2),
          Object.entries(t.cpuShare)
            .map(([id, share]) => `${id} ${share.toFixed(2)}`)
            .join(', '),
        ],
        v,
      ),
    );
    if (t.framesPerCycleByType !== null) {
      const types = Object.entries(t.framesPerCycleByType)
        .map(([type, n]) => `${type} ${n.toFixed(2)}`)
        .join(', ');
      console.log(`    frames per cycle by type: ${types}`);
    }
    if (t.errors > 0) console.log(`    ${t.errors} failed calls, first: ${t.firstError ?? ''}`);
  }
  console.log(
    `  targets: distinct names ≥ ${DISTINCT_TARGET_PER_S.toLocaleString('en-US')}/s, one name ≥ ` +
      `${CONTENDED_TARGET_PER_S.toLocaleString('en-US')}/s (2 cores for three processes)`,
  );
}

// ---------------------------------------------------------------------------------------------
// Memory (--lock-memory)

const MEMORY_MAX_TTL_MS = 30_000;
const MEMORY_TTL_MS = 30_000;
const HELD_LOCKS = 100_000;
/**
 * Acquires in flight at once while taking the held locks. A holder sends a request again every
 * `retryMs` (leaseMs/8) until it is answered, so in-flight requests beyond what the cluster
 * answers in that time are sent again and again: from a follower, 1,000 in flight made a storm
 * the cluster did not survive (docs/benchmarks.md, Locks).
 */
const HOLD_CONCURRENCY = 100;
const CYCLES = 1_000_000;
const CYCLE_STEPS = 4;
const HEAP_TARGET_BYTES = 100 * 1024 * 1024;

export interface LockMemoryOptions {
  readonly held?: number;
  /** Acquires in flight at once while taking them (default 100). */
  readonly holdConcurrency?: number;
  /** Which processes hold the locks, one after the other; default the leader's, then a follower's. */
  readonly heldOn?: readonly ('leader' | 'follower')[];
  readonly cycles?: number;
  readonly cpuProfileDir?: string | null;
  /**
   * Write heap snapshots of every process here, before the locks are taken and while they are
   * held (heap-snapshot.ts compares two). Large: use a smaller `held`.
   */
  readonly heapSnapshotDir?: string | null;
  /** Read every held lock's `signal` (made on the first read), as an application that uses it. */
  readonly readSignal?: boolean;
}

interface HeapRow {
  /** Cycles done, or locks held. */
  readonly at: number;
  /** When it was read: the clock every process shares (CLOCK_MONOTONIC ms), to cut a profile. */
  readonly t: number;
  /** The node that led when it was read (null: none, or no agreement). */
  readonly leader: string | null;
  /** Frames each node handed to its transport so far: in all, and by type when counted. */
  readonly framesOut: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /** heapUsed after full collections, by node, bytes. */
  readonly heapUsed: Readonly<Record<string, number>>;
  readonly rss: Readonly<Record<string, number>>;
  /** Warnings, errors and info lines each node logged since it started, by message. */
  readonly logged: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

export interface HeldFigures {
  /** The node whose process holds the locks. */
  readonly holder: string;
  readonly holderRole: 'leader' | 'follower';
  readonly requested: number;
  readonly held: number;
  /** Still valid after waiting past their first renewal. */
  readonly heldAfterRenewal: number;
  readonly acquireMs: number;
  readonly errors: number;
  readonly firstError: string | null;
  readonly before: HeapRow;
  readonly holding: HeapRow;
  readonly released: HeapRow;
  /** (holding − before) / held, by node, bytes. */
  readonly bytesPerLock: Readonly<Record<string, number>>;
  /**
   * Frames all nodes sent from before the first acquire until the heap was read while holding
   * (past the first renewal), per lock requested: `all`, and by type when counted.
   */
  readonly framesPerLock: Readonly<Record<string, number>>;
  /** Warnings, errors and info lines logged during the phase, by node and message. */
  readonly logged: Readonly<Record<string, Readonly<Record<string, number>>>>;
  readonly pass: boolean;
}

export interface LockMemorySettings {
  readonly leaseMs: number;
  readonly maxTtlMs: number;
  readonly ttlMs: number;
  readonly heldLocks: number;
  readonly holdConcurrency: number;
  /** Whether every held lock's `signal` was read (made). */
  readonly readSignal: boolean;
  readonly cycles: number;
  readonly holders: number;
}

export interface LockMemoryResult {
  readonly settings: LockMemorySettings;
  readonly loadAverage: { readonly before: number; readonly after: number };
  readonly leader: string;
  readonly firstGrantMs: number;
  readonly held: readonly HeldFigures[];
  readonly cycles: {
    readonly rows: readonly HeapRow[];
    readonly perSecond: number;
    readonly errors: number;
    readonly firstError: string | null;
    /** Largest heapUsed over the run minus the first row, by node. */
    readonly growth: Readonly<Record<string, number>>;
    /** Warnings, errors and info lines logged during the cycles, by node and message. */
    readonly logged: Readonly<Record<string, Readonly<Record<string, number>>>>;
    readonly pass: boolean;
  };
  readonly checks: readonly LockCheck[];
}

const heapRowNone: HeapRow = {
  at: 0,
  t: 0,
  leader: null,
  framesOut: {},
  heapUsed: {},
  rss: {},
  logged: {},
};

/** Frames sent by every node between two rows, by type (`all`: every frame), per `unit`. */
function framesBetween(before: HeapRow, after: HeapRow, unit: number): Record<string, number> {
  const sum: Record<string, number> = {};
  for (const [id, counts] of Object.entries(after.framesOut)) {
    const earlier = before.framesOut[id] ?? {};
    for (const [type, n] of Object.entries(counts)) {
      sum[type] = (sum[type] ?? 0) + n - (earlier[type] ?? 0);
    }
  }
  return Object.fromEntries(
    Object.entries(sum)
      .map(([type, n]): [string, number] => [type, round(n / unit, 2)])
      .filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1]),
  );
}

async function heapRow(cluster: LockCluster, at: number): Promise<HeapRow> {
  const answers: [string, HeapAnswer][] = [];
  // One at a time: a full collection takes a core.
  for (const id of cluster.ids) answers.push([id, await cluster.heap(id)]);
  const views = await Promise.all(cluster.ids.map((id) => cluster.status(id)));
  return {
    at,
    t: round(cluster.now(), 1),
    leader: cluster.ids.find((_, i) => views[i]?.isLeader === true) ?? null,
    framesOut: Object.fromEntries(
      answers.map(([id, a]) => [id, { all: a.framesOut, ...(a.framesOutByType ?? {}) }]),
    ),
    heapUsed: Object.fromEntries(answers.map(([id, a]) => [id, a.heapUsed])),
    rss: Object.fromEntries(answers.map(([id, a]) => [id, a.rss])),
    logged: Object.fromEntries(answers.map(([id, a]) => [id, { ...a.warnings, ...a.messages }])),
  };
}

/** Lines logged between two rows, by node and message (nodes with none left out). */
function newLogLines(before: HeapRow, after: HeapRow): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const [id, counts] of Object.entries(after.logged)) {
    const earlier = before.logged[id] ?? {};
    const fresh = Object.entries(counts)
      .map(([message, n]): [string, number] => [message, n - (earlier[message] ?? 0)])
      .filter(([, n]) => n > 0);
    if (fresh.length > 0) out[id] = Object.fromEntries(fresh);
  }
  return out;
}

function printLogLines(logged: Readonly<Record<string, Readonly<Record<string, number>>>>): void {
  for (const [id, counts] of Object.entries(logged)) {
    for (const [message, n] of Object.entries(counts))
      console.log(`    ${id} logged ${n} × ${message}`);
  }
}

async function snapshots(cluster: LockCluster, dir: string | null, name: string): Promise<void> {
  if (dir === null) return;
  mkdirSync(dir, { recursive: true });
  for (const id of cluster.ids) {
    await cluster.ask(id, { cmd: 'heap-snapshot', path: `${dir}/${name}-${id}.heapsnapshot` });
  }
}

async function holdLocks(
  cluster: LockCluster,
  holder: string,
  holderRole: 'leader' | 'follower',
  count: number,
  concurrency: number,
  snapshotDir: string | null,
  readSignal: boolean,
): Promise<HeldFigures> {
  process.stderr.write(`  holding ${count} locks on the ${holderRole} (${holder})…\n`);
  const before = await heapRow(cluster, 0);
  await snapshots(cluster, snapshotDir, `${holderRole}-before`);
  const began = performance.now();
  const hold = await cluster.hold(holder, {
    prefix: `held-${holder}-`,
    count,
    concurrency,
    ttlMs: MEMORY_TTL_MS,
    readSignal,
  });
  process.stderr.write(
    `  ${hold.held} held after ${((performance.now() - began) / 1000).toFixed(1)} s` +
      (hold.errors > 0 ? `, ${hold.errors} failed (${hold.firstError ?? ''})` : '') +
      '; waiting past their first renewal…\n',
  );
  // Past the first renewal of the last lock taken (a third of its validity), and a bit more.
  await new Promise((resolve) => setTimeout(resolve, MEMORY_TTL_MS / 3 + 2000));
  const holding = await heapRow(cluster, hold.held);
  await snapshots(cluster, snapshotDir, `${holderRole}-holding`);
  const heldAfterRenewal = (await cluster.heap(holder)).held;
  await cluster.ask(holder, { cmd: 'release-held', concurrency });
  const released = await heapRow(cluster, 0);
  const bytesPerLock: Record<string, number> = {};
  for (const id of cluster.ids) {
    bytesPerLock[id] = Math.round(
      ((holding.heapUsed[id] ?? 0) - (before.heapUsed[id] ?? 0)) / Math.max(1, hold.held),
    );
  }
  return {
    framesPerLock: framesBetween(before, holding, count),
    logged: newLogLines(before, released),
    holder,
    holderRole,
    requested: count,
    held: hold.held,
    heldAfterRenewal,
    acquireMs: round(hold.ms, 1),
    errors: hold.errors,
    firstError: hold.firstError,
    before,
    holding,
    released,
    bytesPerLock,
    pass:
      hold.held === count &&
      heldAfterRenewal === count &&
      Object.values(holding.heapUsed).every((b) => b <= HEAP_TARGET_BYTES),
  };
}

/** `--lock-memory`: heap per held lock, and the heap over a million cycles (several minutes). */
export async function measureLockMemory(
  options: LockMemoryOptions = {},
): Promise<LockMemoryResult> {
  const heldCount = options.held ?? HELD_LOCKS;
  const totalCycles = options.cycles ?? CYCLES;
  const loadBefore = load();
  process.stderr.write('measuring lock memory between three processes…\n');
  const { cluster, leader, firstGrantMs } = await startCluster(
    MEMORY_MAX_TTL_MS,
    MEMORY_TTL_MS,
    options.cpuProfileDir ?? null,
  );
  try {
    const follower = cluster.ids.find((id) => id !== leader) ?? leader;
    const held: HeldFigures[] = [];
    for (const role of options.heldOn ?? ['leader', 'follower']) {
      const holder = role === 'leader' ? leader : follower;
      held.push(
        await holdLocks(
          cluster,
          holder,
          role,
          heldCount,
          options.holdConcurrency ?? HOLD_CONCURRENCY,
          options.heapSnapshotDir ?? null,
          options.readSignal === true,
        ),
      );
    }

    process.stderr.write(`  ${totalCycles} cycles, heap every ${totalCycles / CYCLE_STEPS}…\n`);
    const byNode = placeHolders(cluster.ids, leader, 'spread', 'distinct', 'flat-');
    const rows = [await heapRow(cluster, 0)];
    let done = 0;
    let cycleMs = 0;
    let errors = 0;
    let firstError: string | null = null;
    for (let step = 1; step <= CYCLE_STEPS; step++) {
      const target = Math.round((totalCycles * step) / CYCLE_STEPS) - done;
      const began = performance.now();
      const holders = cluster.ids.filter((id) => (byNode.get(id) ?? []).length > 0);
      const answers = await Promise.all(
        holders.map((id, i) =>
          cluster.cycleCount(id, {
            names: byNode.get(id) ?? [],
            ttlMs: MEMORY_TTL_MS,
            // The step's cycles, split evenly over the processes that run holders.
            cycles: Math.floor(target / holders.length) + (i < target % holders.length ? 1 : 0),
          }),
        ),
      );
      cycleMs += performance.now() - began;
      for (const a of answers) {
        done += a.cycles;
        errors += a.errors;
        firstError ??= a.firstError;
      }
      rows.push(await heapRow(cluster, done));
      process.stderr.write(`  ${done} cycles\n`);
    }
    const growth: Record<string, number> = {};
    for (const id of cluster.ids) {
      const first = rows[0]?.heapUsed[id] ?? 0;
      growth[id] = Math.max(...rows.map((r) => r.heapUsed[id] ?? 0)) - first;
    }
    // Flat: no node's heap grew by more than 5 MB over the run (noise of a few hundred kB is
    // normal: buffers and caches the collector keeps).
    const flat = Object.values(growth).every((g) => g <= 5 * 1024 * 1024) && errors === 0;
    if (cluster.errors.length > 0) throw new Error(`a node failed: ${cluster.errors.join('; ')}`);
    const loadAfter = load();
    const checks: LockCheck[] = [
      ...held.map((h) => ({
        name: `locks: ${h.requested.toLocaleString('en-US')} held on the ${h.holderRole}'s process, ≤ 100 MB of heap on every node`,
        pass: h.pass,
      })),
      {
        name: `locks: heap flat over ${totalCycles.toLocaleString('en-US')} cycles (≤ 5 MB growth on every node)`,
        pass: flat,
      },
    ];
    return {
      settings: {
        leaseMs: LEASE_MS,
        maxTtlMs: MEMORY_MAX_TTL_MS,
        ttlMs: MEMORY_TTL_MS,
        heldLocks: heldCount,
        holdConcurrency: options.holdConcurrency ?? HOLD_CONCURRENCY,
        readSignal: options.readSignal === true,
        cycles: totalCycles,
        holders: HOLDERS,
      },
      loadAverage: { before: loadBefore, after: loadAfter },
      leader,
      firstGrantMs: round(firstGrantMs, 1),
      held,
      cycles: {
        rows,
        perSecond: Math.round((done * 1000) / cycleMs),
        errors,
        firstError,
        growth,
        logged: newLogLines(rows[0] ?? heapRowNone, rows.at(-1) ?? heapRowNone),
        pass: flat,
      },
      checks,
    };
  } finally {
    await cluster.close();
  }
}

function mb(bytes: number | undefined): string {
  return ((bytes ?? Number.NaN) / 1024 / 1024).toFixed(1);
}

export function printLockMemory(r: LockMemoryResult): void {
  console.log(
    `Lock memory, three node processes on loopback (leaseMs ${r.settings.leaseMs}, ` +
      `maxTtlMs ${r.settings.maxTtlMs}, ttlMs ${r.settings.ttlMs}; 1-minute load ` +
      `average ${r.loadAverage.before} before, ${r.loadAverage.after} after). Leader at the start ${r.leader}. ` +
      'Heap: heapUsed after full collections (two, as every row is read), MB.',
  );
  const ids = Object.keys(r.cycles.rows[0]?.heapUsed ?? {});
  for (const h of r.held) {
    console.log(
      `\n${h.held.toLocaleString('en-US')} of ${h.requested.toLocaleString('en-US')} locks held by ` +
        `the ${h.holderRole}'s process (${h.holder}), taken in ${(h.acquireMs / 1000).toFixed(1)} s, ` +
        `${h.heldAfterRenewal.toLocaleString('en-US')} still held after their first renewal` +
        (r.settings.readSignal ? ', every signal read, ' : ' ') +
        `${mark(h.pass)} (target ≤ 100 MB per node)` +
        (h.errors > 0 ? `; ${h.errors} failed, first: ${h.firstError ?? ''}` : ''),
    );
    const w = [26, ...ids.map(() => 10)];
    const lead = h.before.leader;
    console.log(row(['heap MB', ...ids.map((id) => (id === lead ? `${id} (leader)` : id))], w));
    console.log(row(['before', ...ids.map((id) => mb(h.before.heapUsed[id]))], w));
    console.log(row(['holding', ...ids.map((id) => mb(h.holding.heapUsed[id]))], w));
    console.log(row(['released', ...ids.map((id) => mb(h.released.heapUsed[id]))], w));
    console.log(row(['bytes per held lock', ...ids.map((id) => `${h.bytesPerLock[id] ?? ''}`)], w));
    console.log(row(['rss while holding', ...ids.map((id) => mb(h.holding.rss[id]))], w));
    console.log(
      `  frames per lock, taking and renewing them: ${Object.entries(h.framesPerLock)
        .map(([type, n]) => `${type} ${n.toFixed(2)}`)
        .join(', ')}`,
    );
    const leaders = [h.before, h.holding, h.released].map((x) => x.leader ?? 'none');
    if (new Set(leaders).size > 1) {
      console.log(`  the leader when each row was read: ${leaders.join(', ')}`);
    }
    printLogLines(h.logged);
  }
  const c = r.cycles;
  console.log(
    `\nHeap over ${r.settings.cycles.toLocaleString('en-US')} acquire/release cycles ` +
      `(${r.settings.holders} holders on distinct names, spread over the three processes; ` +
      `${c.perSecond} cycles/s):`,
  );
  const w = [26, ...ids.map(() => 10)];
  const lead = c.rows[0]?.leader ?? null;
  console.log(row(['cycles', ...ids.map((id) => (id === lead ? `${id} (leader)` : id))], w));
  for (const rr of c.rows) {
    const note = rr.leader === lead ? '' : `  (leader: ${rr.leader ?? 'none'})`;
    console.log(
      row([rr.at.toLocaleString('en-US'), ...ids.map((id) => mb(rr.heapUsed[id]))], w) + note,
    );
  }
  console.log(
    row([`growth (max − first) ${mark(c.pass)}`, ...ids.map((id) => mb(c.growth[id]))], w) +
      (c.errors > 0 ? `\n    ${c.errors} failed calls, first: ${c.firstError ?? ''}` : ''),
  );
}
