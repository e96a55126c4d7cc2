import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Every example runs to its end with the one command the README gives for it,
 * `npm run example -- NAME`: the script compiles lib/, adapters/ and examples/ into the test
 * build (which `npm test` has just made whole) and runs `dist-test/examples/run.js NAME`, which
 * this test runs for each `examples/*.ts`.
 */

const ROOT = new URL('../../../', import.meta.url);
const RUNNER = fileURLToPath(new URL('examples/run.js', new URL('dist-test/', ROOT)));
/** The demo's own guard is 60 s; the examples take about 3 s and 8 s. */
const EXAMPLE_BOUND_MS = 90_000;

/** The examples, as the sources name them. */
const EXAMPLES = readdirSync(new URL('examples/', ROOT))
  .filter((file) => file.endsWith('.ts') && file !== 'run.ts')
  .map((file) => file.slice(0, -'.ts'.length))
  .sort();

/** What each example prints last when all went as it shows. */
const LAST_LINES: Record<string, RegExp> = {
  demo: /^Summary \(leaseMs 1000\): first leader .* handoff [\d.]+ ms\.$/,
  'leader-election': /^all nodes stopped$/,
  fencing: /^the stale write was refused$/,
};

async function runner(
  args: readonly string[],
): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [RUNNER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), EXAMPLE_BOUND_MS);
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => {
    child.once('close', (status, sig) => {
      resolve([status, sig]);
    });
  });
  clearTimeout(timer);
  return { code, signal, stdout, stderr };
}

describe('the examples', function () {
  this.timeout(EXAMPLE_BOUND_MS + 10_000);

  it('are run by `npm run example -- NAME`, which lists them without a name', async () => {
    const pkg = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')) as {
      scripts: Record<string, string>;
    };
    assert.equal(
      pkg.scripts['example'],
      'tsc -p tsconfig.examples.json && node dist-test/examples/run.js',
    );
    assert.equal(pkg.scripts['demo'], 'npm run -s example -- demo');
    assert.deepEqual(EXAMPLES, Object.keys(LAST_LINES).sort(), 'every example has a check');

    const list = await runner([]);
    assert.equal(list.code, 0);
    assert.equal(
      list.stdout,
      `npm run example -- NAME, where NAME is one of: ${EXAMPLES.join(', ')}\n`,
    );
    const unknown = await runner(['no-such-example']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^no example named "no-such-example"\n/);
  });

  for (const name of EXAMPLES) {
    it(`${name} runs to its end and exits 0`, async () => {
      const result = await runner([name]);
      const output = `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
      assert.deepEqual([result.code, result.signal], [0, null], output);
      const last = result.stdout.trimEnd().split('\n').at(-1) ?? '';
      assert.match(last, LAST_LINES[name] ?? /^$/, output);
    });
  }
});
