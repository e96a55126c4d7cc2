import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  killAll,
  sigtermLeader,
  startNodes,
  until,
  type CliNode,
  type Command,
} from './cli-harness.js';

/**
 * The package as a user gets it before it is published: `npm pack` (which builds `dist/` with
 * the `prepare` script), then `npm install <tarball>` into an empty project of its own, offline
 * from the npm cache `npm ci` filled. The installed package must import from every entry point,
 * type-check a strict NodeNext consumer with the repository's own `tsc`, and run its `synod`
 * bin; and three nodes started as a supervisor starts them (the bin itself, no npm in between)
 * must hand leadership on when the leader's process gets SIGTERM.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TSC = join(ROOT, 'node_modules', '.bin', 'tsc');
/** npm pack (one tsc build), an install and a tsc check, on a small and busy machine. */
const SETUP_BOUND_MS = 240_000;
/** One command of the setup. */
const COMMAND_BOUND_MS = 180_000;
const LEASE_MS = 2000;
/** A lapsed lease takes at least two thirds of one to be taken over; a handoff a few delays. */
const HANDOFF_BOUND_MS = LEASE_MS / 2;
const ELECTION_BOUND_MS = 15_000;

interface PackageJson {
  readonly name: string;
  readonly version: string;
  readonly license: string;
  readonly engines: Record<string, string>;
  readonly bin: Record<string, string>;
  readonly dependencies: Record<string, string>;
  readonly exports: Record<string, string | Record<string, string>>;
}

const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson;

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/**
 * The environment without what `npm test` sets for its scripts (`npm_package_*`,
 * `npm_config_local_prefix`, …), so that npm in the empty project sees that project; the cache
 * stays the one `npm ci` filled.
 */
function npmEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(
      ([key]) => !key.toLowerCase().startsWith('npm_') || key.toLowerCase() === 'npm_config_cache',
    ),
  );
}

/** Runs `file args` in `cwd` to its exit (killed after `COMMAND_BOUND_MS`). */
async function run(file: string, args: readonly string[], cwd: string): Promise<Run> {
  const started = performance.now();
  const child = spawn(file, args, { cwd, env: npmEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_BOUND_MS);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  clearTimeout(timer);
  return { code, stdout, stderr, ms: performance.now() - started };
}

function assertRan(result: Run, what: string): void {
  assert.equal(
    result.code,
    0,
    `${what} failed (status ${String(result.code)}):\n${result.stdout}\n${result.stderr}`,
  );
}

/**
 * A lockfile for the empty project: the package from the tarball, and its dependencies at
 * exactly the versions the repository's lockfile has (the non-dev entries), which `npm ci`
 * put in the cache. Without it, an offline install would have to resolve the ranges from
 * registry metadata, which `npm ci` does not necessarily cache.
 */
function consumerLockfile(tarball: string): unknown {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; devOptional?: boolean }>;
  };
  const spec = `file:../${tarball}`;
  const packages: Record<string, unknown> = {
    '': { name: 'consumer', dependencies: { [PKG.name]: spec } },
    [`node_modules/${PKG.name}`]: {
      version: PKG.version,
      resolved: spec,
      license: PKG.license,
      dependencies: PKG.dependencies,
      bin: PKG.bin,
      engines: PKG.engines,
    },
  };
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === '' || entry.dev === true || entry.devOptional === true) continue;
    packages[path] = entry;
  }
  return { name: 'consumer', lockfileVersion: 3, requires: true, packages };
}

