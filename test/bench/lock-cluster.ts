import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { freePort } from '../integration/websocket-harness.js';
import { SECRET_ENV, sharedClock } from '../integration/process-node.js';
import type {
  CycleCountAnswer,
  CyclesAnswer,
  HeapAnswer,
  HoldAnswer,
  LatencyAnswer,
  LockNodeAnswer,
  LockNodeCommand,
  LockNodeConfig,
  LockNodeReport,
  StatusAnswer,
} from './lock-node.js';

/**
 * Three node processes (lock-node.js) on loopback for the lock bench, each driven over its IPC
 * channel: the bench sends a command and awaits the answer, which carries what the process
 * measured itself. (The processes of test/integration/process-cluster.ts only write lines and
 * take signals; these take commands.)
 */

const RUNNER = fileURLToPath(new URL('./lock-node.js', import.meta.url));
const SECRET = 'lock-bench-secret-0123456789';

export interface LockClusterOptions {
  readonly size?: number;
  readonly leaseMs: number;
  readonly maxTtlMs: number;
  /** Write a CPU profile of every node process (`node --cpu-prof`) into this directory. */
  readonly cpuProfileDir?: string | null;
  /** Have every process count the frames it sends by message type (see lock-node.ts). */
  readonly countFrames?: boolean;
}

interface Member {
  readonly id: string;
  readonly child: ChildProcess;
  readonly waiting: Map<
    number,
    { resolve: (answer: LockNodeAnswer) => void; reject: (error: Error) => void }
  >;
  echoPort: number | null;
  exited: boolean;
}

export class LockCluster {
  readonly ids: readonly string[];
  readonly options: LockClusterOptions;
  readonly #members = new Map<string, Member>();
  #nextId = 1;
  #errors: string[] = [];

  private constructor(ids: readonly string[], options: LockClusterOptions) {
    this.ids = ids;
    this.options = options;
  }

