import { ConfigError } from '../../lib/errors.js';
import { hasMethods } from '../../lib/validate.js';

/**
 * How `FileStorage` turns a state `S` and its updates `U` into text and back, and folds updates
 * into the state. The storage writes updates to a journal and, from time to time, the folded
 * state to a checkpoint; a load decodes the checkpoint and replays the journal on it with
 * `reduce`, so `reduce` must give the same state from the same inputs every time.
 *
 * Texts are stored as UTF-8: a lone surrogate would come back as U+FFFD (`JSON.stringify`
 * escapes them, so JSON texts come back as they were).
 */
export interface StorageCodec<S, U> {
  /**
   * Folds one update into the state (`null`: nothing stored yet). Pure: it must not change
   * `state` (the storage keeps earlier states to write checkpoints of), and it must not throw on
   * an update it accepted before (a load replays every update of the journal). A throw at
   * `save` rejects that save and writes nothing.
   */
  reduce(state: S | null, update: U): S;
  encodeState(state: S): string;
  /** Throws on text it does not accept; the load then rejects with `CorruptStorageError`. */
  decodeState(text: string): S;
  encodeUpdate(update: U): string;
  /** Throws on text it does not accept; the load then rejects with `CorruptStorageError`. */
  decodeUpdate(text: string): U;
}

const CODEC_METHODS = [
  'reduce',
  'encodeState',
  'decodeState',
  'encodeUpdate',
  'decodeUpdate',
] as const;

export function readCodec<S, U>(codec: unknown): StorageCodec<S, U> {
  if (!hasMethods(codec, CODEC_METHODS)) {
    throw new ConfigError(
      `the codec must be an object with the methods ${CODEC_METHODS.join(', ')}`,
    );
  }
  return codec as StorageCodec<S, U>;
}
