import assert from 'node:assert/strict';
import { checkLeadership, leaderIntervals, type RunLine } from './leadership-check.js';
import { ProcessCluster, type ProcessClusterOptions } from './process-cluster.js';

/**
 * Real node processes on loopback, over the built-in WebSocket transport, killed (SIGKILL),
 * frozen (SIGSTOP) and restarted for real. Every process writes its elections, lease deadlines
 * and leader actions on one shared clock; after each test the checker reads all of them: no two
 * leaderships overlap and every action lies inside its actor's leadership.
 */

/** A line of a process with `traceFrames`: frames carry their direction, peer and type. */
type TracedLine = RunLine & { dir?: string; peer?: string; msg?: string };

const LEASE_MS = 400;
/** Start-up of a few Node.js processes on a small machine, plus the restart silence. */
const START_MS = 15_000;
/** A cold start: the silence, a random wait, a round; with room for a slow machine. */
const ELECTION_MS = 10 * LEASE_MS;

describe('node processes on loopback', function () {
  this.timeout(60_000);
  let cluster: ProcessCluster | null = null;

  afterEach(async function () {
    const current = cluster;
    cluster = null;
    if (current === null) return;
    if (this.currentTest?.state === 'failed') console.error(current.dump());
    await current.close();
  });

  async function startCluster(
    size: number,
    options: Pick<ProcessClusterOptions, 'traceFrames' | 'successors' | 'guard'> = {},
  ): Promise<ProcessCluster> {
    cluster = await ProcessCluster.create({ size, leaseMs: LEASE_MS, ...options });
    await cluster.startAll(START_MS);
    return cluster;
  }

  /** The latest `leader` line of a run, if any. */
  function viewOf(c: ProcessCluster, run: number): RunLine | undefined {
    return c.lines.findLast((l) => l.run === run && l.type === 'leader');
  }

  /** Whether the processes of `ids` all name the leader of `elected` as their leader. */
  function followed(c: ProcessCluster, elected: RunLine, ids: readonly string[]): boolean {
    return ids.every((id) => {
      const view = viewOf(c, c.runOf(id));
      return view?.leaderId === elected.id && view.isLeader === false;
    });
  }

  /**
   * Waits for a stable leader: one elected after line `since` (not one of `exclude`) that has
   * renewed `renewals` times in its term, still running, with every other running process
   * following it. A loaded machine may stall a process long enough to move leadership on first
   * (stalls are handled, not prevented); the wait is bounded all the same.
   */
  async function stableLeader(
    c: ProcessCluster,
    since: number,
    options: { renewals: number; exclude?: readonly string[]; timeoutMs?: number },
  ): Promise<RunLine> {
    const exclude = options.exclude ?? [];
    return c.waitFor(
      `a leader${exclude.length > 0 ? ` other than ${exclude.join(', ')}` : ''} that renews ` +
        `${options.renewals} times, followed by all`,
      () => {
        const elected = c.lines
          .slice(since)
          .findLast((l) => l.type === 'elected' && !exclude.includes(l.id));
        if (elected === undefined) return undefined;
        // Elected by a process that has been replaced since: not the leader now.
        if (c.runOf(elected.id) !== elected.run) return undefined;
        const renewed = c.lines.filter(
          (l) => l.run === elected.run && l.type === 'renewal' && l.term === elected.term,
        ).length;
        const ended = c.lines.some(
          (l) => l.run === elected.run && l.type === 'stepdown' && l.term === elected.term,
        );
        const others = c.ids.filter(
          (id) => id !== elected.id && !exclude.includes(id) && c.isRunning(id),
        );
        return renewed >= options.renewals && !ended && followed(c, elected, others)
          ? elected
          : undefined;
      },
      options.timeoutMs ?? 30 * LEASE_MS,
    );
  }

  function assertSafe(c: ProcessCluster): void {
    const violations = checkLeadership(c.lines);
    assert.deepEqual(violations, [], violations.join('\n'));
    assert.ok(
      c.lines.some((l) => l.type === 'action'),
      'no leader action was written: the checker had nothing to check',
    );
  }

  for (const size of [3, 5]) {
    it(`elects one leader among ${size} processes, which all of them follow`, async () => {
      const c = await startCluster(size);
      const first = await c.nextElected(0, ELECTION_MS);
      // Nobody is elected before a majority has passed its restart silence (leaseMs from
      // its start, on the clock all processes share). `begun` is read before start(), at or
      // before the silence began: the line itself is written after start() resolved, which
      // on a loaded machine can be many milliseconds later.
      const past = c.lines.filter(
        (l) => l.type === 'start' && (l.begun ?? l.t) + LEASE_MS - 20 < first.t,
      );
      assert.ok(past.length > size / 2, `${first.id} was elected during the silence`);
      await stableLeader(c, 0, { renewals: 4 });
      assertSafe(c);
    });
  }

  it('elects a new leader after the leader is killed (SIGKILL)', async () => {
    const c = await startCluster(3);
    const first = await stableLeader(c, 0, { renewals: 1 });
    const since = c.lines.length;
    const killedAt = c.signal(first.id, 'SIGKILL');
    const next = await stableLeader(c, since, { renewals: 1, exclude: [first.id] });
    // The first election after the kill: about one lease period later (the others must forget
    // the lease first), with room for a loaded machine.
    const failover = c.linesSince(since, (l) => l.type === 'elected')[0];
    assert.ok(failover !== undefined && failover.t > killedAt);
    assert.ok(failover.t - killedAt < 3 * LEASE_MS, `failover took ${failover.t - killedAt} ms`);
    assertSafe(c);
    assert.notEqual(next.id, first.id);
  });

  it('takes a killed leader back as a follower when it restarts', async () => {
    const c = await startCluster(3);
    const first = await stableLeader(c, 0, { renewals: 1 });
    c.signal(first.id, 'SIGKILL');
    await c.exited(first.id);
    const since = c.lines.length;
    await stableLeader(c, since, { renewals: 1, exclude: [first.id] });

    const run = c.spawn(first.id);
    const started = await c.waitFor(
      `${first.id} to start again`,
      () => c.lines.find((l) => l.run === run && l.type === 'start'),
      START_MS,
    );
    // It learns the leader from the leader's next renewal, as a follower.
    const view = await c.waitFor(
      `${first.id} to learn the leader`,
      () => c.lines.find((l) => l.run === run && l.type === 'leader' && l.leaderId !== null),
      ELECTION_MS,
    );
    assert.notEqual(view.leaderId, first.id);
    assert.equal(view.isLeader, false);
    // It leads nothing during its restart silence, and a stable leader is followed by all,
    // the restarted process included, once that silence is over.
    await c.waitFor(
      'the restart silence to end',
      () => c.now() > started.t + 1.5 * LEASE_MS,
      START_MS,
    );
    const leader = await stableLeader(c, since, { renewals: 2 });
    assert.ok(followed(c, leader, [first.id]) || leader.run === run);
    const early = c.lines.find(
      (l) => l.run === run && l.type === 'elected' && l.t < started.t + 0.9 * LEASE_MS,
    );
    assert.equal(early, undefined);
    assertSafe(c);
  });

  it('hands leadership on when the leader stops (SIGTERM): work ends, the successor gets the first Release, the stop ends on its election', async () => {
    // Each node names the next one as its successor, so the successor is known in advance.
    const successors: Record<string, string> = { n1: 'n2', n2: 'n3', n3: 'n1' };
    const c = await startCluster(3, { traceFrames: true, successors });
    const first = await stableLeader(c, 0, { renewals: 1 });
    const named = successors[first.id];
    const since = c.lines.length;
    c.signal(first.id, 'SIGTERM');
    const next = await c.nextElected(since, ELECTION_MS, (l) => l.id !== first.id);
    await c.exited(first.id);
    const mine: TracedLine[] = c.linesSince(since, (l) => l.run === first.run);
    const at = (type: string): number => mine.findIndex((l) => l.type === type);
    // The lease is released only once the leadership work has returned (it ran on its signal).
    assert.ok(at('stepdown') >= 0 && at('stepdown') < at('work-ended'), 'signal, then work end');
    const releases = mine.filter(
      (l) => l.type === 'frame' && l.dir === 'out' && l.msg === 'lease.release',
    );
    assert.equal(releases.length, 2, 'a Release to each other node');
    assert.ok(mine.indexOf(releases[0] as RunLine) > at('work-ended'), 'Release after the work');
    // The successor's Release goes out first: it campaigns the moment it arrives.
    assert.equal(releases[0]?.peer, named);
    // The named successor normally wins at once. (If it stalls, another node campaigns after its
    // own wait of leaseMs/4 or more, and the old leader stops at the end of its wait.)
    if (next.id === named) {
      // It kept its connections until it heard of the election: its stop() ended after the
      // successor's notice to it went out.
      const notice = c
        .linesSince(since, (l) => l.run === next.run && l.type === 'frame')
        .find(
          (l: TracedLine) => l.dir === 'out' && l.msg === 'lease.chosen' && l.peer === first.id,
        );
      const stopped = mine.find((l) => l.type === 'stopped');
      assert.ok(notice !== undefined && stopped !== undefined && stopped.t > notice.t);
    }
    assertSafe(c);
  });

  it('elects a new leader while the leader is frozen (SIGSTOP), and the old one steps down on SIGCONT', async () => {
    const c = await startCluster(3);
    const first = await stableLeader(c, 0, { renewals: 1 });
    const since = c.lines.length;
    c.signal(first.id, 'SIGSTOP');
    // Frozen for longer than a lease: a new leader is elected and renews meanwhile.
    await stableLeader(c, since, { renewals: 2, exclude: [first.id] });
    const resumedAt = c.signal(first.id, 'SIGCONT');

    const stepdown = await c.waitFor(
      `${first.id} to step down`,
      () => c.lines.find((l) => l.run === first.run && l.type === 'stepdown'),
      ELECTION_MS,
    );
    assert.ok(stepdown.t >= resumedAt);
    await c.waitFor(
      `${first.id} to follow another leader`,
      () => {
        const view = viewOf(c, first.run);
        return view !== undefined && view.t > resumedAt && view.leaderId !== first.id;
      },
      ELECTION_MS,
    );
    // The frozen leader believed nothing past its last deadline, which came before the next
    // election; and it acted on nothing after it woke up.
    const old = leaderIntervals(c.lines).intervals.find((i) => i.run === first.run);
    const next = c.linesSince(since, (l) => l.type === 'elected' && l.run !== first.run)[0];
    assert.ok(old !== undefined && next !== undefined);
    assert.ok(old.end < next.t, `old leadership ended ${old.end}, new one began ${next.t}`);
    assert.deepEqual(
      c.linesSince(since, (l) => l.run === first.run && l.type === 'action' && l.t >= resumedAt),
      [],
    );
    assertSafe(c);
  });

  it('refuses, after SIGCONT, the write of a timer that fell due while the leader was frozen past its lease, guarded by signal.aborted alone', async () => {
    // Each leader acts every 5 ms, checking only `signal.aborted` after its sleep. Frozen, its
    // sleep falls due long before the node's next timer, so it runs first on SIGCONT: with a
    // signal aborted only by that timer, it read `false` and wrote, past the lease (most
    // freezes). Three freezes, of whichever process leads.
    const c = await startCluster(3, { guard: 'signal' });
    let since = 0;
    const straddled: RunLine[] = [];
    for (let freeze = 0; freeze < 3; freeze++) {
      const frozen = await stableLeader(c, since, { renewals: 1 });
      since = c.lines.length;
      c.signal(frozen.id, 'SIGSTOP');
      // Frozen until another leader is elected and renews: its lease has long ended.
      await stableLeader(c, since, { renewals: 2, exclude: [frozen.id] });
      const resumedAt = c.signal(frozen.id, 'SIGCONT');
      const mine = (l: RunLine): boolean => l.run === frozen.run && l.term === frozen.term;
      await c.waitFor(
        `${frozen.id} to end its work of term ${frozen.term}`,
        () => c.lines.find((l) => mine(l) && l.type === 'work-ended'),
        ELECTION_MS,
      );
      const old = leaderIntervals(c.lines).intervals.find(
        (i) => i.run === frozen.run && i.term === frozen.term,
      );
      assert.ok(old !== undefined && old.lastDeadline < resumedAt);
      const actions = c.linesSince(since, (l) => mine(l) && l.type === 'action');
      // No check made after the thaw let a write through.
      assert.deepEqual(
        actions.filter((l) => (l.checkedAt ?? l.t) >= resumedAt),
        [],
        `freeze ${freeze + 1}: ${frozen.id} wrote after SIGCONT, past its deadline ${old.lastDeadline.toFixed(3)}`,
      );
      // A freeze can also land between a check and its write (a few microseconds in 5 ms): that
      // write, checked before the freeze, is past its check, the limit the docs state; it is
      // not what this test is about, and the checker below leaves it out.
      straddled.push(...actions.filter((l) => l.t >= resumedAt));
    }
    const violations = checkLeadership(c.lines.filter((l) => !straddled.includes(l)));
    assert.deepEqual(violations, [], violations.join('\n'));
  });
});

