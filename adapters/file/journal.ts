import { CorruptStorageError } from './errors.js';
import type { AppendFile, FileSystem } from './file-system.js';
import { encodeFrame, scanFrames } from './frame.js';

/**
 * The journal: an append-only file of the updates saved since the last checkpoint.
 *
 * One frame (frame.ts) holds one *batch*: the updates of one write, which one fsync makes durable
 * (group commit). The next batch is written only after that fsync returned, so a crash can
 * damage the last frame only, and anywhere in it: a prefix of the write, or holes of zeros where
 * the file system lost pages of it. Hence the rule of `readJournal`: a damaged last frame is a
 * torn tail, cut away (none of its saves had resolved); a damaged frame with a valid one after it
 * is corruption that no crash explains.
 *
 * Batch payload: u32 count, then for each update a u32 byte length and its UTF-8 text.
 */

/** The journal of checkpoint generation `generation`. */
export function journalName(generation: number): string {
  return `journal-${generation}`;
}

/** A batch is cut at this many payload bytes (a single larger update still goes alone). */
export const MAX_BATCH_BYTES = 16 * 1024 * 1024;

/** The frame holding `updates` (UTF-8 texts), ready to append. */
export function encodeBatch(updates: readonly Uint8Array[]): Buffer {
  let size = 4;
  for (const update of updates) size += 4 + update.length;
  const payload = Buffer.allocUnsafe(size);
  payload.writeUInt32BE(updates.length, 0);
  let offset = 4;
  for (const update of updates) {
    payload.writeUInt32BE(update.length, offset);
    payload.set(update, offset + 4);
    offset += 4 + update.length;
  }
  return encodeFrame(payload);
}

function decodeBatch(payload: Buffer, where: string): string[] {
  const bad = (): CorruptStorageError =>
    new CorruptStorageError(`${where}: a record passes its checksum but is not a batch of updates`);
  if (payload.length < 4) throw bad();
  const count = payload.readUInt32BE(0);
  const texts: string[] = [];
  let offset = 4;
  for (let i = 0; i < count; i += 1) {
    if (payload.length - offset < 4) throw bad();
    const length = payload.readUInt32BE(offset);
    if (payload.length - offset - 4 < length) throw bad();
    texts.push(payload.toString('utf8', offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  if (offset !== payload.length || count === 0) throw bad();
  return texts;
}

export interface JournalContents {
  /** The updates' texts, in the order they were saved. */
  readonly updates: string[];
  /** The length of the valid frames: the file is cut to it before the next append. */
  readonly validBytes: number;
  /** Whether a torn tail follows them. */
  readonly torn: boolean;
}

/** Reads and checks a journal file; a damaged frame before a valid one is `CorruptStorageError`. */
export function readJournal(data: Buffer, path: string): JournalContents {
  const scan = scanFrames(data);
  if (scan.rest === 'corrupt') {
    throw new CorruptStorageError(
      `${path}: the record at byte ${scan.validBytes} fails its checksum and valid records ` +
        'follow it; a crash only tears the last record, so the file was damaged',
    );
  }
  const updates: string[] = [];
  for (const payload of scan.payloads) {
    updates.push(...decodeBatch(payload, `${path} before byte ${scan.validBytes}`));
  }
  return { updates, validBytes: scan.validBytes, torn: scan.rest === 'torn' };
}

/** An open journal that batches are appended to. */
export class JournalWriter {
  readonly path: string;
  readonly #file: AppendFile;
  #bytes: number;

  private constructor(path: string, file: AppendFile, bytes: number) {
    this.path = path;
    this.#file = file;
    this.#bytes = bytes;
  }

  /**
   * Opens the journal at `path` to append after its first `validBytes` bytes, cutting a torn tail
   * away first (and making the cut durable, so that nothing appended later lands after stale
   * bytes). `validBytes` 0 on a missing file creates it.
   */
  static async open(
    fs: FileSystem,
    path: string,
    validBytes: number,
    cut: boolean,
    sync: boolean,
  ): Promise<JournalWriter> {
    const file = await fs.open(path, 'append', 0o600);
    try {
      if (cut) {
        await file.truncate(validBytes);
        if (sync) await file.sync();
      }
    } catch (error) {
      await file.close().catch(() => undefined);
      throw error;
    }
    return new JournalWriter(path, file, validBytes);
  }

  /**
   * Creates an empty journal at `path` (emptying a leftover one) and makes it durable, with its
   * directory entry when `dir` is given.
   */
  static async create(
    fs: FileSystem,
    path: string,
    dir: string,
    sync: boolean,
  ): Promise<JournalWriter> {
    const file = await fs.open(path, 'truncate', 0o600);
    try {
      if (sync) {
        await file.sync();
        await fs.syncDir(dir);
      }
    } catch (error) {
      await file.close().catch(() => undefined);
      throw error;
    }
    return new JournalWriter(path, file, 0);
  }

  /** Bytes in the file. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Appends a batch (`encodeBatch`); durable only after `sync`. */
  async append(frame: Uint8Array): Promise<void> {
    await this.#file.append(frame);
    this.#bytes += frame.length;
  }

  sync(): Promise<void> {
    return this.#file.sync();
  }

  close(): Promise<void> {
    return this.#file.close();
  }
}
