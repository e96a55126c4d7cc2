import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ConfigError, InvariantError } from '../../lib/errors.js';
import { createRng, randomInt, type Rng } from '../../lib/random.js';
import {
  checkLinearizable,
  type LinearizabilityResult,
  type LockHistoryOp,
} from '../../lib/testing/sim/lock-history.js';

const RUNS = { numRuns: 300, seed: 0x10c4_5eed } as const;

function acq(
  client: string,
  token: bigint | null,
  invokedAt: number,
  respondedAt: number | null,
  name = 'L',
): LockHistoryOp {
  return { type: 'acquire', client, name, token, invokedAt, respondedAt };
}

function rel(
  client: string,
  token: bigint,
  invokedAt: number,
  respondedAt: number | null,
  result: 'released' | 'not-held' | null,
  name = 'L',
): LockHistoryOp {
  return { type: 'release', client, name, token, invokedAt, respondedAt, result };
}

function exp(token: bigint, invokedAt: number, respondedAt: number, name = 'L'): LockHistoryOp {
  return { type: 'expire', name, token, invokedAt, respondedAt };
}

function assertOk(result: LinearizabilityResult): void {
  assert.deepEqual(result, { ok: true });
}

function assertFails(result: LinearizabilityResult, name = 'L'): string {
  assert.equal(result.ok, false, 'expected a violation');
  assert.equal(result.name, name);
  return result.explanation;
}

// A sequential lock model with random delays: each op takes effect at its own instant (its
// linearization point, strictly increasing), and is invoked before and answered after it. The
// points witness that the history is linearizable.

interface GenOptions {
  readonly names: number;
  readonly clients: number;
  /** Grants made; each is followed by its end (except, maybe, the last of each name). */
  readonly grants: number;
  /** Longest invocation-to-effect and effect-to-response delay of a release or expire. */
  readonly delay: number;
  /** Longest wait of an acquire, from its invocation to its grant (the queue). */
  readonly wait: number;
  /** Add no-op ops: not-held releases, acquires that got nothing, unanswered stale releases. */
  readonly noise: boolean;
}

function generate(rng: Rng, o: GenOptions): LockHistoryOp[] {
  const ops: LockHistoryOp[] = [];
  const chance = (p: number): boolean => rng.next() < p;
  const pick = <T>(xs: readonly T[]): T => xs[randomInt(rng, 0, xs.length - 1)]!;
  const clients = Array.from({ length: o.clients }, (_, i) => `c${i}`);
  const names = Array.from({ length: o.names }, (_, i) => `lock-${i}`);
  const holders = new Map<string, { token: bigint; client: string } | null>();
  const ended = new Map<string, bigint[]>(names.map((n) => [n, []]));
  let t = 1000;
  let counter = 0n;
  let granted = 0;
  const around = (max: number): [number, number] => [
    t - randomInt(rng, 0, max),
    t + randomInt(rng, 0, max),
  ];
  while (granted < o.grants) {
    t += randomInt(rng, 1, 3);
    const name = pick(names);
    const holder = holders.get(name) ?? null;
    if (holder === null) {
      counter += BigInt(randomInt(rng, 1, 3));
      const client = pick(clients);
      const invokedAt = t - randomInt(rng, 0, o.wait);
      // A grant whose answer never came (the client crashed or gave up): the log says it won.
      const respondedAt = chance(0.05) ? null : t + randomInt(rng, 0, o.delay);
      ops.push(acq(client, counter, invokedAt, respondedAt, name));
      holders.set(name, { token: counter, client });
      granted++;
    } else {
      const [invokedAt, respondedAt] = around(o.delay);
      const r = rng.next();
      if (r < 0.6)
        ops.push(rel(holder.client, holder.token, invokedAt, respondedAt, 'released', name));
      else if (r < 0.7) ops.push(rel(holder.client, holder.token, invokedAt, null, null, name));
      else ops.push(exp(holder.token, invokedAt, respondedAt, name));
      holders.set(name, null);
      ended.get(name)!.push(holder.token);
    }
    if (o.noise && chance(0.3)) {
      t += randomInt(rng, 1, 3);
      const old = ended.get(name)!;
      const [invokedAt, respondedAt] = around(o.delay);
      const r = rng.next();
      if (r < 0.4 && old.length > 0) {
        ops.push(rel(pick(clients), pick(old), invokedAt, respondedAt, 'not-held', name));
      } else if (r < 0.6 && old.length > 0) {
        ops.push(rel(pick(clients), pick(old), invokedAt, null, null, name));
      } else if (r < 0.8) {
        // A token no grant of this name ever had.
        ops.push(rel(pick(clients), -1n - counter, invokedAt, respondedAt, 'not-held', name));
      } else {
        const waited = t - randomInt(rng, 0, o.wait);
        ops.push(acq(pick(clients), null, waited, chance(0.5) ? null : respondedAt, name));
      }
    }
  }
  return ops;
}

