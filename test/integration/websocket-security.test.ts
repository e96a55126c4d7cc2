import assert from 'node:assert/strict';
import { request, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { WebSocketTransport } from '../../adapters/websocket/index.js';
import type { WebSocketTransportOptions } from '../../adapters/websocket/index.js';
import { HANDSHAKE_HEADERS, listenerProof } from '../../adapters/websocket/handshake.js';
import { PROTOCOL_VERSION } from '../../lib/codec/messages.js';
import {
  capturingLogger,
  closed,
  collector,
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

/**
 * Hostile input against a real node `x`, with a real peer `y` and a hand-driven peer `p` (a
 * puppet that holds the secret, or pretends to). After every attack the node must still work:
 * a valid frame from `y` and from a fresh, honest connection of `p` still arrive.
 *
 * `p` sorts below `x`, so when `x` happens to be dialling `p` at the moment `p` dials in, the
 * tie-break keeps `p`'s connection and the test does not depend on that race.
 */

const WRONG_SECRET = 'not-the-secret-but-long-enough';

type Node = Recorded;

interface Setup {
  readonly x: Node;
  readonly y: Node;
  /** Where to dial `x`. */
  readonly xUrl: string;
  readonly hostX: TestServer | null;
  readonly hostY: TestServer;
  readonly logLines: string[];
  close(): Promise<void>;
}

/**
 * Starts `x` and `y` and waits until they see each other. `x` binds its own server when `own`
 * is set (the only way to test connections that never upgrade), else it uses a test server.
 */
async function setUp(
  options: { own?: boolean; x?: Partial<WebSocketTransportOptions> } = {},
): Promise<Setup> {
  const logLines: string[] = [];
  const hostX = options.own === true ? null : await TestServer.listen();
  const portX = hostX?.port ?? (await freePort());
  const hostY = await TestServer.listen();
  const xUrl = `ws://127.0.0.1:${portX}/`;
  const peers = { x: xUrl, y: hostY.url, p: `ws://127.0.0.1:${await freePort()}/` };
  const x = record(
    new WebSocketTransport({
      self: 'x',
      peers,
      listen: hostX === null ? { host: '127.0.0.1', port: portX } : { server: hostX.server },
      cluster: CLUSTER,
      secret: SECRET,
      logger: capturingLogger(logLines),
      ...FAST,
      ...options.x,
    }),
  );
  const y = record(
    new WebSocketTransport({
      self: 'y',
      peers,
      listen: { server: hostY.server },
      cluster: CLUSTER,
      secret: SECRET,
      ...FAST,
    }),
  );
  await Promise.all([x.transport.start(), y.transport.start()]);
  await waitFor('x and y up', () => x.isUp('y') && y.isUp('x'));
  return {
    x,
    y,
    xUrl,
    hostX,
    hostY,
    logLines,
    close: async () => {
      await Promise.all([x.transport.close(), y.transport.close()]);
      await Promise.all([hostX?.close(), hostY.close()]);
    },
  };
}

/** `x` still works: a frame from `y` and one from an honest connection of `p` arrive. */
async function assertStillWorks(s: Setup): Promise<void> {
  const tag = `still working ${Math.random()}`;
  s.y.transport.send('x', tag);
  const ws = await puppetOpen(s.xUrl, puppetHeaders({ from: 'p', to: 'x' }));
  try {
    ws.send(`${tag} from p`);
    await waitFor('both frames at x', () => {
      const frames = s.x.frames.map((f) => `${f.from}:${f.frame}`);
      return frames.includes(`y:${tag}`) && frames.includes(`p:${tag} from p`);
    });
  } finally {
    ws.terminate();
  }
}

/** Dials `x` with the given claims and expects the upgrade refused with `status`. */
async function assertRefused(
  s: Setup,
  claims: Parameters<typeof puppetHeaders>[0],
  status: number,
): Promise<void> {
  const result = await puppetDial(s.xUrl, puppetHeaders(claims));
  if (result.ok) {
    result.ws.terminate();
    assert.fail('the dial was accepted');
  }
  assert.equal(result.status, status);
}

/** A raw HTTP upgrade request with exactly these synod headers; resolves with the status. */
function rawUpgrade(port: number, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path: '/',
      headers: {
        ...headers,
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-key': Buffer.from('0123456789abcdef').toString('base64'),
        'sec-websocket-version': '13',
      },
    });
    req.on('response', (res: IncomingMessage) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('upgrade', (_res, socket: Socket) => {
      socket.destroy();
      resolve(101);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The synod headers of an upgrade request, as strings. */
function synodHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of Object.values(HANDSHAKE_HEADERS)) {
    const value = req.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  return headers;
}

describe('websocket transport: hostile peers', function () {
  let s: Setup | null = null;
  afterEach(async function () {
    if (s !== null) {
      // Whatever happened, the secret never reached the logs.
      for (const line of s.logLines) {
        assert.ok(!line.includes(SECRET), `the secret was logged: ${line}`);
        assert.ok(!line.includes(WRONG_SECRET), `a secret was logged: ${line}`);
      }
      await s.close();
    }
    s = null;
  });

  describe('handshake', function () {
    it('refuses a dialler with the wrong secret (401), counts and logs the reason', async function () {
      s = await setUp();
      await assertRefused(s, { from: 'p', to: 'x', secret: WRONG_SECRET }, 401);
      assert.equal(s.x.transport.stats().handshakeRejections['bad-signature'], 1);
      assert.ok(
        s.logLines.some((l) => l.includes('handshake rejected') && l.includes('bad-signature')),
      );
      assert.equal(s.x.isUp('p'), false);
      await assertStillWorks(s);
    });

    it('refuses an unknown node id (403)', async function () {
      s = await setUp();
      await assertRefused(s, { from: 'mallory', to: 'x' }, 403);
      assert.equal(s.x.transport.stats().handshakeRejections['unknown-peer'], 1);
      // Nor may a dialler claim to be the node itself.
      await assertRefused(s, { from: 'x', to: 'x' }, 403);
      assert.equal(s.x.transport.stats().handshakeRejections['unknown-peer'], 2);
      await assertStillWorks(s);
    });

    it('refuses a dialler of another cluster (403)', async function () {
      s = await setUp();
      await assertRefused(s, { from: 'p', to: 'x', cluster: 'other-cluster' }, 403);
      assert.equal(s.x.transport.stats().handshakeRejections['wrong-cluster'], 1);
      await assertStillWorks(s);
    });

    it('refuses another protocol version (400)', async function () {
      s = await setUp();
      await assertRefused(s, { from: 'p', to: 'x', version: PROTOCOL_VERSION + 1 }, 400);
      assert.equal(s.x.transport.stats().handshakeRejections['wrong-version'], 1);
      await assertStillWorks(s);
    });

    it('refuses a handshake addressed to another node (403)', async function () {
      s = await setUp();
      await assertRefused(s, { from: 'p', to: 'y' }, 403);
      assert.equal(s.x.transport.stats().handshakeRejections['wrong-receiver'], 1);
      await assertStillWorks(s);
    });

    it('refuses missing, malformed or tampered handshake headers', async function () {
      // On its own server (on an application's, an upgrade without synod's headers is left to
      // the application's other handlers).
      s = await setUp({ own: true });
      const valid = puppetHeaders({ from: 'p', to: 'x' });
      const without = (name: string): Record<string, string> =>
        Object.fromEntries(Object.entries(valid).filter(([key]) => key !== name));
      const port = Number(new URL(s.xUrl).port);
      // The proof and the refused setting are the listener's to send; settings are optional
      // (no settings, no header).
      const required = Object.values(HANDSHAKE_HEADERS).filter(
        (name) =>
          name !== HANDSHAKE_HEADERS.proof &&
          name !== HANDSHAKE_HEADERS.refused &&
          name !== HANDSHAKE_HEADERS.settings,
      );
      for (const name of required) {
        assert.equal(await rawUpgrade(port, without(name)), 400, `without ${name}`);
      }
      assert.equal(
        await rawUpgrade(port, { ...valid, [HANDSHAKE_HEADERS.nonce]: 'zz' }),
        400,
        'a nonce that is not hex',
      );
      assert.equal(
        await rawUpgrade(port, { ...valid, [HANDSHAKE_HEADERS.from]: '%E0%A4%A' }),
        400,
        'an id that is not valid URI encoding',
      );
      assert.equal(
        await rawUpgrade(port, { ...valid, [HANDSHAKE_HEADERS.settings]: 'a=1&a=2' }),
        400,
        'settings that repeat a name',
      );
      const malformed = s.x.transport.stats().handshakeRejections.malformed;
      // 8 missing, 3 bad.
      assert.equal(malformed, required.length + 3);
      // A field changed after signing breaks the signature, settings included.
      assert.equal(
        await rawUpgrade(port, { ...valid, [HANDSHAKE_HEADERS.instance]: 'ffffffffffffffff' }),
        401,
      );
      assert.equal(
        await rawUpgrade(port, { ...valid, [HANDSHAKE_HEADERS.settings]: 'leaseMs=1000' }),
        401,
      );
      assert.equal(s.x.transport.stats().handshakeRejections['bad-signature'], 2);
      await assertStillWorks(s);
    });

    it('refuses a handshake whose timestamp is outside the freshness window (401)', async function () {
      s = await setUp();
      await assertRefused(s, { from: 'p', to: 'x', timeMs: Date.now() - 10 * 60_000 }, 401);
      await assertRefused(s, { from: 'p', to: 'x', timeMs: Date.now() + 10 * 60_000 }, 401);
      assert.equal(s.x.transport.stats().handshakeRejections['stale-timestamp'], 2);
      await assertStillWorks(s);
    });

    it('refuses a captured handshake replayed with a raw HTTP upgrade (401)', async function () {
      s = await setUp();
      // x sorts below y, so x dials y; y's server saw that handshake go by.
      const captured = s.hostY.upgrades.find((req) => req.headers[HANDSHAKE_HEADERS.from] === 'x');
      assert.ok(captured, 'no handshake from x captured');
      const headers = synodHeaders(captured);
      assert.equal(Object.keys(headers).length, 8);
      const status = await rawUpgrade(s.hostY.port, headers);
      assert.equal(status, 401);
      assert.equal(s.y.transport.stats().handshakeRejections['replayed-nonce'], 1);
      // The replay changed nothing for the pair.
      assert.ok(s.x.isUp('y') && s.y.isUp('x'));
      assert.equal(s.y.transport.stats().connections, 1);
      s.x.transport.send('y', 'after the replay');
      await waitFor(
        'the frame at y',
        () => s?.y.frames.some((f) => f.frame === 'after the replay') === true,
      );
      await assertStillWorks(s);
    });

    it('refuses a captured handshake replayed to the listener after it restarted (425, before-start)', async function () {
      s = await setUp();
      const captured = s.hostY.upgrades.find((req) => req.headers[HANDSHAKE_HEADERS.from] === 'x');
      assert.ok(captured, 'no handshake from x captured');
      // y restarts on the same server: a new transport, with an empty nonce cache.
      await s.y.transport.close();
      await sleep(2);
      const y2 = new WebSocketTransport({
        self: 'y',
        peers: { x: s.xUrl, y: s.hostY.url },
        listen: { server: s.hostY.server },
        cluster: CLUSTER,
        secret: SECRET,
        ...FAST,
      });
      try {
        await y2.start();
        // The restarted listener forgot the nonce; the timestamp from before its start is what
        // refuses the replay. (x's own redial may have been stamped before y2 started too, and
        // counts the same: at least one.)
        assert.equal(await rawUpgrade(s.hostY.port, synodHeaders(captured)), 425);
        assert.ok(y2.stats().handshakeRejections['before-start'] >= 1);
        assert.equal(y2.stats().handshakeRejections['stale-timestamp'], 0);
        // x itself gets back in with a fresh handshake.
        await waitFor('x connected to the new y', () => y2.stats().connections === 1);
      } finally {
        await y2.close();
      }
    });

    it('accepts an honest handshake only once: the puppet itself cannot replay its own', async function () {
      s = await setUp();
      const headers = puppetHeaders({ from: 'p', to: 'x' });
      const first = await puppetOpen(s.xUrl, headers);
      await waitFor('p up at x', () => s?.x.isUp('p') === true);
      const again = await puppetDial(s.xUrl, headers);
      assert.equal(again.ok ? 101 : again.status, 401);
      assert.equal(s.x.transport.stats().handshakeRejections['replayed-nonce'], 1);
      assert.ok(s.x.isUp('p'), 'the replay did not disturb the live connection');
      first.terminate();
      await assertStillWorks(s);
    });

    it('destroys a connection that sends nothing, or stalls in its upgrade, after handshakeTimeoutMs', async function () {
      s = await setUp({ own: true, x: { handshakeTimeoutMs: 200 } });
      const port = Number(new URL(s.xUrl).port);
      const openRaw = async (
        payload: string | null,
      ): Promise<{ socket: Socket; closedAt: Promise<number> }> => {
        const socket = connect(port, '127.0.0.1');
        socket.on('error', () => undefined);
        await new Promise<void>((resolve) =>
          socket.once('connect', () => {
            resolve();
          }),
        );
        if (payload !== null) socket.write(payload);
        const closedAt = new Promise<number>((resolve) => {
          socket.once('close', () => {
            resolve(performance.now());
          });
        });
        return { socket, closedAt };
      };
      const start = performance.now();
      const silent = await openRaw(null);
      const stalled = await openRaw('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n');
      const times = await Promise.all([silent.closedAt, stalled.closedAt]);
      for (const at of times) {
        const after = at - start;
        assert.ok(after >= 150 && after < 1500, `closed after ${after.toFixed(0)} ms`);
      }
      assert.equal(s.x.transport.stats().handshakeRejections.timeout, 2);
      await assertStillWorks(s);
    });

    it('answers a plain HTTP request on its own server with 426 and closes it', async function () {
      s = await setUp({ own: true });
      const port = Number(new URL(s.xUrl).port);
      const status = await new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/' }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(status, 426);
      await assertStillWorks(s);
    });

    it('drops a listener that cannot prove it holds the secret, as dialler', async function () {
      // p's address answers the upgrade like a WebSocket server, without synod's proof, or with
      // a proof made with another secret.
      const fake = await TestServer.listen();
      const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
      let wrongSecret = false;
      wss.on('headers', (headers: string[], req: IncomingMessage) => {
        if (!wrongSecret) return;
        const nonce = req.headers[HANDSHAKE_HEADERS.nonce];
        const proof = listenerProof(
          {
            version: PROTOCOL_VERSION,
            cluster: CLUSTER,
            listener: 'p',
            dialler: 'x',
            listenerInstance: '0123456789abcdef',
            diallerNonce: typeof nonce === 'string' ? nonce : '',
          },
          Buffer.from(WRONG_SECRET),
        );
        headers.push(
          `${HANDSHAKE_HEADERS.instance}: 0123456789abcdef`,
          `${HANDSHAKE_HEADERS.proof}: ${proof}`,
        );
      });
      const accepted: WebSocket[] = [];
      fake.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
        wss.handleUpgrade(req, socket, head, (ws) => {
          accepted.push(ws);
          ws.on('error', () => undefined);
        });
      });
      const port = await freePort();
      const x = record(
        new WebSocketTransport({
          self: 'x',
          peers: { x: `ws://127.0.0.1:${port}/`, p: fake.url },
          cluster: CLUSTER,
          secret: SECRET,
          ...FAST,
        }),
      );
      try {
        await x.transport.start();
        await waitFor(
          'two dials without proof',
          () => x.transport.stats().handshakeRejections['bad-proof'] >= 2,
        );
        wrongSecret = true;
        const before = x.transport.stats().handshakeRejections['bad-proof'];
        await waitFor(
          'a dial with a wrong proof',
          () => x.transport.stats().handshakeRejections['bad-proof'] > before,
        );
        assert.equal(x.isUp('p'), false);
        x.transport.send('p', 'secret stuff');
        assert.equal(x.transport.stats().dropped.unreachable, 1);
        assert.ok(accepted.length >= 2);
        await waitFor('every fake connection closed', () =>
          accepted.every((ws) => ws.readyState === ws.CLOSED),
        );
      } finally {
        await x.transport.close();
        await fake.close();
      }
    });
  });

  describe('frames from an authenticated peer', function () {
    it('closes a connection that sends a frame above maxPayload (1009), counts it, and takes the peer back', async function () {
      s = await setUp();
      const ws = await puppetOpen(s.xUrl, puppetHeaders({ from: 'p', to: 'x' }));
      await waitFor('p up at x', () => s?.x.isUp('p') === true);
      ws.send('z'.repeat(64 * 1024 + 1));
      assert.equal(await closed(ws), 1009);
      await waitFor('p down at x', () => s?.x.isUp('p') === false);
      assert.equal(s.x.transport.stats().dropped.oversized, 1);
      assert.ok(!s.x.frames.some((f) => f.frame.startsWith('zzz')));
      await assertStillWorks(s);
    });

    it('drops binary frames, hands garbage text on as opaque frames, and keeps the connection', async function () {
      s = await setUp();
      const ws = await puppetOpen(s.xUrl, puppetHeaders({ from: 'p', to: 'x' }));
      await waitFor('p up at x', () => s?.x.isUp('p') === true);
      const garbage = ['not json', '{"v":1,', '\u0000\u0001', '[]'.repeat(1000)];
      ws.send(Buffer.from([0, 1, 2, 3]));
      ws.send(new Uint8Array(1000));
      for (const text of garbage) ws.send(text);
      ws.send('the last one');
      await waitFor(
        'the last frame',
        () => s?.x.frames.some((f) => f.frame === 'the last one') === true,
      );
      assert.equal(s.x.transport.stats().binaryFrames, 2);
      assert.deepEqual(
        s.x.frames.filter((f) => f.from === 'p').map((f) => f.frame),
        [...garbage, 'the last one'],
      );
      assert.equal(ws.readyState, ws.OPEN);
      assert.ok(s.x.isUp('p'));
      ws.terminate();
      await assertStillWorks(s);
    });

    it('closes a connection that breaks the protocol (invalid UTF-8 in a text frame)', async function () {
      s = await setUp();
      const ws = await puppetOpen(s.xUrl, puppetHeaders({ from: 'p', to: 'x' }));
      await waitFor('p up at x', () => s?.x.isUp('p') === true);
      ws.send(Buffer.from([0x68, 0xff, 0xfe, 0x69]), { binary: false });
      assert.equal(await closed(ws), 1007);
      await waitFor('the error counted', () => s?.x.transport.stats().protocolErrors === 1);
      await assertStillWorks(s);
    });

    it('limits the rate of frames per peer, across its connections', async function () {
      s = await setUp({ x: { ratePerSec: 20, burst: 10 } });
      const ws = await puppetOpen(s.xUrl, puppetHeaders({ from: 'p', to: 'x' }));
      for (let i = 0; i < 50; i++) ws.send(`r${i}`);
      await waitFor('50 frames seen', () => {
        const st = s?.x.transport.stats();
        return st !== undefined && st.dropped['rate-limited'] + s!.x.frames.length >= 50;
      });
      const fromP = s.x.frames.filter((f) => f.from === 'p').length;
      assert.ok(fromP >= 10 && fromP <= 12, `${fromP} frames let through`);
      // A new connection does not refill the bucket.
      ws.terminate();
      const again = await puppetOpen(s.xUrl, puppetHeaders({ from: 'p', to: 'x' }));
      for (let i = 0; i < 10; i++) again.send(`again${i}`);
      await sleep(50);
      const through = s.x.frames.filter((f) => f.frame.startsWith('again')).length;
      assert.ok(through <= 3, `${through} frames let through on the new connection`);
      again.terminate();
      await sleep(150);
      await assertStillWorks(s);
    });

    it('survives a flood of 10,000 invalid frames with bounded memory, and still serves the peer', async function () {
      this.timeout(20_000);
      s = await setUp({ x: { ratePerSec: 2000, burst: 1000 } });
      const gc = collector();
      const heap = (): number => {
        gc?.();
        return process.memoryUsage().heapUsed;
      };
      const ws = await puppetOpen(s.xUrl, puppetHeaders({ from: 'p', to: 'x' }));
      await waitFor('p up at x', () => s?.x.isUp('p') === true);
      const before = heap();
      const nonces = s.x.transport.stats().nonceCacheSize;
      const count = 10_000;
      for (let i = 0; i < count; i++) {
        if (i % 2 === 0) ws.send(Buffer.alloc(512, i));
        else ws.send(`{"garbage":${i},` + 'x'.repeat(500));
      }
      const accounted = (): number => {
        const st = s!.x.transport.stats();
        return (
          st.dropped['rate-limited'] +
          st.binaryFrames +
          s!.x.frames.filter((f) => f.from === 'p').length
        );
      };
      await waitFor('every frame accounted for', () => accounted() === count, 10_000);
      const stats = s.x.transport.stats();
      assert.ok(stats.dropped['rate-limited'] > 0, 'the flood was rate limited');
      assert.ok(stats.binaryFrames > 0);
      assert.equal(
        ws.readyState,
        ws.OPEN,
        'a flood of small frames does not cost the peer its link',
      );
      // What the handler kept is the test's own memory; forget it before measuring.
      s.x.frames.length = 0;
      const after = heap();
      if (gc !== null) {
        assert.ok(
          after - before < 8 * 1024 * 1024,
          `heap grew by ${((after - before) / 1048576).toFixed(1)} MiB`,
        );
      }
      assert.equal(s.x.transport.stats().nonceCacheSize, nonces, 'frames add no nonces');
      await sleep(100);
      ws.send('a valid one after the flood');
      await waitFor(
        'the valid frame',
        () => s?.x.frames.some((f) => f.frame === 'a valid one after the flood') === true,
      );
      ws.terminate();
      await assertStillWorks(s);
    });

    it('survives a flood of failed handshakes without remembering them', async function () {
      s = await setUp();
      const size = s.x.transport.stats().nonceCacheSize;
      const results = await Promise.all(
        Array.from({ length: 200 }, () =>
          puppetDial(s!.xUrl, puppetHeaders({ from: 'p', to: 'x', secret: WRONG_SECRET })),
        ),
      );
      assert.ok(results.every((r) => !r.ok && r.status === 401));
      assert.equal(s.x.transport.stats().handshakeRejections['bad-signature'], 200);
      assert.equal(
        s.x.transport.stats().nonceCacheSize,
        size,
        'failed handshakes are not remembered',
      );
      const lines = s.logLines.filter((l) => l.includes('handshake rejected')).length;
      assert.ok(lines >= 10 && lines <= 40, `${lines} lines logged for 200 rejections`);
      await assertStillWorks(s);
    });
  });

  describe('sending', function () {
    it('drops and counts frames while a connection is over maxBufferedBytes', async function () {
      s = await setUp({ x: { maxBufferedBytes: 256 * 1024 } });
      const ws = await puppetOpen(s.xUrl, puppetHeaders({ from: 'p', to: 'x' }));
      await waitFor('p up at x', () => s?.x.isUp('p') === true);
      let received = 0;
      ws.on('message', () => {
        received += 1;
      });
      const frame = 'q'.repeat(32 * 1024);
      // One synchronous burst: the receiver (in this process) cannot drain in between.
      for (let i = 0; i < 400; i++) s.x.transport.send('p', frame);
      const stats = s.x.transport.stats();
      assert.ok(stats.dropped.backpressure > 0, 'nothing dropped for backpressure');
      assert.equal(stats.sent + stats.dropped.backpressure, 400);
      await waitFor('the sent frames delivered', () => received === stats.sent);
      // Once drained, sends go through again.
      s.x.transport.send('p', 'drained');
      await waitFor('one more', () => received === stats.sent + 1);
      ws.terminate();
    });
  });
});