describe('the leadership checker', () => {
  const line = (fields: Partial<RunLine> & Pick<RunLine, 'run' | 'type' | 't'>): RunLine => ({
    id: `n${fields.run}`,
    ...fields,
  });

  it('accepts a handoff: the old leader steps down before the new one is elected', () => {
    const lines = [
      line({ run: 1, type: 'elected', t: 0, term: 5, deadline: 90 }),
      line({ run: 1, type: 'action', t: 10, term: 5 }),
      line({ run: 1, type: 'renewal', t: 40, term: 5, deadline: 120 }),
      line({ run: 1, type: 'stepdown', t: 50, term: 5 }),
      line({ run: 2, type: 'elected', t: 55, term: 9, deadline: 150 }),
      line({ run: 2, type: 'action', t: 60, term: 9 }),
    ];
    assert.deepEqual(checkLeadership(lines), []);
  });

  it('finds two leaders when a killed leader’s last deadline reaches past the next election', () => {
    const lines = [
      line({ run: 1, type: 'elected', t: 0, term: 5, deadline: 90 }),
      line({ run: 1, type: 'renewal', t: 30, term: 5, deadline: 120 }),
      line({ run: 2, type: 'elected', t: 100, term: 9, deadline: 190 }),
    ];
    const violations = checkLeadership(lines);
    assert.equal(violations.length, 1);
    assert.match(violations[0] ?? '', /^two leaders: n1 \(run 1\) term 5 .* overlap by 20\.000 ms/);
  });

  it('finds an action after the last deadline, or in a term the actor did not lead', () => {
    const lines = [
      line({ run: 1, type: 'elected', t: 0, term: 5, deadline: 90 }),
      line({ run: 1, type: 'action', t: 95, term: 5 }),
      line({ run: 2, type: 'action', t: 96, term: 7 }),
    ];
    const violations = checkLeadership(lines);
    assert.equal(violations.length, 2);
    assert.match(violations[0] ?? '', /n1 \(run 1\) acted at 95\.000 outside/);
    assert.match(violations[1] ?? '', /n2 \(run 2\) acted at 96\.000 in term 7 without leading/);
  });
});
