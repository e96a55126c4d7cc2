import assert from 'node:assert/strict';
import sinon from 'sinon';
import { MemoryNetwork, MemoryStorage } from '../../adapters/memory/index.js';
import type { Scheduler } from '../../lib/clock.js';
import { ConfigError, TransportError } from '../../lib/errors.js';
import type { PeerEvent, Transport } from '../../lib/transport.js';
import { transportConformance, type ConformanceCluster } from './suite.js';

// --- The shared suite, on sinon fake timers through the default (global) scheduler ----------

describe('memory adapter', function () {
  let clock: sinon.SinonFakeTimers;
  beforeEach(function () {
    clock = sinon.useFakeTimers();
  });
  afterEach(function () {
    clock.restore();
  });

  function cluster(options: ConstructorParameters<typeof MemoryNetwork>[0]) {
    return (ids: string[]): Promise<ConformanceCluster> => {
      const network = new MemoryNetwork(options);
      const transports = ids.map((id) => network.transport(id, ids));
      const all = [...transports];
      return Promise.resolve({
        transports,
        tick: async (ms: number) => {
          await clock.tickAsync(ms);
        },
        crash: (id: string) => {
          network.crash(id);
          return Promise.resolve();
        },
        restart: (id: string) => {
          network.restart(id);
          const transport = network.transport(id, ids);
          all.push(transport);
          return Promise.resolve(transport);
        },
        close: async () => {
          await Promise.all(all.map((t) => t.close()));
        },
      });
    };
  }

  transportConformance('memory', cluster({}));
  // Random delays reorder frames; the suite must not depend on order across frames.
  transportConformance('memory with delays of 1-20 ms', cluster({ seed: 7, delayMs: [1, 20] }));
});

// --- Memory-only behaviour, on a small virtual scheduler passed in -------------------------

interface Timer {
  readonly at: number;
  readonly seq: number;
  readonly callback: () => void;
}

/** Runs timers in (time, creation) order when told to; nothing runs by itself. */
class VirtualScheduler implements Scheduler {
  now = 0;
  #seq = 0;
  #timers: Timer[] = [];

  setTimeout(callback: () => void, delayMs: number): unknown {
    const timer = { at: this.now + Math.max(0, delayMs), seq: this.#seq++, callback };
    this.#timers.push(timer);
    return timer;
  }

  clearTimeout(handle: unknown): void {
    this.#timers = this.#timers.filter((t) => t !== handle);
  }

  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      let next: Timer | undefined;
      for (const t of this.#timers) {
        if (
          t.at <= end &&
          (next === undefined || t.at < next.at || (t.at === next.at && t.seq < next.seq))
        ) {
          next = t;
        }
      }
      if (next === undefined) break;
      const due = next;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.now = due.at;
      due.callback();
    }
    this.now = end;
  }
}

interface Node {
  readonly transport: Transport;
  readonly frames: { from: string; frame: string; at: number }[];
  readonly events: PeerEvent[];
}

/** A started network of nodes a, b, c (or `ids`) on a virtual scheduler. */
function setUp(
  options: Omit<NonNullable<ConstructorParameters<typeof MemoryNetwork>[0]>, 'scheduler'> = {},
  ids = ['a', 'b', 'c'],
) {
  const scheduler = new VirtualScheduler();
  const network = new MemoryNetwork({ ...options, scheduler });
  const nodes = new Map<string, Node>();
  const add = (id: string): Node => {
    const transport = network.transport(id, ids);
    const node: Node = { transport, frames: [], events: [] };
    transport.onMessage((from, frame) => node.frames.push({ from, frame, at: scheduler.now }));
    transport.onPeer((event) => node.events.push(event));
    void transport.start();
    nodes.set(id, node);
    return node;
  };
  for (const id of ids) add(id);
  scheduler.advance(0);
  const node = (id: string): Node => {
    const n = nodes.get(id);
    assert.ok(n, `no node ${id}`);
    return n;
  };
  const frames = (id: string): string[] => node(id).frames.map((f) => f.frame);
  const isUp = (id: string, peer: string): boolean =>
    node(id).events.findLast((e) => e.peer === peer)?.up ?? false;
  return { scheduler, network, node, frames, isUp, add };
}

