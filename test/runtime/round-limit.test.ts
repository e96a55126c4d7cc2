import assert from 'node:assert/strict';
import { MemoryNetwork } from '../../adapters/memory/index.js';
import { encodeFrame } from '../../lib/codec/messages.js';
import { DEFAULTS } from '../../lib/index.js';
import { createNode, HALT, type SynodNode } from '../../lib/node/node.js';
import { agreedSettings } from '../../lib/options.js';
import { createRng } from '../../lib/random.js';
import { VirtualClock } from '../../lib/testing/virtual-clock.js';
import { answerRecovery, captureLogger } from './helpers.js';

const IDS = ['a', 'b', 'c', 'd', 'e'];
const LEASE_MS = 200;
const INC_E = '0123456789abcdef';

/**
 * One authenticated frame once took a node out of elections: a Prepare naming round 2^52 was
 * promised, the node's own next ballot (2^52 + 1) was refused by every peer's decoder, and it
 * could vote for no one else either. Five voters, of which `e` is only a transport the test
 * speaks through (so it never votes): once the leader dies, the three left must all vote to
 * elect, so every attacked node's vote is needed.
 */
describe('a frame naming a round at the wire cap', () => {
  it('is refused: the node still votes and leads, and the majority left elects', async () => {
    const clock = new VirtualClock();
    const network = new MemoryNetwork({ scheduler: clock, delayMs: [1, 2] });
    const nodes = new Map<string, SynodNode>();
    IDS.slice(0, 4).forEach((id, i) => {
      nodes.set(
        id,
        createNode({
          id,
          peers: IDS,
          transport: network.transport(id, IDS),
          leaseMs: LEASE_MS,
          clock,
          scheduler: clock,
          rng: createRng(11 + i),
          logger: captureLogger(),
        }),
      );
    });
    const e = network.transport('e', IDS);
    // e answers the recovery question as a node with its memory would, and nothing else.
    answerRecovery(e, 'e', INC_E);
    await e.start(agreedSettings({ ...DEFAULTS, leaseMs: LEASE_MS }));
    for (const node of nodes.values()) await node.start();
    const leader = async (): Promise<SynodNode> => {
      for (let i = 0; i < 200; i++) {
        await clock.advance(10);
        const found = [...nodes.values()].filter((n) => n.state === 'running' && n.isLeader);
        if (found.length === 1 && found[0] !== undefined) return found[0];
      }
      throw new Error('no leader within 2 s');
    };
    const first = await leader();

    // Exactly the frame that was found: an authenticated Prepare for round 2^52, to every node.
    const ballot = { round: 2 ** 52, node: 'e', incarnation: INC_E };
    for (const to of nodes.keys()) {
      e.send(
        to,
        encodeFrame({
          v: 1,
          cluster: 'synod',
          from: 'e',
          to,
          inc: INC_E,
          msg: { type: 'lease.prepare', ballot },
        }),
      );
    }
    await clock.advance(10);
    for (const node of nodes.values()) {
      assert.equal(node.stats().invalidFrames['round-limit'], 1, `${node.id} refused it`);
    }
    // The leader dies: with e taking no part, the three left must all vote to elect.
    first[HALT]();
    const next = await leader();
    assert.ok(next !== first);
    assert.ok((next.term ?? 0) < 2 ** 48, 'terms stay far below the cap');
    const stopping = [...nodes.values()].map((node) => node.stop());
    await clock.advance(10 * LEASE_MS);
    await Promise.all(stopping);
  });
});
