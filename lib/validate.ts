/** Small checks shared by the option validators (the node's and the adapters'). */
import type { Clock, Scheduler } from './clock.js';
import { ConfigError } from './errors.js';
import { LOGGER_METHODS, type LoggerLike } from './logger.js';
import type { Rng } from './random.js';

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Whether `value` is an object with a function under each of `names` (duck typing). */
export function hasMethods(value: unknown, names: readonly string[]): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  return names.every((name) => typeof record[name] === 'function');
}

/** Throws a `ConfigError` naming the first key of `value` outside `allowed`, and the allowed ones. */
export function rejectUnknownKeys(
  what: string,
  value: Record<string, unknown>,
  allowed: readonly string[],
): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw new ConfigError(`unknown ${what} "${key}" (allowed: ${allowed.join(', ')})`);
    }
  }
}

// The injected collaborators every part takes: absent (`undefined`) is null, anything else must
// have the methods synod calls.

export function readScheduler(value: unknown): Scheduler | null {
  if (value === undefined) return null;
  if (!hasMethods(value, ['setTimeout', 'clearTimeout'])) {
    throw new ConfigError('scheduler must be an object with setTimeout and clearTimeout methods');
  }
  return value as Scheduler;
}

export function readClock(value: unknown): Clock | null {
  if (value === undefined) return null;
  if (!hasMethods(value, ['now'])) {
    throw new ConfigError('clock must be an object with a now() method returning milliseconds');
  }
  return value as Clock;
}

export function readRng(value: unknown): Rng | null {
  if (value === undefined) return null;
  if (!hasMethods(value, ['next'])) {
    throw new ConfigError('rng must be an object with a next() method');
  }
  return value as Rng;
}

export function readLogger(value: unknown): LoggerLike | null {
  if (value === undefined) return null;
  if (!hasMethods(value, LOGGER_METHODS)) {
    throw new ConfigError(
      `logger must be pino-compatible, with the methods ${LOGGER_METHODS.join(', ')}`,
    );
  }
  return value as LoggerLike;
}
