import assert from 'node:assert/strict';
import type { SynodNode } from '../../lib/index.js';
import { createTestCluster, type TestCluster } from '../../lib/testing/index.js';
import { captureLogger, runChecked } from './helpers.js';

describe('graceful stop', () => {
  let cluster: TestCluster | null = null;

  afterEach(async () => {
    await cluster?.close();
    cluster = null;
  });

  it('hands off: the old leader’s work ends before the successor’s starts, within round trips', async () => {
    const timeline: string[] = [];
    let c!: TestCluster;
    cluster = c = createTestCluster({
      size: 3,
      leaseMs: 1000,
      setup: (node) =>
        node.onLeader(async ({ signal, term }) => {
          timeline.push(`start ${node.id} term ${term} at ${c.clock.now()}`);
          await new Promise<void>((resolve) => {
            signal.addEventListener('abort', () => {
              resolve();
            });
          });
          // Some clean-up that takes time after the signal.
          await new Promise<void>((resolve) => c.clock.setTimeout(resolve, 50));
          timeline.push(`end ${node.id} at ${c.clock.now()}`);
        }),
    });
    await c.start();
    const old = await c.waitForLeader();
    await c.advance(500);
    const stopAt = c.clock.now();
    await c.stop(old.id);
    assert.equal(old.state, 'stopped');
    assert.equal(old.isLeader, false);
    const successor = await c.waitForLeader();
    assert.notEqual(successor, old);
    const electedAt = c.clock.now();
    // Work (50 ms) plus a few one-way delays (≤ 5 ms each), far below a lease timeout.
    assert.ok(electedAt - stopAt < 150, `successor after ${electedAt - stopAt} ms`);
    assert.equal(timeline.length, 3);
    assert.match(timeline[0] ?? '', new RegExp(`^start ${old.id} `));
    assert.match(timeline[1] ?? '', new RegExp(`^end ${old.id} at ${stopAt + 50}$`));
    assert.match(timeline[2] ?? '', new RegExp(`^start ${successor.id} `));
    const oldStats = old.stats();
    assert.equal(oldStats.depositions, 1);
    assert.ok(oldStats.renewals > 0);
  });

  it('keeps renewing while the work ends, so nobody else leads meanwhile', async () => {
    let c!: TestCluster;
    cluster = c = createTestCluster({
      size: 3,
      leaseMs: 300,
      node: { handoffTimeoutMs: 2000 },
      setup: (node) =>
        node.onLeader(async ({ signal }) => {
          await new Promise<void>((resolve) => {
            signal.addEventListener('abort', () => {
              resolve();
            });
          });
          // Ends well after several lease periods.
          await new Promise<void>((resolve) => c.clock.setTimeout(resolve, 1000));
        }),
    });
    await c.start();
    const old = await c.waitForLeader();
    const before = old.stats().renewals;
    const stopping = old.stop();
    await runChecked(c, 900);
    assert.equal(c.leader(), null, 'the stopping node no longer leads, and nobody else does');
    assert.equal(old.state, 'stopping');
    assert.ok(old.stats().renewals >= before + 6, 'the lease is still renewed');
    await c.runUntil(() => old.state === 'stopped', 500);
    await stopping;
    const successor = await c.waitForLeader(300);
    assert.notEqual(successor, old);
  });

  it('lets the lease lapse instead of releasing when the work does not end in time', async () => {
    const logger = captureLogger();
    let c!: TestCluster;
    let aborted = false;
    cluster = c = createTestCluster({
      size: 3,
      leaseMs: 1000,
      node: { handoffTimeoutMs: 300, logger },
      setup: (node) =>
        node.onLeader(({ signal }) => {
          signal.addEventListener('abort', () => (aborted = true));
          // Ignores its signal and never finishes.
          return new Promise<void>(() => undefined);
        }),
    });
    await c.start();
    const old: SynodNode = await c.waitForLeader();
    await c.advance(200);
    const stopAt = c.clock.now();
    // The latest lease deadline the old leader held while it was stopping.
    let lastDeadline = old.leaseDeadline ?? 0;
    const stopping = old.stop();
    assert.equal(aborted, true, 'the signal aborts as the stop begins');
    await c.runUntil(() => {
      lastDeadline = Math.max(lastDeadline, deadlineOf(old));
      return old.state === 'stopped';
    }, 1000);
    await stopping;
    assert.equal(c.clock.now() - stopAt, 300, 'stop waited for handoffTimeoutMs');
    assert.ok(logger.lines.some((l) => l.message.startsWith('onLeader work did not end in time')));
    const successor = await c.waitForLeader();
    assert.notEqual(successor, old);
    assert.ok(
      c.clock.now() >= lastDeadline,
      `successor at ${c.clock.now()} before the old deadline ${lastDeadline}`,
    );
  });

  it('stops a follower at once and is idempotent', async () => {
    cluster = createTestCluster({ size: 3 });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    const follower = c.nodes().find((n) => n !== leader);
    assert.ok(follower);
    const first = follower.stop();
    assert.equal(follower.stop(), first);
    await c.stop(follower.id);
    assert.equal(follower.state, 'stopped');
    await runChecked(c, 3000);
    assert.equal(c.leader(), leader, 'a majority is left: the leader keeps leading');
  });

  it('restarts a stopped node as a new incarnation that rejoins as a follower', async () => {
    cluster = createTestCluster({ size: 3 });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    const follower = c.nodes().find((n) => n !== leader);
    assert.ok(follower);
    const oldIncarnation = follower.incarnation;
    await c.stop(follower.id);
    const fresh = await c.restart(follower.id);
    assert.notEqual(fresh, follower);
    assert.notEqual(fresh.incarnation, oldIncarnation);
    await runChecked(c, 2000);
    assert.equal(fresh.leaderId, leader.id);
  });

  it('takes a peer that stops and starts again as a restart: info, never a warning', async () => {
    const logger = captureLogger();
    cluster = createTestCluster({ size: 3, node: { logger } });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    const follower = c.nodes().find((n) => n !== leader);
    assert.ok(follower);
    for (const node of [follower, leader]) {
      await c.stop(node.id);
      await c.restart(node.id);
      await runChecked(c, 3000);
    }
    assert.deepEqual(
      logger.lines.filter((l) => l.level === 'warn' || l.level === 'error'),
      [],
    );
    const restarts = logger.lines.filter((l) => l.message.includes('new incarnation'));
    // Each restart is seen by the nodes the restarted one talks to (the leader, at least).
    assert.deepEqual(
      [...new Set(restarts.map((l) => l.fields['peer']))].sort(),
      [follower.id, leader.id].sort(),
    );
    assert.ok(restarts.every((l) => l.level === 'info'));
    for (const node of c.nodes()) {
      assert.equal(node.stats().staleIncarnations, 0);
      assert.equal(node.stats().incarnationConflicts, 0);
    }
  });
});

/** The lease deadline the node believes now, read without its `isLeader` gate. */
function deadlineOf(node: SynodNode): number {
  return node.leaseDeadline ?? 0;
}
