import assert from 'node:assert/strict';
import { LockLostError, LockTimeoutError } from '../../lib/errors.js';
import type { Lock } from '../../lib/node/lock-handle.js';
import type { LockInfo } from '../../lib/node/locks.js';
import type { SynodNode } from '../../lib/node/node.js';
import { createTestCluster, type TestCluster } from '../../lib/testing/index.js';

/** Small maxTtlMs: a fresh cluster's first grant waits maxTtlMs + leaseMs (a new epoch). */
const NODE = { maxTtlMs: 3000 } as const;
/** For TTLs of 10 s (the first grant waits 21 s of virtual time). */
const LONG = { maxTtlMs: 20_000 } as const;

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

/** What the leader says of `name`. */
async function viewOf(c: TestCluster, node: SynodNode, name: string): Promise<LockInfo> {
  const outcome = await settle(c, node.getLock(name), 1000);
  assert.ok(outcome !== null && 'value' in outcome, 'no answer');
  return outcome.value;
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

  it('a waiter whose process died loses its place: the lock goes to the next live waiter', async () => {
    cluster = createTestCluster({ size: 3, node: LONG });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    const [dead, live] = c.nodes().filter((n) => n !== leader);
    assert.ok(dead !== undefined && live !== undefined);
    const held = await lockOf(c, leader.acquireLock('job', { ttlMs: 10_000 }), 30_000);
    const doomed = dead.acquireLock('job', { ttlMs: 10_000, timeoutMs: 60_000 });
    doomed.catch(() => undefined);
    await c.advance(100);
    const waiting = live.acquireLock('job', { ttlMs: 10_000, timeoutMs: 60_000 });
    await c.advance(100);
    assert.equal((await viewOf(c, leader, 'job')).waiters, 2);
    c.crash(dead.id);
    // The leader hears nothing more of the dead waiter, and withdraws its place.
    await c.advance(3 * c.leaseMs);
    assert.equal((await viewOf(c, leader, 'job')).waiters, 1);
    await settle(c, held.release(), 1000);
    // Granted at once: not after the 10 s a grant to the dead process would block the name.
    const next = await lockOf(c, waiting, c.leaseMs);
    assert.ok(next.token > held.token);
    assert.equal(next.valid, true);
  });

  it('a holder whose lock ran out gives it back: the next waiter need not wait out the TTL', async () => {
    cluster = createTestCluster({ size: 3, node: LONG });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    const [holder, next] = c.nodes().filter((n) => n !== leader);
    assert.ok(holder !== undefined && next !== undefined);
    const first = await lockOf(c, holder.acquireLock('job', { ttlMs: 10_000 }), 30_000);
    const second = next.acquireLock('job', { ttlMs: 10_000, timeoutMs: 60_000 });
    await c.advance(100);
    // The holder's renewals still reach the leader, but no answer comes back: the leader keeps
    // the grant alive while the holder's own deadline runs out.
    c.cut(leader.id, holder.id);
    await c.runUntil(() => first.signal.aborted, 20_000);
    assert.equal(first.signal.aborted, true);
    assert.equal((await viewOf(c, leader, 'job')).token, first.token);
    c.heal();
    // The holder's release reaches the leader as soon as it knows the leader again; without it
    // the leader would wait until its own timer ran out, seconds later.
    const lock = await lockOf(c, second, 2 * c.leaseMs);
    assert.ok(lock.token > first.token);
  });
});
