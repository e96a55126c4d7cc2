import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { LockCommand } from '../../lib/locks/commands.js';
import { LockTable } from '../../lib/locks/lock-table.js';
import type { Owner } from '../../lib/types.js';

/**
 * The table at scale: the heap taken by 100,000 held locks (measured after a full collection;
 * the figures on Node 20 are in the test names' bounds with room to spare), and one queue of
 * 100,000 waiters drained in order.
 */

const LOCKS = 100_000;
const MIB = 1024 * 1024;

/** The garbage collector, exposed for this process (mocha runs without --expose-gc). */
function collector(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed !== undefined) return exposed;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

function holders(count: number): Owner[] {
  return Array.from({ length: count }, (_, i) => ({
    node: `node-${i}`,
    incarnation: i.toString(16).padStart(16, '0'),
  }));
}

/** Heap growth, in bytes, of a table left holding LOCKS grants by `acquire`. */
function heapGrowth(acquire: (i: number) => LockCommand): { bytes: number; table: LockTable } {
  const gc = collector();
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  const table = new LockTable();
  for (let i = 0; i < LOCKS; i++) table.apply(acquire(i));
  gc();
  gc();
  return { bytes: process.memoryUsage().heapUsed - before, table };
}

describe('LockTable at scale', function () {
  this.timeout(60_000);

  it('keeps 100,000 grants of 100 holders in under 30 MiB, their acquire entries included', function () {
    const owners = holders(100);
    // No holder acks: every grant keeps its deduplication entry (the worst case).
    const { bytes, table } = heapGrowth((i) => ({
      op: 'acquire',
      holder: owners[i % 100]!,
      seq: Math.floor(i / 100) + 1,
      acked: 0,
      name: `lock-${i}`,
      ttlMs: 30_000,
      wait: false,
    }));
    assert.equal(table.stats().held, LOCKS);
    assert.equal(table.stats().entries, LOCKS);
    assert.ok(bytes < 30 * MIB, `${(bytes / MIB).toFixed(1)} MiB`);
  });

  it('keeps 100,000 grants of 100,000 holders in under 80 MiB', function () {
    const owners = holders(LOCKS);
    const { bytes, table } = heapGrowth((i) => ({
      op: 'acquire',
      holder: owners[i]!,
      seq: 1,
      acked: 0,
      name: `lock-${i}`,
      ttlMs: 30_000,
      wait: false,
    }));
    assert.equal(table.stats().sessions, LOCKS);
    assert.ok(bytes < 80 * MIB, `${(bytes / MIB).toFixed(1)} MiB`);
  });

  it('drains a queue of 100,000 waiters in FIFO order, with cancels from its middle', function () {
    const owners = holders(10);
    const table = new LockTable();
    const seqs = owners.map(() => 0);
    const send = (h: number, command: (seq: number, holder: Owner) => LockCommand) => {
      seqs[h] = (seqs[h] ?? 0) + 1;
      return table.apply(command(seqs[h], owners[h]!));
    };
    for (let i = 0; i <= LOCKS; i++) {
      send(i % 10, (seq, holder) => ({
        op: 'acquire',
        holder,
        seq,
        acked: 0,
        name: 'hot',
        ttlMs: 1000,
        wait: true,
      }));
    }
    // Every tenth waiter of holder 3 withdraws.
    let cancelled = 0;
    for (let seq = 5; seq <= seqs[3]!; seq += 10) {
      const result = send(3, (own, holder) => ({
        op: 'cancel',
        holder,
        seq: own,
        acked: 0,
        target: seq,
      }));
      if (result.reply?.reply.type === 'cancelled' && result.reply.reply.was === 'queued') {
        cancelled += 1;
      }
    }
    assert.equal(table.view('hot')?.waiters, LOCKS - cancelled);
    // Waiter i is holder i % 10's request floor(i / 10) + 1; the first one was granted at once.
    const order: string[] = [];
    for (let i = 1; i <= LOCKS; i++) {
      const seq = Math.floor(i / 10) + 1;
      if (i % 10 !== 3 || seq % 10 !== 5) order.push(`${owners[i % 10]!.node}:${seq}`);
    }
    assert.equal(order.length, LOCKS - cancelled);
    let promoted = 0;
    for (let view = table.view('hot'); view !== null; view = table.view('hot')) {
      const result = table.apply({
        op: 'expire',
        name: 'hot',
        token: view.token,
        version: view.version,
      });
      const next = result.promoted[0];
      if (next === undefined) break;
      assert.equal(`${next.holder.node}:${next.seq}`, order[promoted]);
      promoted += 1;
    }
    assert.equal(promoted, order.length);
    assert.equal(table.view('hot'), null);
    assert.equal(table.stats().waiting, 0);
  });
});
