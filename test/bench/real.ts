import { loadavg } from 'node:os';
import { traceHandoffs, type HandoffTraceResult } from './handoff-trace.js';
import { measureProcesses } from './processes.js';
import { round, roundSummary, scale, type Summary } from './stats.js';
import { measureInProcessHandoffs, measureLeaseRounds } from './websocket-round.js';

/**
 * The bench figures on real time, real sockets and real processes, after the virtual-clock
 * ones. Unlike those, they depend on the machine and its load: they are printed with the
 * machine they were measured on.
 */

/** In-process lease rounds over WebSocket: leaseMs, rounds timed, echoes between rounds. */
const ROUND_LEASE_MS = 300;
const ROUNDS = 150;
const ECHOES_PER_ROUND = 4;
const IN_PROCESS_HANDOFFS = 20;
/** Processes: leaseMs, leader kills, graceful stops. */
const PROCESS_LEASE_MS = 500;
const KILLS = 24;
const STOPS = 100;
/** Graceful stops traced frame by frame, for the breakdown of a handoff. */
const HANDOFF_TRACES = 24;

/** A lease round is two quorum round trips plus processing: at most this many raw round trips. */
export const ROUND_RATIO_TARGET = 5;
const FAILOVER_P50_TARGET = 1.0;
const FAILOVER_P99_TARGET = 1.2;
const HANDOFF_P50_TARGET_MS = 5;
/**
 * A stop resolves within a few one-way delays of its successor's election: the notice of the
 * election (one delay), the old leader waking, closing its transport and resolving. 20 ms is
 * some forty one-way delays between idle processes here, and still far below the `leaseMs/4`
 * (125 ms) the old leader waits at most when it hears of no election.
 */
const STOP_AFTER_ELECTED_P99_TARGET_MS = 20;
/** Stops the named successor must win in one round, per hundred. */
const NAMED_WINS_PER_100_TARGET = 99;

export interface RealCheck {
  readonly name: string;
  readonly pass: boolean;
}

/** Graceful stops between processes: when stop() resolved, and who won. */
export interface StopFigures {
  readonly count: number;
  /** stop() called until it resolved, ms. */
  readonly stopMs: Summary;
  /** The successor's onLeader until the old leader's stop() resolved, ms (stops that heard it). */
  readonly stopAfterElectedMs: Summary;
  /** Stops that heard of no election: they resolved at the end of their leaseMs/4 wait. */
  readonly gaveUp: number;
  /** p99 over every stop, one that gave up counting as too late. */
  readonly stopAfterElectedP99: number;
  /** Stops won by the named successor within leaseMs/4 (one round). */
  readonly namedWonAtOnce: number;
  readonly otherStops: readonly string[];
}

function stopFigures(p: {
  stopMs: Summary;
  stopAfterElectedMs: Summary;
  stopsGaveUp: number;
  namedWonAtOnce: number;
  otherStops: readonly string[];
}): StopFigures {
  // A stop that heard of no election is later than any target: rank it last.
  const heard = p.stopAfterElectedMs.count - (Number.isNaN(p.stopAfterElectedMs.min) ? 1 : 0);
  const rank = Math.ceil(0.99 * (heard + p.stopsGaveUp));
  const p99 = rank > heard ? Number.POSITIVE_INFINITY : p.stopAfterElectedMs.p99;
  return {
    count: p.stopMs.count,
    stopMs: roundSummary(p.stopMs),
    stopAfterElectedMs: roundSummary(p.stopAfterElectedMs),
    gaveUp: p.stopsGaveUp,
    stopAfterElectedP99: round(p99),
    namedWonAtOnce: p.namedWonAtOnce,
    otherStops: p.otherStops,
  };
}

/** The two checks on graceful stops. */
function stopChecks(s: StopFigures): RealCheck[] {
  return [
    {
      name: `processes: stop() resolves within ${STOP_AFTER_ELECTED_P99_TARGET_MS} ms of the successor's election (p99)`,
      pass: s.stopAfterElectedP99 <= STOP_AFTER_ELECTED_P99_TARGET_MS,
    },
    {
      name: `processes: the named successor wins in one round in ≥ ${NAMED_WINS_PER_100_TARGET} of 100 stops`,
      pass: s.namedWonAtOnce * 100 >= NAMED_WINS_PER_100_TARGET * s.count,
    },
  ];
}

