import assert from 'node:assert/strict';
import { LeaseAcceptor } from '../../lib/lease/acceptor.js';
import type { LeaseValue } from '../../lib/lease/messages.js';
import type { Ballot } from '../../lib/paxos/ballot.js';

const L = 1000;
const A = { node: 'a', incarnation: 'aaaaaaaaaaaaaaaa' };
const B = { node: 'b', incarnation: 'bbbbbbbbbbbbbbbb' };
const ballot = (round: number, owner = A): Ballot => ({ round, ...owner });
const value = (owner = A, term = 1): LeaseValue => ({ owner, leaseMs: L, term });

/** An acceptor whose restart silence is over at time 0. */
function awake(): LeaseAcceptor {
  const acceptor = new LeaseAcceptor({ leaseMs: L }, null);
  acceptor.start(-L);
  return acceptor;
}

describe('lease acceptor', () => {
  it('promises a ballot at or above its promise and reports no value when none is held', () => {
    const acc = awake();
    const reply = acc.onPrepare(ballot(3), 0);
    assert.deepEqual(reply, {
      type: 'lease.promise',
      ballot: ballot(3),
      accepted: null,
      maxRound: 0,
      termSeen: 0,
    });
  });

  it('reports in a promise the highest round seen before that Prepare', () => {
    const acc = awake();
    acc.onPrepare(ballot(3), 0);
    const reply = acc.onPrepare(ballot(5, B), 1);
    assert.equal(reply?.type, 'lease.promise');
    assert.equal(reply.maxRound, 3);
  });

  it('rejects a Prepare below its promise, naming the promised ballot', () => {
    const acc = awake();
    acc.onPrepare(ballot(5), 0);
    const reply = acc.onPrepare(ballot(4, B), 1);
    assert.equal(reply?.type, 'lease.reject');
    assert.deepEqual(reply.promised, ballot(5));
  });

  it('refuses an Accept below its promise', () => {
    const acc = awake();
    acc.onPrepare(ballot(5, B), 0);
    const reply = acc.onAccept(ballot(4), value(), 1);
    assert.equal(reply?.type, 'lease.reject');
    assert.equal(acc.held(1), null);
  });

  it('holds an accepted value for leaseMs from its own receipt, and reports it in promises meanwhile', () => {
    const acc = awake();
    acc.onPrepare(ballot(1), 100);
    assert.equal(acc.onAccept(ballot(1), value(), 100)?.type, 'lease.accepted');
    const promise = acc.onPrepare(ballot(2, B), 100 + L - 1);
    assert.equal(promise?.type, 'lease.promise');
    assert.deepEqual(promise.accepted?.value, value());
    assert.notEqual(acc.held(100 + L - 1), null);
    assert.equal(acc.held(100 + L), null);
    const later = acc.onPrepare(ballot(3, B), 100 + L);
    assert.equal(later?.type === 'lease.promise' && later.accepted, null);
  });

  it("refuses another owner's Accept while a value is held, whatever its ballot", () => {
    const acc = awake();
    acc.onAccept(ballot(1), value(A), 0);
    acc.onPrepare(ballot(9, B), 10);
    const reply = acc.onAccept(ballot(9, B), value(B, 9), 10);
    assert.equal(reply?.type, 'lease.reject');
    assert.deepEqual(reply.holder, A);
    assert.deepEqual(acc.held(10)?.value.owner, A);
    assert.equal(acc.onAccept(ballot(10, B), value(B, 10), L)?.type, 'lease.accepted');
  });

  it("accepts its holder's higher ballot (a renewal) and restarts the timer from that receipt", () => {
    const acc = awake();
    acc.onAccept(ballot(1), value(), 0);
    acc.onAccept(ballot(2), value(), 400);
    assert.notEqual(acc.held(400 + L - 1), null);
    assert.equal(acc.held(400 + L), null);
  });

  it('never restarts the timer for a duplicate Accept of the ballot already accepted', () => {
    const acc = awake();
    acc.onAccept(ballot(1), value(), 0);
    assert.equal(acc.onAccept(ballot(1), value(), 600)?.type, 'lease.accepted');
    assert.equal(acc.held(L), null);
  });

  it('ignores a late duplicate of an accepted ballot whose value has lapsed', () => {
    const acc = awake();
    acc.onAccept(ballot(1), value(), 0);
    assert.equal(acc.onAccept(ballot(1), value(), L + 5), null);
    assert.equal(acc.held(L + 5), null);
  });

  it("clears a released owner's value at or below the released ballot, and nothing else", () => {
    const acc = awake();
    acc.onAccept(ballot(4), value(A), 0);
    acc.onRelease(A, ballot(3), 1);
    assert.notEqual(acc.held(1), null, 'a Release below the held ballot clears nothing');
    acc.onRelease(B, ballot(9, B), 2);
    assert.notEqual(acc.held(2), null, "another owner's Release clears nothing");
    acc.onRelease(A, ballot(4), 3);
    assert.equal(acc.held(3), null);
  });

  it('answers nothing for leaseMs after a start, but notes overheard leases', () => {
    const acc = new LeaseAcceptor({ leaseMs: L }, null);
    acc.start(0);
    assert.equal(acc.onPrepare(ballot(1, B), 10), null);
    assert.equal(acc.onAccept(ballot(1, B), value(B), 20), null);
    assert.deepEqual(acc.foreignLease(A, 30), B);
    assert.equal(acc.held(30), null, 'an overheard Accept is not a vote');
    assert.equal(acc.onPrepare(ballot(2, B), L - 1), null);
    assert.equal(acc.onPrepare(ballot(2, B), L)?.type, 'lease.promise');
  });

  it('keeps its promise across a restart with storage, and is silent all the same', () => {
    const acc = new LeaseAcceptor({ leaseMs: L }, ballot(7, B));
    acc.start(0);
    assert.equal(acc.onPrepare(ballot(8), 10), null);
    assert.equal(acc.onPrepare(ballot(6), L)?.type, 'lease.reject');
    assert.equal(acc.maxRound, 8, 'rounds overheard while silent still count');
  });
});
