import assert from 'node:assert/strict';
import { Checker, type ViolationKind } from '../../lib/testing/sim/index.js';

const L = 1000;
const RHO = 0.01;
const NODES = ['n1', 'n2', 'n3'];

function checker(stableLeader = false): Checker {
  return new Checker({ nodes: NODES, leaseMs: L, maxClockDrift: RHO, stableLeader });
}

function kinds(c: Checker): ViolationKind[] {
  return c.violations.map((v) => v.kind);
}

describe('sim checker', () => {
  describe('G4: lease beliefs', () => {
    it('reports two owners believing at one instant', () => {
      const c = checker();
      c.elected(0, 'n1/a', 1, 900);
      c.elected(500, 'n2/b', 2, 1400);
      assert.deepEqual(kinds(c), ['leaseOverlap']);
      assert.equal(c.violations[0]?.time, 500);
    });

    it('accepts a belief that starts the instant the previous one ends', () => {
      const c = checker();
      c.elected(0, 'n1/a', 1, 900);
      c.elected(900, 'n2/b', 2, 1800);
      assert.deepEqual(kinds(c), []);
    });

    it('ends a belief at deposed and at a crash, before its deadline', () => {
      const c = checker();
      c.elected(0, 'n1/a', 1, 900);
      c.deposed(300, 'n1/a', 1, 'released');
      c.elected(310, 'n2/b', 2, 1200);
      c.ended(400, 'n2/b');
      c.elected(410, 'n3/c', 3, 1300);
      assert.deepEqual(kinds(c), []);
    });

    it('extends a belief on renewal, so a later election overlaps it', () => {
      const c = checker();
      c.elected(0, 'n1/a', 1, 900);
      c.renewed(300, 'n1/a', 1, 1200);
      c.elected(1000, 'n2/b', 2, 2000);
      assert.deepEqual(kinds(c), ['leaseOverlap']);
    });

    it('judges a renewal that revives a lapsed lease as a fresh belief', () => {
      const c = checker();
      c.elected(0, 'n1/a', 1, 900);
      c.elected(950, 'n2/b', 2, 1900);
      c.renewed(1000, 'n1/a', 1, 2000);
      assert.deepEqual(kinds(c), ['leaseOverlap']);
    });

    it('reports a leader action outside its belief interval, including at its end', () => {
      const c = checker();
      c.elected(100, 'n1/a', 1, 900);
      c.action(100, 'n1/a');
      c.action(899.999, 'n1/a');
      assert.deepEqual(kinds(c), []);
      c.action(900, 'n1/a');
      c.action(50, 'n2/b');
      assert.deepEqual(kinds(c), ['actionOutsideLease', 'actionOutsideLease']);
    });

    it('reports an action after a crash ended the belief', () => {
      const c = checker();
      c.elected(0, 'n1/a', 1, 900);
      c.ended(200, 'n1/a');
      c.action(300, 'n1/a');
      assert.deepEqual(kinds(c), ['actionOutsideLease']);
    });
  });

  describe('G3: one value per decree instance', () => {
    it('derives chosenness from a majority of votes in one ballot', () => {
      const c = checker();
      c.voted(0, 'n1', 7, '1.n1.x', 'A');
      c.chosen(1, 'n1/x', 7, 'A');
      assert.deepEqual(kinds(c), ['chosenDisagrees']);
      c.voted(2, 'n2', 7, '1.n1.x', 'A');
      c.chosen(3, 'n1/x', 7, 'A');
      assert.equal(c.chosenInstances, 1);
      assert.deepEqual(kinds(c), ['chosenDisagrees']);
    });

    it('reports two values chosen for one instance', () => {
      const c = checker();
      c.voted(0, 'n1', 3, '1.n1.x', 'A');
      c.voted(0, 'n2', 3, '1.n1.x', 'A');
      c.voted(5, 'n2', 3, '2.n3.y', 'B');
      c.voted(6, 'n3', 3, '2.n3.y', 'B');
      assert.deepEqual(kinds(c), ['twoValuesChosen']);
    });

    it('accepts the same value chosen again in a higher ballot', () => {
      const c = checker();
      c.voted(0, 'n1', 3, '1.n1.x', 'A');
      c.voted(0, 'n2', 3, '1.n1.x', 'A');
      c.voted(5, 'n2', 3, '2.n3.y', 'A');
      c.voted(6, 'n3', 3, '2.n3.y', 'A');
      c.chosen(7, 'n3/y', 3, 'A');
      assert.deepEqual(kinds(c), []);
    });

    it('counts a voter once however often it votes in a ballot', () => {
      const c = checker();
      c.voted(0, 'n1', 1, '1.n1.x', 'A');
      c.voted(1, 'n1', 1, '1.n1.x', 'A');
      c.chosen(2, 'n1/x', 1, 'A');
      assert.deepEqual(kinds(c), ['chosenDisagrees']);
    });

    it('reports a chosen event for another value than the votes chose', () => {
      const c = checker();
      c.voted(0, 'n1', 1, '1.n1.x', 'A');
      c.voted(0, 'n2', 1, '1.n1.x', 'A');
      c.chosen(1, 'n2/z', 1, 'B');
      assert.deepEqual(kinds(c), ['chosenDisagrees']);
    });

    it('reports different values voted in one ballot', () => {
      const c = checker();
      c.voted(0, 'n1', 1, '1.n1.x', 'A');
      c.voted(0, 'n2', 1, '1.n1.x', 'B');
      assert.deepEqual(kinds(c), ['conflictingVotes']);
    });
  });

  describe('terms and ballots', () => {
    it('reports a term going back within one node incarnation', () => {
      const c = checker();
      c.leaderSeen(0, 'n1/a', 5);
      c.leaderSeen(1, 'n1/a', 5);
      c.leaderSeen(2, 'n1/a', 4);
      assert.deepEqual(kinds(c), ['termBackwards']);
    });

    it('lets a new incarnation start from any term', () => {
      const c = checker();
      c.leaderSeen(0, 'n1/a', 5);
      c.leaderSeen(1, 'n1/b', 2);
      assert.deepEqual(kinds(c), []);
    });

    it('counts elected terms as seen terms', () => {
      const c = checker();
      c.elected(0, 'n1/a', 9, 900);
      c.leaderSeen(1, 'n1/a', 3);
      assert.deepEqual(kinds(c), ['termBackwards']);
    });

    it('reports a lease ballot prepared by two outputs, not one broadcast', () => {
      const c = checker();
      c.leasePrepare(0, 'n1/a', '3.n1.a', 10);
      c.leasePrepare(0, 'n1/a', '3.n1.a', 10);
      assert.deepEqual(kinds(c), []);
      c.leasePrepare(5, 'n1/a', '3.n1.a', 11);
      assert.deepEqual(kinds(c), ['ballotReused']);
    });

    it('reports a decree ballot prepared twice for one instance', () => {
      const c = checker();
      c.decreePrepared(0, 'n1/a', 1, '3.n1.a');
      c.decreePrepared(0, 'n1/a', 2, '3.n1.a');
      assert.deepEqual(kinds(c), []);
      c.decreePrepared(1, 'n1/a', 1, '3.n1.a');
      assert.deepEqual(kinds(c), ['ballotReused']);
    });
  });

  describe('liveness', () => {
    const deadline = 10_000 + (2 * L) / (1 - RHO);

    it('reports no leader within two lease periods of the heal', () => {
      const c = checker();
      c.heal(10_000);
      c.advance(deadline - 1);
      assert.deepEqual(kinds(c), []);
      c.advance(deadline);
      assert.deepEqual(kinds(c), ['noLeaderAfterHeal']);
      assert.equal(c.violations[0]?.time, deadline);
    });

    it('reports a leader that came after the heal but is gone at the deadline', () => {
      const c = checker();
      c.heal(10_000);
      c.elected(10_500, 'n1/a', 4, 11_000);
      c.finish(20_000);
      assert.deepEqual(kinds(c), ['noLeaderAfterHeal']);
    });

    it('accepts a leader elected in time that keeps the lease', () => {
      const c = checker();
      c.heal(10_000);
      c.elected(11_000, 'n1/a', 4, 11_900);
      c.renewed(11_300, 'n1/a', 4, 12_300);
      c.advance(deadline);
      c.renewed(12_100, 'n1/a', 4, 21_000);
      c.finish(20_000);
      assert.deepEqual(kinds(c), []);
    });

    it('reports the stable leader displaced after the liveness deadline', () => {
      const c = checker();
      c.heal(10_000);
      c.elected(11_000, 'n1/a', 4, 12_500);
      c.advance(deadline);
      c.deposed(12_500, 'n1/a', 4, 'expired');
      c.elected(12_600, 'n2/b', 5, 13_500);
      assert.deepEqual(kinds(c), ['leaderChanged', 'leaderChanged']);
    });

    it('reports a flapping leader in a run without faults', () => {
      const c = checker(true);
      c.heal(0);
      c.elected(1500, 'n1/a', 1, 2400);
      c.deposed(2400, 'n1/a', 1, 'expired');
      c.elected(2500, 'n2/b', 2, 3400);
      assert.deepEqual(kinds(c), ['leaderChanged', 'leaderChanged']);
    });

    it('reports a leader that lost the lease by the end of a run without faults', () => {
      const c = checker(true);
      c.heal(0);
      c.elected(1500, 'n1/a', 1, 2400);
      c.finish(5000);
      assert.deepEqual(kinds(c), ['leaderChanged']);
    });

    it('accepts one leader holding for the whole of a run without faults', () => {
      const c = checker(true);
      c.heal(0);
      c.elected(1500, 'n1/a', 1, 2400);
      c.renewed(1800, 'n1/a', 1, 6000);
      c.finish(5000);
      assert.deepEqual(kinds(c), []);
    });
  });

  it('keeps a few violations per kind and counts them all', () => {
    const c = new Checker({ nodes: NODES, leaseMs: L, maxClockDrift: RHO, maxPerKind: 2 });
    for (let i = 0; i < 5; i++) c.action(i, 'n1/a');
    assert.equal(c.violations.length, 2);
    assert.equal(c.found.get('actionOutsideLease'), 5);
    assert.equal(c.ok, false);
  });
});
