/**
 * `npm run example -- demo` (or `npm run demo`): three replicas as three real processes, each
 * running `synod node` (the command this package installs) over WebSocket on 127.0.0.1. The
 * demo starts them, kills the leader (SIGKILL), restarts it, stops the next leader gracefully
 * (SIGTERM), and prints what each process reports and how long each step took. It exits 0 by
 * itself when all went as expected, and 1 (after killing whatever still runs) when something
 * did not.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import process from 'node:process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const LEASE_MS = 1000;
const IDS = ['alpha', 'bravo', 'charlie'];
/** How long the demo waits for an expected event before it declares that step failed. */
const BOUND_MS = 5 * LEASE_MS;
/** A graceful handoff takes a few network delays; one slower than this was a lease timeout. */
const HANDOFF_BOUND_MS = LEASE_MS / 2;
/** The whole demo, as a last resort against anything that hangs. */
const DEMO_BOUND_MS = 60_000;

const CLI = fileURLToPath(new URL('../lib/cli/index.js', import.meta.url));
const SECRET_ENV = 'SYNOD_DEMO_SECRET';
/** A fresh secret per run, handed to the processes in their environment, never in argv. */
const SECRET = randomBytes(24).toString('base64url');

const startedAt = performance.now();

// --- Output ---------------------------------------------------------------------------------

function elapsed(at = performance.now()): string {
  return `${((at - startedAt) / 1000).toFixed(3).padStart(7)} s`;
}

function say(text: string, at?: number): void {
  console.log(`${elapsed(at)}  ${text}`);
}

/** A note under the last line, without a timestamp. */
function note(text: string): void {
  console.log(`           ${text}`);
}

function step(title: string): void {
  console.log(`\n${title}`);
}

function leases(ms: number): string {
  return `${Math.round(ms)} ms = ${(ms / LEASE_MS).toFixed(2)} × leaseMs`;
}

class DemoFailure extends Error {}

function expect(condition: boolean, failure: string): asserts condition {
  if (!condition) throw new DemoFailure(failure);
}

// --- Replicas -------------------------------------------------------------------------------

/** What `synod node --json` prints, one JSON object a line. */
interface NodeEvent {
  readonly event: 'started' | 'leader' | 'stopping' | 'stopped' | 'error';
  readonly node: string;
  readonly leaderId?: string | null;
  readonly term?: number | null;
  readonly isLeader?: boolean;
  readonly message?: string;
  readonly incarnation?: string;
}

/** An event as the demo received it. */
interface Received extends NodeEvent {
  /** performance.now() when the line arrived. */
  readonly at: number;
  /** Which process printed it (a restarted replica is a new process). */
  readonly pid: number;
}

/** One replica of the app: a process running one node. */
interface Replica {
  readonly id: string;
  child: ChildProcess;
  exited: boolean;
  /** What it wrote on stderr, shown if the demo fails. */
  readonly stderr: string[];
}

const replicas = new Map<string, Replica>();
const events: Received[] = [];
const urls: Record<string, string> = {};

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
  });
  if (address === null || typeof address !== 'object') throw new Error('no port');
  return address.port;
}

/** Starts the process of `id`: `synod node --id id --peers … --secret-env … --json`. */
function launch(id: string): Replica {
  const peers = Object.entries(urls)
    .map(([peer, url]) => `${peer}=${url}`)
    .join(',');
  const args = ['node', '--id', id, '--peers', peers, '--secret-env', SECRET_ENV];
  const child = spawn(
    process.execPath,
    [CLI, ...args, '--lease-ms', String(LEASE_MS), '--log-level', 'error', '--json'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, [SECRET_ENV]: SECRET } },
  );
  const replica: Replica = { id, child, exited: false, stderr: [] };
  const pid = child.pid ?? -1;
  child.once('exit', () => {
    replica.exited = true;
  });
  createInterface({ input: child.stdout }).on('line', (line) => {
    let event: NodeEvent;
    try {
      event = JSON.parse(line) as NodeEvent;
    } catch {
      replica.stderr.push(`(stdout) ${line}`);
      return;
    }
    const received: Received = { ...event, at: performance.now(), pid };
    events.push(received);
    report(received);
  });
  createInterface({ input: child.stderr }).on('line', (line) => {
    replica.stderr.push(line);
  });
  replicas.set(id, replica);
  return replica;
}

