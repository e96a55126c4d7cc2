import { pino } from 'pino';
import type { LoggerLike, LogLevel } from '../options.js';

type Level = Exclude<LogLevel, 'silent'>;

const noop = (): void => undefined;

/** What the node logs through when the user asked for no logging: every call is a no-op. */
const SILENT: LoggerLike = Object.freeze({
  fatal: noop,
  error: noop,
  warn: noop,
  info: noop,
  debug: noop,
  trace: noop,
  isLevelEnabled: () => false,
});

/**
 * The node's logger. Silent unless the user passes a `logger` (bound to this node's id with
 * `child` when it has one) or a `logLevel` (then pino writes to stdout).
 *
 * Call sites on hot paths (every frame) guard with `enabled(level)`, so a disabled level costs
 * one call and builds no fields object. Nothing secret is ever logged, and untrusted input
 * appears only as the codec's short, escaped quotes.
 */
export class NodeLogger {
  readonly #logger: LoggerLike;
  readonly #silent: boolean;

  constructor(options: { logger: LoggerLike | null; logLevel: LogLevel | null; id: string }) {
    const { logger, logLevel, id } = options;
    if (logger !== null) {
      this.#logger =
        typeof logger.child === 'function'
          ? logger.child({ node: id }, logLevel === null ? {} : { level: logLevel })
          : logger;
      this.#silent = false;
    } else if (logLevel !== null && logLevel !== 'silent') {
      this.#logger = pino({ level: logLevel, name: 'synod' }).child({ node: id });
      this.#silent = false;
    } else {
      this.#logger = SILENT;
      this.#silent = true;
    }
  }

  /** Whether a line at `level` would be written: guard any work done only to log. */
  enabled(level: Level): boolean {
    if (this.#silent) return false;
    const logger = this.#logger;
    return typeof logger.isLevelEnabled === 'function' ? logger.isLevelEnabled(level) : true;
  }

  fatal(fields: object, message: string): void {
    if (this.enabled('fatal')) this.#logger.fatal(fields, message);
  }

  error(fields: object, message: string): void {
    if (this.enabled('error')) this.#logger.error(fields, message);
  }

  warn(fields: object, message: string): void {
    if (this.enabled('warn')) this.#logger.warn(fields, message);
  }

  info(fields: object, message: string): void {
    if (this.enabled('info')) this.#logger.info(fields, message);
  }

  debug(fields: object, message: string): void {
    if (this.enabled('debug')) this.#logger.debug(fields, message);
  }

  trace(fields: object, message: string): void {
    if (this.enabled('trace')) this.#logger.trace(fields, message);
  }
}

/** An error as log fields: its class, code and message, never a whole object graph. */
export function errorFields(error: unknown): Record<string, unknown> {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      err: {
        type: error.name,
        message: error.message,
        ...(typeof code === 'string' ? { code } : {}),
        ...(error.stack === undefined ? {} : { stack: error.stack }),
      },
    };
  }
  return { err: { type: typeof error, message: String(error) } };
}
