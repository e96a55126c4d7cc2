import assert from 'node:assert/strict';
import fc from 'fast-check';
import { InvariantError } from '../../lib/errors.js';
import {
  overlappingWindows,
  tokensOutOfOrder,
  type GrantRecord,
  type HolderWindow,
} from '../../lib/testing/sim/lock-windows.js';

const RUNS = { numRuns: 300, seed: 0x3140_5eed } as const;

function win(client: string, token: bigint, start: number, end: number, name = 'L'): HolderWindow {
  return { name, client, token, start, end };
}

function grant(token: bigint, applyIndex: number, name = 'L'): GrantRecord {
  return { name, token, applyIndex };
}

/** Per name, windows laid end to end (some touching, some with gaps, some empty), shuffled. */
const disjointWindows: fc.Arbitrary<HolderWindow[]> = fc
  .array(
    fc.record({
      name: fc.constantFrom('a', 'b', 'c'),
      gap: fc.integer({ min: 0, max: 5 }),
      length: fc.integer({ min: 0, max: 20 }),
    }),
    { minLength: 2, maxLength: 60 },
  )
  .map((parts) => {
    const ends = new Map<string, number>();
    return parts.map(({ name, gap, length }, i) => {
      const start = (ends.get(name) ?? 0) + gap;
      ends.set(name, start + length);
      return win(`c${i}`, BigInt(i), start, start + length, name);
    });
  });

describe('lock validity windows (G1)', () => {
  it('reports two windows of one name that overlap', () => {
    const a = win('x', 1n, 0, 100);
    const b = win('y', 2n, 50, 150);
    assert.deepEqual(overlappingWindows([a, b]), { a, b });
    assert.deepEqual(overlappingWindows([b, a]), { a, b });
  });

  it('reports a short window inside a longer one', () => {
    const long = win('x', 1n, 0, 1000);
    const windows = [long, win('y', 2n, 1000, 1010), win('z', 3n, 10, 20)];
    assert.deepEqual(overlappingWindows(windows), { a: long, b: windows[2] });
  });

  it('reports a window still valid at the end of the run overlapping a later one', () => {
    const open = win('x', 1n, 0, Infinity);
    const later = win('y', 2n, 5000, 6000);
    assert.deepEqual(overlappingWindows([later, open]), { a: open, b: later });
  });

  it('accepts a window that starts the instant the previous one ends', () => {
    assert.equal(overlappingWindows([win('x', 1n, 0, 100), win('y', 2n, 100, 200)]), null);
  });

  it('accepts overlapping windows of different names', () => {
    assert.equal(overlappingWindows([win('x', 1n, 0, 100, 'A'), win('y', 2n, 50, 150, 'B')]), null);
  });

  it('ignores empty windows, which contain no instant', () => {
    assert.equal(overlappingWindows([win('x', 1n, 0, 100), win('y', 2n, 50, 50)]), null);
  });

  it('rejects a window that ends before it starts', () => {
    assert.throws(() => overlappingWindows([win('x', 1n, 10, 5)]), InvariantError);
    assert.throws(() => overlappingWindows([win('x', 1n, Number.NaN, 5)]), InvariantError);
  });

  it('accepts random disjoint windows, and rejects them with one window stretched', () => {
    fc.assert(
      fc.property(disjointWindows, fc.nat(), fc.nat(), (windows, pick, seed) => {
        assert.equal(overlappingWindows(windows), null);
        // Stretch a non-empty window over the start of the next non-empty one of its name.
        const later = windows.filter((w) => w.end > w.start);
        const pairs = later.flatMap((w) =>
          later
            .filter((v) => v.name === w.name && v.start >= w.end)
            .sort((x, y) => x.start - y.start)
            .slice(0, 1)
            .map((v) => [w, v] as const),
        );
        fc.pre(pairs.length > 0);
        const [w, v] = pairs[pick % pairs.length]!;
        const stretched = { ...w, end: v.start + 1 + (seed % 10) };
        const broken = windows.map((x) => (x === w ? stretched : x));
        const found = overlappingWindows(broken);
        assert.ok(found !== null);
        assert.equal(found.a.name, w.name);
        assert.ok(found.b.start < found.a.end && found.a.start < found.b.end);
      }),
      RUNS,
    );
  });

  it('finds an overlap among 100,000 windows', () => {
    const windows: HolderWindow[] = [];
    for (let i = 0; i < 100_000; i++) windows.push(win(`c${i}`, BigInt(i), i * 10, i * 10 + 10));
    windows.reverse();
    const started = performance.now();
    assert.equal(overlappingWindows(windows), null);
    windows.push(win('late', 0n, 555_555, 555_556));
    assert.equal(overlappingWindows(windows)?.b.client, 'late');
    console.log(`      2 × 100,000 windows in ${(performance.now() - started).toFixed(0)} ms`);
  });
});

