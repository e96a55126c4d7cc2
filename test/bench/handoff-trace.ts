import type { RunLine } from '../integration/leadership-check.js';
import { ProcessCluster } from '../integration/process-cluster.js';
import { restart, stableLeader } from './processes.js';
import { summarize, type Summary } from './stats.js';

/**
 * Where the time of a graceful handoff between processes goes.
 *
 * Three node processes on loopback, as in processes.ts, with `traceFrames` on: each writes a
 * line for every protocol frame it hands to its transport or receives from it, and for every
 * info and debug line it logs, with a reading of the clock every process on the host shares
 * (`process.hrtime`, CLOCK_MONOTONIC). So a frame's departure in one process and its arrival in
 * another compare directly, and each hop of a handoff can be timed:
 *
 *   old leader   stop() → signal aborted → work ended → Release sent
 *   successor    Release received → Prepare sent
 *   voter        Prepare received → Promise sent
 *   successor    Promise received → Accept sent
 *   voter        Accept received → Accepted sent
 *   successor    Accepted received → onLeader
 *
 * and between them the five one-way delays (Release, Prepare, Promise, Accept, Accepted), each
 * from the frame handed to the sender's transport until the receiving node has decoded it: the
 * socket write, the loopback, the receiving process getting a CPU and reading its socket, and
 * `ws` and the codec. The voter is the node whose Promise completed the successor's majority.
 *
 * A line costs its process a `JSON.stringify` and a synchronous write (some microseconds), so a
 * traced handoff is a little slower than an untraced one; both are reported.
 */

export interface HandoffTraceOptions {
  readonly leaseMs: number;
  readonly handoffs: number;
}

/** A line of a traced process: frames and log lines carry more fields than RunLine. */
interface TraceLine extends RunLine {
  readonly dir?: 'in' | 'out';
  readonly peer?: string;
  readonly msg?: string;
  readonly message?: string;
}

/** The moments of one handoff, in the order they happen. */
export const MILESTONES = [
  'stop() called',
  'signal aborted',
  'work ended',
  'Release sent',
  'Release received',
  'Prepare sent',
  'Prepare received',
  'Promise sent',
  'Promise received',
  'Accept sent',
  'Accept received',
  'Accepted sent',
  'Accepted received',
  'onLeader',
] as const;

export type Milestone = (typeof MILESTONES)[number];

/** Which process each milestone happens in. */
const WHERE: Readonly<Record<Milestone, 'old leader' | 'successor' | 'voter'>> = {
  'stop() called': 'old leader',
  'signal aborted': 'old leader',
  'work ended': 'old leader',
  'Release sent': 'old leader',
  'Release received': 'successor',
  'Prepare sent': 'successor',
  'Prepare received': 'voter',
  'Promise sent': 'voter',
  'Promise received': 'successor',
  'Accept sent': 'successor',
  'Accept received': 'voter',
  'Accepted sent': 'voter',
  'Accepted received': 'successor',
  onLeader: 'successor',
};

export interface Hop {
  readonly from: Milestone;
  readonly to: Milestone;
  /** `old leader`, `successor` or `voter` for work in one process; `wire` for a frame's trip. */
  readonly where: string;
  readonly ms: Summary;
}

