import assert from 'node:assert/strict';
import type { Lock } from '../../lib/node/lock-handle.js';
import { createTestCluster, type TestCluster } from '../../lib/testing/index.js';

/** Runs the cluster's clock until `promise` settles (at most `maxMs`); returns its value. */
async function settle<T>(c: TestCluster, promise: Promise<T>, maxMs: number): Promise<T> {
  let outcome: { value: T } | { error: unknown } | null = null;
  promise.then(
    (value) => (outcome = { value }),
    (error: unknown) => (outcome = { error }),
  );
  await c.runUntil(() => outcome !== null, maxMs);
  const o = outcome as { value: T } | { error: unknown } | null;
  assert.ok(o !== null, 'did not settle in time');
  if ('error' in o) throw o.error;
  return o.value;
}

describe('locks with storage', () => {
  let cluster: TestCluster | null = null;

  afterEach(async () => {
    await cluster?.close();
    cluster = null;
  });

  it('keeps the lock table across a restart of every node: tokens continue, no new epoch, no wait', async () => {
    // A new epoch would wait maxTtlMs (20 s) before its first grant and move tokens up by
    // 2^20 per elapsed millisecond.
    cluster = createTestCluster({ size: 3, storage: true, node: { maxTtlMs: 20_000 } });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    const first: Lock = await settle(c, leader.acquireLock('report', { ttlMs: 2000 }), 40_000);
    await settle(c, first.release(), 2000);
    for (const id of c.ids) c.crash(id);
    for (const id of c.ids) await c.restart(id);
    const next = await c.waitForLeader();
    const started = c.clock.now();
    const second: Lock = await settle(c, next.acquireLock('report', { ttlMs: 2000 }), 10_000);
    assert.ok(c.clock.now() - started < 5000, 'the grant waited as a new epoch would');
    assert.ok(second.token > first.token);
    assert.ok(
      second.token - first.token < 1000n,
      `tokens jumped: ${first.token} → ${second.token}`,
    );
  });

  it('without storage, a restart of every node starts a new epoch: tokens jump above every earlier one', async () => {
    cluster = createTestCluster({ size: 3, node: { maxTtlMs: 3000 } });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    const first: Lock = await settle(c, leader.acquireLock('report', { ttlMs: 2000 }), 20_000);
    for (const id of c.ids) c.crash(id);
    await c.advance(100);
    for (const id of c.ids) await c.restart(id);
    const next = await c.waitForLeader();
    const second: Lock = await settle(c, next.acquireLock('report', { ttlMs: 2000 }), 20_000);
    assert.ok(second.token > first.token + (1n << 20n), `${first.token} → ${second.token}`);
  });
});
