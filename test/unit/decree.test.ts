import assert from 'node:assert/strict';
import { ConfigError } from '../../lib/errors.js';
import { Acceptor, type AcceptorState } from '../../lib/paxos/acceptor.js';
import { ballotEquals, ballotKey, type Ballot } from '../../lib/paxos/ballot.js';
import {
  DecreeMachine,
  type DecreeConfig,
  type DecreeEvent,
  type DecreeOutput,
  type DecreeRecord,
} from '../../lib/paxos/decree.js';
import type { PaxosMessage } from '../../lib/paxos/messages.js';
import { majority } from '../../lib/paxos/quorum.js';
import { createRng, randomIncarnation, randomInt, type Rng } from '../../lib/random.js';

const TIMEOUT = 50;
const BACKOFF = 20;

interface Wire {
  readonly from: string;
  readonly to: string;
  readonly message: PaxosMessage;
}

type Factory = (config: DecreeConfig, restored: DecreeRecord | null) => DecreeMachine;

const correct: Factory = (config, restored) => new DecreeMachine(config, restored);

/**
 * A tiny message pump: machines, the messages in flight between them, and everything they
 * announced and persisted. The tests decide what is delivered, dropped or duplicated, and when.
 */
class Pump {
  readonly machines = new Map<string, DecreeMachine>();
  readonly wire: Wire[] = [];
  readonly events: { id: string; event: DecreeEvent }[] = [];
  readonly records = new Map<string, DecreeRecord>();
  readonly wake = new Map<string, number | null>();
  now = 0;

  constructor(
    readonly ids: readonly string[],
    readonly seed = 1,
    readonly factory: Factory = correct,
    readonly maxAttempts = 20,
  ) {
    for (const id of ids) this.boot(id, null);
  }

  config(id: string, incarnation?: string): DecreeConfig {
    const rng = createRng(this.seed * 7919 + this.ids.indexOf(id));
    return {
      id,
      incarnation: incarnation ?? randomIncarnation(rng),
      peers: this.ids,
      rng,
      roundTimeoutMs: TIMEOUT,
      backoffMs: BACKOFF,
      maxAttempts: this.maxAttempts,
    };
  }

  /** (Re)starts `id`, from its last persisted record if `restored` says so. */
  boot(id: string, restored: DecreeRecord | null, incarnation?: string): DecreeMachine {
    const m = this.factory(this.config(id, incarnation), restored);
    this.machines.set(id, m);
    this.wake.set(id, null);
    return m;
  }

  m(id: string): DecreeMachine {
    const m = this.machines.get(id);
    assert.ok(m !== undefined, id);
    return m;
  }

  apply(id: string, out: DecreeOutput): void {
    for (const e of out.send) {
      assert.notEqual(e.to, id, 'a machine never sends to itself');
      this.wire.push({ from: id, to: e.to, message: e.message });
    }
    for (const event of out.events) this.events.push({ id, event });
    if (out.persist !== null) this.records.set(id, out.persist);
    this.wake.set(id, out.wakeAt);
  }

  propose(id: string, instance: number, value: string): DecreeOutput {
    const out = this.m(id).propose(instance, value, this.now);
    this.apply(id, out);
    return out;
  }

  tick(id: string): void {
    this.apply(id, this.m(id).handle({ type: 'tick' }, this.now));
  }

  send(w: Wire): DecreeOutput {
    const out = this.m(w.to).handle(
      { type: 'message', from: w.from, message: w.message },
      this.now,
    );
    this.apply(w.to, out);
    return out;
  }

  /** Delivers (and removes) every message in flight matching `pick`, oldest first. */
  deliver(pick: (w: Wire) => boolean = () => true): number {
    let n = 0;
    for (let i = this.wire.findIndex(pick); i >= 0; i = this.wire.findIndex(pick)) {
      const [w] = this.wire.splice(i, 1);
      assert.ok(w !== undefined);
      this.send(w);
      n++;
    }
    return n;
  }

  drop(pick: (w: Wire) => boolean): void {
    for (let i = this.wire.length - 1; i >= 0; i--) {
      const w = this.wire[i];
      if (w !== undefined && pick(w)) this.wire.splice(i, 1);
    }
  }