/** Every file and path `exports` and `bin` name, without the leading `./`. */
function declaredFiles(): string[] {
  const targets: string[] = Object.values(PKG.bin);
  for (const target of Object.values(PKG.exports)) {
    targets.push(...(typeof target === 'string' ? [target] : Object.values(target)));
  }
  return targets.map((t) => t.replace(/^\.\//, ''));
}

/** The entry points (`synod`, `synod/adapters/memory`, …) that `exports` names, but package.json. */
const ENTRY_POINTS = Object.keys(PKG.exports)
  .filter((key) => key !== './package.json')
  .map((key) => (key === '.' ? PKG.name : `${PKG.name}/${key.slice(2)}`));

/** The test build's own module for an entry point, to compare the installed one with. */
function sourceModule(entry: string): string {
  const target = PKG.exports[entry === PKG.name ? '.' : `./${entry.slice(PKG.name.length + 1)}`];
  assert.ok(target !== undefined && typeof target !== 'string');
  const file = target['default'];
  assert.ok(file !== undefined);
  return new URL(`../../${file.replace(/^\.\/dist\//, '')}`, import.meta.url).href;
}

/** A strict consumer of every entry point; `@ts-expect-error` lines fail if a type is `any`. */
const CONSUMER_TS = `\
import {
  ConfigError,
  createNode,
  DEFAULTS,
  type LeaderChange,
  type LeaderInfo,
  type NodeOptions,
  type NodeStats,
  type SynodNode,
} from 'synod';
import { MemoryNetwork, MemoryStorage, type MemoryNetworkOptions } from 'synod/adapters/memory';
import {
  CLOSE_CODES,
  WebSocketTransport,
  type ConnectionInfo,
  type WebSocketTransportOptions,
  type WebSocketTransportStats,
} from 'synod/adapters/websocket';
import { createTestCluster, simulate, VirtualClock, type SimResult } from 'synod/testing';

const ids = ['a', 'b', 'c'];
const networkOptions: MemoryNetworkOptions = { delayMs: [1, 3] };
const network = new MemoryNetwork(networkOptions);
const options: NodeOptions = {
  id: 'a',
  peers: ids,
  transport: network.transport('a', ids),
  storage: new MemoryStorage(),
  leaseMs: DEFAULTS.leaseMs,
};
const node: SynodNode = createNode(options);
node.onLeader(async ({ term, signal, stillLeader }: LeaderInfo) => {
  if (stillLeader() && !signal.aborted) console.log(term.toFixed(0));
  await Promise.resolve();
});
node.on('leaderChange', (change: LeaderChange) => {
  const leader: string | null = change.leaderId;
  console.log(leader);
});
const stats: NodeStats = node.stats();
const frames: number = stats.framesIn;

try {
  createNode({ ...options, leaseMs: -1 });
} catch (error) {
  if (error instanceof ConfigError) console.log(error.code);
}
// @ts-expect-error leaseMs is a number
createNode({ ...options, leaseMs: '1000' });
// @ts-expect-error an unknown option
createNode({ ...options, leaseMillis: 1000 });

const wsOptions: Partial<WebSocketTransportOptions> = { secret: 'x'.repeat(32) };
const connections: ConnectionInfo[] = [];
const wsStats: WebSocketTransportStats | null = null;
const closeCode: number = CLOSE_CODES.duplicate;

const clock = new VirtualClock();
const result: SimResult = simulate({ seed: 1 });
console.log(frames, wsOptions, connections, wsStats, closeCode, clock, result, WebSocketTransport);
console.log(createTestCluster);
`;

const CONSUMER_TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    lib: ['ES2023'],
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    types: ['node'],
    strict: true,
    noUncheckedIndexedAccess: true,
    exactOptionalPropertyTypes: true,
    verbatimModuleSyntax: true,
    skipLibCheck: false,
    noEmit: true,
  },
  files: ['consumer.ts'],
};

