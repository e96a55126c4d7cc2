/**
 * `npm run bench`: election timings and message counts of real runtime nodes, on a virtual
 * clock and an in-memory network with a fixed one-way delay. The figures are in virtual time,
 * so they are the same on every run and every machine; only the wall time of the bench varies.
 *
 * Then (unless `--virtual` is given) the figures on real time: lease rounds against the raw
 * WebSocket round trip, and failover and handoff between real processes (see real.ts). Those
 * depend on the machine and its load.
 *
 * Prints tables and writes the same figures to `.bench-out/latest.json`. Exits 1 if a target or
 * an expected figure is missed (the figures are printed either way).
 *
 * `--handoff` measures only the graceful handoff between processes, untraced and then traced
 * hop by hop (see handoff-trace.ts), and writes `.bench-out/handoff.json`.
 *
 * Locks (see locks.ts): the default run ends with their latency and throughput between three
 * processes. `--locks` measures only those and writes `.bench-out/locks.json`; `--lock-memory`
 * measures the heap per held lock and over a million cycles (several minutes; `--held <n>` and
 * `--cycles <n>` change the counts; `--read-signal` reads every held lock's `signal`, which a
 * lock makes on the first read) and writes `.bench-out/lock-memory.json`. With
 * `--cpu-prof`, the lock runs' node processes write CPU profiles to `.bench-out/profiles/`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { arch, availableParallelism, cpus, release, type } from 'node:os';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import {
  measureLockMemory,
  measureLocks,
  printLockMemory,
  printLocks,
  type LockBenchResult,
} from './locks.js';
import { measureHandoff, measureReal, printHandoff, printReal, type RealResult } from './real.js';
import { coldStart, failover, handoff, renewalTraffic, type Setup } from './scenarios.js';
import { round, roundSummary, scale, summarize, type Summary } from './stats.js';

const LEASE_MS = 1000;
const DELAY_MS = 1;
const SIZES = [3, 5] as const;
const COLD_STARTS = 100;
const CRASHES = 1000;
const HANDOFFS = 100;
const RENEWALS = 90;

/** Failover targets, as multiples of leaseMs. */
const FAILOVER_P50_TARGET = 1.0;
const FAILOVER_P99_TARGET = 1.2;
/** A graceful handoff: Release, Prepare, Promise, Accept, Accepted. */
const HANDOFF_DELAYS_EXPECTED = 5;
/** stop() resolves when the successor's election notice reaches the old leader: one delay on. */
const STOP_AFTER_ELECTED_DELAYS_EXPECTED = 1;

interface Check {
  readonly name: string;
  readonly pass: boolean;
}

interface SizeResult {
  readonly nodes: number;
  /** In multiples of leaseMs. */
  readonly coldStart: Summary;
  /** In multiples of leaseMs. */
  readonly failover: Summary;
  /** Failovers won by the first round after the crash, and the slowest of them (× leaseMs). */
  readonly failoverOneRound: { readonly count: number; readonly max: number };
  /** Failovers that took several rounds: followers that campaigned at about the same time. */
  readonly failoverAfterDuel: Summary | { readonly count: 0 };
  readonly handoffMs: Summary;
  readonly handoffDelays: Summary;
  /** stop() called until it resolved, ms. */
  readonly stopMs: Summary;
  /** The successor's onLeader until stop() resolved, in one-way delays. */
  readonly stopAfterElectedDelays: Summary;
  /** Lease frames (`lease.*`) per renewal: the protocol's own count. */
  readonly messagesPerRenewal: number;
  /** Every other frame per renewal (the log's commit heartbeats, every leaseMs/4). */
  readonly otherFramesPerRenewal: number;
  readonly messagesPerRenewalByType: Record<string, number>;
  readonly checks: Check[];
}

function seeds(count: number, base: number): number[] {
  return Array.from({ length: count }, (_, i) => base + i);
}

function cpuModel(): string {
  return cpus()[0]?.model.trim() ?? 'unknown cpu';
}

function mark(pass: boolean): string {
  return pass ? 'PASS' : 'MISS';
}

function f3(value: number): string {
  return value.toFixed(3);
}

/** One table row: cells padded to the widths given. */
function row(cells: readonly string[], widths: readonly number[]): string {
  return `  ${cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ')}`.trimEnd();
}

