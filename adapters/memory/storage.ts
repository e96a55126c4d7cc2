import type { Storage } from '../../lib/storage.js';

/**
 * Storage in memory, for tests and the simulator. Keep the instance to model a node restarting
 * *with* its disk; make a new one to model a restart without it.
 *
 * Records are deep-copied (structuredClone) on the way in and on the way out, so neither the
 * caller that saved a record nor the one that loaded it can change what is stored: a bug where
 * the runtime mutates its state after persisting would otherwise be hidden in tests.
 */
export class MemoryStorage<R> implements Storage<R> {
  #record: R | null;
  #saves = 0;

  constructor(initial: R | null = null) {
    this.#record = initial === null ? null : structuredClone(initial);
  }

  /** How many times `save` completed: lets a test check that a reply was persisted first. */
  get saves(): number {
    return this.#saves;
  }

  load(): Promise<R | null> {
    return Promise.resolve(this.#record === null ? null : structuredClone(this.#record));
  }

  save(record: R): Promise<void> {
    try {
      // Copied synchronously: what is durable is the record as it was when save was called.
      // A record that cannot be cloned (a function in it) rejects, as a real disk write would.
      this.#record = structuredClone(record);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    this.#saves += 1;
    return Promise.resolve();
  }
}
