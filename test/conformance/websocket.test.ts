import assert from 'node:assert/strict';
import { WebSocketTransport } from '../../adapters/websocket/index.js';
import type { Transport } from '../../lib/transport.js';
import {
  CLUSTER,
  FAST,
  freePort,
  SECRET,
  sleep,
  TestServer,
} from '../integration/websocket-harness.js';
import { transportConformance, type ConformanceCluster } from './suite.js';

// Real sockets on loopback, so `tick` really waits.

/**
 * Each node on a server the test owns. That lets `crash` do what a dying process does to its
 * peers: every socket of the node goes away at once, with no close frame, and its port stops
 * answering; `restart` binds the same port again for a fresh transport.
 */
async function applicationServers(ids: string[]): Promise<ConformanceCluster> {
  const hosts = new Map<string, TestServer>();
  for (const id of ids) hosts.set(id, await TestServer.listen());
  const host = (id: string): TestServer => {
    const h = hosts.get(id);
    assert.ok(h, `no server for ${id}`);
    return h;
  };
  const peers = Object.fromEntries(ids.map((id) => [id, host(id).url]));
  const make = (id: string): WebSocketTransport =>
    new WebSocketTransport({
      self: id,
      peers,
      listen: { server: host(id).server },
      cluster: CLUSTER,
      secret: SECRET,
      ...FAST,
    });
  const transports = ids.map(make);
  const all: Transport[] = [...transports];
  const live = new Map<string, Transport>(transports.map((t) => [t.self, t]));
  return {
    transports,
    tick: sleep,
    crash: async (id) => {
      const old = live.get(id);
      assert.ok(old);
      for (const [other, h] of hosts) if (other !== id) h.cutFrom(id);
      await host(id).close();
      // The process is gone: its transport must do nothing more (in a real crash, it could not).
      await old.close();
    },
    restart: async (id) => {
      hosts.set(id, await TestServer.listen(host(id).port));
      const transport = make(id);
      all.push(transport);
      live.set(id, transport);
      return transport;
    },
    close: async () => {
      await Promise.all(all.map((t) => t.close()));
      await Promise.all([...hosts.values()].map((h) => h.close()));
    },
  };
}

/** Each node binding its own server on a port reserved a moment before. */
async function ownServers(ids: string[]): Promise<ConformanceCluster> {
  const ports = new Map<string, number>();
  for (const id of ids) ports.set(id, await freePort());
  const peers = Object.fromEntries(
    ids.map((id) => [id, `ws://127.0.0.1:${String(ports.get(id))}/`]),
  );
  const transports = ids.map(
    (id) =>
      new WebSocketTransport({
        self: id,
        peers,
        listen: { host: '127.0.0.1', port: ports.get(id) ?? 0 },
        cluster: CLUSTER,
        secret: SECRET,
        ...FAST,
      }),
  );
  return {
    transports,
    tick: sleep,
    close: async () => {
      await Promise.all(transports.map((t) => t.close()));
    },
  };
}

describe('websocket adapter', function () {
  transportConformance('websocket on application servers', applicationServers);
  transportConformance('websocket on its own servers', ownServers, { reconnection: false });
});
