import assert from 'node:assert/strict';
import { createRng } from '../../lib/random.js';
import { DriftClock, EventQueue, type Scheduled } from '../../lib/testing/sim/index.js';

describe('sim engine parts', () => {
  describe('DriftClock', () => {
    it('reads offset + rate · (true − start)', () => {
      const clock = new DriftClock(100, 5000, 1.01);
      assert.equal(clock.local(100), 5000);
      assert.equal(clock.local(200), 5000 + 101);
    });

    it('maps a local instant to the first true instant the clock reaches it, exactly', () => {
      const rng = createRng(7);
      for (let i = 0; i < 2000; i++) {
        const rate = 0.95 + rng.next() * 0.1;
        const clock = new DriftClock(rng.next() * 1e7, rng.next() * 1e6, rate);
        const local = clock.local(clock.start + rng.next() * 1e6);
        const t = clock.trueAt(local);
        assert.ok(clock.local(t) >= local, 'reached at trueAt');
        // One ulp earlier the clock is still short of it.
        const before = t - Math.max(Number.MIN_VALUE, Math.abs(t) * Number.EPSILON);
        assert.ok(before < clock.start || clock.local(before) < local, 'not reached before');
      }
    });
  });

  describe('EventQueue', () => {
    it('pops by time, and in insertion order at one instant', () => {
      const q = new EventQueue<Scheduled & { name: string }>();
      const rng = createRng(3);
      const pushed: { t: number; name: string }[] = [];
      for (let i = 0; i < 500; i++) {
        const t = Math.floor(rng.next() * 20);
        pushed.push({ t, name: `e${i}` });
        q.push({ t, seq: 0, name: `e${i}` });
      }
      const expected = [...pushed].sort((a, b) => a.t - b.t).map((e) => e.name);
      const popped: string[] = [];
      for (let e = q.pop(); e !== undefined; e = q.pop()) popped.push(e.name);
      assert.deepEqual(popped, expected);
    });
  });
});
