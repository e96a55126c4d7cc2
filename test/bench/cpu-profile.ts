/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, or the lock bench's `--cpu-prof`): where the
 * sampled time went, by function (self and inclusive) and by file (self).
 *
 *   node dist-test/test/bench/cpu-profile.js <file.cpuprofile> [--top 25] [--callers <text>]
 *     [--from <ms> --to <ms>]
 *
 * `--from` and `--to` keep only the samples taken between two readings of CLOCK_MONOTONIC in ms
 * (the clock V8 stamps its samples with on Linux, and the one the bench's processes share:
 * the lock bench prints each throughput window's, in `.bench-out/locks.json`).
 * It also lists the longest stretches without an idle sample: the event loop never sat waiting
 * for input that long (one long task, or many back to back, or the process waiting for a CPU),
 * with what ran in them. `--callers` adds, for the functions whose name contains that text, the inclusive time through
 * them by the function that called them (who pays for an `Error`'s stack, a `writev`…).
 * Self time is the time a function was on top of the stack; inclusive time counts it once per
 * sample wherever it is on the stack. Files are shortened to the part after `dist-test/` or
 * `node_modules/`; `(native)` and Node's own modules are shown as V8 names them.
 */
import { readFileSync } from 'node:fs';
import process from 'node:process';
import { pathToFileURL } from 'node:url';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface ProfileLine {
  readonly name: string;
  /** ms. */
  readonly ms: number;
  /** Share of the sampled time that was not idle, 0 to 1. */
  readonly share: number;
}

export interface ProfileSummary {
  /** Sampled time, ms, and the part of it the process was busy (not `(idle)`). */
  readonly totalMs: number;
  readonly busyMs: number;
  readonly selfByFunction: readonly ProfileLine[];
  readonly inclusiveByFunction: readonly ProfileLine[];
  readonly selfByFile: readonly ProfileLine[];
}

function shortFile(url: string): string {
  if (url === '') return '(native)';
  for (const marker of ['dist-test/', 'node_modules/']) {
    const at = url.lastIndexOf(marker);
    if (at >= 0) return url.slice(at + marker.length);
  }
  return url.replace(/^file:\/\//, '');
}

function frameName(frame: CallFrame): string {
  const fn = frame.functionName === '' ? '(anonymous)' : frame.functionName;
  if (frame.url === '') return fn;
  return `${fn} ${shortFile(frame.url)}:${frame.lineNumber + 1}`;
}

function top(map: Map<string, number>, busyMs: number, n: number): ProfileLine[] {
  return [...map]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, us]) => ({ name, ms: us / 1000, share: us / 1000 / busyMs }));
}

/** The samples taken between `fromMs` and `toMs` (CLOCK_MONOTONIC, ms). */
export function cutProfile(profile: CpuProfile, fromMs: number, toMs: number): CpuProfile {
  const samples: number[] = [];
  const timeDeltas: number[] = [];
  let t = profile.startTime;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    t += delta;
    if (t >= fromMs * 1000 && t <= toMs * 1000) {
      samples.push(id);
      timeDeltas.push(delta);
    }
  });
  return { ...profile, samples, timeDeltas };
}

export interface BusyStretch {
  /** CLOCK_MONOTONIC ms at its start. */
  readonly at: number;
  readonly ms: number;
  /** The functions with the most self time inside it. */
  readonly top: readonly ProfileLine[];
}

/**
 * The longest stretches without an idle sample: the event loop never sat waiting for input that
 * long (one long task, many back to back, or the process waiting for a CPU).
 */
export function busyStretches(profile: CpuProfile, n = 5): BusyStretch[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  interface Stretch {
    at: number;
    us: number;
    from: number;
    to: number;
  }
  const stretches: Stretch[] = [];
  let t = profile.startTime;
  const open: { current: Stretch | null } = { current: null };
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    t += delta;
    const idle = byId.get(id)?.callFrame.functionName === '(idle)';
    if (idle) {
      if (open.current !== null) stretches.push(open.current);
      open.current = null;
      return;
    }
    const current = (open.current ??= { at: t - delta, us: 0, from: i, to: i });
    current.us += delta;
    current.to = i;
  });
  if (open.current !== null) stretches.push(open.current);
  return stretches
    .sort((a, b) => b.us - a.us)
    .slice(0, n)
    .map((s) => {
      const self = new Map<string, number>();
      for (let i = s.from; i <= s.to; i++) {
        const node = byId.get(profile.samples[i] ?? -1);
        if (node === undefined) continue;
        const key = frameName(node.callFrame);
        self.set(key, (self.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0));
      }
      return { at: s.at / 1000, ms: s.us / 1000, top: top(self, s.us / 1000, 5) };
    });
}

