import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  WebSocketTransport,
  type WebSocketTransportOptions,
} from '../../adapters/websocket/index.js';
import { HANDSHAKE_HEADERS, listenerProof } from '../../adapters/websocket/handshake.js';
import { PROTOCOL_VERSION } from '../../lib/codec/messages.js';
import { TransportError } from '../../lib/errors.js';
import { VirtualClock } from '../../lib/testing/virtual-clock.js';
import {
  closed,
  CLUSTER,
  FAST,
  freePort,
  puppetDial,
  puppetHeaders,
  puppetOpen,
  SECRET,
  sleep,
  TestServer,
  waitFor,
  record,
  type Recorded,
} from './websocket-harness.js';

type Node = Recorded;

/** Nodes on test-owned servers, plus URLs for puppet ids that nobody answers at. */
async function cluster(
  ids: string[],
  puppets: string[] = [],
  options: Partial<WebSocketTransportOptions> = {},
): Promise<{
  nodes: Map<string, Node>;
  hosts: Map<string, TestServer>;
  node(id: string): Node;
  host(id: string): TestServer;
  close(): Promise<void>;
}> {
  const hosts = new Map<string, TestServer>();
  for (const id of ids) hosts.set(id, await TestServer.listen());
  const peers: Record<string, string> = {};
  for (const id of ids) peers[id] = hosts.get(id)?.url ?? '';
  for (const id of puppets) peers[id] = `ws://127.0.0.1:${await freePort()}/`;
  const nodes = new Map<string, Node>();
  for (const id of ids) {
    const host = hosts.get(id);
    assert.ok(host);
    nodes.set(
      id,
      record(
        new WebSocketTransport({
          self: id,
          peers,
          listen: { server: host.server },
          cluster: CLUSTER,
          secret: SECRET,
          ...FAST,
          ...options,
        }),
      ),
    );
  }
  return {
    nodes,
    hosts,
    node: (id) => {
      const n = nodes.get(id);
      assert.ok(n);
      return n;
    },
    host: (id) => {
      const h = hosts.get(id);
      assert.ok(h);
      return h;
    },
    close: async () => {
      await Promise.all([...nodes.values()].map((n) => n.transport.close()));
      await Promise.all([...hosts.values()].map((h) => h.close()));
    },
  };
}

