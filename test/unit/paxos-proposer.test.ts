import assert from 'node:assert/strict';
import type { Ballot } from '../../lib/paxos/ballot.js';
import { Proposer, type ProposerAction, type ProposerConfig } from '../../lib/paxos/proposer.js';
import { createRng, type Rng } from '../../lib/random.js';

const TIMEOUT = 100;
const BACKOFF = 10;

const ballot = (round: number, node = 'a', incarnation = 'i1'): Ballot => ({
  round,
  node,
  incarnation,
});

/** An Rng that returns `values` in turn, then repeats the last one. */
function fixedRng(...values: number[]): Rng {
  let i = 0;
  return { next: () => values[Math.min(i++, values.length - 1)] ?? 0 };
}

function proposer(
  overrides: Partial<ProposerConfig> = {},
  value = 'mine',
  maxRoundSeen = 0,
): Proposer<string> {
  const config: ProposerConfig = {
    peers: ['a', 'b', 'c'],
    rng: fixedRng(0.5),
    roundTimeoutMs: TIMEOUT,
    backoffMs: BACKOFF,
    makeBallot: (round) => ballot(round),
    ...overrides,
  };
  return new Proposer(config, value, maxRoundSeen);
}

function onlyAction(actions: ProposerAction<string>[]): ProposerAction<string> {
  assert.equal(actions.length, 1, JSON.stringify(actions));
  const [action] = actions;
  assert.ok(action !== undefined);
  return action;
}

/** Runs phase 1 to a majority of empty promises. */
function prepared(p: Proposer<string>, voters: string[], now = 0): ProposerAction<string>[] {
  const round = p.ballot;
  assert.ok(round !== null);
  let last: ProposerAction<string>[] = [];
  for (const v of voters) last = p.onPromise(v, round, null, now);
  return last;
}