  /** Takes matching messages off the wire, to deliver them later. */
  hold(pick: (w: Wire) => boolean): Wire[] {
    const held = this.wire.filter(pick);
    this.drop(pick);
    return held;
  }

  /** Delivers everything, ticking machines at their wakeAt when the wire is empty. */
  settle(limit = 10_000): void {
    for (let step = 0; step < limit; step++) {
      if (this.deliver() > 0) continue;
      const next = this.nextWake();
      if (next === null) return;
      this.now = Math.max(this.now, next);
      for (const id of this.ids) if ((this.wake.get(id) ?? Infinity) <= this.now) this.tick(id);
    }
    assert.fail('the cluster did not settle');
  }

  nextWake(): number | null {
    let next: number | null = null;
    for (const at of this.wake.values()) if (at !== null && (next === null || at < next)) next = at;
    return next;
  }

  eventsOf<T extends DecreeEvent['type']>(
    id: string,
    type: T,
  ): Extract<DecreeEvent, { type: T }>[] {
    return this.events
      .filter((e) => e.id === id)
      .map((e) => e.event)
      .filter((e): e is Extract<DecreeEvent, { type: T }> => e.type === type);
  }

  /**
   * Every value chosen for `instance`, judged from the votes themselves (a majority of
   * acceptors voted for it in one ballot) and from what each proposer announced.
   */
  chosenValues(instance: number): Set<string> {
    const byBallot = new Map<string, Map<string, Set<string>>>();
    const values = new Set<string>();
    for (const { id, event } of this.events) {
      if (event.instance !== instance) continue;
      if (event.type === 'chosen') values.add(event.value);
      if (event.type !== 'voted') continue;
      const key = ballotKey(event.ballot);
      const perValue = byBallot.get(key) ?? new Map<string, Set<string>>();
      byBallot.set(key, perValue);
      const voters = perValue.get(event.value) ?? new Set<string>();
      perValue.set(event.value, voters);
      voters.add(id);
      if (voters.size >= majority(this.ids.length)) values.add(event.value);
    }
    return values;
  }
}

/**
 * Two proposers duel for one instance over a network that delivers in a seeded random order,
 * loses and duplicates messages, and ticks machines early, on time and late.
 */
function duel(
  n: number,
  seed: number,
  factory: Factory = correct,
  faults = { loss: 0.1, duplicate: 0.1 },
): Pump {
  const ids = ['a', 'b', 'c', 'd', 'e'].slice(0, n);
  const pump = new Pump(ids, seed, factory);
  const net: Rng = createRng(seed);
  pump.propose('a', 0, 'from-a');
  pump.now = randomInt(net, 0, 3);
  pump.propose('b', 0, 'from-b');
  for (let step = 0; step < 20_000; step++) {
    if (pump.wire.length > 0 && net.next() < 0.9) {
      const [w] = pump.wire.splice(randomInt(net, 0, pump.wire.length - 1), 1);
      assert.ok(w !== undefined);
      if (net.next() < faults.loss) continue;
      if (net.next() < faults.duplicate) pump.wire.push(w);
      pump.send(w);
      if (net.next() < 0.2) pump.now += randomInt(net, 0, 5);
      continue;
    }
    const next = pump.nextWake();
    if (next === null && pump.wire.length === 0) return pump;
    // Ticks come late, or early (they must change nothing then).
    if (next !== null) pump.now = Math.max(pump.now, next + randomInt(net, -2, 3));
    for (const id of ids) pump.tick(id);
  }
  assert.fail(`seed ${seed} did not settle`);
}

/** An acceptor that forgets the phase-2 rule: it accepts below its promise. */
class AcceptsBelowPromise extends Acceptor<string> {
  protected override admitsAccept(): boolean {
    return true;
  }
}

class BrokenAcceptorMachine extends DecreeMachine {
  protected override createAcceptor(restored: AcceptorState<string> | null): Acceptor<string> {
    return new AcceptsBelowPromise(restored);
  }
}

