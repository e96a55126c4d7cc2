import assert from 'node:assert/strict';
import { majority, Quorum } from '../../lib/paxos/quorum.js';

describe('quorums', () => {
  it('needs more than half of the voters', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map(majority), [1, 2, 2, 3, 3, 4, 4]);
  });

  it('makes every two majorities of the same voters intersect', () => {
    for (let n = 1; n <= 7; n++) {
      const need = majority(n);
      const sets: number[] = [];
      for (let mask = 0; mask < 1 << n; mask++) {
        let size = 0;
        for (let i = 0; i < n; i++) if (mask & (1 << i)) size++;
        if (size >= need) sets.push(mask);
      }
      for (const x of sets) for (const y of sets) assert.notEqual(x & y, 0, `n=${n}`);
    }
  });

  it('is reached once a majority of distinct voters replied', () => {
    const q = new Quorum(5);
    q.add('a');
    q.add('b');
    assert.equal(q.reached, false);
    q.add('c');
    assert.equal(q.reached, true);
    assert.deepEqual(q.voters().sort(), ['a', 'b', 'c']);
  });

  it('never counts a duplicate reply twice', () => {
    const q = new Quorum(3);
    assert.equal(q.add('a'), true);
    assert.equal(q.add('a'), false);
    assert.equal(q.size, 1);
    assert.equal(q.reached, false);
    assert.equal(q.has('a'), true);
    assert.equal(q.has('b'), false);
  });

  it('lets a single voter decide alone', () => {
    const q = new Quorum(1);
    q.add('a');
    assert.equal(q.reached, true);
  });
});
