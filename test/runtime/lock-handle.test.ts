import assert from 'node:assert/strict';
import { LockLostError } from '../../lib/errors.js';
import { Lock, type LockHost } from '../../lib/node/lock-handle.js';

/** A holder's node on a clock the test moves by hand: moving it is a stall (no timer runs). */
function fakeHost(until = 100): LockHost & { t: number; until: number; released: number } {
  const host = {
    t: 0,
    until,
    released: 0,
    now: () => host.t,
    valid: (_name: string, _token: bigint, now: number) => now < host.until,
    deadline: () => (host.t < host.until ? host.until : null),
    release: () => {
      host.released += 1;
      return Promise.resolve();
    },
  };
  return host;
}

/** Counts the `AbortController`s made while `run` runs. */
function countControllers(run: () => void): number {
  const original = globalThis.AbortController;
  let made = 0;
  globalThis.AbortController = class extends original {
    constructor() {
      super();
      made += 1;
    }
  };
  try {
    run();
  } finally {
    globalThis.AbortController = original;
  }
  return made;
}

describe('Lock', () => {
  it('makes no AbortController for a lock whose signal is never read, and one when it is', () => {
    const made = countControllers(() => {
      const host = fakeHost();
      const locks = Array.from({ length: 10 }, (_, i) => new Lock(host, `n${String(i)}`, 1n, 1000));
      for (const lock of locks) {
        assert.equal(lock.valid, true);
        assert.ok(lock.remainingMs > 0);
        lock.assertValid();
      }
      for (const lock of locks) void lock.release();
      assert.equal(host.released, 10);
    });
    assert.equal(made, 0);
    assert.equal(
      countControllers(() => {
        const lock = new Lock(fakeHost(), 'n', 1n, 1000);
        assert.equal(lock.signal.aborted, false);
        assert.equal(lock.signal, lock.signal);
      }),
      1,
    );
  });

  it('is exact when read without a signal, and a signal read later is aborted with the same reason', () => {
    const host = fakeHost(100);
    const lock = new Lock(host, 'n', 7n, 1000);
    host.t = 99;
    assert.equal(lock.valid, true);
    assert.equal(lock.remainingMs, 1);
    host.t = 100;
    assert.equal(lock.valid, false);
    assert.equal(lock.remainingMs, 0);
    let thrown: unknown = null;
    try {
      lock.assertValid();
    } catch (error) {
      thrown = error;
    }
    assert.ok(thrown instanceof LockLostError);
    assert.match(thrown.message, /passed its deadline/);
    // A deadline that moves on afterwards does not bring the lock back.
    host.until = 500;
    assert.equal(lock.valid, false);
    assert.equal(lock.signal.aborted, true);
    assert.equal(lock.signal.reason, thrown);
    assert.throws(() => {
      lock.signal.throwIfAborted();
    }, thrown);
  });

  it('aborts its signal on the first read past the deadline, listeners once, and agrees with valid', () => {
    const host = fakeHost(100);
    const lock = new Lock(host, 'n', 7n, 1000);
    const signal = lock.signal;
    const seen: { aborted: boolean; valid: boolean; reason: unknown }[] = [];
    const first = (): { aborted: boolean; valid: boolean; reason: unknown } => {
      const s = seen[0];
      assert.ok(s !== undefined);
      return s;
    };
    signal.addEventListener('abort', () => {
      seen.push({ aborted: signal.aborted, valid: lock.valid, reason: signal.reason });
    });
    host.t = 150;
    assert.equal(seen.length, 0, 'nothing happens until the lock is read');
    assert.equal(signal.aborted, true);
    assert.equal(seen.length, 1);
    assert.equal(first().aborted, true);
    assert.equal(first().valid, false);
    const reason = first().reason;
    assert.ok(reason instanceof LockLostError);
    assert.equal(lock.valid, false);
    assert.throws(() => {
      lock.assertValid();
    }, reason);
    assert.equal(seen.length, 1);
    // Read through `valid` first instead: the signal aborts just the same.
    const other = new Lock(host, 'm', 8n, 1000);
    const otherSignal = other.signal;
    host.until = 200;
    host.t = 200;
    assert.equal(other.valid, false);
    assert.equal(Reflect.get(AbortSignal.prototype, 'aborted', otherSignal), true);
  });

  it('aborts at release with a LockLostError saying so, and the first reason stays', async () => {
    const host = fakeHost(100);
    const lock = new Lock(host, 'n', 7n, 1000);
    const signal = lock.signal;
    await lock.release();
    assert.equal(host.released, 1);
    assert.equal(signal.aborted, true);
    assert.ok(signal.reason instanceof LockLostError);
    assert.match((signal.reason as Error).message, /was released/);
    lock.lose('expired');
    assert.match((signal.reason as Error).message, /was released/);
    await lock.release();
    assert.equal(host.released, 1, 'release is idempotent');
    // A lock lost before its release is not released again, and says why it was lost.
    const lost = new Lock(host, 'm', 8n, 1000);
    lost.lose('not-held');
    await lost.release();
    assert.equal(host.released, 1);
    assert.match((lost.signal.reason as Error).message, /no longer held/);
  });
});
