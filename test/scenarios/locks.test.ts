import assert from 'node:assert/strict';
import type { LockCommand } from '../../lib/locks/commands.js';
import { LOCK_MUTANTS } from '../sim/lock-mutants.js';
import { ReplicaScenario, type ReplicaFactory, type ReplicaWire } from './replica-harness.js';

const L = 1000;
const TTL = 2000;

/** The commands a log Accept carries, with their slots. */
function accepted(w: ReplicaWire): { slot: number; command: LockCommand }[] {
  if (w.message.type !== 'log.accept') return [];
  return w.message.entries.flatMap((e) =>
    (e.value ?? []).map((command) => ({ slot: e.slot, command })),
  );
}

/**
 * The race of `expire` with a renew (docs/design.md, "Why two holders' windows never overlap",
 * step 3). A holder on the second node holds `x`; a waiter on the third queues behind it, and a
 * third holder, on the leader's node, behind that. The holder releases and the waiter is
 * promoted, but the grant's answer is held back until just before the grant's TTL runs out on
 * the leader. The waiter's deadline (its acquire's first send + V) is long past by then, so it
 * renews at once and is handed the lock only when that renew applied. The leader's Accepts are
 * held from the renew's arrival until its timer ran out: the renew takes a slot, the expire the
 * slot after it, and both apply in that order. With the version check the expire is a no-op;
 * without it the expire ends the renewed grant and the third holder gets `x` while the waiter
 * holds it.
 */
function renewRacesExpire(factory?: ReplicaFactory): {
  s: ReplicaScenario;
  waiterToken: bigint;
  renewSlot: number;
  expireSlot: number;
} {
  const s = new ReplicaScenario({
    ids: ['n1', 'n2', 'n3'],
    leaseMs: L,
    preferredLeader: 'n1',
    ...(factory === undefined ? {} : { factory }),
  });
  s.start();
  s.runUntilTrue(() => s.serving() === 'n1', 5 * L, 'n1 serving');
  const grantedTo = (node: string, after: number): bigint | null => {
    for (const { node: n, t, e } of s.events) {
      if (n === node && t >= after && e.type === 'granted' && e.name === 'x') return e.token;
    }
    return null;
  };
  // A new cluster waits out maxTtlMs + L before its first grant.
  s.acquire('n2', 'x', TTL, true);
  s.runUntilTrue(() => grantedTo('n2', 0) !== null, 8 * L, "the holder's grant");
  const holderToken = grantedTo('n2', 0) ?? 0n;
  const queued = (node: string): boolean =>
    s.events.some(({ node: n, e }) => n === node && e.type === 'queued');
  s.acquire('n3', 'x', TTL, true);
  s.runUntilTrue(() => queued('n3'), L, 'the waiter queued');
  s.acquire('n1', 'x', TTL, true);
  s.runUntilTrue(() => queued('n1'), L, 'the third holder queued');
  // Answers to the waiter's node wait: its grant reaches it late.
  const unholdReplies = s.rule((w) => w.to === 'n3' && w.message.type === 'lock.reply', 'hold');
  s.run(L);
  s.releaseLock('n2', 'x', holderToken);
  const isGrant = (w: ReplicaWire): boolean =>
    w.message.type === 'lock.reply' && w.message.replies.some((r) => r.type === 'granted');
  s.runUntilTrue(() => s.held.some(isGrant), L, 'the promotion');
  const promotedAt = s.held.find(isGrant)?.sentAt ?? 0;
  // The leader's clock runs at the true rate: its timer runs out at promotedAt + TTL.
  s.runUntil(promotedAt + TTL - 100);
  assert.deepEqual(s.holders('x'), [], 'nobody holds x while the grant is on its way');
  const unholdAccepts = s.rule((w) => w.from === 'n1' && w.message.type === 'log.accept', 'hold');
  unholdReplies();
  s.release((w) => w.to === 'n3');
  const proposed = (op: LockCommand['op']): number | null => {
    for (const w of s.sent) {
      for (const { slot, command } of accepted(w)) if (command.op === op) return slot;
    }
    return null;
  };
  s.runUntilTrue(() => proposed('expire') !== null, L, "the leader's expire");
  unholdAccepts();
  s.release();
  // Both slots are chosen and applied within a few round trips.
  s.run(50);
  const waiterToken = grantedTo('n3', promotedAt) ?? 0n;
  return {
    s,
    waiterToken,
    renewSlot: proposed('renew') ?? Number.NaN,
    expireSlot: proposed('expire') ?? Number.NaN,
  };
}

describe('lock scenario: a late waiter renews as the leader expires its grant', () => {
  it('lets the renew win: the expire names an older version and changes nothing', () => {
    const { s, waiterToken, renewSlot, expireSlot } = renewRacesExpire();
    // The race happened: the renew was proposed first, the expire in a later slot.
    assert.ok(renewSlot < expireSlot, `renew in slot ${renewSlot}, expire in ${expireSlot}`);
    assert.ok(waiterToken > 0n, 'the waiter was handed the lock after its renew');
    assert.deepEqual(s.holders('x'), ['n3']);
    assert.equal(s.replica('n1').service.table.view('x')?.token, waiterToken);
    // And on through the waiter's renewals: the third holder still waits.
    s.run(2 * TTL);
    assert.deepEqual(s.holders('x'), ['n3']);
    assert.equal(s.overlap(), null);
  });

  it('shows two holders when expire ignores the version (expireIgnoresVersion)', () => {
    const { s, renewSlot, expireSlot } = renewRacesExpire(LOCK_MUTANTS.expireIgnoresVersion);
    assert.ok(renewSlot < expireSlot, `renew in slot ${renewSlot}, expire in ${expireSlot}`);
    assert.deepEqual(s.holders('x').sort(), ['n1', 'n3']);
    const overlap = s.overlap();
    assert.ok(overlap !== null, 'the windows of x overlap');
    assert.deepEqual([overlap.a.client, overlap.b.client], ['n3', 'n1']);
  });
});
