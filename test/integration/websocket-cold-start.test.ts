import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  dialHeaders,
  HANDSHAKE_WINDOW_MS,
  REJECTION_STATUS,
  verifyDial,
  type DialClaims,
  type ListenerExpectations,
} from '../../adapters/websocket/handshake.js';
import { WebSocketTransport } from '../../adapters/websocket/index.js';
import { NonceCache } from '../../adapters/websocket/nonce-cache.js';
import { VirtualClock } from '../../lib/testing/virtual-clock.js';
import {
  capturingLogger,
  CLUSTER,
  FAST,
  freePort,
  puppetDial,
  puppetHeaders,
  record,
  SECRET,
  TcpGate,
  TestServer,
  waitFor,
} from './websocket-harness.js';

/**
 * Cold start: a dialler stamps its handshake, its event loop is busy for a moment, and the peer's
 * listener starts in between. The listener still refuses the dial (a handshake from before its
 * start could be a replay it has no nonce for), but says so with its own reason and status, and
 * the dialler redials at once with a fresh timestamp instead of waiting out a backoff.
 */

const TOO_EARLY = 425;

describe('websocket transport: cold start', function () {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async function () {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  describe('the handshake check', function () {
    const secret = Buffer.from(SECRET);
    const startedAtMs = 1_000_000;
    const claims = (timeMs: number): DialClaims => ({
      version: 1,
      cluster: 'c',
      from: 'b',
      to: 'a',
      instance: '0123456789abcdef',
      nonce: '0123456789abcdef0123456789abcdef',
      timeMs,
      settings: '',
    });
    const expect = (nonces: NonceCache, over: Partial<ListenerExpectations> = {}) => ({
      version: 1,
      cluster: 'c',
      self: 'a',
      peers: new Set(['b']),
      secret,
      nonces,
      nowMs: startedAtMs + 5,
      notBeforeMs: startedAtMs,
      ...over,
    });

    it('refuses a signed dial stamped before the listener started as before-start, answered 425', function () {
      const nonces = new NonceCache(10);
      const result = verifyDial(dialHeaders(claims(startedAtMs - 1), secret), expect(nonces));
      assert.deepEqual(result, { ok: false, reason: 'before-start', claimedFrom: 'b' });
      assert.equal(REJECTION_STATUS['before-start'], TOO_EARLY);
      assert.equal(nonces.size, 0, 'a refused dial leaves no nonce behind');
      // The same dial stamped at the start itself gets in.
      assert.ok(verifyDial(dialHeaders(claims(startedAtMs), secret), expect(nonces)).ok);
    });

    it('tells only a holder of the secret that it dialled too early', function () {
      const forged = dialHeaders(
        claims(startedAtMs - 1),
        Buffer.from('another secret of 16+ bytes'),
      );
      const result = verifyDial(forged, expect(new NonceCache(10)));
      assert.equal(result.ok ? 'ok' : result.reason, 'bad-signature');
    });

    it('still calls a timestamp outside the freshness window stale, before or after the start', function () {
      for (const timeMs of [
        startedAtMs - HANDSHAKE_WINDOW_MS,
        startedAtMs + HANDSHAKE_WINDOW_MS + 5,
      ]) {
        const result = verifyDial(dialHeaders(claims(timeMs), secret), expect(new NonceCache(10)));
        assert.equal(result.ok ? 'ok' : result.reason, 'stale-timestamp', String(timeMs));
      }
    });
  });

  describe('as listener', function () {
    it('refuses a dial stamped before it started with 425, counts it as before-start, and logs it below warn', async function () {
      const host = await TestServer.listen();
      const lines: string[] = [];
      const x = new WebSocketTransport({
        self: 'x',
        peers: { x: host.url, p: `ws://127.0.0.1:${await freePort()}/` },
        listen: { server: host.server },
        cluster: CLUSTER,
        secret: SECRET,
        logger: capturingLogger(lines),
        ...FAST,
      });
      cleanups.push(async () => {
        await x.close();
        await host.close();
      });
      const beforeStart = Date.now();
      await waitFor('the wall clock to move on', () => Date.now() > beforeStart, 1000, 1);
      await x.start();

      const early = await puppetDial(
        host.url,
        puppetHeaders({ from: 'p', to: 'x', timeMs: beforeStart }),
      );
      assert.deepEqual(early, { ok: false, status: TOO_EARLY, error: null });
      const stats = x.stats();
      assert.equal(stats.handshakeRejections['before-start'], 1);
      assert.equal(stats.handshakeRejections['stale-timestamp'], 0);
      assert.equal(stats.nonceCacheSize, 0);
      const refusals = lines.filter((l) => l.includes('handshake rejected'));
      assert.equal(refusals.length, 1);
      assert.match(refusals[0] ?? '', /^info handshake rejected .*"reason":"before-start"/);
      assert.deepEqual(
        lines.filter((l) => l.startsWith('warn')),
        [],
      );

      // A stranger's dial stamped as early learns nothing of the start, and is a warning.
      const forged = await puppetDial(
        host.url,
        puppetHeaders({
          from: 'p',
          to: 'x',
          timeMs: beforeStart,
          secret: 'not-the-secret-but-long-enough',
        }),
      );
      assert.deepEqual(forged, { ok: false, status: 401, error: null });
      assert.equal(x.stats().handshakeRejections['bad-signature'], 1);
      assert.equal(lines.filter((l) => l.startsWith('warn handshake rejected')).length, 1);

      // The same dialler with a fresh timestamp gets in.
      const fresh = await puppetDial(host.url, puppetHeaders({ from: 'p', to: 'x' }));
      assert.ok(fresh.ok);
      fresh.ws.terminate();
    });
  });

  describe('as dialler', function () {
    it('redials at once with a fresh timestamp when the peer started after its dial was stamped', async function () {
      // x's timers run on a virtual clock that the test never advances: no backoff can end, so
      // x can only get in by redialling at once.
      const clock = new VirtualClock(0);
      const hostX = await TestServer.listen();
      const hostY = await TestServer.listen();
      // x dials y through a gate that holds the first connection until y has started.
      const gate = await TcpGate.open(hostY.port);
      gate.hold();
      const xLines: string[] = [];
      const yLines: string[] = [];
      const x = record(
        new WebSocketTransport({
          self: 'x',
          peers: { x: hostX.url, y: gate.url },
          listen: { server: hostX.server },
          cluster: CLUSTER,
          secret: SECRET,
          logger: capturingLogger(xLines),
          ...FAST,
          scheduler: clock,
          clock,
        }),
      );
      // y never reaches x on its own (its URL for x answers nothing), so the pair's one
      // connection is the one x dials.
      const y = record(
        new WebSocketTransport({
          self: 'y',
          peers: { x: `ws://127.0.0.1:${await freePort()}/`, y: hostY.url },
          listen: { server: hostY.server },
          cluster: CLUSTER,
          secret: SECRET,
          logger: capturingLogger(yLines),
          ...FAST,
        }),
      );
      cleanups.push(async () => {
        await Promise.all([x.transport.close(), y.transport.close()]);
        await Promise.all([gate.close(), hostX.close(), hostY.close()]);
      });

      await x.transport.start();
      await waitFor('the first dial held at the gate', () => gate.held === 1);
      // Every stamp x made so far is at most `stamped`; y starts strictly later.
      const stamped = Date.now();
      await waitFor('the wall clock to move on', () => Date.now() > stamped, 1000, 1);
      await y.transport.start();
      gate.release();

      await waitFor('x and y up', () => x.isUp('y') && y.isUp('x'));
      assert.equal(x.transport.stats().dials, 2, 'one refused dial, one redial');
      assert.equal(gate.accepted, 2);
      assert.equal(y.transport.stats().handshakeRejections['before-start'], 1);
      assert.equal(x.transport.stats().handshakeRejections.refused, 0, 'a 425 is not a refusal');
      assert.equal(clock.now(), 0, 'no virtual time passed');
      assert.deepEqual(
        [...xLines, ...yLines].filter((l) => l.startsWith('warn')),
        [],
        'nothing at warn',
      );
      assert.ok(
        xLines.some((l) =>
          /^debug peer started after this dial was stamped .*"redial":"at once"/.test(l),
        ),
      );
      x.transport.send('y', 'after a cold start');
      await waitFor('the frame', () => y.frames.some((f) => f.frame === 'after a cold start'));
    });

    it('redials at once only once: a peer that keeps answering 425 gets the normal backoff', async function () {
      const clock = new VirtualClock(0);
      const fake = await TestServer.listen();
      fake.server.on('upgrade', (_req: IncomingMessage, socket: Duplex) => {
        socket.end('HTTP/1.1 425 Too Early\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      });
      const hostX = await TestServer.listen();
      const xLines: string[] = [];
      const x = new WebSocketTransport({
        self: 'x',
        peers: { x: hostX.url, y: fake.url },
        listen: { server: hostX.server },
        cluster: CLUSTER,
        secret: SECRET,
        logger: capturingLogger(xLines),
        ...FAST,
        handshakeTimeoutMs: 60_000,
        reconnect: { baseMs: 1000, maxMs: 1000 },
        // Every backoff is half its cap: 500 ms of virtual time.
        rng: { next: () => 0.5 },
        scheduler: clock,
        clock,
      });
      cleanups.push(async () => {
        await x.close();
        await Promise.all([fake.close(), hostX.close()]);
      });
      // The one timer left once a refused dial has closed is the backoff before the next.
      const backoffAt = (at: number) => () => clock.pending === 1 && clock.nextDueAt() === at;

      await x.start();
      await waitFor('two refusals, then a backoff', backoffAt(500));
      assert.equal(x.stats().dials, 2, 'the first refusal was redialled at once');
      assert.equal(fake.upgrades.length, 2);

      await clock.advance(500);
      await waitFor('a third refusal, then a backoff', backoffAt(1000));
      assert.equal(x.stats().dials, 3, 'no second redial at once');
      assert.equal(fake.upgrades.length, 3);

      await clock.advance(500);
      await waitFor('a fourth refusal, then a backoff', backoffAt(1500));
      assert.equal(x.stats().dials, 4);
      assert.equal(x.stats().handshakeRejections.refused, 0);
      assert.deepEqual(
        xLines.filter((l) => l.startsWith('warn')),
        [],
      );
      assert.equal(
        xLines.filter((l) => l.includes('"redial":"after backoff"')).length,
        3,
        'refusals after the redial wait for the backoff',
      );
    });
  });
});