function sendMany(transport: Transport, to: string, count: number): string[] {
  const sent: string[] = [];
  for (let i = 0; i < count; i++) {
    const frame = `f${i}`;
    transport.send(to, frame);
    sent.push(frame);
  }
  return sent;
}

function assertConfigError(fn: () => unknown, names: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.match(error.message, new RegExp(names));
    return true;
  });
}

describe('MemoryNetwork', function () {
  describe('options', function () {
    it('rejects invalid options with a ConfigError naming the option', function () {
      const cases: [Record<string, unknown>, string][] = [
        [{ lossRate: -0.1 }, 'lossRate'],
        [{ lossRate: 1.5 }, 'lossRate'],
        [{ lossRate: Number.NaN }, 'lossRate'],
        [{ lossRate: '0.1' }, 'lossRate'],
        [{ duplicateRate: 2 }, 'duplicateRate'],
        [{ delayMs: [5, 1] }, 'delayMs'],
        [{ delayMs: [-1, 2] }, 'delayMs'],
        [{ delayMs: [0.5, 1] }, 'delayMs'],
        [{ delayMs: [1] }, 'delayMs'],
        [{ delayMs: 5 }, 'delayMs'],
        [{ seed: 1.5 }, 'seed'],
        [{ seed: Number.NaN }, 'seed'],
        [{ scheduler: {} }, 'scheduler'],
        [{ scheduler: null }, 'scheduler'],
        [{ lossrate: 0.1 }, 'lossrate.*allowed: scheduler, seed, delayMs, lossRate, duplicateRate'],
      ];
      for (const [options, names] of cases) {
        assertConfigError(() => new MemoryNetwork(options), names);
      }
    });

    it('rejects invalid fault settings with a ConfigError naming the setting', function () {
      const { network } = setUp();
      assertConfigError(() => {
        network.setLoss(2);
      }, 'lossRate');
      assertConfigError(() => {
        network.setDuplication(-1);
      }, 'duplicateRate');
      assertConfigError(() => {
        network.setDelay(3, 1);
      }, 'delayMs');
      assertConfigError(() => {
        network.partition(['a'], ['a', 'b']);
      }, 'partition');
      assertConfigError(() => {
        network.cut('', 'b');
      }, 'from');
    });

    it('rejects invalid ids and peer lists', function () {
      const network = new MemoryNetwork();
      assertConfigError(() => network.transport('', []), 'id');
      assertConfigError(() => network.transport('x'.repeat(65), []), 'id');
      assertConfigError(() => network.transport('a', ['b', 'b']), 'peers');
      assertConfigError(() => network.transport('a', ['']), 'peers');
      assertConfigError(() => network.transport('a', 'b' as never), 'peers');
    });

    it('leaves the node itself out of its peers', function () {
      const transport = new MemoryNetwork().transport('a', ['a', 'b', 'c']);
      assert.deepEqual(transport.peers, ['b', 'c']);
    });

    it('refuses a second open transport for one id, but allows one after close', async function () {
      const network = new MemoryNetwork();
      const first = network.transport('a', ['b']);
      assertConfigError(() => network.transport('a', ['b']), 'already has an open transport');
      await first.close();
      assert.doesNotThrow(() => network.transport('a', ['b']));
    });
  });

  describe('delivery', function () {
    it('delivers through the scheduler, never inside send, even at zero delay', function () {
      const { scheduler, node, frames } = setUp();
      node('a').transport.send('b', 'x');
      assert.deepEqual(frames('b'), []);
      scheduler.advance(0);
      assert.deepEqual(frames('b'), ['x']);
    });

    it('delays every frame by the configured delay', function () {
      const { scheduler, network, node, frames } = setUp();
      network.setDelay(10, 10);
      node('a').transport.send('b', 'x');
      scheduler.advance(9);
      assert.deepEqual(frames('b'), []);
      scheduler.advance(1);
      assert.deepEqual(frames('b'), ['x']);
    });

    it('reorders frames under random delays, losing none', function () {
      const { scheduler, node, frames } = setUp({ seed: 3, delayMs: [0, 50] });
      const sent = sendMany(node('a').transport, 'b', 50);
      scheduler.advance(50);
      assert.notDeepEqual(frames('b'), sent);
      assert.deepEqual([...frames('b')].sort(), [...sent].sort());
    });
  });

  describe('faults', function () {
    it('loses about lossRate of the frames, all at 1 and none at 0', function () {
      const { scheduler, network, node, frames } = setUp({ seed: 11, lossRate: 0.3 });
      sendMany(node('a').transport, 'b', 1000);
      scheduler.advance(0);
      const arrived = frames('b').length;
      assert.ok(arrived > 620 && arrived < 780, `${arrived} of 1000 arrived`);
      assert.equal(network.stats().lost, 1000 - arrived);
      network.setLoss(1);
      sendMany(node('a').transport, 'c', 100);
      network.setLoss(0);
      sendMany(node('b').transport, 'c', 100);
      scheduler.advance(0);
      assert.deepEqual(
        node('c').frames.map((f) => f.from),
        Array<string>(100).fill('b'),
      );
    });

    it('delivers every frame twice at duplicateRate 1, and about half of them at 0.5', function () {
      const { scheduler, network, node, frames } = setUp({ seed: 5, duplicateRate: 1 });
      const sent = sendMany(node('a').transport, 'b', 20);
      scheduler.advance(0);
      assert.deepEqual([...frames('b')].sort(), [...sent, ...sent].sort());
      assert.equal(network.stats().duplicated, 20);
      assert.equal(node('b').transport.stats().delivered, 40);

      network.setDuplication(0.5);
      sendMany(node('a').transport, 'c', 1000);
      scheduler.advance(0);
      const extra = frames('c').length - 1000;
      assert.ok(extra > 420 && extra < 580, `${extra} duplicates`);
    });

    it('cuts one direction only, reports the link down both ways, and restores it', function () {
      const { scheduler, network, node, frames, isUp } = setUp();
      network.cut('a', 'b');
      node('a').transport.send('b', 'a->b');
      node('b').transport.send('a', 'b->a');
      scheduler.advance(0);
      assert.deepEqual(frames('b'), []);
      assert.deepEqual(frames('a'), ['b->a']);
      assert.equal(network.stats().blocked, 1);
      assert.equal(isUp('a', 'b'), false);
      assert.equal(isUp('b', 'a'), false);
      assert.equal(isUp('a', 'c'), true);

      network.restore('a', 'b');
      scheduler.advance(0);
      assert.equal(isUp('a', 'b'), true);
      assert.equal(isUp('b', 'a'), true);
      node('a').transport.send('b', 'again');
      scheduler.advance(0);
      assert.deepEqual(frames('b'), ['again']);
    });

    it('partitions into groups that cannot reach one another, until heal', function () {
      const { scheduler, network, node, frames, isUp } = setUp({}, ['a', 'b', 'c', 'd', 'e']);
      network.partition(['a', 'b'], ['c']);
      for (const from of ['a', 'b', 'c', 'd', 'e']) {
        for (const to of ['a', 'b', 'c', 'd', 'e']) {
          if (from !== to) node(from).transport.send(to, from);
        }
      }
      scheduler.advance(0);
      // d and e, in no group, form one group together.
      assert.deepEqual([...frames('a')].sort(), ['b']);
      assert.deepEqual([...frames('c')].sort(), []);
      assert.deepEqual([...frames('d')].sort(), ['e']);
      assert.equal(isUp('a', 'b'), true);
      assert.equal(isUp('a', 'c'), false);
      assert.equal(isUp('c', 'a'), false);
      assert.equal(isUp('d', 'a'), false);

      network.heal();
      scheduler.advance(0);
      assert.equal(isUp('a', 'c'), true);
      assert.equal(isUp('d', 'a'), true);
      node('c').transport.send('a', 'healed');
      scheduler.advance(0);
      assert.ok(frames('a').includes('healed'));
    });

    it('drops frames that are in flight when a partition starts', function () {
      const { scheduler, network, node, frames } = setUp({ delayMs: [10, 10] });
      node('a').transport.send('b', 'in flight');
      scheduler.advance(5);
      network.partition(['a'], ['b', 'c']);
      scheduler.advance(10);
      assert.deepEqual(frames('b'), []);
      assert.equal(network.stats().blocked, 1);
    });

    it('isolates a node both ways until heal', function () {
      const { scheduler, network, node, frames, isUp } = setUp();
      network.isolate('a');
      node('a').transport.send('b', 'from a');
      node('b').transport.send('a', 'to a');
      node('b').transport.send('c', 'b to c');
      scheduler.advance(0);
      assert.deepEqual(frames('a'), []);
      assert.deepEqual(frames('b'), []);
      assert.deepEqual(frames('c'), ['b to c']);
      assert.equal(isUp('b', 'a'), false);
      network.heal();
      scheduler.advance(0);
      assert.equal(isUp('b', 'a'), true);
    });

    it('holds frames and peer events for a paused node and hands them over in order', function () {
      const { scheduler, network, node, frames, isUp } = setUp();
      network.pause('b');
      const sent = sendMany(node('a').transport, 'b', 10);
      network.crash('c');
      scheduler.advance(100);
      assert.deepEqual(frames('b'), []);
      assert.equal(isUp('b', 'c'), true);
      assert.equal(network.stats().held, 11);

      network.resume('b');
      assert.deepEqual(frames('b'), [], 'resume hands over through the scheduler');
      scheduler.advance(0);
      assert.deepEqual(frames('b'), sent);
      assert.equal(isUp('b', 'c'), false);
      assert.equal(network.stats().held, 0);
    });

    it('queues frames that arrive during the hand-over behind the backlog', function () {
      const { scheduler, network, node, frames } = setUp({ delayMs: [5, 5] });
      network.pause('b');
      node('a').transport.send('b', '1');
      node('a').transport.send('b', '2');
      scheduler.advance(5);
      network.setDelay(0, 0);
      // Its timer is due before the hand-over's: without the queue it would jump ahead.
      node('a').transport.send('b', '3');
      network.resume('b');
      scheduler.advance(0);
      assert.deepEqual(frames('b'), ['1', '2', '3']);
    });

    it('delivers what a crashed node sent, loses what was sent to it', function () {
      const { scheduler, network, node, frames, isUp } = setUp({ delayMs: [10, 10] });
      const a = node('a').transport;
      a.send('b', 'last words');
      node('b').transport.send('a', 'too late');
      scheduler.advance(5);
      network.crash('a');
      assert.doesNotThrow(() => {
        a.send('b', 'from beyond');
      });
      assert.equal(a.stats().dropped.closed, 1);
      scheduler.advance(10);
      assert.deepEqual(frames('b'), ['last words']);
      assert.deepEqual(frames('a'), []);
      assert.equal(network.stats().undeliverable, 1);
      assert.equal(isUp('b', 'a'), false);
      assert.equal(isUp('c', 'a'), false);
    });

    it('refuses a transport for a crashed id until restart, then starts it clean', async function () {
      const { scheduler, network, node, frames, isUp, add } = setUp({ delayMs: [10, 10] });
      node('b').transport.send('a', 'to the old a');
      network.crash('a');
      assertConfigError(() => network.transport('a', ['b', 'c']), 'restart');
      await assert.rejects(node('a').transport.start(), TransportError);

      network.restart('a');
      add('a');
      scheduler.advance(10);
      assert.deepEqual(frames('a'), [], 'a frame to the old process never reaches the new one');
      assert.equal(isUp('a', 'b'), true);
      assert.equal(isUp('b', 'a'), true);
      node('b').transport.send('a', 'to the new a');
      scheduler.advance(10);
      assert.deepEqual(frames('a'), ['to the new a']);
    });

    it('gives the same run for the same seed, another for another seed', function () {
      function run(seed: number): string[] {
        const { scheduler, node, network } = setUp({
          seed,
          delayMs: [0, 30],
          lossRate: 0.2,
          duplicateRate: 0.2,
        });
        const trace: string[] = [];
        for (const id of ['a', 'b', 'c']) {
          node(id).transport.onMessage((from, frame) => {
            trace.push(`${scheduler.now} ${from}->${id} ${frame}`);
          });
        }
        for (let round = 0; round < 20; round++) {
          for (const from of ['a', 'b', 'c']) {
            for (const to of ['a', 'b', 'c']) {
              if (from !== to) node(from).transport.send(to, `r${round}`);
            }
          }
          if (round === 10) network.partition(['a'], ['b', 'c']);
          if (round === 15) network.heal();
          scheduler.advance(7);
        }
        scheduler.advance(100);
        return trace;
      }
      const first = run(42);
      assert.ok(first.length > 50);
      assert.deepEqual(run(42), first);
      assert.notDeepEqual(run(43), first);
    });
  });

  describe('inject', function () {
    it('hands a frame to the receiver at once, as if its peer had sent it', function () {
      const { network, node, frames } = setUp({ lossRate: 1, delayMs: [50, 50] });
      network.inject('b', 'a', 'raw {');
      // No loss, no delay: the sender's side is skipped, and the handler ran inside the call.
      assert.deepEqual(node('a').frames, [{ from: 'b', frame: 'raw {', at: 0 }]);
      assert.deepEqual(frames('b'), []);
      assert.equal(node('a').transport.stats().delivered, 1);
    });

    it("applies the receiver's side: unknown peers, links, pauses and a closed receiver", function () {
      const { scheduler, network, node, frames } = setUp();
      network.inject('eve', 'a', 'x');
      assert.equal(node('a').transport.stats().dropped['unknown-peer'], 1);
      network.isolate('a');
      network.inject('b', 'a', 'y');
      network.heal();
      network.pause('a');
      network.inject('c', 'a', 'z');
      assert.deepEqual(frames('a'), []);
      network.resume('a');
      scheduler.advance(0);
      assert.deepEqual(frames('a'), ['z']);
      network.crash('a');
      network.inject('b', 'a', 'w');
      assert.deepEqual(frames('a'), ['z']);
      assert.equal(network.stats().blocked, 1);
      assert.equal(network.stats().undeliverable, 1);
    });

    it('counts a handler that throws, as for any frame', function () {
      const { network, node } = setUp();
      node('a').transport.onMessage(() => {
        throw new Error('boom');
      });
      assert.doesNotThrow(() => {
        network.inject('b', 'a', 'x');
      });
      assert.equal(node('a').transport.stats().handlerErrors, 1);
    });
  });
});

