import assert from 'node:assert/strict';
import { ClientRequest, IncomingMessage } from 'node:http';
import { Session } from 'node:inspector/promises';
import { Socket } from 'node:net';
import { getHeapCodeStatistics } from 'node:v8';
import sinon from 'sinon';
import { WebSocket } from 'ws';
import { HANDSHAKE_WINDOW_MS } from '../../adapters/websocket/handshake.js';
import { WebSocketTransport } from '../../adapters/websocket/index.js';
import { Link } from '../../adapters/websocket/link.js';
import { Listener } from '../../adapters/websocket/listener.js';
import {
  CLUSTER,
  collector,
  FAST,
  freePort,
  SECRET,
  TcpGate,
  waitFor,
} from './websocket-harness.js';

/**
 * A thousand reconnections leave nothing behind: no socket, timer or server, no object of the
 * transport's, no heap.
 *
 * Two transports on loopback, each binding its own server, and between them the network: each
 * dials the other through a TCP gate the test controls. A cycle cuts every connection at the
 * gates (what a crashed peer or a broken network looks like to both ends: the sockets go, with
 * no close frame); one cycle in every `RESTART_EVERY` restarts `a` instead (a new transport, a
 * new instance, on the same port). Either way both ends must redial on their own and carry a
 * frame each way again.
 *
 * After `WARM_UP` cycles (caches, pools and the JIT warmed up), the test takes a baseline in a
 * settled state (one connection, nothing closing): the process's active resources by kind, the
 * live instances of the classes a connection is made of, and the heap after forced collections.
 * After `MEASURED` more cycles, no kind of resource and no class may count more than at the
 * baseline (fewer is fine: what earlier tests left behind, a timer or a socket closing late, may
 * go away meanwhile; on its own this test comes back to exactly the baseline), and the heap
 * must be within `MAX_HEAP_GROWTH_BYTES` of it: a leak of 1 KiB a cycle would add 1000 KiB.
 *
 * The heap is noisy for reasons that are no leak: the JIT keeps optimising the hot path for
 * thousands of cycles, and its code and bookkeeping grow meanwhile (a heap snapshot diff shows
 * nothing else growing). So the heap is measured without the code V8 reports (machine code,
 * bytecode and their metadata), a full collection runs every `COLLECT_EVERY` cycles (V8 frees
 * dead code and trims its bookkeeping only then, and a heap this small rarely gets one), and
 * each figure is the least of several samples. What is left grew by 160–330 KiB in our runs
 * (alone or in the whole suite); the bound sits well above that and well below what a leak of
 * 1 KiB a cycle adds.
 *
 * The wall clock is faked (`Date` only) and moved a second on every cycle, so the nonces of the
 * handshakes leave the replay cache after their window as they would in production; without
 * that, a thousand cycles inside one real minute would fill it by design.
 */

const WARM_UP = 200;
const MEASURED = 1000;
const RESTART_EVERY = 25;
const WALL_CLOCK_STEP_MS = 1000;
const MAX_HEAP_GROWTH_BYTES = 768 * 1024;
const HEAP_SAMPLES = 5;
const COLLECT_EVERY = 100;
/**
 * What the test adds to the process's active resources once settled: two servers and two gates;
 * the one connection's sockets (the dialler's, the gate's two, the listener's); and its liveness
 * timer at each end.
 */
const SETTLED: Readonly<Record<string, number>> = {
  TCPServerWrap: 4,
  TCPSocketWrap: 4,
  Timeout: 2,
};

/** The classes a connection is made of: none may pile up. */
const PROTOTYPES: Readonly<Record<string, object>> = {
  WebSocketTransport: WebSocketTransport.prototype,
  Listener: Listener.prototype,
  Link: Link.prototype,
  WebSocket: WebSocket.prototype,
  Socket: Socket.prototype,
  IncomingMessage: IncomingMessage.prototype,
  ClientRequest: ClientRequest.prototype,
};

/**
 * Waits that end as soon as their condition holds: checked on every event the transports
 * report, and every few ms besides. (Polling alone would spend most of each cycle asleep.)
 */
class Events {
  readonly #checks = new Set<() => void>();

