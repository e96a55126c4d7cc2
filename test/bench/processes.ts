import { checkLeadership, type RunLine } from '../integration/leadership-check.js';
import { ProcessCluster } from '../integration/process-cluster.js';
import { EchoClient } from './echo.js';
import { summarize, type Summary } from './stats.js';

/**
 * Failover and handoff between real processes: three node processes on loopback over the
 * built-in WebSocket transport (test/integration/process-node.ts), on the clock every process
 * on the host shares, so a time measured by the bench and one written by a node compare
 * directly.
 *
 * Each trial waits for a stable leader (every process past its restart silence, following it,
 * and a renewal since), then for a random fraction of the renewal period, and then either kills
 * the leader (SIGKILL) or asks it to stop (SIGTERM, a graceful `stop()`). Failover runs from the
 * kill to the successor's `onLeader`; handoff from the old leader's `stop()` call to the
 * successor's `onLeader`. The process is then started again for the next trial. At the end
 * every process's lines go through the leadership checker.
 *
 * Before each trial the bench also times one WebSocket echo to a process of its own after an
 * idle gap: the round trip between processes on this machine at that moment, in the state a
 * handoff starts in, to read the handoff in one-way delays.
 */

/** A frame about the size of the protocol's (170 to 360 bytes). */
const ECHO_FRAME = JSON.stringify({ echo: 'x'.repeat(230) });

export interface ProcessBenchOptions {
  readonly leaseMs: number;
  readonly kills: number;
  readonly stops: number;
}

export interface ProcessBenchResult {
  /** ms from SIGKILL to the successor's onLeader; null without kills. */
  readonly failoverMs: Summary | null;
  /** ms from the old leader's stop() to the successor's onLeader. */
  readonly handoffMs: Summary;
  /** ms: a WebSocket round trip to another process, after an idle gap. */
  readonly rttMs: Summary;
  /** What the leadership checker found (two leaders, actions outside a lease): nothing, we hope. */
  readonly violations: readonly string[];
  readonly actions: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The current leader, once stable: elected after line `since`, still running and not stepped
 * down, renewed at least once after line `renewedAfter`, and followed by every other process.
 */
export async function stableLeader(c: ProcessCluster, since: number, renewedAfter: number) {
  return c.waitFor(
    'a stable leader',
    () => {
      const elected = c.lines.slice(since).findLast((l) => l.type === 'elected');
      if (elected === undefined) return undefined;
      // Elected by a process that has been replaced since: not the leader now.
      if (c.runOf(elected.id) !== elected.run) return undefined;
      const mine = (l: RunLine): boolean => l.run === elected.run && l.term === elected.term;
      if (c.lines.some((l) => mine(l) && l.type === 'stepdown')) return undefined;
      if (!c.linesSince(renewedAfter, (l) => mine(l) && l.type === 'renewal').length) {
        return undefined;
      }
      const following = c.ids.every((id) => {
        if (id === elected.id) return true;
        const view = c.lines.findLast((l) => l.run === c.runOf(id) && l.type === 'leader');
        return view?.leaderId === elected.id;
      });
      return following ? elected : undefined;
    },
    30 * c.leaseMs,
  );
}

/** Starts the process of `id` again and waits out its restart silence (three voters again). */
export async function restart(cluster: ProcessCluster, id: string): Promise<void> {
  const run = cluster.spawn(id);
  const started = await cluster.waitFor(
    `${id} to start again`,
    () => cluster.lines.find((l) => l.run === run && l.type === 'start'),
    20_000,
  );
  await cluster.waitFor(
    'the restart silence to end',
    () => cluster.now() > started.t + cluster.leaseMs + 20,
    20_000,
  );
}

export async function measureProcesses(options: ProcessBenchOptions): Promise<ProcessBenchResult> {
  const { leaseMs } = options;
  const cluster = await ProcessCluster.create({ size: 3, leaseMs });
  const failovers: number[] = [];
  const handoffs: number[] = [];
  const rtts: number[] = [];
  const echo = await EchoClient.toProcess();
  try {
    await cluster.startAll();
    let since = 0;
    const trials = options.kills + options.stops;
    for (let trial = 0; trial < trials; trial++) {
      // Kills and stops alternate in proportion, so both see the same conditions.
      const graceful =
        Math.floor(((trial + 1) * options.stops) / trials) >
        Math.floor((trial * options.stops) / trials);
      const leader = await stableLeader(cluster, since, cluster.lines.length);
      await sleep(20);
      rtts.push(await echo.roundTrip(ECHO_FRAME));
      // A random moment of the renewal cycle (renewals come every leaseMs/3).
      await sleep((Math.random() * leaseMs) / 3);
      since = cluster.lines.length;
      const signalledAt = cluster.signal(leader.id, graceful ? 'SIGTERM' : 'SIGKILL');
      const next = await cluster.nextElected(since, 10 * leaseMs, (l) => l.id !== leader.id);
      if (graceful) {
        const stopping = cluster.lines.find((l) => l.run === leader.run && l.type === 'stopping');
        if (stopping === undefined) throw new Error(`${leader.id} did not report its stop`);
        handoffs.push(next.t - stopping.t);
      } else {
        failovers.push(next.t - signalledAt);
      }
      process.stderr.write(graceful ? 'h' : 'k');
      await cluster.exited(leader.id);
      await restart(cluster, leader.id);
    }
    process.stderr.write('\n');
    return {
      failoverMs: failovers.length > 0 ? summarize(failovers) : null,
      handoffMs: summarize(handoffs),
      rttMs: summarize(rtts),
      violations: checkLeadership(cluster.lines),
      actions: cluster.lines.filter((l) => l.type === 'action').length,
    };
  } finally {
    await cluster.close();
    await echo.close();
  }
}
