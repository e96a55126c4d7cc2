import { pino } from 'pino';
import { ConfigError } from '../errors.js';
import { createNode } from '../node/node.js';
import { DEFAULTS } from '../options.js';
import type { NodeCommand } from './args.js';
import { loadSecret, SecretError } from './secret.js';

/** What `synod node` prints on stdout, one line each. */
export type CliEvent =
  | {
      readonly event: 'started';
      readonly node: string;
      readonly incarnation: string | null;
      readonly peers: readonly string[];
      readonly leaseMs: number;
    }
  | {
      readonly event: 'leader';
      readonly node: string;
      readonly leaderId: string | null;
      readonly term: number | null;
      readonly isLeader: boolean;
    }
  | { readonly event: 'stopping'; readonly node: string; readonly signal: string }
  | { readonly event: 'stopped'; readonly node: string }
  | { readonly event: 'error'; readonly node: string; readonly message: string };

/** One line for `event`: JSON with a `time` first, or a readable sentence after the time. */
export function formatEvent(event: CliEvent, json: boolean, at: Date): string {
  const time = at.toISOString();
  if (json) return JSON.stringify({ time, ...event });
  return `${time} ${event.node}: ${describeEvent(event)}`;
}

function describeEvent(event: CliEvent): string {
  switch (event.event) {
    case 'started':
      return (
        `started (incarnation ${event.incarnation ?? '?'}, ${event.peers.length} nodes, ` +
        `leaseMs ${event.leaseMs}); it votes once its first lease period has passed`
      );
    case 'leader':
      if (event.isLeader) return `is the leader (term ${event.term ?? '?'})`;
      if (event.leaderId === null) return 'knows no leader';
      return `follows ${event.leaderId} (term ${event.term ?? '?'})`;
    case 'stopping':
      return `${event.signal}: stopping gracefully (a leader hands leadership on)`;
    case 'stopped':
      return 'stopped';
    case 'error':
      return `failed: ${event.message}`;
    default: {
      const never: never = event;
      return String(never);
    }
  }
}

/** How `runNode` reaches the outside world; the `synod` command passes the process's own. */
export interface CliIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: (line: string) => void;
  readonly stderr: (line: string) => void;
  /** Calls `handler` on SIGINT and SIGTERM. */
  readonly onSignal: (handler: (signal: string) => void) => void;
  readonly now: () => Date;
}

/**
 * Runs one node until a signal, then stops it gracefully. Resolves with the exit status: 0
 * after a graceful stop, 1 if the node could not start or failed.
 *
 * A node that never ran (no secret, a bad configuration, a port taken) says why on stderr, as a
 * command-line problem does; once it runs, its failures are events on stdout.
 */
export async function runNode(command: NodeCommand, io: CliIo): Promise<number> {
  const print = (event: CliEvent): void => {
    io.stdout(formatEvent(event, command.json, io.now()));
  };
  const fail = (message: string): number => {
    print({ event: 'error', node: command.id, message });
    return 1;
  };
  const refuse = (message: string): number => {
    io.stderr(`synod: ${message}`);
    return 1;
  };

  let secret: string;
  try {
    const loaded = await loadSecret(command.secret, io.env);
    for (const warning of loaded.warnings) io.stderr(`synod: warning: ${warning}`);
    secret = loaded.secret;
  } catch (error) {
    if (error instanceof SecretError) return refuse(error.message);
    throw error;
  }

  const logger = pino(
    { level: command.logLevel, name: 'synod' },
    pino.destination({ fd: 2, sync: true }),
  );
  let node;
  try {
    node = createNode({
      id: command.id,
      peers: command.peers,
      secret,
      logger,
      ...(command.leaseMs === null ? {} : { leaseMs: command.leaseMs }),
      ...(command.cluster === null ? {} : { cluster: command.cluster }),
      ...(command.listen === null ? {} : { listen: command.listen }),
    });
  } catch (error) {
    // Configuration messages name the option and never carry the secret.
    if (error instanceof ConfigError) return refuse(error.message);
    throw error;
  }

  let failed = false;
  node.on('leaderChange', ({ leaderId, term, isLeader }) => {
    print({ event: 'leader', node: command.id, leaderId, term, isLeader });
  });

  const done = new Promise<number>((resolve) => {
    let stopping = false;
    node.on('error', (error) => {
      failed = true;
      print({ event: 'error', node: command.id, message: error.message });
      resolve(1);
    });
    io.onSignal((signal) => {
      if (stopping) {
        io.stderr(`synod: ${signal} again: exiting without waiting for the graceful stop`);
        resolve(1);
        return;
      }
      stopping = true;
      print({ event: 'stopping', node: command.id, signal });
      node.stop().then(
        () => {
          print({ event: 'stopped', node: command.id });
          resolve(failed ? 1 : 0);
        },
        (error: unknown) => {
          resolve(fail(error instanceof Error ? error.message : String(error)));
        },
      );
    });
  });

  try {
    await node.start();
  } catch (error) {
    return refuse(`could not start: ${withCauses(error)}`);
  }
  print({
    event: 'started',
    node: command.id,
    incarnation: node.incarnation,
    peers: Object.keys(command.peers),
    leaseMs: command.leaseMs ?? DEFAULTS.leaseMs,
  });
  return done;
}

/**
 * An error's message followed by its causes' (`cannot listen on *:7001: listen EADDRINUSE: …`):
 * the operator needs the system's reason, not only the layer that gave up.
 */
function withCauses(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const parts = [error.message];
  let cause = error.cause;
  for (let depth = 0; depth < 3 && cause instanceof Error; depth++) {
    parts.push(cause.message);
    cause = cause.cause;
  }
  return parts.join(': ');
}
