import assert from 'node:assert/strict';
import {
  MAX_LOCK_NAME_LENGTH,
  type ApplyResult,
  type LockCommand,
  type LockReply,
} from '../../lib/locks/commands.js';
import { decodeSnapshot, encodeSnapshot, LockTable } from '../../lib/locks/lock-table.js';
import { MAX_TOKEN_BASE, type LockTableSnapshot } from '../../lib/locks/snapshot.js';
import { InvalidMessageError } from '../../lib/errors.js';
import type { Owner } from '../../lib/types.js';

/** The rules of the lock table, one at a time (lock-table-model.test.ts checks them together). */

const A: Owner = { node: 'a', incarnation: '00000000000000a1' };
const B: Owner = { node: 'b', incarnation: '00000000000000b1' };
const C: Owner = { node: 'c', incarnation: '00000000000000c1' };
/** `a` after a restart: another holder. */
const A2: Owner = { node: 'a', incarnation: '00000000000000a2' };

function acquire(
  holder: Owner,
  seq: number,
  name: string,
  options: { wait?: boolean; ttlMs?: number; acked?: number } = {},
): LockCommand {
  return {
    op: 'acquire',
    holder,
    seq,
    acked: options.acked ?? 0,
    name,
    ttlMs: options.ttlMs ?? 1000,
    wait: options.wait ?? false,
  };
}

function release(holder: Owner, seq: number, name: string, token: bigint, acked = 0): LockCommand {
  return { op: 'release', holder, seq, acked, name, token };
}

function renew(
  holder: Owner,
  seq: number,
  locks: { name: string; token: bigint }[],
  acked = 0,
): LockCommand {
  return { op: 'renew', holder, seq, acked, locks };
}

function cancel(holder: Owner, seq: number, target: number, acked = 0): LockCommand {
  return { op: 'cancel', holder, seq, acked, target };
}

function expire(name: string, token: bigint, version: number): LockCommand {
  return { op: 'expire', name, token, version };
}

function reply(result: ApplyResult): LockReply {
  assert.ok(result.reply !== null, 'expected a reply');
  return result.reply.reply;
}

/** The token of a granted reply. */
function token(result: ApplyResult): bigint {
  const r = reply(result);
  assert.equal(r.type, 'granted');
  return r.token;
}

function apply(table: LockTable, ...commands: LockCommand[]): ApplyResult[] {
  return commands.map((command) => table.apply(command));
}