export interface RealResult {
  readonly settings: Record<string, number>;
  /** The machine's 1-minute load average before and after: these figures depend on it. */
  readonly loadAverage: { readonly before: number; readonly after: number };
  /** In-process WebSocket round trip after an idle gap, and back to back. */
  readonly rttMs: Summary;
  readonly hotRttMs: Summary;
  /** Graceful handoffs with the three nodes in one process, ms. */
  readonly inProcessHandoffMs: Summary;
  readonly leaseRoundMs: Summary;
  readonly frameBytes: number;
  readonly ratioP50: number;
  readonly ratioP99: number;
  /** In multiples of leaseMs. */
  readonly failover: Summary;
  readonly handoffMs: Summary;
  readonly stops: StopFigures;
  /** WebSocket round trip between processes after an idle gap, ms. */
  readonly processRttMs: Summary;
  /** Handoff p50 in one-way delays between processes (half the p50 round trip). */
  readonly handoffDelaysP50: number;
  readonly violations: readonly string[];
  readonly actions: number;
  /** Where the time of a handoff between processes goes, hop by hop (traced stops). */
  readonly handoffTrace: HandoffTraceResult;
  readonly checks: readonly RealCheck[];
}

export async function measureReal(): Promise<RealResult> {
  const loadBefore = loadavg()[0] ?? Number.NaN;
  process.stderr.write('measuring lease rounds over WebSocket…\n');
  const rounds = await measureLeaseRounds({
    leaseMs: ROUND_LEASE_MS,
    rounds: ROUNDS,
    echoesPerRound: ECHOES_PER_ROUND,
  });
  const inProcessHandoffs = await measureInProcessHandoffs({
    leaseMs: ROUND_LEASE_MS,
    handoffs: IN_PROCESS_HANDOFFS,
  });
  process.stderr.write(`measuring ${KILLS} kills and ${STOPS} graceful stops of processes… `);
  const processes = await measureProcesses({
    leaseMs: PROCESS_LEASE_MS,
    kills: KILLS,
    stops: STOPS,
  });
  process.stderr.write(`tracing ${HANDOFF_TRACES} graceful stops of processes… `);
  const handoffTrace = await traceHandoffs({
    leaseMs: PROCESS_LEASE_MS,
    handoffs: HANDOFF_TRACES,
  });
  const loadAfter = loadavg()[0] ?? Number.NaN;
  const ratioP50 = rounds.roundMs.p50 / rounds.rttMs.p50;
  const ratioP99 = rounds.roundMs.p99 / rounds.rttMs.p99;
  if (processes.failoverMs === null) throw new Error('no failover measured');
  const failover = scale(processes.failoverMs, PROCESS_LEASE_MS);
  const stops = stopFigures(processes);
  const checks: RealCheck[] = [
    {
      name: `lease round p50 ≤ ${ROUND_RATIO_TARGET}× the WebSocket round trip`,
      pass: ratioP50 <= ROUND_RATIO_TARGET,
    },
    {
      name: `processes: failover p50 ≤ ${FAILOVER_P50_TARGET.toFixed(1)}× leaseMs`,
      pass: failover.p50 <= FAILOVER_P50_TARGET,
    },
    {
      name: `processes: failover p99 ≤ ${FAILOVER_P99_TARGET.toFixed(1)}× leaseMs`,
      pass: failover.p99 <= FAILOVER_P99_TARGET,
    },
    {
      name: `processes: handoff p50 ≤ ${HANDOFF_P50_TARGET_MS} ms`,
      pass: processes.handoffMs.p50 <= HANDOFF_P50_TARGET_MS,
    },
    {
      name: 'processes: never two leaders, no action outside a lease',
      pass: processes.violations.length === 0 && processes.actions > 0,
    },
    ...stopChecks(stops),
  ];
  return {
    loadAverage: { before: round(loadBefore, 2), after: round(loadAfter, 2) },
    settings: {
      roundLeaseMs: ROUND_LEASE_MS,
      rounds: ROUNDS,
      echoesPerRound: ECHOES_PER_ROUND,
      inProcessHandoffs: IN_PROCESS_HANDOFFS,
      processLeaseMs: PROCESS_LEASE_MS,
      kills: KILLS,
      stops: STOPS,
    },
    rttMs: roundSummary(rounds.rttMs),
    hotRttMs: roundSummary(rounds.hotRttMs),
    inProcessHandoffMs: roundSummary(inProcessHandoffs),
    leaseRoundMs: roundSummary(rounds.roundMs),
    frameBytes: rounds.frameBytes,
    ratioP50: round(ratioP50, 2),
    ratioP99: round(ratioP99, 2),
    failover: roundSummary(failover),
    handoffMs: roundSummary(processes.handoffMs),
    stops,
    processRttMs: roundSummary(processes.rttMs),
    handoffDelaysP50: round(processes.handoffMs.p50 / (processes.rttMs.p50 / 2), 1),
    violations: processes.violations.slice(0, 10),
    actions: processes.actions,
    handoffTrace: roundTrace(handoffTrace),
    checks,
  };
}

