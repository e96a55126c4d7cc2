import { dirname, join, resolve } from 'node:path';
import { snapshot, type Counters } from '../../lib/counters.js';
import { InvariantError, NotStartedError, SynodError } from '../../lib/errors.js';
import { writeCheckpoint } from './checkpoint.js';
import { readCodec, type StorageCodec } from './codec.js';
import { StorageFailedError } from './errors.js';
import { hasCode, nodeFileSystem, type AppendFile, type FileSystem } from './file-system.js';
import { encodeBatch, journalName, JournalWriter, MAX_BATCH_BYTES } from './journal.js';
import { DirectoryLock } from './lock.js';
import {
  validateFileStorageOptions,
  type FileStorageOptions,
  type ResolvedFileStorageOptions,
} from './options.js';
import { recover } from './recovery.js';

/**
 * Durable storage in a directory: a node's acceptor state must be written and fsynced before the
 * promise or accept that depends on it is answered, and `save` resolves only then.
 *
 * The directory holds:
 * - `journal-<g>`: the updates saved since checkpoint generation `g` (journal.ts), appended in
 *   batches, one fsync per batch;
 * - `checkpoint`: the state folded from every update before `journal-<g>`, naming `g`
 *   (checkpoint.ts); absent until the first compaction (generation 0 starts from nothing);
 * - `LOCK`: the pid of the process using the directory (lock.ts).
 *
 * Group commit: saves made while a write and its fsync are under way wait, and then go together
 * in one write covered by one fsync. Records keep the order of the `save` calls. Each save
 * resolves once the fsync covering it returned; if a write or fsync fails, that save and every
 * later one reject with the same `StorageFailedError` (the node halts on a failed save).
 *
 * State in memory: the storage folds each update into the state when `save` is called (so a
 * throwing `reduce` rejects that save and writes nothing), and keeps with each queued save the
 * state it leads to, so that a compaction checkpoints exactly the state the journal's records
 * make, never one with queued updates in it.
 *
 * With `reduce: (_, update) => update`, a `FileStorage<R, R>` is a `Storage<R>` (lib/storage.ts).
 */

export interface FileStorageStats {
  /** Saves that resolved (durable). */
  readonly saves: number;
  /** fsync calls made, of files and of the directory (loading and compactions included). */
  readonly fsyncs: number;
  /** Bytes written to journals and checkpoints (framing included). */
  readonly bytes: number;
  /** Checkpoints written (each starts a new journal). */
  readonly compactions: number;
}

interface Pending<S> {
  readonly bytes: Buffer;
  /** The state once this update and every one saved before it are applied. */
  readonly state: S;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

type Phase = 'new' | 'loading' | 'open' | 'failed' | 'closed';

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function noop(): void {
  // Cleanup after a failure: the first error is the one reported.
}

export class FileStorage<S, U> {
  readonly #codec: StorageCodec<S, U>;
  readonly #options: ResolvedFileStorageOptions;
  readonly #fs: FileSystem;
  readonly #stats: Counters<FileStorageStats> = { saves: 0, fsyncs: 0, bytes: 0, compactions: 0 };
  #phase: Phase = 'new';
  #loading: Promise<unknown> | null = null;
  #closing: Promise<void> | null = null;
  #lock: DirectoryLock | null = null;
  #journal: JournalWriter | null = null;
  #generation = 0;
  /** The state after every save accepted so far, written or queued. */
  #tail: S | null = null;
  /** The state after every save written and fsynced: what a checkpoint may hold. */
  #durable: S | null = null;
  #queue: Pending<S>[] = [];
  #draining: Promise<void> | null = null;
  #failure: StorageFailedError | null = null;

