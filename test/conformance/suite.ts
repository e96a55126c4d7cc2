import assert from 'node:assert/strict';
import { ConfigError, TransportError } from '../../lib/errors.js';
import type { TransportSettings } from '../../lib/settings.js';
import type { PeerEvent, SettingsRefusal, Transport } from '../../lib/transport.js';

/**
 * The one behaviour suite every transport adapter must pass (memory, WebSocket, Redis).
 *
 * What it holds adapters to, beyond the interface's types:
 * - A transport carries frames as opaque strings: whatever is sent arrives byte for byte, or
 *   not at all. It never parses them; malformed frames reach the handler and the codec refuses
 *   them there, in one place for every adapter. A frame above an adapter's own size limit may
 *   instead be dropped and counted as `oversized` (at the sender or the receiver), and must not
 *   stop later frames.
 * - Nothing throws out of `send`, whatever the peer, the frame or the transport's state.
 * - Handlers run outside `send`, one throwing handler does not stop the others or later frames.
 * - Peer events report changes only: never `up` twice in a row for one peer.
 * - Peers whose settings (given to `start`) differ never exchange a frame nor see each other
 *   up, and both sides report the refusal, naming the setting.
 *
 * The suite drives time only through `tick`, so an adapter on a virtual clock runs it without a
 * single real sleep, and a networked adapter passes a `tick` that really waits.
 */

export interface ConformanceCluster {
  /** One transport per id, in the order of `ids`, each with every other id as a peer. Not started. */
  readonly transports: Transport[];
  /** Lets `ms` of time pass (virtual or real), running whatever falls due. */
  tick(ms: number): Promise<void>;
  /** Kills the node's transport abruptly, without `close()`: only where the adapter can. */
  crash?(id: string): Promise<void>;
  /** A fresh, not yet started transport for a crashed id: only where reconnection is supported. */
  restart?(id: string): Promise<Transport>;
  /** Closes whatever the cluster made, including transports from `restart`. */
  close(): Promise<void>;
}

export type MakeCluster = (ids: string[]) => Promise<ConformanceCluster>;

export interface ConformanceOptions {
  /** How long to wait for something that must happen; default 5000 ms. */
  readonly timeoutMs?: number;
  /** How long to watch for something that must not happen; default 200 ms. */
  readonly quietMs?: number;
  /** The step `tick` is called with while waiting; default 10 ms. */
  readonly stepMs?: number;
  /**
   * Whether the cluster can crash and restart a node (`crash` and `restart`); default true.
   * An adapter run that cannot says so here, and the reconnection case is not part of its run.
   */
  readonly reconnection?: boolean;
}

const IDS = ['a', 'b', 'c'];

/** Records what one transport reports. */
class Recorder {
  readonly messages: { from: string; frame: string }[] = [];
  readonly peerEvents: PeerEvent[] = [];
  readonly refusals: SettingsRefusal[] = [];
  readonly #unsubscribe: () => void;

  constructor(readonly transport: Transport) {
    this.#unsubscribe = transport.onMessage((from, frame) => {
      this.messages.push({ from, frame });
    });
    transport.onPeer((event) => {
      this.peerEvents.push(event);
    });
    transport.onRefusal((refusal) => {
      this.refusals.push(refusal);
    });
  }

  /** Whether the last event about `peer` said it is up. */
  isUp(peer: string): boolean {
    return this.peerEvents.findLast((e) => e.peer === peer)?.up ?? false;
  }

  framesFrom(peer: string): string[] {
    return this.messages.filter((m) => m.from === peer).map((m) => m.frame);
  }

  stopRecordingMessages(): void {
    this.#unsubscribe();
  }
}

