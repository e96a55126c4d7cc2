import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort } from './websocket-harness.js';

/**
 * The `synod` command as real processes: three `synod node` processes on loopback elect a
 * leader, the leader is stopped with a signal and hands leadership on, and bad command lines
 * are refused with a message on stderr.
 *
 * The command is the file package.json's `bin` names, from the build `npm test` makes first
 * (`dist-test/`, compiled from the same sources as `dist/`, which `npm test` does not build).
 * Every wait is on lines the processes print, bounded; none is a fixed sleep.
 */

const ROOT = new URL('../../../', import.meta.url);
const SECRET_ENV = 'SYNOD_CLI_TEST_SECRET';
const SECRET = 'cli-test-secret-0123456789abcdef';
const LEASE_MS = 300;
/** Starting three Node.js processes and electing a leader, on a small and busy machine. */
const ELECTION_BOUND_MS = 15_000;
/** A bad command line is refused before anything starts. */
const REFUSAL_BOUND_MS = 10_000;

/** The `synod` bin of package.json, in the test build. */
function cliPath(): string {
  const pkg = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')) as {
    bin?: Record<string, string>;
  };
  const bin = pkg.bin?.['synod'] ?? '';
  assert.ok(bin.startsWith('./dist/'), `package.json's bin is "${bin}"`);
  return fileURLToPath(new URL(bin.replace('./dist/', './dist-test/'), ROOT));
}

const CLI = cliPath();

/** One line `synod node --json` prints on stdout. */
interface CliLine {
  readonly event: string;
  readonly node: string;
  readonly leaderId?: string | null;
  readonly term?: number | null;
  readonly isLeader?: boolean;
  readonly signal?: string;
}

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Notified on every line and exit of every process, so waits re-check at once. */
const changes = new EventEmitter();
changes.setMaxListeners(100);

/** A running `synod node` process and everything it printed. */
class CliNode {
  readonly id: string;
  readonly child: ChildProcess;
  readonly lines: CliLine[] = [];
  readonly stderr: string[] = [];
  exitStatus: Exit | null = null;

  constructor(id: string, args: readonly string[]) {
    this.id = id;
    this.child = spawn(process.execPath, [CLI, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, [SECRET_ENV]: SECRET },
    });
    const { stdout, stderr } = this.child;
    assert.ok(stdout !== null && stderr !== null);
    createInterface({ input: stdout }).on('line', (text) => {
      this.lines.push(JSON.parse(text) as CliLine);
      changes.emit('change');
    });
    createInterface({ input: stderr }).on('line', (text) => {
      this.stderr.push(text);
    });
    this.child.once('exit', (code, signal) => {
      this.exitStatus = { code, signal };
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
function until<T>(
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
function soleLeader(nodes: readonly CliNode[]): CliNode | undefined {
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

/** Runs `synod` with `args` to its exit (bounded); its status and what it printed. */
async function runToExit(
  args: readonly string[],
  env: Record<string, string | undefined> = { [SECRET_ENV]: SECRET },
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), REFUSAL_BOUND_MS);
  const code = await new Promise<number | null>((resolve) => {
    child.once('close', (status) => {
      resolve(status);
    });
  });
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** A refusal: the status, nothing on stdout, the message on stderr, and no stack trace. */
function assertRefused(
  result: { code: number | null; stdout: string; stderr: string },
  code: number,
  message: RegExp,
): void {
  assert.equal(result.code, code, `exit status; stderr:\n${result.stderr}`);
  assert.equal(result.stdout, '');
  assert.match(result.stderr, message);
  assert.match(result.stderr, /^synod: /);
  assert.doesNotMatch(result.stderr, /^\s+at /m, 'no stack trace');
}

describe('the synod command', function () {
  this.timeout(30_000);
  let nodes: CliNode[] = [];

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') {
      console.error(nodes.map((n) => n.describe()).join('\n'));
    }
    const running = nodes.filter((n) => n.exitStatus === null);
    for (const n of running) n.child.kill('SIGKILL');
    await until(
      'every process to exit',
      () => running.every((n) => n.exitStatus !== null) || undefined,
      5000,
      running,
    );
    nodes = [];
  });

  async function peersArgument(ids: readonly string[]): Promise<string> {
    const entries: string[] = [];
    for (const id of ids) entries.push(`${id}=ws://127.0.0.1:${String(await freePort())}`);
    return entries.join(',');
  }

  it('elects one leader among three nodes and hands leadership on when the leader is stopped', async () => {
    const peers = await peersArgument(['a', 'b', 'c']);
    nodes = ['a', 'b', 'c'].map(
      (id) =>
        new CliNode(id, [
          'node',
          '--id',
          id,
          '--peers',
          peers,
          '--secret-env',
          SECRET_ENV,
          '--lease-ms',
          String(LEASE_MS),
          '--log-level',
          'info',
          '--json',
        ]),
    );
    const leader = await until(
      'one leader, followed by the others',
      () => soleLeader(nodes),
      ELECTION_BOUND_MS,
      nodes,
    );
    const term = leader.view?.term ?? Number.NaN;
    for (const n of nodes) {
      assert.ok(
        n.lines.some((l) => l.event === 'started'),
        `${n.id} reported its start`,
      );
    }

    leader.child.kill('SIGTERM');
    const others = nodes.filter((n) => n !== leader);
    const successor = await until(
      'another node to lead',
      () => (leader.exitStatus === null ? undefined : soleLeader(others)),
      ELECTION_BOUND_MS,
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

    // SIGINT stops the others as gracefully.
    for (const n of others) n.child.kill('SIGINT');
    await until(
      'the others to exit',
      () => others.every((n) => n.exitStatus !== null) || undefined,
      ELECTION_BOUND_MS,
      nodes,
    );
    for (const n of others) {
      assert.deepEqual(n.exitStatus, { code: 0, signal: null }, `${n.id} exit`);
      assert.equal(n.lines.findLast((l) => l.event === 'stopping')?.signal, 'SIGINT');
    }
  });

  describe('refuses a bad command line on stderr, with a non-zero status', () => {
    const peers = 'a=ws://127.0.0.1:7001,b=ws://127.0.0.1:7002,c=ws://127.0.0.1:7003';
    const secret = ['--secret-env', SECRET_ENV];

    it('an unknown option', async () => {
      const result = await runToExit(['node', '--id', 'a', '--peers', peers, ...secret, '--bogus']);
      assertRefused(result, 2, /Unknown option '--bogus'/);
    });

    it('no --peers', async () => {
      assertRefused(await runToExit(['node', '--id', 'a', ...secret]), 2, /--peers is required/);
    });

    it('an own id missing from --peers', async () => {
      const result = await runToExit(['node', '--id', 'd', '--peers', peers, ...secret]);
      assertRefused(result, 2, /--peers has no URL for this node's own id "d"/);
    });

    it('a secret variable that is not set, without starting', async () => {
      const result = await runToExit(['node', '--id', 'a', '--peers', peers, ...secret], {
        [SECRET_ENV]: undefined,
      });
      assertRefused(result, 1, new RegExp(`the environment variable ${SECRET_ENV} is not set`));
    });

    it('a port that is taken', async () => {
      const server = createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const address = server.address();
        assert.ok(address !== null && typeof address === 'object');
        const taken = `a=ws://127.0.0.1:${String(address.port)},b=ws://127.0.0.1:7002,c=ws://127.0.0.1:7003`;
        const result = await runToExit(['node', '--id', 'a', '--peers', taken, ...secret]);
        assertRefused(result, 1, /could not start: cannot listen on .*EADDRINUSE/);
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    });
  });
});
