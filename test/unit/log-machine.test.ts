import assert from 'node:assert/strict';
import type { LogMessage } from '../../lib/log/messages.js';
import { LogMachine, type LogRecord } from '../../lib/log/multi-paxos.js';
import { Journal, L, LogHarness, MARGIN, RHO, W } from './log-harness.js';

function isPrefix(a: readonly string[], b: readonly string[]): boolean {
  return a.length <= b.length && a.every((x, i) => b[i] === x);
}

function assertAgree(h: LogHarness, seed = 0): void {
  const lists = h.ids.map((id) => h.applied(id));
  const longest = lists.reduce((x, y) => (y.length > x.length ? y : x));
  for (const [i, list] of lists.entries()) {
    assert.ok(isPrefix(list, longest), `seed ${seed}: ${h.ids[i]} applied a different sequence`);
  }
}

/**
 * Node `a` of three with durable storage, started from `restored` (null: without its log
 * state, so it rebuilds from `b` and `c`).
 */
function rebuilding(
  restored: LogRecord<string> | null = null,
  incarnation = '00000000000000a1',
): LogMachine<string> {
  return new LogMachine<string>(
    {
      id: 'a',
      incarnation,
      peers: ['a', 'b', 'c'],
      leaseMs: L,
      maxClockDrift: RHO,
      marginMs: MARGIN,
      stateMachine: new Journal(),
      sizeOf: (c) => c.length,
      voting: () => true,
      recovers: true,
      silentUntil: () => 0,
      durable: true,
    },
    restored,
  );
}