/** Ballots without a fresh incarnation: a node restarted without disk repeats its ballots. */
class StaleIncarnationMachine extends DecreeMachine {
  readonly #id: string;
  constructor(config: DecreeConfig, restored: DecreeRecord | null) {
    super(config, restored);
    this.#id = config.id;
  }
  protected override makeBallot(round: number): Ballot {
    return { round, node: this.#id, incarnation: '0000000000000000' };
  }
}

describe('decree machine', () => {
  it('lets a single voter choose at once, voting through its own acceptor without a hop', () => {
    const pump = new Pump(['a']);
    const out = pump.propose('a', 3, 'x');
    assert.deepEqual(out.send, []);
    assert.deepEqual(
      out.events.map((e) => e.type),
      ['prepared', 'voted', 'chosen'],
    );
    assert.equal(pump.m('a').chosen(3), 'x');
    assert.equal(out.wakeAt, null);
    assert.ok(out.persist !== null);
    assert.equal(out.persist.acceptors[0]?.[0], 3);
    assert.equal(out.persist.acceptors[0][1].accepted?.value, 'x');
  });

  it('chooses one value among three machines, every message sent only to others', () => {
    const pump = new Pump(['a', 'b', 'c']);
    const out = pump.propose('a', 0, 'x');
    assert.deepEqual(
      out.send.map((e) => [e.to, e.message.type]),
      [
        ['b', 'paxos.prepare'],
        ['c', 'paxos.prepare'],
      ],
    );
    assert.equal(out.wakeAt, TIMEOUT);
    pump.settle();
    assert.equal(pump.m('a').chosen(0), 'x');
    assert.equal(pump.m('b').chosen(0), undefined, 'only the proposer learns');
    assert.deepEqual([...pump.chosenValues(0)], ['x']);
    assert.deepEqual(
      pump.events
        .filter((e) => e.event.type === 'voted')
        .map((e) => e.id)
        .sort(),
      ['a', 'b', 'c'],
    );
  });

  it('chooses one value among five machines with two of them down', () => {
    const pump = new Pump(['a', 'b', 'c', 'd', 'e']);
    pump.propose('c', 1, 'y');
    for (let i = 0; i < 10; i++) {
      pump.drop((w) => w.to === 'd' || w.to === 'e');
      pump.deliver((w) => w.to !== 'd' && w.to !== 'e');
    }
    assert.equal(pump.m('c').chosen(1), 'y');
  });

  it('runs instances independently', () => {
    const pump = new Pump(['a', 'b', 'c']);
    pump.propose('a', 0, 'x');
    pump.propose('b', 1, 'y');
    pump.settle();
    assert.equal(pump.m('a').chosen(0), 'x');
    assert.equal(pump.m('b').chosen(1), 'y');
    assert.equal(pump.m('a').chosen(1), undefined);
  });

  for (const n of [3, 5]) {
    it(`keeps two duelling proposers of ${n} machines in agreement under random order, loss and duplication`, () => {
      let decided = 0;
      for (let seed = 1; seed <= 150; seed++) {
        const pump = duel(n, seed);
        const values = pump.chosenValues(0);
        assert.ok(values.size <= 1, `seed ${seed}: chosen ${[...values].join(', ')}`);
        const a = pump.m('a').chosen(0);
        const b = pump.m('b').chosen(0);
        if (a !== undefined && b !== undefined) assert.equal(a, b, `seed ${seed}`);
        if (values.size === 1) decided++;
      }
      assert.ok(decided >= 140, `a value was chosen on only ${decided} of 150 seeds`);
    });
  }

  it('keeps duelling proposers in agreement when nothing is lost, and both learn the value', () => {
    for (let seed = 1; seed <= 100; seed++) {
      const pump = duel(3, seed, correct, { loss: 0, duplicate: 0.2 });
      const a = pump.m('a').chosen(0);
      assert.ok(a !== undefined, `seed ${seed}: a never saw a value chosen`);
      assert.equal(pump.m('b').chosen(0), a, `seed ${seed}`);
    }
  });

  it('has a duel harness that catches an acceptor accepting below its promise', () => {
    let caught = 0;
    for (let seed = 1; seed <= 150; seed++) {
      if (duel(3, seed, (c, r) => new BrokenAcceptorMachine(c, r)).chosenValues(0).size > 1) {
        caught++;
      }
    }
    // About one seed in five breaks agreement with this mutant; demand a clear signal.
    assert.ok(caught >= 10, `the broken acceptor was caught on only ${caught} of 150 seeds`);
  });

  it('persists its promise and keeps it when restored from the record', () => {
    const pump = new Pump(['a', 'b', 'c']);
    const high: Ballot = { round: 5, node: 'c', incarnation: 'cc' };
    const out = pump.send({
      from: 'c',
      to: 'b',
      message: { type: 'paxos.prepare', instance: 4, ballot: high },
    });
    assert.equal(out.send[0]?.message.type, 'paxos.promise');
    const record = out.persist;
    assert.ok(record !== null, 'a new promise is persisted before it is sent');
    assert.equal(record.maxRound, 5);

    const b = pump.boot('b', record);
    const low: Ballot = { round: 3, node: 'a', incarnation: 'aa' };
    const refused = b.handle(
      { type: 'message', from: 'a', message: { type: 'paxos.prepare', instance: 4, ballot: low } },
      1,
    );
    assert.deepEqual(refused.send, [
      { to: 'a', message: { type: 'paxos.reject', instance: 4, ballot: low, promised: high } },
    ]);
    const accept = b.handle(
      {
        type: 'message',
        from: 'a',
        message: { type: 'paxos.accept', instance: 4, ballot: { ...low, round: 4 }, value: 'v' },
      },
      1,
    );
    assert.equal(accept.send[0]?.message.type, 'paxos.reject');
    assert.deepEqual(accept.events, []);
    assert.equal(b.maxRound, 5);
    const own = b.propose(4, 'w', 2);
    const prepare = own.send[0]?.message;
    assert.ok(prepare?.type === 'paxos.prepare');
    assert.ok(prepare.ballot.round > 5, 'its own ballots climb above the restored round');
  });

  it('restored from its record keeps what it accepted and reports it', () => {
    const pump = new Pump(['a', 'b', 'c']);
    pump.propose('a', 0, 'x');
    pump.settle();
    const record = pump.records.get('b');
    assert.ok(record !== undefined);
    const b = pump.boot('b', record);
    const ballot: Ballot = { round: 9, node: 'c', incarnation: 'cc' };
    const out = b.handle(
      { type: 'message', from: 'c', message: { type: 'paxos.prepare', instance: 0, ballot } },
      0,
    );
    const promise = out.send[0]?.message;
    assert.ok(promise?.type === 'paxos.promise');
    assert.equal(promise.accepted?.value, 'x');
  });

  it('persists only when an acceptor or the highest round changed', () => {
    const pump = new Pump(['a', 'b', 'c']);
    const ballot: Ballot = { round: 2, node: 'a', incarnation: 'aa' };
    const prepare: Wire = {
      from: 'a',
      to: 'b',
      message: { type: 'paxos.prepare', instance: 0, ballot },
    };
    assert.notEqual(pump.send(prepare).persist, null);
    const again = pump.send(prepare);
    assert.equal(again.persist, null, 'a duplicate Prepare changes nothing');
    assert.equal(again.send[0]?.message.type, 'paxos.promise', 'but is answered again');
    const accept: Wire = {
      from: 'a',
      to: 'b',
      message: { type: 'paxos.accept', instance: 0, ballot, value: 'x' },
    };
    const voted = pump.send(accept);
    assert.notEqual(voted.persist, null);
    assert.deepEqual(voted.events, [{ type: 'voted', instance: 0, ballot, value: 'x' }]);
    const duplicate = pump.send(accept);
    assert.equal(duplicate.persist, null);
    assert.deepEqual(duplicate.events, [], 'a duplicate Accept is no new vote');
    assert.equal(duplicate.send[0]?.message.type, 'paxos.accepted');
  });

  it('answers Prepare and Accept for an instance it never heard of', () => {
    const pump = new Pump(['a', 'b', 'c']);
    const ballot: Ballot = { round: 1, node: 'a', incarnation: 'aa' };
    const out = pump.send({
      from: 'a',
      to: 'c',
      message: { type: 'paxos.accept', instance: 77, ballot, value: 'z' },
    });
    assert.deepEqual(out.send, [
      { to: 'a', message: { type: 'paxos.accepted', instance: 77, ballot } },
    ]);
  });

  it('ignores replies for instances it is not proposing in, and messages from strangers', () => {
    const pump = new Pump(['a', 'b', 'c']);
    const ballot: Ballot = { round: 1, node: 'a', incarnation: 'aa' };
    const stray = pump.send({
      from: 'b',
      to: 'a',
      message: { type: 'paxos.accepted', instance: 5, ballot },
    });
    assert.deepEqual(stray.send, []);
    assert.deepEqual(stray.events, []);
    pump.propose('a', 0, 'x');
    pump.drop(() => true);
    const a = pump.m('a');
    const mine = pump.eventsOf('a', 'prepared')[0]?.ballot;
    assert.ok(mine !== undefined);
    for (const from of ['x', 'y', 'z']) {
      const out = a.handle(
        {
          type: 'message',
          from,
          message: { type: 'paxos.promise', instance: 0, ballot: mine, accepted: null },
        },
        1,
      );
      assert.deepEqual(out.send, [], `${from} is no voter`);
    }
    const prepare = a.handle(
      {
        type: 'message',
        from: 'x',
        message: { type: 'paxos.prepare', instance: 0, ballot: { ...mine, round: 99 } },
      },
      1,
    );
    assert.deepEqual(prepare.send, []);
    assert.equal(prepare.persist, null);
  });

  it('does nothing on propose while an attempt runs or once a value was chosen here', () => {
    const pump = new Pump(['a', 'b', 'c']);
    pump.propose('a', 0, 'x');
    const again = pump.propose('a', 0, 'y');
    assert.deepEqual(again.send, []);
    assert.deepEqual(again.events, []);
    assert.equal(again.wakeAt, TIMEOUT, 'it still says when it wants a tick');
    pump.settle();
    assert.equal(pump.m('a').chosen(0), 'x');
    const after = pump.propose('a', 0, 'y');
    assert.deepEqual(after.send, []);
    assert.equal(pump.m('a').chosen(0), 'x');
  });

  it('learns the value already chosen when it proposes another one later', () => {
    const pump = new Pump(['a', 'b', 'c']);
    pump.propose('a', 0, 'x');
    pump.settle();
    pump.propose('c', 0, 'y');
    pump.settle();
    assert.equal(pump.m('c').chosen(0), 'x');
  });

  it('gives up after maxAttempts rounds without a majority, then may be asked again', () => {
    const pump = new Pump(['a', 'b', 'c'], 1, correct, 3);
    pump.propose('a', 0, 'x');
    for (let i = 0; i < 20 && pump.wake.get('a') !== null; i++) {
      pump.drop(() => true);
      pump.now = pump.wake.get('a') ?? pump.now;
      pump.tick('a');
    }
    assert.equal(pump.eventsOf('a', 'prepared').length, 3);
    assert.deepEqual(pump.eventsOf('a', 'gaveUp'), [{ type: 'gaveUp', instance: 0 }]);
    assert.equal(pump.wake.get('a'), null);
    pump.propose('a', 0, 'x');
    pump.settle();
    assert.equal(pump.m('a').chosen(0), 'x');
  });

  it('retries a timed-out round with a fresh ballot above every round seen, persisted before it is sent', () => {
    const pump = new Pump(['a', 'b', 'c']);
    pump.send({
      from: 'c',
      to: 'a',
      message: {
        type: 'paxos.prepare',
        instance: 9,
        ballot: { round: 40, node: 'c', incarnation: 'cc' },
      },
    });
    pump.drop(() => true);
    pump.propose('a', 0, 'x');
    pump.drop(() => true);
    for (let i = 0; i < 5 && pump.eventsOf('a', 'prepared').length < 2; i++) {
      pump.now = pump.wake.get('a') ?? pump.now;
      pump.tick('a');
    }
    const rounds = pump.eventsOf('a', 'prepared').map((e) => e.ballot.round);
    assert.deepEqual(rounds, [41, 42]);
    assert.equal(pump.records.get('a')?.maxRound, 42);
  });

  it('counts a tick before the timeout as nothing', () => {
    const pump = new Pump(['a', 'b', 'c']);
    pump.propose('a', 0, 'x');
    pump.drop(() => true);
    pump.now = TIMEOUT - 1;
    pump.tick('a');
    assert.equal(pump.eventsOf('a', 'prepared').length, 1);
    assert.equal(pump.wake.get('a'), TIMEOUT);
  });

  it('rejects a configuration without itself among the peers', () => {
    const base = new Pump(['a']).config('a');
    assert.throws(() => new DecreeMachine({ ...base, peers: ['b', 'c'] }, null), ConfigError);
    assert.throws(() => new DecreeMachine({ ...base, roundTimeoutMs: 0 }, null), ConfigError);
    assert.throws(() => new DecreeMachine({ ...base, maxAttempts: 0 }, null), ConfigError);
  });

  describe('ballots and incarnations', () => {
    /**
     * a proposes x; b and a vote, c never does, and the Accepts of x to b and c are delayed.
     * a restarts without disk and proposes y with b. Then the delayed Accepts of x arrive, and
     * c, cut off from a, proposes. Returns the values chosen.
     */
    function restartWithDelayedAccepts(factory: Factory): {
      a: string | undefined;
      c: string | undefined;
      all: Set<string>;
    } {
      const pump = new Pump(['a', 'b', 'c'], 1, factory);
      pump.boot('a', null, '0000000000000001');
      pump.propose('a', 0, 'x');
      pump.drop((w) => w.to === 'c');
      pump.deliver((w) => w.message.type === 'paxos.prepare');
      pump.deliver((w) => w.message.type === 'paxos.promise');
      const delayed = pump.hold((w) => w.message.type === 'paxos.accept');
      assert.equal(delayed.length, 2);

      const a2 = pump.boot('a', null, '0000000000000002');
      pump.propose('a', 0, 'y');
      pump.drop((w) => w.to === 'c');
      pump.settle();
      assert.equal(a2.chosen(0), 'y');

      for (const w of delayed) pump.send(w);
      pump.drop((w) => w.to === 'a');
      pump.propose('c', 0, 'z');
      for (let i = 0; i < 10; i++) {
        pump.drop((w) => w.to === 'a');
        pump.deliver((w) => w.to !== 'a');
      }
      return { a: a2.chosen(0), c: pump.m('c').chosen(0), all: pump.chosenValues(0) };
    }

    it('gives a restarted node a ballot it never used before, so a delayed Accept cannot mix with it', () => {
      const result = restartWithDelayedAccepts(correct);
      assert.equal(result.c, 'y');
      assert.deepEqual([...result.all], ['y']);
    });

    it('shows that ballots without a fresh incarnation let two values be chosen', () => {
      const result = restartWithDelayedAccepts((c, r) => new StaleIncarnationMachine(c, r));
      assert.equal(result.a, 'y');
      assert.equal(result.c, 'x', 'the reused ballot let x join the votes for y');
      assert.equal(result.all.size, 2);
    });

    it('takes every ballot it sends from makeBallot', () => {
      const made: Ballot[] = [];
      class Recording extends DecreeMachine {
        protected override makeBallot(round: number): Ballot {
          const ballot = super.makeBallot(round);
          made.push(ballot);
          return ballot;
        }
      }
      for (let seed = 1; seed <= 20; seed++) {
        made.length = 0;
        const pump = duel(3, seed, (c, r) =>
          c.id === 'a' ? new Recording(c, r) : new DecreeMachine(c, r),
        );
        const sentByA = pump.events
          .filter((e) => e.id === 'a' && (e.event.type === 'prepared' || e.event.type === 'chosen'))
          .map((e) =>
            e.event.type === 'prepared' || e.event.type === 'chosen' ? e.event.ballot : null,
          );
        assert.ok(made.length > 0);
        for (const ballot of sentByA) {
          assert.ok(
            made.some((m) => ballotEquals(m, ballot)),
            `seed ${seed}: a ballot not from makeBallot`,
          );
        }
      }
    });
  });
});
