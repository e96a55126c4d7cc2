import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { LeadershipLostError } from '../../lib/errors.js';
import { exactAbortController } from '../../lib/node/exact-signal.js';

/**
 * The helper on a clock the test moves by hand: moving it is a stall, since no timer runs.
 * `deadline` moves like a renewed lease's.
 */
function setup(): {
  controller: AbortController;
  signal: AbortSignal;
  clock: { t: number; deadline: number; checks: number };
  aborts: unknown[];
} {
  const clock = { t: 0, deadline: 100, checks: 0 };
  const controller = exactAbortController({
    now: () => clock.t,
    valid: (now) => {
      clock.checks += 1;
      return now < clock.deadline;
    },
    reason: () => new LeadershipLostError('the leader lease expired'),
  });
  const { signal } = controller;
  const aborts: unknown[] = [];
  signal.addEventListener('abort', () => aborts.push(signal.reason));
  return { controller, signal, clock, aborts };
}

describe('exactAbortController', () => {
  it('is an AbortSignal that reads false while valid', () => {
    const { signal, aborts } = setup();
    assert.ok(signal instanceof AbortSignal);
    assert.equal(signal.aborted, false);
    assert.equal(signal.reason, undefined);
    signal.throwIfAborted();
    assert.equal(aborts.length, 0);
  });

  it('aborts on the first read past the deadline, with no timer run: listeners once, then true on every read', () => {
    const { signal, clock, aborts } = setup();
    let onabort = 0;
    signal.onabort = () => (onabort += 1);
    clock.t = 150;
    assert.equal(aborts.length, 0, 'nothing happens until the signal is read');
    assert.equal(signal.aborted, true);
    assert.equal(aborts.length, 1);
    assert.equal(onabort, 1);
    const [reason] = aborts;
    assert.ok(reason instanceof LeadershipLostError);
    assert.equal(signal.reason, reason);
    assert.throws(() => {
      signal.throwIfAborted();
    }, reason);
    assert.equal(signal.aborted, true);
    assert.equal(aborts.length, 1);
    assert.equal(onabort, 1);
  });

  it('aborts on a first read of reason or throwIfAborted() just the same', () => {
    const a = setup();
    a.clock.t = 100;
    assert.ok(a.signal.reason instanceof LeadershipLostError);
    assert.equal(a.aborts.length, 1);
    const b = setup();
    b.clock.t = 100;
    assert.throws(() => {
      b.signal.throwIfAborted();
    }, LeadershipLostError);
    assert.equal(b.aborts.length, 1);
    assert.equal(b.signal.aborted, true);
  });

  it('follows a deadline that moved: past the old one and before the new one, still valid', () => {
    const { signal, clock, aborts } = setup();
    clock.deadline = 200;
    clock.t = 150;
    assert.equal(signal.aborted, false);
    clock.t = 200;
    assert.equal(signal.aborted, true);
    assert.equal(aborts.length, 1);
  });

  it('keeps the reason of an explicit abort, and asks valid() no more once aborted', () => {
    const { controller, signal, clock, aborts } = setup();
    const released = new LeadershipLostError('leadership was released');
    controller.abort(released);
    const checks = clock.checks;
    clock.t = 500;
    assert.equal(signal.aborted, true);
    assert.equal(signal.reason, released);
    assert.deepEqual(aborts, [released]);
    assert.equal(clock.checks, checks);
  });

  it('lets a listener read the signal while it aborts', () => {
    const { signal, clock } = setup();
    const seen: boolean[] = [];
    signal.addEventListener('abort', () => seen.push(signal.aborted));
    clock.t = 100;
    assert.equal(signal.aborted, true);
    assert.deepEqual(seen, [true]);
  });

  it('aborts signals derived with AbortSignal.any when read, and those made after the stall at once', () => {
    const { signal, clock } = setup();
    const before = AbortSignal.any([signal]);
    clock.t = 100;
    // A derived signal keeps its own state: it learns of the abort when the source is read.
    assert.equal(before.aborted, false);
    assert.equal(signal.aborted, true);
    assert.equal(before.aborted, true);
    assert.ok(before.reason instanceof LeadershipLostError);
    const late = setup();
    late.clock.t = 100;
    const after = AbortSignal.any([late.signal]);
    assert.equal(after.aborted, true);
    assert.equal(late.aborts.length, 1);
  });

  it('is seen by Node.js APIs that take it after a stall: timers/promises, events.once, fetch, fs', async () => {
    for (const [name, use] of [
      ['timers/promises setTimeout', (s: AbortSignal) => sleep(1, 'done', { signal: s })],
      ['events.once', (s: AbortSignal) => once(new EventEmitter(), 'never', { signal: s })],
      ['fetch', (s: AbortSignal) => fetch('data:text/plain,late', { signal: s })],
      ['fs readFile', (s: AbortSignal) => readFile(fileURLToPath(import.meta.url), { signal: s })],
    ] as const) {
      const { signal, clock, aborts } = setup();
      clock.t = 100;
      await assert.rejects(
        use(signal),
        (error: unknown) =>
          error === aborts[0] ||
          (error instanceof Error && error.name === 'AbortError' && error.cause === aborts[0]),
        name,
      );
      assert.equal(aborts.length, 1, name);
    }
  });

  it('does not reach an operation already waiting when its own timer runs first', async () => {
    // What stays the application's job: work past its check. A sleep begun before the stall
    // ends normally if its timer runs before anyone reads the signal; read it after the sleep.
    const { signal, clock, aborts } = setup();
    const waiting = sleep(1, 'done', { signal });
    clock.t = 100;
    assert.equal(await waiting, 'done');
    assert.equal(aborts.length, 0);
    assert.equal(signal.aborted, true);
  });
});
