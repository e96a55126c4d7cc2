/**
 * Why a lock needs a fencing token. Three nodes on an in-memory network take turns writing to a
 * store guarded by the lock `invoices`. Node `a` takes the lock and writes; then it is cut off
 * (as a process paused by a long GC or a SIGSTOP would be: it hears nothing and renews nothing).
 * Its lock expires, `b` takes it with a larger token and writes. When `a` comes back it still
 * holds the write it had prepared: the store refuses it, because its token is older than the
 * last one it accepted.
 *
 *   npm run example -- fencing
 *
 * In an application: `import { createNode, FencingGuard } from 'synod'`.
 */
import { MemoryNetwork } from '../adapters/memory/index.js';
import { createNode, FencingGuard, type Lock } from '../lib/index.js';

const ids = ['a', 'b', 'c'];
const network = new MemoryNetwork({ delayMs: [1, 3] });

/** The storage server: it keeps the largest token it accepted and refuses older ones. */
class InvoiceStore {
  readonly #guard = new FencingGuard();
  readonly rows: string[] = [];

  write(row: string, token: bigint): boolean {
    // In a database: UPDATE … SET token = $token WHERE token <= $token, in one statement.
    if (!this.#guard.admit(token)) return false;
    this.rows.push(row);
    return true;
  }
}

const store = new InvoiceStore();
// maxTtlMs bounds every lock's TTL; a new cluster waits it out before its first grant.
const nodes = ids.map((id) =>
  createNode({
    id,
    peers: ids,
    transport: network.transport(id, ids),
    leaseMs: 500,
    maxTtlMs: 2000,
  }),
);
const [a, b] = nodes;
if (a === undefined || b === undefined) throw new Error('three nodes');
await Promise.all(nodes.map((node) => node.start()));

const first: Lock = await a.acquireLock('invoices', { ttlMs: 1000 });
console.log(`a holds invoices with token ${first.token}`);
first.assertValid();
console.log(`a writes: ${store.write('invoice 1 (from a)', first.token) ? 'accepted' : 'refused'}`);

// a is cut off from the others, as if its process were paused: no renewal gets through.
network.isolate('a');
console.log('a is cut off (as if paused) while it holds the lock');

// b asks for the lock: it is granted once a's TTL has run out.
const second = await b.acquireLock('invoices', { ttlMs: 1000, timeoutMs: 10_000 });
console.log(`b holds invoices with token ${second.token} (larger: ${second.token > first.token})`);
second.assertValid();
console.log(
  `b writes: ${store.write('invoice 2 (from b)', second.token) ? 'accepted' : 'refused'}`,
);

// a comes back and sends the write it prepared before the pause. Its lock told it so much (it
// is no longer valid), but a process that was paused past its check cannot know: the store can.
network.heal();
console.log(`a's lock is valid: ${first.valid} (${String(first.signal.reason)})`);
const late = store.write('invoice 3 (late, from a)', first.token);
console.log(`a's late write with token ${first.token}: ${late ? 'accepted' : 'refused'}`);

await second.release();
await Promise.all(nodes.map((node) => node.stop()));
console.log(`store rows: ${store.rows.join('; ')}`);
if (late || store.rows.length !== 2) {
  process.exitCode = 1;
  console.log('the stale write was not refused');
} else {
  console.log('the stale write was refused');
}
