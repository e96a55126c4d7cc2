import { loadavg } from 'node:os';
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
const STOPS = 12;

/** A lease round is two quorum round trips plus processing: at most this many raw round trips. */
export const ROUND_RATIO_TARGET = 5;
const FAILOVER_P50_TARGET = 1.0;
const FAILOVER_P99_TARGET = 1.2;
const HANDOFF_P50_TARGET_MS = 5;

export interface RealCheck {
  readonly name: string;
  readonly pass: boolean;
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
  /** WebSocket round trip between processes after an idle gap, ms. */
  readonly processRttMs: Summary;
  /** Handoff p50 in one-way delays between processes (half the p50 round trip). */
  readonly handoffDelaysP50: number;
  readonly violations: readonly string[];
  readonly actions: number;
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
  const loadAfter = loadavg()[0] ?? Number.NaN;
  const ratioP50 = rounds.roundMs.p50 / rounds.rttMs.p50;
  const ratioP99 = rounds.roundMs.p99 / rounds.rttMs.p99;
  const failover = scale(processes.failoverMs, PROCESS_LEASE_MS);
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
    processRttMs: roundSummary(processes.rttMs),
    handoffDelaysP50: round(processes.handoffMs.p50 / (processes.rttMs.p50 / 2), 1),
    violations: processes.violations.slice(0, 10),
    actions: processes.actions,
    checks,
  };
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
}
