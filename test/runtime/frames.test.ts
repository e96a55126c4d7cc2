import assert from 'node:assert/strict';
import { MemoryNetwork } from '../../adapters/memory/index.js';
import { encodeFrame, type Frame } from '../../lib/codec/messages.js';
import { createNode, type SynodNode } from '../../lib/index.js';
import type { LeaseRecord } from '../../lib/lease/machine.js';
import { createRng } from '../../lib/random.js';
import type { Storage } from '../../lib/storage.js';
import type { Transport } from '../../lib/transport.js';
import { VirtualClock } from '../../lib/testing/virtual-clock.js';
import { captureLogger, type LogLine } from './helpers.js';

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
function setup(storage?: Storage<LeaseRecord>): {
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
  void b.start();
  void c.start();
  return { clock, node, b, received, logger };
}

describe('frames', () => {
  it('drops invalid frames, counting each by reason, without any effect', async () => {
    const { clock, node, b, received, logger } = setup();
    await node.start();
    // Past the restart silence, so a valid Prepare would be answered.
    await clock.advance(LEASE_MS + 1);
    received.length = 0;
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
    });
    assert.equal(stats.framesIn, 0);
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
    assert.equal(node.stats().framesIn, 1);
    assert.equal(replies(received).length, 1);
    assert.match(replies(received)[0] ?? '', /"type":"lease.promise"/);
    await node.stop();
  });

  it('writes the promise to storage before the reply goes out', async () => {
    const saves: { record: LeaseRecord; resolve: () => void }[] = [];
    const storage: Storage<LeaseRecord> = {
      load: () => Promise.resolve(null),
      save: (record) =>
        new Promise<void>((resolve) => {
          saves.push({ record, resolve });
        }),
    };
    const { clock, node, b, received } = setup(storage);
    await node.start();
    await clock.advance(LEASE_MS + 1);
    b.send('a', encodeFrame(prepareFrame()));
    await clock.advance(5);
    // The promise is being written: nothing may be sent until it is durable.
    const pending = saves.find((s) => s.record.promised?.round === 5);
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
    const storage: Storage<LeaseRecord> = {
      load: () => Promise.resolve(record),
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
    const storage: Storage<LeaseRecord> = {
      load: () => Promise.resolve(null),
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
    assert.deepEqual(received, []);
    assert.ok(logger.lines.some((l) => l.level === 'error' && l.message.includes('halts')));
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
