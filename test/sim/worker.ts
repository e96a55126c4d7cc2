import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { parentPort } from 'node:worker_threads';
import { simulate, type SimulateOptions } from '../../lib/testing/sim/index.js';
import type { SeedJob, SeedSummary, WorkerReply, WorkerRequest } from './pool.js';

type Factories = Pick<SimulateOptions, 'createLease' | 'createDecree' | 'createReplica'>;

const loaded = new Map<string, Factories>();

/**
 * Loads a variant: a name from the broken lease variants of ./mutants.js (`timerFromMajority`)
 * or from the broken lock and log variants of ./lock-mutants.js (`expireIgnoresVersion`, for
 * the lock workload), or `path/to/module.js#exportName` (relative to the working directory)
 * exporting an object with `createLease`, `createDecree` and/or `createReplica`.
 */
export async function loadVariant(variant: string): Promise<Factories> {
  const known = loaded.get(variant);
  if (known !== undefined) return known;
  let factories: Factories | undefined;
  if (!variant.includes('#')) {
    const module = (await import('./mutants.js')) as { LEASE_MUTANTS: Record<string, unknown> };
    const locks = (await import('./lock-mutants.js')) as {
      LOCK_MUTANTS: Record<string, unknown>;
    };
    const createLease = module.LEASE_MUTANTS[variant] as Factories['createLease'] | undefined;
    const createReplica = locks.LOCK_MUTANTS[variant] as Factories['createReplica'] | undefined;
    if (createLease !== undefined) factories = { createLease };
    else if (createReplica !== undefined) factories = { createReplica };
    else {
      const names = [...Object.keys(module.LEASE_MUTANTS), ...Object.keys(locks.LOCK_MUTANTS)];
      throw new Error(`unknown variant ${variant}; known: ${names.join(', ')}`);
    }
  } else {
    const [path = '', name = 'default'] = variant.split('#');
    const module = (await import(pathToFileURL(resolve(path)).href)) as Record<string, unknown>;
    factories = module[name] as Factories | undefined;
    if (factories === undefined) throw new Error(`${path} exports no ${name}`);
  }
  loaded.set(variant, factories);
  return factories;
}

export async function runJob(job: SeedJob): Promise<SeedSummary> {
  const factories = job.variant === undefined ? {} : await loadVariant(job.variant);
  const started = performance.now();
  const result = simulate({
    seed: job.seed,
    profile: job.profile,
    ...(job.nodes === undefined ? {} : { nodes: job.nodes }),
    ...(job.periods === undefined ? {} : { periods: job.periods }),
    ...(job.variant === undefined ? {} : { variant: job.variant }),
    ...(job.stopAtFirstViolation === true ? { stopAtFirstViolation: true } : {}),
    ...(job.locks === true ? { workload: 'locks' as const } : {}),
    ...factories,
  });
  return {
    seed: result.seed,
    profile: result.params.profile,
    nodes: result.params.nodes,
    leaseMs: result.params.leaseMs,
    violations: result.violations,
    violationCount: result.violationCount,
    counts: result.counts,
    traceHash: result.traceHash,
    replay: result.replay,
    events: result.events,
    healToLeader: result.healToLeader,
    ms: performance.now() - started,
  };
}

const port = parentPort;
if (port !== null) {
  port.on('message', (request: WorkerRequest) => {
    if (request === null) {
      port.close();
      return;
    }
    runJob(request.job).then(
      (summary) => {
        const reply: WorkerReply = { index: request.index, summary };
        port.postMessage(reply);
      },
      (error: unknown) => {
        const reply: WorkerReply = {
          index: request.index,
          error: error instanceof Error ? (error.stack ?? error.message) : String(error),
        };
        port.postMessage(reply);
      },
    );
  });
}
