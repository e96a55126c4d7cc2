import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { backoffDelayMs } from '../../adapters/websocket/backoff.js';
import {
  dialHeaders,
  HANDSHAKE_HEADERS,
  HANDSHAKE_WINDOW_MS,
  listenerProof,
  settingsRefusalHeaders,
  verifyDial,
  verifyListener,
  verifySettingsRefusal,
  type DialClaims,
  type ListenerExpectations,
} from '../../adapters/websocket/handshake.js';
import { WebSocketTransport } from '../../adapters/websocket/index.js';
import { LogThrottle } from '../../adapters/websocket/log-throttle.js';
import { NonceCache } from '../../adapters/websocket/nonce-cache.js';
import { validateWebSocketOptions } from '../../adapters/websocket/options.js';
import { newerLinkWins } from '../../adapters/websocket/tie-break.js';
import { TokenBucket } from '../../adapters/websocket/token-bucket.js';
import { ConfigError } from '../../lib/errors.js';
import { createRng } from '../../lib/random.js';

const SECRET = 'unit-test-secret-16+ bytes';

function assertConfigError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.match(error.message, pattern);
    assert.ok(!error.message.includes(SECRET), 'the message quotes the secret');
    return true;
  });
}

describe('websocket adapter parts', function () {
  describe('options', function () {
    const base = {
      self: 'a',
      peers: { a: 'ws://127.0.0.1:7001/', b: 'ws://127.0.0.1:7002/' },
      cluster: 'c',
      secret: SECRET,
    };

    it('fills in defaults and listens on the port of its own URL', function () {
      const o = validateWebSocketOptions(base);
      assert.deepEqual([...o.peerUrls.keys()], ['b']);
      assert.deepEqual(o.listen, { kind: 'address', host: null, port: 7001 });
      assert.equal(o.maxPayload, 64 * 1024);
      assert.equal(o.burst, 2 * o.ratePerSec);
      assert.ok(Buffer.isBuffer(o.secret));
      assert.deepEqual(new WebSocketTransport(base).peers, ['b']);
    });

    it('rejects invalid options with a ConfigError naming the option, never quoting the secret', function () {
      const server = createServer();
      const cases: [Record<string, unknown>, RegExp][] = [
        [{ ...base, self: '' }, /self/],
        [{ ...base, cluster: undefined }, /cluster/],
        [{ ...base, secret: undefined }, /secret/],
        [{ ...base, secret: 'short' }, /secret must be at least 16 bytes/],
        [{ ...base, secret: Buffer.alloc(15) }, /secret/],
        [{ ...base, peers: ['ws://x/'] }, /peers/],
        [{ ...base, peers: { ...base.peers, b: 'http://127.0.0.1:1/' } }, /peers\["b"\]/],
        [{ ...base, peers: { ...base.peers, b: 'not a url' } }, /peers\["b"\]/],
        [{ ...base, peers: { ...base.peers, b: 'ws://u:p@host/' } }, /credentials/],
        [{ ...base, peers: { b: 'ws://127.0.0.1:1/' } }, /listen is required/],
        [{ ...base, listen: { port: 70000 } }, /listen.port/],
        [{ ...base, listen: { host: '', port: 1 } }, /listen.host/],
        [{ ...base, listen: { port: 1, extra: 1 } }, /listen option "extra"/],
        [{ ...base, listen: { server: {} } }, /listen.server/],
        [{ ...base, listen: { server, port: 1 } }, /listen option "port"/],
        [{ ...base, tls: { cert: 'c', key: 'k' } }, /tls.ca/],
        [{ ...base, tls: { cert: 'c', key: 'k', ca: 'a', requestCert: 'yes' } }, /requestCert/],
        [{ ...base, tls: { cert: 'c', key: 'k', ca: 'a' } }, /must be a wss:\/\/ URL/],
        [{ ...base, maxPayload: 10 }, /maxPayload/],
        [{ ...base, maxPayload: 1.5 }, /maxPayload/],
        [{ ...base, handshakeTimeoutMs: 0 }, /handshakeTimeoutMs/],
        [{ ...base, pingIntervalMs: 3000, peerTimeoutMs: 3000 }, /pingIntervalMs.*peerTimeoutMs/],
        [{ ...base, reconnect: { baseMs: 0, maxMs: 10 } }, /reconnect.baseMs/],
        [{ ...base, reconnect: { baseMs: 100, maxMs: 10 } }, /reconnect.maxMs/],
        [{ ...base, reconnect: { baseMs: 1 } }, /reconnect.maxMs/],
        [{ ...base, maxBufferedBytes: -1 }, /maxBufferedBytes/],
        [{ ...base, ratePerSec: 0 }, /ratePerSec/],
        [{ ...base, ratePerSec: Number.NaN }, /ratePerSec/],
        [{ ...base, burst: 0.5 }, /burst/],
        [{ ...base, scheduler: {} }, /scheduler/],
        [{ ...base, clock: {} }, /clock/],
        [{ ...base, rng: {} }, /rng/],
        [{ ...base, logger: { info: () => undefined } }, /logger/],
        [
          { ...base, secrets: SECRET },
          /unknown WebSocketTransport option "secrets".*allowed: self/,
        ],
      ];
      for (const [options, pattern] of cases) {
        assertConfigError(() => validateWebSocketOptions(options), pattern);
      }
      assertConfigError(() => new WebSocketTransport(null as never), /object/);
    });
  });

  describe('handshake', function () {
    const secret = Buffer.from(SECRET);
    const claims = (over: Partial<DialClaims> = {}): DialClaims => ({
      version: 1,
      cluster: 'c',
      from: 'b',
      to: 'a',
      instance: '0123456789abcdef',
      nonce: '0123456789abcdef0123456789abcdef',
      timeMs: 1_000_000,
      settings: '',
      ...over,
    });
    const expect = (over: Partial<ListenerExpectations> = {}): ListenerExpectations => ({
      version: 1,
      cluster: 'c',
      self: 'a',
      peers: new Set(['b']),
      secret,
      nonces: new NonceCache(10),
      nowMs: 1_000_000,
      notBeforeMs: 0,
      ...over,
    });

    it('accepts a valid dial once, then refuses its replay', function () {
      const e = expect();
      const headers = dialHeaders(claims(), secret);
      const first = verifyDial(headers, e);
      assert.ok(first.ok);
      assert.deepEqual(first.claims, claims());
      assert.deepEqual(verifyDial(headers, e), {
        ok: false,
        reason: 'replayed-nonce',
        claimedFrom: 'b',
      });
    });

    it('carries any id through the headers', function () {
      const odd = 'nœud ü/%\n"x"';
      const headers = dialHeaders(claims({ from: odd }), secret);
      for (const value of Object.values(headers)) assert.match(value, /^[\x21-\x7e]+$/);
      const result = verifyDial(headers, expect({ peers: new Set([odd]) }));
      assert.ok(result.ok);
      assert.equal(result.claims.from, odd);
    });

    it('refuses each wrong field with its own reason', function () {
      const cases: [DialClaims, Partial<ListenerExpectations>, string][] = [
        [claims({ version: 2 }), {}, 'wrong-version'],
        [claims({ cluster: 'other' }), {}, 'wrong-cluster'],
        [claims({ to: 'z' }), {}, 'wrong-receiver'],
        [claims({ from: 'z' }), {}, 'unknown-peer'],
        [claims({ timeMs: 1_000_000 - HANDSHAKE_WINDOW_MS }), {}, 'stale-timestamp'],
        [claims({ timeMs: 1_000_000 + HANDSHAKE_WINDOW_MS }), {}, 'stale-timestamp'],
        [claims({ timeMs: 999_999 }), { notBeforeMs: 1_000_000 }, 'before-start'],
        [claims(), { secret: Buffer.from('another secret of 16+ bytes') }, 'bad-signature'],
      ];
      for (const [c, e, reason] of cases) {
        const result = verifyDial(dialHeaders(c, secret), expect(e));
        assert.equal(result.ok ? 'ok' : result.reason, reason, JSON.stringify(c));
      }
      const headers = dialHeaders(claims(), secret);
      const tampered = { ...headers, [HANDSHAKE_HEADERS.nonce]: 'f'.repeat(32) };
      const result = verifyDial(tampered, expect());
      assert.equal(result.ok ? 'ok' : result.reason, 'bad-signature');
    });

    it('carries the settings under the signature, and refuses an unreadable settings header', function () {
      const settings = 'leaseMs=1000&maxClockDrift=0.01';
      const headers = dialHeaders(claims({ settings }), secret);
      assert.equal(headers[HANDSHAKE_HEADERS.settings], settings);
      const result = verifyDial(headers, expect());
      assert.ok(result.ok);
      assert.equal(result.claims.settings, settings);
      assert.deepEqual(result.settings, { leaseMs: '1000', maxClockDrift: '0.01' });
      // No settings, no header.
      assert.equal(HANDSHAKE_HEADERS.settings in dialHeaders(claims(), secret), false);
      const changed = {
        ...headers,
        [HANDSHAKE_HEADERS.settings]: 'leaseMs=2000&maxClockDrift=0.01',
      };
      const dropped = Object.fromEntries(
        Object.entries(headers).filter(([name]) => name !== HANDSHAKE_HEADERS.settings),
      );
      for (const tampered of [changed, dropped]) {
        const again = verifyDial(tampered, expect());
        assert.equal(again.ok ? 'ok' : again.reason, 'bad-signature');
      }
      const unreadable = dialHeaders(claims({ settings: 'a=1&a=2' }), secret);
      const refused = verifyDial(unreadable, expect());
      assert.equal(refused.ok ? 'ok' : refused.reason, 'malformed');
    });

    it("proves a settings refusal with the listener's settings, for this dial only", function () {
      const answering = {
        version: 1,
        cluster: 'c',
        listener: 'a',
        dialler: 'b',
        diallerNonce: '0123456789abcdef0123456789abcdef',
      };
      const lines = settingsRefusalHeaders(answering, 'leaseMs=1000', 'leaseMs', secret);
      const headers = Object.fromEntries(
        lines.map((line) => {
          const at = line.indexOf(': ');
          return [line.slice(0, at), line.slice(at + 2)];
        }),
      );
      assert.equal(headers[HANDSHAKE_HEADERS.refused], 'leaseMs');
      assert.deepEqual(verifySettingsRefusal(headers, answering, secret), { leaseMs: '1000' });
      const other = Buffer.from('another secret of 16+ bytes');
      assert.equal(verifySettingsRefusal(headers, answering, other), null);
      assert.equal(
        verifySettingsRefusal(headers, { ...answering, diallerNonce: 'f'.repeat(32) }, secret),
        null,
      );
      const forged = { ...headers, [HANDSHAKE_HEADERS.settings]: 'leaseMs=5' };
      assert.equal(verifySettingsRefusal(forged, answering, secret), null);
      // A welcome proof for the same dial never passes for a settings refusal.
      const welcome = listenerProof({ ...answering, listenerInstance: 'fedcba9876543210' }, secret);
      const swapped = { ...headers, [HANDSHAKE_HEADERS.proof]: welcome };
      assert.equal(verifySettingsRefusal(swapped, answering, secret), null);
    });

    it('never fills the nonce cache with unauthenticated handshakes', function () {
      const e = expect();
      for (let i = 0; i < 50; i++) {
        const c = claims({ nonce: i.toString(16).padStart(32, '0') });
        verifyDial(dialHeaders(c, Buffer.from('wrong secret, 16 bytes or more')), e);
      }
      assert.equal(e.nonces.size, 0);
    });

    it('checks the listener proof against the dialler nonce, cluster and ids', function () {
      const proof = {
        version: 1,
        cluster: 'c',
        listener: 'a',
        dialler: 'b',
        listenerInstance: 'fedcba9876543210',
        diallerNonce: '0123456789abcdef0123456789abcdef',
      };
      const headers = {
        [HANDSHAKE_HEADERS.instance]: proof.listenerInstance,
        [HANDSHAKE_HEADERS.proof]: listenerProof(proof, secret),
      };
      const { listenerInstance: _, ...expected } = proof;
      assert.equal(verifyListener(headers, expected, secret), proof.listenerInstance);
      assert.equal(
        verifyListener(headers, { ...expected, diallerNonce: 'f'.repeat(32) }, secret),
        null,
      );
      assert.equal(verifyListener(headers, { ...expected, listener: 'z' }, secret), null);
      assert.equal(verifyListener({}, expected, secret), null);
      assert.equal(
        verifyListener(headers, expected, Buffer.from('another secret of 16+ bytes')),
        null,
      );
      // A dial signature never passes for a proof.
      const dial = dialHeaders(claims(), secret);
      assert.equal(
        verifyListener(
          { ...headers, [HANDSHAKE_HEADERS.proof]: dial[HANDSHAKE_HEADERS.signature] ?? '' },
          expected,
          secret,
        ),
        null,
      );
    });
  });

  describe('NonceCache', function () {
    it('refuses a known nonce, forgets expired ones, and fails closed when full', function () {
      const cache = new NonceCache(3);
      assert.equal(cache.add('a', 100, 0), 'ok');
      assert.equal(cache.add('a', 100, 50), 'replayed');
      assert.equal(cache.add('b', 200, 50), 'ok');
      assert.equal(cache.add('c', 300, 50), 'ok');
      assert.equal(cache.add('d', 300, 50), 'full');
      assert.equal(cache.size, 3);
      // 'a' expires at 100: room again, and 'a' is new again (its timestamp is stale by then).
      assert.equal(cache.add('d', 300, 100), 'ok');
      assert.equal(cache.size, 3);
      assert.equal(cache.add('x', 400, 1000), 'ok');
      assert.equal(cache.size, 1);
    });

    it('stays within its capacity whatever is added', function () {
      const cache = new NonceCache(100);
      for (let i = 0; i < 10_000; i++) cache.add(`n${i}`, i + 50, i);
      assert.ok(cache.size <= 100);
    });
  });

  describe('backoff', function () {
    it('draws full jitter below a cap that doubles up to maxMs', function () {
      const policy = { baseMs: 100, maxMs: 1000 };
      const rng = createRng(1);
      for (let attempt = 0; attempt < 40; attempt++) {
        const cap = Math.min(1000, 100 * 2 ** attempt);
        for (let i = 0; i < 50; i++) {
          const delay = backoffDelayMs(attempt, policy, rng);
          assert.ok(Number.isInteger(delay) && delay >= 0 && delay < cap, `${delay} at ${attempt}`);
        }
      }
      const high = Array.from({ length: 200 }, () => backoffDelayMs(10, policy, rng));
      assert.ok(Math.max(...high) > 800 && Math.min(...high) < 200, 'spread over the range');
    });
  });

  describe('TokenBucket', function () {
    it('allows a burst, then the sustained rate', function () {
      const bucket = new TokenBucket(10, 5, 0);
      let allowed = 0;
      for (let i = 0; i < 20; i++) if (bucket.take(0)) allowed += 1;
      assert.equal(allowed, 5);
      assert.equal(bucket.take(50), false);
      assert.equal(bucket.take(100), true);
      assert.equal(bucket.take(100), false);
      // Never more than the burst, however long it rested; a clock going back adds nothing.
      let later = 0;
      for (let i = 0; i < 20; i++) if (bucket.take(100_000)) later += 1;
      assert.equal(later, 5);
      assert.equal(bucket.take(0), false);
    });
  });

  describe('LogThrottle', function () {
    it('admits a few lines per window and reports how many it left out', function () {
      const throttle = new LogThrottle(2, 1000);
      assert.equal(throttle.admit(0), 0);
      assert.equal(throttle.admit(10), 0);
      assert.equal(throttle.admit(20), null);
      assert.equal(throttle.admit(999), null);
      assert.equal(throttle.admit(1000), 2);
      assert.equal(throttle.admit(1001), 0);
    });
  });

  describe('tie-break', function () {
    it('keeps the connection dialled by the lower id, on both ends', function () {
      const byA = { dialledBy: 'a', peerInstance: 'i' };
      const byB = { dialledBy: 'b', peerInstance: 'i' };
      // At a (peer b) and at b (peer a), whichever arrived first.
      assert.equal(newerLinkWins('a', 'b', byB, byA), true);
      assert.equal(newerLinkWins('a', 'b', byA, byB), false);
      assert.equal(newerLinkWins('b', 'a', byB, byA), true);
      assert.equal(newerLinkWins('b', 'a', byA, byB), false);
      // A dial still unanswered counts as dialled.
      assert.equal(newerLinkWins('a', 'b', { dialledBy: 'a', peerInstance: null }, byB), false);
      assert.equal(newerLinkWins('b', 'a', { dialledBy: 'b', peerInstance: null }, byA), true);
    });

    it('lets a newer instance or a redial by the same node replace the old connection', function () {
      const old = { dialledBy: 'a', peerInstance: 'old' };
      assert.equal(newerLinkWins('a', 'b', old, { dialledBy: 'b', peerInstance: 'new' }), true);
      assert.equal(newerLinkWins('a', 'b', old, { dialledBy: 'a', peerInstance: 'old' }), true);
    });
  });
});
