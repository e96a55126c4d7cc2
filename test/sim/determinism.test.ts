import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { simulate } from '../../lib/testing/sim/index.js';
import { GOLDEN_PATH, goldenJob, readGolden } from './golden.js';
import type { SeedSummary } from './pool.js';
import { runJob } from './worker.js';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('./run.js', import.meta.url));

/** Runs one seed in a fresh process and returns its summary. */
async function inChild(seed: number, profile: string, periods: number): Promise<SeedSummary> {
  const args = [CLI, '--seed', String(seed), '--profile', profile, '--periods', String(periods)];
  const { stdout } = await run(process.execPath, [...args, '--json', '--workers', '1'], {
    maxBuffer: 1 << 24,
  });
  const line = stdout.split('\n').find((l) => l.startsWith('{'));
  assert.ok(line !== undefined, `no summary from the child: ${stdout}`);
  return JSON.parse(line) as SeedSummary;
}

describe('simulator determinism', function () {
  this.timeout(120_000);

  it('gives one seed the same trace in two separate processes', async () => {
    const [a, b] = await Promise.all([inChild(11, 'default', 40), inChild(11, 'default', 40)]);
    assert.match(a.traceHash, /^[0-9a-f]{64}$/);
    assert.equal(a.traceHash, b.traceHash);
    assert.deepEqual(a.counts, b.counts);
    // And the same as in this process, with the trace kept.
    const here = simulate({ seed: 11, profile: 'default', periods: 40, trace: true });
    assert.equal(here.traceHash, a.traceHash);
    assert.ok((here.trace?.length ?? 0) > 1000);
  });

  it('gives different seeds different traces', () => {
    const a = simulate({ seed: 1, periods: 20 });
    const b = simulate({ seed: 2, periods: 20 });
    assert.notEqual(a.traceHash, b.traceHash);
  });

  it('keeps the pinned trace hashes of test/sim/golden.json', async () => {
    const golden = readGolden();
    const unpinned = golden.runs.filter((r) => r.hash === null);
    const computed = await Promise.all(golden.runs.map((r) => runJob(goldenJob(r))));
    const changed = golden.runs
      .map((r, i) => ({ ...r, now: computed[i]?.traceHash }))
      .filter((r) => r.hash !== null && r.hash !== r.now)
      .map((r) => `seed ${r.seed} ${r.profile}: pinned ${r.hash ?? ''}, now ${r.now ?? ''}`);
    assert.deepEqual(
      changed,
      [],
      `trace hashes changed; if the change of behaviour is intended, regenerate ${GOLDEN_PATH} ` +
        '(npm run -s sim -- --golden > test/sim/golden.json.new && mv test/sim/golden.json.new test/sim/golden.json)',
    );
    assert.deepEqual(
      unpinned.map((r) => `seed ${r.seed} ${r.profile}`),
      [],
      'golden runs without a pinned hash',
    );
  });
});
