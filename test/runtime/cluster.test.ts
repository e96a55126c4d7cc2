import assert from 'node:assert/strict';
import { ConfigError, LeadershipLostError } from '../../lib/errors.js';
import type { LeaderInfo } from '../../lib/events.js';
import {
  createTestCluster,
  type TestCluster,
  type TestClusterOptions,
} from '../../lib/testing/index.js';
import { runChecked } from './helpers.js';

describe('test cluster', () => {
  let cluster: TestCluster | null = null;

  afterEach(async () => {
    await cluster?.close();
    cluster = null;
  });

  it('rejects unknown options and bad sizes', () => {
    assert.throws(
      () => createTestCluster({ nodes: 3 } as unknown as TestClusterOptions),
      (e: unknown) =>
        e instanceof ConfigError && e.message.includes('unknown test cluster option "nodes"'),
    );
    assert.throws(() => createTestCluster({ size: 0 }), ConfigError);
    assert.throws(() => createTestCluster({ ids: [] }), ConfigError);
    const c = createTestCluster({ ids: ['x', 'y', 'z'] });
    assert.deepEqual(c.ids, ['x', 'y', 'z']);
    assert.throws(() => c.node('q'), ConfigError);
  });

  it('survives a crash of the leader; the restarted node rejoins with its setup', async () => {
    const infos = new Map<string, LeaderInfo[]>();
    let setups = 0;
    cluster = createTestCluster({
      size: 3,
      setup: (node) => {
        setups++;
        node.onLeader((info) => {
          infos.set(node.id, [...(infos.get(node.id) ?? []), info]);
        });
      },
    });
    const c = cluster;
    await c.start();
    const first = await c.waitForLeader();
    const info = infos.get(first.id)?.[0];
    assert.ok(info);
    c.crash(first.id);
    assert.equal(info.signal.aborted, true, 'a crashed process runs no leadership work');
    assert.ok(info.signal.reason instanceof LeadershipLostError);
    const second = await c.waitForLeader();
    assert.notEqual(second.id, first.id);
    const restarted = await c.restart(first.id);
    assert.equal(setups, 4);
    assert.notEqual(restarted, first);
    await runChecked(c, 3000);
    assert.equal(c.leader(), second, 'a stable leader is never displaced');
    assert.equal(restarted.leaderId, second.id);
  });

  it('moves leadership to the majority side of a partition, and back to one leader after healing', async () => {
    cluster = createTestCluster({ size: 5, seed: 11 });
    const c = cluster;
    await c.start();
    const first = await c.waitForLeader();
    const others = c.ids.filter((id) => id !== first.id);
    c.partition([first.id, others[0] ?? ''], others.slice(1));
    await runChecked(c, 3000);
    const second = c.leader();
    assert.ok(second !== null && others.slice(1).includes(second.id));
    c.heal();
    await runChecked(c, 3000);
    assert.equal(c.leader(), second);
    for (const node of c.nodes()) assert.equal(node.leaderId, second.id);
  });

  it('elects and keeps a leader despite loss, duplication and reordering', async () => {
    cluster = createTestCluster({
      size: 5,
      seed: 3,
      leaseMs: 500,
      delayMs: [1, 20],
      lossRate: 0.05,
      duplicateRate: 0.05,
    });
    const c = cluster;
    await c.start();
    await c.waitForLeader();
    await runChecked(c, 10_000);
    assert.ok(c.leader() !== null);
    assert.ok(c.network.stats().lost > 0 && c.network.stats().duplicated > 0);
  });

  it('keeps storage across restarts when asked to', async () => {
    cluster = createTestCluster({ size: 3, storage: true });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    const follower = c.nodes().find((n) => n !== leader);
    assert.ok(follower);
    await c.advance(100);
    assert.ok(follower.stats().storageSaves > 0);
    c.crash(follower.id);
    const back = await c.restart(follower.id);
    await runChecked(c, 2000);
    assert.equal(back.leaderId, leader.id);
  });

  it('replays the same run for the same seed', async () => {
    const run = async (): Promise<string> => {
      const c = createTestCluster({ size: 3, seed: 42, delayMs: [1, 9] });
      await c.start();
      const leader = await c.waitForLeader();
      const at = c.clock.now();
      await c.close();
      return `${leader.id}@${at}`;
    };
    assert.equal(await run(), await run());
  });
});
