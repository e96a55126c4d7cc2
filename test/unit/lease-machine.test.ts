import assert from 'node:assert/strict';
import {
  LeaseMachine,
  type LeaseEvent,
  type LeaseOutput,
  type LeaseRecord,
} from '../../lib/lease/machine.js';
import type { LeaseMessage } from '../../lib/lease/messages.js';
import { createRng } from '../../lib/random.js';

const L = 1000;
const RHO = 0.01;
const MARGIN = 10;
const BELIEVE = (L * (1 - RHO)) / (1 + RHO) - MARGIN;

interface Wire {
  from: string;
  to: string;
  message: LeaseMessage;
}

/** Three (or more) machines whose messages wait in a list until a test delivers them. */
class Harness {
  readonly machines = new Map<string, LeaseMachine>();
  readonly wire: Wire[] = [];
  readonly events: { id: string; at: number; event: LeaseEvent }[] = [];
  readonly persisted = new Map<string, LeaseRecord>();
  readonly wake = new Map<string, number | null>();

  /**
   * `fresh`: the machines start without storage and must learn the highest round from the others
   * before they vote. By default they start from an empty stored record, as on a first start with
   * storage, so the lease rules can be driven without the recovery exchange.
   */
  constructor(
    readonly ids: string[],
    seed = 1,
    fresh = false,
  ) {
    const rng = createRng(seed);
    ids.forEach((id, i) => {
      const machine = new LeaseMachine(
        {
          id,
          incarnation: String(i + 1).padStart(16, '0'),
          peers: ids,
          leaseMs: L,
          maxClockDrift: RHO,
          marginMs: MARGIN,
          rng,
        },
        fresh ? null : { promised: null, maxRound: 0 },
      );
      this.machines.set(id, machine);
    });
  }

  m(id: string): LeaseMachine {
    const machine = this.machines.get(id);
    assert.ok(machine);
    return machine;
  }

  start(at: number): void {
    for (const id of this.ids) this.apply(id, this.m(id).start(at), at);
  }

  apply(id: string, out: LeaseOutput, at: number): void {
    for (const e of out.send) this.wire.push({ from: id, to: e.to, message: e.message });
    for (const event of out.events) this.events.push({ id, at, event });
    if (out.persist !== null) this.persisted.set(id, out.persist);
    this.wake.set(id, out.wakeAt);
  }

  tick(id: string, at: number): void {
    this.apply(id, this.m(id).handle({ type: 'tick' }, at), at);
  }

  /** Delivers (and removes) every queued message matching `pick`, in order. */
  deliver(at: number, pick: (w: Wire) => boolean = () => true): number {
    let n = 0;
    for (;;) {
      const i = this.wire.findIndex(pick);
      if (i < 0) return n;
      const [w] = this.wire.splice(i, 1);
      if (w === undefined) return n;
      n++;
      this.apply(
        w.to,
        this.m(w.to).handle({ type: 'message', from: w.from, message: w.message }, at),
        at,
      );
    }
  }

  drop(pick: (w: Wire) => boolean): void {
    for (let i = this.wire.length - 1; i >= 0; i--) {
      const w = this.wire[i];
      if (w !== undefined && pick(w)) this.wire.splice(i, 1);
    }
  }

  /** Ticks `id` at its own wakeAt until it sends a Prepare; returns that time. */
  campaign(id: string): number {
    for (let guard = 0; guard < 100; guard++) {
      const at = this.wake.get(id);
      assert.ok(at !== null && at !== undefined, `${id} wants no wake-up`);
      this.tick(id, at);
      if (this.wire.some((w) => w.from === id && w.message.type === 'lease.prepare')) return at;
    }
    assert.fail(`${id} never campaigned`);
  }

  eventsOf(id: string, type: LeaseEvent['type']): LeaseEvent[] {
    return this.events.filter((e) => e.id === id && e.event.type === type).map((e) => e.event);
  }
}

/** Lets `id` win the lease: it campaigns, and every message is delivered at once. */
function elect(h: Harness, id: string): number {
  const t0 = h.campaign(id);
  h.drop((w) => w.from !== id && w.message.type === 'lease.prepare');
  while (h.wire.length > 0) h.deliver(t0);
  assert.equal(h.m(id).isLeader(t0), true);
  return t0;
}

