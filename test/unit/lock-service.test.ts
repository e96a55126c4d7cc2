import assert from 'node:assert/strict';
import type { LockCommand } from '../../lib/locks/commands.js';
import type { ClientCommand, LockMessage } from '../../lib/locks/messages.js';
import { LockService, LockStateMachine, type LockServiceSink } from '../../lib/locks/service.js';
import type { Envelope, Owner } from '../../lib/types.js';

/** The leader's side of the lock service, driven by hand: what it proposes and answers. */

const A: Owner = { node: 'a', incarnation: '00000000000000a1' };
const B: Owner = { node: 'b', incarnation: '00000000000000b1' };
const C: Owner = { node: 'c', incarnation: '00000000000000c1' };
const LEASE_MS = 1000;
const MAX_TTL_MS = 5000;

function acquire(holder: Owner, seq: number, name: string, wait = true): ClientCommand {
  return { op: 'acquire', holder, seq, acked: seq, name, ttlMs: MAX_TTL_MS, wait };
}

function sink(): LockServiceSink & { send: Envelope<LockMessage>[]; propose: LockCommand[] } {
  return { send: [], propose: [] };
}

/** A serving leader whose table has had its epoch (no fresh-epoch wait). */
function servingLeader(options: { maxHeld?: number } = {}): {
  service: LockService;
  machine: LockStateMachine;
  apply: (commands: readonly LockCommand[]) => void;
} {
  const machine = new LockStateMachine();
  const service = new LockService(
    {
      id: 'a',
      leaseMs: LEASE_MS,
      maxTtlMs: MAX_TTL_MS,
      wallClock: () => 1_000_000,
      ...options,
    },
    machine,
  );
  let slot = 0;
  const apply = (commands: readonly LockCommand[]): void => {
    machine.apply(++slot, commands);
  };
  // The epoch, then a grant: the table is neither fresh nor lossy.
  apply([{ op: 'epoch', base: 1n << 20n }, acquire(C, 1, 'warm', false)]);
  service.leading = true;
  return { service, machine, apply };
}

function replies(s: { send: Envelope<LockMessage>[] }): string[] {
  return s.send.flatMap((e) =>
    e.message.type === 'lock.reply' ? e.message.replies.map((r) => `${e.to}:${r.type}`) : [],
  );
}

