import assert from 'node:assert/strict';
import { ballotEquals, compareBallots, nextBallot, type Ballot } from '../../lib/paxos/ballot.js';
import { createRng, randomIncarnation } from '../../lib/random.js';

const b = (round: number, node: string, incarnation = '0000000000000001'): Ballot => ({
  round,
  node,
  incarnation,
});

describe('ballots', () => {
  it('orders by round first, then node id, then incarnation', () => {
    assert.equal(compareBallots(b(1, 'z'), b(2, 'a')), -1);
    assert.equal(compareBallots(b(2, 'a'), b(2, 'b')), -1);
    assert.equal(compareBallots(b(2, 'a', '01'), b(2, 'a', '02')), -1);
    assert.equal(compareBallots(b(3, 'a'), b(3, 'a')), 0);
  });

  it('puts no ballot below every ballot', () => {
    assert.equal(compareBallots(null, b(0, 'a')), -1);
    assert.equal(compareBallots(b(0, 'a'), null), 1);
    assert.equal(compareBallots(null, null), 0);
  });

  it('counts the incarnation in equality, so a restarted node never reuses a ballot', () => {
    const before = nextBallot(4, { node: 'a', incarnation: randomIncarnation(createRng(1)) });
    const after = nextBallot(4, { node: 'a', incarnation: randomIncarnation(createRng(2)) });
    assert.equal(before.round, after.round);
    assert.equal(ballotEquals(before, after), false);
  });

  it('climbs above the highest round seen', () => {
    assert.equal(nextBallot(41, { node: 'a', incarnation: '00' }).round, 42);
  });
});

describe('seeded randomness', () => {
  it('replays the same stream for the same seed and differs across seeds', () => {
    const draw = (seed: number): number[] => {
      const rng = createRng(seed);
      return Array.from({ length: 5 }, () => rng.next());
    };
    assert.deepEqual(draw(7), draw(7));
    assert.notDeepEqual(draw(7), draw(8));
    for (const x of draw(9)) assert.ok(x >= 0 && x < 1);
  });

  it('draws incarnations of 16 hex digits', () => {
    assert.match(randomIncarnation(createRng(3)), /^[0-9a-f]{16}$/);
  });
});
