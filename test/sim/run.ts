/**
 * The simulator's command line (`npm run sim -- …`).
 *
 *   --seeds 1-5000     seeds to run (ranges and lists: 1-100,250,300-310); default 1-100
 *   --seed 42          one seed
 *   --nodes 3|5        cluster size (else drawn from the seed)
 *   --profile NAME     fault profile, or a comma list, or `all` (default: default)
 *   --periods N        lease periods per run (default 200)
 *   --trace            print the trace of one seed (identical on every run)
 *   --json             print each seed's summary as a JSON line
 *   --variant M#E      substitute machines: module M's export E ({ createLease, createDecree,
 *                      createReplica }), or a broken variant by name (test/sim/mutants.ts, and
 *                      test/sim/lock-mutants.ts with --locks)
 *   --locks            the lock workload: each node runs the whole replica and takes locks
 *   --workers N        worker threads (default: one per core)
 *   --stop             end each run at its first violation
 *   --golden           recompute the pinned trace hashes of test/sim/golden.json and print
 *                      the file's new content (after an intended change of behaviour)
 *
 * Prints a line per failing seed with its replay command, per-profile totals, and last
 * `seeds=N violations=V`; exits 1 when V > 0.
 */
import process, { argv, stdout } from 'node:process';
import {
  DEFAULT_PERIODS,
  PROFILES,
  isProfileName,
  simulate,
  type FaultCounts,
  type ProfileName,
} from '../../lib/testing/sim/index.js';
import { goldenJob, readGolden } from './golden.js';
import { runSeeds, type SeedJob, type SeedSummary } from './pool.js';
import { loadVariant } from './worker.js';

interface Args {
  seeds: number[];
  nodes?: number;
  profiles: ProfileName[];
  periods: number;
  trace: boolean;
  json: boolean;
  variant?: string;
  locks: boolean;
  workers?: number;
  stop: boolean;
  golden: boolean;
}

export function parseSeeds(text: string): number[] {
  const seeds: number[] = [];
  for (const part of text.split(',')) {
    const [a = '', b] = part.split('-');
    const lo = Number(a);
    const hi = b === undefined ? lo : Number(b);
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || hi < lo) {
      throw new Error(`bad seed range: ${part}`);
    }
    for (let s = lo; s <= hi; s++) seeds.push(s);
  }
  return seeds;
}

function parseArgs(args: readonly string[]): Args {
  const out: Args = {
    seeds: parseSeeds('1-100'),
    profiles: ['default'],
    periods: DEFAULT_PERIODS,
    locks: false,
    trace: false,
    json: false,
    stop: false,
    golden: false,
  };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i] ?? '';
    const value = (): string => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--seeds':
        out.seeds = parseSeeds(value());
        break;
      case '--seed':
        out.seeds = parseSeeds(value());
        break;
      case '--nodes': {
        const n = Number(value());
        if (n !== 3 && n !== 5) throw new Error('--nodes must be 3 or 5');
        out.nodes = n;
        break;
      }
      case '--profile': {
        const v = value();
        const names = v === 'all' ? [...PROFILES] : v.split(',');
        out.profiles = names.map((name) => {
          if (!isProfileName(name)) {
            throw new Error(`unknown profile ${name}; known: ${PROFILES.join(', ')}`);
          }
          return name;
        });
        break;
      }
      case '--periods':
        out.periods = Number(value());
        if (!Number.isInteger(out.periods) || out.periods < 10) {
          throw new Error('--periods must be an integer ≥ 10');
        }
        break;
      case '--trace':
        out.trace = true;
        break;
      case '--json':
        out.json = true;
        break;
      case '--variant':
        out.variant = value();
        break;
      case '--workers':
        out.workers = Number(value());
        break;
      case '--stop':
        out.stop = true;
        break;
      case '--golden':
        out.golden = true;
        break;
      case '--locks':
        out.locks = true;
        break;
      default:
        throw new Error(`unknown argument ${flag}`);
    }
  }
  return out;
}

async function traceOne(args: Args): Promise<number> {
  const seed = args.seeds[0];
  const profile = args.profiles[0];
  if (seed === undefined || profile === undefined || args.seeds.length !== 1) {
    throw new Error('--trace runs exactly one seed (--seed N)');
  }
  const factories = args.variant === undefined ? {} : await loadVariant(args.variant);
  const result = simulate({
    seed,
    profile,
    periods: args.periods,
    trace: true,
    ...(args.locks ? { workload: 'locks' as const } : {}),
    ...(args.nodes === undefined ? {} : { nodes: args.nodes }),
    ...(args.variant === undefined ? {} : { variant: args.variant }),
    ...factories,
  });
  const trace = result.trace ?? [];
  for (let i = 0; i < trace.length; i += 1000) {
    stdout.write(`${trace.slice(i, i + 1000).join('\n')}\n`);
  }
  for (const v of result.violations) {
    stdout.write(`VIOLATION ${v.kind} t=${v.time}: ${v.description}\n`);
  }
  stdout.write(`hash=${result.traceHash}\n`);
  stdout.write(`seeds=1 violations=${result.violationCount}\n`);
  return result.violationCount;
}

