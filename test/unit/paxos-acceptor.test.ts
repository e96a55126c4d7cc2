import assert from 'node:assert/strict';
import { Acceptor } from '../../lib/paxos/acceptor.js';
import type { Ballot } from '../../lib/paxos/ballot.js';

const ballot = (round: number, node = 'a', incarnation = '0000000000000001'): Ballot => ({
  round,
  node,
  incarnation,
});

describe('paxos acceptor', () => {
  it('promises a ballot above its promise and reports that nothing was accepted', () => {
    const acc = new Acceptor<string>();
    assert.deepEqual(acc.prepare(ballot(1)), { ok: true, accepted: null });
    assert.deepEqual(acc.prepare(ballot(2, 'b')), { ok: true, accepted: null });
    assert.deepEqual(acc.promisedBallot, ballot(2, 'b'));
  });

  it('answers a duplicate Prepare of the promised ballot again with a promise', () => {
    const acc = new Acceptor<string>();
    acc.prepare(ballot(3));
    assert.deepEqual(acc.prepare(ballot(3)), { ok: true, accepted: null });
    assert.deepEqual(acc.promisedBallot, ballot(3));
  });

  it('rejects a Prepare below its promise, carrying the promised ballot', () => {
    const acc = new Acceptor<string>();
    acc.prepare(ballot(5, 'b'));
    assert.deepEqual(acc.prepare(ballot(4, 'c')), { ok: false, promised: ballot(5, 'b') });
    assert.deepEqual(acc.prepare(ballot(5, 'a')), { ok: false, promised: ballot(5, 'b') });
    assert.deepEqual(acc.promisedBallot, ballot(5, 'b'), 'a refusal leaves the promise alone');
  });

  it('orders ballots of one round by incarnation, so a new life gets a different ballot', () => {
    const acc = new Acceptor<string>();
    acc.prepare(ballot(5, 'a', '0000000000000002'));
    const older = acc.prepare(ballot(5, 'a', '0000000000000001'));
    assert.equal(older.ok, false);
  });

  it('refuses an Accept below its promise and keeps no value', () => {
    const acc = new Acceptor<string>();
    acc.prepare(ballot(5, 'b'));
    assert.deepEqual(acc.accept(ballot(4), 'x'), { ok: false, promised: ballot(5, 'b') });
    assert.equal(acc.acceptedValue, null);
  });

  it('accepts at its promise', () => {
    const acc = new Acceptor<string>();
    acc.prepare(ballot(5));
    assert.deepEqual(acc.accept(ballot(5), 'x'), { ok: true });
    assert.deepEqual(acc.acceptedValue, { ballot: ballot(5), value: 'x' });
  });

  it('accepts above its promise and raises the promise to that ballot', () => {
    const acc = new Acceptor<string>();
    acc.prepare(ballot(5));
    assert.deepEqual(acc.accept(ballot(7, 'b'), 'y'), { ok: true });
    assert.deepEqual(acc.promisedBallot, ballot(7, 'b'));
    assert.equal(acc.prepare(ballot(6, 'c')).ok, false, 'an acceptance is also a promise');
  });

  it('accepts without any earlier promise', () => {
    const acc = new Acceptor<string>();
    assert.deepEqual(acc.accept(ballot(1), 'x'), { ok: true });
  });

  it('reports its accepted value in every later promise', () => {
    const acc = new Acceptor<string>();
    acc.prepare(ballot(1));
    acc.accept(ballot(1), 'x');
    assert.deepEqual(acc.prepare(ballot(2, 'b')), {
      ok: true,
      accepted: { ballot: ballot(1), value: 'x' },
    });
    acc.accept(ballot(2, 'b'), 'x');
    assert.deepEqual(acc.prepare(ballot(9, 'c')), {
      ok: true,
      accepted: { ballot: ballot(2, 'b'), value: 'x' },
    });
  });

  it('restored from its state keeps the promise and the accepted value', () => {
    const before = new Acceptor<string>();
    before.prepare(ballot(3));
    before.accept(ballot(3), 'x');
    before.prepare(ballot(6, 'b'));
    const after = new Acceptor<string>(before.state());
    assert.deepEqual(after.prepare(ballot(5, 'c')), { ok: false, promised: ballot(6, 'b') });
    assert.deepEqual(after.accept(ballot(4), 'y'), { ok: false, promised: ballot(6, 'b') });
    assert.deepEqual(after.prepare(ballot(7, 'c')), {
      ok: true,
      accepted: { ballot: ballot(3), value: 'x' },
    });
  });

  it('state() is a snapshot: later changes do not alter it', () => {
    const acc = new Acceptor<string>();
    acc.prepare(ballot(1));
    const snap = acc.state();
    acc.accept(ballot(2), 'x');
    assert.deepEqual(snap, { promised: ballot(1), accepted: null });
  });
});
