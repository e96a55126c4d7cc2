import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort } from './websocket-harness.js';
import type { RunLine } from './leadership-check.js';
import { SECRET_ENV, sharedClock, type ProcessNodeConfig } from './process-node.js';

/**
 * A cluster of node processes (process-node.js) on loopback, for the multi-process tests and
 * the bench: it starts, kills, stops and restarts them, and gathers every line they write.
 * Waits are bounded polls; `close()` kills whatever still runs.
 *
 * Each process writes its lines to a file, which this side reads every few milliseconds. A
 * write to a file is synchronous and survives the process being killed right after, like a
 * write to a pipe; unlike one, it wakes nobody up: a pipe would wake this process at every line,
 * and on a small machine the woken reader can take the CPU from the node that wrote, delaying
 * the protocol being measured.
 */

const RUNNER = fileURLToPath(new URL('./process-node.js', import.meta.url));
const SECRET = 'process-cluster-secret-0123456789';
/** How often the processes' files are read. */
const POLL_MS = 2;

export interface ProcessClusterOptions {
  /** Node ids; default `n1`…`n<size>`. */
  readonly ids?: readonly string[];
  readonly size?: number;
  readonly leaseMs: number;
  readonly actionEveryMs?: number;
  /** What leaders check before each action (see process-node.ts); default `stillLeader()`. */
  readonly guard?: ProcessNodeConfig['guard'];
  /** Have every process write a line per protocol frame (see process-node.ts). */
  readonly traceFrames?: boolean;
  /** The successor each node names when it stops as leader (`preferredLeader`), by id. */
  readonly successors?: Readonly<Record<string, string>>;
  /**
   * The script every process runs instead of process-node.js (an absolute path). It gets the
   * same JSON config (with `extraConfig` merged in) and the secret the same way, and writes JSON
   * lines with at least `type`, `id` and `t` on the shared clock.
   */
  readonly runner?: string;
  /** More fields for every process's config, for a `runner` that reads them. */
  readonly extraConfig?: Readonly<Record<string, unknown>>;
}

interface Run {
  readonly run: number;
  readonly id: string;
  readonly child: ChildProcess;
  readonly stderr: string[];
  exited: boolean;
  /** The shared clock when this side saw the process exit. */
  exitedAt: number | null;
  readonly exit: Promise<void>;
  /** Its stdout's file, open for reading; how far it was read; a partial last line. */
  readonly fd: number;
  position: number;
  partial: string;
}

export class ProcessCluster {
  readonly ids: readonly string[];
  readonly leaseMs: number;
  readonly urls: Readonly<Record<string, string>>;
  /** Every line of every process, in arrival order. */
  readonly lines: RunLine[] = [];
  readonly #actionEveryMs: number | undefined;
  readonly #guard: ProcessNodeConfig['guard'];
  readonly #traceFrames: boolean;
  readonly #successors: Readonly<Record<string, string>>;
  readonly #runner: string;
  readonly #extraConfig: Readonly<Record<string, unknown>>;
  readonly #runs: Run[] = [];
  readonly #current = new Map<string, Run>();
  readonly #dir = mkdtempSync(join(tmpdir(), 'synod-processes-'));
  readonly #buffer = Buffer.alloc(64 * 1024);
  #poller: ReturnType<typeof setInterval> | null = null;

  private constructor(
    ids: readonly string[],
    urls: Record<string, string>,
    options: ProcessClusterOptions,
  ) {
    this.ids = ids;
    this.urls = urls;
    this.leaseMs = options.leaseMs;
    this.#actionEveryMs = options.actionEveryMs;
    this.#guard = options.guard;
    this.#traceFrames = options.traceFrames ?? false;
    this.#successors = options.successors ?? {};
    this.#runner = options.runner ?? RUNNER;
    this.#extraConfig = options.extraConfig ?? {};
  }

  /** Picks a free loopback port for each node; starts nothing. */
  static async create(options: ProcessClusterOptions): Promise<ProcessCluster> {
    const ids = options.ids ?? Array.from({ length: options.size ?? 3 }, (_, i) => `n${i + 1}`);
    const urls: Record<string, string> = {};
    for (const id of ids) urls[id] = `ws://127.0.0.1:${await freePort()}`;
    return new ProcessCluster(ids, urls, options);
  }

  /** The shared clock's reading now (what the processes write as `t`). */
  now(): number {
    return sharedClock.now();
  }

