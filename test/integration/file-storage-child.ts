import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { FileStorage, type StorageCodec } from '../../adapters/file/index.js';

/**
 * The process the file storage crash test kills (file-storage-crash.test.ts). It saves 1, 2, 3…
 * to a `FileStorage` on the directory given as its argument, as fast as it can with up to
 * `WINDOW` saves in flight, and writes each number to stdout on a line of its own once its save
 * resolved. A write to a pipe is synchronous on Linux: a number printed reached the pipe before
 * the next instruction, so the test sees every number printed before the kill.
 */

/** How many saves are in flight at once: enough to make batches of several records. */
const WINDOW = 16;
/** About 200 bytes a record, as the acceptor's records are expected to be. */
const PAD = 'p'.repeat(180);

export interface Counter {
  readonly count: number;
}

/** The state counts the updates; an update out of sequence throws, on save and on load. */
export const counterCodec: StorageCodec<Counter, number> = {
  reduce(state, n) {
    const count = state?.count ?? 0;
    if (n !== count + 1) throw new RangeError(`update ${n} after ${count}`);
    return { count: n };
  },
  encodeState: (state) => JSON.stringify(state),
  decodeState(text) {
    const { count } = JSON.parse(text) as { count?: unknown };
    if (typeof count !== 'number') throw new TypeError('no count');
    return { count };
  },
  encodeUpdate: (n) => JSON.stringify({ n, pad: PAD }),
  decodeUpdate(text) {
    const { n } = JSON.parse(text) as { n?: unknown };
    if (typeof n !== 'number') throw new TypeError('no n');
    return n;
  },
};

/** Small, so that a kill often lands in a compaction. */
export const CHILD_COMPACT_AFTER_BYTES = 16 * 1024;

async function main(dir: string): Promise<void> {
  const storage = new FileStorage(counterCodec, {
    dir,
    compactAfterBytes: CHILD_COMPACT_AFTER_BYTES,
  });
  let next = ((await storage.load())?.count ?? 0) + 1;
  process.stdout.write('ready\n');
  let inFlight = 0;
  const pump = (): void => {
    while (inFlight < WINDOW) {
      const n = next;
      next += 1;
      inFlight += 1;
      storage.save(n).then(
        () => {
          inFlight -= 1;
          process.stdout.write(`${n}\n`);
          pump();
        },
        (error: unknown) => {
          process.stderr.write(`save ${n} failed: ${String(error)}\n`);
          process.exit(2);
        },
      );
    }
  };
  pump();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2];
  if (dir === undefined) throw new Error('usage: file-storage-child.js <dir>');
  main(dir).catch((error: unknown) => {
    process.stderr.write(`${String(error)}\n`);
    process.exit(1);
  });
}