export interface HandoffResult {
  readonly settings: Record<string, number>;
  readonly loadAverage: { readonly before: number; readonly after: number };
  /** Untraced graceful stops between processes, ms. */
  readonly handoffMs: Summary;
  readonly stops: StopFigures;
  readonly processRttMs: Summary;
  readonly handoffTrace: HandoffTraceResult;
  readonly checks: readonly RealCheck[];
}

/**
 * `npm run bench -- --handoff`: only the graceful handoff between processes, untraced then
 * traced hop by hop (about a minute), for working on it.
 */
export async function measureHandoff(): Promise<HandoffResult> {
  const loadBefore = loadavg()[0] ?? Number.NaN;
  process.stderr.write(`measuring ${STOPS} graceful stops of processes… `);
  const processes = await measureProcesses({ leaseMs: PROCESS_LEASE_MS, kills: 0, stops: STOPS });
  process.stderr.write(`tracing ${HANDOFF_TRACES} graceful stops of processes… `);
  const handoffTrace = await traceHandoffs({
    leaseMs: PROCESS_LEASE_MS,
    handoffs: HANDOFF_TRACES,
  });
  const loadAfter = loadavg()[0] ?? Number.NaN;
  const stops = stopFigures(processes);
  return {
    settings: { processLeaseMs: PROCESS_LEASE_MS, stops: STOPS, handoffTraces: HANDOFF_TRACES },
    loadAverage: { before: round(loadBefore, 2), after: round(loadAfter, 2) },
    handoffMs: roundSummary(processes.handoffMs),
    stops,
    processRttMs: roundSummary(processes.rttMs),
    handoffTrace: roundTrace(handoffTrace),
    checks: [
      {
        name: `processes: handoff p50 ≤ ${HANDOFF_P50_TARGET_MS} ms`,
        pass: processes.handoffMs.p50 <= HANDOFF_P50_TARGET_MS,
      },
      ...stopChecks(stops),
    ],
  };
}

export function printHandoff(r: HandoffResult): void {
  const h = r.handoffMs;
  console.log(
    `Graceful handoff between three node processes on loopback (leaseMs ${PROCESS_LEASE_MS}; ` +
      `1-minute load average ${r.loadAverage.before} before, ${r.loadAverage.after} after).\n` +
      `  ${STOPS} stops: stop() on the leader until the successor's onLeader, ms: ` +
      `min ${h.min.toFixed(1)}, p50 ${h.p50.toFixed(1)} ${mark(r.checks[0]?.pass ?? false)} ` +
      `(target ≤ ${HANDOFF_P50_TARGET_MS}), p90 ${h.p90.toFixed(1)}, max ${h.max.toFixed(1)}; ` +
      `round trip to a process after idle p50 ${r.processRttMs.p50.toFixed(2)} ms`,
  );
  printStops(r.stops, r.checks.slice(1));
  printTrace(r.handoffTrace);
}

