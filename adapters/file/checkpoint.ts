import { join } from 'node:path';
import { CorruptStorageError } from './errors.js';
import type { FileSystem } from './file-system.js';
import { encodeFrame, frameAt, HEADER_BYTES } from './frame.js';

/**
 * The checkpoint: the whole state at the start of one journal generation, in one file that is
 * replaced atomically (written to `checkpoint.tmp`, fsynced, renamed over `checkpoint`, the
 * directory fsynced). A reader sees the old file or the new one, each whole; so unlike the
 * journal's tail, any damage in it is corruption.
 *
 * File: the 8 bytes `SYNODCP1`, then one frame (frame.ts) whose payload is the generation as a
 * u64 big-endian and the state's UTF-8 text.
 */
export const CHECKPOINT = 'checkpoint';
export const CHECKPOINT_TMP = 'checkpoint.tmp';

const MAGIC = Buffer.from('SYNODCP1', 'latin1');

export interface Checkpoint {
  /** The journal generation whose records follow this state: `journal-<generation>`. */
  readonly generation: number;
  readonly state: string;
}

export function encodeCheckpoint(checkpoint: Checkpoint): Buffer {
  const state = Buffer.from(checkpoint.state, 'utf8');
  const payload = Buffer.allocUnsafe(8 + state.length);
  payload.writeBigUInt64BE(BigInt(checkpoint.generation), 0);
  payload.set(state, 8);
  return Buffer.concat([MAGIC, encodeFrame(payload)]);
}

export function decodeCheckpoint(data: Buffer, path: string): Checkpoint {
  const payload = data.subarray(0, MAGIC.length).equals(MAGIC) ? frameAt(data, MAGIC.length) : null;
  if (payload?.length !== data.length - MAGIC.length - HEADER_BYTES || payload.length < 8) {
    throw new CorruptStorageError(
      `${path} is damaged (bad header, checksum or length); a checkpoint is only ever ` +
        'installed whole, so no crash explains it',
    );
  }
  const generation = payload.readBigUInt64BE(0);
  if (generation > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CorruptStorageError(`${path} names generation ${generation}, beyond any written`);
  }
  return { generation: Number(generation), state: payload.toString('utf8', 8) };
}

/**
 * Installs `checkpoint` in `dir` atomically. When this resolves (with `sync`) the new checkpoint
 * is durable; if it throws or the process dies on the way, the directory holds the old checkpoint
 * and maybe a `checkpoint.tmp` to remove.
 */
export async function writeCheckpoint(
  fs: FileSystem,
  dir: string,
  checkpoint: Checkpoint,
  sync: boolean,
): Promise<number> {
  const data = encodeCheckpoint(checkpoint);
  const tmp = join(dir, CHECKPOINT_TMP);
  const file = await fs.open(tmp, 'truncate', 0o600);
  try {
    await file.append(data);
    // The data must be durable before the rename: otherwise the rename may reach the disk first
    // and a crash leave a `checkpoint` with holes in place of the good old one.
    if (sync) await file.sync();
  } finally {
    await file.close();
  }
  await fs.rename(tmp, join(dir, CHECKPOINT));
  // The rename must be durable before the caller removes the journal the old checkpoint needs.
  if (sync) await fs.syncDir(dir);
  return data.length;
}
