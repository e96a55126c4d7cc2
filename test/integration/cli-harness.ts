import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import { freePort } from './websocket-harness.js';

/**
 * The `synod` command as real processes, for the tests that start it: `cli.test.ts` (the
 * command from the test build) and `pack.test.ts` (the command a packed and installed package
 * puts in `node_modules/.bin`). Every wait is on lines the processes print, bounded; none is a
 * fixed sleep.
 */

export const SECRET_ENV = 'SYNOD_CLI_TEST_SECRET';
export const SECRET = 'cli-test-secret-0123456789abcdef';

/**
 * How a process is started: `file` is what a supervisor execs, `args` go before the command's
 * own arguments (`{ file: process.execPath, args: [script] }`, or `{ file: bin, args: [] }`).
 */
export interface Command {
  readonly file: string;
  readonly args: readonly string[];
}

/** One line `synod node --json` prints on stdout. */
export interface CliLine {
  readonly event: string;
  readonly node: string;
  readonly leaderId?: string | null;
  readonly term?: number | null;
  readonly isLeader?: boolean;
  readonly signal?: string;
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Notified on every line and exit of every process, so waits re-check at once. */
const changes = new EventEmitter();
changes.setMaxListeners(100);

/** A running `synod node` process and everything it printed. */
export class CliNode {
  readonly id: string;
  readonly child: ChildProcess;
  readonly lines: CliLine[] = [];
  /** `performance.now()` when each of `lines` arrived. */
  readonly arrivals: number[] = [];
  readonly stderr: string[] = [];
  exitStatus: Exit | null = null;

  constructor(id: string, command: Command, args: readonly string[]) {
    this.id = id;
    this.child = spawn(command.file, [...command.args, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, [SECRET_ENV]: SECRET },
    });
    const { stdout, stderr } = this.child;
    assert.ok(stdout !== null && stderr !== null);
    createInterface({ input: stdout }).on('line', (text) => {
      this.lines.push(JSON.parse(text) as CliLine);
      this.arrivals.push(performance.now());
      changes.emit('change');
    });
    createInterface({ input: stderr }).on('line', (text) => {
      this.stderr.push(text);
    });
    this.child.once('exit', (code, signal) => {
      this.exitStatus = { code, signal };
      changes.emit('change');
    });
    // A command that cannot be started (ENOENT, EACCES) fails at once rather than never exits.
    this.child.once('error', (error) => {
      this.stderr.push(`spawn failed: ${error.message}`);
      this.exitStatus ??= { code: null, signal: null };
      changes.emit('change');
    });
  }

  /** Its latest view of the leader, if it printed one. */
  get view(): CliLine | undefined {
    return this.lines.findLast((l) => l.event === 'leader');
  }

  /** The JSON log lines on its stderr (pino's), with their message as `msg`. */
  logs(): Record<string, unknown>[] {
    return this.stderr.flatMap((text) => {
      try {
        return [JSON.parse(text) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  }

  describe(): string {
    return [
      `--- ${this.id} (pid ${String(this.child.pid)}, exit ${JSON.stringify(this.exitStatus)})`,
      ...this.lines.map((l) => JSON.stringify(l)),
      ...this.stderr.slice(-20).map((s) => `stderr: ${s}`),
    ].join('\n');
  }
}

/**
 * Resolves with `find`'s first defined result, checked now and on every line and exit; fails
 * after `timeoutMs` with what every process printed.
 */
export function until<T>(
  what: string,
  find: () => T | undefined,
  timeoutMs: number,
  nodes: readonly CliNode[],
): Promise<T> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      const found = find();
      if (found === undefined) return;
      clearTimeout(timer);
      changes.off('change', check);
      resolve(found);
    };
    const timer = setTimeout(() => {
      changes.off('change', check);
      reject(
        new Error(
          `timed out after ${timeoutMs} ms waiting for ${what}\n` +
            nodes.map((n) => n.describe()).join('\n'),
        ),
      );
    }, timeoutMs);
    changes.on('change', check);
    check();
  });
}

