import assert from 'node:assert/strict';
import {
  LEASE_MUTANTS,
  machineWith,
  NoIncarnationProposer,
  NoSilenceAcceptor,
  OverwritingAcceptor,
  VotesWhileSilentAcceptor,
} from '../sim/mutants.js';
import { between, is, Scenario, type Wire } from './harness.js';

type Factory = (typeof LEASE_MUTANTS)[keyof typeof LEASE_MUTANTS];

const L = 1000;
const RHO = 0.01;
const BELIEVE = (L * (1 - RHO)) / (1 + RHO) - 10;

/** Runs until someone leads and returns who. */
function awaitLeader(s: Scenario, maxMs = 3 * L): string {
  s.runUntilTrue(() => s.leaders().length > 0, maxMs, 'an election');
  const [leader] = s.leaders();
  assert.ok(leader !== undefined);
  return leader;
}

/** An empty stored record for each node: a first start with storage, no recovery exchange. */
const STORED = {
  n: { promised: null, maxRound: 0 },
  a: { promised: null, maxRound: 0 },
  x: { promised: null, maxRound: 0 },
};

/**
 * The core without the term recovery, for a schedule that stalls the node a restarted voter
 * would have to hear from: the recovery would keep that voter out (safe, but it hides the rule
 * the schedule is about).
 */
const WITHOUT_RECOVERY = machineWith({ termRecovery: false });

function term(s: Scenario, id: string): number {
  const t = s.machine(id).term;
  assert.ok(t !== null, `${id} holds no lease`);
  return t;
}

/**
 * a leads on a clock at `leaderRate`, b and c follow at `followerRate`; right after a renewal a
 * is cut off, and b and c take over as early as their acceptors' timers allow.
 */
function driftRun(o: {
  rho: number;
  leaderRate: number;
  followerRate: number;
  seed?: number;
  factory?: Factory;
}): Scenario {
  const s = new Scenario({
    ids: ['a', 'b', 'c'],
    leaseMs: 10_000,
    maxClockDrift: o.rho,
    rates: { a: o.leaderRate, b: o.followerRate, c: o.followerRate },
    delayMs: 1,
    ...(o.seed === undefined ? {} : { seed: o.seed }),
    ...(o.factory ? { factory: o.factory } : {}),
  });
  s.start();
  // a wins: the others' campaigns are dropped until it does.
  const quiet = s.rule((w) => w.message.type === 'lease.prepare' && w.from !== 'a', 'drop');
  s.runUntilTrue(() => s.leaders().includes('a'), 5 * s.leaseMs, 'a elected');
  quiet();
  // Right after its first renewal, a is cut off; b and c take over as early as they may.
  s.runUntilTrue(() => s.sent.filter(is('lease.accept', 'a')).length >= 4, s.leaseMs, 'a renewal');
  s.run(5);
  s.rule((w) => w.from === 'a' || w.to === 'a', 'drop');
  s.runUntilTrue(() => s.leaders().some((id) => id !== 'a'), 3 * s.leaseMs, 'a successor');
  s.run(2 * s.leaseMs);
  return s;
}