  /**
   * Validates the codec and options (a `ConfigError` names the bad one); touches no file before
   * `load`. `fileSystem` is for tests (a model disk with faults); the default is the real one.
   */
  constructor(
    codec: StorageCodec<S, U>,
    options: FileStorageOptions,
    fileSystem: FileSystem = nodeFileSystem,
  ) {
    this.#codec = readCodec(codec);
    this.#options = validateFileStorageOptions(options);
    this.#fs = countingSyncs(fileSystem, () => {
      this.#stats.fsyncs += 1;
    });
  }

  get stats(): FileStorageStats {
    return snapshot(this.#stats);
  }

  /**
   * Creates the directory if missing, takes its lock, reads the checkpoint and replays the
   * journal on it, cuts a torn tail away and removes what a crash during a compaction left.
   * Resolves with the state (`null`: nothing was ever saved). Call it once, before any `save`.
   *
   * Rejects with a `ConfigError` if another live process holds the directory, a
   * `CorruptStorageError` on damage a crash cannot explain (nothing is removed or cut then), and
   * a `StorageFailedError` if the file system fails; the storage is then unusable, its lock
   * released.
   */
  async load(): Promise<S | null> {
    if (this.#phase !== 'new') {
      throw new InvariantError('FileStorage.load() may be called once');
    }
    this.#phase = 'loading';
    const loading = this.#open();
    this.#loading = loading;
    try {
      const state = await loading;
      this.#phase = 'open';
      return state;
    } catch (error) {
      this.#phase = 'failed';
      const journal = this.#journal;
      const lock = this.#lock;
      this.#journal = null;
      this.#lock = null;
      await journal?.close().catch(noop);
      await lock?.release().catch(noop);
      throw error instanceof SynodError
        ? error
        : new StorageFailedError(`loading ${this.#options.dir} failed: ${message(error)}`, {
            cause: error,
          });
    }
  }

  /**
   * Appends `update`; resolves once it is written and fsynced. Rejects at once with the codec's
   * own error if `encodeUpdate` or `reduce` throws (nothing written, later saves unaffected), and
   * with a `StorageFailedError` if the disk fails, for this save and every later one.
   */
  save(update: U): Promise<void> {
    if (this.#failure !== null) return Promise.reject(this.#failure);
    if (this.#phase !== 'open') {
      return Promise.reject(
        this.#phase === 'closed'
          ? new NotStartedError('the file storage is closed')
          : new InvariantError(`FileStorage.save() called while the storage is ${this.#phase}`),
      );
    }
    let bytes: Buffer;
    let state: S;
    try {
      const text = this.#codec.encodeUpdate(update);
      if (typeof text !== 'string') throw new TypeError('encodeUpdate must return a string');
      bytes = Buffer.from(text, 'utf8');
      state = this.#codec.reduce(this.#tail, update);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    this.#tail = state;
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ bytes, state, resolve, reject });
      if (this.#draining === null) this.#draining = this.#drain();
    });
  }

  /**
   * Lets the saves already made finish (or fail), closes the journal and releases the lock.
   * Saves made after `close` reject with `NotStartedError`. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shut();
    return this.#closing;
  }

  async #shut(): Promise<void> {
    // Unless a load is under way, no await comes before the phase changes: a save made right
    // after `close()` returned is refused.
    if (this.#phase === 'loading') await this.#loading?.catch(noop);
    this.#phase = 'closed';
    while (this.#draining !== null) await this.#draining;
    const journal = this.#journal;
    const lock = this.#lock;
    this.#journal = null;
    this.#lock = null;
    try {
      await journal?.close();
    } finally {
      await lock?.release();
    }
  }

  /**
   * The write loop: one batch at a time, each written and fsynced before the next is taken.
   * Never rejects; clears `#draining` itself in the same step as it finds the queue empty, so a
   * save made right after always starts a new loop.
   */
  async #drain(): Promise<void> {
    // Let the saves made in the same synchronous run as the first one join its batch.
    await Promise.resolve();
    const journal = (): JournalWriter => {
      if (this.#journal === null) throw new InvariantError('the journal is not open');
      return this.#journal;
    };
    for (;;) {
      if (this.#queue.length === 0 || this.#failure !== null) {
        this.#draining = null;
        return;
      }
      const batch = this.#takeBatch();
      try {
        const frame = encodeBatch(batch.map((pending) => pending.bytes));
        await journal().append(frame);
        this.#stats.bytes += frame.length;
        if (this.#options.fsync) await journal().sync();
      } catch (error) {
        this.#fail(error, batch);
        continue;
      }
      const last = batch[batch.length - 1];
      if (last !== undefined) this.#durable = last.state;
      this.#stats.saves += batch.length;
      for (const pending of batch) pending.resolve();
      if (journal().bytes > this.#options.compactAfterBytes) {
        try {
          await this.#compact();
        } catch (error) {
          this.#fail(error, []);
        }
      }
    }
  }

  /** The oldest queued saves, up to `MAX_BATCH_BYTES` of them (at least one). */
  #takeBatch(): Pending<S>[] {
    let size = 0;
    let count = 0;
    for (const pending of this.#queue) {
      if (count > 0 && size + pending.bytes.length > MAX_BATCH_BYTES) break;
      size += pending.bytes.length;
      count += 1;
    }
    return this.#queue.splice(0, count);
  }

  #fail(error: unknown, batch: readonly Pending<S>[]): void {
    const failure = new StorageFailedError(
      `writing to ${this.#options.dir} failed (${message(error)}); this storage takes no more saves`,
      { cause: error },
    );
    this.#failure = failure;
    const rejected = [...batch, ...this.#queue];
    this.#queue = [];
    for (const pending of rejected) pending.reject(failure);
  }

  /**
   * Checkpoints the durable state and starts journal generation g+1. Safe against a crash at
   * every step, given the rules a load applies (recovery.ts):
   *
   * 1. `journal-<g+1>` is created empty, fsynced, and the directory fsynced. A crash now leaves
   *    an empty journal newer than the checkpoint: load removes it.
   * 2. The checkpoint naming g+1 is written to `checkpoint.tmp`, fsynced, renamed over
   *    `checkpoint`, and the directory fsynced. The rename is the commit point: before it, load
   *    reads the old checkpoint and `journal-<g>` (both intact, nothing removed yet); after it,
   *    the new checkpoint and the empty `journal-<g+1>`, whose directory entry step 1 made
   *    durable before the rename could be. A stray `checkpoint.tmp` is removed.
   * 3. `journal-<g>` is removed, only after the rename is durable (else a power loss could keep
   *    the old checkpoint and lose the journal it needs). A crash first: load removes it.
   *
   * Nothing is appended meanwhile: this runs inside the write loop, between two batches, so
   * `journal-<g>` holds exactly the updates folded into the state checkpointed.
   */
  async #compact(): Promise<void> {
    const old = this.#journal;
    const state = this.#durable;
    if (old === null || state === null) return;
    const { dir, fsync } = this.#options;
    const text = this.#codec.encodeState(state);
    const next = this.#generation + 1;
    const journal = await JournalWriter.create(this.#fs, join(dir, journalName(next)), dir, fsync);
    try {
      this.#stats.bytes += await writeCheckpoint(
        this.#fs,
        dir,
        { generation: next, state: text },
        fsync,
      );
    } catch (error) {
      await journal.close().catch(noop);
      throw error;
    }
    this.#journal = journal;
    this.#generation = next;
    this.#stats.compactions += 1;
    await old.close();
    await this.#fs.unlink(old.path);
  }

  async #open(): Promise<S | null> {
    const { dir, fsync, compactAfterBytes } = this.#options;
    const fs = this.#fs;
    const created = await fs.mkdir(dir, 0o700);
    if (created !== undefined && fsync) {
      // A new directory must be durable in its parent, or a power loss could take the journal,
      // and with it acknowledged saves, along with the directory.
      const first = resolve(created);
      for (let made = resolve(dir); ; made = dirname(made)) {
        await fs.syncDir(dirname(made));
        if (made === first || made === dirname(made)) break;
      }
    }
    this.#lock = await DirectoryLock.acquire(fs, dir, fsync);
    const recovered = await recover(fs, dir, this.#codec);
    for (const leftover of recovered.leftovers) {
      try {
        await fs.unlink(leftover);
      } catch (error) {
        if (!hasCode(error, 'ENOENT')) throw error;
      }
    }
    const { journal, journalPath } = recovered;
    this.#journal =
      journal === null
        ? await JournalWriter.create(fs, journalPath, dir, fsync)
        : await JournalWriter.open(fs, journalPath, journal.validBytes, journal.torn, fsync);
    this.#generation = recovered.generation;
    this.#tail = recovered.state;
    this.#durable = recovered.state;
    if (this.#journal.bytes > compactAfterBytes) await this.#compact();
    return recovered.state;
  }
}

/** `fs`, calling `onSync` after every fsync of a file or directory that succeeded. */
function countingSyncs(fs: FileSystem, onSync: () => void): FileSystem {
  const counted = (file: AppendFile): AppendFile => ({
    append: (data) => file.append(data),
    truncate: (length) => file.truncate(length),
    close: () => file.close(),
    async sync() {
      await file.sync();
      onSync();
    },
  });
  return {
    mkdir: (path, mode) => fs.mkdir(path, mode),
    readdir: (path) => fs.readdir(path),
    readFile: (path) => fs.readFile(path),
    open: async (path, how, mode) => counted(await fs.open(path, how, mode)),
    rename: (from, to) => fs.rename(from, to),
    link: (existing, newPath) => fs.link(existing, newPath),
    unlink: (path) => fs.unlink(path),
    async syncDir(path) {
      await fs.syncDir(path);
      onSync();
    },
  };
}
