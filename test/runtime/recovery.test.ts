import assert from 'node:assert/strict';
import { MemoryNetwork } from '../../adapters/memory/index.js';
import { createNode, type SynodNode } from '../../lib/index.js';
import { createRng } from '../../lib/random.js';
import { VirtualClock } from '../../lib/testing/virtual-clock.js';

const IDS = ['a', 'b', 'c'];
const L = 1000;

/**
 * A node that starts without storage votes only once enough nodes told it the highest round they
 * have seen (docs/design.md, Restarts). Three nodes start, c a little after the others; the first
 * leader is stopped at once, while c is still in its restart silence. Its successor needs c's
 * vote, and c needs an answer from the stopping leader: that leader answers while it waits for
 * its successor's election, so c votes and the successor is elected.
 */
describe('recovery of the rounds seen, beside a graceful stop', () => {
  it('a stopping leader answers a recovering node, so its successor can be elected', async () => {
    for (let seed = 1; seed <= 5; seed++) {
      const clock = new VirtualClock();
      const network = new MemoryNetwork({ scheduler: clock, delayMs: [1, 2] });
      const nodes = new Map<string, SynodNode>();
      for (const [i, id] of IDS.entries()) {
        nodes.set(
          id,
          createNode({
            id,
            peers: IDS,
            transport: network.transport(id, IDS),
            leaseMs: L,
            clock,
            scheduler: clock,
            rng: createRng(seed * 10 + i),
          }),
        );
      }
      const [a, b, c] = IDS.map((id) => nodes.get(id)) as [SynodNode, SynodNode, SynodNode];
      await a.start();
      await b.start();
      await clock.advance(L / 10);
      await c.start();
      let first: SynodNode | undefined;
      for (let t = 0; t < 3 * L && first === undefined; t++) {
        await clock.advance(1);
        first = [a, b].find((n) => n.isLeader);
      }
      assert.ok(first !== undefined, `seed ${seed}: a first leader`);
      assert.equal(c.isLeader, false);
      const stopping = first.stop();
      let next: SynodNode | undefined;
      for (let t = 0; t < 3 * L && next === undefined; t++) {
        await clock.advance(1);
        next = [a, b, c].find((n) => n !== first && n.isLeader);
      }
      assert.ok(next !== undefined, `seed ${seed}: a successor while c was recovering`);
      await clock.advance(L / 2);
      await stopping;
      const rest = [a, b, c].filter((n) => n !== first).map((n) => n.stop());
      await clock.advance(2 * L);
      await Promise.all(rest);
    }
  });
});
