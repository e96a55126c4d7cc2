import assert from 'node:assert/strict';
import { MemoryNetwork } from '../../adapters/memory/index.js';
import { encodeFrame, type Frame } from '../../lib/codec/messages.js';
import { createNode, DEFAULTS, type SynodNode } from '../../lib/index.js';
import type { LeaseRecord } from '../../lib/lease/machine.js';
import { agreedSettings } from '../../lib/options.js';
import { createRng } from '../../lib/random.js';
import type { NodeStorage } from '../../lib/storage.js';
import type { Transport } from '../../lib/transport.js';
import { VirtualClock } from '../../lib/testing/virtual-clock.js';
import { answerRecovery, captureLogger, type LogLine } from './helpers.js';

const IDS = ['a', 'b', 'c'];
const LEASE_MS = 200;
const INC_B = '0123456789abcdef';

function prepareFrame(overrides: Partial<Record<keyof Frame, unknown>> = {}): Frame {
  return {
    v: 1,
    cluster: 'synod',
    from: 'b',
    to: 'a',
    inc: INC_B,
    msg: { type: 'lease.prepare', ballot: { round: 5, node: 'b', incarnation: INC_B } },
    ...overrides,
  } as Frame;
}

/** Node `a` is real; `b` and `c` are bare transports the test speaks through. */
function setup(storage?: NodeStorage): {
  clock: VirtualClock;
  node: SynodNode;
  b: Transport;
  received: string[];
  logger: ReturnType<typeof captureLogger>;
} {
  const clock = new VirtualClock();
  const network = new MemoryNetwork({ scheduler: clock, delayMs: [1, 1] });
  const logger = captureLogger();
  const node = createNode({
    id: 'a',
    peers: IDS,
    transport: network.transport('a', IDS),
    leaseMs: LEASE_MS,
    clock,
    scheduler: clock,
    rng: createRng(3),
    logger,
    ...(storage === undefined ? {} : { storage }),
  });
  const b = network.transport('b', IDS);
  const c = network.transport('c', IDS);
  const received: string[] = [];
  b.onMessage((_, frame) => received.push(frame));
  // b and c answer a's recovery question as nodes with their memory would, so that a (which
  // starts without storage unless given one) votes once its silence is over.
  answerRecovery(b, 'b', INC_B);
  answerRecovery(c, 'c', 'fedcba9876543210');
  // The settings node a starts with: a peer with others would be refused.
  const settings = agreedSettings({ ...DEFAULTS, leaseMs: LEASE_MS });
  void b.start(settings);
  void c.start(settings);
  return { clock, node, b, received, logger };
}