const genOptions: fc.Arbitrary<GenOptions> = fc.record({
  names: fc.integer({ min: 1, max: 3 }),
  clients: fc.integer({ min: 1, max: 8 }),
  grants: fc.integer({ min: 10, max: 80 }),
  delay: fc.integer({ min: 0, max: 8 }),
  wait: fc.integer({ min: 0, max: 40 }),
  noise: fc.boolean(),
});

function shuffle<T>(rng: Rng, xs: readonly T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = randomInt(rng, 0, i);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

type Acquire = Extract<LockHistoryOp, { type: 'acquire' }>;

const isGrant = (op: LockHistoryOp): op is Acquire & { token: bigint } =>
  op.type === 'acquire' && op.token !== null;

/** An op that must end its token's grant: an expire, or a release answered `released`. */
const isEnder = (op: LockHistoryOp): boolean =>
  op.type === 'expire' || (op.type === 'release' && op.result === 'released');

/**
 * Swaps the tokens of two grants of one name where the one with the smaller token answered
 * before the other was invoked: the grant now carrying the larger token must come first, so the
 * smaller one can never be granted after it.
 */
function swapTokens(rng: Rng, ops: readonly LockHistoryOp[]): LockHistoryOp[] | null {
  const pairs: [number, number][] = [];
  ops.forEach((a, i) => {
    if (!isGrant(a) || a.respondedAt === null) return;
    ops.forEach((b, j) => {
      if (isGrant(b) && b.name === a.name && a.respondedAt! < b.invokedAt && a.token < b.token) {
        pairs.push([i, j]);
      }
    });
  });
  if (pairs.length === 0) return null;
  const [i, j] = pairs[randomInt(rng, 0, pairs.length - 1)]!;
  const a = ops[i] as Acquire;
  const b = ops[j] as Acquire;
  const out = [...ops];
  out[i] = { ...a, token: b.token };
  out[j] = { ...b, token: a.token };
  return out;
}

/**
 * Moves a grant's response before the invocation of an op that must end an earlier grant of the
 * same name: the earlier token must be held when that op takes effect, which is only possible
 * before the later grant, and the later grant now answers before the op is even invoked.
 */
function moveResponse(rng: Rng, ops: readonly LockHistoryOp[]): LockHistoryOp[] | null {
  const pairs: [number, number][] = [];
  ops.forEach((e, i) => {
    if (!isEnder(e) || e.type === 'acquire') return;
    ops.forEach((b, j) => {
      if (isGrant(b) && b.name === e.name && b.token > e.token && b.invokedAt < e.invokedAt) {
        pairs.push([i, j]);
      }
    });
  });
  if (pairs.length === 0) return null;
  const [i, j] = pairs[randomInt(rng, 0, pairs.length - 1)]!;
  const e = ops[i]!;
  const b = ops[j] as Acquire;
  const out = [...ops];
  out[j] = { ...b, respondedAt: randomInt(rng, b.invokedAt, e.invokedAt - 1) };
  return out;
}

/**
 * Turns a `not-held` answer into `released` for a token whose grant another op must end (or
 * that this name never granted): a token is held once, so two ops cannot both end it.
 */
function releasedNotHeld(rng: Rng, ops: readonly LockHistoryOp[]): LockHistoryOp[] | null {
  const candidates: number[] = [];
  ops.forEach((r, i) => {
    if (r.type !== 'release' || r.result !== 'not-held') return;
    const same = (op: LockHistoryOp): boolean => op.name === r.name && op.token === r.token;
    const grants = ops.filter((op) => isGrant(op) && same(op));
    if (grants.length === 0 || ops.some((op) => op !== r && isEnder(op) && same(op))) {
      candidates.push(i);
    }
  });
  if (candidates.length === 0) return null;
  const i = candidates[randomInt(rng, 0, candidates.length - 1)]!;
  const out = [...ops];
  out[i] = { ...(ops[i] as Extract<LockHistoryOp, { type: 'release' }>), result: 'released' };
  return out;
}

/**
 * The specification, by brute force: some subset of the ops (every op but releases with neither
 * response nor answer, and acquires that took no effect), in some order that respects real
 * time, runs legally on the sequential lock.
 */
function bruteForce(ops: readonly LockHistoryOp[]): boolean {
  const live = ops.filter((op) => !(op.type === 'acquire' && op.token === null));
  const optional = (op: LockHistoryOp): boolean =>
    op.type === 'release' && op.respondedAt === null && op.result === null;
  const before = (a: LockHistoryOp, b: LockHistoryOp): boolean =>
    a.respondedAt !== null && a.respondedAt < b.invokedAt;
  const search = (
    left: readonly LockHistoryOp[],
    holder: bigint | null,
    last: bigint | null,
  ): boolean => {
    if (left.every(optional)) return true;
    return left.some((op, i) => {
      if (left.some((other) => other !== op && before(other, op))) return false;
      const rest = left.filter((_, j) => j !== i);
      switch (op.type) {
        case 'acquire':
          return (
            holder === null &&
            (last === null || op.token! > last) &&
            search(rest, op.token, op.token)
          );
        case 'release':
          if (holder === op.token) return op.result !== 'not-held' && search(rest, null, last);
          return op.result !== 'released' && search(rest, holder, last);
        case 'expire':
          return holder === op.token && search(rest, null, last);
      }
    });
  };
  return search(live, null, null);
}

const smallOp: fc.Arbitrary<LockHistoryOp> = fc
  .record({
    type: fc.constantFrom('acquire', 'release', 'expire'),
    client: fc.constantFrom('a', 'b'),
    token: fc.integer({ min: 1, max: 3 }),
    noToken: fc.boolean(),
    invokedAt: fc.integer({ min: 0, max: 12 }),
    length: fc.option(fc.integer({ min: 0, max: 6 }), { freq: 3 }),
    result: fc.constantFrom('released', 'not-held', null),
  })
  .map(({ type, client, token, noToken, invokedAt, length, result }): LockHistoryOp => {
    const respondedAt = length === null ? null : invokedAt + length;
    switch (type) {
      case 'acquire':
        return acq(client, noToken ? null : BigInt(token), invokedAt, respondedAt);
      case 'release':
        return rel(client, BigInt(token), invokedAt, respondedAt, result);
      case 'expire':
        return exp(BigInt(token), invokedAt, respondedAt ?? invokedAt);
    }
  });

describe('lock history linearizability (G5)', () => {
  describe('the sequential lock', () => {
    it('accepts an empty history', () => {
      assertOk(checkLinearizable([]));
    });

    it('accepts grants, releases and expires in sequence', () => {
      assertOk(
        checkLinearizable([
          acq('a', 1n, 0, 10),
          rel('a', 1n, 20, 30, 'released'),
          acq('b', 4n, 40, 50),
          exp(4n, 60, 70),
          rel('b', 4n, 80, 90, 'not-held'),
          acq('c', 9n, 85, 95),
        ]),
      );
    });

    it('rejects a release answered released when the token was not held', () => {
      const why = assertFails(
        checkLinearizable([
          acq('a', 1n, 0, 10),
          rel('a', 1n, 20, 30, 'released'),
          rel('b', 1n, 40, 50, 'released'),
        ]),
      );
      assert.match(why, /release by b of token 1 -> released \[40, 50\]/);
      assert.match(why, /token 1 was not held/);
    });

    it('rejects a release answered not-held while the token was held throughout', () => {
      assertFails(checkLinearizable([acq('a', 1n, 0, 10), rel('a', 1n, 20, 30, 'not-held')]));
      // Concurrent with the grant, it may have come first.
      assertOk(checkLinearizable([acq('a', 1n, 0, 10), rel('a', 1n, 5, 30, 'not-held')]));
    });

    it('rejects two grants held at once', () => {
      assertFails(checkLinearizable([acq('a', 1n, 0, 10), acq('b', 2n, 20, 30)]));
    });

    it('rejects a token not above an earlier one', () => {
      const why = assertFails(
        checkLinearizable([
          acq('a', 5n, 0, 10),
          rel('a', 5n, 20, 30, 'released'),
          acq('b', 3n, 40, 50),
        ]),
      );
      assert.match(why, /acquire by b \(token 3\) \[40, 50\] must take effect first/);
    });

    it('rejects an expire of a token that is not held', () => {
      assertFails(checkLinearizable([acq('a', 1n, 0, 10), exp(2n, 20, 30)]));
      assertFails(
        checkLinearizable([acq('a', 1n, 0, 10), rel('a', 1n, 20, 30, 'released'), exp(1n, 40, 50)]),
      );
    });

    it('leaves out an acquire that took no effect', () => {
      assertOk(
        checkLinearizable([acq('a', 1n, 0, 10), acq('b', null, 5, 15), acq('c', null, 20, null)]),
      );
    });
  });

  describe('real-time order', () => {
    it('rejects an acquire that returns before the previous holder’s release was invoked', () => {
      const why = assertFails(
        checkLinearizable([
          acq('a', 1n, 0, 10),
          acq('b', 2n, 5, 20),
          rel('a', 1n, 30, 40, 'released'),
        ]),
      );
      assert.match(why, /acquire by b \(token 2\) \[5, 20\]/);
    });

    it('does not order a response and an invocation at the same instant', () => {
      assertOk(
        checkLinearizable([
          acq('a', 1n, 0, 10),
          acq('b', 2n, 5, 20),
          rel('a', 1n, 20, 40, 'released'),
        ]),
      );
    });

    it('places a pending acquire that the log granted', () => {
      const history = [acq('a', 1n, 0, null), exp(1n, 50, 60), acq('b', 2n, 70, 80)];
      assertOk(checkLinearizable(history));
      // The expire needs the grant: with no grant of token 1 there is nothing to expire.
      assertFails(checkLinearizable([acq('a', null, 0, null), ...history.slice(1)]));
    });

    it('requires a pending acquire with a token to take effect', () => {
      const rest = [
        acq('b', 3n, 10, 20),
        rel('b', 3n, 30, 40, 'released'),
        acq('c', 7n, 50, 60), // held to the end: token 5 fits nowhere
      ];
      const why = assertFails(checkLinearizable([acq('a', 5n, 0, null), ...rest]));
      assert.match(why, /acquire by a \(token 5\) \[0, -\]/);
      assertOk(checkLinearizable([acq('a', null, 0, null), ...rest]));
    });

    it('lets a release with no response take effect, or not', () => {
      // It took effect: b's grant needs it.
      assertOk(
        checkLinearizable([
          acq('a', 1n, 0, 10),
          rel('a', 1n, 20, null, null),
          acq('b', 2n, 30, 40),
        ]),
      );
      // It did not: the grant expired later.
      assertOk(
        checkLinearizable([
          acq('a', 1n, 0, 10),
          rel('a', 1n, 20, null, null),
          exp(1n, 30, 40),
          acq('b', 2n, 50, 60),
        ]),
      );
      // Invoked after b's grant answered: too late to free the name for it.
      assertFails(
        checkLinearizable([acq('a', 1n, 0, 10), acq('b', 2n, 5, 15), rel('a', 1n, 20, null, null)]),
      );
    });

    it('finds the one legal order among concurrent pending grants and expires', () => {
      // Tokens fix the order: 1, its expire, 2, its expire, 3, its expire, then d's grant.
      const pending = [
        acq('a', 3n, 0, null),
        acq('b', 1n, 0, null),
        acq('c', 2n, 0, null),
        exp(3n, 0, 150),
        exp(2n, 0, 100),
        exp(1n, 0, 100),
      ];
      assertOk(checkLinearizable([...pending, acq('d', 4n, 200, 210)]));
      assertOk(checkLinearizable(shuffle(createRng(1), [...pending, acq('d', 4n, 200, 210)])));
      // Token 2 released by 5, token 1 expired only from 10: 1 can be granted neither before 2
      // (nothing ends it in time) nor after (its token is lower).
      const forced = pending.filter((op) => !(op.type === 'expire' && op.token !== 3n));
      assertFails(
        checkLinearizable([
          ...forced,
          rel('c', 2n, 1, 5, 'released'),
          exp(1n, 10, 100),
          acq('d', 4n, 200, 210),
        ]),
      );
      assertOk(
        checkLinearizable([
          ...forced,
          rel('c', 2n, 1, 5, 'released'),
          exp(1n, 0, 100),
          acq('d', 4n, 200, 210),
        ]),
      );
    });
  });

  describe('names', () => {
    it('checks each name on its own and reports the one that fails', () => {
      const a = [acq('x', 1n, 0, 10, 'A'), rel('x', 1n, 20, 30, 'released', 'A')];
      // B holds token 2 while A holds token 1: fine, the names are independent.
      const b = [acq('y', 2n, 5, 15, 'B'), acq('z', 3n, 40, 50, 'B')];
      assertOk(checkLinearizable(a));
      assertFails(checkLinearizable([...a, ...b]), 'B');
      assertOk(checkLinearizable([...a, ...b.slice(0, 1)]));
    });
  });

  describe('bounded search', () => {
    it('answers unknown, naming the lock, when the step budget runs out', () => {
      const history = generate(createRng(7), {
        names: 1,
        clients: 4,
        grants: 50,
        delay: 5,
        wait: 30,
        noise: true,
      });
      assertOk(checkLinearizable(history));
      const result = checkLinearizable(history, { maxSteps: 20 });
      assert.equal(result.ok, 'unknown');
      assert.equal(result.name, 'lock-0');
      assert.match(result.explanation, /undecided after 20 search steps/);
    });

    it('stops a search that blows up, at the default budget', () => {
      // Forty releases of token 5 answered with no result: each may come before the grant, as
      // nothing, or end it. Token 3 must be granted first but comes after token 5's grant
      // answered, so no order works, and only trying every subset of releases shows it.
      const history = [
        ...Array.from({ length: 40 }, (_, i) => rel(`c${i}`, 5n, 0, 1000, null)),
        acq('a', 5n, 500, 600),
        acq('b', 3n, 2000, 2100),
      ];
      assertFails(checkLinearizable(history.slice(28)));
      const started = performance.now();
      const result = checkLinearizable(history);
      const ms = performance.now() - started;
      console.log(`      undecided after ${ms.toFixed(0)} ms`);
      assert.equal(result.ok, 'unknown');
    });

    it('reports a failure on one name before an undecided other', () => {
      const history = [
        ...generate(createRng(8), {
          names: 1,
          clients: 4,
          grants: 50,
          delay: 5,
          wait: 30,
          noise: false,
        }),
        acq('a', 1n, 0, 10, 'broken'),
        acq('b', 2n, 20, 30, 'broken'),
      ];
      assertFails(checkLinearizable(history, { maxSteps: 20 }), 'broken');
    });

    it('rejects a budget that is not a positive whole number', () => {
      assert.throws(() => checkLinearizable([], { maxSteps: 0 }), ConfigError);
      assert.throws(() => checkLinearizable([], { maxSteps: 1.5 }), ConfigError);
    });

    it('rejects an op that responds before it is invoked', () => {
      assert.throws(() => checkLinearizable([acq('a', 1n, 10, 5)]), InvariantError);
      assert.throws(() => checkLinearizable([exp(1n, Number.NaN, 5)]), InvariantError);
    });
  });

  describe('against the specification by brute force', () => {
    it('agrees on small random histories, valid or not', () => {
      let valid = 0;
      fc.assert(
        fc.property(fc.array(smallOp, { minLength: 1, maxLength: 7 }), (history) => {
          const expected = bruteForce(history);
          if (expected) valid++;
          assert.equal(checkLinearizable(history).ok, expected);
        }),
        { numRuns: 3000, seed: 0xb7f0_5eed },
      );
      // Both answers are exercised.
      assert.ok(valid > 300 && valid < 2700, `${valid} of 3000 valid`);
    });
  });

  describe('random histories from the sequential model', () => {
    it('accepts every history the model produces, in any input order', () => {
      fc.assert(
        fc.property(fc.integer(), genOptions, (seed, options) => {
          const rng = createRng(seed);
          const history = generate(rng, options);
          assertOk(checkLinearizable(history));
          assertOk(checkLinearizable(shuffle(rng, history)));
        }),
        RUNS,
      );
    });

    it('rejects them with two grants’ tokens swapped', () => {
      fc.assert(
        fc.property(fc.integer(), genOptions, (seed, options) => {
          const rng = createRng(seed);
          const history = generate(rng, options);
          const broken = swapTokens(rng, history);
          fc.pre(broken !== null);
          const changed = broken.find((op, i) => op !== history[i])!;
          assertFails(checkLinearizable(broken), changed.name);
        }),
        RUNS,
      );
    });

    it('rejects them with a grant answered before the end of the previous grant was invoked', () => {
      fc.assert(
        fc.property(fc.integer(), genOptions, (seed, options) => {
          const rng = createRng(seed);
          const history = generate(rng, options);
          const broken = moveResponse(rng, history);
          fc.pre(broken !== null);
          const changed = broken.find((op, i) => op !== history[i])!;
          assertFails(checkLinearizable(broken), changed.name);
        }),
        RUNS,
      );
    });

    it('rejects them with a release answered released for a token it did not hold', () => {
      fc.assert(
        fc.property(
          fc.integer(),
          genOptions.map((o) => ({ ...o, noise: true })),
          (seed, options) => {
            const rng = createRng(seed);
            const history = generate(rng, options);
            const broken = releasedNotHeld(rng, history);
            fc.pre(broken !== null);
            const changed = broken.find((op, i) => op !== history[i])!;
            assertFails(checkLinearizable(broken), changed.name);
          },
        ),
        RUNS,
      );
    });
  });

  describe('scale', () => {
    const big: GenOptions = {
      names: 1,
      clients: 30,
      grants: 2000,
      delay: 10,
      // Waits far longer than a grant lasts: a few dozen acquires in flight at any time.
      wait: 150,
      noise: true,
    };

    it('checks a valid history of 5,000 ops on one name', () => {
      const history = generate(createRng(42), big);
      assert.ok(history.length >= 5000, `${history.length} ops`);
      const started = performance.now();
      const result = checkLinearizable(history);
      const ms = performance.now() - started;
      console.log(`      ${history.length} ops checked in ${ms.toFixed(0)} ms`);
      assertOk(result);
    });

    it('rejects the same history with one response moved, without running out of budget', () => {
      const rng = createRng(43);
      const broken = moveResponse(rng, generate(rng, big));
      assert.ok(broken !== null);
      const started = performance.now();
      const result = checkLinearizable(broken);
      const ms = performance.now() - started;
      console.log(`      ${broken.length} ops rejected in ${ms.toFixed(0)} ms`);
      assertFails(result, 'lock-0');
    });
  });
});
