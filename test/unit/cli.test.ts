import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  parseArgs,
  parseListen,
  parsePeers,
  UsageError,
  type NodeCommand,
} from '../../lib/cli/args.js';
import { formatEvent } from '../../lib/cli/run.js';
import { loadSecret, SecretError } from '../../lib/cli/secret.js';

const PEERS = 'a=ws://127.0.0.1:7001,b=ws://127.0.0.1:7002,c=ws://127.0.0.1:7003';
const BASE = ['node', '--id', 'a', '--peers', PEERS, '--secret-file', '/etc/synod/secret'];

function usage(argv: readonly string[], pattern: RegExp): UsageError {
  try {
    parseArgs(argv);
  } catch (error) {
    assert.ok(error instanceof UsageError, `expected a UsageError, got ${String(error)}`);
    assert.match(error.message, pattern);
    return error;
  }
  assert.fail(`expected a UsageError matching ${String(pattern)}`);
}

function nodeCommand(argv: readonly string[]): NodeCommand {
  const command = parseArgs(argv);
  assert.ok(command.command === 'node', `expected synod node, got ${command.command}`);
  return command;
}

describe('the synod command line', () => {
  describe('synod node', () => {
    it('parses a full command', () => {
      const command = nodeCommand([
        ...BASE,
        '--lease-ms',
        '500',
        '--cluster',
        'shop',
        '--listen',
        '0.0.0.0:7101',
        '--log-level',
        'warn',
        '--json',
      ]);
      assert.deepEqual(command, {
        command: 'node',
        id: 'a',
        peers: { a: 'ws://127.0.0.1:7001', b: 'ws://127.0.0.1:7002', c: 'ws://127.0.0.1:7003' },
        secret: { kind: 'file', path: '/etc/synod/secret' },
        leaseMs: 500,
        cluster: 'shop',
        listen: { host: '0.0.0.0', port: 7101 },
        logLevel: 'warn',
        json: true,
      });
    });

    it('leaves the optional settings to their defaults', () => {
      const command = nodeCommand(BASE);
      assert.equal(command.leaseMs, null);
      assert.equal(command.cluster, null);
      assert.equal(command.listen, null);
      assert.equal(command.logLevel, 'info');
      assert.equal(command.json, false);
    });

    it('accepts options in any order and in --name=value form', () => {
      const command = nodeCommand([
        '--peers=' + PEERS,
        'node',
        '--secret-env=SYNOD_SECRET',
        '--id=b',
      ]);
      assert.equal(command.id, 'b');
      assert.deepEqual(command.secret, { kind: 'env', name: 'SYNOD_SECRET' });
    });

    it('refuses a secret on the command line, without repeating it', () => {
      for (const argv of [
        [...BASE, '--secret', 'hunter2-hunter2-hunter2'],
        [...BASE, '--secret=hunter2-hunter2-hunter2'],
        ['node', '--secret', 'hunter2-hunter2-hunter2', '--id', 'a'],
      ]) {
        const error = usage(argv, /^--secret is refused: .*visible to other users \(ps\)/);
        assert.doesNotMatch(error.message, /hunter2/);
      }
    });

    it('needs exactly one source for the secret', () => {
      usage(['node', '--id', 'a', '--peers', PEERS], /^a secret is required: --secret-file/);
      usage([...BASE, '--secret-env', 'X'], /^give one of --secret-file and --secret-env/);
      const error = usage(
        ['node', '--id', 'a', '--peers', PEERS, '--secret-env', 'hunter2 hunter2'],
        /^--secret-env must name an environment variable/,
      );
      assert.doesNotMatch(error.message, /hunter2/);
    });

    it('needs an id and peers', () => {
      usage(['node', '--peers', PEERS, '--secret-env', 'S'], /^--id is required/);
      usage(['node', '--id', 'a', '--secret-env', 'S'], /^--peers is required/);
    });

    it('checks the lease period and the log level', () => {
      usage([...BASE, '--lease-ms', '50'], /^--lease-ms must be a whole number from 100 to 60000/);
      usage([...BASE, '--lease-ms', '1.5'], /^--lease-ms must be/);
      usage([...BASE, '--lease-ms', '1e3'], /^--lease-ms must be/);
      usage([...BASE, '--log-level', 'verbose'], /^--log-level must be one of fatal, error/);
    });

    it('refuses unknown options, commands and arguments', () => {
      usage([...BASE, '--lease', '500'], /Unknown option '--lease'/);
      usage(['start', '--id', 'a'], /^unknown command "start"/);
      usage([...BASE, 'extra'], /^unexpected argument "extra"/);
      usage([], /^no command given/);
      usage(['node', '--id'], /argument missing/);
    });
  });

  describe('peers and listen', () => {
    it('splits ID=URL pairs at the first =, so URLs keep theirs', () => {
      assert.deepEqual(parsePeers(' a=ws://h:1/?x=y , b=wss://h:2 ,'), {
        a: 'ws://h:1/?x=y',
        b: 'wss://h:2',
      });
    });

    it('refuses malformed, duplicate and empty lists', () => {
      assert.throws(() => parsePeers('a=ws://h:1,b'), /--peers entries must be ID=URL; found "b"/);
      assert.throws(() => parsePeers('=ws://h:1'), /--peers entries must be ID=URL/);
      assert.throws(() => parsePeers('a='), /--peers entries must be ID=URL/);
      assert.throws(() => parsePeers('a=ws://h:1,a=ws://h:2'), /--peers lists "a" twice/);
      assert.throws(() => parsePeers(' , '), /--peers lists no node/);
    });

    it('reads PORT, HOST:PORT and [IPv6]:PORT', () => {
      assert.deepEqual(parseListen('7001'), { port: 7001 });
      assert.deepEqual(parseListen('10.0.0.1:7001'), { host: '10.0.0.1', port: 7001 });
      assert.deepEqual(parseListen('[::1]:7001'), { host: '::1', port: 7001 });
      for (const bad of ['', 'host', 'host:', ':7001', '70000', '::1:7001', 'h:7a']) {
        assert.throws(() => parseListen(bad), /--listen must be PORT or HOST:PORT/, bad);
      }
    });
  });

  describe('help and version', () => {
    it('answers --help, -h, help and --version', () => {
      assert.deepEqual(parseArgs(['--help']), { command: 'help' });
      assert.deepEqual(parseArgs(['node', '-h']), { command: 'help' });
      assert.deepEqual(parseArgs(['help']), { command: 'help' });
      assert.deepEqual(parseArgs(['--version']), { command: 'version' });
    });
  });

  describe('output', () => {
    const at = new Date('2030-01-02T03:04:05.678Z');

    it('prints leadership changes as readable lines', () => {
      const leader = { event: 'leader', node: 'a', term: 7 } as const;
      assert.equal(
        formatEvent({ ...leader, leaderId: 'a', isLeader: true }, false, at),
        '2030-01-02T03:04:05.678Z a: is the leader (term 7)',
      );
      assert.equal(
        formatEvent({ ...leader, leaderId: 'b', isLeader: false }, false, at),
        '2030-01-02T03:04:05.678Z a: follows b (term 7)',
      );
      assert.equal(
        formatEvent({ ...leader, leaderId: null, term: null, isLeader: false }, false, at),
        '2030-01-02T03:04:05.678Z a: knows no leader',
      );
    });

    it('prints the same as JSON lines', () => {
      const line = formatEvent(
        { event: 'leader', node: 'a', leaderId: 'b', term: 7, isLeader: false },
        true,
        at,
      );
      assert.deepEqual(JSON.parse(line), {
        time: '2030-01-02T03:04:05.678Z',
        event: 'leader',
        node: 'a',
        leaderId: 'b',
        term: 7,
        isLeader: false,
      });
    });
  });

  describe('the secret', () => {
    let dir = '';
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'synod-cli-'));
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('reads a file, dropping one trailing newline', async () => {
      const path = join(dir, 'secret');
      await writeFile(path, 'a-secret-of-24-bytes-xyz\n', { mode: 0o600 });
      assert.deepEqual(await loadSecret({ kind: 'file', path }, {}), {
        secret: 'a-secret-of-24-bytes-xyz',
        warnings: [],
      });
    });

    it('warns about a file that others can read', async () => {
      const path = join(dir, 'open');
      await writeFile(path, 'a-secret-of-24-bytes-xyz');
      await chmod(path, 0o644);
      const { warnings } = await loadSecret({ kind: 'file', path }, {});
      assert.equal(warnings.length, 1);
      assert.match(warnings[0] ?? '', /can be read by other users: chmod 600/);
    });

    it('reads an environment variable', async () => {
      const loaded = await loadSecret(
        { kind: 'env', name: 'S' },
        { S: 'a-secret-of-24-bytes-xyz' },
      );
      assert.equal(loaded.secret, 'a-secret-of-24-bytes-xyz');
    });

    it('fails on a missing, empty or short secret without showing it', async () => {
      const short = join(dir, 'short');
      await writeFile(short, 'tiny-secret\n', { mode: 0o600 });
      const empty = join(dir, 'empty');
      await writeFile(empty, '\n', { mode: 0o600 });
      const cases: [Parameters<typeof loadSecret>[0], RegExp][] = [
        [
          { kind: 'file', path: join(dir, 'none') },
          /cannot read the secret file .*none \(ENOENT\)/,
        ],
        [{ kind: 'file', path: empty }, /the secret file .*empty is empty/],
        [{ kind: 'file', path: short }, /^the secret must be at least 16 bytes long$/],
        [{ kind: 'env', name: 'S' }, /the environment variable S is not set or is empty/],
      ];
      for (const [source, pattern] of cases) {
        await assert.rejects(loadSecret(source, { T: 'tiny-secret' }), (error: unknown) => {
          assert.ok(error instanceof SecretError);
          assert.match(error.message, pattern);
          assert.doesNotMatch(error.message, /tiny-secret/);
          return true;
        });
      }
    });
  });
});
