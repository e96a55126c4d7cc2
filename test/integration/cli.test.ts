import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  killAll,
  SECRET,
  SECRET_ENV,
  sigtermLeader,
  startNodes,
  until,
  type CliNode,
  type Command,
} from './cli-harness.js';

/**
 * The `synod` command as real processes: three `synod node` processes on loopback elect a
 * leader, the leader is stopped with a signal and hands leadership on, and bad command lines
 * are refused with a message on stderr.
 *
 * The command is the file package.json's `bin` names, from the build `npm test` makes first
 * (`dist-test/`, compiled from the same sources as `dist/`, which `npm test` does not build).
 * `pack.test.ts` starts the same command from a packed and installed package.
 */

const ROOT = new URL('../../../', import.meta.url);
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
const COMMAND: Command = { file: process.execPath, args: [CLI] };

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
    await killAll(nodes);
    nodes = [];
  });

  it('elects one leader among three nodes and hands leadership on when the leader is stopped', async () => {
    nodes = await startNodes(COMMAND, ['a', 'b', 'c'], LEASE_MS);
    const { leader } = await sigtermLeader(nodes, ELECTION_BOUND_MS);

    // SIGINT stops the others as gracefully.
    const others = nodes.filter((n) => n !== leader);
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
