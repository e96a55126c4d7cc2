import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { ConfigError } from '../../lib/errors.js';
import { createNode, type SynodNode } from '../../lib/index.js';
import { validateOptions } from '../../lib/options.js';
import { freePort, waitFor } from '../integration/websocket-harness.js';
import { captureLogger, idleTransport } from './helpers.js';

const SECRET = 'a-shared-secret-of-32-characters';
const URLS = {
  a: 'ws://127.0.0.1:7001',
  b: 'ws://127.0.0.1:7002',
  c: 'ws://127.0.0.1:7003',
};

function mapped(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id: 'a', peers: URLS, secret: SECRET, ...extra };
}

function rejects(options: unknown, pattern: RegExp): ConfigError {
  try {
    validateOptions(options);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.match(error.message, pattern);
    return error;
  }
  assert.fail(`expected a ConfigError matching ${String(pattern)}`);
}

/** Whether a TCP port can be bound on 127.0.0.1 right now. */
async function canBind(port: number): Promise<boolean> {
  const server = createServer();
  const bound = await new Promise<boolean>((resolve) => {
    server.once('error', () => {
      resolve(false);
    });
    server.listen(port, '127.0.0.1', () => {
      resolve(true);
    });
  });
  if (bound)
    await new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
    });
  return bound;
}

