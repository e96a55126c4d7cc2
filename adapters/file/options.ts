import { ConfigError } from '../../lib/errors.js';
import { isObject, rejectUnknownKeys } from '../../lib/validate.js';

/** Options of `FileStorage`, validated once at construction (a `ConfigError` names the option). */
export interface FileStorageOptions {
  /**
   * The directory of this node's state, created (mode 0o700) if missing. One directory per node
   * id, used by one process at a time (a `LOCK` file enforces it on one host). Keep it for this
   * storage alone: files it does not know are left alone, but a `checkpoint` or `journal-<n>`
   * put there by hand would be read.
   */
  readonly dir: string;
  /** Once the journal is larger than this, the state is checkpointed and the journal restarted. */
  readonly compactAfterBytes?: number;
  /**
   * Whether writes are fsynced. Default true. `false` is UNSAFE: a save resolves once the
   * kernel has the bytes, so a power loss or kernel crash can lose acknowledged saves (a process
   * crash alone cannot) and even leave a damaged checkpoint. For tests and benchmarks only.
   */
  readonly fsync?: boolean;
}

export interface ResolvedFileStorageOptions {
  readonly dir: string;
  readonly compactAfterBytes: number;
  readonly fsync: boolean;
}

export const FILE_STORAGE_DEFAULTS = Object.freeze({
  compactAfterBytes: 8 * 1024 * 1024,
  fsync: true,
});

/**
 * The largest `compactAfterBytes`: a load reads the journal into memory in one piece, and one
 * read is limited to 2 GiB; below that, room for the batch that crossed the threshold.
 */
export const MAX_COMPACT_AFTER_BYTES = 1024 * 1024 * 1024;

const OPTION_KEYS: readonly (keyof FileStorageOptions)[] = ['dir', 'compactAfterBytes', 'fsync'];

export function validateFileStorageOptions(options: unknown): ResolvedFileStorageOptions {
  if (!isObject(options)) throw new ConfigError('FileStorage options must be an object');
  rejectUnknownKeys('FileStorage option', options, OPTION_KEYS);
  const { dir, compactAfterBytes, fsync } = options;
  if (typeof dir !== 'string' || dir.length === 0 || dir.includes('\0')) {
    throw new ConfigError('dir must be a non-empty path without NUL characters');
  }
  if (
    compactAfterBytes !== undefined &&
    (typeof compactAfterBytes !== 'number' ||
      !Number.isInteger(compactAfterBytes) ||
      compactAfterBytes < 1 ||
      compactAfterBytes > MAX_COMPACT_AFTER_BYTES)
  ) {
    throw new ConfigError(
      `compactAfterBytes must be a whole number of bytes from 1 to ${MAX_COMPACT_AFTER_BYTES}`,
    );
  }
  if (fsync !== undefined && typeof fsync !== 'boolean') {
    throw new ConfigError('fsync must be a boolean');
  }
  return {
    dir,
    compactAfterBytes: compactAfterBytes ?? FILE_STORAGE_DEFAULTS.compactAfterBytes,
    fsync: fsync ?? FILE_STORAGE_DEFAULTS.fsync,
  };
}