export interface HandoffTraceResult {
  /** Handoffs traced whole (one round, every milestone found). */
  readonly traced: number;
  /**
   * Handoffs left out of the hops, and why: the successor needed more than one round, the node
   * named in the Release did not win (it stalled, and another campaigned after its wait), or a
   * line was missing.
   */
  readonly skipped: readonly string[];
  readonly hops: readonly Hop[];
  /** stop() to the successor's onLeader, every traced handoff. */
  readonly totalMs: Summary;
  /** Sums over the hops of each kind, per handoff. */
  readonly byPlace: Readonly<Record<string, Summary>>;
  /**
   * Handoffs in which the voter handled the old leader's going away (its connection closing, or
   * a redial failing) between the Release and the successor's Prepare: work that delays it.
   */
  readonly voterBusyWithClose: number;
  /** ms from the old leader's stop() until the bench saw its process exit. */
  readonly stopperExitMs: Summary;
  /** Every traced handoff: each milestone in ms after its stop(). */
  readonly timelines: readonly Readonly<Record<Milestone, number>>[];
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The milestones of one handoff from the lines written from its stop() on, or why they could
 * not be read: the successor needed more than one round, the node named in the Release did not
 * win (it stalled and another campaigned after its wait), or a line is missing.
 */
export function handoffTimeline(
  lines: readonly TraceLine[],
  stopperRun: number,
  successorRun: number,
): Record<Milestone, number> | string {
  /** The first line of `run` at or after `after` that matches. */
  const first = (
    run: number,
    after: number,
    match: (l: TraceLine) => boolean,
  ): TraceLine | undefined => lines.find((l) => l.run === run && l.t >= after && match(l));
  const frame =
    (dir: 'in' | 'out', msg: string, peer?: string) =>
    (l: TraceLine): boolean =>
      l.type === 'frame' &&
      l.dir === dir &&
      l.msg === msg &&
      (peer === undefined || l.peer === peer);
  const typed = (type: string) => (l: TraceLine) => l.type === type;

  const stop = first(stopperRun, 0, typed('stopping'));
  const elected = first(successorRun, 0, typed('elected'));
  if (stop === undefined || elected === undefined) return 'no stop or no election';
  const [leader, successor] = [stop.id, elected.id];
  const prepares = lines.filter(
    (l) => l.run === successorRun && frame('out', 'lease.prepare')(l) && l.t <= elected.t,
  );
  if (prepares.length !== new Set(prepares.map((l) => l.peer)).size) return 'more than one round';
  // The Release to the successor it names goes out first (lib/node/node.ts).
  const releaseSent = first(stopperRun, stop.t, frame('out', 'lease.release'));
  if (releaseSent?.peer !== successor) return 'another node than the one named won';

  const aborted = first(stopperRun, stop.t, typed('stepdown'));
  const ended = first(stopperRun, stop.t, typed('work-ended'));
  const releaseIn = first(successorRun, stop.t, frame('in', 'lease.release', leader));
  const acceptSent = first(successorRun, stop.t, frame('out', 'lease.accept'));
  // The voter: the node whose Promise completed the majority, the last one in before the Accept.
  const promiseIn = lines.findLast(
    (l) =>
      l.run === successorRun &&
      frame('in', 'lease.promise')(l) &&
      acceptSent !== undefined &&
      l.t <= acceptSent.t,
  );
  const voter = promiseIn?.peer;
  const voterRun = lines.find((l) => l.id === voter && l.t >= stop.t)?.run;
  if (releaseIn === undefined || voter === undefined || voterRun === undefined) {
    return 'a line is missing';
  }
  const prepareSent = first(successorRun, releaseIn.t, frame('out', 'lease.prepare', voter));
  const prepareIn = first(
    voterRun,
    prepareSent?.t ?? Infinity,
    frame('in', 'lease.prepare', successor),
  );
  const promiseSent = first(
    voterRun,
    prepareIn?.t ?? Infinity,
    frame('out', 'lease.promise', successor),
  );
  const acceptTo = first(successorRun, releaseIn.t, frame('out', 'lease.accept', voter));
  const acceptIn = first(voterRun, acceptTo?.t ?? Infinity, frame('in', 'lease.accept', successor));
  const acceptedSent = first(
    voterRun,
    acceptIn?.t ?? Infinity,
    frame('out', 'lease.accepted', successor),
  );
  const acceptedIn = first(
    successorRun,
    acceptedSent?.t ?? Infinity,
    frame('in', 'lease.accepted', voter),
  );
  const found = [
    stop,
    aborted,
    ended,
    releaseSent,
    releaseIn,
    prepareSent,
    prepareIn,
    promiseSent,
    promiseIn,
    acceptTo,
    acceptIn,
    acceptedSent,
    acceptedIn,
    elected,
  ];
  const timeline: Partial<Record<Milestone, number>> = {};
  for (const [i, name] of MILESTONES.entries()) {
    const t = found[i]?.t;
    if (t === undefined) return `no "${name}" line`;
    timeline[name] = t;
  }
  return timeline as Record<Milestone, number>;
}

/** Whether the voter handled the old leader's going away between the Release and the Prepare. */
function voterHandledClose(
  lines: readonly TraceLine[],
  timeline: Record<Milestone, number>,
  voterId: string,
): boolean {
  return lines.some(
    (l) =>
      l.id === voterId &&
      l.type === 'log' &&
      (l.message === 'connection to peer closed' || l.message === 'connection error') &&
      l.t >= timeline['stop() called'] &&
      l.t <= timeline['Prepare received'],
  );
}

export async function traceHandoffs(options: HandoffTraceOptions): Promise<HandoffTraceResult> {
  const { leaseMs } = options;
  const cluster = await ProcessCluster.create({ size: 3, leaseMs, traceFrames: true });
  const timelines: Record<Milestone, number>[] = [];
  const skipped: string[] = [];
  const exits: number[] = [];
  let busy = 0;
  try {
    await cluster.startAll();
    let since = 0;
    for (let trial = 0; trial < options.handoffs; trial++) {
      const leader = await stableLeader(cluster, since, cluster.lines.length);
      // A random moment of the renewal cycle (renewals come every leaseMs/3).
      await sleep((Math.random() * leaseMs) / 3);
      since = cluster.lines.length;
      cluster.signal(leader.id, 'SIGTERM');
      const next = await cluster.nextElected(since, 10 * leaseMs, (l) => l.id !== leader.id);
      await cluster.exited(leader.id);
      // Every process's lines up to the election have been read (the files are read every
      // few ms).
      await cluster.waitFor('the lines to be read', () => cluster.now() > next.t + 20, 1000);
      const lines = cluster.lines.slice(since) as TraceLine[];
      const timeline = handoffTimeline(lines, leader.run, next.run);
      if (typeof timeline === 'string') {
        skipped.push(timeline);
      } else {
        timelines.push(timeline);
        const voter = lines.find(
          (l) =>
            l.run === next.run &&
            l.type === 'frame' &&
            l.dir === 'in' &&
            l.msg === 'lease.promise' &&
            l.t === timeline['Promise received'],
        )?.peer;
        if (voter !== undefined && voterHandledClose(lines, timeline, voter)) busy += 1;
        const exitedAt = cluster.exitTime(leader.run);
        if (exitedAt !== null) exits.push(exitedAt - timeline['stop() called']);
      }
      process.stderr.write('t');
      await restart(cluster, leader.id);
    }
    process.stderr.write('\n');
  } finally {
    await cluster.close();
  }
  if (timelines.length === 0) throw new Error(`no handoff could be traced: ${skipped.join('; ')}`);
  const hops: Hop[] = [];
  const byPlace = new Map<string, number[]>();
  for (let i = 1; i < MILESTONES.length; i++) {
    const from = MILESTONES[i - 1];
    const to = MILESTONES[i];
    if (from === undefined || to === undefined) continue;
    const where = WHERE[from] === WHERE[to] ? WHERE[to] : 'wire';
    const values = timelines.map((t) => t[to] - t[from]);
    hops.push({ from, to, where, ms: summarize(values) });
    const sums = byPlace.get(where) ?? timelines.map(() => 0);
    byPlace.set(
      where,
      sums.map((sum, k) => sum + (values[k] ?? 0)),
    );
  }
  return {
    traced: timelines.length,
    skipped,
    hops,
    totalMs: summarize(timelines.map((t) => t.onLeader - t['stop() called'])),
    byPlace: Object.fromEntries([...byPlace].map(([where, sums]) => [where, summarize(sums)])),
    voterBusyWithClose: busy,
    stopperExitMs: summarize(exits.length > 0 ? exits : [Number.NaN]),
    timelines: timelines.map((t) => {
      const start = t['stop() called'];
      return Object.fromEntries(
        MILESTONES.map((name) => [name, Math.round((t[name] - start) * 1000) / 1000]),
      ) as Record<Milestone, number>;
    }),
  };
}
