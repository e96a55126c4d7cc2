import { parseArgs as parseNodeArgs } from 'node:util';
import { LOG_LEVELS, type LogLevel } from '../logger.js';
import { LEASE_MS_MAX, LEASE_MS_MIN } from '../options.js';

/** Where the shared secret comes from. Never the command line: `ps` shows it to every user. */
export type SecretSource =
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'env'; readonly name: string };

/** `synod node …`: run one node until SIGINT or SIGTERM. */
export interface NodeCommand {
  readonly command: 'node';
  readonly id: string;
  /** Every node's URL by id, this node's included. */
  readonly peers: Readonly<Record<string, string>>;
  readonly secret: SecretSource;
  readonly leaseMs: number | null;
  readonly cluster: string | null;
  /** Where to listen, if not on the port of this node's own URL. */
  readonly listen: { readonly host?: string; readonly port: number } | null;
  readonly logLevel: LogLevel;
  /** Print events as JSON lines instead of readable lines. */
  readonly json: boolean;
}

export type Command = NodeCommand | { readonly command: 'help' } | { readonly command: 'version' };

/** A command line the `synod` command cannot run; its message says why. Exit status 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const DEFAULT_LOG_LEVEL: LogLevel = 'info';

export const USAGE = `Usage:
  synod node --id ID --peers ID=URL,ID=URL,… (--secret-file PATH | --secret-env NAME)
             [--lease-ms MS] [--cluster NAME] [--listen [HOST:]PORT]
             [--log-level LEVEL] [--json]
  synod --help | --version

Runs one node of a synod cluster until SIGINT or SIGTERM, then stops gracefully (a leader
hands leadership on). Leadership changes go to stdout, as readable lines or, with --json, as
JSON lines; logs go to stderr. A node that cannot start says why on stderr and exits with
status 2 (the command line) or 1 (the secret, the configuration, the port).

  --id ID             this node's id (1 to 64 characters)
  --peers LIST        every node's ws:// or wss:// URL, this node's included:
                      a=ws://10.0.0.1:7001,b=ws://10.0.0.2:7001,c=ws://10.0.0.3:7001
  --secret-file PATH  a file holding the cluster's shared secret (at least 16 bytes;
                      one trailing newline is ignored); keep it readable by its owner only
  --secret-env NAME   an environment variable holding the shared secret
  --lease-ms MS       the lease period, ${LEASE_MS_MIN} to ${LEASE_MS_MAX} (default 1000); the same on every node
  --cluster NAME      the cluster id (default synod); the same on every node
  --listen [HOST:]PORT  where to accept connections (default: the port of this node's URL)
  --log-level LEVEL   ${LOG_LEVELS.join(', ')} (default ${DEFAULT_LOG_LEVEL})
  --json              print events as JSON lines

The secret is never accepted on the command line: other users can read it there (ps).
`;

const OPTIONS = {
  id: { type: 'string' },
  peers: { type: 'string' },
  'secret-file': { type: 'string' },
  'secret-env': { type: 'string' },
  'lease-ms': { type: 'string' },
  cluster: { type: 'string' },
  listen: { type: 'string' },
  'log-level': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const;

/** Parses the arguments after `synod` (without `node` and the script path). */
export function parseArgs(argv: readonly string[]): Command {
  refuseSecretArgument(argv);
  const { values, positionals } = parseStrictly(argv);
  if (values.help === true || positionals[0] === 'help') return { command: 'help' };
  if (values.version === true) return { command: 'version' };
  const [command, ...rest] = positionals;
  if (command === undefined) throw new UsageError('no command given: try synod node --help');
  if (command !== 'node') throw new UsageError(`unknown command "${command}"`);
  if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0] ?? ''}"`);

  const id = values.id;
  if (id === undefined || id === '') throw new UsageError('--id is required');
  if (values.peers === undefined) throw new UsageError('--peers is required');
  const peers = parsePeers(values.peers);

  const file = values['secret-file'];
  const env = values['secret-env'];
  if (file !== undefined && env !== undefined) {
    throw new UsageError('give one of --secret-file and --secret-env, not both');
  }
  let secret: SecretSource;
  if (file !== undefined && file !== '') secret = { kind: 'file', path: file };
  else if (env !== undefined && env !== '') {
    // Not repeated back: whoever typed a secret here by mistake should not see it echoed.
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(env)) {
      throw new UsageError('--secret-env must name an environment variable (letters, digits, _)');
    }
    secret = { kind: 'env', name: env };
  } else throw new UsageError('a secret is required: --secret-file PATH or --secret-env NAME');

  const listen = values.listen === undefined ? null : parseListen(values.listen);
  // Without --listen the node listens on the port of its own URL, so it must have one.
  if (!Object.hasOwn(peers, id) && listen === null) {
    throw new UsageError(
      `--peers has no URL for this node's own id "${id}": list every node, this one ` +
        'included, or give --listen',
    );
  }

  return {
    command: 'node',
    id,
    peers,
    secret,
    leaseMs: values['lease-ms'] === undefined ? null : parseLeaseMs(values['lease-ms']),
    cluster: values.cluster ?? null,
    listen,
    logLevel: parseLogLevel(values['log-level'] ?? DEFAULT_LOG_LEVEL),
    json: values.json ?? false,
  };
}

