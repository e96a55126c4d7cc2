import assert from 'node:assert/strict';
import { pino } from 'pino';
import { LeadershipLostError, TransportError } from '../../lib/errors.js';
import type { FollowerInfo, LeaderChange, LeaderInfo } from '../../lib/events.js';
import { createNode } from '../../lib/index.js';
import { createTestCluster, type TestCluster } from '../../lib/testing/index.js';
import { captureLogger, idleTransport, runChecked } from './helpers.js';

describe('leadership', () => {
  let cluster: TestCluster | null = null;

  afterEach(async () => {
    await cluster?.close();
    cluster = null;
  });

  it('elects exactly one leader in a 3-node cluster; the others follow it', async () => {
    const follows = new Map<string, FollowerInfo[]>();
    const leads: string[] = [];
    cluster = createTestCluster({
      size: 3,
      leaseMs: 1000,
      setup: (node) => {
        follows.set(node.id, []);
        node.onFollower((info) => follows.get(node.id)?.push(info));
        node.onLeader(() => leads.push(node.id));
      },
    });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    await runChecked(c, 3000);
    assert.equal(c.leader(), leader);
    assert.deepEqual(leads, [leader.id]);
    for (const node of c.nodes()) {
      assert.equal(node.leaderId, leader.id);
      assert.equal(node.term, leader.term);
      if (node === leader) {
        assert.deepEqual(follows.get(node.id), []);
      } else {
        assert.equal(node.isLeader, false);
        assert.deepEqual(follows.get(node.id), [{ leaderId: leader.id, term: leader.term }]);
      }
    }
  });

  it('nobody leads during the restart silence of a fresh cluster', async () => {
    cluster = createTestCluster({ size: 3, leaseMs: 500 });
    const c = cluster;
    await c.start();
    await runChecked(c, 499);
    assert.equal(c.leader(), null);
    const leader = await c.waitForLeader(1000);
    assert.ok(c.clock.now() >= 500);
    assert.ok(leader.isLeader);
  });

  it('emits leaderChange on every node with who leads and whether it is this node', async () => {
    const changes = new Map<string, LeaderChange[]>();
    cluster = createTestCluster({
      size: 3,
      setup: (node) => {
        changes.set(node.id, []);
        node.on('leaderChange', (change) => changes.get(node.id)?.push(change));
      },
    });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    await c.advance(100);
    for (const node of c.nodes()) {
      assert.deepEqual(changes.get(node.id), [
        { leaderId: leader.id, term: leader.term, isLeader: node === leader },
      ]);
    }
    // The leader's lease lapses in isolation; it then sees no leader.
    c.isolate(leader.id);
    await c.advance(2000);
    assert.deepEqual(changes.get(leader.id)?.at(-1), {
      leaderId: null,
      term: null,
      isLeader: false,
    });
  });

  it('aborts the signal when the lease is lost, exactly at the deadline', async () => {
    const infos: LeaderInfo[] = [];
    const aborts: { at: number; reason: unknown }[] = [];
    cluster = createTestCluster({
      size: 3,
      setup: (node) =>
        node.onLeader((i) => {
          infos.push(i);
          i.signal.addEventListener('abort', () => {
            aborts.push({ at: c.clock.now(), reason: i.signal.reason });
          });
        }),
    });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    await c.advance(400);
    c.isolate(leader.id);
    const deadline = leader.leaseDeadline;
    assert.ok(deadline !== null);
    const [held] = infos;
    assert.ok(held);
    await c.runUntil(() => aborts.length > 0, 2000);
    assert.equal(aborts.length, 1);
    const [abort] = aborts;
    assert.ok(abort !== undefined);
    assert.ok(abort.reason instanceof LeadershipLostError);
    assert.equal(abort.reason.code, 'SYNOD_LEADERSHIP_LOST');
    assert.ok(abort.at >= deadline && abort.at < deadline + 1, `${abort.at} vs ${deadline}`);
    assert.equal(held.stillLeader(), false);
    assert.equal(leader.isLeader, false);
    // The others elect a successor, never while the old lease could still be believed.
    const successor = await c.waitForLeader();
    assert.notEqual(successor.id, leader.id);
    assert.ok(c.clock.now() >= deadline);
  });

  it('stillLeader() reads false after a stall, before any timer has run, and aborts the signal', async () => {
    const infos: LeaderInfo[] = [];
    const aborts: unknown[] = [];
    cluster = createTestCluster({
      size: 3,
      setup: (node) =>
        node.onLeader((i) => {
          infos.push(i);
          i.signal.addEventListener('abort', () => aborts.push(i.signal.reason));
        }),
    });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    const [held] = infos;
    assert.ok(held);
    assert.equal(held.stillLeader(), true);
    const deadline = leader.leaseDeadline;
    assert.ok(deadline !== null);
    // The event loop stalls past the deadline: no timer fires, no message arrives.
    c.clock.jump(deadline - c.clock.now() + 1);
    assert.equal(aborts.length, 0, 'nothing has run since the stall');
    assert.equal(held.stillLeader(), false);
    assert.equal(leader.isLeader, false);
    // The same read aborted the signal: its listeners ran then, once.
    assert.equal(aborts.length, 1);
    assert.ok(aborts[0] instanceof LeadershipLostError);
    assert.equal(held.signal.aborted, true);
    // The node's own check at its first wake finds the term ended already.
    await c.advance(0);
    assert.equal(aborts.length, 1);
  });

  it('reads the signal as aborted after a stall past the deadline, before any timer has run', async () => {
    const infos: LeaderInfo[] = [];
    const aborts: { at: number; reason: unknown }[] = [];
    cluster = createTestCluster({
      size: 3,
      setup: (node) =>
        node.onLeader((i) => {
          infos.push(i);
          i.signal.addEventListener('abort', () => {
            aborts.push({ at: c.clock.now(), reason: i.signal.reason });
          });
        }),
    });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    const [held] = infos;
    assert.ok(held);
    const deadline = leader.leaseDeadline;
    assert.ok(deadline !== null);
    c.clock.jump(deadline - c.clock.now() + 5);
    assert.equal(aborts.length, 0);
    assert.equal(held.signal.aborted, true);
    assert.equal(aborts.length, 1);
    const [abort] = aborts;
    assert.ok(abort?.reason instanceof LeadershipLostError);
    assert.equal(abort.reason.message, 'the leader lease expired');
    assert.equal(held.signal.reason, abort.reason);
    assert.throws(() => {
      held.signal.throwIfAborted();
    }, abort.reason);
    assert.equal(held.stillLeader(), false);
    await c.advance(0);
    assert.equal(aborts.length, 1, 'the listeners ran once');
  });

  it('an application timer that fell due during a stall reads the signal as aborted, though it runs before the node’s timer', async () => {
    // Timers that fell due during a stall run in due order: the application's short timer runs
    // before the node's next one (and before any frame is delivered), and the signal must
    // already read aborted there.
    const infos: LeaderInfo[] = [];
    cluster = createTestCluster({ size: 3, setup: (node) => node.onLeader((i) => infos.push(i)) });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    const [held] = infos;
    assert.ok(held);
    // The election's frames have all been delivered; the next frame comes with the renewal.
    await c.advance(20);
    const reads: boolean[] = [];
    c.clock.setTimeout(() => reads.push(held.signal.aborted), 1);
    const deadline = leader.leaseDeadline;
    assert.ok(deadline !== null);
    c.clock.jump(deadline - c.clock.now() + 1);
    await c.advance(0);
    assert.deepEqual(reads, [true]);
    assert.equal(held.signal.aborted, true);
  });

  it('keeps the signal through a renewal: past the first deadline and before the renewed one it has not aborted', async () => {
    const infos: LeaderInfo[] = [];
    let aborts = 0;
    cluster = createTestCluster({
      size: 3,
      setup: (node) =>
        node.onLeader((i) => {
          infos.push(i);
          i.signal.addEventListener('abort', () => (aborts += 1));
        }),
    });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    const [held] = infos;
    assert.ok(held);
    const first = leader.leaseDeadline;
    assert.ok(first !== null);
    assert.ok(await c.runUntil(() => (leader.leaseDeadline ?? 0) > first, 1000), 'a renewal');
    const renewed = leader.leaseDeadline;
    assert.ok(renewed !== null && c.clock.now() < first);
    // Stalls past the first deadline, not the renewed one.
    c.clock.jump(first - c.clock.now() + 1);
    assert.equal(held.signal.aborted, false);
    held.signal.throwIfAborted();
    assert.equal(held.stillLeader(), true);
    assert.equal(aborts, 0);
    c.clock.jump(renewed - c.clock.now());
    assert.equal(held.signal.aborted, true);
    assert.equal(aborts, 1);
  });

  it('runs an onLeader registered while already leading at once', async () => {
    cluster = createTestCluster({ size: 3 });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    const calls: LeaderInfo[] = [];
    const follower = c.nodes().find((n) => n !== leader);
    assert.ok(follower);
    follower.onLeader((i) => calls.push(i));
    leader.onLeader((i) => calls.push(i));
    await Promise.resolve();
    assert.equal(calls.length, 1);
    const [call] = calls;
    assert.ok(call);
    assert.equal(call.term, leader.term);
    assert.equal(call.stillLeader(), true);
  });

  it('runs an onFollower registered late at once, and stops calling after unsubscribe', async () => {
    cluster = createTestCluster({ size: 3 });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    await c.advance(50);
    const follower = c.nodes().find((n) => n !== leader);
    assert.ok(follower);
    const seen: FollowerInfo[] = [];
    const off = follower.onFollower((i) => seen.push(i));
    leader.onFollower((i) => seen.push(i));
    await Promise.resolve();
    assert.deepEqual(seen, [{ leaderId: leader.id, term: leader.term }]);
    off();
    c.crash(leader.id);
    await c.advance(3000);
    assert.equal(seen.length, 1);
  });

  it('tells followers when the leader becomes unknown, and who leads next', async () => {
    const seen = new Map<string, FollowerInfo[]>();
    cluster = createTestCluster({
      size: 3,
      setup: (node) => {
        seen.set(node.id, []);
        node.onFollower((i) => seen.get(node.id)?.push(i));
      },
    });
    const c = cluster;
    await c.start();
    const first = await c.waitForLeader();
    await c.advance(50);
    c.crash(first.id);
    await c.runUntil(() => c.leader() !== null && c.leader() !== first, 5000);
    const second = c.leader();
    assert.ok(second !== null && second !== first);
    await c.advance(50);
    const third = c.nodes().find((n) => n !== first && n !== second);
    assert.ok(third);
    const views = seen.get(third.id)?.map((v) => v.leaderId);
    assert.deepEqual(views, [first.id, null, second.id]);
  });

  it('survives handlers and listeners that throw or reject, and counts them', async () => {
    const logger = captureLogger();
    const ran: string[] = [];
    cluster = createTestCluster({
      size: 3,
      node: { logger },
      setup: (node) => {
        node.onLeader(() => {
          throw new Error('sync failure');
        });
        node.onLeader(() => Promise.reject(new Error('async failure')));
        node.onLeader(() => {
          ran.push(node.id);
        });
        node.onFollower(() => {
          throw new Error('follower failure');
        });
        node.on('leaderChange', () => {
          throw new Error('listener failure');
        });
      },
    });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    await runChecked(c, 3000);
    assert.equal(c.leader(), leader, 'the leader keeps its lease');
    assert.deepEqual(ran, [leader.id]);
    assert.ok(leader.stats().renewals > 5);
    // sync + async throw + leaderChange listener on the leader.
    assert.equal(leader.stats().handlerErrors, 3);
    for (const node of c.nodes()) {
      if (node !== leader) assert.equal(node.stats().handlerErrors, 2);
    }
    const messages = logger.lines.filter((l) => l.level === 'error').map((l) => l.message);
    assert.ok(messages.includes('an onLeader handler failed'));
    assert.ok(messages.includes('an onFollower handler failed'));
    assert.ok(messages.includes('an event listener failed'));
  });

  it('does not count work that ends by rethrowing its signal reason as a failure', async () => {
    cluster = createTestCluster({
      size: 3,
      setup: (node) =>
        node.onLeader(
          ({ signal }) =>
            new Promise((_, reject) => {
              signal.addEventListener('abort', () => {
                reject(signal.reason as Error);
              });
            }),
        ),
    });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    c.isolate(leader.id);
    await c.advance(2000);
    assert.equal(leader.stats().handlerErrors, 0);
  });

  it('counts elections, renewals, leader changes and frames', async () => {
    cluster = createTestCluster({ size: 3, leaseMs: 1000 });
    const c = cluster;
    await c.start();
    const leader = await c.waitForLeader();
    await c.advance(3000);
    const stats = leader.stats();
    assert.equal(stats.elections, 1);
    // A renewal every third of a lease.
    assert.ok(stats.renewals >= 8 && stats.renewals <= 10, `renewals ${stats.renewals}`);
    assert.equal(stats.depositions, 0);
    assert.equal(stats.leaderChanges, 1);
    assert.equal(stats.leaderHandlerRuns, 0);
    assert.ok(stats.framesOut > 0 && stats.framesIn > 0);
    assert.ok(stats.wakeups > 0);
    assert.ok(stats.transport !== null);
    assert.equal(stats.transport.sent, stats.framesOut);
    assert.ok(Object.values(stats.invalidFrames).every((n) => n === 0));
    for (const node of c.nodes()) {
      if (node !== leader) assert.equal(node.stats().elections, 0);
    }
    c.isolate(leader.id);
    await c.advance(2000);
    assert.equal(leader.stats().depositions, 1);
  });

  it('is silent by default and accepts a pino logger', async () => {
    const peers = ['a'];
    const node = createNode({
      id: 'a',
      peers,
      transport: idleTransport('a', peers),
      logger: pino({ level: 'silent' }),
      logLevel: 'warn',
    });
    assert.equal(node.isLeader, false);
    assert.equal(node.leaderId, null);
    assert.equal(node.term, null);
    assert.equal(node.state, 'new');
    await node.stop();
    assert.equal(node.state, 'stopped');
    await assert.rejects(node.start(), { code: 'SYNOD_NOT_STARTED' });
  });

  it('rejects start() when the transport cannot start, and ends stopped', async () => {
    const peers = ['a', 'b', 'c'];
    const transport = idleTransport('a', peers);
    transport.start = () => Promise.reject(new TransportError('no route'));
    const node = createNode({ id: 'a', peers, transport });
    await assert.rejects(node.start(), TransportError);
    assert.equal(node.state, 'stopped');
    await node.stop();
  });

  it('stops cleanly when stop() is called while starting', async () => {
    cluster = createTestCluster({ size: 3, storage: true });
    const c = cluster;
    const node = c.node('n1');
    const starting = node.start();
    assert.equal(node.state, 'starting');
    const stopping = node.stop();
    await starting;
    await stopping;
    assert.equal(node.state, 'stopped');
    assert.equal(node.isLeader, false);
  });

  it('leads alone in a 1-node cluster after its silence', async () => {
    cluster = createTestCluster({ size: 1, leaseMs: 200 });
    const c = cluster;
    await c.start();
    await c.advance(199);
    assert.equal(c.leader(), null);
    const leader = await c.waitForLeader(200);
    assert.equal(leader.leaderId, leader.id);
  });
});
