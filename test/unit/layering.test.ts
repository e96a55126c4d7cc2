import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * How the source folders may depend on one another, read from the import lines of the sources
 * (type-only imports included: they tie declarations together just the same).
 */

/** The repository root, from dist-test/test/unit. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Every .ts file under `folder`, as a path from the root, with the modules it imports. */
function sources(folder: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const entries = readdirSync(join(ROOT, folder), { recursive: true, withFileTypes: true });
  for (const entry of entries) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
    const file = relative(ROOT, join(entry.parentPath, entry.name));
    const text = readFileSync(join(ROOT, file), 'utf8');
    const imports: string[] = [];
    for (const match of text.matchAll(/^(?:import|export)\b[^;]*?\bfrom '(\.[^']+)'/gms)) {
      const target = match[1] ?? '';
      imports.push(normalize(join(dirname(file), target)).replace(/\.js$/, '.ts'));
    }
    graph.set(file, imports);
  }
  return graph;
}

/** The runtime and the core: what an adapter must not reach into. */
function isRuntime(file: string): boolean {
  return (
    /^lib\/(node|cli|testing|lease|paxos)\//.test(file) ||
    file === 'lib/options.ts' ||
    file === 'lib/index.ts'
  );
}

describe('layering', function () {
  const graph = new Map([...sources('lib'), ...sources('adapters')]);

  it('reads the sources', function () {
    assert.ok(graph.has('lib/transport.ts') && graph.has('adapters/websocket/transport.ts'));
  });

  it('keeps adapters on the transport contract and shared modules, never the runtime', function () {
    const reaches: string[] = [];
    for (const [file, imports] of graph) {
      if (!file.startsWith('adapters/')) continue;
      for (const target of imports) if (isRuntime(target)) reaches.push(`${file} → ${target}`);
    }
    assert.deepEqual(reaches, []);
  });

  it('has no import cycle between modules of different folders', function () {
    const crossing: string[] = [];
    // A cycle through two folders shows as a pair of modules that reach each other, one of them
    // in another folder than the other.
    const reach = (from: string): Set<string> => {
      const seen = new Set<string>();
      const todo = [...(graph.get(from) ?? [])];
      for (let next = todo.pop(); next !== undefined; next = todo.pop()) {
        if (seen.has(next)) continue;
        seen.add(next);
        todo.push(...(graph.get(next) ?? []));
      }
      return seen;
    };
    const reachable = new Map([...graph.keys()].map((file) => [file, reach(file)]));
    for (const [file, imports] of graph) {
      for (const target of imports) {
        if (dirname(target) === dirname(file)) continue;
        if (reachable.get(target)?.has(file) === true) crossing.push(`${file} ⇄ ${target}`);
      }
    }
    assert.deepEqual(crossing, []);
  });
});