export function transportConformance(
  name: string,
  makeCluster: MakeCluster,
  options: ConformanceOptions = {},
): void {
  const timeoutMs = options.timeoutMs ?? 5000;
  const quietMs = options.quietMs ?? 200;
  const stepMs = options.stepMs ?? 10;

  describe(`transport conformance: ${name}`, function () {
    let cluster: ConformanceCluster | null = null;
    const made: Transport[] = [];

    afterEach(async function () {
      if (cluster !== null) await cluster.close();
      cluster = null;
      made.length = 0;
    });

    async function make(ids = IDS): Promise<ConformanceCluster> {
      cluster = await makeCluster(ids);
      made.push(...cluster.transports);
      return cluster;
    }

    async function waitFor(what: string, condition: () => boolean): Promise<void> {
      for (let waited = 0; !condition(); waited += stepMs) {
        if (waited >= timeoutMs) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await current().tick(stepMs);
      }
    }

    function current(): ConformanceCluster {
      assert.ok(cluster, 'no cluster');
      return cluster;
    }

    function byId(id: string): Transport {
      const transport = made.findLast((t) => t.self === id);
      assert.ok(transport, `no transport for ${id}`);
      return transport;
    }

    /** A started cluster whose every node sees every other one up. */
    async function started(ids = IDS): Promise<Map<string, Recorder>> {
      const c = await make(ids);
      const recorders = new Map(c.transports.map((t) => [t.self, new Recorder(t)]));
      await Promise.all(c.transports.map((t) => t.start()));
      await waitFor('every peer up', () =>
        [...recorders.values()].every((r) => r.transport.peers.every((p) => r.isUp(p))),
      );
      return recorders;
    }

    function rec(recorders: Map<string, Recorder>, id: string): Recorder {
      const recorder = recorders.get(id);
      assert.ok(recorder, `no recorder for ${id}`);
      return recorder;
    }

    it('names itself and lists exactly the other nodes as peers', async function () {
      const c = await make();
      for (const [i, id] of IDS.entries()) {
        const transport = c.transports[i];
        assert.ok(transport);
        assert.equal(transport.self, id);
        assert.deepEqual(
          [...transport.peers].sort(),
          IDS.filter((other) => other !== id),
        );
      }
    });

    it('reports every peer up after start, and only changes after that', async function () {
      const recorders = await started();
      await current().tick(quietMs);
      for (const recorder of recorders.values()) {
        for (const peer of recorder.transport.peers) {
          const events = recorder.peerEvents.filter((e) => e.peer === peer).map((e) => e.up);
          assert.ok(events.length > 0);
          events.forEach((up, i) => {
            assert.notEqual(up, events[i - 1], `${peer} reported ${String(up)} twice in a row`);
          });
          assert.equal(events.at(-1), true);
        }
      }
    });

    it('delivers a frame to the named peer only, with the sender id', async function () {
      const recorders = await started();
      byId('a').send('b', 'for b');
      byId('a').send('c', 'for c');
      await waitFor('both frames', () =>
        ['b', 'c'].every((id) => rec(recorders, id).messages.length > 0),
      );
      await current().tick(quietMs);
      assert.deepEqual(rec(recorders, 'b').messages, [{ from: 'a', frame: 'for b' }]);
      assert.deepEqual(rec(recorders, 'c').messages, [{ from: 'a', frame: 'for c' }]);
      assert.deepEqual(rec(recorders, 'a').messages, []);
    });

    it('delivers between every pair, both ways', async function () {
      const recorders = await started();
      for (const from of IDS) {
        for (const to of IDS) if (from !== to) byId(from).send(to, `${from}->${to}`);
      }
      await waitFor('every frame', () =>
        [...recorders.values()].every((r) => r.messages.length === IDS.length - 1),
      );
      for (const to of IDS) {
        for (const from of IDS) {
          if (from !== to)
            assert.deepEqual(rec(recorders, to).framesFrom(from), [`${from}->${to}`]);
        }
      }
    });

    it('delivers frames intact, whatever their characters', async function () {
      const recorders = await started();
      const frames = [
        '',
        ' ',
        'plain',
        '{"v":1,"quoted":"\\"\\\\","nl":"\\n"}',
        'ü € 中文 😀 👩‍👩‍👧',
        '\u0000\u0001\u001f\t\r\n',
        '\u2028\u2029\ufeff\uffff',
        'x'.repeat(60 * 1024),
      ];
      for (const frame of frames) byId('a').send('b', frame);
      const b = rec(recorders, 'b');
      await waitFor('every frame', () => b.messages.length >= frames.length);
      await current().tick(quietMs);
      assert.deepEqual(b.framesFrom('a').sort(), [...frames].sort());
    });

    it('carries malformed frames to the handler as opaque strings', async function () {
      const recorders = await started();
      const frames = ['not json', '{', '[1,2', '{"v":99}', 'null', '\\'];
      for (const frame of frames) byId('a').send('b', frame);
      const b = rec(recorders, 'b');
      await waitFor('every frame', () => b.messages.length >= frames.length);
      assert.deepEqual(b.framesFrom('a').sort(), [...frames].sort());
    });

    it('delivers or drops-and-counts an oversized frame, and later frames still flow', async function () {
      const recorders = await started();
      const a = byId('a');
      const huge = 'y'.repeat(1024 * 1024);
      const b = rec(recorders, 'b');
      assert.doesNotThrow(() => {
        a.send('b', huge);
      });
      const oversized = (): number =>
        a.stats().dropped.oversized + byId('b').stats().dropped.oversized;
      await waitFor(
        'the frame delivered or counted as oversized',
        () => b.messages.length > 0 || oversized() > 0,
      );
      if (b.messages.length > 0) assert.deepEqual(b.framesFrom('a'), [huge]);
      // An adapter may drop a connection over a large frame; it must come back.
      await waitFor('a and b up again', () => rec(recorders, 'a').isUp('b') && b.isUp('a'));
      a.send('b', 'after');
      await waitFor('the next frame', () => b.framesFrom('a').includes('after'));
    });

    it('drops a frame to an unknown peer or to itself without throwing, and counts it', async function () {
      const recorders = await started();
      const a = byId('a');
      assert.doesNotThrow(() => {
        a.send('nobody', 'lost');
        a.send('a', 'lost');
      });
      assert.equal(a.stats().dropped['unknown-peer'], 2);
      await current().tick(quietMs);
      for (const recorder of recorders.values()) assert.deepEqual(recorder.messages, []);
    });

    it('never calls a handler inside send', async function () {
      const recorders = await started();
      const b = rec(recorders, 'b');
      byId('a').send('b', 'later');
      assert.equal(b.messages.length, 0);
      await waitFor('the frame', () => b.messages.length === 1);
    });

    it('counts frames sent and delivered', async function () {
      const recorders = await started();
      const a = byId('a');
      const b = byId('b');
      const sentBefore = a.stats().sent;
      const deliveredBefore = b.stats().delivered;
      for (let i = 0; i < 5; i++) a.send('b', `n${i}`);
      await waitFor('five frames', () => rec(recorders, 'b').messages.length === 5);
      assert.equal(a.stats().sent - sentBefore, 5);
      assert.equal(b.stats().delivered - deliveredBefore, 5);
    });

    it('drops frames sent before start without throwing, and counts them as closed', async function () {
      const c = await make();
      const [a] = c.transports;
      assert.ok(a);
      assert.doesNotThrow(() => {
        a.send('b', 'too early');
      });
      assert.equal(a.stats().dropped.closed, 1);
      assert.equal(a.stats().sent, 0);
    });

    it('drops frames sent after close without throwing, and counts them as closed', async function () {
      const recorders = await started();
      const a = byId('a');
      await a.close();
      assert.doesNotThrow(() => {
        a.send('b', 'too late');
      });
      assert.equal(a.stats().dropped.closed, 1);
      await current().tick(quietMs);
      assert.deepEqual(rec(recorders, 'b').messages, []);
    });

    it('closes idempotently, and refuses to start again', async function () {
      await started();
      const a = byId('a');
      await a.close();
      await a.close();
      await Promise.all([a.close(), a.close()]);
      await assert.rejects(a.start(), TransportError);
      assert.equal(typeof a.stats().sent, 'number');
    });

    it('never connects peers whose settings differ, and both sides name the setting', async function () {
      const c = await make();
      const recorders = new Map(c.transports.map((t) => [t.self, new Recorder(t)]));
      const settings: Record<string, TransportSettings> = {
        a: { leaseMs: '1000', marginMs: '10' },
        b: { leaseMs: '2000', marginMs: '10' },
        c: { leaseMs: '1000', marginMs: '10' },
      };
      await Promise.all(c.transports.map((t) => t.start(settings[t.self])));
      const refused = (id: string, peer: string): SettingsRefusal[] =>
        rec(recorders, id).refusals.filter((r) => r.peer === peer);
      await waitFor('a and c up, and every refusal reported on both sides', () => {
        const up = rec(recorders, 'a').isUp('c') && rec(recorders, 'c').isUp('a');
        const pairs = [
          ['a', 'b'],
          ['b', 'a'],
          ['b', 'c'],
          ['c', 'b'],
        ] as const;
        return up && pairs.every(([id, peer]) => refused(id, peer).length > 0);
      });
      for (const from of IDS) {
        for (const to of IDS) if (from !== to) byId(from).send(to, `${from}->${to}`);
      }
      await waitFor('a and c reach each other', () =>
        ['a', 'c'].every((id) => rec(recorders, id).messages.length > 0),
      );
      await current().tick(quietMs);
      assert.deepEqual(rec(recorders, 'b').messages, []);
      assert.deepEqual(rec(recorders, 'a').messages, [{ from: 'c', frame: 'c->a' }]);
      assert.deepEqual(rec(recorders, 'c').messages, [{ from: 'a', frame: 'a->c' }]);
      for (const [id, peer] of [
        ['a', 'b'],
        ['b', 'a'],
        ['c', 'b'],
        ['b', 'c'],
      ] as const) {
        assert.ok(!rec(recorders, id).isUp(peer), `${id} reported ${peer} up`);
        const ours = settings[id]?.['leaseMs'] ?? null;
        const theirs = settings[peer]?.['leaseMs'] ?? null;
        for (const refusal of refused(id, peer)) {
          assert.deepEqual(refusal, { peer, setting: 'leaseMs', ours, theirs });
        }
        assert.ok((byId(id).stats().refusedSettings['leaseMs'] ?? 0) >= 1);
      }
      assert.deepEqual(Object.keys(byId('b').stats().refusedSettings), ['leaseMs']);
      assert.deepEqual(
        rec(recorders, 'a').refusals.filter((r) => r.peer === 'c'),
        [],
      );
    });

    it('refuses invalid settings, and a second start with other settings', async function () {
      const c = await make();
      const [a, b] = c.transports;
      assert.ok(a && b);
      await assert.rejects(a.start({ leaseMs: 1000 } as never), ConfigError);
      await assert.rejects(a.start({ 'not a name': '1' }), ConfigError);
      await b.start({ leaseMs: '1000' });
      await b.start({ leaseMs: '1000' });
      await assert.rejects(b.start({ leaseMs: '2000' }), ConfigError);
      await assert.rejects(b.start(), ConfigError);
    });

    it('reports a closed peer down to the others', async function () {
      const recorders = await started();
      await byId('b').close();
      await waitFor('b down at a and c', () =>
        ['a', 'c'].every((id) => !rec(recorders, id).isUp('b')),
      );
      assert.ok(rec(recorders, 'a').isUp('c'));
    });

    it('reports nothing to a transport after it closes', async function () {
      const recorders = await started();
      const b = rec(recorders, 'b');
      const eventsBefore = b.peerEvents.length;
      await byId('b').close();
      byId('a').send('b', 'after close');
      await byId('c').close();
      await current().tick(quietMs);
      assert.deepEqual(b.messages, []);
      assert.equal(b.peerEvents.length, eventsBefore);
    });

    it('keeps delivering when a message handler throws', async function () {
      const recorders = await started();
      const b = byId('b');
      b.onMessage(() => {
        throw new Error('handler failure');
      });
      const after: string[] = [];
      b.onMessage((_from, frame) => after.push(frame));
      for (let i = 0; i < 3; i++) byId('a').send('b', `m${i}`);
      await waitFor('three frames', () => after.length === 3);
      assert.deepEqual(rec(recorders, 'b').framesFrom('a').sort(), ['m0', 'm1', 'm2']);
      assert.ok(b.stats().handlerErrors >= 3);
    });

    it('keeps reporting peers when a peer handler throws', async function () {
      const recorders = await started();
      const a = byId('a');
      a.onPeer(() => {
        throw new Error('handler failure');
      });
      await byId('c').close();
      await waitFor('c down at a', () => !rec(recorders, 'a').isUp('c'));
      assert.ok(a.stats().handlerErrors >= 1);
      byId('b').send('a', 'still here');
      await waitFor('the frame', () => rec(recorders, 'a').messages.length === 1);
    });

    it('stops calling a handler once unsubscribed, and unsubscribing twice is harmless', async function () {
      const recorders = await started();
      const b = byId('b');
      const seen: string[] = [];
      const unsubscribe = b.onMessage((_from, frame) => seen.push(frame));
      byId('a').send('b', 'first');
      await waitFor('the first frame', () => seen.length === 1);
      unsubscribe();
      unsubscribe();
      byId('a').send('b', 'second');
      await waitFor('the second frame elsewhere', () =>
        rec(recorders, 'b').framesFrom('a').includes('second'),
      );
      assert.deepEqual(seen, ['first']);
    });

    it('counts a frame that arrives with no handler subscribed', async function () {
      const recorders = await started();
      rec(recorders, 'b').stopRecordingMessages();
      byId('a').send('b', 'nobody listens');
      await waitFor('the drop counted', () => byId('b').stats().dropped['no-handler'] === 1);
      assert.equal(byId('b').stats().delivered, 0);
    });

    // Registered only for adapter runs that can crash and restart a node.
    const reconnects = options.reconnection ?? true;
    const itIfReconnects = (title: string, fn: Mocha.AsyncFunc): void => {
      if (reconnects) it(title, fn);
    };
    itIfReconnects('reconnects a crashed and restarted node', async function () {
      const recorders = await started();
      const c = current();
      assert.ok(
        c.crash !== undefined && c.restart !== undefined,
        'the cluster must crash and restart',
      );
      const oldC = byId('c');
      await c.crash('c');
      await waitFor('c down at a and b', () =>
        ['a', 'b'].every((id) => !rec(recorders, id).isUp('c')),
      );
      assert.doesNotThrow(() => {
        byId('a').send('c', 'into the void');
        oldC.send('a', 'from the dead');
      });

      const newC = await c.restart('c');
      made.push(newC);
      const fresh = new Recorder(newC);
      await newC.start();
      await waitFor(
        'c up everywhere',
        () =>
          ['a', 'b'].every((id) => rec(recorders, id).isUp('c')) &&
          fresh.isUp('a') &&
          fresh.isUp('b'),
      );
      byId('a').send('c', 'welcome back');
      newC.send('b', 'hello again');
      await waitFor(
        'both frames',
        () => fresh.messages.length > 0 && rec(recorders, 'b').framesFrom('c').length > 0,
      );
      await current().tick(quietMs);
      assert.deepEqual(fresh.framesFrom('a'), ['welcome back']);
      assert.deepEqual(rec(recorders, 'b').framesFrom('c'), ['hello again']);
      assert.deepEqual(rec(recorders, 'a').framesFrom('c'), []);
      assert.equal(rec(recorders, 'c').messages.length, 0);
    });
  });
}
