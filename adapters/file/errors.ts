import { SynodError } from '../../lib/errors.js';

/**
 * The directory holds damage that a crash cannot leave behind: a checkpoint that fails its
 * checksum, a journal record that fails its checksum with a valid record after it, a journal the
 * checkpoint names that is missing, or text the codec refuses. A crash only ever tears the tail of
 * the last write, and that is repaired on load without an error; anything else means the disk
 * or someone else changed the files, and going on would let the node forget a promise it made.
 * Not retriable: restore the directory from a backup or start the node without it (it then
 * recovers as a node without storage does).
 */
export class CorruptStorageError extends SynodError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('SYNOD_STORAGE_CORRUPT', message, options);
  }
}

/**
 * A write, fsync, rename or read failed. The save that met the failure and every later one reject
 * with this error (the same object): after a failed fsync the kernel may have dropped the dirty
 * pages and cleared the error, so a retry that "succeeds" proves nothing, and the node halts
 * instead. The cause is the error of the file system.
 */
export class StorageFailedError extends SynodError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('SYNOD_STORAGE_FAILED', message, options);
  }
}