describe('the packed package, installed in an empty project', function () {
  this.timeout(SETUP_BOUND_MS);
  let tmp = '';
  let app = '';
  let packed: { filename: string; files: { path: string }[] } | undefined;
  const timings: string[] = [];

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'synod-pack-'));
    app = join(tmp, 'app');

    const pack = await run('npm', ['pack', '--json', '--pack-destination', tmp], ROOT);
    assertRan(pack, 'npm pack');
    timings.push(`npm pack (with prepare) ${(pack.ms / 1000).toFixed(1)} s`);
    [packed] = JSON.parse(pack.stdout) as [typeof packed];
    assert.ok(packed !== undefined);
    const tarball = basename(packed.filename);

    mkdirSync(app);
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
    );
    writeFileSync(join(app, 'package-lock.json'), JSON.stringify(consumerLockfile(tarball)));
    const flags = ['--no-audit', '--no-fund'];
    let install = await run('npm', ['install', '--offline', ...flags, `../${tarball}`], app);
    let how = 'offline';
    if (install.code !== 0) {
      // The cache lacks something: the registry can still be reached.
      how = `online, offline failed: ${install.stderr.split('\n')[0] ?? ''}`;
      install = await run('npm', ['install', ...flags, `../${tarball}`], app);
    }
    assertRan(install, 'npm install');
    timings.push(`npm install ${(install.ms / 1000).toFixed(1)} s (${how})`);

    // The consumer's own @types/node, as any TypeScript project on Node.js has.
    mkdirSync(join(app, 'node_modules', '@types'), { recursive: true });
    symlinkSync(
      join(ROOT, 'node_modules', '@types', 'node'),
      join(app, 'node_modules', '@types', 'node'),
      'dir',
    );
  });

  after(() => {
    if (timings.length > 0) console.log(`      ${timings.join('; ')}`);
    if (tmp !== '') rmSync(tmp, { recursive: true, force: true });
  });

  it('holds the build of lib/ and adapters/, the README and the LICENSE, and nothing else', () => {
    assert.ok(packed !== undefined);
    const paths = packed.files.map((f) => f.path);
    for (const path of paths) {
      assert.match(path, /^(package\.json|README\.md|LICENSE|dist\/(lib|adapters)\/.+)$/);
      assert.doesNotMatch(path, /\.test\.|\.tsbuildinfo$|\.d\.ts\.map$/);
    }
    for (const path of ['package.json', 'README.md', 'LICENSE', ...declaredFiles()]) {
      assert.ok(paths.includes(path), `${path} is in the package`);
    }
    // Source maps carry their sources: the TypeScript files themselves are not shipped.
    const installed = join(app, 'node_modules', PKG.name);
    const maps = paths.filter((p) => p.endsWith('.js.map'));
    assert.ok(maps.length > 0);
    for (const map of maps) {
      const { sources, sourcesContent } = JSON.parse(
        readFileSync(join(installed, map), 'utf8'),
      ) as { sources: string[]; sourcesContent?: (string | null)[] };
      assert.equal(sourcesContent?.length, sources.length, `${map} has its sources inline`);
      assert.ok(sourcesContent.every((s) => typeof s === 'string' && s.length > 0));
    }
  });

  it('imports every entry point, with the same exports as the sources', async () => {
    const imports = ENTRY_POINTS.map((e, i) => `import * as m${String(i)} from '${e}';`);
    const names = ENTRY_POINTS.map((_, i) => `Object.keys(m${String(i)}).sort()`);
    writeFileSync(
      join(app, 'check.mjs'),
      `${imports.join('\n')}\nconsole.log(JSON.stringify([${names.join(', ')}]));\n`,
    );
    const check = await run(process.execPath, ['check.mjs'], app);
    assertRan(check, 'importing the entry points');
    const exported = JSON.parse(check.stdout) as string[][];
    for (const [i, entry] of ENTRY_POINTS.entries()) {
      const source = (await import(sourceModule(entry))) as Record<string, unknown>;
      assert.deepEqual(exported[i], Object.keys(source).sort(), `the exports of ${entry}`);
    }
    assert.deepEqual(ENTRY_POINTS, [
      'synod',
      'synod/adapters/memory',
      'synod/adapters/websocket',
      'synod/adapters/file',
      'synod/testing',
    ]);
  });

  it("type-checks a strict NodeNext consumer of every entry point with the repository's tsc", async () => {
    writeFileSync(join(app, 'consumer.ts'), CONSUMER_TS);
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify(CONSUMER_TSCONFIG));
    const tsc = await run(TSC, ['-p', 'tsconfig.json'], app);
    timings.push(`tsc on the consumer ${(tsc.ms / 1000).toFixed(1)} s`);
    assertRan(tsc, 'tsc');
  });

  it('installs the synod bin as an executable node script that runs', async () => {
    const bin = join(app, 'node_modules', '.bin', 'synod');
    const target = realpathSync(bin);
    const declared = PKG.bin['synod'];
    assert.ok(declared !== undefined);
    assert.equal(target, realpathSync(join(app, 'node_modules', PKG.name, declared)));
    assert.ok((statSync(target).mode & 0o111) !== 0, 'executable');
    assert.equal(readFileSync(target, 'utf8').split('\n')[0], '#!/usr/bin/env node');

    const help = await run(bin, ['--help'], app);
    assertRan(help, 'synod --help');
    assert.match(help.stdout, /synod node --id/);
    const version = await run(bin, ['--version'], app);
    assertRan(version, 'synod --version');
    assert.equal(version.stdout, `synod ${PKG.version}\n`);
  });

  describe('under a supervisor that starts node_modules/.bin/synod itself', () => {
    let nodes: CliNode[] = [];

    afterEach(async function () {
      if (this.currentTest?.state === 'failed') {
        console.error(nodes.map((n) => n.describe()).join('\n'));
      }
      await killAll(nodes);
      nodes = [];
    });

    it('SIGTERM to the process it started stops the leader, which hands leadership on', async () => {
      const command: Command = { file: join(app, 'node_modules', '.bin', 'synod'), args: [] };
      nodes = await startNodes(command, ['a', 'b', 'c'], LEASE_MS);
      await until(
        'every node to start',
        () => nodes.every((n) => n.lines.some((l) => l.event === 'started')) || undefined,
        ELECTION_BOUND_MS,
        nodes,
      );
      // The pid the supervisor holds is Node.js itself: no npm and no shell in between.
      if (existsSync('/proc/self/exe')) {
        for (const n of nodes) {
          const exe = readlinkSync(`/proc/${String(n.child.pid)}/exe`);
          assert.match(basename(exe), /^node/, `${n.id} runs as ${exe}`);
        }
      }
      const { handoffMs } = await sigtermLeader(nodes, ELECTION_BOUND_MS);
      timings.push(`handoff ${handoffMs.toFixed(1)} ms`);
      assert.ok(
        handoffMs < HANDOFF_BOUND_MS,
        `the successor led ${handoffMs.toFixed(0)} ms after the signal: not a handoff`,
      );
    });
  });
});