describe('named fault schedules', () => {
  it('duelling proposers: campaigns that cross end with one leader; ranked waits keep them apart', () => {
    const duelsOf = (factory?: Factory): number => {
      let duels = 0;
      for (let seed = 1; seed <= 20; seed++) {
        // Delays of a twentieth of the lease: rounds take long enough that campaigns cross.
        const s = new Scenario({
          ids: ['a', 'b', 'c'],
          seed,
          delayMs: L / 20,
          ...(factory ? { factory } : {}),
        });
        s.start();
        const leader = awaitLeader(s);
        const campaigners = new Set(s.sent.filter(is('lease.prepare')).map((w) => w.from));
        if (campaigners.size > 1) duels++;
        s.run(10 * L);
        assert.deepEqual(s.leaders(), [leader], `seed ${seed}: the winner keeps the lease`);
        s.assertSafe();
      }
      return duels;
    };
    // One shared window for everyone: campaigns cross often, and still end with one leader.
    const narrow = duelsOf(LEASE_MUTANTS.narrowWaits);
    assert.ok(narrow >= 5, `only ${narrow} of 20 seeds duelled with one window for all`);
    // Waits ranked a slot apart: the first campaign wins before the next one starts.
    assert.equal(duelsOf(), 0);
  });

  it('one-way partition of the leader: it hears nothing back, lapses, and a successor follows', () => {
    const s = new Scenario({ ids: ['a', 'b', 'c'] });
    s.start();
    const old = awaitLeader(s);
    const oldTerm = term(s, old);
    // The leader's messages still go out, but nothing reaches it.
    s.rule((w) => w.to === old, 'drop');
    const cutAt = s.t;
    s.runUntilTrue(() => !s.leaders().includes(old), 2 * L, 'the old leader stepping down');
    assert.ok(s.t - cutAt <= BELIEVE + 1, 'it stepped down by its own deadline');
    s.runUntilTrue(() => s.leaders().length === 1, 4 * L, 'a successor');
    const next = s.leaders()[0];
    assert.ok(next !== undefined && next !== old);
    assert.ok(term(s, next) > oldTerm);
    s.run(5 * L);
    s.assertSafe();
  });

  it('one-way partition of the leader: it is heard by none, keeps believing alone until its deadline', () => {
    const s = new Scenario({ ids: ['a', 'b', 'c'] });
    s.start();
    const old = awaitLeader(s);
    s.rule((w) => w.from === old, 'drop');
    s.runUntilTrue(
      () => s.leaders().some((id) => id !== old),
      4 * L,
      'a successor while the old leader is muted',
    );
    s.run(5 * L);
    s.assertSafe();
  });

  it('a leader stalled longer than a lease acts on nothing when it resumes', () => {
    const run = (factory?: Factory): { s: Scenario; acted: boolean; old: string } => {
      const s = new Scenario({ ids: ['a', 'b', 'c'], ...(factory ? { factory } : {}) });
      s.start();
      const old = awaitLeader(s);
      s.run(L / 2);
      s.stall(old, 3 * L);
      s.runUntilTrue(() => s.leaders().some((id) => id !== old), 4 * L, 'a successor');
      s.runUntil(s.node(old).stalledUntil - 1);
      // Its application's timer was due before the lease timer: after the stall it runs first.
      s.resume(old);
      const acted = s.act(old);
      s.run(3 * L);
      return { s, acted, old };
    };
    const { s, acted, old } = run();
    assert.equal(acted, false, 'its clock says the lease is over, whatever its timers say');
    assert.equal(s.leaders().includes(old), false);
    s.assertSafe();
    const broken = run(LEASE_MUTANTS.flagLeader);
    assert.ok(broken.s.checker.violations.some((v) => v.kind === 'actionOutsideLease'));
  });

  it('clock drift at the bound, both ways: a slow leader and fast followers never overlap', () => {
    driftRun({ rho: RHO, leaderRate: 1 - RHO, followerRate: 1 + RHO }).assertSafe();
    driftRun({ rho: RHO, leaderRate: 1 + RHO, followerRate: 1 - RHO }).assertSafe();
    const broken = driftRun({
      rho: RHO,
      leaderRate: 1 - RHO,
      followerRate: 1 + RHO,
      factory: LEASE_MUTANTS.noDrift,
    });
    assert.ok(
      broken.checker.violations.some((v) => v.kind === 'leaseOverlap'),
      'believing L − margin with a slow clock against fast ones gives two leaders here',
    );
  });

  it('a drift bound of 20%: the allowance covers a slow leader and fast acceptors, whatever the jitter', () => {
    // At ρ = 0.2 an allowance of L·(1−ρ) instead of L·(1−ρ)/(1+ρ) leaves the leader believing
    // about L/6 after its acceptors forgot it: longer than any follower's first wait (L/10), so
    // the successor lands inside that gap on every seed, not only on lucky ones.
    const rho = 0.2;
    for (let seed = 1; seed <= 10; seed++) {
      driftRun({ rho, leaderRate: 1 - rho, followerRate: 1 + rho, seed }).assertSafe();
      driftRun({ rho, leaderRate: 1 + rho, followerRate: 1 - rho, seed }).assertSafe();
      for (const factory of [LEASE_MUTANTS.noDrift, LEASE_MUTANTS.halfDrift]) {
        const broken = driftRun({ rho, leaderRate: 1 - rho, followerRate: 1 + rho, seed, factory });
        assert.ok(
          broken.checker.violations.some((v) => v.kind === 'leaseOverlap'),
          `seed ${seed}: a drift allowance too small gives two leaders here`,
        );
      }
    }
  });

  it('slow votes do not stretch the lease: it is timed from before the Prepare', () => {
    const run = (factory?: Factory): Scenario => {
      const s = new Scenario({ ids: ['a', 'b', 'c'], delayMs: 1, ...(factory ? { factory } : {}) });
      s.start();
      const quiet = s.rule((w) => w.message.type === 'lease.prepare' && w.from !== 'a', 'drop');
      s.runUntilTrue(() => s.leaders().includes('a'), 3 * L, 'a elected');
      quiet();
      // The votes of a's next renewal come back slowly; then a is cut off.
      const slow = s.rule(is('lease.accepted', undefined, 'a'), L / 5);
      s.runUntilTrue(
        () => s.sent.filter(is('lease.accepted', undefined, 'a')).length >= 4,
        L,
        'votes',
      );
      s.run(L / 5 + 2);
      slow();
      s.rule((w) => w.from === 'a' || w.to === 'a', 'drop');
      s.runUntilTrue(() => s.leaders().some((id) => id !== 'a'), 3 * L, 'a successor');
      s.run(2 * L);
      return s;
    };
    run().assertSafe();
    // Timing every round from its majority, or only renewals: the round here is a renewal.
    for (const factory of [LEASE_MUTANTS.timerFromMajority, LEASE_MUTANTS.renewalFromMajority]) {
      const broken = run(factory);
      assert.ok(broken.checker.violations.some((v) => v.kind === 'leaseOverlap'));
    }
  });

  it('an acceptor that promised, restarted and came back stays silent for a lease', () => {
    const run = (factory?: Factory): { s: Scenario; leader: string; midway: string[] } => {
      const s = new Scenario({ ids: ['a', 'b', 'c'], ...(factory ? { factory } : {}) });
      s.start();
      const leader = awaitLeader(s);
      const [voter, other] = ['a', 'b', 'c'].filter((id) => id !== leader) as [string, string];
      // The other follower hears nothing more from the leader, so it will campaign once the
      // lease it last heard of lapses, about a lease period from now.
      s.rule(between(leader, other), 'drop');
      s.run(0.6 * L);
      // The voter dies right after acknowledging a renewal, returns at once without its disk,
      // and the leader's next messages to it are slow: only the silence protects the lease.
      const before = s.sent.filter(is('lease.accepted', voter, leader)).length;
      s.runUntilTrue(
        () => s.sent.filter(is('lease.accepted', voter, leader)).length > before,
        L,
        'a vote',
      );
      s.crash(voter);
      s.restart(voter, { storage: false });
      const slow = s.rule(between(leader, voter), 'drop');
      s.run(L / 2);
      const midway = s.leaders();
      s.run(L / 2);
      slow();
      return { s, leader, midway };
    };
    const { s, leader, midway } = run();
    assert.deepEqual(midway, [leader], 'the restarted voter gave the challenger nothing');
    s.run(4 * L);
    s.assertSafe();
    // Without silence at all, or with an acceptor that votes while its node keeps quiet. The term
    // recovery stands in front of the silence here too (the restarted voter would wait for the
    // leader's answer, which the slow link holds): the broken runs turn it off as well.
    for (const acceptor of [NoSilenceAcceptor, VotesWhileSilentAcceptor]) {
      const broken = run(machineWith({ acceptor, termRecovery: false }));
      assert.ok(broken.s.checker.violations.some((v) => v.kind === 'leaseOverlap'));
    }
  });

  it('a promise sent just before its sender crashed, counted while the proposer stalled, cannot overwrite a live lease', () => {
    const run = (factory?: Factory): Scenario => {
      const s = new Scenario({
        ids: ['p', 'x', 'a'],
        // x has been around: its rounds are far above anything p will use. Every node starts
        // from storage, so the first start needs no recovery exchange.
        records: {
          x: { promised: null, maxRound: 20 },
          p: { promised: null, maxRound: 0 },
          a: { promised: null, maxRound: 0 },
        },
        factory: factory ?? WITHOUT_RECOVERY,
      });
      // p never hears from x, nor x from p; a campaigns for nobody; x's Releases are lost.
      s.rule((w) => (w.from === 'x' && w.to === 'p') || (w.from === 'p' && w.to === 'x'), 'drop');
      s.rule(is('lease.release', 'x'), 'drop');
      s.rule((w) => w.from === 'a' && w.message.type === 'lease.prepare', 'drop');
      s.start('x', 'a');
      // a promises x's ballot and dies right after: the promise is in flight, x counts it.
      s.runUntilTrue(() => s.sent.some(is('lease.promise', 'a', 'x')), 3 * L, "a's promise to x");
      s.crash('a');
      const holdAccept = s.rule(is('lease.accept', 'x', 'a'), 'hold');
      s.runUntilTrue(() => s.held.length > 0, L, "x's Accept to a");
      holdAccept();
      // x stalls with its Accept to a still in flight.
      s.stall('x', 4 * L);
      s.restart('a', { storage: false });
      s.start('p');
      // After their silence, p and a elect p, with a ballot below x's that p never heard of.
      s.runUntilTrue(() => s.leaders().includes('p'), 4 * L, 'p elected');
      // x's old Accept reaches a; x resumes and campaigns again.
      s.release();
      s.run(5);
      s.resume('x');
      s.run(2 * L);
      return s;
    };
    const good = run();
    good.assertSafe();
    assert.deepEqual(good.leaders(), ['p'], 'p keeps its lease');
    const broken = run(machineWith({ acceptor: OverwritingAcceptor, termRecovery: false }));
    assert.ok(
      broken.checker.violations.some((v) => v.kind === 'leaseOverlap'),
      'an acceptor that lets an Accept overwrite a live lease gives two leaders here',
    );
  });

  it('a renewal Accept delayed past the lease, delivered to a node that never saw the round, backs nobody', () => {
    const s = new Scenario({ ids: ['a', 'b', 'c'] });
    s.start();
    const leader = awaitLeader(s);
    const [b, c] = ['a', 'b', 'c'].filter((id) => id !== leader) as [string, string];
    // c never sees the next round's Prepare, and its Accept reaches c two leases late.
    s.rule(is('lease.prepare', leader, c), 'drop');
    const hold = s.rule(is('lease.accept', leader, c), 'hold');
    s.runUntilTrue(() => s.held.length > 0, L, 'a renewal Accept to c');
    hold();
    // Then the leader dies.
    s.crash(leader);
    s.run(2 * L);
    s.release();
    s.run(4 * L);
    const next = s.leaders();
    assert.equal(next.length, 1, 'a successor leads');
    assert.ok([b, c].includes(next[0] ?? ''));
    s.assertSafe();
  });

  it('a Release delayed until after its owner won the next round clears nothing of the new lease', () => {
    const run = (factory?: Factory): Scenario => {
      const s = new Scenario({
        ids: ['n', 'a', 'x'],
        records: STORED,
        ...(factory ? { factory } : {}),
      });
      s.start();
      // n leads; x never hears from n (so x will campaign the moment a is free).
      const quiet = s.rule((w) => w.message.type === 'lease.prepare' && w.from !== 'n', 'drop');
      s.rule((w) => w.from === 'n' && w.to === 'x', 'drop');
      s.runUntilTrue(() => s.leaders().includes('n'), 3 * L, 'n elected');
      // n stops; its Release to a is held back.
      s.rule(is('lease.release', 'n', 'a'), 'hold');
      s.stop('n', true);
      // n comes back (a new incarnation) and wins again through a.
      s.restart('n', { storage: true });
      s.runUntilTrue(() => s.leaders().includes('n'), 4 * L, 'n elected again');
      // The stale Release reaches a; x is free to campaign from now on.
      s.release();
      quiet();
      s.run(2 * L);
      return s;
    };
    const good = run();
    good.assertSafe();
    const broken = run(LEASE_MUTANTS.releaseClearsAny);
    assert.ok(
      broken.checker.violations.some((v) => v.kind === 'leaseOverlap'),
      "a Release that clears another owner's value gives two leaders here",
    );
  });

  it('a Release of an abandoned round, delayed until its owner won the next round, clears nothing of it', () => {
    const run = (seed: number, factory?: Factory): Scenario => {
      const s = new Scenario({
        ids: ['p', 'a', 'q'],
        seed,
        // q's rounds are far above p's (it has been around), p's above a's own first round.
        // Every node starts from storage: no recovery exchange at the first start.
        records: {
          p: { promised: null, maxRound: 10 },
          q: { promised: null, maxRound: 20 },
          a: { promised: null, maxRound: 0 },
        },
        ...(factory ? { factory } : {}),
      });
      // p and q never hear each other; a campaigns for nobody; q keeps quiet until the end.
      s.rule((w) => (w.from === 'p' && w.to === 'q') || (w.from === 'q' && w.to === 'p'), 'drop');
      s.rule((w) => w.from === 'a' && w.message.type === 'lease.prepare', 'drop');
      const quiet = s.rule((w) => w.from === 'q' && w.message.type === 'lease.prepare', 'drop');
      // a's vote for p's first round is lost: the round times out in phase 2 and p releases it,
      // but that Release to a is held back.
      const lostVote = s.rule(is('lease.accepted', 'a', 'p'), 'drop');
      const holdRelease = s.rule(is('lease.release', 'p', 'a'), 'hold');
      s.start();
      s.runUntilTrue(() => s.held.length > 0, 4 * L, "p's Release of its abandoned round");
      holdRelease();
      lostVote();
      // p wins its next round through a; then the old Release reaches a, and q campaigns.
      s.runUntilTrue(() => s.leaders().includes('p'), 2 * L, 'p elected in its next round');
      s.release();
      quiet();
      s.run(2 * L);
      return s;
    };
    for (let seed = 1; seed <= 10; seed++) {
      run(seed).assertSafe();
      for (const factory of [LEASE_MUTANTS.releaseIgnoresBallot, LEASE_MUTANTS.releaseClearsAny]) {
        assert.ok(
          run(seed, factory).checker.violations.some((v) => v.kind === 'leaseOverlap'),
          `seed ${seed}: a Release that clears a later round of its owner gives two leaders here`,
        );
      }
    }
  });

  it("a vote for a proposer's older round, arriving during its next round, is not counted for it", () => {
    const run = (seed: number, factory?: Factory): { s: Scenario; pLed: boolean } => {
      const s = new Scenario({
        ids: ['p', 'a', 'q'],
        seed,
        // Every node starts from storage: no recovery exchange at the first start.
        records: {
          p: { promised: null, maxRound: 10 },
          a: { promised: null, maxRound: 0 },
          q: { promised: null, maxRound: 0 },
        },
        ...(factory ? { factory } : {}),
      });
      // Only p campaigns at first; q's votes never reach p, and neither does any Release of p.
      const quiet = s.rule((w) => w.from !== 'p' && w.message.type === 'lease.prepare', 'drop');
      s.rule((w) => w.from === 'q' && w.to === 'p', 'drop');
      s.rule(is('lease.release', 'p'), 'drop');
      // a's vote for p's first round is held back: that round times out in phase 2.
      const holdVote = s.rule(is('lease.accepted', 'a', 'p'), 'hold');
      s.start();
      s.runUntilTrue(() => s.held.length > 0, 4 * L, "a's vote for p's first round");
      holdVote();
      // From now on p's Accepts reach nobody: a and q hold p's first round only, for a lease.
      s.rule(is('lease.accept', 'p'), 'drop');
      s.runUntilTrue(
        () => s.sent.filter(is('lease.accept', 'p', 'a')).length >= 2,
        2 * L,
        "p's next Accept",
      );
      // The old vote arrives while p's second round waits for votes.
      assert.equal(s.release(), 1);
      s.run(5);
      const pLed = s.leaders().includes('p');
      // p is cut off; a and q campaign once p's first round lapses on their clocks.
      s.rule((w) => w.from === 'p', 'drop');
      quiet();
      s.run(3 * L);
      return { s, pLed };
    };
    for (let seed = 1; seed <= 10; seed++) {
      const good = run(seed);
      assert.equal(good.pLed, false, `seed ${seed}: p's second round had no majority`);
      assert.equal(good.s.leaders().length, 1, `seed ${seed}: a successor leads`);
      good.s.assertSafe();
      const broken = run(seed, LEASE_MUTANTS.staleVotes);
      assert.ok(
        broken.s.checker.violations.some((v) => v.kind === 'leaseOverlap'),
        `seed ${seed}: counting the old vote gives two leaders here`,
      );
    }
  });

  it('stop() during a renewal in flight releases that renewal too, and the successor leads at once', () => {
    const s = new Scenario({ ids: ['a', 'b', 'c'], delayMs: 2 });
    s.start();
    const old = awaitLeader(s);
    s.runUntilTrue(
      () => s.sent.filter(is('lease.prepare', old)).length >= 4,
      L,
      'a renewal under way',
    );
    const renewal = [...s.sent].reverse().find(is('lease.prepare', old));
    assert.ok(renewal?.message.type === 'lease.prepare');
    const stoppedAt = s.t;
    s.stop(old, true);
    const release = s.sent.find(is('lease.release', old));
    assert.ok(release?.message.type === 'lease.release');
    assert.deepEqual(
      release.message.ballot,
      renewal.message.ballot,
      'the Release covers the renewal',
    );
    s.runUntilTrue(() => s.leaders().length === 1, L, 'a successor');
    assert.ok(s.t - stoppedAt <= 12, `handoff took ${s.t - stoppedAt} ms (five delays of 2 ms)`);
    s.run(3 * L);
    s.assertSafe();
  });

  it('a ballot made without the incarnation is reused after a restart without disk', () => {
    const run = (factory?: Factory): Scenario => {
      const s = new Scenario({ ids: ['a', 'b', 'c'], ...(factory ? { factory } : {}) });
      s.start();
      s.rule((w) => w.message.type === 'lease.prepare' && w.from !== 'a', 'drop');
      s.runUntilTrue(() => s.leaders().includes('a'), 3 * L, 'a elected');
      s.run(L); // a few renewals: rounds 2, 3, 4
      s.crash('a');
      // a returns without disk and hears nothing during its silence: its rounds start over.
      const deaf = s.rule((w: Wire) => w.to === 'a', 'drop');
      s.restart('a', { storage: false });
      s.run(L + L / 5);
      deaf();
      s.run(2 * L);
      return s;
    };
    run().assertSafe();
    // Once a hears the others again it would learn their rounds (term recovery) and climb above
    // its old ones: the broken run turns that off too, to show the incarnation on its own.
    const broken = run(machineWith({ proposer: NoIncarnationProposer, termRecovery: false }));
    assert.ok(broken.checker.violations.some((v) => v.kind === 'ballotReused'));
  });
  it('two of three back without storage while the third is cut off: after the heal all three follow one leader, in a term above the one it saw', () => {
    const high = { promised: null, maxRound: 90 };
    const run = (factory?: Factory) => {
      const s = new Scenario({
        ids: ['a', 'b', 'c'],
        records: { a: high, b: high, c: high },
        ...(factory ? { factory } : {}),
      });
      s.start();
      const first = awaitLeader(s);
      s.run(L / 2);
      const seen = term(s, first);
      const viewOf = (id: string): string | null => {
        const view = s.machine(id).leader(s.local(id));
        return view === null ? null : `${view.owner.node}@${view.term}`;
      };
      // c is cut off; a and b die and come back without their storage: a majority forgot at
      // once, so the terms they make may start lower than the one c reported.
      const cut = s.rule((w) => w.from === 'c' || w.to === 'c', 'drop');
      s.crash('a');
      s.crash('b');
      s.restart('a', { storage: false });
      s.restart('b', { storage: false });
      s.run(4 * L);
      const duringCut = s.leaders();
      const lowTerm = duringCut[0] === undefined ? null : term(s, duringCut[0]);
      cut();
      s.run(2 * L);
      const leaders = s.leaders();
      return { s, seen, lowTerm, leaders, views: ['a', 'b', 'c'].map(viewOf) };
    };
    const good = run();
    assert.ok(good.lowTerm !== null && good.lowTerm < good.seen, 'a lower term while c was away');
    assert.equal(good.leaders.length, 1, 'a leader within two lease periods of the heal');
    const [leader] = good.leaders as [string];
    const leaderTerm = term(good.s, leader);
    assert.ok(leaderTerm > good.seen, `term ${leaderTerm} after ${good.seen}`);
    assert.deepEqual(
      good.views,
      [1, 2, 3].map(() => `${leader}@${leaderTerm}`),
    );
    good.s.assertSafe();
    // A leader that keeps its lower term: c, which reported the higher one, names nobody.
    const broken = run(LEASE_MUTANTS.noFreshTerm);
    assert.equal(broken.leaders.length, 1);
    assert.equal(broken.views[2], null, 'c stays on "no leader"');
  });

  it('one node back without storage while another is away: no term below one already used', () => {
    const run = (factory?: Factory) => {
      const s = new Scenario({
        ids: ['a', 'b', 'c'],
        // a and b have been around; c starts behind and is cut off from the start.
        records: {
          a: { promised: null, maxRound: 90 },
          b: { promised: null, maxRound: 90 },
          c: { promised: null, maxRound: 0 },
        },
        ...(factory ? { factory } : {}),
      });
      const cut = s.rule((w) => w.from === 'c' || w.to === 'c', 'drop');
      s.start();
      const first = awaitLeader(s);
      const seen = term(s, first);
      const [voter] = ['a', 'b'].filter((id) => id !== first) as [string];
      // The voter returns without storage; the leader goes down; c is back.
      s.crash(voter);
      s.restart(voter, { storage: false });
      s.crash(first);
      cut();
      s.run(4 * L);
      const whileDown = s.leaders();
      // The old leader returns (with its storage): now the voter can learn the rounds seen.
      s.restart(first, { storage: true });
      s.run(3 * L);
      return { s, seen, whileDown, leaders: s.leaders() };
    };
    const good = run();
    // Two of three nodes are faulty here (one down, one forgot): no leader rather than an old term.
    assert.deepEqual(good.whileDown, []);
    assert.equal(good.leaders.length, 1);
    const [leader] = good.leaders as [string];
    assert.ok(term(good.s, leader) > good.seen, `term ${term(good.s, leader)} after ${good.seen}`);
    good.s.assertSafe();
    const broken = run(LEASE_MUTANTS.noTermRecovery);
    assert.ok(broken.s.checker.violations.some((v) => v.kind === 'termRegressed'));
  });
  it('at the round limit a node sends no ballot twice: it stops campaigning and its lease lapses', () => {
    const LIMIT = 2 ** 48;
    const near = { promised: null, maxRound: LIMIT - 3 };
    const s = new Scenario({ ids: ['a', 'b', 'c'], records: { a: near, b: near, c: near } });
    s.start();
    const quiet = s.rule((w) => w.message.type === 'lease.prepare' && w.from !== 'a', 'drop');
    s.runUntilTrue(() => s.leaders().includes('a'), 5 * L, 'a elected');
    quiet();
    for (let i = 0; i < 40; i++) {
      s.run(L / 4);
      for (const id of ['a', 'b', 'c']) s.act(id);
    }
    // Rounds used up: nobody leads any more, and no ballot was ever sent twice (a renewal that
    // reused its ballot let a duplicate Accept stand for it: two leaders).
    s.assertSafe();
    assert.deepEqual(s.leaders(), []);
    const rounds = s.sent
      .filter(is('lease.prepare'))
      .map((w) => (w.message.type === 'lease.prepare' ? w.message.ballot.round : 0));
    assert.ok(rounds.every((r) => r < LIMIT));
  });
});
