import { join } from 'node:path';
import { CHECKPOINT, CHECKPOINT_TMP, decodeCheckpoint } from './checkpoint.js';
import type { StorageCodec } from './codec.js';
import { CorruptStorageError } from './errors.js';
import type { FileSystem } from './file-system.js';
import { journalName, readJournal, type JournalContents } from './journal.js';
import { isProcessAlive, LOCK_TMP } from './lock.js';

/**
 * What a load reads from the directory, and the rules that make a crash at any point of a save
 * or a compaction (file-storage.ts, `#compact`) harmless:
 *
 * - `checkpoint`, if present, names generation g and holds the state before `journal-<g>`;
 *   without one, g is 0 and the state starts from nothing.
 * - `journal-<g>` must exist, unless the directory is fresh (no checkpoint, no journal, no
 *   `checkpoint.tmp`): a compaction makes a journal durable before a checkpoint names it, and
 *   removes a journal only once a later checkpoint is durable. Missing, it was removed by hand or
 *   by the disk: `CorruptStorageError`.
 * - Its valid records are replayed; a torn tail is reported, to be cut before the next append.
 * - Leftovers of a crash, to remove: older journals (a compaction committed, then crashed before
 *   removing the old one), newer journals (a compaction crashed before its commit; they are
 *   empty, and one with records in it is corruption, not a leftover), `checkpoint.tmp`, and lock
 *   files of dead processes.
 *
 * Nothing is removed or cut here: `recover` only reads, so a load that finds corruption changes
 * nothing on disk.
 */
export interface Recovered<S> {
  readonly generation: number;
  readonly state: S | null;
  /** `journal-<generation>`. */
  readonly journalPath: string;
  /** Its contents, or null in a fresh directory (the journal is to be created). */
  readonly journal: JournalContents | null;
  /** Paths to remove. */
  readonly leftovers: readonly string[];
}

const JOURNAL = /^journal-(0|[1-9]\d{0,15})$/;

export async function recover<S, U>(
  fs: FileSystem,
  dir: string,
  codec: StorageCodec<S, U>,
): Promise<Recovered<S>> {
  const names = await fs.readdir(dir);

  let generation = 0;
  let state: S | null = null;
  if (names.includes(CHECKPOINT)) {
    const path = join(dir, CHECKPOINT);
    const checkpoint = decodeCheckpoint(await fs.readFile(path), path);
    generation = checkpoint.generation;
    state = decoded(path, 'state', () => codec.decodeState(checkpoint.state));
  }

  const journals = names.flatMap((name) => {
    const match = JOURNAL.exec(name);
    return match === null ? [] : [Number(match[1])];
  });
  const journalPath = join(dir, journalName(generation));
  let journal: JournalContents | null = null;
  if (journals.includes(generation)) {
    journal = readJournal(await fs.readFile(journalPath), journalPath);
    for (const text of journal.updates) {
      const update = decoded(journalPath, 'update', () => codec.decodeUpdate(text));
      state = decoded(journalPath, 'update', () => codec.reduce(state, update));
    }
  } else if (generation > 0 || journals.length > 0 || names.includes(CHECKPOINT_TMP)) {
    throw new CorruptStorageError(
      `${journalPath} is missing, though ` +
        (generation > 0
          ? `${join(dir, CHECKPOINT)} names generation ${generation}`
          : `${dir} holds files of an earlier run`),
    );
  }

  const leftovers: string[] = [];
  for (const other of journals) {
    if (other === generation) continue;
    const path = join(dir, journalName(other));
    if (other > generation && (await fs.readFile(path)).length > 0) {
      throw new CorruptStorageError(
        `${path} holds records but is newer than the checkpoint's generation ${generation}`,
      );
    }
    leftovers.push(path);
  }
  if (names.includes(CHECKPOINT_TMP)) leftovers.push(join(dir, CHECKPOINT_TMP));
  for (const name of names) {
    const pid = LOCK_TMP.exec(name)?.[1];
    if (pid !== undefined && !isProcessAlive(Number(pid))) leftovers.push(join(dir, name));
  }
  return { generation, state, journalPath, journal, leftovers };
}

/** `decode()`, with the codec's refusal turned into a `CorruptStorageError` naming the file. */
function decoded<T>(path: string, what: string, decode: () => T): T {
  try {
    return decode();
  } catch (error) {
    throw new CorruptStorageError(
      `${path}: the codec refused a stored ${what} (${error instanceof Error ? error.message : String(error)})`,
      { cause: error },
    );
  }
}
