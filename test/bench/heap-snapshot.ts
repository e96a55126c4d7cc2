/**
 * What grew between two V8 heap snapshots (`.heapsnapshot`, e.g. the lock bench's
 * `--heap-snapshot`): live bytes and object counts by kind, largest growth first.
 *
 *   node dist-test/test/bench/heap-snapshot.js <before> <after> [--per <n>] [--top 30]
 *
 * `--per n` divides the growth by n (bytes and objects per held lock, say). Objects are grouped
 * by constructor name; arrays, strings, closures, code and V8's hidden objects by kind.
 */
import { readFileSync } from 'node:fs';
import process from 'node:process';
import { pathToFileURL } from 'node:url';

interface HeapSnapshot {
  readonly snapshot: {
    readonly meta: {
      readonly node_fields: readonly string[];
      readonly node_types: readonly [readonly string[], ...unknown[]];
    };
  };
  readonly nodes: readonly number[];
  readonly strings: readonly string[];
}

export interface HeapKind {
  readonly kind: string;
  readonly bytes: number;
  readonly count: number;
}

/** Live bytes and counts by kind. */
export function heapByKind(snapshot: HeapSnapshot): Map<string, { bytes: number; count: number }> {
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const kinds = new Map<string, { bytes: number; count: number }>();
  const { nodes, strings } = snapshot;
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt] ?? 0] ?? '?';
    const name = strings[nodes[i + nameAt] ?? 0] ?? '?';
    const size = nodes[i + sizeAt] ?? 0;
    let kind: string;
    if (type === 'object') kind = name;
    else if (type === 'array' || type === 'hidden' || type === 'native') kind = `(${type}) ${name}`;
    else if (type.includes('string')) kind = '(string)';
    else kind = `(${type})`;
    const k = kinds.get(kind) ?? { bytes: 0, count: 0 };
    k.bytes += size;
    k.count += 1;
    kinds.set(kind, k);
  }
  return kinds;
}

export function heapGrowth(before: HeapSnapshot, after: HeapSnapshot): HeapKind[] {
  const a = heapByKind(before);
  const b = heapByKind(after);
  const kinds = new Set([...a.keys(), ...b.keys()]);
  return [...kinds]
    .map((kind) => ({
      kind,
      bytes: (b.get(kind)?.bytes ?? 0) - (a.get(kind)?.bytes ?? 0),
      count: (b.get(kind)?.count ?? 0) - (a.get(kind)?.count ?? 0),
    }))
    .sort((x, y) => y.bytes - x.bytes);
}

function load(path: string): HeapSnapshot {
  return JSON.parse(readFileSync(path, 'utf8')) as HeapSnapshot;
}

function main(): void {
  const [before, after] = process.argv.slice(2, 4);
  if (before === undefined || after === undefined) {
    throw new Error('usage: heap-snapshot.js <before> <after> [--per n] [--top 30]');
  }
  const perAt = process.argv.indexOf('--per');
  const per = perAt < 0 ? 1 : Number(process.argv[perAt + 1]);
  const topAt = process.argv.indexOf('--top');
  const top = topAt < 0 ? 30 : Number(process.argv[topAt + 1]);
  const growth = heapGrowth(load(before), load(after));
  const total = growth.reduce((sum, g) => sum + g.bytes, 0);
  console.log(
    `${after} − ${before}: ${(total / 1024 / 1024).toFixed(1)} MB` +
      (per === 1 ? '' : `, ${(total / per).toFixed(0)} bytes per ${per === 1 ? '' : 'unit'}`),
  );
  console.log(
    `  ${'bytes'.padStart(12)} ${'objects'.padStart(10)}${per === 1 ? '' : '  per unit: bytes, objects'}`,
  );
  for (const g of growth.slice(0, top)) {
    const unit =
      per === 1
        ? ''
        : `  ${(g.bytes / per).toFixed(0).padStart(6)} ${(g.count / per).toFixed(2).padStart(6)}`;
    console.log(
      `  ${String(g.bytes).padStart(12)} ${String(g.count).padStart(10)}${unit}  ${g.kind}`,
    );
  }
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) main();