/** The one node that leads, once every other running node follows it in its term. */
export function soleLeader(nodes: readonly CliNode[]): CliNode | undefined {
  const running = nodes.filter((n) => n.exitStatus === null);
  const leaders = running.filter((n) => n.view?.isLeader === true);
  const [leader] = leaders;
  if (leaders.length !== 1 || leader === undefined) return undefined;
  const term = leader.view?.term;
  const followed = running.every(
    (n) => n === leader || (n.view?.leaderId === leader.id && n.view.term === term),
  );
  return followed ? leader : undefined;
}

/** `--peers` for `ids`, each on a free loopback port. */
export async function peersArgument(ids: readonly string[]): Promise<string> {
  const entries: string[] = [];
  for (const id of ids) entries.push(`${id}=ws://127.0.0.1:${String(await freePort())}`);
  return entries.join(',');
}

/** Starts one `synod node --json` process per id, with the test secret, on loopback. */
export async function startNodes(
  command: Command,
  ids: readonly string[],
  leaseMs: number,
): Promise<CliNode[]> {
  const peers = await peersArgument(ids);
  return ids.map(
    (id) =>
      new CliNode(id, command, [
        'node',
        '--id',
        id,
        '--peers',
        peers,
        '--secret-env',
        SECRET_ENV,
        '--lease-ms',
        String(leaseMs),
        '--log-level',
        'info',
        '--json',
      ]),
  );
}

/** Kills (SIGKILL) whatever still runs and waits until it exited. */
export async function killAll(nodes: readonly CliNode[]): Promise<void> {
  const running = nodes.filter((n) => n.exitStatus === null);
  for (const n of running) n.child.kill('SIGKILL');
  await until(
    'every process to exit',
    () => running.every((n) => n.exitStatus !== null) || undefined,
    5000,
    running,
  );
}

export interface Handoff {
  readonly leader: CliNode;
  readonly successor: CliNode;
  /** From the signal to the line in which the successor reports that it leads. */
  readonly handoffMs: number;
}

/**
 * What a supervisor does to stop the leader: waits for one leader among `nodes`, sends SIGTERM
 * to the process it started, and checks that the leader stopped gracefully, exit status 0,
 * after releasing its lease to another node, which leads in a later term.
 */
export async function sigtermLeader(nodes: readonly CliNode[], boundMs: number): Promise<Handoff> {
  const leader = await until(
    'one leader, followed by the others',
    () => soleLeader(nodes),
    boundMs,
    nodes,
  );
  const term = leader.view?.term ?? Number.NaN;
  for (const n of nodes) {
    assert.ok(
      n.lines.some((l) => l.event === 'started'),
      `${n.id} reported its start`,
    );
  }

  const others = nodes.filter((n) => n !== leader);
  const sentAt = performance.now();
  const linesBefore = others.map((n) => n.lines.length);
  leader.child.kill('SIGTERM');
  const successor = await until(
    'another node to lead',
    () => (leader.exitStatus === null ? undefined : soleLeader(others)),
    boundMs,
    nodes,
  );
  assert.notEqual(successor.id, leader.id);
  assert.ok((successor.view?.term ?? 0) > term, 'the successor leads in a later term');
  assert.deepEqual(leader.exitStatus, { code: 0, signal: null });
  // It stopped gracefully: it said so, and released the lease to a successor rather than
  // letting it lapse (`successorElected` is null when no Release named one).
  const stopping = leader.lines.findIndex((l) => l.event === 'stopping');
  assert.equal(leader.lines[stopping]?.signal, 'SIGTERM');
  assert.equal(leader.lines.at(-1)?.event, 'stopped');
  assert.ok(
    leader.lines.slice(0, stopping).findLast((l) => l.event === 'leader')?.isLeader,
    'it led when it got the signal',
  );
  const stopped = leader.logs().find((l) => l['msg'] === 'stopped');
  assert.equal(stopped?.['released'], true, 'the stopped leader released its lease');
  assert.equal(typeof stopped['successorElected'], 'boolean', 'naming a successor');

  const from = linesBefore[others.indexOf(successor)] ?? 0;
  const elected = successor.lines.findIndex(
    (l, i) => i >= from && l.event === 'leader' && l.isLeader === true,
  );
  const handoffMs = (successor.arrivals[elected] ?? Number.NaN) - sentAt;
  return { leader, successor, handoffMs };
}