describe('frames', () => {
  it('drops invalid frames, counting each by reason, without any effect', async () => {
    const { clock, node, b, received, logger } = setup();
    await node.start();
    // Past the restart silence, so a valid Prepare would be answered.
    // Past the silence and the recovery exchange with b and c (1 ms each way).
    await clock.advance(LEASE_MS + 5);
    received.length = 0;
    const framesBefore = node.stats().framesIn;
    const bad: [string, string][] = [
      ['malformed', '{not json'],
      ['malformed', '['.repeat(20) + ']'.repeat(20)],
      ['oversized', 'x'.repeat(70 * 1024)],
      ['version', encodeLoose(prepareFrame({ v: 2 }))],
      ['cluster', encodeFrame(prepareFrame({ cluster: 'other' }))],
      ['misaddressed', encodeFrame(prepareFrame({ to: 'c' }))],
      ['sender', encodeFrame(prepareFrame({ from: 'c' }))],
      ['schema', encodeLoose({ ...prepareFrame(), extra: 1 })],
      ['schema', encodeLoose(prepareFrame({ inc: 'XYZ' }))],
      [
        'unsupported',
        encodeFrame(
          prepareFrame({
            msg: {
              type: 'paxos.prepare',
              instance: 1,
              ballot: { round: 1, node: 'b', incarnation: INC_B },
            },
          }),
        ),
      ],
    ];
    for (const [, text] of bad) b.send('a', text);
    await clock.advance(10);
    const stats = node.stats();
    assert.deepEqual(stats.invalidFrames, {
      oversized: 1,
      malformed: 2,
      version: 1,
      schema: 2,
      cluster: 1,
      misaddressed: 1,
      sender: 1,
      unsupported: 1,
      'round-limit': 0,
    });
    assert.equal(stats.framesIn, framesBefore);
    assert.deepEqual(replies(received), [], 'nothing answered an invalid frame');
    const warnings = logger.lines.filter((l) => l.message === 'dropped an invalid frame');
    assert.equal(warnings.length, bad.length);
    for (const w of warnings) {
      const detail = w.fields['detail'];
      assert.ok(detail === null || (typeof detail === 'string' && detail.length < 200));
    }
    // A valid Prepare still gets its promise: the node was not disturbed.
    b.send('a', encodeFrame(prepareFrame()));
    await clock.advance(10);
    assert.equal(node.stats().framesIn, framesBefore + 1);
    assert.equal(replies(received).length, 1);
    assert.match(replies(received)[0] ?? '', /"type":"lease.promise"/);
    await node.stop();
  });

  it('writes the promise to storage before the reply goes out', async () => {
    const saves: { record: LeaseRecord | null; resolve: () => void }[] = [];
    const storage: NodeStorage = {
      load: () => Promise.resolve(null),
      save: (update) =>
        new Promise<void>((resolve) => {
          saves.push({ record: update.lease, resolve });
        }),
    };
    const { clock, node, b, received } = setup(storage);
    await node.start();
    await clock.advance(LEASE_MS + 1);
    b.send('a', encodeFrame(prepareFrame()));
    await clock.advance(5);
    // The promise is being written: nothing may be sent until it is durable.
    const pending = saves.find((s) => s.record?.promised?.round === 5);
    assert.ok(pending, 'the promise was persisted');
    assert.deepEqual(replies(received), []);
    for (const s of saves) s.resolve();
    await clock.advance(5);
    assert.equal(replies(received).length, 1);
    assert.match(replies(received)[0] ?? '', /"type":"lease.promise"/);
    assert.ok(node.stats().storageSaves >= 1);
    await node.stop();
  });

  it('restores the promise from storage, refusing a lower ballot after a restart', async () => {
    const record: LeaseRecord = {
      promised: { round: 9, node: 'c', incarnation: 'fedcba9876543210' },
      maxRound: 9,
    };
    const storage: NodeStorage = {
      load: () => Promise.resolve({ lease: record, log: null }),
      save: () => Promise.resolve(),
    };
    const { clock, node, b, received } = setup(storage);
    await node.start();
    await clock.advance(LEASE_MS + 1);
    b.send('a', encodeFrame(prepareFrame()));
    await clock.advance(5);
    assert.equal(replies(received).length, 1);
    assert.match(replies(received)[0] ?? '', /"type":"lease.reject"/);
    await node.stop();
  });

  it('halts, sends nothing and emits error when storage refuses a write', async () => {
    const storage: NodeStorage = {
      // A record on disk already: the first write is the promise's.
      load: () => Promise.resolve({ lease: { promised: null, maxRound: 0 }, log: null }),
      save: () => Promise.reject(new Error('disk full')),
    };
    const { clock, node, b, received, logger } = setup(storage);
    const errors: Error[] = [];
    node.on('error', (e) => errors.push(e));
    await node.start();
    await clock.advance(LEASE_MS + 1);
    b.send('a', encodeFrame(prepareFrame()));
    await clock.advance(5);
    assert.equal(node.state, 'failed');
    assert.equal(errors[0]?.message, 'disk full');
    // Nothing but the log's recovery question (no vote: it depends on nothing written).
    assert.deepEqual(
      received.filter((f) => !f.includes('"type":"log.recover"')),
      [],
    );
    assert.ok(logger.lines.some((l) => l.level === 'error' && l.message.includes('halts')));
    await node.stop();
  });

  it('refuses a Prepare naming round 2^52, counts it, and keeps voting for real ballots', async () => {
    const { clock, node, b, received, logger } = setup();
    await node.start();
    await clock.advance(LEASE_MS + 5);
    received.length = 0;
    const hostile = { round: 2 ** 52, node: 'b', incarnation: INC_B };
    b.send('a', encodeFrame(prepareFrame({ msg: { type: 'lease.prepare', ballot: hostile } })));
    await clock.advance(5);
    assert.deepEqual(replies(received), [], 'no promise for round 2^52');
    assert.equal(node.stats().invalidFrames['round-limit'], 1);
    assert.ok(logger.lines.some((l) => l.level === 'warn' && l.message.includes('round limit')));
    // A real ballot is promised, and a's own campaigns stay within what its peers accept.
    b.send('a', encodeFrame(prepareFrame()));
    await clock.advance(5);
    assert.match(replies(received)[0] ?? '', /"type":"lease.promise"/);
    await node.stop();
  });

  it('takes a single stray frame under another incarnation for what it is: no error, one line at most', async () => {
    const { clock, node, b, logger } = setup();
    await node.start();
    const stray = 'aaaaaaaaaaaaaaaa';
    b.send('a', frameUnder(INC_B));
    await clock.advance(10);
    b.send('a', frameUnder(stray));
    await clock.advance(10);
    // The peer goes on under its incarnation: nothing more to say about it.
    for (let i = 0; i < 50; i++) {
      b.send('a', frameUnder(INC_B));
      await clock.advance(10);
    }
    const about = incarnationLines(logger.lines);
    assert.ok(about.length <= 1, about.map((l) => `${l.level} ${l.message}`).join('; '));
    assert.deepEqual(
      logger.lines.filter((l) => l.level === 'error' || l.level === 'warn'),
      [],
    );
    assert.equal(node.stats().staleIncarnations, 1);
    assert.equal(node.stats().incarnationConflicts, 0);
    await node.stop();
  });

  it('reports frames alternating between two incarnations of a peer at error, once a minute, counting the others', async () => {
    const { clock, node, b, logger } = setup();
    await node.start();
    const other = 'aaaaaaaaaaaaaaaa';
    const alternate = async (frames: number): Promise<void> => {
      for (let i = 0; i < frames; i++) {
        b.send('a', frameUnder(i % 2 === 0 ? INC_B : other));
        await clock.advance(10);
      }
    };
    await alternate(100);
    const errors = (): LogLine[] => logger.lines.filter((l) => l.level === 'error');
    assert.equal(errors().length, 1, 'one line, however many frames alternate');
    assert.match(errors()[0]?.message ?? '', /two processes/);
    assert.deepEqual(errors()[0]?.fields['incarnations'], [INC_B, other]);
    const first = node.stats();
    assert.ok(first.incarnationConflicts >= 95, `${first.incarnationConflicts} counted`);
    assert.equal(first.staleIncarnations, 98);
    // Still alternating a minute later: one more line, saying how many it stood for.
    await clock.advance(60_000);
    await alternate(20);
    assert.equal(errors().length, 2);
    assert.equal(errors()[1]?.fields['suppressed'], first.incarnationConflicts - 1);
    await node.stop();
  });
});

/** A Prepare of `b` under incarnation `inc`. */
function frameUnder(inc: string): string {
  return encodeFrame(
    prepareFrame({
      inc,
      msg: { type: 'lease.prepare', ballot: { round: 1, node: 'b', incarnation: inc } },
    }),
  );
}

/** Log lines at info or above about a peer's incarnations. */
function incarnationLines(lines: readonly LogLine[]): LogLine[] {
  return lines.filter(
    (l) => l.level !== 'debug' && l.level !== 'trace' && l.message.includes('incarnation'),
  );
}

/** Frames answering a Prepare of `b` (as opposed to `a`'s own campaign). */
function replies(frames: readonly string[]): string[] {
  return frames.filter((f) => /"type":"lease\.(promise|reject|accepted)"/.test(f));
}

/** JSON of a frame the strict encoder would refuse. */
function encodeLoose(frame: unknown): string {
  return JSON.stringify(frame);
}