function parseStrictly(argv: readonly string[]) {
  try {
    return parseNodeArgs({
      args: [...argv],
      options: OPTIONS,
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    // node:util's messages name the option ("Unknown option '--lease'"): good enough to show.
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

/**
 * Refuses `--secret` (and `--secret=…`) before anything else reads the arguments, with a
 * message that says why and never repeats the value.
 */
function refuseSecretArgument(argv: readonly string[]): void {
  for (const arg of argv) {
    if (arg === '--') return;
    if (arg === '--secret' || arg.startsWith('--secret=')) {
      throw new UsageError(
        '--secret is refused: a secret on the command line is visible to other users (ps); ' +
          'use --secret-file PATH or --secret-env NAME',
      );
    }
  }
}

/** `a=ws://…,b=ws://…` into a map; the URLs themselves are checked by createNode. */
export function parsePeers(text: string): Record<string, string> {
  const peers: Record<string, string> = {};
  for (const item of text.split(',')) {
    const entry = item.trim();
    if (entry === '') continue;
    const at = entry.indexOf('=');
    if (at <= 0 || at === entry.length - 1) {
      throw new UsageError(`--peers entries must be ID=URL; found "${entry.slice(0, 40)}"`);
    }
    const id = entry.slice(0, at);
    if (Object.hasOwn(peers, id)) throw new UsageError(`--peers lists "${id}" twice`);
    peers[id] = entry.slice(at + 1);
  }
  if (Object.keys(peers).length === 0) throw new UsageError('--peers lists no node');
  return peers;
}

function parseLeaseMs(text: string): number {
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(value >= LEASE_MS_MIN && value <= LEASE_MS_MAX)) {
    throw new UsageError(
      `--lease-ms must be a whole number from ${LEASE_MS_MIN} to ${LEASE_MS_MAX}`,
    );
  }
  return value;
}

function parseLogLevel(text: string): LogLevel {
  const level = LOG_LEVELS.find((l) => l === text);
  if (level === undefined) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  }
  return level;
}

/** `7001`, `0.0.0.0:7001` or `[::1]:7001`. */
export function parseListen(text: string): { host?: string; port: number } {
  const match = /^(?:(\[[^\]]+\]|[^:[\]]+):)?(\d{1,5})$/.exec(text);
  const port = match === null ? Number.NaN : Number(match[2]);
  if (match === null || !(port >= 0 && port <= 65535)) {
    throw new UsageError('--listen must be PORT or HOST:PORT (an IPv6 host in brackets)');
  }
  const host = match[1]?.replace(/^\[(.*)\]$/, '$1');
  return host === undefined ? { port } : { host, port };
}