describe('LockService', () => {
  it('keeps one copy of each held request and a bounded queue while a fresh epoch waits', () => {
    const machine = new LockStateMachine();
    const service = new LockService(
      { id: 'a', leaseMs: LEASE_MS, maxTtlMs: MAX_TTL_MS, wallClock: () => 1_000_000 },
      machine,
    );
    service.leading = true;
    const first = sink();
    service.startServing(0, first);
    assert.deepEqual(
      first.propose.map((c) => c.op),
      ['epoch'],
    );
    // 150,000 requests from one holder, and each of the first 1,000 sent again 20 times.
    const out = sink();
    const many: ClientCommand[] = [];
    for (let seq = 1; seq <= 150_000; seq++) many.push(acquire(B, seq, `n${seq}`));
    for (let i = 0; i < many.length; i += 5000) {
      service.request('b', many.slice(i, i + 5000), 10, out);
    }
    for (let again = 0; again < 20; again++) service.request('b', many.slice(0, 1000), 20, out);
    assert.equal(service.held, 65_536);
    assert.equal(service.droppedHeld, 150_000 - 65_536);
    assert.equal(out.propose.length, 0);
    // Once every earlier holder has lost its lock, each held request goes to the log once.
    const later = sink();
    service.tick(MAX_TTL_MS + LEASE_MS, later);
    assert.equal(later.propose.length, 65_536);
    assert.equal(new Set(later.propose.map((c) => ('seq' in c ? c.seq : -1))).size, 65_536);
    assert.equal(service.held, 0);
  });

  it('answers a retry of an applied request from the table, without the log', () => {
    const { service, apply } = servingLeader();
    const start = sink();
    service.startServing(0, start);
    assert.deepEqual(start.propose, []);
    const out = sink();
    service.request('b', [acquire(B, 1, 'x')], 1, out);
    assert.equal(out.propose.length, 1);
    apply(out.propose);
    const answered = sink();
    service.flush(answered);
    assert.deepEqual(replies(answered), ['b:granted']);
    // The holder did not hear the answer and sends its request again, and again.
    for (let t = 200; t <= 1000; t += 200) {
      const retry = sink();
      service.request('b', [acquire(B, 1, 'x')], t, retry);
      service.flush(retry);
      assert.deepEqual(retry.propose, []);
      assert.deepEqual(replies(retry), ['b:granted']);
    }
  });

  it('proposes a request once while it is on its way through the log, and again after a lease', () => {
    const { service } = servingLeader();
    service.startServing(0, sink());
    const out = sink();
    service.request('b', [acquire(B, 1, 'x')], 1, out);
    service.request('b', [acquire(B, 1, 'x')], 100, out);
    service.request('b', [acquire(B, 1, 'x')], 900, out);
    assert.equal(out.propose.length, 1);
    // Never applied (its slot went to another value): it goes again.
    service.request('b', [acquire(B, 1, 'x')], 1 + LEASE_MS, out);
    assert.equal(out.propose.length, 2);
  });

  it('withdraws the queue places of holders it has not heard from, and keeps those that resend', () => {
    const { service, apply, machine } = servingLeader();
    service.startServing(0, sink());
    const out = sink();
    service.request('a', [acquire(A, 1, 'x')], 1, out);
    service.request('b', [acquire(B, 1, 'x')], 2, out);
    service.request('c', [acquire(C, 2, 'x')], 3, out);
    apply(out.propose);
    service.flush(sink());
    assert.equal(machine.table.view('x')?.waiters, 2);
    // c resends its queued request (as a live holder does); b has gone silent. The leader
    // looks every lease from 2 leases on: at 2,000 ms b was heard 1,998 ms ago.
    for (let t = 100; t < 3 * LEASE_MS; t += 100) {
      const tick = sink();
      service.request('c', [acquire(C, 2, 'x')], t, tick);
      service.tick(t, tick);
      service.flush(tick);
      assert.deepEqual(tick.propose, [], `nothing to propose at ${t}`);
      assert.deepEqual(replies(tick), ['c:queued'], 'answered from the table');
    }
    const late = sink();
    service.request('c', [acquire(C, 2, 'x')], 3 * LEASE_MS, late);
    service.tick(3 * LEASE_MS, late);
    service.flush(late);
    assert.deepEqual(late.propose, [{ op: 'abandon', holders: [B] }]);
    apply(late.propose);
    assert.equal(machine.table.view('x')?.waiters, 1);
    // b, alive after all, learns its request ended and may ask again.
    const retry = sink();
    service.request('b', [acquire(B, 1, 'x')], 3 * LEASE_MS + 10, retry);
    service.flush(retry);
    assert.deepEqual(replies(retry), ['b:ended']);
  });
});

describe('LockService: retiring idle holders', () => {
  it('keeps a holder that still sends, and one whose answers it has not acknowledged, far longer', () => {
    const { service, apply } = servingLeader();
    service.startServing(0, sink());
    // b takes and gives back a lock: idle, with its release's answer not yet acknowledged.
    const out = sink();
    service.request('b', [acquire(B, 1, 'x', false)], 1, out);
    apply(out.propose);
    const rel = sink();
    service.request(
      'b',
      [{ op: 'release', holder: B, seq: 2, acked: 2, name: 'x', token: (1n << 20n) + 2n }],
      2,
      rel,
    );
    apply(rel.propose);
    const retired = (from: number, to: number, resend: boolean): number | null => {
      for (let t = from; t <= to; t += 500) {
        const s = sink();
        if (resend) {
          service.request(
            'b',
            [{ op: 'release', holder: B, seq: 2, acked: 2, name: 'x', token: (1n << 20n) + 2n }],
            t,
            s,
          );
        }
        service.tick(t, s);
        if (s.propose.some((c) => c.op === 'retire' && c.holders.some((h) => h.node === 'b'))) {
          return t;
        }
      }
      return null;
    };
    // Its answer lost, b sends the release again and again: never retired (a retried release
    // applied afresh would be answered `not-held`).
    assert.equal(retired(500, 20 * MAX_TTL_MS, true), null);
    // Silent from now on, with an answer it never acknowledged: kept 16 × maxTtlMs.
    const silentFrom = 20 * MAX_TTL_MS;
    const at = retired(silentFrom + 500, silentFrom + 20 * MAX_TTL_MS, false);
    assert.ok(at !== null && at - silentFrom >= 16 * MAX_TTL_MS, `retired after ${at}`);
  });
});
