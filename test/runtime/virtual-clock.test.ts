import assert from 'node:assert/strict';
import { VirtualClock } from '../../lib/testing/virtual-clock.js';

describe('VirtualClock', () => {
  it('fires timers in due order, ties in the order they were set', async () => {
    const clock = new VirtualClock();
    const fired: string[] = [];
    clock.setTimeout(() => fired.push(`c@${clock.now()}`), 30);
    clock.setTimeout(() => fired.push(`a@${clock.now()}`), 10);
    clock.setTimeout(() => fired.push(`b1@${clock.now()}`), 20);
    clock.setTimeout(() => fired.push(`b2@${clock.now()}`), 20);
    await clock.advance(25);
    assert.deepEqual(fired, ['a@10', 'b1@20', 'b2@20']);
    assert.equal(clock.now(), 25);
    await clock.advance(5);
    assert.deepEqual(fired, ['a@10', 'b1@20', 'b2@20', 'c@30']);
  });

  it('does not fire a cleared timer', async () => {
    const clock = new VirtualClock();
    let fired = false;
    const handle = clock.setTimeout(() => (fired = true), 5);
    clock.clearTimeout(handle);
    clock.clearTimeout(handle);
    clock.clearTimeout(undefined);
    await clock.advance(10);
    assert.equal(fired, false);
    assert.equal(clock.pending, 0);
  });

  it('fires timers set by timers within the same advance', async () => {
    const clock = new VirtualClock(100);
    const fired: number[] = [];
    clock.setTimeout(() => {
      fired.push(clock.now());
      clock.setTimeout(() => fired.push(clock.now()), 0);
      clock.setTimeout(() => fired.push(clock.now()), 7);
    }, 3);
    await clock.advance(10);
    assert.deepEqual(fired, [103, 103, 110]);
  });

  it('settles promise chains a timer started before the next timer fires', async () => {
    const clock = new VirtualClock();
    const order: string[] = [];
    clock.setTimeout(() => {
      void (async () => {
        for (let i = 0; i < 50; i++) await Promise.resolve();
        order.push('chain done');
      })();
    }, 1);
    clock.setTimeout(() => order.push('second timer'), 1);
    await clock.advance(1);
    assert.deepEqual(order, ['chain done', 'second timer']);
  });

  it('runUntil stops at the timer that makes the predicate hold', async () => {
    const clock = new VirtualClock();
    let count = 0;
    const tick = (): void => {
      count++;
      clock.setTimeout(tick, 10);
    };
    clock.setTimeout(tick, 10);
    assert.equal(await clock.runUntil(() => count === 3, 1000), true);
    assert.equal(clock.now(), 30);
    assert.equal(await clock.runUntil(() => count === 100, 50), false);
    assert.equal(clock.now(), 80);
  });

  it('jump moves the clock without firing timers, which then fire late', async () => {
    const clock = new VirtualClock();
    const fired: number[] = [];
    clock.setTimeout(() => fired.push(clock.now()), 10);
    clock.jump(50);
    assert.equal(clock.now(), 50);
    assert.deepEqual(fired, []);
    await clock.advance(0);
    assert.deepEqual(fired, [50]);
  });

  it('reports the next due time and rejects bad arguments', async () => {
    const clock = new VirtualClock();
    assert.equal(clock.nextDueAt(), null);
    clock.setTimeout(() => undefined, 4);
    assert.equal(clock.nextDueAt(), 4);
    await assert.rejects(clock.advance(-1), RangeError);
    assert.throws(() => {
      clock.jump(Number.NaN);
    }, RangeError);
    clock.reset();
    assert.equal(clock.pending, 0);
  });
});