/** Prints what a process reported, as it arrives. */
function report(e: Received): void {
  switch (e.event) {
    case 'started':
      say(`${e.node}: started (pid ${e.pid}, incarnation ${e.incarnation ?? '?'})`, e.at);
      break;
    case 'leader':
      if (e.isLeader === true) say(`${e.node}: is the leader (term ${e.term ?? '?'})`, e.at);
      else if (e.leaderId === null) say(`${e.node}: knows no leader`, e.at);
      else say(`${e.node}: follows ${e.leaderId ?? '?'} (term ${e.term ?? '?'})`, e.at);
      break;
    case 'stopping':
      say(`${e.node}: stopping gracefully`, e.at);
      break;
    case 'stopped':
      say(`${e.node}: stopped`, e.at);
      break;
    case 'error':
      say(`${e.node}: FAILED: ${e.message ?? '?'}`, e.at);
      break;
    default:
      break;
  }
}

/** Polls until `find` returns an event (or true), at most `boundMs`; fails with `what`. */
async function waitFor<T>(what: string, find: () => T | undefined, boundMs = BOUND_MS): Promise<T> {
  const end = performance.now() + boundMs;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (performance.now() > end) throw new DemoFailure(`${what}: not within ${boundMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** The first event after index `since` that `match` accepts. */
function after(since: number, match: (e: Received) => boolean): Received | undefined {
  return events.slice(since).find(match);
}

/** The latest view of the leader of the current process of `id`. */
function viewOf(id: string): Received | undefined {
  const pid = replicas.get(id)?.child.pid;
  return events.findLast((e) => e.pid === pid && e.event === 'leader');
}

function follows(id: string, leader: string): boolean {
  const view = viewOf(id);
  return view?.leaderId === leader && view.isLeader === false;
}

function pidOf(id: string): number {
  return replicas.get(id)?.child.pid ?? -1;
}

/** Sends `signal` to the process of `id`; returns performance.now() just before. */
function signal(id: string, sig: NodeJS.Signals): number {
  const replica = replicas.get(id);
  expect(replica !== undefined && !replica.exited, `${id} is not running`);
  const at = performance.now();
  replica.child.kill(sig);
  return at;
}

async function exited(id: string): Promise<void> {
  await waitFor(`${id} to exit`, () => (replicas.get(id)?.exited === true ? true : undefined));
}

// --- The story ------------------------------------------------------------------------------

async function main(): Promise<void> {
  for (const id of IDS) urls[id] = `ws://127.0.0.1:${await freePort()}`;
  console.log(
    `synod demo: ${IDS.length} replicas, each a process running \`synod node\`, over WebSocket ` +
      `on 127.0.0.1\n(${IDS.map((id) => `${id} ${urls[id] ?? ''}`).join(', ')});\n` +
      `leaseMs = ${LEASE_MS}. Times are since the start.`,
  );

  step('1. Cold start');
  for (const id of IDS) launch(id);
  say(`spawned ${IDS.join(', ')}`);
  const first = await waitFor('a first leader', () =>
    after(0, (e) => e.event === 'leader' && e.isLeader === true),
  );
  await waitFor('every replica to follow the first leader', () =>
    IDS.every((id) => id === first.node || follows(id, first.node)) ? true : undefined,
  );
  // An election needs a majority out of its restart silence: the majority-th process to start.
  const starts = events.filter((e) => e.event === 'started').map((e) => e.at);
  const quorumStartedAt = starts[Math.floor(IDS.length / 2)] ?? startedAt;
  note(`first leader ${leases(first.at - quorumStartedAt)} after a majority had started`);
  note(`(process start-up took ${Math.round(quorumStartedAt - startedAt)} ms before that)`);
  note('(each node votes for nothing during its first lease period; then a random wait of up');
  note(' to leaseMs/10 and one Paxos round)');

  // Steady state for a while, then a crash at a random moment of the renewal cycle.
  await new Promise((resolve) => setTimeout(resolve, 1.5 * LEASE_MS + Math.random() * LEASE_MS));
  expect(
    after(0, (e) => e.event === 'leader' && e.isLeader === true && e !== first) === undefined,
    'the first leader was displaced without any fault',
  );
  say(
    `${first.node} still leads term ${first.term ?? '?'}, renewing its lease every ~${Math.round(LEASE_MS / 3)} ms`,
  );

  step(`2. The leader is killed (SIGKILL)`);
  const killed = first.node;
  const sinceKill = events.length;
  const killedAt = signal(killed, 'SIGKILL');
  say(
    `killed ${killed} (pid ${pidOf(killed)}): no goodbye, so the others wait for its lease to run out`,
    killedAt,
  );
  const successor = await waitFor('a new leader after the kill', () =>
    after(sinceKill, (e) => e.event === 'leader' && e.isLeader === true),
  );
  expect(successor.node !== killed, 'the killed replica still leads');
  const failoverMs = successor.at - killedAt;
  note(`failover: ${leases(failoverMs)} after the kill`);
  note('(the others forget a lease leaseMs after its last renewal reached them, and renewals');
  note(' come every leaseMs/3: a wait of 0.67–1 × leaseMs, then a random wait and one round)');
  await exited(killed);

  step(`3. ${killed} restarts`);
  const sinceRestart = events.length;
  const restartAt = performance.now();
  launch(killed);
  say(`restarted ${killed} (pid ${pidOf(killed)}), a new incarnation that remembers nothing`);
  await waitFor(`${killed} to follow ${successor.node}`, () =>
    follows(killed, successor.node) ? true : undefined,
  );
  note(
    `it follows the leader ${Math.round(performance.now() - restartAt)} ms after it was spawned`,
  );
  note(`(it votes again only after its own silence of one lease period, ${LEASE_MS} ms)`);
  await new Promise((resolve) => setTimeout(resolve, 1.5 * LEASE_MS));
  expect(
    after(sinceRestart, (e) => e.event === 'leader' && e.isLeader === true) === undefined,
    'the restarted replica displaced the leader',
  );
  say(`${successor.node} still leads term ${successor.term ?? '?'}; ${killed} is a follower`);

  step(`4. ${successor.node} stops gracefully (SIGTERM)`);
  const stopping = successor.node;
  const sinceStop = events.length;
  const stopAt = signal(stopping, 'SIGTERM');
  say(
    `SIGTERM to ${stopping}: it ends its work, then releases the lease naming a successor`,
    stopAt,
  );
  const handoff = await waitFor('a new leader after the graceful stop', () =>
    after(sinceStop, (e) => e.event === 'leader' && e.isLeader === true),
  );
  expect(handoff.node !== stopping, 'the stopping replica still leads');
  const handoffMs = handoff.at - stopAt;
  note(`handoff: ${handoffMs.toFixed(1)} ms from the signal to the new leader's report`);
  note('(five one-way network delays plus process work, not a lease timeout)');
  expect(
    handoffMs < HANDOFF_BOUND_MS,
    `the handoff took ${Math.round(handoffMs)} ms: the release did not work`,
  );
  await exited(stopping);

  step('5. Everything stops');
  for (const replica of replicas.values()) {
    if (!replica.exited) replica.child.kill('SIGTERM');
  }
  for (const id of replicas.keys()) await exited(id);
  const failures = events.filter((e) => e.event === 'error');
  expect(failures.length === 0, `a replica failed: ${failures[0]?.message ?? ''}`);
  say('all replicas stopped');
  console.log(
    `\nSummary (leaseMs ${LEASE_MS}): first leader ${leases(first.at - quorumStartedAt)} after ` +
      `a majority had started; failover ${leases(failoverMs)}; ` +
      `handoff ${handoffMs.toFixed(1)} ms.`,
  );
}

function killAll(): void {
  for (const replica of replicas.values()) {
    if (!replica.exited) replica.child.kill('SIGKILL');
  }
}

const guard = setTimeout(() => {
  console.error(`\nFAILED: the demo did not finish within ${DEMO_BOUND_MS / 1000} s`);
  killAll();
  process.exit(1);
}, DEMO_BOUND_MS);

try {
  await main();
  clearTimeout(guard);
} catch (error) {
  clearTimeout(guard);
  killAll();
  console.error(`\nFAILED: ${error instanceof Error ? error.message : String(error)}`);
  for (const replica of replicas.values()) {
    if (replica.stderr.length > 0) {
      console.error(`--- ${replica.id} stderr:\n${replica.stderr.slice(-10).join('\n')}`);
    }
  }
  process.exit(1);
}
