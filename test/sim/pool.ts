import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import {
  deriveParams,
  type ProfileName,
  type SimCounts,
  type Violation,
} from '../../lib/testing/sim/index.js';

/** One seed to run in a worker. */
export interface SeedJob {
  readonly seed: number;
  readonly profile: ProfileName;
  readonly nodes?: number;
  readonly periods?: number;
  /** `path/to/module.js#exportName`: an object with `createLease` and/or `createDecree`. */
  readonly variant?: string;
  readonly stopAtFirstViolation?: boolean;
  /** Run the lock workload (the whole replica) instead of the lease and decrees. */
  readonly locks?: boolean;
}

/** What a worker sends back: everything but the trace. */
export interface SeedSummary {
  readonly seed: number;
  readonly profile: ProfileName;
  readonly nodes: number;
  readonly leaseMs: number;
  readonly violations: Violation[];
  readonly violationCount: number;
  readonly counts: SimCounts;
  readonly traceHash: string;
  readonly replay: string;
  readonly events: number;
  /** Lease periods from the heal to the first leader (null: none). */
  readonly healToLeader: number | null;
  readonly ms: number;
}

export type WorkerRequest = { readonly index: number; readonly job: SeedJob } | null;
export type WorkerReply =
  | { readonly index: number; readonly summary: SeedSummary }
  | { readonly index: number; readonly error: string };

/**
 * Runs seeds on worker threads, one job at a time per worker. Results come back in job order
 * whatever the scheduling: a seed's run depends on the seed alone.
 */
export async function runSeeds(
  jobs: readonly SeedJob[],
  options: { workers?: number; onResult?: (s: SeedSummary) => void } = {},
): Promise<SeedSummary[]> {
  const results: (SeedSummary | undefined)[] = new Array<SeedSummary | undefined>(jobs.length);
  const count = Math.max(1, Math.min(options.workers ?? availableParallelism(), jobs.length));
  // Longest first, so no worker is left alone with a long seed at the end.
  const order = jobs.map((_, i) => i).sort((a, b) => cost(jobs[b]) - cost(jobs[a]) || a - b);
  let next = 0;
  const url = new URL('./worker.js', import.meta.url);
  await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<void>((resolve, reject) => {
          const worker = new Worker(url);
          const feed = (): void => {
            const index = order[next++] ?? -1;
            const job = jobs[index];
            const request: WorkerRequest = job === undefined ? null : { index, job };
            worker.postMessage(request);
          };
          worker.on('message', (reply: WorkerReply) => {
            if ('error' in reply) {
              void worker.terminate();
              reject(new Error(`seed job ${reply.index}: ${reply.error}`));
              return;
            }
            results[reply.index] = reply.summary;
            options.onResult?.(reply.summary);
            feed();
          });
          worker.on('error', reject);
          worker.on('exit', () => {
            resolve();
          });
          feed();
        }),
    ),
  );
  return results.map((r, i) => {
    if (r === undefined) throw new Error(`seed job ${i} produced no result`);
    return r;
  });
}

/** A rough cost: events grow with the lease length (timers in virtual ms) and the messages. */
function cost(job: SeedJob | undefined): number {
  if (job === undefined) return 0;
  const p = deriveParams(job);
  return p.periods * (p.nodes * p.nodes + p.leaseMs / 50);
}