/** The graceful stops: when stop() resolved, and whether the named successor won at once. */
function printStops(s: StopFigures, checks: readonly RealCheck[]): void {
  const pass = (index: number): string => mark(checks[index]?.pass ?? false);
  console.log(
    `\nGraceful stop between processes (${s.count} stops): when stop() resolved. The old leader ` +
      "keeps its connections\nuntil it hears of its successor's election (at most leaseMs/4 = " +
      `${PROCESS_LEASE_MS / 4} ms), then closes its transport.\n` +
      `Targets: resolved within ${STOP_AFTER_ELECTED_P99_TARGET_MS} ms of the successor's ` +
      `onLeader (p99); the named successor wins in one round (within leaseMs/4) in ≥ ` +
      `${NAMED_WINS_PER_100_TARGET} of 100.`,
  );
  const v = [38, 8, 8, 8, 8, 8];
  console.log(row(['ms', 'min', 'p50', 'p90', 'p99', 'max'], v));
  const a = s.stopMs;
  const b = s.stopAfterElectedMs;
  console.log(
    row(
      [
        'stop() called → resolved',
        a.min.toFixed(1),
        a.p50.toFixed(1),
        a.p90.toFixed(1),
        a.p99.toFixed(1),
        a.max.toFixed(1),
      ],
      v,
    ),
  );
  console.log(
    row(
      [
        "successor's onLeader → stop() resolved",
        b.min.toFixed(1),
        b.p50.toFixed(1),
        b.p90.toFixed(1),
        b.p99.toFixed(1),
        b.max.toFixed(1),
      ],
      v,
    ),
  );
  console.log(
    `  heard of no election and resolved at the end of its wait: ${s.gaveUp} of ${s.count}; ` +
      'p99 over every stop, those counted as too late: ' +
      (Number.isFinite(s.stopAfterElectedP99)
        ? `${s.stopAfterElectedP99.toFixed(1)} ms`
        : 'more than 1 in 100 heard of no election') +
      ` ${pass(0)}`,
  );
  console.log(
    `  the named successor won in one round: ${s.namedWonAtOnce} of ${s.count} ${pass(1)}` +
      (s.otherStops.length > 0 ? `\n    ${s.otherStops.join('\n    ')}` : ''),
  );
}

function roundTrace(t: HandoffTraceResult): HandoffTraceResult {
  return {
    ...t,
    hops: t.hops.map((hop) => ({ ...hop, ms: roundSummary(hop.ms) })),
    totalMs: roundSummary(t.totalMs),
    byPlace: Object.fromEntries(
      Object.entries(t.byPlace).map(([where, s]) => [where, roundSummary(s)]),
    ),
    stopperExitMs: roundSummary(t.stopperExitMs),
  };
}

/** `a ×2, b ×1`. */
function countReasons(reasons: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const r of reasons) counts.set(r, (counts.get(r) ?? 0) + 1);
  return [...counts].map(([r, n]) => `${r} ×${String(n)}`).join(', ');
}

function printTrace(t: HandoffTraceResult): void {
  console.log(
    `\nWhere a handoff between processes goes: ${t.traced} stops traced frame by frame, each ` +
      'moment read on the clock\nall processes share (CLOCK_MONOTONIC). "wire": from the frame ' +
      "handed to the sender's transport until the receiving\nnode decoded it. The voter is the " +
      "node whose Promise completed the successor's majority." +
      (t.skipped.length > 0 ? `\n  left out of the hops: ${countReasons(t.skipped)}` : ''),
  );
  const w = [42, 10, 7, 7, 7];
  console.log(row(['ms', 'where', 'p50', 'p90', 'p99'], w));
  for (const hop of t.hops) {
    const s = hop.ms;
    console.log(row([`${hop.from} → ${hop.to}`, hop.where, ms(s.p50), ms(s.p90), ms(s.p99)], w));
  }
  const total = t.totalMs;
  console.log(
    row(['stop() → onLeader, traced', '', ms(total.p50), ms(total.p90), ms(total.p99)], w),
  );
  const places = Object.entries(t.byPlace)
    .map(([where, s]) => `${where} ${s.p50.toFixed(2)}`)
    .join(', ');
  console.log(
    `  summed per handoff, p50: ${places} ms\n` +
      "  the voter handled the old leader's going away (connection closed, redial) before the " +
      `Prepare arrived: ${t.voterBusyWithClose} of ${t.traced}\n` +
      `  the old leader's process exited ${t.stopperExitMs.p50.toFixed(1)} ms after its stop() ` +
      '(p50, as the bench saw it)',
  );
}

function mark(pass: boolean): string {
  return pass ? 'PASS' : 'MISS';
}

function row(cells: readonly string[], widths: readonly number[]): string {
  return `  ${cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ')}`.trimEnd();
}

function ms(value: number): string {
  return value.toFixed(3);
}

