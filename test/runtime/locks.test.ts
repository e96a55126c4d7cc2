import assert from 'node:assert/strict';
import { LockLostError, LockTimeoutError } from '../../lib/errors.js';
import type { Lock } from '../../lib/node/lock-handle.js';
import { createTestCluster, type TestCluster } from '../../lib/testing/index.js';

/** Small maxTtlMs: a fresh cluster's first grant waits maxTtlMs + leaseMs (a new epoch). */
const NODE = { maxTtlMs: 3000 } as const;

/** Runs the cluster's clock until `promise` settles (at most `maxMs`), and returns its outcome. */
async function settle<T>(
  c: TestCluster,
  promise: Promise<T>,
  maxMs = 10_000,
): Promise<{ value: T } | { error: unknown } | null> {
  let outcome: { value: T } | { error: unknown } | null = null;
  promise.then(
    (value) => (outcome = { value }),
    (error: unknown) => (outcome = { error }),
  );
  await c.runUntil(() => outcome !== null, maxMs);
  return outcome;
}

async function lockOf(c: TestCluster, promise: Promise<Lock>, maxMs = 10_000): Promise<Lock> {
  const outcome = await settle(c, promise, maxMs);
  assert.ok(outcome !== null, 'not granted in time');
  if ('error' in outcome) throw outcome.error;
  return outcome.value;
}

describe('locks', () => {
  let cluster: TestCluster | null = null;

  afterEach(async () => {
    await cluster?.close();
    cluster = null;
  });

  it('grants a lock asked of a follower, queues the next holder, and grants it a larger token', async () => {
    cluster = createTestCluster({ size: 3, node: NODE });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    const [f1, f2] = c.nodes().filter((n) => n !== leader);
    assert.ok(f1 !== undefined && f2 !== undefined);
    const l1 = await lockOf(c, f1.acquireLock('invoices', { ttlMs: 2000 }));
    assert.equal(l1.valid, true);
    assert.ok(l1.remainingMs > 0 && l1.remainingMs <= 2000);
    assert.equal(typeof l1.token, 'bigint');
    // A second holder waits in line while the first is renewed in the background.
    const second = f2.acquireLock('invoices', { ttlMs: 2000 });
    assert.equal(await settle(c, second, 5000), null, 'granted while held');
    assert.equal(l1.valid, true, 'renewed in the background');
    const info = await settle(c, leader.getLock('invoices'), 1000);
    assert.deepEqual(info, {
      value: { name: 'invoices', holder: f1.id, token: l1.token, waiters: 1 },
    });
    await settle(c, l1.release(), 1000);
    assert.equal(l1.valid, false);
    assert.ok(l1.signal.reason instanceof LockLostError);
    const l2 = await lockOf(c, second, 5000);
    assert.ok(l2.token > l1.token);
    await settle(c, l2.release(), 1000);
  });

  it('tryLock resolves to null while the lock is held, and a timeout rejects', async () => {
    cluster = createTestCluster({ size: 3, node: NODE });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    await lockOf(c, leader.acquireLock('a'));
    const other = c.nodes().find((n) => n !== leader);
    assert.ok(other !== undefined);
    assert.deepEqual(await settle(c, other.tryLock('a'), 5000), { value: null });
    const timedOut = await settle(c, other.acquireLock('a', { timeoutMs: 1000 }), 1500);
    assert.ok(timedOut !== null && 'error' in timedOut);
    assert.ok(timedOut.error instanceof LockTimeoutError);
  });

  it('a crashed holder loses its lock by TTL, and the next holder gets a larger token', async () => {
    cluster = createTestCluster({ size: 3, node: NODE });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    const [holder, next] = c.nodes().filter((n) => n !== leader);
    assert.ok(holder !== undefined && next !== undefined);
    const first = await lockOf(c, holder.acquireLock('job', { ttlMs: 1000 }));
    c.crash(holder.id);
    assert.equal(first.signal.aborted, true);
    const second = await lockOf(c, next.acquireLock('job', { ttlMs: 1000 }), 5000);
    assert.ok(second.token > first.token);
  });
});