describe('fencing tokens (G2)', () => {
  it('reports a token that goes down, across names', () => {
    const earlier = grant(5n, 3, 'A');
    const later = grant(4n, 7, 'B');
    assert.deepEqual(tokensOutOfOrder([grant(1n, 1, 'B'), later, earlier]), { earlier, later });
  });

  it('reports a token granted twice', () => {
    const earlier = grant(5n, 3, 'A');
    const later = grant(5n, 4, 'A');
    assert.deepEqual(tokensOutOfOrder([later, earlier]), { earlier, later });
  });

  it('names the largest earlier token, not just the previous one', () => {
    const top = grant(9n, 2);
    const later = grant(8n, 4);
    assert.deepEqual(tokensOutOfOrder([grant(1n, 1), top, grant(10n, 3, 'B'), later]), {
      earlier: grant(10n, 3, 'B'),
      later,
    });
    assert.deepEqual(tokensOutOfOrder([grant(1n, 1), top, later]), { earlier: top, later });
  });

  it('accepts increasing tokens with gaps, in any input order', () => {
    assert.equal(tokensOutOfOrder([grant(7n, 9), grant(2n, 1, 'B'), grant(3n, 4)]), null);
    assert.equal(tokensOutOfOrder([]), null);
  });

  it('accepts distinct tokens at one apply index, and rejects equal ones', () => {
    assert.equal(tokensOutOfOrder([grant(3n, 2, 'B'), grant(2n, 2, 'A'), grant(4n, 3)]), null);
    assert.notEqual(tokensOutOfOrder([grant(2n, 2, 'B'), grant(2n, 2, 'A')]), null);
  });

  it('rejects a grant without a whole apply index', () => {
    assert.throws(() => tokensOutOfOrder([grant(1n, Number.NaN)]), InvariantError);
    assert.throws(() => tokensOutOfOrder([grant(1n, 1.5)]), InvariantError);
  });

  it('accepts random increasing tokens, and rejects them with two swapped', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            step: fc.bigInt({ min: 1n, max: 1n << 40n }),
            index: fc.integer({ min: 1, max: 3 }),
            name: fc.constantFrom('a', 'b'),
          }),
          { minLength: 2, maxLength: 80 },
        ),
        fc.nat(),
        fc.nat(),
        (parts, i, j) => {
          let token = 1n << 52n;
          let index = 0;
          const grants = parts.map(({ step, index: di, name }) => {
            token += step;
            index += di;
            return grant(token, index, name);
          });
          assert.equal(tokensOutOfOrder([...grants].reverse()), null);
          const a = i % grants.length;
          const b = j % grants.length;
          fc.pre(a !== b);
          const [lo, hi] = a < b ? [a, b] : [b, a];
          const broken = [...grants];
          broken[lo] = { ...grants[lo]!, token: grants[hi]!.token };
          broken[hi] = { ...grants[hi]!, token: grants[lo]!.token };
          const found = tokensOutOfOrder(broken);
          assert.ok(found !== null);
          assert.ok(found.later.token <= found.earlier.token);
          assert.ok(found.earlier.applyIndex <= found.later.applyIndex);
        },
      ),
      RUNS,
    );
  });
});
