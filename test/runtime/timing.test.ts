import assert from 'node:assert/strict';
import sinon from 'sinon';
import { MemoryNetwork } from '../../adapters/memory/index.js';
import type { LeaderInfo } from '../../lib/events.js';
import { createNode, type SynodNode } from '../../lib/index.js';
import { createRng } from '../../lib/random.js';

/**
 * Lease timing on sinon's fake timers: the nodes use their defaults (the global
 * `performance.now()` and `setTimeout`), as in production.
 */
describe('lease timing (fake timers)', () => {
  const LEASE_MS = 1000;
  const IDS = ['a', 'b', 'c'];
  let clock: sinon.SinonFakeTimers;
  let network: MemoryNetwork;
  let nodes: SynodNode[];

  beforeEach(() => {
    clock = sinon.useFakeTimers();
    network = new MemoryNetwork({ seed: 7, delayMs: [1, 5] });
    nodes = [];
  });

  afterEach(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    clock.restore();
  });

  function spawn(id: string, seed: number, ids: readonly string[] = IDS): SynodNode {
    const node = createNode({
      id,
      peers: ids,
      transport: network.transport(id, ids),
      leaseMs: LEASE_MS,
      rng: createRng(seed),
      handoffTimeoutMs: 0,
    });
    nodes.push(node);
    return node;
  }

  function leaders(): SynodNode[] {
    return nodes.filter((n) => n.isLeader);
  }

  /** Advances in 1 ms steps, checking that no two nodes lead at once. */
  async function tick(ms: number): Promise<void> {
    for (let i = 0; i < ms; i++) {
      await clock.tickAsync(1);
      assert.ok(leaders().length <= 1, `two leaders at ${performance.now()}`);
    }
  }

  async function untilLeader(maxMs: number): Promise<SynodNode> {
    for (let i = 0; i < maxMs; i++) {
      const [leader] = leaders();
      if (leader !== undefined) return leader;
      await clock.tickAsync(1);
    }
    throw new Error(`no leader within ${maxMs} ms`);
  }

  it('stays silent for a lease period after start, then elects', async () => {
    IDS.forEach((id, i) => spawn(id, i + 1));
    await Promise.all(nodes.map((n) => n.start()));
    await tick(LEASE_MS - 1);
    assert.deepEqual(leaders(), []);
    const leader = await untilLeader(LEASE_MS);
    // Silence, a campaign jitter of at most L/10, and two round trips.
    assert.ok(performance.now() <= LEASE_MS + LEASE_MS / 10 + 25, `at ${performance.now()}`);
    assert.equal(leader.term, 1);
  });

  it('keeps the same leader and term by renewing', async () => {
    IDS.forEach((id, i) => spawn(id, i + 1));
    await Promise.all(nodes.map((n) => n.start()));
    const leader = await untilLeader(3 * LEASE_MS);
    const term = leader.term;
    await tick(10 * LEASE_MS);
    assert.deepEqual(leaders(), [leader]);
    assert.equal(leader.term, term);
    assert.ok(leader.stats().renewals >= 28, `renewals ${leader.stats().renewals}`);
    assert.equal(leader.stats().elections, 1);
    for (const node of nodes) assert.equal(node.leaderId, leader.id);
  });

  it('loses the lease at its deadline when isolated, then another node leads', async () => {
    IDS.forEach((id, i) => spawn(id, i + 1));
    const infos: LeaderInfo[] = [];
    for (const node of nodes) node.onLeader((info) => infos.push(info));
    await Promise.all(nodes.map((n) => n.start()));
    const leader = await untilLeader(3 * LEASE_MS);
    await tick(200);
    network.isolate(leader.id);
    const deadline = leader.leaseDeadline;
    assert.ok(deadline !== null);
    const [info] = infos;
    assert.ok(info !== undefined);
    await clock.tickAsync(Math.ceil(deadline - performance.now()) - 1);
    assert.equal(leader.isLeader, true);
    assert.equal(info.signal.aborted, false);
    await clock.tickAsync(1);
    assert.equal(leader.isLeader, false);
    assert.equal(info.signal.aborted, true);
    const successor = await untilLeader(3 * LEASE_MS);
    assert.notEqual(successor, leader);
    assert.ok(performance.now() >= deadline);
  });

  it('a restarted node votes for nothing and leads nothing for a lease period', async () => {
    const solo = ['s'];
    const first = spawn('s', 1, solo);
    await first.start();
    await untilLeader(2 * LEASE_MS);
    network.crash('s');
    await first.stop();
    network.restart('s');
    const second = spawn('s', 2, solo);
    await second.start();
    const restartedAt = performance.now();
    await tick(LEASE_MS - 1);
    assert.equal(second.isLeader, false);
    await untilLeader(LEASE_MS);
    assert.ok(performance.now() - restartedAt >= LEASE_MS);
  });
});
