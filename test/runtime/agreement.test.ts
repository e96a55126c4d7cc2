import assert from 'node:assert/strict';
import { MemoryNetwork } from '../../adapters/memory/index.js';
import { createNode, type SynodNode } from '../../lib/index.js';
import { createRng } from '../../lib/random.js';
import { VirtualClock } from '../../lib/testing/virtual-clock.js';
import { captureLogger, type LogLine } from './helpers.js';

const IDS = ['a', 'b', 'c'];
const LEASE_MS = 1000;

/** Nodes a, b, c on the memory network, with `leaseMs` per node (default `LEASE_MS`). */
function cluster(leaseMs: Partial<Record<string, number>>) {
  const clock = new VirtualClock();
  const network = new MemoryNetwork({ scheduler: clock, delayMs: [1, 5], seed: 3 });
  const logs = new Map<string, LogLine[]>();
  const nodes = IDS.map((id, k) => {
    const logger = captureLogger();
    logs.set(id, logger.lines);
    return createNode({
      id,
      peers: IDS,
      transport: network.transport(id, IDS),
      leaseMs: leaseMs[id] ?? LEASE_MS,
      clock,
      scheduler: clock,
      rng: createRng(11 + k),
      logger,
    });
  });
  const node = (id: string): SynodNode => {
    const found = nodes.find((n) => n.id === id);
    assert.ok(found);
    return found;
  };
  const refusals = (id: string): LogLine[] =>
    (logs.get(id) ?? []).filter(
      (line) => line.level === 'error' && line.fields['setting'] !== undefined,
    );
  return { clock, nodes, node, refusals };
}

describe('settings every node must agree on', () => {
  it('keeps a node with another leaseMs out of every election; its log and stats name leaseMs', async () => {
    const { clock, nodes, node, refusals } = cluster({ c: 1500 });
    const leaders = new Set<string>();
    for (const n of nodes) {
      n.on('leaderChange', (change) => {
        if (change.leaderId !== null) leaders.add(change.leaderId);
      });
    }
    await Promise.all(nodes.map((n) => n.start()));
    const c = node('c');
    // Ten lease periods, in steps, watching c throughout.
    for (let step = 0; step < 100; step++) {
      await clock.advance(LEASE_MS / 10);
      assert.equal(c.isLeader, false, `c leads at ${clock.now()}`);
      assert.equal(c.leaderId, null, `c follows ${String(c.leaderId)} at ${clock.now()}`);
    }
    // a and b elected a leader among themselves, and it kept leading.
    const leader = nodes.find((n) => n.isLeader);
    assert.ok(leader && leader !== c, 'a or b leads');
    const other = leader.id === 'a' ? node('b') : node('a');
    assert.equal(other.leaderId, leader.id);
    assert.deepEqual([...leaders], [leader.id]);
    assert.ok(leader.stats().renewals >= 5);
    // c never voted: nothing it sent got through, and nothing reached it.
    const cStats = c.stats();
    assert.equal(cStats.elections, 0);
    assert.equal(cStats.framesIn, 0);
    const cTransport = cStats.transport;
    assert.ok(cTransport);
    assert.equal(cTransport.sent, 0);
    assert.equal(cTransport.delivered, 0);
    assert.ok(cTransport.dropped.unreachable > 0, 'c tried to campaign');
    // Each side logged the refusal at error level and counted it, naming leaseMs and both values.
    assert.deepEqual(
      refusals('c').map((line) => line.fields),
      [
        { peer: 'a', setting: 'leaseMs', ours: '1500', theirs: '1000' },
        { peer: 'b', setting: 'leaseMs', ours: '1500', theirs: '1000' },
      ],
    );
    assert.match(refusals('c')[0]?.message ?? '', /leaseMs differs/);
    for (const id of ['a', 'b']) {
      assert.deepEqual(
        refusals(id).map((line) => line.fields),
        [{ peer: 'c', setting: 'leaseMs', ours: '1000', theirs: '1500' }],
      );
      assert.deepEqual(node(id).stats().transport?.refusedSettings, { leaseMs: 1 });
    }
    assert.deepEqual(cTransport.refusedSettings, { leaseMs: 2 });
    // The leader's graceful stop waits on the virtual clock for its successor's election.
    const stopped = Promise.all(nodes.map((n) => n.stop()));
    await clock.advance(LEASE_MS);
    await stopped;
  });

  it('refuses a peer for each of maxClockDrift, marginMs and maxTtlMs too', async () => {
    for (const [setting, value] of [
      ['maxClockDrift', 0.02],
      ['marginMs', 20],
      ['maxTtlMs', 30_000],
    ] as const) {
      const clock = new VirtualClock();
      const network = new MemoryNetwork({ scheduler: clock });
      const [a, b] = ['a', 'b'].map((id) =>
        createNode({
          id,
          peers: ['a', 'b'],
          transport: network.transport(id, ['a', 'b']),
          clock,
          scheduler: clock,
          ...(id === 'b' ? { [setting]: value } : {}),
        }),
      );
      assert.ok(a && b);
      await a.start();
      await b.start();
      await clock.advance(3 * LEASE_MS);
      assert.equal(a.isLeader || b.isLeader, false, `${setting}: nobody has a majority`);
      assert.deepEqual(b.stats().transport?.refusedSettings, { [setting]: 1 }, setting);
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});

describe('incarnation', () => {
  it('is drawn from the operating system, even when nodes share a seeded rng', async () => {
    const clock = new VirtualClock();
    const network = new MemoryNetwork({ scheduler: clock });
    const made = ['a', 'b'].map((id) =>
      createNode({
        id,
        peers: ['a', 'b', 'c'],
        transport: network.transport(id, ['a', 'b', 'c']),
        clock,
        scheduler: clock,
        rng: createRng(7),
      }),
    );
    await Promise.all(made.map((n) => n.start()));
    const [a, b] = made.map((n) => n.incarnation);
    assert.match(a ?? '', /^[0-9a-f]{16}$/);
    assert.match(b ?? '', /^[0-9a-f]{16}$/);
    assert.notEqual(a, b);
    await Promise.all(made.map((n) => n.stop()));
  });
});
