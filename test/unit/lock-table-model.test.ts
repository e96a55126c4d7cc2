import assert from 'node:assert/strict';
import fc from 'fast-check';
import type {
  ApplyResult,
  Grant,
  LockCommand,
  LockReply,
  LockTableStats,
  LockView,
} from '../../lib/locks/commands.js';
import { InvalidMessageError } from '../../lib/errors.js';
import { decodeSnapshot, encodeSnapshot, LockTable } from '../../lib/locks/lock-table.js';
import type { LockTableSnapshot } from '../../lib/locks/snapshot.js';
import type { Owner } from '../../lib/types.js';

/**
 * The lock table against a reference model: random command sequences (few names, few holders,
 * retries of earlier requests, acked moving up, down and far ahead, expires with right and wrong
 * versions, cancels of anything) must give the model's replies, and keep the table's invariants
 * after every command. Then determinism, snapshot/restore at any point, and decoding of mutated
 * snapshots.
 */

const HOLDERS: readonly Owner[] = [
  { node: 'a', incarnation: '00000000000000a1' },
  { node: 'a', incarnation: '00000000000000a2' },
  { node: 'b', incarnation: '00000000000000b1' },
  { node: '__proto__', incarnation: 'ffffffffffffffff' },
];
const NAMES = ['x', 'y', '__proto__'] as const;

// ---------------------------------------------------------------------------------------------
// The reference model: the rules written out as plainly as possible, with arrays and eager
// entry states, sharing nothing with the table's code.

interface ModelEntry {
  readonly op: 'acquire' | 'other';
  readonly name: string | null;
  state: 'granted' | 'queued' | 'busy' | 'ended';
  /** The first reply, for release, renew and cancel. */
  readonly reply: LockReply | null;
}

interface ModelSession {
  readonly holder: Owner;
  acked: number;
  entries: Map<number, ModelEntry>;
}

interface ModelWaiter {
  readonly holder: Owner;
  readonly seq: number;
  readonly ttlMs: number;
}

const same = (a: Owner, b: Owner): boolean => a.node === b.node && a.incarnation === b.incarnation;

class Model {
  index = 0;
  base = 0n;
  counter = 0n;
  grants: Grant[] = [];
  queues: { name: string; waiters: ModelWaiter[] }[] = [];
  sessions: ModelSession[] = [];

  get lastToken(): bigint {
    return this.base + this.counter;
  }

  grantOf(name: string): Grant | undefined {
    return this.grants.find((g) => g.name === name);
  }

  queueOf(name: string): ModelWaiter[] {
    return this.queues.find((q) => q.name === name)?.waiters ?? [];
  }

  sessionOf(holder: Owner): ModelSession | undefined {
    return this.sessions.find((s) => same(s.holder, holder));
  }

  view(name: string): LockView | null {
    const g = this.grantOf(name);
    if (g === undefined) return null;
    const { holder, token, ttlMs, version } = g;
    return { name, holder, token, ttlMs, version, waiters: this.queueOf(name).length };
  }

  isIdle(holder: Owner): boolean {
    return (
      !this.grants.some((g) => same(g.holder, holder)) &&
      !this.queues.some((q) => q.waiters.some((w) => same(w.holder, holder)))
    );
  }

  stats(): LockTableStats {
    return {
      held: this.grants.length,
      waiting: this.queues.reduce((n, q) => n + q.waiters.length, 0),
      sessions: this.sessions.length,
      entries: this.sessions.reduce((n, s) => n + s.entries.size, 0),
    };
  }

