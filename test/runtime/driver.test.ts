import assert from 'node:assert/strict';
import type { ProtocolMessage } from '../../lib/codec/messages.js';
import { decodeFrame, encodeFrame } from '../../lib/codec/messages.js';
import type { LeaseMessage } from '../../lib/lease/messages.js';
import {
  Driver,
  type MachineInput,
  type MessageJoin,
  type PureMachine,
} from '../../lib/node/driver.js';
import { NodeLogger } from '../../lib/node/logger.js';
import { nodeCounters } from '../../lib/node/stats.js';
import type { Storage } from '../../lib/storage.js';
import { VirtualClock } from '../../lib/testing/virtual-clock.js';
import type { Output } from '../../lib/types.js';
import { captureLogger, idleTransport } from './helpers.js';

type Out = Output<LeaseMessage, string, string>;

const PREPARE: LeaseMessage = {
  type: 'lease.prepare',
  ballot: { round: 1, node: 'a', incarnation: '0123456789abcdef' },
};

/** A machine that returns scripted outputs and records the `now` of every call. */
class ScriptedMachine implements PureMachine<LeaseMessage, string, string> {
  readonly calls: { type: string; now: number }[] = [];
  /** The messages handed in, as `from:type:round` (the round of a joined Prepare: its parts'). */
  readonly messages: string[] = [];
  next: (now: number) => Out = () => ({ send: [], persist: null, events: [], wakeAt: null });

  start(now: number): Out {
    this.calls.push({ type: 'start', now });
    return this.next(now);
  }

  handle(input: MachineInput<LeaseMessage>, now: number): Out {
    this.calls.push({ type: input.type, now });
    if (input.type === 'message') {
      const m = input.message;
      this.messages.push(
        `${input.from}:${m.type}${m.type === 'lease.prepare' ? `:${String(m.ballot.round)}` : ''}`,
      );
    }
    return this.next(now);
  }
}

/**
 * For the tests of joining: Prepares are joinable, and a joined one carries its parts' rounds
 * as one number (1, 2 and 4 make 124).
 */
const JOIN_PREPARES: MessageJoin<LeaseMessage> = {
  joinable: (m) => m.type === 'lease.prepare',
  join: (messages) => {
    const rounds = messages.map((m) => (m.type === 'lease.prepare' ? m.ballot.round : 0));
    return { ...PREPARE, ballot: { ...PREPARE.ballot, round: Number(rounds.join('')) } };
  },
  // Two Prepares fit a frame, three do not.
  bytes: () => 100,
  maxBytes: 250,
};

function harness(
  storage: Storage<string> | null = null,
  join?: MessageJoin<LeaseMessage>,
): {
  clock: VirtualClock;
  machine: ScriptedMachine;
  driver: Driver<LeaseMessage, string, string>;
  log: string[];
  fatal: unknown[];
  counters: ReturnType<typeof nodeCounters>;
  lines: ReturnType<typeof captureLogger>['lines'];
  /** Hands `frame` to the driver as if it arrived from `from`. */
  receive: (from: string, frame: string) => void;
} {
  const clock = new VirtualClock();
  const machine = new ScriptedMachine();
  const log: string[] = [];
  const fatal: unknown[] = [];
  const logger = captureLogger();
  const counters = nodeCounters();
  const handlers: ((from: string, frame: string) => void)[] = [];
  const transport = idleTransport('a', ['a', 'b', 'c']);
  transport.send = (to, frame) => {
    const decoded = decodeFrame(frame, { cluster: 'synod', self: to, peers: new Set(['a']) });
    assert.ok(decoded.ok, 'the driver sends valid frames');
    const msg = decoded.frame.msg;
    log.push(
      join !== undefined && msg.type === 'lease.prepare'
        ? `send ${to} ${String(msg.ballot.round)}`
        : `send ${to}`,
    );
  };
  transport.onMessage = (handler) => {
    handlers.push(handler);
    return () => undefined;
  };
  const driver = new Driver<LeaseMessage, string, string>(machine, {
    id: 'a',
    incarnation: '0123456789abcdef',
    cluster: 'synod',
    peers: ['a', 'b', 'c'],
    transport,
    clock,
    scheduler: clock,
    storage,
    log: new NodeLogger({ logger, logLevel: null, id: 'a' }),
    counters,
    accepts: (m: ProtocolMessage): m is LeaseMessage => m.type.startsWith('lease.'),
    onEvents: (events) => {
      for (const e of events) log.push(`event ${e}`);
    },
    afterStep: () => undefined,
    extraWake: () => null,
    onFatal: (error) => fatal.push(error),
    ...(join === undefined ? {} : { join }),
  });
  const receive = (from: string, frame: string): void => {
    for (const handler of handlers) handler(from, frame);
  };
  return { clock, machine, driver, log, fatal, counters, lines: logger.lines, receive };
}