async function main(): Promise<number> {
  const args = parseArgs(argv.slice(2));
  if (args.trace) return traceOne(args);
  if (args.golden) return printGolden();
  const jobs: SeedJob[] = [];
  for (const profile of args.profiles) {
    for (const seed of args.seeds) {
      jobs.push({
        seed,
        profile,
        periods: args.periods,
        ...(args.nodes === undefined ? {} : { nodes: args.nodes }),
        ...(args.variant === undefined ? {} : { variant: args.variant }),
        ...(args.stop ? { stopAtFirstViolation: true } : {}),
        ...(args.locks ? { locks: true } : {}),
      });
    }
  }
  const started = performance.now();
  const results = await runSeeds(jobs, args.workers === undefined ? {} : { workers: args.workers });
  let violations = 0;
  for (const s of results) {
    if (args.json) stdout.write(`${JSON.stringify(s)}\n`);
    const n = s.violationCount;
    violations += n;
    const first = s.violations[0];
    if (first !== undefined) {
      stdout.write(
        `FAIL seed=${s.seed} profile=${s.profile} ${first.kind} t=${first.time.toFixed(3)} ` +
          `(${n} violation${n === 1 ? '' : 's'}): ${first.description} | ${s.replay}\n`,
      );
    }
  }
  for (const profile of args.profiles)
    printTotals(
      profile,
      results.filter((s) => s.profile === profile),
    );
  const seconds = (performance.now() - started) / 1000;
  stdout.write(`time=${seconds.toFixed(1)}s\n`);
  stdout.write(`seeds=${results.length} violations=${violations}\n`);
  return violations;
}

async function printGolden(): Promise<number> {
  const golden = readGolden();
  const results = await runSeeds(golden.runs.map(goldenJob));
  const runs = golden.runs.map((run, i) => ({ ...run, hash: results[i]?.traceHash ?? null }));
  stdout.write(`${JSON.stringify({ ...golden, runs }, null, 2)}\n`);
  return 0;
}

function printTotals(profile: ProfileName, results: readonly SeedSummary[]): void {
  if (results.length === 0) return;
  const faults: Record<string, number> = {};
  let leaderChanges = 0;
  let elections = 0;
  let actions = 0;
  let decrees = 0;
  let messages = 0;
  let events = 0;
  let busy = 0;
  const locks = { grants: 0, releases: 0, expires: 0, unknown: 0 };
  for (const s of results) {
    const l = s.counts.locks;
    if (l !== null) {
      locks.grants += l.grants;
      locks.releases += l.releases;
      locks.expires += l.expires;
      if (l.unknown) locks.unknown += 1;
    }
    for (const [k, v] of Object.entries(s.counts.faults) as [keyof FaultCounts, number][]) {
      faults[k] = (faults[k] ?? 0) + v;
    }
    leaderChanges += s.counts.leaderChanges;
    elections += s.counts.elections;
    actions += s.counts.actions;
    decrees += s.counts.decreesChosen;
    messages += s.counts.messages;
    events += s.events;
    busy += s.counts.busyWakeups;
  }
  const heal = results
    .map((s) => s.healToLeader)
    .filter((x): x is number => x !== null)
    .sort((a, b) => a - b);
  const at = (q: number): string =>
    (heal[Math.min(heal.length - 1, Math.floor(q * heal.length))] ?? 0).toFixed(3);
  const faultText = Object.entries(faults)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  stdout.write(
    `profile=${profile} seeds=${results.length} ${faultText} leaderChanges=${leaderChanges} ` +
      `elections=${elections} actions=${actions} decreesChosen=${decrees} ` +
      `messages=${messages} events=${events} busyWakeups=${busy} ` +
      `healToLeaderL(p50/p99/max)=${at(0.5)}/${at(0.99)}/${at(1)}` +
      (results.some((r) => r.counts.locks !== null)
        ? ` grants=${locks.grants} releases=${locks.releases} expires=${locks.expires} ` +
          `linearizabilityUnknown=${locks.unknown}`
        : '') +
      '\n',
  );
}

// A reader that stopped early (`| head`) is not an error.
stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  process.exit(0);
});

main().then(
  (violations) => {
    // exitCode, not exit(): a long trace on a pipe must be written out completely.
    process.exitCode = violations > 0 ? 1 : 0;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 2;
  },
);