async function measure(size: number): Promise<SizeResult> {
  const setup: Setup = { size, leaseMs: LEASE_MS, delayMs: DELAY_MS };
  const base = size * 100_000;
  process.stderr.write(`measuring ${size} nodes…\n`);

  const cold = scale(summarize(await coldStart(setup, seeds(COLD_STARTS, base))), LEASE_MS);

  const crashes = await failover(setup, seeds(CRASHES, base + 10_000));
  const fail = scale(summarize(crashes.map((c) => c.ms)), LEASE_MS);
  const single = crashes.filter((c) => c.rounds === 1).map((c) => c.ms);
  const duels = crashes.filter((c) => c.rounds > 1).map((c) => c.ms);

  const handoffs = await handoff(setup, seeds(HANDOFFS, base + 20_000));
  const hand = summarize(handoffs.map((h) => h.handoffMs));
  const delays = scale(hand, DELAY_MS);
  const stop = summarize(handoffs.map((h) => h.stopMs));
  const stopAfter = scale(summarize(handoffs.map((h) => h.stopMs - h.handoffMs)), DELAY_MS);

  const traffic = await renewalTraffic(setup, base + 30_000, RENEWALS);
  let leaseFrames = 0;
  for (const [type, n] of Object.entries(traffic.byType))
    if (type.startsWith('lease.')) leaseFrames += n;
  const perRenewal = round(leaseFrames);
  const otherPerRenewal = round(traffic.frames / traffic.renewals - leaseFrames);

  const checks: Check[] = [
    {
      name: `${size} nodes: failover p50 ≤ ${FAILOVER_P50_TARGET.toFixed(1)}× leaseMs`,
      pass: fail.p50 <= FAILOVER_P50_TARGET,
    },
    {
      name: `${size} nodes: failover p99 ≤ ${FAILOVER_P99_TARGET.toFixed(1)}× leaseMs`,
      pass: fail.p99 <= FAILOVER_P99_TARGET,
    },
    {
      name: `${size} nodes: handoff = ${HANDOFF_DELAYS_EXPECTED} one-way delays`,
      pass: delays.p50 === HANDOFF_DELAYS_EXPECTED && delays.max === HANDOFF_DELAYS_EXPECTED,
    },
    {
      name: `${size} nodes: messages per renewal = 4(N−1)`,
      pass: perRenewal === 4 * (size - 1),
    },
    {
      name: `${size} nodes: stop() resolves ${STOP_AFTER_ELECTED_DELAYS_EXPECTED} one-way delay after the successor's election`,
      pass: stopAfter.max === STOP_AFTER_ELECTED_DELAYS_EXPECTED,
    },
  ];

  return {
    nodes: size,
    coldStart: roundSummary(cold),
    failover: roundSummary(fail),
    failoverOneRound: { count: single.length, max: round(Math.max(...single) / LEASE_MS) },
    failoverAfterDuel:
      duels.length === 0 ? { count: 0 } : roundSummary(scale(summarize(duels), LEASE_MS)),
    handoffMs: roundSummary(hand),
    handoffDelays: roundSummary(delays),
    stopMs: roundSummary(stop),
    stopAfterElectedDelays: roundSummary(stopAfter),
    messagesPerRenewal: perRenewal,
    otherFramesPerRenewal: otherPerRenewal,
    messagesPerRenewalByType: Object.fromEntries(
      Object.entries(traffic.byType).map(([t, n]) => [t.replace(/^lease\./, ''), round(n)]),
    ),
    checks,
  };
}