/** A frame from `from` to `a` under `inc` (16 hex digits). */
function frameFrom(from: string, inc: string, round = 1): string {
  return encodeFrame({
    v: 1,
    cluster: 'synod',
    from,
    to: 'a',
    inc,
    msg: { type: 'lease.prepare', ballot: { round, node: from, incarnation: inc } },
  });
}

/** A frame that is not joinable (a recovery question) from `from` to `a`. */
function recoverFrom(from: string, inc: string): string {
  return encodeFrame({
    v: 1,
    cluster: 'synod',
    from,
    to: 'a',
    inc,
    msg: { type: 'lease.recover', incarnation: inc },
  });
}

const INC_B = 'bbbbbbbbbbbbbbbb';
const INC_C = 'cccccccccccccccc';

describe('driver', () => {
  it('applies an output as persist, then send, then events', async () => {
    const order: string[] = [];
    let release: () => void = () => undefined;
    const storage: Storage<string> = {
      load: () => Promise.resolve(null),
      save: (record) => {
        order.push(`save ${record}`);
        return new Promise((resolve) => (release = resolve));
      },
    };
    const { driver, machine, log, clock } = harness(storage);
    machine.next = () => ({
      send: [
        { to: 'b', message: PREPARE },
        { to: 'a', message: PREPARE },
        { to: 'c', message: PREPARE },
      ],
      persist: 'r1',
      events: ['e1'],
      wakeAt: null,
    });
    driver.begin();
    // A second output without a persist still waits behind the first one's write.
    machine.next = () => ({
      send: [{ to: 'c', message: PREPARE }],
      persist: null,
      events: ['e2'],
      wakeAt: null,
    });
    driver.step((now) => machine.handle({ type: 'tick' }, now));
    await clock.advance(0);
    assert.deepEqual(order, ['save r1']);
    assert.deepEqual(log, [], 'nothing is sent before the write is durable');
    release();
    await driver.settled();
    assert.deepEqual(log, ['send b', 'send c', 'event e1', 'send c', 'event e2']);
  });

  it('applies an output in the same turn without storage', () => {
    const { driver, machine, log } = harness();
    machine.next = () => ({
      send: [{ to: 'b', message: PREPARE }],
      persist: 'r',
      events: ['e'],
      wakeAt: null,
    });
    driver.begin();
    assert.deepEqual(log, ['send b', 'event e']);
  });

  it('keeps exactly one timer, at the machine’s current earliest wake-up, and ticks with the clock', async () => {
    const { driver, machine, clock } = harness();
    const wakes = [100.2, 50, 70];
    machine.next = () => ({ send: [], persist: null, events: [], wakeAt: wakes.shift() ?? null });
    driver.begin();
    driver.step((now) => machine.handle({ type: 'tick' }, now));
    driver.step((now) => machine.handle({ type: 'tick' }, now));
    assert.equal(clock.pending, 1);
    assert.equal(clock.nextDueAt(), 70);
    await clock.advance(69);
    assert.equal(machine.calls.filter((c) => c.type === 'tick').length, 2);
    await clock.advance(1);
    assert.deepEqual(machine.calls.at(-1), { type: 'tick', now: 70 });
    assert.equal(clock.pending, 0);
  });

  it('rounds a fractional wake-up up and never sets a timer in the past', async () => {
    const { driver, machine, clock } = harness();
    const wakes: (number | null)[] = [10.3, 5, null];
    machine.next = () => ({ send: [], persist: null, events: [], wakeAt: wakes.shift() ?? null });
    driver.begin();
    assert.equal(clock.nextDueAt(), 11);
    await clock.advance(11);
    // The machine asked for a time already past: the driver waits the minimum 1 ms.
    assert.equal(clock.nextDueAt(), 12);
    await clock.advance(1);
    assert.equal(clock.pending, 0);
  });

  it('remembers a bounded number of incarnations per peer, however many a peer shows', async () => {
    const { driver, clock, counters, lines, receive } = harness();
    driver.listen();
    driver.begin();
    const frames = 120_000;
    for (let i = 0; i < frames; i++) {
      // Every frame of b under a fresh incarnation, c's under its one.
      receive('b', frameFrom('b', i.toString(16).padStart(16, '0')));
      if (i % 1000 === 0) {
        receive('c', frameFrom('c', 'cccccccccccccccc'));
        await clock.advance(100);
      }
    }
    assert.equal(counters.framesIn, frames + frames / 1000);
    assert.ok(
      driver.incarnationsTracked <= 8,
      `${driver.incarnationsTracked} incarnations remembered for 2 peers`,
    );
    // Each one looks like a restart of b: logged at info, at most once a minute (12 s here).
    const restarts = lines.filter((l) => l.message.includes('new incarnation'));
    assert.equal(restarts.length, 1);
    assert.equal(restarts[0]?.level, 'info');
    assert.equal(lines.filter((l) => l.level === 'error' || l.level === 'warn').length, 0);
    assert.equal(counters.staleIncarnations, 0);
  });

  it('hands the frames of one turn to the machine once the turn ends, in arrival order, in one step', async () => {
    const { driver, machine, receive, log, clock } = harness();
    let wakes = 0;
    machine.next = () => {
      wakes += 1;
      return {
        send: [{ to: 'b', message: PREPARE }],
        persist: null,
        events: [`e${String(wakes)}`],
        wakeAt: 1000 + wakes,
      };
    };
    driver.listen();
    driver.begin();
    log.length = 0;
    receive('b', frameFrom('b', INC_B, 1));
    receive('c', frameFrom('c', INC_C, 2));
    receive('b', recoverFrom('b', INC_B));
    assert.deepEqual(machine.messages, [], 'nothing is handed over inside the turn');
    await Promise.resolve();
    assert.deepEqual(machine.messages, [
      'b:lease.prepare:1',
      'c:lease.prepare:2',
      'b:lease.recover',
    ]);
    // Each frame's output is applied before the next frame goes in.
    assert.deepEqual(log, ['send b', 'event e2', 'send b', 'event e3', 'send b', 'event e4']);
    // One timer, at the wake-up of the last output.
    assert.equal(clock.pending, 1);
    assert.equal(clock.nextDueAt(), 1004);
  });

  it('takes the waiting frames first when another step comes in the same turn', async () => {
    const { driver, machine, receive } = harness();
    driver.listen();
    driver.begin();
    receive('b', frameFrom('b', INC_B, 7));
    driver.step((now) => machine.handle({ type: 'tick' }, now));
    assert.deepEqual(
      machine.calls.map((c) => c.type),
      ['start', 'message', 'tick'],
    );
    await Promise.resolve();
    assert.equal(machine.calls.length, 3, 'the frame went in once');
  });

  it("joins one sender's joinable messages of one turn that nothing of that sender separates", async () => {
    const { driver, machine, receive } = harness(null, JOIN_PREPARES);
    driver.listen();
    driver.begin();
    receive('b', frameFrom('b', INC_B, 1));
    receive('b', frameFrom('b', INC_B, 2));
    // Another sender's frame does not separate b's…
    receive('c', frameFrom('c', INC_C, 3));
    receive('b', frameFrom('b', INC_B, 4));
    // …b's own frame of another kind does.
    receive('b', recoverFrom('b', INC_B));
    receive('b', frameFrom('b', INC_B, 5));
    receive('c', frameFrom('c', INC_C, 6));
    await Promise.resolve();
    assert.deepEqual(machine.messages, [
      'b:lease.prepare:124',
      'c:lease.prepare:36',
      'b:lease.recover',
      'b:lease.prepare:5',
    ]);
    // Frames of the next turn are not joined to those of this one.
    receive('b', frameFrom('b', INC_B, 8));
    await Promise.resolve();
    receive('b', frameFrom('b', INC_B, 9));
    await Promise.resolve();
    assert.deepEqual(machine.messages.slice(4), ['b:lease.prepare:8', 'b:lease.prepare:9']);
  });

  it("sends one turn's joinable messages to a node joined, in frames that fit, after the others", async () => {
    const { driver, machine, log } = harness(null, JOIN_PREPARES);
    const prepare = (round: number): LeaseMessage => ({
      ...PREPARE,
      ballot: { ...PREPARE.ballot, round },
    });
    const recover: LeaseMessage = { type: 'lease.recover', incarnation: INC_B };
    driver.begin();
    machine.next = () => ({
      send: [
        { to: 'b', message: prepare(1) },
        { to: 'c', message: prepare(2) },
        { to: 'b', message: recover },
        { to: 'b', message: prepare(3) },
      ],
      persist: null,
      events: ['e1'],
      wakeAt: null,
    });
    driver.step((now) => machine.handle({ type: 'tick' }, now));
    machine.next = () => ({
      send: [
        { to: 'b', message: prepare(4) },
        { to: 'b', message: prepare(5) },
      ],
      persist: null,
      events: ['e2'],
      wakeAt: null,
    });
    driver.step((now) => machine.handle({ type: 'tick' }, now));
    // Within the turn only what is not joinable has gone out (the outputs' events too).
    assert.deepEqual(log, ['send b', 'event e1', 'event e2']);
    await Promise.resolve();
    assert.deepEqual(log.slice(3), ['send b 13', 'send b 45', 'send c 2']);
  });

  it('halts on a machine that throws and reports it', () => {
    const { driver, machine, fatal, clock } = harness();
    machine.next = () => {
      throw new Error('bug');
    };
    driver.begin();
    assert.equal(driver.halted, true);
    assert.equal((fatal[0] as Error).message, 'bug');
    assert.equal(clock.pending, 0);
  });
});
