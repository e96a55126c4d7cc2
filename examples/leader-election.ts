/**
 * Leader election in a few lines: three nodes in one process, on an in-memory network. The
 * leader does a little periodic work; the others follow; then every node stops gracefully.
 *
 *   npm run example -- leader-election
 *
 * In an application each node runs in its own replica and imports from the package:
 * `import { createNode } from 'synod'`, `import { MemoryNetwork } from 'synod/adapters/memory'`.
 */
import { MemoryNetwork } from '../adapters/memory/index.js';
import { createNode } from '../lib/index.js';

const ids = ['a', 'b', 'c'];
const network = new MemoryNetwork({ delayMs: [1, 3] });

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves after `ms`, or as soon as `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

const nodes = ids.map((id) => {
  const node = createNode({ id, peers: ids, transport: network.transport(id, ids), leaseMs: 500 });

  // Runs each time this node becomes leader. The returned promise is the leadership work: a
  // graceful stop() waits for it before handing leadership on.
  node.onLeader(async ({ term, signal, stillLeader }) => {
    console.log(`${id} leads (term ${term})`);
    let runs = 0;
    while (!signal.aborted) {
      // Ask right before the side effect, in the same synchronous turn: the lease may have
      // run out while this work was waiting.
      if (stillLeader()) console.log(`${id} does its periodic job (#${++runs}, term ${term})`);
      await sleep(300, signal);
    }
    console.log(`${id} stops leading (term ${term})`);
  });

  node.onFollower(({ leaderId, term }) => {
    console.log(
      leaderId === null ? `${id} knows no leader` : `${id} follows ${leaderId} (term ${term})`,
    );
  });
  return node;
});

await Promise.all(nodes.map((node) => node.start()));
// A node votes for nothing during its first lease period: the first leader comes after 500 ms.
await delay(2000);

// A graceful stop of the leader ends its work, then hands the lease on: a successor leads
// within a few milliseconds instead of a lease period.
const leader = nodes.find((node) => node.isLeader);
if (leader !== undefined) {
  console.log(`stopping the leader, ${leader.id}`);
  await leader.stop();
}
await delay(700);
console.log('stopping the others');
await Promise.all(nodes.map((node) => node.stop()));
console.log('all nodes stopped');