  notify(): void {
    for (const check of [...this.#checks]) check();
  }

  until(what: string, condition: () => boolean, timeoutMs = 5000, everyMs = 10): Promise<void> {
    return new Promise((resolve, reject) => {
      const deadline = performance.now() + timeoutMs;
      const check = (): void => {
        if (condition()) {
          done();
          resolve();
        } else if (performance.now() > deadline) {
          done();
          reject(new Error(`timed out after ${timeoutMs} ms: ${what}`));
        }
      };
      const timer = setInterval(check, everyMs);
      const done = (): void => {
        clearInterval(timer);
        this.#checks.delete(check);
      };
      this.#checks.add(check);
      check();
    });
  }
}

/** What a transport reported, kept small: only the latest of everything. */
interface Watched {
  readonly transport: WebSocketTransport;
  up: boolean;
  downs: number;
  lastFrame: string | null;
}

function watch(transport: WebSocketTransport, events: Events): Watched {
  const w: Watched = { transport, up: false, downs: 0, lastFrame: null };
  transport.onMessage((_from, frame) => {
    w.lastFrame = frame;
    events.notify();
  });
  transport.onPeer((event) => {
    w.up = event.up;
    if (!event.up) w.downs += 1;
    events.notify();
  });
  return w;
}

type Counts = Record<string, number>;

/** The process's active resources (sockets, servers, timers …), counted by kind. */
function activeResources(): Counts {
  const counts: Counts = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

function show(counts: Counts): string {
  return JSON.stringify(Object.fromEntries(Object.entries(counts).sort()));
}

/** The kinds `counts` has more of than `limit` allows. */
function above(counts: Counts, limit: Counts): string[] {
  return Object.keys(counts).filter((kind) => (counts[kind] ?? 0) > (limit[kind] ?? 0));
}

/** The heap after forced collections, whole and without compiled code; least of samples. */
async function heapAfterCollection(gc: () => void): Promise<{ used: number; data: number }> {
  let used = Number.POSITIVE_INFINITY;
  let data = Number.POSITIVE_INFINITY;
  for (let i = 0; i < HEAP_SAMPLES; i++) {
    // Let callbacks queued by the last cycle run (and drop what they hold) before collecting.
    await new Promise<void>((resolve) => setImmediate(resolve));
    gc();
    const code = getHeapCodeStatistics();
    const heapUsed = process.memoryUsage().heapUsed;
    used = Math.min(used, heapUsed);
    data = Math.min(data, heapUsed - code.code_and_metadata_size - code.bytecode_and_metadata_size);
  }
  return { used, data };
}

/**
 * Live instances of each prototype, from the inspector's `queryObjects` (which collects
 * garbage first): exact, where heap figures are noisy.
 */
async function liveInstances(): Promise<Counts> {
  const session = new Session();
  session.connect();
  const probe = '__synodLeakProbe';
  const global = globalThis as Record<string, unknown>;
  try {
    const counts: Counts = {};
    for (const [name, prototype] of Object.entries(PROTOTYPES)) {
      global[probe] = prototype;
      const { result } = await session.post('Runtime.evaluate', {
        expression: `globalThis.${probe}`,
      });
      assert.ok(result.objectId !== undefined);
      const { objects } = await session.post('Runtime.queryObjects', {
        prototypeObjectId: result.objectId,
      });
      assert.ok(objects.objectId !== undefined);
      const length = await session.post('Runtime.callFunctionOn', {
        objectId: objects.objectId,
        functionDeclaration: 'function () { return this.length; }',
        returnByValue: true,
      });
      counts[name] = length.result.value as number;
    }
    return counts;
  } finally {
    Reflect.deleteProperty(global, probe);
    session.disconnect();
  }
}

describe('websocket transport: reconnection leaves nothing behind', function () {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async function () {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it(`keeps sockets, timers, objects, replay cache and heap flat over ${MEASURED} reconnect cycles`, async function () {
    this.timeout(60_000);
    const gc = collector();
    assert.ok(gc, 'this test needs a garbage collector: V8 refused --expose-gc');
    const started = performance.now();
    // mocha arms the test's own timeout timer once the test's first step has run.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const before = activeResources();

    const wallClock = sinon.useFakeTimers({ now: Date.now(), toFake: ['Date'] });
    cleanups.push(() => {
      wallClock.restore();
      return Promise.resolve();
    });
    const ports = { a: await freePort(), b: await freePort() };
    // toA carries what b dials to a; toB what a dials to b.
    const toA = await TcpGate.open(ports.a);
    const toB = await TcpGate.open(ports.b);
    const events = new Events();
    const make = (self: 'a' | 'b'): Watched =>
      watch(
        new WebSocketTransport({
          self,
          peers: self === 'a' ? { b: toB.url } : { a: toA.url },
          listen: { host: '127.0.0.1', port: ports[self] },
          cluster: CLUSTER,
          secret: SECRET,
          ...FAST,
          // Redial at once (the first delay is a draw below 1 ms), and never wait long after.
          reconnect: { baseMs: 1, maxMs: 8 },
          // Measuring blocks the event loop for a while: no peer is to time out meanwhile.
          peerTimeoutMs: 60_000,
        }),
        events,
      );
    let a = make('a');
    const b = make('b');
    cleanups.push(async () => {
      await Promise.all([a.transport.close(), b.transport.close()]);
      await Promise.all([toA.close(), toB.close()]);
    });
    await Promise.all([a.transport.start(), b.transport.start()]);
    await events.until('a and b up', () => a.up && b.up);

    /**
     * Waits until one connection is left and nothing is closing, so no kind of resource counts
     * more than `limit`: the state to compare.
     */
    const settle = async (cycle: number, limit: Counts): Promise<Counts> => {
      let now = activeResources();
      try {
        await waitFor(
          `cycle ${cycle}: resources settle within ${show(limit)}`,
          () => {
            now = activeResources();
            return (
              a.transport.stats().connections === 1 &&
              b.transport.stats().connections === 1 &&
              above(now, limit).length === 0
            );
          },
          5000,
          5,
        );
      } catch (error) {
        throw new Error(`${String(error)}; still ${show(now)}`, { cause: error });
      }
      return now;
    };

    // Dials made by every `a` so far, by cycle: the handshakes b may still remember.
    const dialsOfA = new Float64Array(WARM_UP + MEASURED + 1);
    let dialsOfEarlierA = 0;
    let baseline: { resources: Counts; instances: Counts; heap: { used: number; data: number } } = {
      resources: {},
      instances: {},
      heap: { used: 0, data: 0 },
    };

    for (let cycle = 1; cycle <= WARM_UP + MEASURED; cycle++) {
      wallClock.setSystemTime(Date.now() + WALL_CLOCK_STEP_MS);
      const downsB = b.downs;
      const restart = cycle % RESTART_EVERY === 0;
      if (restart) {
        dialsOfEarlierA += a.transport.stats().dials;
        await a.transport.close();
        a = make('a');
        await a.transport.start();
      } else {
        // The pair's connection goes, and any dial in flight with it.
        toA.cut();
        toB.cut();
      }
      const downsA = a.downs;
      // The new `a` is up only once it connected; b may see its old connection replaced by the
      // new instance's without a 'down' in between (the tie-break's restart rule).
      await events.until(
        `cycle ${cycle}: both ends saw the connection go and come back`,
        () => (restart || (a.downs > downsA && b.downs > downsB)) && a.up && b.up,
      );
      // A frame each way proves the connection carries traffic. Sent again until it arrives: a
      // frame may go over a duplicate connection in the moment before the tie-break closes it.
      const tag = `cycle ${cycle}`;
      await events.until(`cycle ${cycle}: a frame each way`, () => {
        if (b.lastFrame !== tag) a.transport.send('b', tag);
        if (a.lastFrame !== tag) b.transport.send('a', tag);
        return a.lastFrame === tag && b.lastFrame === tag;
      });
      dialsOfA[cycle] = dialsOfEarlierA + a.transport.stats().dials;
      if (cycle % COLLECT_EVERY === 0) gc();

      if (cycle === WARM_UP) {
        const settled = { ...before };
        for (const [kind, count] of Object.entries(SETTLED)) {
          settled[kind] = (settled[kind] ?? 0) + count;
        }
        const resources = await settle(cycle, settled);
        // Counted before the heap is: the inspector's first use leaves some memory of its own.
        const instances = await liveInstances();
        baseline = { resources, instances, heap: await heapAfterCollection(gc) };
      }
    }

    const resources = await settle(WARM_UP + MEASURED, baseline.resources);
    const heap = await heapAfterCollection(gc);
    const instances = await liveInstances();
    const grown = {
      used: heap.used - baseline.heap.used,
      data: heap.data - baseline.heap.data,
    };
    const kib = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`;
    // For the record: the figures behind the bounds.
    console.log(
      `      over ${MEASURED} cycles: heap ${kib(grown.data)} without compiled code ` +
        `(${kib(grown.used)} with), resources ${show(resources)}, instances ` +
        `${show(instances)}, replay cache ${b.transport.stats().nonceCacheSize}, ` +
        `${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    assert.deepEqual(
      above(instances, baseline.instances),
      [],
      `live instances: ${show(instances)} after, ${show(baseline.instances)} at the baseline`,
    );
    assert.ok(
      grown.data < MAX_HEAP_GROWTH_BYTES,
      `the heap grew by ${kib(grown.data)} over ${MEASURED} cycles`,
    );

    // The replay cache holds the handshakes of one window, whatever the number of cycles: at
    // most the dials a made in the last window's worth of cycles.
    const last = WARM_UP + MEASURED;
    const windowCycles = Math.ceil(HANDSHAKE_WINDOW_MS / WALL_CLOCK_STEP_MS) + 1;
    const recentDials = (dialsOfA[last] ?? 0) - (dialsOfA[last - windowCycles] ?? 0);
    const bStats = b.transport.stats();
    assert.ok(
      bStats.nonceCacheSize <= recentDials,
      `b remembers ${bStats.nonceCacheSize} nonces; a dialled ${recentDials} times in the window`,
    );
    // Every cut is a reconnection b counts (a restart may replace the connection without one).
    const cuts = last - Math.floor(last / RESTART_EVERY);
    assert.ok(
      bStats.reconnects >= cuts,
      `b counted ${bStats.reconnects} reconnections for ${cuts} cuts`,
    );
  });
});
