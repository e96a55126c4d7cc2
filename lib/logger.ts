/**
 * The logger contract shared by the runtime and the adapters: what synod needs of a logger
 * (`LoggerLike`, which pino fits), and the level-gated wrapper every part logs through.
 *
 * Call sites on hot paths (every frame) guard with `enabled(level)`, so a disabled level costs
 * one call and builds no fields object. Nothing secret is ever logged, and untrusted input
 * appears only as short, escaped quotes.
 */

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A level that lines are written at (every level but `silent`). */
export type LineLevel = Exclude<LogLevel, 'silent'>;

/** A log method in pino's shape: a fields object first, then the message. */
export type LogFn = (fields: object, message: string) => void;

/**
 * What synod needs of a logger: the level methods of pino. A pino instance fits; so does any
 * object with these methods. `isLevelEnabled` and `child`, when present, are used to skip work
 * for disabled levels and to bind the node id.
 */
export interface LoggerLike {
  fatal: LogFn;
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
  trace: LogFn;
  isLevelEnabled?(level: string): boolean;
  child?(bindings: Record<string, unknown>, options?: { level?: string }): LoggerLike;
}

/** The methods an object must have to pass for a `LoggerLike` (checked by option validation). */
export const LOGGER_METHODS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

/**
 * `logger` with `bindings` on every line (and at `level`, if given), through its `child` when it
 * has one; a logger without `child` is used as it is.
 */
export function boundLogger(
  logger: LoggerLike,
  bindings: Record<string, unknown>,
  level: LogLevel | null = null,
): LoggerLike {
  return typeof logger.child === 'function'
    ? logger.child(bindings, level === null ? {} : { level })
    : logger;
}

/**
 * A `LoggerLike` behind a level check: silent when given none, and each call writes only if its
 * level is enabled. It is itself a `LoggerLike`, so it can be handed on to an adapter.
 */
export class GatedLogger implements LoggerLike {
  readonly #logger: LoggerLike | null;

  constructor(logger: LoggerLike | null) {
    this.#logger = logger;
  }

  /** Whether a line at `level` would be written: guard any work done only to log. */
  enabled(level: LineLevel): boolean {
    const logger = this.#logger;
    if (logger === null) return false;
    return typeof logger.isLevelEnabled === 'function' ? logger.isLevelEnabled(level) : true;
  }

  isLevelEnabled(level: string): boolean {
    return level !== 'silent' && (LOG_LEVELS as readonly string[]).includes(level)
      ? this.enabled(level as LineLevel)
      : false;
  }

  fatal(fields: object, message: string): void {
    if (this.enabled('fatal')) this.#logger?.fatal(fields, message);
  }

  error(fields: object, message: string): void {
    if (this.enabled('error')) this.#logger?.error(fields, message);
  }

  warn(fields: object, message: string): void {
    if (this.enabled('warn')) this.#logger?.warn(fields, message);
  }

  info(fields: object, message: string): void {
    if (this.enabled('info')) this.#logger?.info(fields, message);
  }

  debug(fields: object, message: string): void {
    if (this.enabled('debug')) this.#logger?.debug(fields, message);
  }

  trace(fields: object, message: string): void {
    if (this.enabled('trace')) this.#logger?.trace(fields, message);
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