describe('MemoryStorage', function () {
  interface Record {
    promised: { round: number; node: string } | null;
    tokens: bigint[];
    seen: Map<string, number>;
  }
  const record = (): Record => ({
    promised: { round: 3, node: 'a' },
    tokens: [1n, 2n ** 63n - 1n],
    seen: new Map([['x', 1]]),
  });

  it('loads null before anything was saved', async function () {
    assert.equal(await new MemoryStorage<Record>().load(), null);
  });

  it('loads what was saved, as a deep copy neither side can change', async function () {
    const storage = new MemoryStorage<Record>();
    const saved = record();
    await storage.save(saved);
    saved.promised = null;
    saved.tokens.push(5n);
    const loaded = await storage.load();
    assert.deepEqual(loaded, record());
    assert.ok(loaded);
    loaded.seen.set('y', 2);
    assert.deepEqual(await storage.load(), record());
    assert.equal(storage.saves, 1);
  });

  it('starts from an initial record, as a node restarting with its disk', async function () {
    const storage = new MemoryStorage<Record>(record());
    assert.deepEqual(await storage.load(), record());
  });

  it('rejects a record it cannot copy and keeps the previous one', async function () {
    const storage = new MemoryStorage<unknown>({ ok: true });
    await assert.rejects(storage.save({ fn: () => 1 }));
    assert.deepEqual(await storage.load(), { ok: true });
    assert.equal(storage.saves, 0);
  });
});