describe('lease machine', () => {
  it('sends nothing and campaigns for nothing during the restart silence', () => {
    const h = new Harness(['a', 'b', 'c']);
    h.start(0);
    for (const id of h.ids) h.tick(id, L - 1);
    assert.equal(h.wire.length, 0);
    const t0 = h.campaign('a');
    assert.ok(t0 >= L, `campaigned at ${t0}`);
  });

  it('times the lease from before the Prepare, not from when a majority accepted', () => {
    const h = new Harness(['a', 'b', 'c']);
    h.start(0);
    const t0 = h.campaign('a');
    h.drop((w) => w.from !== 'a');
    h.deliver(t0 + 5, (w) => w.message.type === 'lease.prepare');
    h.deliver(t0 + 10, (w) => w.message.type === 'lease.promise');
    h.deliver(t0 + 15, (w) => w.message.type === 'lease.accept');
    h.deliver(t0 + 400, (w) => w.message.type === 'lease.accepted');
    const elected = h.eventsOf('a', 'elected')[0];
    assert.ok(elected?.type === 'elected');
    assert.equal(elected.deadline, t0 + BELIEVE);
    assert.equal(h.m('a').isLeader(t0 + BELIEVE - 0.001), true);
    assert.equal(h.m('a').isLeader(t0 + BELIEVE), false, 'the clock decides, not a timer');
  });

  it('believes the lease for L·(1−ρ)/(1+ρ) − margin', () => {
    assert.ok(Math.abs(BELIEVE - 970.198) < 0.001);
  });

  it('proposes itself only on a majority of promises free of other owners, waiting for more replies', () => {
    const h = new Harness(['a', 'b', 'c', 'd', 'e']);
    h.start(0);
    // b's Accept reaches only c: c now holds b's (unchosen) value, the others hold nothing.
    const tb = h.campaign('b');
    h.drop((w) => w.from !== 'b');
    h.deliver(tb, (w) => w.message.type === 'lease.prepare');
    h.deliver(tb, (w) => w.message.type === 'lease.promise');
    h.deliver(tb, (w) => w.message.type === 'lease.accept' && w.to === 'c');
    h.wire.length = 0;
    const t0 = h.campaign('a');
    h.drop((w) => w.from !== 'a');
    const accepts = (): number => h.wire.filter((w) => w.message.type === 'lease.accept').length;
    for (const voter of ['c', 'd']) {
      h.deliver(t0, (w) => w.message.type === 'lease.prepare' && w.to === voter);
      h.deliver(t0, (w) => w.message.type === 'lease.promise');
    }
    assert.equal(accepts(), 0, "a, c and d are a majority, but c reports b's lease");
    h.deliver(t0, (w) => w.message.type === 'lease.prepare' && w.to === 'e');
    h.deliver(t0, (w) => w.message.type === 'lease.promise');
    assert.equal(accepts(), 4, 'a, d and e are a free majority');
  });

  it('renews with a full round and a fresh ballot at about a third of the lease, keeping its term', () => {
    const h = new Harness(['a', 'b', 'c']);
    h.start(0);
    const t0 = elect(h, 'a');
    const firstBallots = h.wire.length;
    assert.equal(firstBallots, 0);
    const renewAt = h.wake.get('a');
    assert.equal(renewAt, t0 + L / 3);
    h.tick('a', t0 + L / 3);
    const prepares = h.wire.filter((w) => w.message.type === 'lease.prepare');
    assert.equal(prepares.length, 2, 'a renewal starts with Prepare, not a bare Accept');
    while (h.wire.length > 0) h.deliver(t0 + L / 3 + 1);
    const renewed = h.eventsOf('a', 'renewed')[0];
    assert.ok(renewed?.type === 'renewed');
    assert.equal(renewed.deadline, t0 + L / 3 + BELIEVE);
    const elected = h.eventsOf('a', 'elected')[0];
    assert.ok(elected?.type === 'elected');
    assert.equal(renewed.term, elected.term);
  });

  it('loses the lease at its deadline when renewals fail, and says so', () => {
    const h = new Harness(['a', 'b', 'c']);
    h.start(0);
    const t0 = elect(h, 'a');
    for (let t = t0 + L / 3; t < t0 + BELIEVE; t += 50) {
      h.tick('a', t);
      h.drop((w) => w.from === 'a');
    }
    h.tick('a', t0 + BELIEVE);
    assert.equal(h.m('a').isLeader(t0 + BELIEVE), false);
    const deposed = h.eventsOf('a', 'deposed')[0];
    assert.ok(deposed?.type === 'deposed');
    assert.equal(deposed.reason, 'expired');
  });

  it('stops believing before it sends Release, naming its highest ballot and a successor', () => {
    const h = new Harness(['a', 'b', 'c']);
    h.start(0);
    const t0 = elect(h, 'a');
    h.tick('a', t0 + L / 3); // a renewal in flight
    const renewal = h.wire.find((w) => w.message.type === 'lease.prepare');
    assert.ok(renewal?.message.type === 'lease.prepare');
    h.wire.length = 0;
    const out = h.m('a').stop(t0 + L / 3 + 1, true);
    assert.equal(h.m('a').isLeader(t0 + L / 3 + 1), false);
    assert.deepEqual(
      out.events.map((e) => e.type),
      ['deposed', 'leader'],
    );
    const release = out.send.find((e) => e.message.type === 'lease.release');
    assert.ok(release?.message.type === 'lease.release');
    assert.deepEqual(release.message.ballot, renewal.message.ballot);
    assert.ok(['b', 'c'].includes(release.message.successor ?? ''));
  });

  it('hands off: the named successor takes the released lease at once', () => {
    const h = new Harness(['a', 'b', 'c']);
    h.start(0);
    const t0 = elect(h, 'a');
    const at = t0 + 100;
    h.apply('a', h.m('a').stop(at, true), at);
    const release = h.wire.find((w) => w.message.type === 'lease.release');
    assert.ok(release?.message.type === 'lease.release');
    const successor = release.message.successor;
    assert.ok(successor !== null);
    h.deliver(at, (w) => w.message.type === 'lease.release');
    while (h.wire.length > 0) h.deliver(at);
    assert.equal(h.m(successor).isLeader(at), true, 'elected within the same instant of delays');
  });

  it('hands off in one round when the Release to the other voter comes after the successor’s Accept', () => {
    // Between processes, the old leader's process can pause between its two Releases (it
    // sends the successor's first): the successor's round then reaches the other voter first.
    const h = new Harness(['a', 'b', 'c']);
    h.start(0);
    const t0 = elect(h, 'a');
    const at = t0 + 100;
    h.apply('a', h.m('a').stop(at, true), at);
    const release = h.wire.find((w) => w.message.type === 'lease.release');
    assert.ok(release?.message.type === 'lease.release');
    const successor = release.message.successor;
    assert.ok(successor !== null);
    const other = successor === 'b' ? 'c' : 'b';
    const late = (w: Wire): boolean => w.from === 'a' && w.to === other;
    h.deliver(at, (w) => !late(w));
    assert.equal(h.m(successor).isLeader(at), true, 'elected before the late Release arrived');
    h.deliver(at + 1, late);
    assert.equal(h.m(successor).isLeader(at + 1), true);
    assert.equal(h.m(other).leader(at + 1)?.owner.node, successor);
  });

  it('relays a Release only as its named successor, once, and never to its owner', () => {
    const h = new Harness(['a', 'b', 'c', 'd', 'e']);
    h.start(0);
    const t0 = elect(h, 'a');
    const at = t0 + 100;
    h.apply('a', h.m('a').stop(at, true), at);
    const release = h.wire.find((w) => w.message.type === 'lease.release');
    assert.ok(release?.message.type === 'lease.release');
    const successor = release.message.successor;
    h.deliver(at, (w) => w.from === 'a');
    const relays = h.wire.filter((w) => w.message.type === 'lease.release');
    assert.deepEqual(
      relays.map((w) => `${w.from}→${w.to}`).sort(),
      h.ids
        .filter((id) => id !== 'a' && id !== successor)
        .map((id) => `${successor ?? ''}→${id}`)
        .sort(),
    );
    // The successor campaigned first: its Prepares went out before the relays.
    const first = h.wire.findIndex((w) => w.from === successor);
    assert.equal(h.wire[first]?.message.type, 'lease.prepare');
    h.deliver(at, (w) => w.message.type === 'lease.release');
    assert.equal(
      h.wire.filter((w) => w.message.type === 'lease.release').length,
      0,
      'a relayed Release is not relayed again',
    );
  });

  it('hands off in one round when the old leader’s renewal Accept arrives after its Release', () => {
    // The Release names the renewal's ballot, but the renewal's Accept is overtaken on the way
    // (a network that reorders): accepting it would hold the released lease for another L.
    const h = new Harness(['a', 'b', 'c']);
    h.start(0);
    const t0 = elect(h, 'a');
    const renewing = t0 + L / 3;
    h.tick('a', renewing);
    h.deliver(renewing, (w) => w.message.type === 'lease.prepare');
    h.deliver(renewing, (w) => w.message.type === 'lease.promise');
    const accepts = h.wire.filter((w) => w.from === 'a' && w.message.type === 'lease.accept');
    assert.equal(accepts.length, 2, "the renewal's Accepts are on the way");
    h.drop((w) => w.from === 'a');
    const at = renewing + 2;
    h.apply('a', h.m('a').stop(at, true), at);
    h.deliver(at, (w) => w.from === 'a' && w.message.type === 'lease.release');
    // Every copy of the Release (the successor's relay too) arrives before the late Accepts.
    h.deliver(at, (w) => w.message.type === 'lease.release');
    h.wire.push(...accepts);
    h.deliver(at + 1, (w) => w.from === 'a');
    for (const id of ['b', 'c']) {
      assert.notEqual(h.m(id).leader(at + 1)?.owner.node, 'a', `${id} took a for leader again`);
    }
    h.drop((w) => w.to === 'a');
    h.deliver(at + 2);
    const leaders = ['b', 'c'].filter((id) => h.m(id).isLeader(at + 2));
    assert.equal(leaders.length, 1, 'the successor won its first round');
  });

  it('starts a fresh term when a renewal comes back after the lease it meant to extend', () => {
    const h = new Harness(['a', 'b', 'c']);
    h.start(0);
    const t0 = elect(h, 'a');
    const first = h.eventsOf('a', 'elected')[0];
    const renewing = t0 + BELIEVE - 50; // a late renewal (say, after lost ones)
    h.tick('a', renewing);
    h.deliver(renewing, (w) => w.message.type === 'lease.prepare');
    h.deliver(renewing, (w) => w.message.type === 'lease.promise');
    h.deliver(renewing, (w) => w.message.type === 'lease.accept');
    const late = t0 + BELIEVE + 1;
    h.tick('a', late);
    assert.equal(h.m('a').isLeader(late), false);
    h.deliver(late, (w) => w.message.type === 'lease.accepted');
    assert.equal(h.eventsOf('a', 'renewed').length, 0);
    assert.ok(
      h.wire.some((w) => w.message.type === 'lease.prepare'),
      'a fresh round began',
    );
    while (h.wire.length > 0) h.deliver(late);
    const second = h.eventsOf('a', 'elected')[1];
    assert.ok(first?.type === 'elected' && second?.type === 'elected');
    assert.ok(second.term > first.term);
  });

  it('never sends the same ballot twice and climbs above rounds it hears of', () => {
    const h = new Harness(['a', 'b', 'c']);
    h.start(0);
    const seen = new Set<string>();
    let t = elect(h, 'a');
    for (let i = 0; i < 20; i++) {
      t += L / 3;
      h.tick('a', t);
      for (const w of h.wire) {
        if (w.message.type === 'lease.prepare' && w.to === 'b') {
          const key = JSON.stringify(w.message.ballot);
          assert.equal(seen.has(key), false);
          seen.add(key);
        }
      }
      while (h.wire.length > 0) h.deliver(t);
    }
    assert.equal(seen.size, 20);
  });

  it('writes its promise down before answering', () => {
    const h = new Harness(['a', 'b', 'c']);
    h.start(0);
    const t0 = h.campaign('a');
    const out = h
      .m('b')
      .handle(
        { type: 'message', from: 'a', message: h.wire.find((w) => w.to === 'b')!.message },
        t0,
      );
    assert.ok(out.persist !== null);
    assert.equal(out.persist.promised?.node, 'a');
    assert.equal(out.send[0]?.message.type, 'lease.promise');
  });

  it('keeps its view of the leader when a Release of an older round of that leader arrives late', () => {
    const h = new Harness(['a', 'b', 'c']);
    h.start(0);
    const t0 = elect(h, 'a');
    const won = h.m('b').leader(t0);
    assert.equal(won?.owner.node, 'a');
    const owner = h.m('a').owner;
    const release = (round: number): LeaseMessage => ({
      type: 'lease.release',
      owner,
      ballot: { round, ...owner },
      successor: null,
    });
    h.apply(
      'b',
      h.m('b').handle({ type: 'message', from: 'a', message: release(0) }, t0 + 1),
      t0 + 1,
    );
    assert.equal(h.m('b').leader(t0 + 1)?.owner.node, 'a', 'a stale Release says nothing of it');
    const term = won.term;
    h.apply(
      'b',
      h.m('b').handle({ type: 'message', from: 'a', message: release(term + 50) }, t0 + 2),
      t0 + 2,
    );
    assert.equal(h.m('b').leader(t0 + 2), null, 'a Release covering its round ends it');
  });

  it('tells followers who leads, and never reports a lower term than one it reported', () => {
    const h = new Harness(['a', 'b', 'c']);
    h.start(0);
    const t0 = elect(h, 'a');
    const view = h.m('b').leader(t0);
    assert.equal(view?.owner.node, 'a');
    const stale: LeaseMessage = {
      type: 'lease.chosen',
      ballot: { round: 0, node: 'c', incarnation: '0000000000000003' },
      term: 0,
    };
    h.apply('b', h.m('b').handle({ type: 'message', from: 'c', message: stale }, t0 + 1), t0 + 1);
    assert.equal(h.m('b').leader(t0 + 1)?.owner.node, 'a');
  });

  it('claims no fresh term below one it reported while its round was out: it goes again, higher', () => {
    const h = new Harness(['a', 'b', 'c']);
    h.start(0);
    const t0 = h.campaign('a');
    h.drop((w) => w.to === 'c');
    h.deliver(t0, (w) => w.message.type === 'lease.prepare');
    h.deliver(t0, (w) => w.message.type === 'lease.promise');
    assert.ok(h.wire.some((w) => w.message.type === 'lease.accept' && w.to === 'b'));
    // Meanwhile a hears of term 50 (its quorum, a and b, had not seen that round).
    const notice: LeaseMessage = {
      type: 'lease.chosen',
      ballot: { round: 50, node: 'c', incarnation: '0000000000000003' },
      term: 50,
    };
    h.apply('a', h.m('a').handle({ type: 'message', from: 'c', message: notice }, t0 + 1), t0 + 1);
    assert.equal(h.m('a').leader(t0 + 1)?.term, 50);
    h.deliver(t0 + 2, (w) => w.to !== 'c' && w.message.type === 'lease.accept');
    h.deliver(t0 + 2, (w) => w.to === 'a' && w.message.type === 'lease.accepted');
    assert.equal(h.eventsOf('a', 'elected').length, 0, 'term 1 is not claimed');
    const again = h.wire.find((w) => w.from === 'a' && w.message.type === 'lease.prepare');
    assert.ok(again?.message.type === 'lease.prepare' && again.message.ballot.round > 50);
    h.deliver(t0 + 3, (w) => w.to !== 'c');
    const [won] = h.eventsOf('a', 'elected');
    assert.ok(won?.type === 'elected' && won.term > 50, 'the next round makes a term above 50');
  });

  it('sends no Accept for a fresh term below one it reported since its Prepare went out', () => {
    const h = new Harness(['a', 'b', 'c']);
    h.start(0);
    const t0 = h.campaign('a');
    h.drop((w) => w.to === 'c');
    h.deliver(t0, (w) => w.message.type === 'lease.prepare');
    const notice: LeaseMessage = {
      type: 'lease.chosen',
      ballot: { round: 50, node: 'c', incarnation: '0000000000000003' },
      term: 50,
    };
    h.apply('a', h.m('a').handle({ type: 'message', from: 'c', message: notice }, t0 + 1), t0 + 1);
    h.deliver(t0 + 2, (w) => w.message.type === 'lease.promise' && w.message.ballot.round < 50);
    assert.ok(
      !h.wire.some((w) => w.message.type === 'lease.accept'),
      'no value left behind for round 1',
    );
    const again = h.wire.find((w) => w.from === 'a' && w.message.type === 'lease.prepare');
    assert.ok(again?.message.type === 'lease.prepare' && again.message.ballot.round > 50);
  });

  it('while it leads, takes no other owner for leader from a delayed Accept of an older term', () => {
    const h = new Harness(['a', 'b', 'c']);
    h.start(0);
    const t0 = elect(h, 'a');
    const term = h.m('a').term;
    assert.ok(term !== null);
    // A renewal Accept of c's, from a lease long over and numbered above a's term (as after
    // a majority restarted without storage), arrives late.
    const stale: LeaseMessage = {
      type: 'lease.accept',
      ballot: { round: term + 40, node: 'c', incarnation: '0000000000000003' },
      value: { owner: { node: 'c', incarnation: '0000000000000003' }, leaseMs: L, term: term + 30 },
    };
    h.apply('a', h.m('a').handle({ type: 'message', from: 'c', message: stale }, t0 + 1), t0 + 1);
    assert.equal(h.m('a').leader(t0 + 1)?.owner.node, 'a');
    // a's renewals are lost and its lease lapses, less than L after that Accept arrived: c
    // must not show up as leader then.
    h.wire.length = 0;
    const lapsed = t0 + BELIEVE + 5;
    assert.ok(lapsed < t0 + 1 + L);
    h.tick('a', lapsed);
    assert.equal(h.m('a').isLeader(lapsed), false);
    assert.equal(h.m('a').leader(lapsed), null);
    const named = h.events.filter((e) => e.id === 'a' && e.event.type === 'leader');
    assert.ok(named.every((e) => e.event.type === 'leader' && e.event.leader?.node !== 'c'));
  });
  it('releases a round won too late to believe (after a stall), so its value blocks nobody', () => {
    const h = new Harness(['a', 'b', 'c']);
    h.start(0);
    const t0 = h.campaign('a');
    h.drop((w) => w.from !== 'a');
    h.deliver(t0 + 5, (w) => w.message.type === 'lease.prepare');
    h.deliver(t0 + 10, (w) => w.message.type === 'lease.promise');
    h.deliver(t0 + 15, (w) => w.message.type === 'lease.accept');
    // a's event loop stalled: the votes are handled after the lease they would back has ended.
    h.deliver(t0 + BELIEVE + 1, (w) => w.message.type === 'lease.accepted');
    assert.deepEqual(h.eventsOf('a', 'elected'), []);
    const release = h.wire.find((w) => w.from === 'a' && w.message.type === 'lease.release');
    assert.ok(release?.message.type === 'lease.release', 'the round is released');
    assert.equal(release.message.ballot.node, 'a');
    assert.equal(release.message.successor, null);
    // b and c, which still held a's value, clear it and are free for another owner.
    h.deliver(t0 + BELIEVE + 2, (w) => w.message.type === 'lease.release');
    const free = h.m('b').handle({ type: 'tick' }, t0 + BELIEVE + 3);
    assert.ok(free.wakeAt === null || free.wakeAt > t0 + BELIEVE + 3);
    assert.equal(h.m('b').leader(t0 + BELIEVE + 3), null);
  });

  it('restores the highest round it saw from storage, not only its promise: its promises report it', () => {
    const h = new Harness(['a', 'b', 'c']);
    const b = new LeaseMachine(
      {
        id: 'b',
        incarnation: '00000000000000b2',
        peers: ['a', 'b', 'c'],
        leaseMs: L,
        maxClockDrift: RHO,
        marginMs: MARGIN,
        rng: createRng(5),
      },
      { promised: { round: 3, node: 'c', incarnation: '00000000000000c1' }, maxRound: 9 },
    );
    h.machines.set('b', b);
    b.start(0);
    const out = b.handle(
      {
        type: 'message',
        from: 'a',
        message: {
          type: 'lease.prepare',
          ballot: { round: 5, node: 'a', incarnation: '0000000000000001' },
        },
      },
      L + 1,
    );
    const promise = out.send.find((e) => e.message.type === 'lease.promise');
    assert.ok(promise?.message.type === 'lease.promise');
    assert.equal(promise.message.maxRound, 9, 'a round-5 proposer learns it is below round 9');
  });
});