describe('createNode with peers as a map of URLs', () => {
  describe('validation', () => {
    it('builds no transport itself but keeps the validated WebSocket options', () => {
      const resolved = validateOptions(
        mapped({ cluster: 'shop', websocket: { maxPayload: 4096 } }),
      );
      assert.equal(resolved.transport, null);
      assert.deepEqual(resolved.peers, ['a', 'b', 'c']);
      assert.ok(resolved.websocket !== null);
      assert.equal(resolved.websocket.self, 'a');
      assert.equal(resolved.websocket.cluster, 'shop');
      assert.equal(resolved.websocket.maxPayload, 4096);
      assert.deepEqual(resolved.websocket.peers, URLS);
    });

    it('requires a secret, and never quotes it back', () => {
      rejects({ id: 'a', peers: URLS }, /^secret is required when peers is a map of URLs/);
      const error = rejects(mapped({ secret: 'short-secret' }), /secret must be at least 16 bytes/);
      assert.doesNotMatch(error.message, /short-secret/);
    });

    it('refuses a transport together with a map', () => {
      rejects(
        mapped({ transport: idleTransport('a', ['a', 'b', 'c']) }),
        /^transport must not be given when peers is a map of URLs/,
      );
    });

    it('refuses a URL that is not ws:// or wss://, without quoting it', () => {
      const error = rejects(
        mapped({ peers: { ...URLS, b: 'http://user:pw@127.0.0.1:7002' } }),
        /^peers\["b"\] must be a ws:\/\/ or wss:\/\/ URL$/,
      );
      assert.doesNotMatch(error.message, /pw/);
      rejects(mapped({ peers: { ...URLS, c: 'not a url' } }), /^peers\["c"\] must be a ws:\/\//);
      rejects(mapped({ peers: { ...URLS, c: 7003 } }), /^peers\["c"\] must be a ws:\/\//);
    });

    it('refuses credentials in a URL and ws:// URLs with tls', () => {
      rejects(
        mapped({ peers: { ...URLS, b: 'ws://user:pw@127.0.0.1:7002' } }),
        /peers\["b"\] must not carry credentials/,
      );
      rejects(
        mapped({ tls: { cert: 'CERT', key: 'KEY', ca: 'CA' } }),
        /peers\["a"\] must be a wss:\/\/ URL when tls is set/,
      );
    });

    it('needs its own URL in the map unless listen is given', () => {
      const { a: _a, ...others } = URLS;
      rejects(
        mapped({ peers: others }),
        /^peers has no URL for this node's own id "a": add it .*or give listen/,
      );
      const resolved = validateOptions(mapped({ peers: others, listen: { port: 0 } }));
      assert.deepEqual(resolved.peers, ['b', 'c', 'a']);
    });

    it('refuses an empty map and bad ids', () => {
      rejects(mapped({ peers: {} }), /^peers must not be empty/);
      rejects(
        mapped({ peers: { ...URLS, '': 'ws://127.0.0.1:1' } }),
        /^peers keys must be node ids/,
      );
    });

    it('refuses WebSocket options with peers as an array', () => {
      const peers = ['a', 'b', 'c'];
      for (const key of ['secret', 'listen', 'tls', 'websocket']) {
        rejects(
          { id: 'a', peers, transport: idleTransport('a', peers), [key]: {} },
          new RegExp(`^${key} is only for peers given as a map of URLs`),
        );
      }
    });

    it('still requires a transport with peers as an array', () => {
      rejects({ id: 'a', peers: ['a', 'b', 'c'] }, /^transport is required when peers is an array/);
      rejects({ id: 'a', peers: 'a,b,c', secret: SECRET }, /^peers must be an array of node ids/);
    });

    it('checks listen and the transport tuning', () => {
      rejects(mapped({ listen: { port: 70_000 } }), /listen.port must be a whole number/);
      rejects(
        mapped({ websocket: { pingMs: 5 } }),
        /^unknown websocket option "pingMs" \(allowed: maxPayload, /,
      );
      rejects(mapped({ websocket: 'fast' }), /^websocket must be an object/);
      rejects(
        mapped({ websocket: { pingIntervalMs: 500, peerTimeoutMs: 500 } }),
        /pingIntervalMs \(500\) must be below peerTimeoutMs \(500\)/,
      );
    });

    it('lists the new options among the allowed ones', () => {
      rejects(mapped({ secrets: SECRET }), /unknown option "secrets" \(allowed: .*secret, listen/);
    });
  });

  describe('on loopback', function () {
    this.timeout(20_000);
    const LEASE_MS = 200;
    let nodes: SynodNode[] = [];

    afterEach(async () => {
      await Promise.all(nodes.map((node) => node.stop().catch(() => undefined)));
      nodes = [];
    });

    async function cluster(): Promise<{
      nodes: SynodNode[];
      ports: number[];
      logs: ReturnType<typeof captureLogger>[];
    }> {
      const ids = ['a', 'b', 'c'];
      const ports: number[] = [];
      for (const _ of ids) ports.push(await freePort());
      const peers = Object.fromEntries(ids.map((id, i) => [id, `ws://127.0.0.1:${ports[i]}`]));
      const logs = ids.map(() => captureLogger());
      nodes = ids.map((id, i) =>
        createNode({
          id,
          peers,
          secret: SECRET,
          leaseMs: LEASE_MS,
          logger: logs[i]!,
          websocket: { pingIntervalMs: 100, peerTimeoutMs: 1000 },
        }),
      );
      await Promise.all(nodes.map((node) => node.start()));
      return { nodes, ports, logs };
    }

    function leaders(): SynodNode[] {
      return nodes.filter((node) => node.isLeader);
    }

    it('elects one leader over its own WebSocket transports and hands off on stop', async () => {
      const { logs } = await cluster();
      await waitFor('a leader', () => leaders().length === 1, 10 * LEASE_MS);
      const [leader] = leaders();
      assert.ok(leader);
      await waitFor(
        'every node to know the leader',
        () => nodes.every((node) => node.leaderId === leader.id),
        10 * LEASE_MS,
      );
      // The transport logs through the node's logger.
      for (const log of logs) {
        assert.ok(log.lines.some((line) => line.message === 'websocket transport started'));
      }
      const stats = leader.stats().transport;
      assert.ok(stats !== null && stats.sent > 0 && stats.delivered > 0);

      const stoppedAt = performance.now();
      await leader.stop();
      const rest = nodes.filter((node) => node !== leader);
      await waitFor('a successor', () => rest.some((node) => node.isLeader), 10 * LEASE_MS);
      // A handoff, not a lease timeout.
      assert.ok(performance.now() - stoppedAt < LEASE_MS / 2);
      assert.ok(leaders().length === 1);
    });

    it('frees its port on stop, and a new node with the same id rejoins as follower', async () => {
      const { ports } = await cluster();
      await waitFor('a leader', () => leaders().length === 1, 10 * LEASE_MS);
      const follower = nodes.find((node) => !node.isLeader);
      assert.ok(follower);
      const index = nodes.indexOf(follower);
      const port = ports[index];
      assert.ok(port !== undefined);
      await follower.stop();
      assert.equal(await canBind(port), true);

      const leader = leaders()[0];
      assert.ok(leader);
      const peers = Object.fromEntries(
        ['a', 'b', 'c'].map((id, i) => [id, `ws://127.0.0.1:${ports[i]}`]),
      );
      const again = createNode({ id: follower.id, peers, secret: SECRET, leaseMs: LEASE_MS });
      nodes[index] = again;
      await again.start();
      await waitFor('the new node to follow', () => again.leaderId === leader.id, 10 * LEASE_MS);
      assert.equal(again.isLeader, false);
      assert.ok(leader.isLeader);
    });

    it('rejects start when its port is taken, and the node ends stopped', async () => {
      const blocker = createServer();
      await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
      const address = blocker.address();
      assert.ok(address !== null && typeof address === 'object');
      try {
        const node = createNode({
          id: 'a',
          peers: { a: `ws://127.0.0.1:${address.port}`, b: 'ws://127.0.0.1:1' },
          secret: SECRET,
          listen: { host: '127.0.0.1', port: address.port },
        });
        nodes = [node];
        await assert.rejects(node.start());
        assert.equal(node.state, 'stopped');
      } finally {
        await new Promise<void>((resolve) => {
          blocker.close(() => {
            resolve();
          });
        });
      }
    });

    it('refuses peers that use another secret', async () => {
      const ids = ['a', 'b', 'c'];
      const ports: number[] = [];
      for (const _ of ids) ports.push(await freePort());
      const peers = Object.fromEntries(ids.map((id, i) => [id, `ws://127.0.0.1:${ports[i]}`]));
      nodes = ids.map((id) =>
        createNode({
          id,
          peers,
          secret: id === 'c' ? `${SECRET}-other` : SECRET,
          leaseMs: LEASE_MS,
        }),
      );
      await Promise.all(nodes.map((node) => node.start()));
      await waitFor('a leader', () => leaders().length === 1, 10 * LEASE_MS);
      // c never hears the leader: its connections are refused in the handshake.
      await new Promise((resolve) => setTimeout(resolve, 2 * LEASE_MS));
      const c = nodes[2];
      assert.ok(c);
      assert.equal(c.leaderId, null);
      assert.equal(c.stats().framesIn, 0);
    });
  });
});