describe('LockTable', function () {
  describe('apply index', function () {
    it('starts empty at index 0 with token base 0', function () {
      const table = new LockTable();
      assert.equal(table.index, 0);
      assert.equal(table.lastToken, 0n);
      assert.deepEqual([...table.grants()], []);
      assert.deepEqual([...table.sessions()], []);
      assert.deepEqual(table.stats(), { held: 0, waiting: 0, sessions: 0, entries: 0 });
    });

    it('gives every command the next index, a no-op included', function () {
      const table = new LockTable();
      const results = apply(
        table,
        expire('x', 1n, 1),
        { op: 'retire', holders: [A] },
        acquire(A, 1, 'x'),
        { op: 'epoch', base: 0n },
      );
      assert.deepEqual(
        results.map((r) => r.index),
        [1, 2, 3, 4],
      );
      assert.equal(table.index, 4);
      assert.equal(results[0]?.reply, null);
    });

    it('treats a command outside the rules as a no-op that still takes an index', function () {
      const table = new LockTable();
      const bad: unknown[] = [
        acquire(A, 1, ''),
        acquire(A, 1, 'x'.repeat(MAX_LOCK_NAME_LENGTH + 1)),
        { ...acquire(A, 1, 'x'), ttlMs: 0 },
        { ...acquire(A, 1, 'x'), ttlMs: 1.5 },
        { ...acquire(A, 1, 'x'), seq: -1 },
        { ...acquire(A, 1, 'x'), acked: Number.MAX_SAFE_INTEGER + 1 },
        acquire({ node: 'a', incarnation: 'ABCDEF0123456789' }, 1, 'x'),
        acquire({ node: '', incarnation: A.incarnation }, 1, 'x'),
        { op: 'epoch', base: MAX_TOKEN_BASE + 1n },
        { op: 'epoch', base: -1n },
        { op: 'frobnicate' },
        renew(A, 1, [{ name: '', token: 1n }]),
      ];
      for (const [i, command] of bad.entries()) {
        const result = table.apply(command as LockCommand);
        assert.deepEqual(result, {
          index: i + 1,
          reply: null,
          promoted: [],
          ended: [],
          renewed: [],
        });
      }
      assert.deepEqual(table.stats(), { held: 0, waiting: 0, sessions: 0, entries: 0 });
      assert.equal(table.lastToken, 0n);
    });
  });

  describe('acquire', function () {
    it('grants a free name with the next token and the apply index as version', function () {
      const table = new LockTable();
      table.apply(expire('nothing', 1n, 1));
      const result = table.apply(acquire(A, 1, 'x', { ttlMs: 5000 }));
      assert.deepEqual(result.reply, {
        to: A,
        reply: { type: 'granted', seq: 1, name: 'x', token: 1n, ttlMs: 5000, version: 2 },
      });
      assert.deepEqual(table.view('x'), {
        name: 'x',
        holder: A,
        token: 1n,
        ttlMs: 5000,
        version: 2,
        waiters: 0,
      });
      assert.equal(table.lastToken, 1n);
    });

    it('answers busy for a held name without wait, even to its holder (not reentrant)', function () {
      const table = new LockTable();
      table.apply(acquire(A, 1, 'x'));
      assert.deepEqual(reply(table.apply(acquire(B, 1, 'x'))), { type: 'busy', seq: 1, name: 'x' });
      assert.deepEqual(reply(table.apply(acquire(A, 2, 'x'))), { type: 'busy', seq: 2, name: 'x' });
      assert.equal(table.view('x')?.token, 1n);
      assert.equal(table.lastToken, 1n);
    });

    it('queues behind the holder with wait, the holder itself included', function () {
      const table = new LockTable();
      table.apply(acquire(A, 1, 'x'));
      assert.deepEqual(reply(table.apply(acquire(B, 1, 'x', { wait: true }))), {
        type: 'queued',
        seq: 1,
        name: 'x',
      });
      assert.equal(reply(table.apply(acquire(A, 2, 'x', { wait: true }))).type, 'queued');
      assert.equal(table.view('x')?.waiters, 2);
      assert.equal(table.stats().waiting, 2);
    });

    it('draws tokens from one counter for every name, strictly increasing', function () {
      const table = new LockTable();
      const tokens = [
        token(table.apply(acquire(A, 1, 'x'))),
        token(table.apply(acquire(B, 1, 'y'))),
        token(table.apply(acquire(A, 2, 'z'))),
      ];
      table.apply(release(A, 3, 'x', 1n));
      tokens.push(token(table.apply(acquire(C, 1, 'x'))));
      assert.deepEqual(tokens, [1n, 2n, 3n, 4n]);
    });
  });

  describe('release and promotion', function () {
    it('ends the grant of the right token and holder, and promotes waiters in FIFO order', function () {
      const table = new LockTable();
      const t1 = token(table.apply(acquire(A, 1, 'x')));
      table.apply(acquire(B, 1, 'x', { wait: true, ttlMs: 2000 }));
      table.apply(acquire(C, 1, 'x', { wait: true, ttlMs: 3000 }));
      const first = table.apply(release(A, 2, 'x', t1));
      assert.deepEqual(reply(first), { type: 'released', seq: 2, name: 'x' });
      assert.deepEqual(first.ended, [
        { name: 'x', holder: A, seq: 1, token: t1, ttlMs: 1000, version: 1 },
      ]);
      assert.deepEqual(first.promoted, [
        { name: 'x', holder: B, seq: 1, token: 2n, ttlMs: 2000, version: first.index },
      ]);
      const second = table.apply(release(B, 2, 'x', 2n));
      assert.deepEqual(second.promoted, [
        { name: 'x', holder: C, seq: 1, token: 3n, ttlMs: 3000, version: second.index },
      ]);
      const last = table.apply(release(C, 2, 'x', 3n));
      assert.deepEqual(last.promoted, []);
      assert.equal(table.view('x'), null);
    });

    it('answers not-held for a wrong token or another holder, and changes nothing', function () {
      const table = new LockTable();
      const t1 = token(table.apply(acquire(A, 1, 'x')));
      assert.deepEqual(reply(table.apply(release(A, 2, 'x', t1 + 1n))), {
        type: 'not-held',
        seq: 2,
        name: 'x',
      });
      assert.equal(reply(table.apply(release(B, 1, 'x', t1))).type, 'not-held');
      assert.equal(reply(table.apply(release(A2, 1, 'x', t1))).type, 'not-held');
      assert.equal(reply(table.apply(release(A, 3, 'y', t1))).type, 'not-held');
      assert.equal(table.view('x')?.token, t1);
    });

    it('keeps the released name in its place among the grants when promoting', function () {
      const table = new LockTable();
      table.apply(acquire(A, 1, 'x'));
      table.apply(acquire(A, 2, 'y'));
      table.apply(acquire(B, 1, 'x', { wait: true }));
      table.apply(release(A, 3, 'x', 1n));
      assert.deepEqual(
        [...table.grants()].map((g) => [g.name, g.holder.node]),
        [
          ['x', 'b'],
          ['y', 'a'],
        ],
      );
    });
  });

  describe('renew', function () {
    it('moves the version of each lock held with that token, and null for the others', function () {
      const table = new LockTable();
      const x = token(table.apply(acquire(A, 1, 'x')));
      const y = token(table.apply(acquire(B, 1, 'y')));
      const result = table.apply(
        renew(A, 2, [
          { name: 'x', token: x },
          { name: 'y', token: y },
          { name: 'x', token: x + 10n },
          { name: 'free', token: 1n },
          { name: 'x', token: x },
        ]),
      );
      assert.deepEqual(reply(result), {
        type: 'renewed',
        seq: 2,
        versions: [result.index, null, null, null, result.index],
      });
      assert.deepEqual(result.renewed, [
        { name: 'x', holder: A, seq: 1, token: x, ttlMs: 1000, version: result.index },
      ]);
      assert.equal(table.view('x')?.version, result.index);
      assert.equal(table.view('y')?.version, 2);
    });
  });

  describe('expire', function () {
    it('ends a grant whose token and version match, and promotes the next waiter', function () {
      const table = new LockTable();
      const x = token(table.apply(acquire(A, 1, 'x')));
      table.apply(acquire(B, 1, 'x', { wait: true }));
      const result = table.apply(expire('x', x, 1));
      assert.equal(result.reply, null);
      assert.equal(result.ended[0]?.token, x);
      assert.equal(result.promoted[0]?.holder, table.view('x')?.holder);
      assert.deepEqual(table.view('x')?.holder, B);
    });

    it('is a no-op once a renew moved the version (the renew won the race)', function () {
      const table = new LockTable();
      const x = token(table.apply(acquire(A, 1, 'x')));
      table.apply(renew(A, 2, [{ name: 'x', token: x }]));
      const result = table.apply(expire('x', x, 1));
      assert.deepEqual(result.ended, []);
      assert.equal(table.view('x')?.version, 2);
      assert.equal(table.apply(expire('x', x, 2)).ended.length, 1);
    });

    it('is a no-op for another token of the name', function () {
      const table = new LockTable();
      const x = token(table.apply(acquire(A, 1, 'x')));
      table.apply(release(A, 2, 'x', x));
      table.apply(acquire(B, 1, 'x'));
      assert.deepEqual(table.apply(expire('x', x, 1)).ended, []);
      assert.deepEqual(table.view('x')?.holder, B);
    });
  });

  describe('deduplication', function () {
    it('answers a retried acquire granted, with the current version, while its grant is held', function () {
      const table = new LockTable();
      const first = table.apply(acquire(A, 1, 'x', { ttlMs: 700 }));
      table.apply(renew(A, 2, [{ name: 'x', token: 1n }]));
      const retry = table.apply(acquire(A, 1, 'x', { ttlMs: 700 }));
      assert.deepEqual(reply(retry), { ...reply(first), version: 2 });
      assert.deepEqual(retry.promoted, []);
      assert.equal(table.lastToken, 1n);
      assert.equal(table.index, 3);
    });

    it('answers a retried acquire queued while it waits, then granted once promoted', function () {
      const table = new LockTable();
      table.apply(acquire(A, 1, 'x'));
      table.apply(acquire(B, 1, 'x', { wait: true }));
      assert.equal(reply(table.apply(acquire(B, 1, 'x', { wait: true }))).type, 'queued');
      assert.equal(table.view('x')?.waiters, 1);
      table.apply(release(A, 2, 'x', 1n));
      assert.deepEqual(reply(table.apply(acquire(B, 1, 'x', { wait: true }))), {
        type: 'granted',
        seq: 1,
        name: 'x',
        token: 2n,
        ttlMs: 1000,
        version: 4,
      });
    });

    it('answers a retried acquire busy, and ended once its grant ended', function () {
      const table = new LockTable();
      table.apply(acquire(A, 1, 'x'));
      table.apply(acquire(B, 1, 'x'));
      table.apply(release(A, 2, 'x', 1n));
      // The name is free now, but a retry is not a new request.
      assert.deepEqual(reply(table.apply(acquire(B, 1, 'x'))), { type: 'busy', seq: 1, name: 'x' });
      assert.deepEqual(reply(table.apply(acquire(A, 1, 'x'))), {
        type: 'ended',
        seq: 1,
        name: 'x',
      });
      assert.equal(table.view('x'), null);
    });

    it('answers a retried release, renew or cancel as the first time, changing nothing', function () {
      const table = new LockTable();
      table.apply(acquire(A, 1, 'x'));
      table.apply(acquire(A, 2, 'y', { wait: false }));
      const released = reply(table.apply(release(A, 3, 'x', 1n)));
      const renewed = reply(table.apply(renew(A, 4, [{ name: 'y', token: 2n }])));
      const cancelled = reply(table.apply(cancel(A, 5, 2)));
      table.apply(acquire(B, 1, 'x'));
      const before = table.snapshot();
      assert.deepEqual(reply(table.apply(release(A, 3, 'x', 1n))), released);
      assert.deepEqual(reply(table.apply(renew(A, 4, [{ name: 'y', token: 2n }]))), renewed);
      assert.deepEqual(reply(table.apply(cancel(A, 5, 2))), cancelled);
      assert.deepEqual({ ...table.snapshot(), index: before.index }, before);
    });

    it('answers stale below acked and changes nothing else, even for a new request', function () {
      const table = new LockTable();
      table.apply(acquire(A, 5, 'x', { acked: 5 }));
      const result = table.apply(acquire(A, 4, 'y'));
      assert.deepEqual(result.reply, { to: A, reply: { type: 'stale', seq: 4 } });
      assert.equal(table.view('y'), null);
      // A command's own acked counts before its seq is checked.
      assert.equal(reply(table.apply(acquire(A, 6, 'z', { acked: 7 }))).type, 'stale');
      assert.equal(table.view('z'), null);
    });

    it('forgets entries below acked but keeps their grants and queue places', function () {
      const table = new LockTable();
      table.apply(acquire(A, 1, 'x'));
      table.apply(acquire(B, 1, 'x', { wait: true }));
      table.apply(acquire(B, 2, 'y'));
      assert.equal(table.stats().entries, 3);
      table.apply(renew(B, 3, [], 3));
      assert.equal(table.stats().entries, 2); // A's acquire and B's renew
      assert.equal(table.view('x')?.waiters, 1);
      assert.equal(table.view('y')?.holder.node, 'b');
      const promoted = table.apply(release(A, 2, 'x', 1n)).promoted;
      assert.equal(promoted[0]?.seq, 1);
      assert.deepEqual(promoted[0].holder, B);
      // acked only moves up.
      table.apply(renew(B, 4, [], 1));
      assert.equal(reply(table.apply(acquire(B, 2, 'y'))).type, 'stale');
    });

    it('forgets entries below a far jump of acked', function () {
      const table = new LockTable();
      for (let seq = 1; seq <= 5; seq++) table.apply(acquire(A, seq, `n${seq}`));
      table.apply(acquire(A, 1e15, 'last', { acked: 1e15 }));
      assert.equal(table.stats().entries, 1);
      assert.equal(table.stats().held, 6);
    });
  });

  describe('cancel', function () {
    it('takes a queued request out of the queue, and the request reads ended', function () {
      const table = new LockTable();
      table.apply(acquire(A, 1, 'x'));
      table.apply(acquire(B, 1, 'x', { wait: true }));
      table.apply(acquire(C, 1, 'x', { wait: true }));
      assert.deepEqual(reply(table.apply(cancel(B, 2, 1))), {
        type: 'cancelled',
        seq: 2,
        target: 1,
        was: 'queued',
      });
      assert.equal(table.view('x')?.waiters, 1);
      assert.equal(reply(table.apply(acquire(B, 1, 'x', { wait: true }))).type, 'ended');
      assert.deepEqual(table.apply(release(A, 2, 'x', 1n)).promoted[0]?.holder, C);
    });

    it('releases a request that won its grant and promotes the next waiter', function () {
      const table = new LockTable();
      table.apply(acquire(A, 1, 'x'));
      table.apply(acquire(B, 1, 'x', { wait: true }));
      const result = table.apply(cancel(A, 2, 1));
      assert.equal((reply(result) as { was: string }).was, 'granted');
      assert.equal(result.ended[0]?.token, 1n);
      assert.deepEqual(result.promoted[0]?.holder, B);
      assert.equal(reply(table.apply(acquire(A, 1, 'x'))).type, 'ended');
    });

    it('answers unknown for a request that holds and waits for nothing', function () {
      const table = new LockTable();
      table.apply(acquire(A, 1, 'x'));
      table.apply(acquire(B, 1, 'x'));
      assert.equal((reply(table.apply(cancel(B, 2, 1))) as { was: string }).was, 'unknown');
      assert.equal((reply(table.apply(cancel(B, 3, 99))) as { was: string }).was, 'unknown');
      assert.equal(reply(table.apply(acquire(B, 1, 'x'))).type, 'ended');
    });

    it('ends an acquire that arrives after its cancel, without granting', function () {
      const table = new LockTable();
      table.apply(cancel(A, 2, 1));
      assert.deepEqual(reply(table.apply(acquire(A, 1, 'x'))), {
        type: 'ended',
        seq: 1,
        name: 'x',
      });
      assert.equal(table.view('x'), null);
      assert.equal(table.lastToken, 0n);
    });

    it('answers unknown for a target below acked, whose grant stays until released', function () {
      const table = new LockTable();
      table.apply(acquire(A, 1, 'x'));
      const result = table.apply(cancel(A, 2, 1, 2));
      assert.equal((reply(result) as { was: string }).was, 'unknown');
      assert.equal(table.view('x')?.holder, result.reply?.to);
      assert.equal(reply(table.apply(release(A, 3, 'x', 1n))).type, 'released');
    });
  });

  describe('sessions', function () {
    it('retires only sessions that hold nothing and wait for nothing', function () {
      const table = new LockTable();
      table.apply(acquire(A, 1, 'x'));
      table.apply(acquire(B, 1, 'x', { wait: true }));
      table.apply(renew(C, 1, [], 1));
      table.apply(acquire(A2, 1, 'y'));
      table.apply(release(A2, 2, 'y', 2n));
      assert.equal(table.isIdle(A), false);
      assert.equal(table.isIdle(B), false);
      assert.equal(table.isIdle(C), true);
      assert.equal(table.isIdle(A2), true);
      table.apply({
        op: 'retire',
        holders: [A, B, C, A2, { node: 'z', incarnation: A.incarnation }],
      });
      assert.deepEqual([...table.sessions()], [A, B]);
      assert.equal(table.stats().entries, 2);
      // A retired holder starts over: its old seqs are new requests.
      assert.equal(reply(table.apply(acquire(A2, 1, 'y'))).type, 'granted');
    });

    it('lists holders in order of first sight, one session per incarnation', function () {
      const table = new LockTable();
      apply(table, renew(B, 1, []), renew(A, 1, []), renew(A2, 1, []), renew(B, 2, []));
      assert.deepEqual([...table.sessions()], [B, A, A2]);
      assert.deepEqual(table.stats(), { held: 0, waiting: 0, sessions: 3, entries: 4 });
    });
  });

  describe('epoch', function () {
    it('ends every grant and waiter of the earlier epoch', function () {
      const table = new LockTable();
      apply(table, acquire(A, 1, 'x'), acquire(B, 1, 'x', { wait: true }), acquire(C, 1, 'y'));
      const result = table.apply({ op: 'epoch', base: 1000n });
      assert.deepEqual(
        result.ended.map((g) => g.token),
        [1n, 2n],
      );
      assert.deepEqual(table.stats(), { held: 0, waiting: 0, sessions: 3, entries: 3 });
      assert.equal(reply(table.apply(acquire(A, 1, 'x'))).type, 'ended');
      assert.equal(reply(table.apply(acquire(B, 1, 'x', { wait: true }))).type, 'ended');
      assert.equal(token(table.apply(acquire(B, 2, 'x'))), 1001n);
    });

    it('raises the token base above every earlier token, and never lowers it', function () {
      const table = new LockTable();
      table.apply(acquire(A, 1, 'x'));
      table.apply({ op: 'epoch', base: 1000n });
      assert.equal(table.lastToken, 1000n);
      assert.equal(token(table.apply(acquire(A, 2, 'y'))), 1001n);
      table.apply({ op: 'epoch', base: 1001n });
      table.apply({ op: 'epoch', base: 5n });
      assert.equal(table.lastToken, 1001n);
      assert.equal(token(table.apply(acquire(A, 3, 'z'))), 1002n);
      table.apply({ op: 'epoch', base: MAX_TOKEN_BASE });
      assert.equal(token(table.apply(acquire(A, 4, 'w'))), MAX_TOKEN_BASE + 1n);
    });
  });

  describe('snapshot', function () {
    /** A table with every kind of state: grants, queues, entries of each op, a tombstone. */
    function busyTable(): LockTable {
      const table = new LockTable();
      apply(
        table,
        { op: 'epoch', base: 50n },
        acquire(A, 1, 'x', { ttlMs: 100 }),
        acquire(B, 1, 'x', { wait: true, ttlMs: 200 }),
        acquire(C, 1, 'x', { wait: true, ttlMs: 300 }),
        acquire(A, 2, 'x', { wait: true }),
        acquire(B, 2, '__proto__'),
        acquire(C, 2, 'y'),
        acquire(C, 3, 'y'),
        renew(B, 3, [
          { name: '__proto__', token: 2n },
          { name: 'x', token: 2n },
        ]),
        release(C, 4, 'y', 3n),
        cancel(C, 5, 9),
        cancel(B, 4, 1),
        acquire({ node: '__proto__', incarnation: 'ffffffffffffffff' }, 7, 'z', { acked: 7 }),
        acquire(A2, 1, 'w', { acked: 0 }),
        renew(A2, 2, [], 2),
      );
      return table;
    }

    it('round-trips through JSON and answers every later command the same way', function () {
      const table = busyTable();
      const text = encodeSnapshot(table);
      const copy = decodeSnapshot(text);
      assert.deepEqual(copy.snapshot(), table.snapshot());
      assert.equal(encodeSnapshot(copy), text);
      assert.equal(copy.index, table.index);
      assert.equal(copy.lastToken, table.lastToken);
      assert.deepEqual([...copy.sessions()], [...table.sessions()]);
      assert.deepEqual([...copy.grants()], [...table.grants()]);
      assert.deepEqual(copy.stats(), table.stats());
      const later: LockCommand[] = [
        acquire(C, 1, 'x', { wait: true }),
        acquire(C, 9, 'x', { wait: true }),
        acquire(B, 2, '__proto__'),
        acquire(C, 3, 'y'),
        release(C, 4, 'y', 3n),
        cancel(C, 5, 9),
        release(A, 3, 'x', 1n),
        expire('x', 4n, 2),
        cancel(A, 4, 2),
        renew(B, 3, []),
        acquire(A, 5, 'w'),
        { op: 'retire', holders: [A, B, C, A2] },
      ];
      for (const command of later) assert.deepEqual(copy.apply(command), table.apply(command));
      assert.deepEqual(copy.snapshot(), table.snapshot());
    });

    it('writes bigints as decimal strings and holds plain JSON data', function () {
      const snapshot = busyTable().snapshot();
      assert.equal(typeof snapshot.base, 'string');
      assert.deepEqual(JSON.parse(JSON.stringify(snapshot)), snapshot);
      assert.equal(snapshot.queues[0]?.waiters.length, 2);
      assert.deepEqual(
        snapshot.grants.map((g) => g.name),
        ['x', '__proto__', 'y', 'z', 'w'],
      );
    });

    describe('restore refuses', function () {
      const base = busyTable().snapshot();
      type Edit = (s: Record<string, unknown> & LockTableSnapshot) => unknown;
      const clone = (): Record<string, unknown> & LockTableSnapshot =>
        JSON.parse(JSON.stringify(base)) as Record<string, unknown> & LockTableSnapshot;
      const cases: [string, Edit][] = [
        ['a non-object', () => 'snapshot'],
        ['an unknown format', (s) => ({ ...s, format: 2 })],
        ['an unknown key', (s) => ({ ...s, extra: 1 })],
        [
          'a __proto__ key',
          (s) => JSON.parse(JSON.stringify(s).replace('{', '{"__proto__":{"index":1},')) as unknown,
        ],
        ['a missing key', ({ queues: _q, ...s }) => s],
        ['a negative index', (s) => ({ ...s, index: -1 })],
        ['a counter above the index', (s) => ({ ...s, counter: String(s.index + 1) })],
        ['a base above the bound', (s) => ({ ...s, base: (MAX_TOKEN_BASE + 1n).toString() })],
        ['a base with a leading zero', (s) => ({ ...s, base: '050' })],
        ['a bigint as a number', (s) => ({ ...s, base: 50 })],
        ['an upper-case incarnation', (s) => edit(s, 'sessions.0.incarnation', 'A'.repeat(16))],
        ['a duplicate session', (s) => ({ ...s, sessions: [...s.sessions, s.sessions[0]] })],
        ['an entry below acked', (s) => edit(s, 'sessions.2.acked', 3)],
        ['a duplicate entry seq', (s) => edit(s, 'sessions.1.entries.1.seq', 1)],
        ['a token above the last', (s) => edit(s, 'grants.0.token', '999')],
        ['a token out of 64 bits', (s) => edit(s, 'grants.0.token', '9223372036854775808')],
        ['a duplicate token', (s) => edit(s, 'grants.1.token', s.grants[0]?.token)],
        ['a duplicate grant', (s) => ({ ...s, grants: [...s.grants, s.grants[0]] })],
        ['a holder out of range', (s) => edit(s, 'grants.0.holder', 99)],
        ['a ttl of zero', (s) => edit(s, 'grants.0.ttlMs', 0)],
        ['a version above the index', (s) => edit(s, 'grants.0.version', s.index + 1)],
        ['a name too long', (s) => edit(s, 'grants.0.name', 'x'.repeat(257))],
        ['a queue of a free name', (s) => edit(s, 'queues.0.name', 'free')],
        ['an empty queue', (s) => edit(s, 'queues.0.waiters', [])],
        ['a waiter that also holds', (s) => edit(s, 'queues.0.waiters.0.holder', 0)],
        [
          'a grant whose entry reads queued',
          (s) => edit(s, 'sessions.0.entries.0.state', 'queued'),
        ],
        [
          'an entry granted without a grant',
          (s) => edit(s, 'sessions.2.entries.2.state', 'granted'),
        ],
        ['a place without its entry', (s) => edit(s, 'sessions.0.entries', [])],
        ['an unknown entry op', (s) => edit(s, 'sessions.0.entries.0.op', 'steal')],
        ['a nameless acquire that did not end', (s) => edit(s, 'sessions.1.entries.1.name', null)],
        [
          'a hole in an array',
          (s) => {
            const queues: unknown[] = [...s.queues];
            queues.length += 1;
            return { ...s, queues };
          },
        ],
        ['an array for an object', (s) => ({ ...s, grants: [[]] })],
        ['a non-integer seq', (s) => edit(s, 'grants.0.seq', 1.5)],
      ];
      for (const [what, change] of cases) {
        it(`a snapshot with ${what}`, function () {
          assert.throws(
            () => LockTable.restore(change(clone())),
            (error: unknown) => error instanceof InvalidMessageError && error.message.length < 200,
          );
        });
      }

      it('nothing it was given by a table (the cases above edit a valid snapshot)', function () {
        assert.doesNotThrow(() => LockTable.restore(clone()));
      });

      it('text that is not JSON', function () {
        assert.throws(() => decodeSnapshot('{"format":1'), InvalidMessageError);
        assert.throws(() => decodeSnapshot(undefined as unknown as string), InvalidMessageError);
      });
    });
  });
});

/** Sets the value at a dotted path (array indices as numbers) of a parsed snapshot. */
function edit(root: unknown, path: string, value: unknown): unknown {
  const keys = path.split('.');
  let node = root as Record<string, unknown>;
  for (const key of keys.slice(0, -1)) node = node[key] as Record<string, unknown>;
  const last = keys.at(-1) ?? '';
  assert.ok(Object.hasOwn(node, last), `no ${path} in the snapshot`);
  node[last] = value;
  return root;
}