  /** Starts a process for `id` (a first start or a restart); returns its run number. */
  spawn(id: string): number {
    if (this.isRunning(id)) throw new Error(`${id} is already running`);
    const config: ProcessNodeConfig = {
      id,
      peers: this.urls,
      leaseMs: this.leaseMs,
      ...(this.#actionEveryMs === undefined ? {} : { actionEveryMs: this.#actionEveryMs }),
      ...(this.#guard === undefined ? {} : { guard: this.#guard }),
      ...(this.#traceFrames ? { traceFrames: true } : {}),
      ...(this.#successors[id] === undefined ? {} : { preferredLeader: this.#successors[id] }),
    };
    const runNumber = this.#runs.length;
    const path = join(this.#dir, `run-${runNumber}.jsonl`);
    const out = openSync(path, 'w');
    // No --enable-source-maps: the node formats the stack of every connection error it logs,
    // and mapping it costs milliseconds of CPU in the middle of the protocol being measured.
    const child = spawn(
      process.execPath,
      [this.#runner, JSON.stringify({ ...this.#extraConfig, ...config })],
      {
        stdio: ['ignore', out, 'pipe'],
        env: { ...process.env, [SECRET_ENV]: SECRET },
      },
    );
    // The child has its own descriptor for the file.
    closeSync(out);
    const exit = new Promise<void>((resolve) => {
      child.once('exit', () => {
        run.exitedAt = this.now();
        this.#read(run);
        run.exited = true;
        resolve();
      });
    });
    const run: Run = {
      run: runNumber,
      id,
      child,
      stderr: [],
      exited: false,
      exitedAt: null,
      exit,
      fd: openSync(path, 'r'),
      position: 0,
      partial: '',
    };
    this.#runs.push(run);
    this.#current.set(id, run);
    this.#poller ??= setInterval(() => {
      for (const r of this.#runs) if (!r.exited) this.#read(r);
    }, POLL_MS);
    if (child.stderr !== null) {
      createInterface({ input: child.stderr }).on('line', (text) => {
        if (run.stderr.length < 200) run.stderr.push(text);
      });
    }
    return runNumber;
  }

  /** Starts every node and waits until each has written `start`. */
  async startAll(timeoutMs = 20_000): Promise<void> {
    const runs = this.ids.map((id) => this.spawn(id));
    await this.waitFor(
      'every process to start',
      () => runs.every((run) => this.lines.some((l) => l.run === run && l.type === 'start')),
      timeoutMs,
    );
  }

  /** Takes the complete lines a process has written since the last read. */
  #read(run: Run): void {
    for (;;) {
      const n = readSync(run.fd, this.#buffer, 0, this.#buffer.length, run.position);
      if (n === 0) return;
      run.position += n;
      const lines = (run.partial + this.#buffer.toString('utf8', 0, n)).split('\n');
      run.partial = lines.pop() ?? '';
      for (const line of lines) {
        if (line === '') continue;
        try {
          this.lines.push({ ...(JSON.parse(line) as Omit<RunLine, 'run'>), run: run.run });
        } catch {
          run.stderr.push(`(not JSON on stdout) ${line}`);
        }
      }
    }
  }

  isRunning(id: string): boolean {
    const run = this.#current.get(id);
    return run !== undefined && !run.exited;
  }

  /** The run number of the process of `id` now. */
  runOf(id: string): number {
    const run = this.#current.get(id);
    if (run === undefined) throw new Error(`no process for ${id}`);
    return run.run;
  }

  /** When this side saw run number `run` exit (the shared clock), or null while it runs. */
  exitTime(run: number): number | null {
    return this.#runs[run]?.exitedAt ?? null;
  }

  /** Sends `signal` to the process of `id`; returns the shared clock's reading just before. */
  signal(id: string, signal: NodeJS.Signals): number {
    const run = this.#current.get(id);
    if (run === undefined || run.exited) throw new Error(`${id} is not running`);
    const at = this.now();
    run.child.kill(signal);
    return at;
  }

  /** Resolves once the process of `id` has exited (bounded). */
  async exited(id: string, timeoutMs = 10_000): Promise<void> {
    const run = this.#current.get(id);
    if (run === undefined) return;
    await this.waitFor(`${id} to exit`, () => run.exited, timeoutMs);
  }

  /** Lines from index `since` on that satisfy `match`. */
  linesSince(since: number, match: (line: RunLine) => boolean): RunLine[] {
    return this.lines.slice(since).filter(match);
  }

  /** Polls every few ms until `find` returns a value, failing after `timeoutMs`. */
  async waitFor<T>(
    what: string,
    find: () => T | undefined | null | false,
    timeoutMs: number,
  ): Promise<NonNullable<T>> {
    const end = performance.now() + timeoutMs;
    for (;;) {
      const found = find();
      if (found !== undefined && found !== null && found !== false) return found;
      if (performance.now() > end) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${this.dump()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /** Waits for an `elected` line written after index `since` that satisfies `match`. */
  async nextElected(
    since: number,
    timeoutMs: number,
    match: (line: RunLine) => boolean = () => true,
  ): Promise<RunLine> {
    return this.waitFor(
      'an election',
      () => this.lines.slice(since).find((l) => l.type === 'elected' && match(l)),
      timeoutMs,
    );
  }

  /** The last lines of every process, and their stderr: for failure messages. */
  dump(lastLines = 15): string {
    const parts: string[] = [];
    for (const run of this.#runs) {
      const mine = this.lines.filter((l) => l.run === run.run && l.type !== 'action');
      parts.push(
        `--- ${run.id} (run ${run.run}, pid ${run.child.pid ?? '?'}${run.exited ? ', exited' : ''})`,
        ...mine.slice(-lastLines).map((l) => JSON.stringify(l)),
        // The first lines of stderr say why a process died at start; the last ones, what went on.
        ...(run.stderr.length <= 10
          ? run.stderr
          : [...run.stderr.slice(0, 5), '…', ...run.stderr.slice(-5)]
        ).map((s) => `stderr: ${s}`),
      );
    }
    return parts.join('\n');
  }

  /** Kills every process still running (SIGKILL ends stopped ones too) and waits for them. */
  async close(): Promise<void> {
    for (const run of this.#runs) {
      if (run.exited) continue;
      run.child.kill('SIGKILL');
    }
    await Promise.all(
      this.#runs.map((run) =>
        Promise.race([run.exit, new Promise((resolve) => setTimeout(resolve, 5000))]),
      ),
    );
    if (this.#poller !== null) clearInterval(this.#poller);
    this.#poller = null;
    for (const run of this.#runs) closeSync(run.fd);
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