function print(results: readonly SizeResult[]): void {
  const check = (r: SizeResult, index: number): string => mark(r.checks[index]?.pass ?? false);

  console.log(
    `Time to first leader after a cold start, in leaseMs (${COLD_STARTS} starts each).\n` +
      'Expected: the restart silence (1.0), the recovery exchange, a ranked wait, one round.',
  );
  let w = [5, 6, 6, 6, 6, 6];
  console.log(row(['nodes', 'min', 'p50', 'p90', 'p99', 'max'], w));
  for (const r of results) {
    const s = r.coldStart;
    console.log(row([`${r.nodes}`, f3(s.min), f3(s.p50), f3(s.p90), f3(s.p99), f3(s.max)], w));
  }

  console.log(
    `\nFailover after a leader crash, in leaseMs (${CRASHES} crashes each, at random moments ` +
      'of the renewal cycle).\n' +
      `Targets: p50 ≤ ${FAILOVER_P50_TARGET.toFixed(1)}, p99 ≤ ${FAILOVER_P99_TARGET.toFixed(1)}. ` +
      '"one round": won by the first round after the crash; "duel": several rounds.',
  );
  w = [5, 6, 11, 6, 11, 6, 17, 17];
  console.log(
    row(['nodes', 'min', 'p50', 'p90', 'p99', 'max', 'one round (max)', 'duel (max)'], w),
  );
  for (const r of results) {
    const s = r.failover;
    const duel = r.failoverAfterDuel;
    console.log(
      row(
        [
          `${r.nodes}`,
          f3(s.min),
          `${f3(s.p50)} ${check(r, 0)}`,
          f3(s.p90),
          `${f3(s.p99)} ${check(r, 1)}`,
          f3(s.max),
          `${r.failoverOneRound.count} (${f3(r.failoverOneRound.max)})`,
          'max' in duel ? `${duel.count} (${f3(duel.max)})` : '0',
        ],
        w,
      ),
    );
  }

  console.log(
    `\nGraceful handoff: stop() on the leader until the successor's onLeader (${HANDOFFS} ` +
      `stops each).\nExpected: ${HANDOFF_DELAYS_EXPECTED} one-way delays ` +
      '(Release, Prepare, Promise, Accept, Accepted).',
  );
  w = [5, 7, 7, 15, 8];
  console.log(row(['nodes', 'p50 ms', 'max ms', 'in delays (max)', 'expected'], w));
  for (const r of results) {
    const h = r.handoffMs;
    const d = r.handoffDelays;
    console.log(
      row(
        [
          `${r.nodes}`,
          `${h.p50}`,
          `${h.max}`,
          `${d.p50} (${d.max})`,
          `${HANDOFF_DELAYS_EXPECTED} ${check(r, 2)}`,
        ],
        w,
      ),
    );
  }
  console.log(
    `\nThe same stops: stop() on the leader until it resolved (it waits to hear of the ` +
      `successor's election).\nExpected: ${STOP_AFTER_ELECTED_DELAYS_EXPECTED} one-way delay ` +
      "after the successor's onLeader (the election notice).",
  );
  w = [5, 7, 7, 24, 8];
  console.log(row(['nodes', 'p50 ms', 'max ms', 'after election (max)', 'expected'], w));
  for (const r of results) {
    const s = r.stopMs;
    const a = r.stopAfterElectedDelays;
    console.log(
      row(
        [
          `${r.nodes}`,
          `${s.p50}`,
          `${s.max}`,
          `${a.p50} (${a.max})`,
          `${STOP_AFTER_ELECTED_DELAYS_EXPECTED} ${check(r, 4)}`,
        ],
        w,
      ),
    );
  }

  console.log(
    `\nMessages per lease renewal: lease frames handed to the transports' send, in steady ` +
      `state (${RENEWALS} renewals each).\nExpected: 4(N−1) (Prepare, Promise, Accept, ` +
      "Accepted to and from every other node). 'other' counts the rest: the log leader's " +
      'commit heartbeat to each follower every leaseMs/4.',
  );
  w = [5, 11, 42, 8, 8];
  console.log(row(['nodes', 'per renewal', 'by type', 'expected', 'other'], w));
  for (const r of results) {
    const byType = Object.entries(r.messagesPerRenewalByType)
      .map(([t, n]) => `${t} ${n}`)
      .join(', ');
    console.log(
      row(
        [
          `${r.nodes}`,
          `${r.messagesPerRenewal}`,
          byType,
          `${4 * (r.nodes - 1)} ${check(r, 3)}`,
          `${r.otherFramesPerRenewal}`,
        ],
        w,
      ),
    );
  }
}

function machineFacts() {
  return {
    os: `${type()} ${release()}`,
    arch: arch(),
    cpu: cpuModel(),
    cores: availableParallelism(),
    node: process.version,
  };
}

const OUT_DIR = fileURLToPath(new URL('../../../.bench-out/', import.meta.url));

function writeReport(name: string, report: object): void {
  const dir = OUT_DIR;
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}${name}`, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`written to .bench-out/${name}`);
}

/** `--handoff`: the graceful handoff between processes only. */
async function handoffOnly(): Promise<void> {
  const machine = machineFacts();
  console.log(
    `synod bench, handoff only: ${machine.os} (${machine.arch}), ${machine.cpu}, ` +
      `${machine.cores} cores, node ${machine.node}\n`,
  );
  const result = await measureHandoff();
  printHandoff(result);
  writeReport('handoff.json', { machine, handoff: result });
  if (result.checks.some((c) => !c.pass)) process.exitCode = 1;
}

/** The value after flag `name`, as a whole number, or `fallback`. */
function count(name: string, fallback: number): number {
  const index = process.argv.indexOf(name);
  if (index < 0) return fallback;
  const value = Number(process.argv[index + 1]);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} takes a positive integer`);
  return value;
}

/** `--held-on leader`, `follower` or `both` (the default): which processes hold the locks. */
function heldOn(): ('leader' | 'follower')[] {
  const index = process.argv.indexOf('--held-on');
  const value = index < 0 ? 'both' : process.argv[index + 1];
  if (value === 'leader' || value === 'follower') return [value];
  if (value === 'both') return ['leader', 'follower'];
  throw new Error('--held-on takes leader, follower or both');
}

/** With `--cpu-prof`: a directory for this run's CPU profiles of the node processes. */
function cpuProfileDir(): string | null {
  if (!process.argv.includes('--cpu-prof')) return null;
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return `${OUT_DIR}profiles/${stamp}`;
}

