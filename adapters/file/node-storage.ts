import { nodeRecordCodec, type NodeRecord, type NodeUpdate } from '../../lib/storage.js';
import { FileStorage } from './file-storage.js';
import type { FileStorageOptions } from './options.js';

/**
 * A node's storage in directory `options.dir`: `createNode({ storage: fileStorage({ dir }) })`.
 * Every vote and the log's state are written and fsynced before anything that depends on them
 * is sent; the lock table is kept by its snapshots. A node restarted with it votes again after
 * its restart silence without asking the others, and tokens simply continue, even after every
 * node restarted. One directory per node id, used by one process at a time (a lock file says so).
 */
export function fileStorage(options: FileStorageOptions): FileStorage<NodeRecord, NodeUpdate> {
  return new FileStorage<NodeRecord, NodeUpdate>(nodeRecordCodec, options);
}
