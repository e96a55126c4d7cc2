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
 * successor's `onLeader`. For a stop it also takes when `stop()` resolved (the old leader
 * writes it, with the successor its Release named), against the successor's `onLeader`, and
 * whether the named successor won at once: before `leaseMs/4` had passed, the earliest another
 * node may campaign and the latest its own first round can end. The process is then started
 * again for the next trial. At the end every process's lines go through the leadership
 * checker.
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
  /** ms from the old leader's stop() call until it resolved. */
  readonly stopMs: Summary;
  /**
   * ms from the successor's onLeader until the old leader's stop() resolved, over the stops
   * that heard of the election (negative when it resolved first: the onLeader line comes just
   * after the election notice goes out).
   */
  readonly stopAfterElectedMs: Summary;
  /** Stops that heard of no election and resolved at the end of their wait (leaseMs/4). */
  readonly stopsGaveUp: number;
  /** Stops won by the successor the Release named, within leaseMs/4 of the stop() call. */
  readonly namedWonAtOnce: number;
  /** The other stops: who was named, who won, and when. */
  readonly otherStops: readonly string[];
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
  const stops: number[] = [];
  const stopsAfterElected: number[] = [];
  let stopsGaveUp = 0;
  const otherStops: string[] = [];
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
        const handoff = next.t - stopping.t;
        handoffs.push(handoff);
        await cluster.exited(leader.id);
        const stopped = await cluster.waitFor(
          `${leader.id} to report that its stop() resolved`,
          () => cluster.lines.find((l) => l.run === leader.run && l.type === 'stopped'),
          1000,
        );
        stops.push(stopped.t - stopping.t);
        if (stopped.successorElected === true) stopsAfterElected.push(stopped.t - next.t);
        else stopsGaveUp += 1;
        if (stopped.successor !== next.id || handoff >= leaseMs / 4) {
          otherStops.push(
            `named ${String(stopped.successor)}, won by ${next.id} after ${handoff.toFixed(1)} ms`,
          );
        }
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
      stopMs: summarize(stops),
      stopAfterElectedMs: summarize(
        stopsAfterElected.length > 0 ? stopsAfterElected : [Number.NaN],
      ),
      stopsGaveUp,
      namedWonAtOnce: stops.length - otherStops.length,
      otherStops,
      rttMs: summarize(rtts),
      violations: checkLeadership(cluster.lines),
      actions: cluster.lines.filter((l) => l.type === 'action').length,
    };
  } finally {
    await cluster.close();
    await echo.close();
  }
}