describe('paxos proposer', () => {
  it('starts with a Prepare whose round is above every round seen', () => {
    const p = proposer({}, 'mine', 41);
    assert.deepEqual(p.start(0), [{ type: 'prepare', ballot: ballot(42) }]);
    assert.equal(p.status, 'preparing');
    assert.deepEqual(p.start(0), [], 'starting twice does nothing');
  });

  it('waits for a majority of promises before sending Accept', () => {
    const p = proposer({ peers: ['a', 'b', 'c', 'd', 'e'] });
    p.start(0);
    assert.deepEqual(p.onPromise('a', ballot(1), null, 1), []);
    assert.deepEqual(p.onPromise('b', ballot(1), null, 1), []);
    assert.equal(p.status, 'preparing');
    const accept = onlyAction(p.onPromise('c', ballot(1), null, 1));
    assert.deepEqual(accept, { type: 'accept', ballot: ballot(1), value: 'mine' });
  });

  it('proposes its own value when no promise reports an accepted one', () => {
    const p = proposer({}, 'own');
    p.start(0);
    assert.deepEqual(prepared(p, ['a', 'b']), [
      { type: 'accept', ballot: ballot(1), value: 'own' },
    ]);
  });

  it('adopts the value of the highest-ballot accepted report, whatever order they came in', () => {
    const p = proposer({ peers: ['a', 'b', 'c', 'd', 'e'] }, 'own', 9);
    p.start(0);
    const b = ballot(10);
    p.onPromise('b', b, { ballot: ballot(7, 'c'), value: 'high' }, 1);
    p.onPromise('c', b, { ballot: ballot(3, 'e'), value: 'low' }, 1);
    const accept = onlyAction(p.onPromise('d', b, null, 1));
    assert.deepEqual(accept, { type: 'accept', ballot: b, value: 'high' });
  });

  it('compares reports by the whole ballot, not by round alone', () => {
    const p = proposer({}, 'own', 9);
    p.start(0);
    p.onPromise('b', ballot(10), { ballot: ballot(7, 'e'), value: 'from-e' }, 1);
    const accept = onlyAction(
      p.onPromise('c', ballot(10), { ballot: ballot(7, 'b'), value: 'from-b' }, 1),
    );
    assert.deepEqual(accept, { type: 'accept', ballot: ballot(10), value: 'from-e' });
  });

  it('never counts a duplicate promise twice', () => {
    const p = proposer();
    p.start(0);
    assert.deepEqual(p.onPromise('b', ballot(1), null, 1), []);
    assert.deepEqual(p.onPromise('b', ballot(1), null, 1), []);
    assert.equal(p.status, 'preparing');
  });

  it('never counts a duplicate Accepted twice, and declares the value chosen on a majority', () => {
    const p = proposer();
    p.start(0);
    prepared(p, ['a', 'b']);
    assert.deepEqual(p.onAccepted('b', ballot(1)), []);
    assert.deepEqual(p.onAccepted('b', ballot(1)), []);
    assert.equal(p.chosen, null);
    const chosen = onlyAction(p.onAccepted('c', ballot(1)));
    assert.deepEqual(chosen, { type: 'chosen', ballot: ballot(1), value: 'mine' });
    assert.deepEqual(p.chosen, { ballot: ballot(1), value: 'mine' });
    assert.equal(p.wakeAt, null);
  });

  it('counts no reply from a node that is not a voter', () => {
    const p = proposer();
    p.start(0);
    p.onPromise('a', ballot(1), null, 1);
    assert.deepEqual(p.onPromise('stranger', ballot(1), null, 1), []);
    p.onPromise('b', ballot(1), null, 1);
    assert.deepEqual(p.onAccepted('stranger', ballot(1)), []);
    assert.deepEqual(p.onAccepted('a', ballot(1)), []);
    assert.equal(p.chosen, null);
  });

  it('ignores promises and Accepteds for an older ballot', () => {
    const p = proposer({ rng: fixedRng(0) });
    p.start(0);
    p.onPromise('a', ballot(1), null, 1);
    assert.equal(p.tick(TIMEOUT).length, 1, 'timed out and retried at once');
    assert.deepEqual(p.ballot, ballot(2));
    assert.deepEqual(p.onPromise('b', ballot(1), null, 101), []);
    assert.deepEqual(p.onPromise('c', ballot(1), null, 101), []);
    assert.equal(p.status, 'preparing');
    prepared(p, ['a', 'b']);
    assert.deepEqual(p.onAccepted('a', ballot(1)), []);
    assert.deepEqual(p.onAccepted('b', ballot(1)), []);
    assert.equal(p.chosen, null);
  });

  it('ignores a promise for its ballot once it is in phase 2', () => {
    const p = proposer();
    p.start(0);
    prepared(p, ['a', 'b']);
    assert.deepEqual(p.onPromise('c', ballot(1), { ballot: ballot(0, 'z'), value: 'x' }, 2), []);
    assert.equal(p.status, 'accepting');
  });

  it('does not abandon a round on one refusal while a majority can still promise', () => {
    const p = proposer();
    p.start(0);
    assert.deepEqual(p.onReject('c', ballot(1), ballot(4, 'c'), 1), []);
    assert.equal(p.status, 'preparing');
    assert.equal(prepared(p, ['a', 'b'])[0]?.type, 'accept');
  });

  it('abandons a round once refusals leave too few voters for a majority', () => {
    const p = proposer({ rng: fixedRng(0.5) });
    p.start(0);
    p.onReject('b', ballot(1), ballot(4, 'b'), 5);
    assert.deepEqual(p.onReject('c', ballot(1), ballot(4, 'c'), 5), []);
    assert.equal(p.status, 'backingOff');
    assert.equal(p.wakeAt, 5 + 0.5 * BACKOFF);
  });

  it('never lets a refusal cancel a promise already counted from the same voter', () => {
    const p = proposer();
    p.start(0);
    p.onPromise('b', ballot(1), null, 1);
    p.onReject('b', ballot(1), ballot(4, 'z'), 1);
    p.onReject('c', ballot(1), ballot(4, 'z'), 1);
    assert.equal(p.status, 'preparing', 'b promised, so a majority is still possible');
    assert.equal(p.onPromise('a', ballot(1), null, 1)[0]?.type, 'accept');
  });

  it('abandons phase 2 once refusals leave too few voters to accept', () => {
    const p = proposer();
    p.start(0);
    prepared(p, ['a', 'b']);
    p.onReject('b', ballot(1), ballot(3, 'c'), 2);
    p.onReject('c', ballot(1), ballot(3, 'c'), 2);
    assert.equal(p.status, 'backingOff');
  });

  it('climbs above the round a refusal carries', () => {
    const p = proposer({ rng: fixedRng(0) });
    p.start(0);
    p.onReject('b', ballot(1), ballot(7, 'b'), 1);
    const retried = p.onReject('c', ballot(1), ballot(5, 'c'), 1);
    assert.deepEqual(retried, [{ type: 'prepare', ballot: ballot(8) }]);
  });

  it('climbs above the round of a stale refusal too, though the refusal counts for nothing', () => {
    const p = proposer({ rng: fixedRng(0) });
    p.start(0);
    p.tick(TIMEOUT);
    assert.deepEqual(p.ballot, ballot(2));
    assert.deepEqual(p.onReject('b', ballot(1), ballot(30, 'b'), TIMEOUT), []);
    assert.equal(p.maxRound, 30);
    p.tick(2 * TIMEOUT);
    assert.deepEqual(p.ballot, ballot(31));
  });

  it('climbs above rounds it was told about from elsewhere', () => {
    const p = proposer({ rng: fixedRng(0) });
    p.start(0);
    p.observe(12);
    p.observe(3);
    p.tick(TIMEOUT);
    assert.deepEqual(p.ballot, ballot(13));
  });

  it('times a phase out on `now`, not on being ticked, and retries with a fresh ballot', () => {
    const p = proposer({ rng: fixedRng(0.25) });
    p.start(0);
    assert.equal(p.wakeAt, TIMEOUT);
    assert.deepEqual(p.tick(TIMEOUT - 1), [], 'an early tick changes nothing');
    assert.equal(p.status, 'preparing');
    assert.deepEqual(p.tick(TIMEOUT + 7), [], 'a late tick times the phase out');
    assert.equal(p.status, 'backingOff');
    const retryAt = TIMEOUT + 7 + 0.25 * BACKOFF;
    assert.equal(p.wakeAt, retryAt);
    assert.deepEqual(p.tick(retryAt - 0.001), [], 'the backoff is not over yet');
    assert.deepEqual(p.tick(retryAt), [{ type: 'prepare', ballot: ballot(2) }]);
    assert.equal(p.attempts, 2);
    assert.equal(p.wakeAt, retryAt + TIMEOUT);
  });

  it('times out phase 2 from when its Accept went out', () => {
    const p = proposer({ rng: fixedRng(0) });
    p.start(0);
    prepared(p, ['a', 'b'], 60);
    assert.equal(p.wakeAt, 60 + TIMEOUT);
    assert.deepEqual(p.tick(TIMEOUT), []);
    assert.equal(p.status, 'accepting');
    assert.deepEqual(p.tick(60 + TIMEOUT), [{ type: 'prepare', ballot: ballot(2) }]);
  });

  it('draws each backoff from [0, window) with the injected Rng, the window doubling up to its cap', () => {
    const p = proposer({ backoffMs: 10, maxBackoffMs: 50 });
    assert.deepEqual(
      [1, 2, 3, 4, 5, 9].map((f) => p.backoffWindowMs(f)),
      [10, 20, 40, 50, 50, 50],
    );
    const delays = (seed: number): number[] => {
      const q = proposer({ rng: createRng(seed), backoffMs: 10, maxBackoffMs: 50 });
      let now = 0;
      const out: number[] = [];
      q.start(now);
      for (let failure = 1; failure <= 6; failure++) {
        now += TIMEOUT;
        q.tick(now);
        const retryAt = q.wakeAt;
        assert.ok(retryAt !== null);
        const delay = retryAt - now;
        const window = q.backoffWindowMs(failure);
        assert.ok(delay >= 0 && delay < window, `delay ${delay} outside [0, ${window})`);
        out.push(delay);
        now = retryAt;
        q.tick(now);
      }
      return out;
    };
    for (let seed = 1; seed <= 50; seed++) delays(seed);
    assert.deepEqual(delays(7), delays(7), 'one seed replays the same backoffs');
    assert.notDeepEqual(delays(7), delays(8), 'other seeds draw other backoffs');
  });

  it('uses the full window: delays near both ends are drawn', () => {
    const low = proposer({ rng: fixedRng(0) });
    low.start(0);
    low.tick(TIMEOUT);
    assert.equal(low.status, 'preparing', 'a zero draw retries at once');
    const high = proposer({ rng: fixedRng(0.999) });
    high.start(0);
    high.tick(TIMEOUT);
    assert.equal(high.wakeAt, TIMEOUT + 0.999 * BACKOFF);
  });

  it('gives up after maxAttempts failed rounds and then wants no tick', () => {
    const p = proposer({ rng: fixedRng(0), maxAttempts: 3 });
    p.start(0);
    assert.equal(onlyAction(p.tick(100)).type, 'prepare');
    assert.equal(onlyAction(p.tick(200)).type, 'prepare');
    assert.deepEqual(p.tick(300), [{ type: 'gaveUp', attempts: 3 }]);
    assert.equal(p.status, 'gaveUp');
    assert.equal(p.wakeAt, null);
    assert.deepEqual(p.tick(10_000), []);
  });

  it('proposes its own value again in a new round instead of carrying over a report', () => {
    const p = proposer({ rng: fixedRng(0) }, 'own');
    p.start(0);
    p.onPromise('b', ballot(1), { ballot: ballot(0, 'z'), value: 'old' }, 1);
    p.tick(TIMEOUT);
    const accept = prepared(p, ['a', 'c']);
    assert.deepEqual(accept, [{ type: 'accept', ballot: ballot(2), value: 'own' }]);
  });

  it('takes every ballot from makeBallot', () => {
    const made: number[] = [];
    const p = proposer({
      rng: fixedRng(0),
      makeBallot: (round) => {
        made.push(round);
        return ballot(round, 'a', 'made');
      },
    });
    p.start(0);
    p.tick(TIMEOUT);
    assert.deepEqual(made, [1, 2]);
    assert.deepEqual(p.ballot, ballot(2, 'a', 'made'));
  });
});
