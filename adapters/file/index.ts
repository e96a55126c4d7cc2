/** Durable storage in a directory, exported as `synod/adapters/file`. */
export { FileStorage, type FileStorageStats } from './file-storage.js';
export { fileStorage } from './node-storage.js';
export type { StorageCodec } from './codec.js';
export {
  FILE_STORAGE_DEFAULTS,
  MAX_COMPACT_AFTER_BYTES,
  type FileStorageOptions,
} from './options.js';
export { CorruptStorageError, StorageFailedError } from './errors.js';
export type { FileSystem, AppendFile, OpenHow } from './file-system.js';
