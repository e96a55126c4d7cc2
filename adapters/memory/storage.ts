import {
  foldNodeUpdate,
  type NodeRecord,
  type NodeUpdate,
  type Storage,
} from '../../lib/storage.js';

/**
 * Storage in memory, for tests and the simulator. Keep the instance to model a node restarting
 * *with* its disk; make a new one to model a restart without it.
 *
 * `save(update)` folds the update into the record with `fold` (by default the update replaces
 * the record). Records are deep-copied (structuredClone) on the way in and on the way out, so
 * neither the caller that saved nor the one that loaded can change what is stored: a bug where
 * the runtime mutates its state after persisting would otherwise be hidden in tests.
 */
export class MemoryStorage<R, U = R> implements Storage<R, U> {
  #record: R | null;
  #saves = 0;
  readonly #fold: (record: R | null, update: U) => R;

  constructor(initial: R | null = null, fold?: (record: R | null, update: U) => R) {
    this.#record = initial === null ? null : structuredClone(initial);
    this.#fold = fold ?? ((_record, update) => update as unknown as R);
  }

  /** How many times `save` completed: lets a test check that a reply was persisted first. */
  get saves(): number {
    return this.#saves;
  }

  load(): Promise<R | null> {
    return Promise.resolve(this.#record === null ? null : structuredClone(this.#record));
  }

  save(update: U): Promise<void> {
    try {
      // Copied synchronously: what is durable is the update as it was when save was called.
      // An update that cannot be cloned (a function in it) rejects, as a real disk write would.
      this.#record = this.#fold(this.#record, structuredClone(update));
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    this.#saves += 1;
    return Promise.resolve();
  }
}

/** A node's storage in memory (`createNode({ storage: memoryNodeStorage() })`, tests). */
export function memoryNodeStorage(): MemoryStorage<NodeRecord, NodeUpdate> {
  return new MemoryStorage<NodeRecord, NodeUpdate>(null, foldNodeUpdate);
}
