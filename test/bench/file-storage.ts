/**
 * The file storage's throughput: saves per second and fsyncs per second with 1 and with 64
 * concurrent savers (each saving again as soon as its last save resolved), records of about 200
 * bytes, fsync on, the default compaction threshold (8 MiB). Also the latency of one save. A run
 * with fsync off is printed last, as the ceiling the disk's fsync is measured against (unsafe:
 * never a production setting).
 *
 *   npm run -s build:test && node dist-test/test/bench/file-storage.js [--seconds 3] [--dir /path]
 *
 * The figures depend on the disk and its load; the directory is a new one under the system's
 * temporary directory unless `--dir` names a parent to create it in.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { FileStorage, type StorageCodec } from '../../adapters/file/index.js';
import { summarize } from './stats.js';

interface Record200 {
  readonly seq: number;
  readonly ballot: string;
  readonly value: string;
}

/** The state keeps the last record and a count: the fold is cheap, as an acceptor's is. */
const codec: StorageCodec<{ count: number; last: Record200 }, Record200> = {
  reduce: (state, update) => ({ count: (state?.count ?? 0) + 1, last: update }),
  encodeState: (state) => JSON.stringify(state),
  decodeState: (text) => JSON.parse(text) as { count: number; last: Record200 },
  encodeUpdate: (update) => JSON.stringify(update),
  decodeUpdate: (text) => JSON.parse(text) as Record200,
};

function record(seq: number): Record200 {
  return { seq, ballot: `${seq}.n1.0123456789abcdef`, value: 'v'.repeat(150) };
}

function argument(name: string): string | undefined {
  const index = process.argv.indexOf(name);
  return index < 0 ? undefined : process.argv[index + 1];
}

const SECONDS = Number(argument('--seconds') ?? '3');
const PARENT = argument('--dir') ?? tmpdir();

interface Result {
  readonly savers: number;
  readonly fsync: boolean;
  readonly savesPerSec: number;
  readonly fsyncsPerSec: number;
  readonly savesPerFsync: number;
  readonly compactions: number;
  readonly recordBytes: number;
  readonly latencyMs: ReturnType<typeof summarize>;
}

async function measure(savers: number, fsync: boolean): Promise<Result> {
  const root = mkdtempSync(join(PARENT, 'synod-file-bench-'));
  try {
    const storage = new FileStorage(codec, { dir: join(root, 'node'), fsync });
    await storage.load();
    let seq = 0;
    const latencies: number[] = [];
    const before = storage.stats;
    const start = performance.now();
    const end = start + SECONDS * 1000;
    const saver = async (): Promise<void> => {
      while (performance.now() < end) {
        seq += 1;
        const issued = performance.now();
        await storage.save(record(seq));
        latencies.push(performance.now() - issued);
      }
    };
    await Promise.all(Array.from({ length: savers }, saver));
    const seconds = (performance.now() - start) / 1000;
    const after = storage.stats;
    await storage.close();
    const saves = after.saves - before.saves;
    const fsyncs = after.fsyncs - before.fsyncs;
    return {
      savers,
      fsync,
      savesPerSec: saves / seconds,
      fsyncsPerSec: fsyncs / seconds,
      savesPerFsync: fsyncs === 0 ? Number.NaN : saves / fsyncs,
      compactions: after.compactions,
      recordBytes: Buffer.byteLength(codec.encodeUpdate(record(seq))),
      latencyMs: summarize(latencies),
    };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

const results: Result[] = [];
for (const [savers, fsync] of [
  [1, true],
  [64, true],
  [64, false],
] as const) {
  results.push(await measure(savers, fsync));
}

const f = (value: number, digits = 0): string =>
  Number.isNaN(value) ? '-' : value.toFixed(digits);
console.log(`file storage, ${SECONDS} s a run, in ${PARENT}, Node ${process.version}`);
console.log(
  [
    'savers',
    'fsync',
    'record B',
    'saves/s',
    'fsyncs/s',
    'saves/fsync',
    'compactions',
    'p50 ms',
    'p99 ms',
  ].join('\t'),
);
for (const r of results) {
  console.log(
    [
      r.savers,
      r.fsync ? 'on' : 'OFF',
      r.recordBytes,
      f(r.savesPerSec),
      f(r.fsyncsPerSec),
      f(r.savesPerFsync, 1),
      r.compactions,
      f(r.latencyMs.p50, 2),
      f(r.latencyMs.p99, 2),
    ].join('\t'),
  );
}