export function printReal(r: RealResult): void {
  const pass = (index: number): string => mark(r.checks[index]?.pass ?? false);
  console.log(
    '\nOn real time, sockets and processes: these figures depend on the machine and its load ' +
      `(1-minute load average ${r.loadAverage.before} before, ${r.loadAverage.after} after).`,
  );
  console.log(
    `\nReal sockets: three nodes in one process, each on its own WebSocketTransport over ` +
      `loopback (leaseMs ${ROUND_LEASE_MS}).\n` +
      "A lease round: the leader's first Prepare sent until a majority of Accepted arrived " +
      `(two quorum round trips; ${ROUNDS} rounds).\n` +
      `The round trip: an echo of a real Accept frame (${r.frameBytes} bytes) between two ws ` +
      "sockets with the transport's settings,\nbetween rounds: the first after an idle gap " +
      '(as a renewal starts: the reference), then back to back.\n' +
      `Target: a round ≤ ${ROUND_RATIO_TARGET} round trips (p50).`,
  );
  const w = [30, 8, 8, 8, 8, 8];
  console.log(row(['ms', 'min', 'p50', 'p90', 'p99', 'max'], w));
  for (const [name, s] of [
    ['round trip, after idle', r.rttMs],
    ['round trip, back to back', r.hotRttMs],
    ['lease round', r.leaseRoundMs],
  ] as const) {
    console.log(row([name, ms(s.min), ms(s.p50), ms(s.p90), ms(s.p99), ms(s.max)], w));
  }
  console.log(
    `  lease round / round trip after idle: p50 ${r.ratioP50.toFixed(2)}× ${pass(0)}, ` +
      `p99 ${r.ratioP99.toFixed(2)}×`,
  );
  const ih = r.inProcessHandoffMs;
  console.log(
    `  graceful handoff, same three nodes in one process (${IN_PROCESS_HANDOFFS} stops): ` +
      `p50 ${ih.p50.toFixed(2)} ms, p90 ${ih.p90.toFixed(2)} ms, max ${ih.max.toFixed(2)} ms`,
  );

  console.log(
    `\nReal processes: three node processes on loopback (leaseMs ${PROCESS_LEASE_MS}), ` +
      `${KILLS} leaders killed (SIGKILL) and ${STOPS} stopped (SIGTERM)\nat random moments ` +
      'of the renewal cycle, each restarted before the next trial.\n' +
      `Targets: failover p50 ≤ ${FAILOVER_P50_TARGET.toFixed(1)}, p99 ≤ ` +
      `${FAILOVER_P99_TARGET.toFixed(1)} × leaseMs; handoff p50 ≤ ${HANDOFF_P50_TARGET_MS} ms.`,
  );
  const f = r.failover;
  const h = r.handoffMs;
  const e = r.processRttMs;
  const v = [38, 6, 11, 6, 11, 6];
  console.log(row(['', 'min', 'p50', 'p90', 'p99', 'max'], v));
  console.log(
    row(
      [
        'failover after SIGKILL (× leaseMs)',
        f.min.toFixed(3),
        `${f.p50.toFixed(3)} ${pass(1)}`,
        f.p90.toFixed(3),
        `${f.p99.toFixed(3)} ${pass(2)}`,
        f.max.toFixed(3),
      ],
      v,
    ),
  );
  console.log(
    row(
      [
        'handoff on stop() (ms)',
        h.min.toFixed(1),
        `${h.p50.toFixed(1)} ${pass(3)}`,
        h.p90.toFixed(1),
        h.p99.toFixed(1),
        h.max.toFixed(1),
      ],
      v,
    ),
  );
  console.log(
    row(
      [
        'round trip to a process, after idle (ms)',
        e.min.toFixed(2),
        e.p50.toFixed(2),
        e.p90.toFixed(2),
        e.p99.toFixed(2),
        e.max.toFixed(2),
      ],
      v,
    ),
  );
  console.log(
    `  handoff p50 = ${r.handoffDelaysP50} one-way delays between processes ` +
      '(half that round trip; the protocol needs 5 plus the work on each hop)',
  );
  console.log(
    `  leadership checker over every process's lines (${r.actions} leader actions): ` +
      (r.violations.length === 0
        ? `no overlap, no action outside a lease ${pass(4)}`
        : `${pass(4)}\n    ${r.violations.join('\n    ')}`),
  );
  printStops(r.stops, r.checks.slice(5));
  printTrace(r.handoffTrace);
}
