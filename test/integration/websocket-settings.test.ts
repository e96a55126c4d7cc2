import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { WebSocket } from 'ws';
import { WebSocketTransport } from '../../adapters/websocket/index.js';
import { HANDSHAKE_HEADERS, SETTINGS_STATUS } from '../../adapters/websocket/handshake.js';
import { createNode, type SynodNode } from '../../lib/index.js';
import { encodeSettings, type TransportSettings } from '../../lib/settings.js';
import type { SettingsRefusal } from '../../lib/transport.js';
import { captureLogger, type LogLine } from '../runtime/helpers.js';
import {
  CLUSTER,
  FAST,
  freePort,
  puppetHeaders,
  puppetOpen,
  SECRET,
  sleep,
  TestServer,
  waitFor,
} from './websocket-harness.js';

/** What a listener answered a dial it refused: status, headers and body. */
interface Answer {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

function refusedDial(url: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, headers });
    ws.on('open', () => {
      ws.terminate();
      reject(new Error('the dial was accepted'));
    });
    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        ws.terminate();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    ws.on('error', () => undefined);
  });
}

const OURS: TransportSettings = { leaseMs: '1000', marginMs: '10' };
const THEIRS: TransportSettings = { leaseMs: '2000', marginMs: '10' };

describe('websocket transport: settings every peer must agree on', function () {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async function () {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('answers an authenticated dialler with other settings 412, naming the setting and both values', async function () {
    const host = await TestServer.listen();
    cleanups.push(() => host.close());
    const a = new WebSocketTransport({
      self: 'a',
      peers: { a: host.url, b: `ws://127.0.0.1:${await freePort()}/` },
      listen: { server: host.server },
      cluster: CLUSTER,
      secret: SECRET,
      ...FAST,
    });
    cleanups.push(() => a.close());
    const refusals: SettingsRefusal[] = [];
    a.onRefusal((refusal) => refusals.push(refusal));
    await a.start(OURS);

    const answer = await refusedDial(
      host.url,
      puppetHeaders({ from: 'b', to: 'a', settings: encodeSettings(THEIRS) }),
    );
    assert.equal(answer.status, SETTINGS_STATUS);
    assert.equal(answer.headers[HANDSHAKE_HEADERS.refused], 'leaseMs');
    assert.equal(answer.headers[HANDSHAKE_HEADERS.settings], encodeSettings(OURS));
    assert.match(answer.body, /leaseMs is 1000 here, 2000 in the dial/);
    assert.deepEqual(refusals, [{ peer: 'b', setting: 'leaseMs', ours: '1000', theirs: '2000' }]);
    assert.deepEqual(a.stats().refusedSettings, { leaseMs: 1 });
    assert.deepEqual(a.connections(), []);

    // Without the secret, a dialler learns nothing of the settings.
    const stranger = await refusedDial(
      host.url,
      puppetHeaders({ from: 'b', to: 'a', settings: '', secret: 'not-the-secret-but-long' }),
    );
    assert.equal(stranger.status, 401);
    assert.equal(stranger.headers[HANDSHAKE_HEADERS.settings], undefined);
    assert.equal(stranger.body, '');

    // The same settings, in another order, get in.
    const same = encodeSettings({ marginMs: '10', leaseMs: '1000' });
    const ws = await puppetOpen(host.url, puppetHeaders({ from: 'b', to: 'a', settings: same }));
    ws.terminate();
    assert.deepEqual(a.stats().refusedSettings, { leaseMs: 1 });
  });

  it('a refused dialler reports the setting and backs off, and no frame flows either way', async function () {
    const ports = { a: await freePort(), b: await freePort() };
    const peers = { a: `ws://127.0.0.1:${ports.a}/`, b: `ws://127.0.0.1:${ports.b}/` };
    const make = (id: 'a' | 'b'): WebSocketTransport =>
      new WebSocketTransport({
        self: id,
        peers,
        listen: { host: '127.0.0.1', port: ports[id] },
        cluster: CLUSTER,
        secret: SECRET,
        ...FAST,
        reconnect: { baseMs: 50, maxMs: 400 },
      });
    const a = make('a');
    const b = make('b');
    cleanups.push(() => Promise.all([a.close(), b.close()]).then(() => undefined));
    const refusals = { a: [] as SettingsRefusal[], b: [] as SettingsRefusal[] };
    const frames: string[] = [];
    a.onRefusal((r) => refusals.a.push(r));
    b.onRefusal((r) => refusals.b.push(r));
    a.onMessage((_, frame) => frames.push(frame));
    b.onMessage((_, frame) => frames.push(frame));
    await Promise.all([a.start(OURS), b.start(THEIRS)]);
    const started = performance.now();
    await sleep(1500);
    a.send('b', 'a->b');
    b.send('a', 'b->a');
    await sleep(50);
    const seconds = (performance.now() - started) / 1000;

    assert.deepEqual(frames, []);
    assert.equal(a.stats().dropped.unreachable, 1);
    assert.equal(b.stats().dropped.unreachable, 1);
    assert.deepEqual([a.connections(), b.connections()], [[], []]);
    assert.ok(refusals.a.length >= 2 && refusals.b.length >= 2, JSON.stringify(refusals));
    for (const r of refusals.a) assert.deepEqual(r, { peer: 'b', ...mismatch('1000', '2000') });
    for (const r of refusals.b) assert.deepEqual(r, { peer: 'a', ...mismatch('2000', '1000') });
    // Each dial costs a millisecond or two on loopback: redialling at once would make hundreds.
    for (const t of [a, b]) {
      const { dials } = t.stats();
      assert.ok(dials >= 2 && dials <= 20 * seconds, `${dials} dials in ${seconds.toFixed(1)} s`);
      assert.equal(t.stats().refusedSettings['leaseMs'], refusals[t.self as 'a' | 'b'].length);
    }
  });

  it('keeps a node with another leaseMs out of the cluster, each side logging the setting at error', async function () {
    const ids = ['a', 'b', 'c'];
    const peers: Record<string, string> = {};
    for (const id of ids) peers[id] = `ws://127.0.0.1:${await freePort()}/`;
    const logs = new Map<string, LogLine[]>();
    const nodes: SynodNode[] = ids.map((id) => {
      const logger = captureLogger();
      logs.set(id, logger.lines);
      return createNode({
        id,
        peers,
        secret: SECRET,
        cluster: CLUSTER,
        leaseMs: id === 'c' ? 400 : 300,
        websocket: { ...FAST },
        logger,
      });
    });
    cleanups.push(() => Promise.all(nodes.map((n) => n.stop())).then(() => undefined));
    const refused = (id: string, peer: string): LogLine[] =>
      (logs.get(id) ?? []).filter(
        (line) =>
          line.level === 'error' &&
          line.fields['peer'] === peer &&
          line.fields['setting'] === 'leaseMs',
      );
    await Promise.all(nodes.map((n) => n.start()));
    await waitFor(
      'a leader among a and b, and every refusal logged on both sides',
      () =>
        nodes.some((n) => n.isLeader) &&
        [
          ['a', 'c'],
          ['b', 'c'],
          ['c', 'a'],
          ['c', 'b'],
        ].every(([id, peer]) => refused(id ?? '', peer ?? '').length > 0),
      10_000,
    );
    const [a, b, c] = nodes;
    assert.ok(a && b && c);
    assert.equal(c.isLeader, false);
    assert.equal(c.leaderId, null);
    assert.equal(c.stats().framesIn, 0);
    assert.ok(a.isLeader || b.isLeader);
    assert.deepEqual(refused('c', 'a')[0]?.fields, {
      peer: 'a',
      setting: 'leaseMs',
      ours: '400',
      theirs: '300',
    });
    assert.deepEqual(refused('a', 'c')[0]?.fields, {
      peer: 'c',
      setting: 'leaseMs',
      ours: '300',
      theirs: '400',
    });
    assert.ok((c.stats().transport?.refusedSettings['leaseMs'] ?? 0) >= 2);
  });
});

function mismatch(ours: string, theirs: string): Omit<SettingsRefusal, 'peer'> {
  return { setting: 'leaseMs', ours, theirs };
}