function printMachine(what: string): void {
  const machine = machineFacts();
  console.log(
    `synod bench, ${what}: ${machine.os} (${machine.arch}), ${machine.cpu}, ` +
      `${machine.cores} cores, node ${machine.node}\n`,
  );
}

function printChecks(checks: readonly Check[]): void {
  const missed = checks.filter((c) => !c.pass);
  console.log(
    `\n${checks.length - missed.length} of ${checks.length} targets met` +
      (missed.length === 0 ? '' : `; MISS: ${missed.map((c) => c.name).join('; ')}`),
  );
  if (missed.length > 0) process.exitCode = 1;
}

/** `--locks`: lock latency and throughput between processes only. */
async function locksOnly(): Promise<void> {
  printMachine('locks only');
  const profiles = cpuProfileDir();
  const result = await measureLocks({ cpuProfileDir: profiles });
  printLocks(result);
  printChecks(result.checks);
  if (profiles !== null) console.log(`CPU profiles in ${profiles}`);
  writeReport('locks.json', { machine: machineFacts(), locks: result });
}

/** `--lock-memory`: the heap per held lock and over a million cycles. */
async function lockMemoryOnly(): Promise<void> {
  printMachine('lock memory');
  const profiles = cpuProfileDir();
  const result = await measureLockMemory({
    held: count('--held', 100_000),
    holdConcurrency: count('--hold-concurrency', 100),
    heldOn: heldOn(),
    cycles: count('--cycles', 1_000_000),
    cpuProfileDir: profiles,
    readSignal: process.argv.includes('--read-signal'),
    heapSnapshotDir: process.argv.includes('--heap-snapshot')
      ? `${OUT_DIR}heap/${new Date().toISOString().replace(/[:.]/g, '-')}`
      : null,
  });
  printLockMemory(result);
  printChecks(result.checks);
  if (profiles !== null) console.log(`CPU profiles in ${profiles}`);
  writeReport('lock-memory.json', { machine: machineFacts(), lockMemory: result });
}

async function main(): Promise<void> {
  const began = performance.now();
  const machine = machineFacts();
  console.log(
    'synod bench: real nodes (createNode) on a virtual clock, then on real sockets and processes',
  );
  console.log(
    `settings: leaseMs ${LEASE_MS}; in-memory network, fixed one-way delay ${DELAY_MS} ms, ` +
      'no loss; figures in virtual time (identical on every run)',
  );
  console.log(
    `machine:  ${machine.os} (${machine.arch}), ${machine.cpu}, ${machine.cores} cores, ` +
      `node ${machine.node}\n`,
  );

  const results: SizeResult[] = [];
  for (const size of SIZES) results.push(await measure(size));
  print(results);

  // Then the figures on real sockets and processes (skipped with --virtual).
  let real: RealResult | null = null;
  let locks: LockBenchResult | null = null;
  if (!process.argv.includes('--virtual')) {
    real = await measureReal();
    printReal(real);
    locks = await measureLocks();
    printLocks(locks);
  }

  const wallSeconds = round((performance.now() - began) / 1000, 1);
  const checks = [
    ...results.flatMap((r) => r.checks),
    ...(real?.checks ?? []),
    ...(locks?.checks ?? []),
  ];
  const missed = checks.filter((c) => !c.pass);
  console.log(
    `\n${checks.length - missed.length} of ${checks.length} targets and expectations met` +
      (missed.length === 0 ? '' : `; MISS: ${missed.map((c) => c.name).join('; ')}`) +
      `\nwall time ${wallSeconds} s`,
  );

  const report = {
    machine,
    settings: {
      leaseMs: LEASE_MS,
      oneWayDelayMs: DELAY_MS,
      coldStarts: COLD_STARTS,
      crashes: CRASHES,
      handoffs: HANDOFFS,
      renewals: RENEWALS,
      units: {
        coldStart: 'leaseMs',
        failover: 'leaseMs',
        handoffMs: 'ms',
        handoffDelays: 'one-way delays',
        stopMs: 'ms',
        stopAfterElectedDelays: 'one-way delays',
      },
    },
    targets: {
      failoverP50: FAILOVER_P50_TARGET,
      failoverP99: FAILOVER_P99_TARGET,
      handoffDelays: HANDOFF_DELAYS_EXPECTED,
      stopAfterElectedDelays: STOP_AFTER_ELECTED_DELAYS_EXPECTED,
      messagesPerRenewal: '4(N-1)',
    },
    results,
    real,
    locks,
    wallSeconds,
  };
  writeReport('latest.json', report);
  if (missed.length > 0) process.exitCode = 1;
}

if (process.argv.includes('--handoff')) await handoffOnly();
else if (process.argv.includes('--locks')) await locksOnly();
else if (process.argv.includes('--lock-memory')) await lockMemoryOnly();
else await main();