/** Inclusive time of frames whose name contains `text`, by their caller. */
export function callersOf(profile: CpuProfile, text: string, n = 25): ProfileLine[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const callers = new Map<string, number>();
  let busyUs = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    const node = byId.get(id);
    if (node === undefined || node.callFrame.functionName === '(idle)') return;
    busyUs += us;
    // The outermost matching frame: a recursive or nested match counts once.
    let match: number | undefined;
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)?.callFrame;
      if (frame !== undefined && frameName(frame).includes(text)) match = at;
    }
    if (match === undefined) return;
    const caller = parent.get(match);
    const callerFrame = caller === undefined ? undefined : byId.get(caller)?.callFrame;
    const self = byId.get(match)?.callFrame;
    if (self === undefined) return;
    const key = `${frameName(self)}  ←  ${callerFrame === undefined ? '(none)' : frameName(callerFrame)}`;
    callers.set(key, (callers.get(key) ?? 0) + us);
  });
  return top(callers, busyUs / 1000, n);
}

export function summarizeProfile(profile: CpuProfile, n = 25): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parent.set(child, node.id);
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const files = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    totalUs += us;
    const node = byId.get(id);
    if (node === undefined) return;
    if (node.callFrame.functionName === '(idle)') {
      idleUs += us;
      return;
    }
    const key = frameName(node.callFrame);
    self.set(key, (self.get(key) ?? 0) + us);
    const file = shortFile(node.callFrame.url);
    files.set(file, (files.get(file) ?? 0) + us);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)?.callFrame;
      if (frame === undefined) break;
      const k = frameName(frame);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + us);
    }
  });
  const busyMs = (totalUs - idleUs) / 1000;
  inclusive.delete('(root)');
  return {
    totalMs: totalUs / 1000,
    busyMs,
    selfByFunction: top(self, busyMs, n),
    inclusiveByFunction: top(inclusive, busyMs, n),
    selfByFile: top(files, busyMs, n),
  };
}

function print(title: string, lines: readonly ProfileLine[]): void {
  console.log(`\n${title}`);
  for (const l of lines) {
    console.log(
      `  ${l.ms.toFixed(0).padStart(7)} ms  ${(100 * l.share).toFixed(1).padStart(5)}%  ${l.name}`,
    );
  }
}

function main(): void {
  const file = process.argv[2];
  if (file === undefined) throw new Error('usage: cpu-profile.js <file.cpuprofile> [--top n]');
  const index = process.argv.indexOf('--top');
  const n = index < 0 ? 25 : Number(process.argv[index + 1]);
  let profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const from = process.argv.indexOf('--from');
  const to = process.argv.indexOf('--to');
  if (from >= 0 && to >= 0) {
    profile = cutProfile(profile, Number(process.argv[from + 1]), Number(process.argv[to + 1]));
  }
  const summary = summarizeProfile(profile, n);
  console.log(
    `${file}: ${summary.totalMs.toFixed(0)} ms sampled, ${summary.busyMs.toFixed(0)} ms busy ` +
      '(shares below are of the busy time)',
  );
  print('self time by file', summary.selfByFile);
  print('self time by function', summary.selfByFunction);
  print('inclusive time by function', summary.inclusiveByFunction);
  console.log('\nlongest stretches without an idle sample');
  for (const stretch of busyStretches(profile)) {
    console.log(`  ${stretch.ms.toFixed(0).padStart(7)} ms  at ${stretch.at.toFixed(1)}`);
    for (const l of stretch.top) {
      console.log(`             ${(100 * l.share).toFixed(1).padStart(5)}%  ${l.name}`);
    }
  }
  const c = process.argv.indexOf('--callers');
  const text = c < 0 ? undefined : process.argv[c + 1];
  if (text !== undefined) print(`callers of "${text}"`, callersOf(profile, text, n));
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) main();
