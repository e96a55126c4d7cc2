import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { FileStorage } from '../../adapters/file/index.js';
import { createRng } from '../../lib/random.js';
import { CHILD_COMPACT_AFTER_BYTES, counterCodec } from './file-storage-child.js';

/**
 * A process saving as fast as it can is killed with SIGKILL at a random (seeded) moment after its
 * first save resolved; then this process loads its directory. Every number the child printed
 * (its save had resolved) must be in the loaded state, and the state must be a prefix of the
 * sequence (the codec's `reduce` refuses an update out of sequence, so a gap fails the load).
 * This is a process crash: the kernel keeps what was written; the power-loss cases are the
 * model disk's (test/unit/file-storage-crash.test.ts).
 */

const CHILD = fileURLToPath(new URL('./file-storage-child.js', import.meta.url));
const RUNS = 5;
const SEED = 0x5eed;
/** Kill delays after the first acknowledged save, ms. */
const MIN_DELAY_MS = 20;
const MAX_DELAY_MS = 400;
/** Bound on one run, start to exit, on a loaded machine. */
const RUN_BOUND_MS = 20_000;

interface Killed {
  /** The numbers the child printed, in order. */
  readonly printed: number[];
  readonly signal: NodeJS.Signals | null;
}

/** Starts the child on `dir`, kills it `delayMs` after its first acknowledged save. */
async function runAndKill(dir: string, delayMs: number): Promise<Killed> {
  const child = spawn(process.execPath, [CHILD, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
  const printed: number[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const bound = setTimeout(() => child.kill('SIGKILL'), RUN_BOUND_MS);
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    if (line === 'ready') return;
    printed.push(Number(line));
    timer ??= setTimeout(() => child.kill('SIGKILL'), delayMs);
  });
  const [signal] = await Promise.all([
    new Promise<NodeJS.Signals | null>((resolve) => {
      child.once('exit', (code, sig) => {
        if (code !== null) stderr.push(`exited with code ${code}`);
        resolve(sig);
      });
    }),
    new Promise<void>((resolve) => lines.once('close', resolve)),
  ]);
  clearTimeout(timer);
  clearTimeout(bound);
  assert.equal(signal, 'SIGKILL', stderr.join(''));
  assert.ok(timer !== undefined, `the child acknowledged no save: ${stderr.join('')}`);
  return { printed, signal };
}

describe('FileStorage killed with SIGKILL', function () {
  this.timeout(RUNS * RUN_BOUND_MS);

  it('loads every save acknowledged before the kill, as a prefix of the sequence', async function () {
    const rng = createRng(SEED);
    const runs: string[] = [];
    let compactions = 0;
    for (let run = 0; run < RUNS; run += 1) {
      const delayMs = MIN_DELAY_MS + Math.floor(rng.next() * (MAX_DELAY_MS - MIN_DELAY_MS));
      const dir = mkdtempSync(join(tmpdir(), 'synod-file-crash-'));
      try {
        const { printed } = await runAndKill(join(dir, 'node'), delayMs);
        const acknowledged = printed.length;
        assert.deepEqual(
          printed,
          Array.from({ length: acknowledged }, (_, i) => i + 1),
          'the child printed its numbers in order',
        );
        // The killed child's lock is stale now: this load takes it over.
        const storage = new FileStorage(counterCodec, {
          dir: join(dir, 'node'),
          compactAfterBytes: CHILD_COMPACT_AFTER_BYTES,
        });
        const loaded = (await storage.load())?.count ?? 0;
        const journal = readdirSync(join(dir, 'node')).find((name) => name.startsWith('journal-'));
        compactions += Number(journal?.slice('journal-'.length));
        runs.push(`${delayMs} ms: ${acknowledged} acknowledged, ${loaded} loaded, ${journal}`);
        assert.ok(loaded >= acknowledged, runs.join('; '));
        await storage.save(loaded + 1);
        await storage.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    assert.ok(compactions > 0, `compactions happened: ${runs.join('; ')}`);
  });
});