  /** Starts every node process and waits until each has started its node. */
  static async start(options: LockClusterOptions): Promise<LockCluster> {
    const ids = Array.from({ length: options.size ?? 3 }, (_, i) => `n${i + 1}`);
    const urls: Record<string, string> = {};
    for (const id of ids) urls[id] = `ws://127.0.0.1:${await freePort()}`;
    const cluster = new LockCluster(ids, options);
    const ready = ids.map((id) =>
      cluster.#spawn({
        id,
        peers: urls,
        leaseMs: options.leaseMs,
        maxTtlMs: options.maxTtlMs,
        ...(options.countFrames === true ? { countFrames: true } : {}),
      }),
    );
    try {
      await withTimeout(Promise.all(ready), 30_000, 'the node processes to start');
    } catch (error) {
      await cluster.close();
      throw error;
    }
    return cluster;
  }

  #spawn(config: LockNodeConfig): Promise<void> {
    const execArgv = ['--expose-gc'];
    const dir = this.options.cpuProfileDir ?? null;
    if (dir !== null) {
      mkdirSync(dir, { recursive: true });
      execArgv.push(
        '--cpu-prof',
        `--cpu-prof-dir=${dir}`,
        `--cpu-prof-name=${config.id}.cpuprofile`,
      );
    }
    const child = fork(RUNNER, [JSON.stringify(config)], {
      execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, [SECRET_ENV]: SECRET },
    });
    const member: Member = {
      id: config.id,
      child,
      waiting: new Map(),
      echoPort: null,
      exited: false,
    };
    this.#members.set(config.id, member);
    return new Promise<void>((resolve, reject) => {
      child.on('message', (raw) => {
        const report = raw as LockNodeReport;
        switch (report.type) {
          case 'ready':
            member.echoPort = report.echoPort;
            resolve();
            return;
          case 'answer':
            member.waiting.get(report.id)?.resolve(report.answer);
            member.waiting.delete(report.id);
            return;
          case 'failed':
            member.waiting.get(report.id)?.reject(new Error(`${config.id}: ${report.error}`));
            member.waiting.delete(report.id);
            return;
          case 'error':
            this.#errors.push(`${config.id}: ${report.error}`);
            return;
          default: {
            const never: never = report;
            throw new Error(`unknown report ${JSON.stringify(never)}`);
          }
        }
      });
      child.once('exit', (code, signal) => {
        member.exited = true;
        const error = new Error(`${config.id} exited (${String(code ?? signal)})`);
        for (const w of member.waiting.values()) w.reject(error);
        member.waiting.clear();
        reject(error);
      });
    });
  }

  /** Node errors the processes reported (a node that failed). */
  get errors(): readonly string[] {
    return this.#errors;
  }

  /** The shared clock's reading now (CLOCK_MONOTONIC, as every node process reads it). */
  now(): number {
    return sharedClock.now();
  }

  /** Sends a command to the process of `id` and resolves with its answer. */
  ask(id: string, command: LockNodeCommand, timeoutMs = 600_000): Promise<LockNodeAnswer> {
    const member = this.#members.get(id);
    if (member === undefined || member.exited) {
      return Promise.reject(new Error(`${id} is not running`));
    }
    const requestId = this.#nextId++;
    const answer = new Promise<LockNodeAnswer>((resolve, reject) => {
      member.waiting.set(requestId, { resolve, reject });
    });
    member.child.send({ ...command, id: requestId });
    return withTimeout(answer, timeoutMs, `${id} to answer ${command.cmd}`);
  }

  status(id: string): Promise<StatusAnswer> {
    return this.ask(id, { cmd: 'status' }) as Promise<StatusAnswer>;
  }

  latency(
    id: string,
    command: Omit<Extract<LockNodeCommand, { cmd: 'latency' }>, 'cmd'>,
  ): Promise<LatencyAnswer> {
    return this.ask(id, { cmd: 'latency', ...command }) as Promise<LatencyAnswer>;
  }

  cycles(
    id: string,
    command: Omit<Extract<LockNodeCommand, { cmd: 'cycles' }>, 'cmd'>,
  ): Promise<CyclesAnswer> {
    return this.ask(id, { cmd: 'cycles', ...command }) as Promise<CyclesAnswer>;
  }

  cycleCount(
    id: string,
    command: Omit<Extract<LockNodeCommand, { cmd: 'cycle-count' }>, 'cmd'>,
  ): Promise<CycleCountAnswer> {
    return this.ask(id, { cmd: 'cycle-count', ...command }) as Promise<CycleCountAnswer>;
  }

  hold(
    id: string,
    command: Omit<Extract<LockNodeCommand, { cmd: 'hold' }>, 'cmd'>,
  ): Promise<HoldAnswer> {
    return this.ask(id, { cmd: 'hold', ...command }) as Promise<HoldAnswer>;
  }

  heap(id: string): Promise<HeapAnswer> {
    return this.ask(id, { cmd: 'heap' }) as Promise<HeapAnswer>;
  }

  /** The port of the echo server in the process of `id`. */
  echoPort(id: string): number {
    const port = this.#members.get(id)?.echoPort ?? null;
    if (port === null) throw new Error(`${id} has no echo server`);
    return port;
  }

  /** Waits until every node names the same leader; resolves with its id. */
  async leader(timeoutMs = 30_000): Promise<string> {
    const end = performance.now() + timeoutMs;
    for (;;) {
      const views = await Promise.all(this.ids.map((id) => this.status(id)));
      const leaders = this.ids.filter((_, i) => views[i]?.isLeader === true);
      const leader = leaders[0];
      if (
        leaders.length === 1 &&
        leader !== undefined &&
        views.every((v) => v.leaderId === leader)
      ) {
        return leader;
      }
      if (performance.now() > end) {
        throw new Error(`no leader every node agrees on: ${JSON.stringify(views)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /**
   * Stops every node gracefully (the CPU profiles are written on a normal exit), then kills
   * whatever still runs.
   */
  async close(): Promise<void> {
    const members = [...this.#members.values()];
    await Promise.all(
      members.map(async (m) => {
        if (m.exited) return;
        const exited = new Promise<void>((resolve) => {
          m.child.once('exit', () => {
            resolve();
          });
        });
        try {
          await this.ask(m.id, { cmd: 'stop' }, 10_000);
        } catch {
          // Killed below.
        }
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
        if (m.child.exitCode === null && m.child.signalCode === null) m.child.kill('SIGKILL');
      }),
    );
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => {
    if (timer !== null) clearTimeout(timer);
  });
}