describe('Multi-Paxos log', () => {
  it('writes nothing to storage while it rebuilds: a restart from that disk rebuilds again', () => {
    const machine = rebuilding();
    const ballot = { round: 9, node: 'b', incarnation: '00000000000000b1' };
    const receive = (from: string, message: LogMessage<string>, now: number) =>
      machine.handle({ type: 'message', from, message }, now);
    assert.ok(machine.recovering);
    // Rounds seen while rebuilding: not written (a record on disk would read as a whole state).
    assert.equal(
      receive('b', { type: 'log.prepare', ballot, attempt: 1, from: 1 }, 1).persist,
      null,
    );
    assert.equal(machine.handle({ type: 'tick' }, 2).persist, null);
    const answer = (voting: boolean): LogMessage<string> => ({
      type: 'log.recovery',
      incarnation: '00000000000000a1',
      voting,
      promised: ballot,
      maxRound: 9,
      floor: 0,
      from: 0,
      entries: [{ slot: 1, ballot, value: ['x'] }],
      next: null,
    });
    assert.equal(receive('b', answer(true), 3).persist, null);
    // Rebuilt from k+1 = 2 others: now its state is whole, and written before it votes.
    const done = receive('c', answer(true), 4);
    assert.equal(machine.recovering, false);
    assert.ok(done.persist !== null);
    assert.deepEqual(done.persist.promised, ballot);
    assert.deepEqual(done.persist.accepted, [{ slot: 1, ballot, value: ['x'] }]);
  });

  it('writes nothing either while it learns the chosen slots up to the floor others reported', () => {
    const machine = rebuilding();
    const ballot = { round: 9, node: 'b', incarnation: '00000000000000b1' };
    // b and c applied slots 1..5 (chosen, truncated: not reported) and accepted slot 6.
    const answer: LogMessage<string> = {
      type: 'log.recovery',
      incarnation: '00000000000000a1',
      voting: true,
      promised: ballot,
      maxRound: 9,
      floor: 5,
      from: 0,
      entries: [{ slot: 6, ballot, value: ['y'] }],
      next: null,
    };
    machine.handle({ type: 'message', from: 'b', message: answer }, 1);
    const done = machine.handle({ type: 'message', from: 'c', message: answer }, 2);
    // Still catching up (slots 1..5 not applied): a record now would let a restart vote
    // without them.
    assert.equal(machine.recovering, true);
    assert.equal(done.persist, null);
    const chosen: LogMessage<string> = {
      type: 'log.chosen',
      entries: [1, 2, 3, 4, 5].map((slot) => ({ slot, value: [`c${slot}`] })),
    };
    const learned = machine.handle({ type: 'message', from: 'b', message: chosen }, 3);
    assert.equal(machine.recovering, false);
    assert.ok(learned.persist !== null, 'whole: written before it votes');
    assert.deepEqual(learned.persist.promised, ballot);
  });

  it('answers a rebuilding node as one that forgot while its own state is lossy', () => {
    const machine = rebuilding();
    const forgot: LogMessage<string> = {
      type: 'log.recovery',
      incarnation: '00000000000000a1',
      voting: false,
      promised: null,
      maxRound: 0,
      floor: 0,
      from: 0,
      entries: [],
      next: null,
    };
    machine.handle({ type: 'message', from: 'b', message: forgot }, 1);
    const out = machine.handle({ type: 'message', from: 'c', message: forgot }, 2);
    assert.deepEqual(
      out.events.filter((e) => e.type === 'recovered'),
      [{ type: 'recovered', lossy: true, floor: 0 }],
    );
    // Its memory is not whole until the new epoch applies: a node that rebuilt from it as if it
    // were would not know it is lossy, and neither would a leader it helps elect.
    assert.equal(machine.recoveryAnswer('00000000000000d1', 0, 3)?.type, 'log.recovery');
    assert.deepEqual(
      (machine.recoveryAnswer('00000000000000d1', 0, 3) as { voting: boolean }).voting,
      false,
    );
    machine.clearLossy(1);
    assert.equal(
      (machine.recoveryAnswer('00000000000000d1', 0, 4) as { voting: boolean }).voting,
      true,
    );
  });

  it('stays lossy across a restart with storage until the new epoch applies', () => {
    const machine = rebuilding();
    const forgot: LogMessage<string> = {
      type: 'log.recovery',
      incarnation: '00000000000000a1',
      voting: false,
      promised: null,
      maxRound: 3,
      floor: 0,
      from: 0,
      entries: [],
      next: null,
    };
    machine.handle({ type: 'message', from: 'b', message: forgot }, 1);
    const out = machine.handle({ type: 'message', from: 'c', message: forgot }, 2);
    assert.ok(out.persist !== null);
    assert.equal(out.persist.lossyAbove, 0);
    const record = {
      promised: out.persist.promised,
      maxRound: out.persist.maxRound,
      snapshot: null,
      accepted: out.persist.accepted,
      chosen: out.persist.chosen,
      lossyAbove: out.persist.lossyAbove,
    };
    // Restarted from that disk: still lossy (a node rebuilding from it must count it as one
    // that forgot, or the next leader serves the old epoch's table).
    const again = rebuilding(record, '00000000000000a2');
    assert.equal(again.lossy, true);
    assert.equal(
      (again.recoveryAnswer('00000000000000d1', 0, 3) as { voting: boolean }).voting,
      false,
    );
    // The epoch applied: the next write says so.
    again.clearLossy(1);
    const next = again.handle(
      {
        type: 'message',
        from: 'b',
        message: {
          type: 'log.prepare',
          ballot: { round: 9, node: 'b', incarnation: '00000000000000b1' },
          attempt: 1,
          from: 1,
        },
      },
      4,
    );
    assert.ok(next.persist !== null);
    assert.equal(next.persist.lossyAbove, null);
  });

  it('serves only once its barrier is applied, then chooses commands in one round trip', () => {
    const h = new LogHarness(['a', 'b', 'c']);
    h.lead('a', 1);
    assert.equal(h.machine('a').isServing(h.now), false);
    // Commands submitted during the takeover wait for the barrier.
    assert.equal(h.submit('a', ['x']), true);
    assert.equal(h.wire.filter((w) => w.message.type === 'log.accept').length, 0);
    h.settle();
    assert.equal(h.machine('a').isServing(h.now), true);
    assert.deepEqual(h.applied('a'), ['x']);
    // One round trip per command: an Accept out, a reply back, chosen.
    h.submit('a', ['y']);
    const accepts = h.wire.filter((w) => w.message.type === 'log.accept');
    assert.equal(accepts.length, 2);
    h.deliverAt(h.wire.findIndex((w) => w.to === 'b'));
    h.deliverAt(h.wire.findIndex((w) => w.message.type === 'log.accepted'));
    assert.deepEqual(h.applied('a'), ['x', 'y']);
    h.settle();
    h.advance(L_HEARTBEAT);
    h.settle();
    assert.deepEqual(h.applied('b'), ['x', 'y']);
    assert.deepEqual(h.applied('c'), ['x', 'y']);
  });

  it('counts no reply that arrives after the vote window of the send it answers', () => {
    const h = new LogHarness(['a', 'b', 'c']);
    h.lead('a', 1, 10 * W);
    h.settle();
    h.submit('a', ['late']);
    // Both Accepts reach their voters; the replies are held past the window.
    h.settle(100, (w) => w.message.type === 'log.accept');
    const replies = h.wire.filter((w) => w.message.type === 'log.accepted').length;
    assert.equal(replies, 2);
    h.now += W + 1;
    h.settle(100, (w) => w.message.type === 'log.accepted');
    assert.deepEqual(h.applied('a'), [], 'late votes counted');
    // The retry goes out with a fresh send time, and its replies count.
    h.tick('a');
    h.settle();
    assert.deepEqual(h.applied('a'), ['late']);
  });

  it('a new leader re-proposes the highest-ballot value a majority reports and fills gaps', () => {
    const h = new LogHarness(['a', 'b', 'c']);
    h.lead('a', 1);
    h.settle();
    // Leader a proposes two slots; only b hears the second.
    h.submit('a', ['one']);
    h.settle();
    h.submit('a', ['two']);
    h.drop((w) => w.to === 'c' || w.message.type === 'log.accepted');
    h.deliverAt(h.wire.findIndex((w) => w.to === 'b'));
    h.drop(() => true);
    // a dies; c leads a new term with b.
    h.machines.delete('a');
    h.lead('c', 2, h.now + 5 * W);
    h.settle();
    assert.ok(h.served('c'));
    assert.deepEqual(h.applied('c'), ['one', 'two']);
    h.submit('c', ['three']);
    h.settle();
    assert.deepEqual(h.applied('c'), ['one', 'two', 'three']);
  });

  it('sends no Accept once its lease deadline has passed', () => {
    const h = new LogHarness(['a', 'b', 'c']);
    h.lead('a', 1, 500);
    h.settle();
    h.now = 500;
    h.submit('a', ['too-late']);
    h.tick('a');
    assert.equal(h.wire.filter((w) => w.message.type === 'log.accept').length, 0);
    assert.equal(h.machine('a').isServing(h.now), false);
  });

  it('batches and pipelines: many commands travel in few slots', () => {
    const h = new LogHarness(['a', 'b', 'c'], { pipeline: 4 });
    h.lead('a', 1, 100 * W);
    h.settle();
    const commands = Array.from({ length: 2000 }, (_, i) => `cmd-${i}`);
    for (const c of commands) h.submit('a', [c]);
    h.settle();
    assert.deepEqual(h.applied('a'), commands);
    const slots = h.journals.get('a')?.slots ?? 0;
    assert.ok(slots < 50, `${slots} slots for 2000 commands`);
  });

  it('a lagging node catches up with chosen entries, and with a snapshot once they are gone', () => {
    const h = new LogHarness(['a', 'b', 'c'], { retainCommands: 8, pipeline: 1 });
    h.lead('a', 1, 1000 * W);
    h.settle();
    // c hears nothing for a while.
    for (let i = 0; i < 40; i++) {
      h.submit('a', [`c${i}`.repeat(3000)]);
      h.settle(10_000, (w) => w.to !== 'c');
      h.drop((w) => w.to === 'c');
    }
    assert.equal(h.applied('c').length, 0);
    h.advance(1000);
    h.settle();
    assert.deepEqual(h.applied('c'), h.applied('a'));
    assert.ok(h.events.some((e) => e.id === 'c' && e.event.type === 'installed'));
    // The snapshot was big enough to need several parts.
    assert.ok(h.applied('a').join('').length > 100_000);
    assert.ok(h.machine('a').retainedEntries <= 8);
  });

  it('a new leader behind the truncation point catches up before it proposes', () => {
    const h = new LogHarness(['a', 'b', 'c'], { retainCommands: 4 });
    h.lead('a', 1, 1000 * W);
    h.settle();
    for (let i = 0; i < 20; i++) {
      h.submit('a', [`v${i}`]);
      h.settle(10_000, (w) => w.to !== 'c');
    }
    h.drop((w) => w.to === 'c');
    h.machines.delete('a');
    h.lead('c', 2, h.now + 50 * W);
    for (let i = 0; i < 20 && !h.served('c'); i++) {
      h.settle(10_000, (w) => w.to !== 'a');
      h.advance(100);
    }
    assert.ok(h.served('c'));
    assert.equal(h.applied('c').length, 20);
    assert.deepEqual(h.applied('c'), h.applied('b'));
  });

  it('reads a long phase-1 report in pages', () => {
    const h = new LogHarness(['a', 'b', 'c'], { pageEntries: 3, pipeline: 64 });
    h.lead('a', 1, 1000 * W);
    h.settle();
    // Twenty slots accepted by b but never chosen (a's own votes and c's are lost).
    h.submit('a', ['warm']);
    h.settle();
    for (let i = 0; i < 20; i++) h.submit('a', [`p${i}`.repeat(30_000)]);
    h.drop((w) => w.to !== 'b');
    h.settle(10_000, (w) => w.message.type === 'log.accept');
    h.drop(() => true);
    h.machines.delete('a');
    h.lead('c', 2, h.now + 50 * W);
    h.settle(100_000, (w) => w.to !== 'a');
    assert.ok(h.served('c'));
    assert.equal(h.applied('c').length, 21);
  });

  it('keeps one sequence on every node under loss, reordering, partitions and duelling leaders', () => {
    let applied = 0;
    for (let seed = 1; seed <= 100; seed++) {
      const ids = seed <= 80 ? ['a', 'b', 'c'] : ['a', 'b', 'c', 'd', 'e'];
      const h = new LogHarness(ids, { pageEntries: 2, retainCommands: 6, pipeline: 3 }, seed);
      const rng = h.rng;
      const pick = (): string => ids[Math.floor(rng.next() * ids.length)] ?? 'a';
      /** Nodes cut off from the others, until the step given. */
      const cut = new Map<string, number>();
      let term = 0;
      let n = 0;
      let current = 'a';
      for (let step = 0; step < 2000; step++) {
        for (const [id, until] of cut) if (step >= until) cut.delete(id);
        h.drop((w) => cut.has(w.from) || cut.has(w.to));
        const r = rng.next();
        if (r < 0.02) {
          // Any node may take leadership while the last one still believes it leads (it is
          // never told; half the time it is cut off as well): the log's safety must not
          // depend on the lease.
          if (rng.next() < 0.5) cut.set(current, step + 200);
          current = pick();
          h.lead(current, ++term, h.now + W);
        } else if (r < 0.2) {
          h.submit(rng.next() < 0.8 ? current : pick(), [`${seed}-${n++}`]);
        } else if (r < 0.25) {
          h.advance(Math.floor(rng.next() * 200));
        } else if (r < 0.35 && h.wire.length > 0) {
          h.wire.splice(Math.floor(rng.next() * h.wire.length), 1);
        } else if (r < 0.38 && h.wire.length > 0) {
          const w = h.wire[Math.floor(rng.next() * h.wire.length)];
          if (w !== undefined) h.wire.push({ ...w });
        } else if (h.wire.length > 0) {
          h.deliverAt(Math.floor(rng.next() * h.wire.length));
        }
        assertAgree(h, seed);
      }
      for (const id of ids) {
        const list = h.applied(id);
        assert.equal(new Set(list).size, list.length, `seed ${seed}: a command applied twice`);
      }
      applied += Math.max(...ids.map((id) => h.applied(id).length));
    }
    // The schedules make progress: agreement on nothing would prove nothing.
    assert.ok(applied > 2000, `only ${applied} commands applied`);
  });
});

const L_HEARTBEAT = 1000;