  apply(c: LockCommand): ApplyResult {
    this.index += 1;
    const out = {
      index: this.index,
      reply: null as { to: Owner; reply: LockReply } | null,
      promoted: [] as Grant[],
      ended: [] as Grant[],
      renewed: [] as Grant[],
    };
    const entryOf = (holder: Owner, seq: number) => this.sessionOf(holder)?.entries.get(seq);
    const endGrant = (g: Grant): void => {
      this.grants = this.grants.filter((x) => x !== g);
      out.ended.push(g);
      const entry = entryOf(g.holder, g.seq);
      if (entry !== undefined) entry.state = 'ended';
      const queue = this.queueOf(g.name);
      const first = queue.shift();
      if (queue.length === 0) this.queues = this.queues.filter((q) => q.name !== g.name);
      if (first === undefined) return;
      this.counter += 1n;
      const next: Grant = {
        name: g.name,
        holder: first.holder,
        seq: first.seq,
        token: this.lastToken,
        ttlMs: first.ttlMs,
        version: this.index,
      };
      this.grants.push(next);
      out.promoted.push(next);
      const promotedEntry = entryOf(first.holder, first.seq);
      if (promotedEntry !== undefined) promotedEntry.state = 'granted';
    };

    if (c.op === 'expire') {
      const g = this.grantOf(c.name);
      if (g?.token === c.token && g.version === c.version) endGrant(g);
      return out;
    }
    if (c.op === 'retire') {
      this.sessions = this.sessions.filter(
        (s) => !(c.holders.some((h) => same(h, s.holder)) && this.isIdle(s.holder)),
      );
      return out;
    }
    if (c.op === 'abandon') {
      // Every queue place of the named holders goes; their entries read 'ended'.
      for (const q of this.queues) {
        for (const w of q.waiters) {
          if (!c.holders.some((h) => same(h, w.holder))) continue;
          const entry = entryOf(w.holder, w.seq);
          if (entry !== undefined) entry.state = 'ended';
        }
        q.waiters = q.waiters.filter((w) => !c.holders.some((h) => same(h, w.holder)));
      }
      this.queues = this.queues.filter((q) => q.waiters.length > 0);
      return out;
    }
    if (c.op === 'epoch') {
      if (c.base > this.lastToken) {
        this.base = c.base;
        this.counter = 0n;
        // A new epoch ends every waiter and every grant of the table before it.
        for (const q of this.queues) {
          for (const w of q.waiters) {
            const entry = entryOf(w.holder, w.seq);
            if (entry !== undefined) entry.state = 'ended';
          }
        }
        this.queues = [];
        for (const g of [...this.grants].sort((a, b) => (a.token < b.token ? -1 : 1))) {
          out.ended.push(g);
          const entry = entryOf(g.holder, g.seq);
          if (entry !== undefined) entry.state = 'ended';
        }
        this.grants = [];
      }
      return out;
    }

    let session = this.sessionOf(c.holder);
    if (session === undefined) {
      session = { holder: c.holder, acked: 0, entries: new Map() };
      this.sessions.push(session);
    }
    const s = session;
    s.acked = Math.max(s.acked, c.acked);
    s.entries = new Map([...s.entries].filter(([seq]) => seq >= s.acked));
    const answer = (reply: LockReply): ApplyResult => {
      out.reply = { to: s.holder, reply };
      return out;
    };
    if (c.seq < s.acked) return answer({ type: 'stale', seq: c.seq });

    const old = s.entries.get(c.seq);
    if (old !== undefined) {
      if (old.reply !== null) return answer(old.reply);
      const name = old.name ?? ('name' in c ? c.name : '');
      if (old.state === 'granted') {
        const g = this.grants.find((x) => same(x.holder, s.holder) && x.seq === c.seq);
        assert.ok(g !== undefined, 'model: a granted entry without its grant');
        const { seq, token, ttlMs, version } = g;
        return answer({ type: 'granted', seq, name: g.name, token, ttlMs, version });
      }
      return answer({ type: old.state, seq: c.seq, name });
    }

    const record = (reply: LockReply): ApplyResult => {
      s.entries.set(c.seq, { op: 'other', name: null, state: 'ended', reply });
      return answer(reply);
    };
    const seq = c.seq;
    switch (c.op) {
      case 'acquire': {
        const { name, ttlMs } = c;
        const acquireEntry = (state: ModelEntry['state']): void => {
          s.entries.set(seq, { op: 'acquire', name, state, reply: null });
        };
        if (this.grantOf(name) === undefined) {
          this.counter += 1n;
          const g: Grant = {
            name,
            holder: c.holder,
            seq,
            token: this.lastToken,
            ttlMs,
            version: this.index,
          };
          this.grants.push(g);
          acquireEntry('granted');
          return answer({ type: 'granted', seq, name, token: g.token, ttlMs, version: g.version });
        }
        if (!c.wait) {
          acquireEntry('busy');
          return answer({ type: 'busy', seq, name });
        }
        const queue = this.queues.find((q) => q.name === name);
        if (queue === undefined)
          this.queues.push({ name, waiters: [{ holder: c.holder, seq, ttlMs }] });
        else queue.waiters.push({ holder: c.holder, seq, ttlMs });
        acquireEntry('queued');
        return answer({ type: 'queued', seq, name });
      }
      case 'release': {
        const g = this.grantOf(c.name);
        if (g?.token === c.token && same(g.holder, c.holder)) {
          endGrant(g);
          return record({ type: 'released', seq, name: c.name });
        }
        return record({ type: 'not-held', seq, name: c.name });
      }
      case 'renew': {
        const versions = c.locks.map(({ name, token }) => {
          const g = this.grantOf(name);
          if (g?.token !== token || !same(g.holder, c.holder)) return null;
          if (g.version !== this.index) {
            const renewed = { ...g, version: this.index };
            this.grants = this.grants.map((x) => (x === g ? renewed : x));
            out.renewed.push(renewed);
          }
          return this.index;
        });
        return record({ type: 'renewed', seq, versions });
      }
      case 'cancel': {
        const target = c.target;
        let was: 'queued' | 'granted' | 'unknown' = 'unknown';
        // A target below acked has its final answer: the holder releases, never cancels it.
        const reachable = target >= s.acked;
        const queue = this.queues.find(
          (q) => reachable && q.waiters.some((w) => same(w.holder, c.holder) && w.seq === target),
        );
        const g = this.grants.find(
          (x) => reachable && same(x.holder, c.holder) && x.seq === target,
        );
        if (queue !== undefined) {
          queue.waiters = queue.waiters.filter(
            (w) => !(same(w.holder, c.holder) && w.seq === target),
          );
          if (queue.waiters.length === 0) this.queues = this.queues.filter((q) => q !== queue);
          was = 'queued';
        } else if (g !== undefined) {
          endGrant(g);
          was = 'granted';
        }
        const entry = s.entries.get(target);
        if (entry?.op === 'acquire') entry.state = 'ended';
        else if (entry === undefined && target >= s.acked && target !== seq) {
          s.entries.set(target, { op: 'acquire', name: null, state: 'ended', reply: null });
        }
        return record({ type: 'cancelled', seq, target, was });
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Random scenarios: actions turned into commands against the model's state, so that tokens and
// versions are right often enough to matter, and wrong often enough to be refused.

type TokenPick = 'current' | 'old' | 'wrong';
interface Ack {
  readonly mode: 'keep' | 'advance' | 'old' | 'ahead';
  readonly frac: number;
}

type Action =
  | { k: 'acquire'; h: number; n: number; wait: boolean; ttl: number; ack: Ack }
  /** `own`: sent by the name's holder (if held), else by `h`. */
  | { k: 'release'; h: number; own: boolean; n: number; tok: TokenPick; pick: number; ack: Ack }
  /** `own`: the holder's grants, with their tokens, before `locks`. */
  | {
      k: 'renew';
      h: number;
      own: boolean;
      locks: { n: number; tok: TokenPick; pick: number }[];
      ack: Ack;
    }
  | { k: 'cancel'; h: number; target: number; ack: Ack }
  | { k: 'retry'; h: number; pick: number; ack: Ack }
  | { k: 'expire'; n: number; tok: TokenPick; pick: number; ver: 'current' | 'older' | 'wrong' }
  | { k: 'retire'; hs: number[] }
  | { k: 'abandon'; hs: number[] }
  | { k: 'epoch'; above: boolean; delta: number };

const h = fc.nat(HOLDERS.length - 1);
const n = fc.nat(NAMES.length - 1);
const tok = fc.constantFrom<TokenPick>('current', 'current', 'current', 'old', 'wrong');
const ack: fc.Arbitrary<Ack> = fc.record({
  mode: fc.oneof(
    { weight: 8, arbitrary: fc.constant('keep' as const) },
    { weight: 4, arbitrary: fc.constant('advance' as const) },
    { weight: 1, arbitrary: fc.constant('old' as const) },
    { weight: 1, arbitrary: fc.constant('ahead' as const) },
  ),
  frac: fc.nat(100),
});

const action: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      k: fc.constant('acquire' as const),
      h,
      n,
      wait: fc.boolean(),
      ttl: fc.integer({ min: 1, max: 5 }),
      ack,
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant('release' as const),
      h,
      own: fc.boolean(),
      n,
      tok,
      pick: fc.nat(),
      ack,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('renew' as const),
      h,
      own: fc.boolean(),
      locks: fc.array(fc.record({ n, tok, pick: fc.nat() }), { maxLength: 3 }),
      ack,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ k: fc.constant('cancel' as const), h, target: fc.nat(), ack }),
  },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('retry' as const), h, pick: fc.nat(), ack }) },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('expire' as const),
      n,
      tok,
      pick: fc.nat(),
      ver: fc.constantFrom(
        'current' as const,
        'current' as const,
        'older' as const,
        'wrong' as const,
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('retire' as const),
      hs: fc.uniqueArray(h, { maxLength: 4 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('abandon' as const),
      hs: fc.uniqueArray(h, { maxLength: 2 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('epoch' as const),
      above: fc.boolean(),
      delta: fc.nat(5),
    }),
  },
);

const actions = fc.array(action, { minLength: 1, maxLength: 80, size: 'max' });

interface Scenario {
  readonly commands: LockCommand[];
  readonly expected: ApplyResult[];
}

/** Turns `list` into commands, running them on the model for the replies it expects. */
function scenario(list: readonly Action[]): Scenario {
  const model = new Model();
  const nextSeq = HOLDERS.map(() => 1);
  const acked = HOLDERS.map(() => 0);
  const sent = HOLDERS.map((): LockCommand[] => []);
  const tokens: bigint[] = [];
  const commands: LockCommand[] = [];
  const expected: ApplyResult[] = [];

  const pickToken = (name: string, pick: TokenPick, i: number): bigint => {
    const current = model.grantOf(name)?.token;
    if (pick === 'current' && current !== undefined) return current;
    if (pick !== 'wrong' && tokens.length > 0) return tokens[i % tokens.length] ?? 0n;
    return model.lastToken + 7n;
  };
  const ackFor = (holder: number, a: Ack): number => {
    const now = acked[holder] ?? 0;
    const next = nextSeq[holder] ?? 1;
    let value = now;
    if (a.mode === 'advance') value = now + Math.round(((next - now) * a.frac) / 100);
    if (a.mode === 'old') value = 0;
    // A holder that acks past what it sent: its next requests are stale until they catch up.
    if (a.mode === 'ahead') value = next + 1 + (a.frac % 3);
    acked[holder] = Math.max(now, value);
    return value;
  };
  const newSeq = (holder: number): number => {
    const seq = nextSeq[holder] ?? 1;
    nextSeq[holder] = seq + 1;
    return seq;
  };
  const holderAt = (i: number): Owner => HOLDERS[i] ?? HOLDERS[0]!;
  const nameAt = (i: number): string => NAMES[i] ?? 'x';

  for (const a of list) {
    let command: LockCommand;
    switch (a.k) {
      case 'acquire':
        command = {
          op: 'acquire',
          holder: holderAt(a.h),
          acked: ackFor(a.h, a.ack),
          seq: newSeq(a.h),
          name: nameAt(a.n),
          ttlMs: a.ttl * 100,
          wait: a.wait,
        };
        break;
      case 'release': {
        const owner = model.grantOf(nameAt(a.n))?.holder;
        const who = a.own && owner !== undefined ? HOLDERS.indexOf(owner) : a.h;
        command = {
          op: 'release',
          holder: holderAt(who),
          acked: ackFor(who, a.ack),
          seq: newSeq(who),
          name: nameAt(a.n),
          token: pickToken(nameAt(a.n), a.tok, a.pick),
        };
        break;
      }
      case 'renew': {
        const mine = a.own
          ? model.grants
              .filter((g) => g.holder === holderAt(a.h))
              .map(({ name, token }) => ({ name, token }))
          : [];
        command = {
          op: 'renew',
          holder: holderAt(a.h),
          acked: ackFor(a.h, a.ack),
          seq: newSeq(a.h),
          locks: [
            ...mine,
            ...a.locks.map((l) => ({
              name: nameAt(l.n),
              token: pickToken(nameAt(l.n), l.tok, l.pick),
            })),
          ],
        };
        break;
      }
      case 'cancel': {
        // Mostly the holder's acquires, sometimes any request of its.
        const all = sent[a.h] ?? [];
        const acquires = all.filter((c) => c.op === 'acquire');
        const earlier = a.target % 5 === 4 || acquires.length === 0 ? all : acquires;
        const ackValue = ackFor(a.h, a.ack);
        const seq = newSeq(a.h);
        // Mostly an earlier request of the holder; sometimes one it has not sent yet.
        const target =
          a.target % 7 === 6 || earlier.length === 0
            ? seq + 1 + (a.target % 2)
            : (earlier[a.target % earlier.length] as { seq: number }).seq;
        command = { op: 'cancel', holder: holderAt(a.h), acked: ackValue, seq, target };
        break;
      }
      case 'retry': {
        const earlier = sent[a.h] ?? [];
        const original = earlier[a.pick % Math.max(1, earlier.length)];
        if (original === undefined || !('acked' in original)) continue;
        command = { ...original, acked: ackFor(a.h, a.ack) };
        break;
      }
      case 'expire': {
        const name = nameAt(a.n);
        const grant = model.grantOf(name);
        const version = grant?.version ?? 1;
        command = {
          op: 'expire',
          name,
          token: pickToken(name, a.tok, a.pick),
          version:
            a.ver === 'current' ? version : a.ver === 'older' ? version - 1 : model.index + 5,
        };
        break;
      }
      case 'retire':
        command = { op: 'retire', holders: a.hs.map(holderAt) };
        break;
      case 'abandon':
        command = { op: 'abandon', holders: a.hs.map(holderAt) };
        break;
      case 'epoch': {
        const last = model.lastToken;
        const delta = BigInt(a.delta);
        command = {
          op: 'epoch',
          base: a.above ? last + 1n + delta : last > delta ? last - delta : 0n,
        };
        break;
      }
    }
    if ('holder' in command && a.k !== 'retry')
      sent[HOLDERS.indexOf(command.holder)]?.push(command);
    const result = model.apply(command);
    for (const g of grantsMade(result)) tokens.push(g.token);
    commands.push(command);
    expected.push(result);
  }
  return { commands, expected };
}

/** The grants a command made: a new acquire's, and a promotion. */
function grantsMade(result: ApplyResult): { token: bigint }[] {
  const made: { token: bigint }[] = [...result.promoted];
  const reply = result.reply?.reply;
  // A retry answers with the version of its grant, always below the retry's own index.
  if (reply?.type === 'granted' && reply.version === result.index) made.push(reply);
  return made;
}

const holderKey = (holder: number, seq: number): string => `${holder}:${seq}`;

/** The table's own invariants, read from its snapshot. */
function checkInvariants(table: LockTable, snapshot: LockTableSnapshot): void {
  const names = new Set(snapshot.grants.map((g) => g.name));
  assert.equal(names.size, snapshot.grants.length, 'two grants for one name');
  assert.equal([...table.grants()].length, snapshot.grants.length);
  const holding = new Set(snapshot.grants.map((g) => holderKey(g.holder, g.seq)));
  let waiting = 0;
  for (const queue of snapshot.queues) {
    assert.ok(names.has(queue.name), `waiters for ${queue.name}, which nobody holds`);
    for (const w of queue.waiters) {
      assert.ok(!holding.has(holderKey(w.holder, w.seq)), 'a request both holds and waits');
      waiting += 1;
    }
  }
  assert.equal(table.stats().waiting, waiting);
}

/** Replays `s` on a fresh table, checking every step against the model and the invariants. */
function check(s: Scenario): LockTable {
  const table = new LockTable();
  let lastGrant = -1n;
  let before = table.snapshot();
  s.commands.forEach((command, i) => {
    const result = table.apply(command);
    const expected = s.expected[i];
    assert.deepEqual(result, expected, `command ${i + 1}: ${show(command)}`);
    const after = table.snapshot();
    // Tokens strictly increase in grant order, across names and epochs.
    for (const g of grantsMade(result)) {
      assert.ok(g.token > lastGrant, `token ${g.token} after ${lastGrant}`);
      lastGrant = g.token;
    }
    // A promotion hands the name to the head of its queue.
    for (const p of result.promoted) {
      const head = before.queues.find((q) => q.name === p.name)?.waiters[0];
      const holder = head === undefined ? undefined : before.sessions[head.holder];
      assert.deepEqual(
        { node: holder?.node, incarnation: holder?.incarnation, seq: head?.seq },
        { node: p.holder.node, incarnation: p.holder.incarnation, seq: p.seq },
        'promotion out of FIFO order',
      );
    }
    checkInvariants(table, after);
    before = after;
  });
  return table;
}

/** Checks the table's queries against the model after the whole scenario. */
function checkQueries(table: LockTable, list: readonly Action[]): void {
  const model = new Model();
  for (const command of scenario(list).commands) model.apply(command);
  for (const name of [...NAMES, 'free']) assert.deepEqual(table.view(name), model.view(name));
  for (const holder of HOLDERS) assert.equal(table.isIdle(holder), model.isIdle(holder));
  assert.deepEqual(
    [...table.sessions()],
    model.sessions.map((s) => s.holder),
  );
  assert.deepEqual(table.stats(), model.stats());
  assert.equal(table.index, model.index);
  assert.equal(table.lastToken, model.lastToken);
}

function show(command: LockCommand): string {
  return JSON.stringify(command, (_key, value: unknown) =>
    typeof value === 'bigint' ? `${value}n` : value,
  );
}

const RUNS = { numRuns: 500, seed: 0x10c4_7ab1e } as const;

describe('LockTable against a reference model', function () {
  this.timeout(120_000);

  it('gives the model’s replies and keeps its invariants after every command', function () {
    const seen = new Map<string, number>();
    const count = (what: string): void => {
      seen.set(what, (seen.get(what) ?? 0) + 1);
    };
    fc.assert(
      fc.property(actions, (list) => {
        const s = scenario(list);
        const table = check(s);
        checkQueries(table, list);
        s.commands.forEach((command, i) => {
          const result = s.expected[i];
          const reply = result?.reply?.reply;
          const retry = s.commands
            .slice(0, i)
            .some(
              (c) =>
                'seq' in c &&
                'seq' in command &&
                c.seq === command.seq &&
                c.holder === command.holder,
            );
          if (reply !== undefined) count(`${retry ? 'retry ' : ''}${reply.type}`);
          if (reply?.type === 'cancelled') count(`cancelled ${reply.was}`);
          if (command.op === 'expire')
            count(result?.ended.length === 1 ? 'expired' : 'expire no-op');
          if ((result?.promoted.length ?? 0) > 0) count('promoted');
          if ((result?.renewed.length ?? 0) > 0) count('renewed a lock');
        });
      }),
      RUNS,
    );
    // The generator reaches every rule, retries of every outcome included.
    for (const what of [
      'granted',
      'queued',
      'busy',
      'released',
      'not-held',
      'renewed',
      'stale',
      'cancelled queued',
      'cancelled granted',
      'cancelled unknown',
      'expired',
      'expire no-op',
      'promoted',
      'renewed a lock',
      'retry granted',
      'retry queued',
      'retry busy',
      'retry ended',
      'retry released',
      'retry cancelled',
      'retry stale',
      'ended',
    ]) {
      assert.ok((seen.get(what) ?? 0) >= 20, `${what}: ${seen.get(what) ?? 0} times`);
    }
  });

  it('is deterministic: two tables applying the same commands have equal snapshots', function () {
    fc.assert(
      fc.property(actions, (list) => {
        const { commands } = scenario(list);
        const one = new LockTable();
        const two = new LockTable();
        for (const command of commands) {
          assert.deepEqual(one.apply(command), two.apply(command));
        }
        assert.deepEqual(one.snapshot(), two.snapshot());
        assert.equal(encodeSnapshot(one), encodeSnapshot(two));
      }),
      RUNS,
    );
  });

  it('continues from a snapshot taken at any point exactly as the original does', function () {
    fc.assert(
      fc.property(actions, fc.nat(), (list, at) => {
        const { commands } = scenario(list);
        const cut = at % (commands.length + 1);
        const original = new LockTable();
        for (const command of commands.slice(0, cut)) original.apply(command);
        const copy = decodeSnapshot(encodeSnapshot(original));
        assert.deepEqual(copy.snapshot(), original.snapshot());
        for (const command of commands.slice(cut)) {
          assert.deepEqual(copy.apply(command), original.apply(command));
        }
        assert.deepEqual(copy.snapshot(), original.snapshot());
        assert.deepEqual([...copy.grants()], [...original.grants()]);
      }),
      RUNS,
    );
  });

  describe('decodeSnapshot on mutated snapshots', function () {
    const mutation = fc.record({
      op: fc.nat(8),
      at: fc.nat(),
      value: fc.nat(),
    });

    it('refuses with an InvalidMessageError, or restores a faithful table', function () {
      let refused = 0;
      let accepted = 0;
      fc.assert(
        fc.property(
          actions,
          fc.nat(),
          fc.array(mutation, { minLength: 1, maxLength: 3 }),
          (list, at, mutations) => {
            const { commands } = scenario(list);
            const cut = at % (commands.length + 1);
            const table = new LockTable();
            for (const command of commands.slice(0, cut)) table.apply(command);
            let text = encodeSnapshot(table);
            for (const m of mutations) text = mutate(text, m);
            let copy: LockTable;
            try {
              copy = decodeSnapshot(text);
            } catch (error) {
              assert.ok(
                error instanceof InvalidMessageError,
                `threw ${String(error)} on ${text.slice(0, 300)}`,
              );
              assert.ok(error.message.length < 200 && !/[\n\r]/.test(error.message));
              refused += 1;
              return;
            }
            accepted += 1;
            // Accepted: a table could have made it, the table holds exactly what the text said,
            // and keeps working.
            const data = JSON.parse(text) as LockTableSnapshot;
            assert.equal(inconsistency(data), null, text.slice(0, 300));
            assert.deepEqual(copy.snapshot(), data);
            for (const command of commands.slice(cut)) copy.apply(command);
            checkInvariants(copy, copy.snapshot());
            assert.deepEqual(LockTable.restore(copy.snapshot()).snapshot(), copy.snapshot());
          },
        ),
        { numRuns: 2000, seed: 0x5eed_10c4 },
      );
      // Most mutations break something; some (a ttl, an order of sessions) are valid tables.
      assert.ok(refused > 1000, `only ${refused} refused`);
      assert.ok(accepted > 0, 'no mutation was harmless: the mutations are too blunt');
    });
  });
});

/**
 * What makes a well-typed snapshot one no table could have produced, or null: an oracle for
 * accepted snapshots, written apart from readSnapshot (plain scans, no shared code).
 */
function inconsistency(s: LockTableSnapshot): string | null {
  if (BigInt(s.counter) > BigInt(s.index)) return 'counter above the index';
  const lastToken = BigInt(s.base) + BigInt(s.counter);
  const owners = s.sessions.map((x) => `${x.node}/${x.incarnation}`);
  if (new Set(owners).size !== owners.length) return 'a holder twice';
  const names = s.grants.map((g) => g.name);
  if (new Set(names).size !== names.length) return 'a name granted twice';
  const tokens = s.grants.map((g) => BigInt(g.token));
  if (new Set(tokens).size !== tokens.length) return 'a token granted twice';
  if (tokens.some((t) => t < 1n || t > lastToken)) return 'a token out of range';
  if (s.grants.some((g) => g.version < 1 || g.version > s.index)) return 'a version out of range';
  const queued = s.queues.map((q) => q.name);
  if (new Set(queued).size !== queued.length) return 'a name queued twice';
  if (s.queues.some((q) => q.waiters.length === 0 || !names.includes(q.name))) {
    return 'an empty queue, or the queue of a free name';
  }
  const places = [
    ...s.grants.map((g) => ({ holder: g.holder, seq: g.seq, name: g.name, state: 'granted' })),
    ...s.queues.flatMap((q) =>
      q.waiters.map((w) => ({ holder: w.holder, seq: w.seq, name: q.name, state: 'queued' })),
    ),
  ];
  for (const [i, p] of places.entries()) {
    const session = s.sessions[p.holder];
    if (session === undefined) return 'a place of no session';
    if (places.some((o, j) => j !== i && o.holder === p.holder && o.seq === p.seq)) {
      return 'a request in two places';
    }
    const entry = session.entries.find((e) => e.seq === p.seq);
    if (entry === undefined && p.seq >= session.acked) return 'a place without its entry';
    if (entry !== undefined) {
      if (entry.op !== 'acquire' || entry.state !== p.state || entry.name !== p.name) {
        return 'an entry that disagrees with its place';
      }
    }
  }
  for (const [i, session] of s.sessions.entries()) {
    for (const e of session.entries) {
      if (e.seq < session.acked) return 'an entry below acked';
      if (session.entries.filter((o) => o.seq === e.seq).length > 1) return 'an entry twice';
      if (e.op === 'acquire' && (e.state === 'granted' || e.state === 'queued')) {
        const at = places.find((p) => p.holder === i && p.seq === e.seq);
        if (at?.state !== e.state || at.name !== e.name) return 'an entry without its place';
      }
      if (e.op === 'acquire' && e.name === null && e.state !== 'ended') return 'a nameless entry';
      if (e.op === 'renew' && e.versions.some((v) => v !== null && (v < 1 || v > s.index))) {
        return 'a renewed version out of range';
      }
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Mutations of a snapshot's JSON tree or text.

const WEIRD: readonly unknown[] = [
  null,
  true,
  -1,
  0,
  1,
  1.5,
  2 ** 53,
  1e300,
  '',
  '0',
  '-1',
  '01',
  '1e3',
  'x',
  'x'.repeat(257),
  '9223372036854775807',
  '-9223372036854775809',
  '00000000000000a1',
  '00000000000000A1',
  'granted',
  'queued',
  'busy',
  'ended',
  'acquire',
  'release',
  'renew',
  'cancel',
  [],
  {},
  [1],
  { a: 1 },
];
const KEYS = ['__proto__', 'constructor', 'toString', 'extra', 'seq'];

interface Slot {
  readonly parent: Record<string, unknown> | unknown[];
  readonly key: string | number;
}

function slots(root: unknown): Slot[] {
  const found: Slot[] = [];
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      node.forEach((child, i) => {
        found.push({ parent: node, key: i });
        visit(child);
      });
    } else if (typeof node === 'object' && node !== null) {
      for (const [key, child] of Object.entries(node)) {
        found.push({ parent: node as Record<string, unknown>, key });
        visit(child);
      }
    }
  };
  visit(root);
  return found;
}

function mutate(text: string, m: { op: number; at: number; value: number }): string {
  if (m.op === 8) {
    // Text: cut it, or change one character.
    const i = m.at % (text.length + 1);
    return m.value % 2 === 0
      ? text.slice(0, i)
      : text.slice(0, i) + '{}[],:"0-9aez\\'.charAt(m.value % 15) + text.slice(i + 1);
  }
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch {
    return text;
  }
  const all = slots(root);
  const slot = all[m.at % Math.max(1, all.length)];
  if (slot === undefined) return text;
  const { parent, key } = slot;
  const get = (): unknown => (parent as Record<string | number, unknown>)[key];
  const set = (value: unknown): void => {
    // defineProperty, so that a key named __proto__ is an own property, as JSON.parse makes it.
    Object.defineProperty(parent, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  };
  switch (m.op) {
    case 0:
    case 1:
      set(WEIRD[m.value % WEIRD.length]);
      break;
    case 2: {
      // A neighbour of the value: numbers and decimal strings one up or down.
      const value = get();
      const step = m.value % 2 === 0 ? 1 : -1;
      if (typeof value === 'number') set(value + step);
      else if (typeof value === 'string' && /^-?[0-9]+$/.test(value)) {
        set((BigInt(value) + BigInt(step)).toString());
      } else if (typeof value === 'string') set(value.toUpperCase() + 'z');
      else set(null);
      break;
    }
    case 3:
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else Reflect.deleteProperty(parent, key);
      break;
    case 4:
      if (Array.isArray(parent)) parent.push(structuredClone(get()));
      else {
        Object.defineProperty(parent, KEYS[m.value % KEYS.length] ?? 'extra', {
          value: m.value % 2 === 0 ? {} : 1,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      break;
    case 5:
      if (Array.isArray(parent) && parent.length > 1) {
        const other = m.value % parent.length;
        const here = parent[key as number];
        parent[key as number] = parent[other];
        parent[other] = here;
      } else set([get()]);
      break;
    case 6:
      // Copy a container from elsewhere in the snapshot.
      set(structuredClone(all[m.value % all.length]!.parent));
      break;
    case 7: {
      // The value of the same key elsewhere (a state, a name, a seq, a holder): each field
      // stays well typed, and the table may stop adding up.
      const peers = all.filter((other) => other.key === key && !Array.isArray(other.parent));
      const donor = peers[m.value % Math.max(1, peers.length)];
      if (donor !== undefined) {
        set(structuredClone((donor.parent as Record<string, unknown>)[key as string]));
      }
      break;
    }
  }
  return JSON.stringify(root);
}