describe('websocket transport: connections', function () {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async function () {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  describe('one connection per pair', function () {
    it('settles on the connection dialled by the lower id when both dial at once', async function () {
      for (let round = 0; round < 5; round++) {
        const c = await cluster(['a', 'b']);
        cleanups.push(() => c.close());
        const a = c.node('a');
        const b = c.node('b');
        await Promise.all([a.transport.start(), b.transport.start()]);
        await waitFor('a and b up', () => a.isUp('b') && b.isUp('a'));
        await sleep(50);
        assert.deepEqual(a.transport.connections(), [
          { peer: 'b', direction: 'outbound', dialledBy: 'a' },
        ]);
        assert.deepEqual(b.transport.connections(), [
          { peer: 'a', direction: 'inbound', dialledBy: 'a' },
        ]);
        // Reported up once, with no flapping on the way.
        assert.deepEqual(a.events, [{ peer: 'b', up: true }]);
        assert.deepEqual(b.events, [{ peer: 'a', up: true }]);
        a.transport.send('b', 'over the one link');
        b.transport.send('a', 'and back');
        await waitFor('both frames', () => a.frames.length === 1 && b.frames.length === 1);
        await c.close();
      }
    });

    it('refuses a second connection from the same instance with 409, and lets a restarted instance replace the old one', async function () {
      // z sorts above x, so the connection x dials to z wins over any z dials to x.
      const fake = await TestServer.listen();
      const zInstance = '00000000000000aa';
      const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
      wss.on('headers', (headers: string[], req: IncomingMessage) => {
        const nonce = req.headers[HANDSHAKE_HEADERS.nonce];
        const proof = listenerProof(
          {
            version: PROTOCOL_VERSION,
            cluster: CLUSTER,
            listener: 'z',
            dialler: 'x',
            listenerInstance: zInstance,
            diallerNonce: typeof nonce === 'string' ? nonce : '',
          },
          Buffer.from(SECRET),
        );
        headers.push(
          `${HANDSHAKE_HEADERS.instance}: ${zInstance}`,
          `${HANDSHAKE_HEADERS.proof}: ${proof}`,
        );
      });
      const zSide: WebSocket[] = [];
      fake.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
        wss.handleUpgrade(req, socket, head, (ws) => {
          ws.on('error', () => undefined);
          zSide.push(ws);
        });
      });
      const xPort = await freePort();
      const xUrl = `ws://127.0.0.1:${xPort}/`;
      const x = record(
        new WebSocketTransport({
          self: 'x',
          peers: { x: xUrl, z: fake.url },
          cluster: CLUSTER,
          secret: SECRET,
          ...FAST,
        }),
      );
      cleanups.push(async () => {
        await x.transport.close();
        await fake.close();
      });
      await x.transport.start();
      await waitFor('z up at x', () => x.isUp('z'));
      assert.deepEqual(x.transport.connections(), [
        { peer: 'z', direction: 'outbound', dialledBy: 'x' },
      ]);

      const same = await puppetDial(
        xUrl,
        puppetHeaders({ from: 'z', to: 'x', instance: zInstance }),
      );
      assert.equal(same.ok ? 101 : same.status, 409);
      assert.equal(x.transport.stats().connections, 1);

      const restarted = await puppetOpen(
        xUrl,
        puppetHeaders({ from: 'z', to: 'x', instance: '00000000000000bb' }),
      );
      const old = zSide[0];
      assert.ok(old);
      assert.equal(await closed(old), 4002);
      assert.deepEqual(x.transport.connections(), [
        { peer: 'z', direction: 'inbound', dialledBy: 'z' },
      ]);
      assert.deepEqual(x.events, [{ peer: 'z', up: true }], 'no down and up on the way');
      assert.equal(x.transport.stats().duplicatesClosed, 1);
      restarted.send('from the new instance');
      await waitFor('the frame', () => x.frames.length === 1);
      x.transport.send('z', 'to the new instance');
      const got = await new Promise<string>((resolve) => {
        restarted.once('message', (data: Buffer) => {
          resolve(data.toString('utf8'));
        });
      });
      assert.equal(got, 'to the new instance');
      restarted.terminate();
    });

    it('replaces a connection when the same instance dials again (it gave the old one up)', async function () {
      const c = await cluster(['x'], ['p']);
      cleanups.push(() => c.close());
      const x = c.node('x');
      await x.transport.start();
      const url = c.host('x').url;
      const first = await puppetOpen(
        url,
        puppetHeaders({ from: 'p', to: 'x', instance: '1111111111111111' }),
      );
      await waitFor('p up', () => x.isUp('p'));
      const second = await puppetOpen(
        url,
        puppetHeaders({ from: 'p', to: 'x', instance: '1111111111111111' }),
      );
      assert.equal(await closed(first), 4001);
      assert.deepEqual(x.events, [{ peer: 'p', up: true }]);
      x.transport.send('p', 'on the second');
      const got = await new Promise<string>((resolve) => {
        second.once('message', (data: Buffer) => {
          resolve(data.toString('utf8'));
        });
      });
      assert.equal(got, 'on the second');
      second.terminate();
    });
  });

  describe('liveness and reconnection', function () {
    it('declares a peer that stops answering pings down within peerTimeoutMs', async function () {
      const peerTimeoutMs = 300;
      const c = await cluster(['x'], ['p'], { pingIntervalMs: 50, peerTimeoutMs });
      cleanups.push(() => c.close());
      const x = c.node('x');
      await x.transport.start();
      // A peer that sends nothing and answers no ping: a stopped process, a pulled cable.
      const ws = await puppetOpen(c.host('x').url, puppetHeaders({ from: 'p', to: 'x' }), {
        autoPong: false,
      });
      const since = performance.now();
      await waitFor('p up', () => x.isUp('p'));
      await waitFor('p down', () => !x.isUp('p'), 2000, 2);
      const after = performance.now() - since;
      assert.ok(
        after >= peerTimeoutMs - 50 && after < peerTimeoutMs + 150,
        `down after ${after.toFixed(0)} ms`,
      );
      assert.equal(x.transport.stats().peerTimeouts, 1);
      assert.equal(await closed(ws), 1006, 'terminated without a close handshake');
    });

    it('keeps a quiet peer that answers pings', async function () {
      const c = await cluster(['x'], ['p'], { pingIntervalMs: 50, peerTimeoutMs: 200 });
      cleanups.push(() => c.close());
      const x = c.node('x');
      await x.transport.start();
      const ws = await puppetOpen(c.host('x').url, puppetHeaders({ from: 'p', to: 'x' }));
      await waitFor('p up', () => x.isUp('p'));
      await sleep(600);
      assert.ok(x.isUp('p'));
      assert.equal(x.transport.stats().peerTimeouts, 0);
      ws.terminate();
    });

    it('runs its timers on the injected scheduler and clock', async function () {
      // Sockets are real, time is virtual: nothing times out until the test advances the clock.
      const clock = new VirtualClock(1000);
      const c = await cluster(['x'], ['p'], {
        scheduler: clock,
        clock,
        pingIntervalMs: 100,
        peerTimeoutMs: 300,
      });
      cleanups.push(() => c.close());
      const x = c.node('x');
      await x.transport.start();
      const ws = await puppetOpen(c.host('x').url, puppetHeaders({ from: 'p', to: 'x' }), {
        autoPong: false,
      });
      await waitFor('p up', () => x.isUp('p'));
      await sleep(400);
      assert.ok(x.isUp('p'), 'real time alone does not time the peer out');
      await clock.advance(299);
      assert.ok(x.isUp('p'));
      await clock.advance(1);
      assert.equal(x.isUp('p'), false);
      assert.equal(x.transport.stats().peerTimeouts, 1);
      assert.equal(await closed(ws), 1006);
    });

    it('reconnects after every socket of a pair is cut, and counts it', async function () {
      const c = await cluster(['a', 'b']);
      cleanups.push(() => c.close());
      const a = c.node('a');
      const b = c.node('b');
      await Promise.all([a.transport.start(), b.transport.start()]);
      await waitFor('up', () => a.isUp('b') && b.isUp('a'));
      const downs = (n: Node): number => n.events.filter((e) => !e.up).length;
      for (let round = 1; round <= 3; round++) {
        for (const socket of [...c.host('a').sockets, ...c.host('b').sockets]) socket.destroy();
        // Down and up again may both happen between two polls: count the events.
        await waitFor(
          'down and up again',
          () => downs(a) === round && downs(b) === round && a.isUp('b') && b.isUp('a'),
        );
        assert.equal(a.transport.stats().reconnects, round);
        assert.equal(b.transport.stats().reconnects, round);
      }
      a.transport.send('b', 'after the cuts');
      await waitFor('the frame', () => b.frames.some((f) => f.frame === 'after the cuts'));
      assert.ok(a.transport.stats().dials + b.transport.stats().dials >= 5);
    });
  });

  describe('start and close', function () {
    it('rejects start with a TransportError when its port is taken, and still closes', async function () {
      const taken = await TestServer.listen();
      cleanups.push(() => taken.close());
      const t = new WebSocketTransport({
        self: 'a',
        peers: { b: 'ws://127.0.0.1:1/' },
        listen: { host: '127.0.0.1', port: taken.port },
        cluster: CLUSTER,
        secret: SECRET,
      });
      await assert.rejects(t.start(), TransportError);
      await t.close();
      await assert.rejects(t.start(), TransportError);
    });

    it('closes while starting without leaving its server bound', async function () {
      const port = await freePort();
      const t = new WebSocketTransport({
        self: 'a',
        peers: { a: `ws://127.0.0.1:${port}/`, b: 'ws://127.0.0.1:1/' },
        listen: { host: '127.0.0.1', port },
        cluster: CLUSTER,
        secret: SECRET,
      });
      const starting = t.start();
      await t.close();
      await assert.rejects(starting, TransportError);
      // The port is free again.
      const again = await TestServer.listen(port);
      await again.close();
    });

    it('leaves no timers, sockets or servers behind after close', async function () {
      const count = (): Map<string, number> => {
        const counts = new Map<string, number>();
        for (const name of process.getActiveResourcesInfo()) {
          counts.set(name, (counts.get(name) ?? 0) + 1);
        }
        return counts;
      };
      await sleep(20);
      const before = count();
      const ports = [await freePort(), await freePort(), await freePort()];
      const peers = Object.fromEntries(
        ['a', 'b', 'c'].map((id, i) => [id, `ws://127.0.0.1:${String(ports[i])}/`]),
      );
      const nodes = ['a', 'b', 'c'].map((id, i) =>
        record(
          new WebSocketTransport({
            self: id,
            peers,
            listen: { host: '127.0.0.1', port: ports[i] ?? 0 },
            cluster: CLUSTER,
            secret: SECRET,
            ...FAST,
          }),
        ),
      );
      await Promise.all(nodes.map((n) => n.transport.start()));
      await waitFor('all up', () => nodes.every((n) => n.transport.stats().connections === 2));
      await Promise.all(nodes.map((n) => n.transport.close()));
      await sleep(50);
      const after = count();
      for (const kind of ['Timeout', 'TCPServerWrap', 'TCPSocketWrap']) {
        assert.ok(
          (after.get(kind) ?? 0) <= (before.get(kind) ?? 0),
          `${kind}: ${after.get(kind) ?? 0} after, ${before.get(kind) ?? 0} before`,
        );
      }
    });
  });

  describe('sending', function () {
    it('writes the frames of one turn to a peer with one socket write, each still its own message, in order', async function () {
      const c = await cluster(['a', 'b', 'c']);
      cleanups.push(() => c.close());
      const [a, b, cNode] = [c.node('a'), c.node('b'), c.node('c')];
      await Promise.all([a.transport.start(), b.transport.start(), cNode.transport.start()]);
      await waitFor('all up', () =>
        [a, b, cNode].every((n) => n.transport.stats().connections === 2),
      );
      // Counts the writes every socket of this process hands to the kernel meanwhile.
      const proto = Socket.prototype as unknown as Record<'_write' | '_writev', unknown>;
      const original = { write: proto._write, writev: proto._writev };
      const writes: number[] = [];
      const count = (fn: unknown) =>
        function (this: Socket, chunks: unknown, ...rest: unknown[]): unknown {
          writes.push(Array.isArray(chunks) ? chunks.length : 1);
          return (fn as (...args: unknown[]) => unknown).call(this, chunks, ...rest);
        };
      proto._write = count(original.write);
      proto._writev = count(original.writev);
      try {
        // One synchronous turn: 20 frames to b and 20 to c.
        for (let i = 0; i < 20; i++) {
          a.transport.send('b', `to b ${String(i)}`);
          a.transport.send('c', `to c ${String(i)}`);
        }
        await new Promise<void>((resolve) => {
          setImmediate(resolve);
        });
      } finally {
        proto._write = original.write;
        proto._writev = original.writev;
      }
      // One write per peer, each carrying every frame (a header and a payload per frame).
      assert.deepEqual(writes, [40, 40]);
      await waitFor('every frame', () => b.frames.length === 20 && cNode.frames.length === 20);
      assert.deepEqual(
        b.frames.map((f) => f.frame),
        Array.from({ length: 20 }, (_, i) => `to b ${String(i)}`),
      );
      assert.deepEqual(
        cNode.frames.map((f) => f.frame),
        Array.from({ length: 20 }, (_, i) => `to c ${String(i)}`),
      );
      assert.equal(a.transport.stats().sent, 40);
    });
  });
});
