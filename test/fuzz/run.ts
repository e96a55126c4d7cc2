import { createRequire, syncBuiltinESMExports } from 'node:module';
import { availableParallelism } from 'node:os';
import { isDeepStrictEqual } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { decodeFrame } from '../../lib/codec/messages.js';
import { createNode, DEFAULTS, type SynodNode } from '../../lib/index.js';
import { withinRoundLimit, type LeaseMessage } from '../../lib/lease/messages.js';
import { HALT } from '../../lib/node/node.js';
import { INVALID_FRAME_REASONS, type InvalidFrameReason } from '../../lib/node/stats.js';
import { agreedSettings } from '../../lib/options.js';
import { createRng } from '../../lib/random.js';
import {
  nodeRecordCodec,
  type NodeRecord,
  type NodeStorage,
  type NodeUpdate,
} from '../../lib/storage.js';
import { VirtualClock } from '../../lib/testing/virtual-clock.js';
import {
  expectationsOf,
  expectedDecode,
  FRAME_KINDS,
  seededSource,
  type Sent,
  type Target,
} from './corpus.js';
import { ScriptedPeers } from './scripted-peers.js';

/**
 * `npm run fuzz [-- --count N] [--seed S] [--workers W] [--batch B]` (`-- --help`: the flags)
 *
 * Feeds N hostile frames (default a million: random text, random JSON, valid frames, answers to
 * what the node sent, wrong envelopes, and valid frames edited through their text; all seeded) to
 * a real node, through the path a transport uses: the node's memory transport (the peers are
 * played by the test, test/fuzz/scripted-peers.ts), the handler the node subscribed with
 * `onMessage`, then its driver, decoder and lease machine. Each frame is also decoded on its own
 * and checked against the reference in corpus.ts. Reported, and fatal (exit 1) if not zero:
 *
 * - crashes: the decoder or the node's frame handler threw, the node failed (its `error` event),
 *   or it sent a frame its peers refuse;
 * - state changes from frames the node dropped: its stats (invalid-frame counters aside), leader
 *   view, term, deadline, sends, storage writes and timer must be exactly as before (a lease
 *   message naming a round between the lease's limit, 2^48, and the codec's, 2^52, is taken
 *   in, counted in `framesIn`, then refused whole as `round-limit`: nothing else may change);
 * - disagreements: the decoder against the reference, or the node's verdict against the decoder's.
 *
 * Frames go in batches of 2,000, each on a fresh node (which the batch drives through its restart
 * silence, campaigns, leadership and renewals by answering what it sends and advancing its virtual
 * clock), so any batch replays alone: `--seed S --batch B` prints its details. Batches are spread
 * over worker threads (one per core by default).
 */

const BATCH_SIZE = 2000;
const LEASE_MS = 300;
const IDS = ['a', 'b', 'c'];
const TARGET: Target = { cluster: 'synod', self: 'a', peers: ['b', 'c'] };
/** The settings node `a` starts its transport with: its peers start theirs with the same. */
const SETTINGS = agreedSettings({ ...DEFAULTS, leaseMs: LEASE_MS });
const EXPECT = expectationsOf(TARGET);
/** Problems of each kind kept in full, per worker; the rest are only counted. */
const KEEP = 10;

type Outcome = 'accepted' | InvalidFrameReason;
const OUTCOMES: readonly Outcome[] = ['accepted', ...INVALID_FRAME_REASONS];

interface Problem {
  readonly batch: number;
  readonly index: number;
  readonly kind: string;
  readonly what: string;
  readonly text: string;
}

interface Tally {
  frames: number;
  /** kind → outcome → count */
  readonly outcomes: Record<string, Record<string, number>>;
  /** Frames the decoder accepted, by message type. */
  readonly types: Record<string, number>;
  crashes: number;
  /** Crashes by what happened, the frame left out. */
  readonly crashKinds: Record<string, number>;
  stateChanges: number;
  disagreements: number;
  elections: number;
  renewals: number;
  readonly problems: { crash: Problem[]; state: Problem[]; disagreement: Problem[] };
}

function emptyTally(): Tally {
  return {
    frames: 0,
    outcomes: Object.fromEntries(
      FRAME_KINDS.map((k) => [k, Object.fromEntries(OUTCOMES.map((o) => [o, 0]))]),
    ),
    types: {},
    crashes: 0,
    crashKinds: {},
    stateChanges: 0,
    disagreements: 0,
    elections: 0,
    renewals: 0,
    problems: { crash: [], state: [], disagreement: [] },
  };
}

function merge(into: Tally, from: Tally): void {
  into.frames += from.frames;
  for (const [kind, outcomes] of Object.entries(from.outcomes)) {
    const target = (into.outcomes[kind] ??= {});
    for (const [outcome, n] of Object.entries(outcomes))
      target[outcome] = (target[outcome] ?? 0) + n;
  }
  for (const [type, n] of Object.entries(from.types)) {
    into.types[type] = (into.types[type] ?? 0) + n;
  }
  into.crashes += from.crashes;
  for (const [what, n] of Object.entries(from.crashKinds)) {
    into.crashKinds[what] = (into.crashKinds[what] ?? 0) + n;
  }
  into.stateChanges += from.stateChanges;
  into.disagreements += from.disagreements;
  into.elections += from.elections;
  into.renewals += from.renewals;
  for (const key of ['crash', 'state', 'disagreement'] as const) {
    into.problems[key].push(...from.problems[key].slice(0, KEEP - into.problems[key].length));
  }
}

// --- The node under fuzz --------------------------------------------------------------------

/** Storage that keeps the last record, synchronously readable. */
class LastRecord implements NodeStorage {
  saves = 0;
  last = 'null';

  load(): Promise<NodeRecord | null> {
    return Promise.resolve(null);
  }

  save(update: NodeUpdate): Promise<void> {
    this.saves += 1;
    this.last = nodeRecordCodec.encodeUpdate(update);
    return Promise.resolve();
  }
}

/** A fresh node `a` on a virtual clock, past its restart silence. */
class Harness {
  readonly storage = new LastRecord();
  readonly node: SynodNode;
  /** What the node sent lately: the frame source answers it. */
  recent: Sent[] = [];
  failure: Error | null = null;
  events = 0;

  private constructor(
    readonly clock: VirtualClock,
    readonly peers: ScriptedPeers,
    seed: number,
  ) {
    this.node = createNode({
      id: TARGET.self,
      peers: IDS,
      transport: peers.transport,
      leaseMs: LEASE_MS,
      clock: this.clock,
      scheduler: this.clock,
      rng: createRng(seed),
      storage: this.storage,
    });
    this.node.on('error', (error) => {
      this.failure = error;
    });
    this.node.on('leaderChange', () => {
      this.events += 1;
    });
  }

  static async start(seed: number): Promise<Harness> {
    const clock = new VirtualClock(1000);
    const peers = await ScriptedPeers.start(TARGET, clock, SETTINGS);
    const harness = new Harness(clock, peers, seed);
    await withSeededCrypto(seed, () => harness.node.start());
    await harness.advance(LEASE_MS + 1);
    return harness;
  }

  /** Lets `ms` pass: the node's timers fire, and what it sends reaches its peers. */
  async advance(ms: number): Promise<void> {
    await this.clock.advance(ms);
    for (const sent of this.peers.sent.splice(0)) {
      this.recent.push(sent);
      if (this.recent.length > 16) this.recent = this.recent.slice(-8);
    }
  }

  /** Hands `text` to the node as if it arrived over `link`. */
  deliver(link: string, text: string): void {
    this.peers.say(link, text);
  }

  /**
   * Everything a frame could change, except the counters of dropped frames (and, with
   * `framesIn: false`, of frames taken in: a frame the lease machine refuses for its round).
   */
  fingerprint(options: { readonly framesIn: boolean } = { framesIn: true }): string {
    const { node, peers, storage, clock } = this;
    const { invalidFrames: _, transport: __, framesIn, ...stats } = node.stats();
    return JSON.stringify([
      options.framesIn ? framesIn : null,
      stats,
      node.state,
      node.isLeader,
      node.leaderId,
      node.term,
      node.leaseDeadline,
      node.incarnation,
      peers.transport.stats().sent,
      storage.saves,
      storage.last,
      clock.pending,
      clock.nextDueAt(),
      this.events,
    ]);
  }

  /** What the node did with the last frame: took it, or dropped it for a reason. */
  outcome(before: {
    framesIn: number;
    invalid: Readonly<Record<InvalidFrameReason, number>>;
  }): Outcome | 'nothing' | 'several' {
    const stats = this.node.stats();
    const moved: Outcome[] = [];
    if (stats.framesIn !== before.framesIn) moved.push('accepted');
    for (const reason of INVALID_FRAME_REASONS) {
      if (stats.invalidFrames[reason] !== before.invalid[reason]) moved.push(reason);
    }
    if (moved.length === 0) return 'nothing';
    // Taken in, then refused whole by the lease machine for a round above the limit.
    if (moved.length === 2 && moved[0] === 'accepted' && moved[1] === 'round-limit') {
      return 'round-limit';
    }
    return moved.length === 1 ? (moved[0] ?? 'nothing') : 'several';
  }

  halt(): void {
    this.node[HALT]();
    this.clock.reset();
    void this.peers.close();
  }
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const crypto = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto');

/**
 * Runs `start` with the operating system's randomness replaced by a stream seeded with `seed`.
 * A node draws its incarnation from `node:crypto`, never from the rng it is given; the frames
 * that answer it carry that incarnation, and their edits land on its digits, so a batch replays
 * exactly only with the same one. Worker threads run one batch at a time: nothing else draws
 * meanwhile.
 */
async function withSeededCrypto<T>(seed: number, start: () => Promise<T>): Promise<T> {
  const real = crypto.randomBytes;
  const rng = createRng(seed);
  const seeded = (size: number): Buffer =>
    Buffer.from(Array.from({ length: size }, () => Math.floor(rng.next() * 256)));
  crypto.randomBytes = seeded as typeof real;
  syncBuiltinESMExports();
  try {
    return await start();
  } finally {
    crypto.randomBytes = real;
    syncBuiltinESMExports();
  }
}

function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

function prefix(text: string): string {
  const shown = JSON.stringify(text.slice(0, 160));
  return text.length > 160 ? `${shown}… (${text.length} chars)` : shown;
}

/** Runs one batch: `size` frames from the stream (seed, batch) into fresh nodes. */
async function runBatch(seed: number, batch: number, size: number): Promise<Tally> {
  const tally = emptyTally();
  const source = seededSource(seed, batch, TARGET);
  let nodeSeed = (seed * 31 + batch) >>> 0;
  let harness = await Harness.start(nodeSeed);
  const problem = (
    key: 'crash' | 'state' | 'disagreement',
    index: number,
    kind: string,
    what: string,
    text: string,
  ): void => {
    if (key === 'crash') {
      tally.crashes += 1;
      tally.crashKinds[what] = (tally.crashKinds[what] ?? 0) + 1;
    } else if (key === 'state') tally.stateChanges += 1;
    else tally.disagreements += 1;
    const list = tally.problems[key];
    if (list.length < KEEP) list.push({ batch, index, kind, what, text });
  };
  /** The last frames the node took: a crash on a later timer may come from any of them. */
  let taken: string[] = [];
  /** A failed node is a crash; the batch goes on with a fresh one. */
  const replaceIfFailed = async (index: number, kind: string, text: string): Promise<void> => {
    if (harness.failure === null && harness.node.state === 'running') return;
    const lately = taken.map((t) => `\n      after taking ${prefix(t)}`).join('');
    problem(
      'crash',
      index,
      kind,
      `the node failed: ${describeError(harness.failure)}`,
      text + lately,
    );
    taken = [];
    tally.elections += harness.node.stats().elections;
    tally.renewals += harness.node.stats().renewals;
    harness.halt();
    nodeSeed = (nodeSeed + 0x9e3779b9) >>> 0;
    harness = await Harness.start(nodeSeed);
  };

  let last = '';
  for (let index = 0; index < size; index++) {
    // Time passes now and then: the node campaigns, renews, and its leases lapse.
    if (source.chance(0.1)) {
      try {
        await harness.advance(source.int(LEASE_MS / 4));
      } catch (error) {
        problem('crash', index, 'timer', `a timer threw: ${describeError(error)}`, prefix(last));
      }
      await replaceIfFailed(index, 'timer', `(time passed after ${prefix(last)})`);
    }
    const hostile = source.next(harness.recent);
    const { kind, link, text } = hostile;
    last = text;
    tally.frames += 1;

    // The decoder alone, against the reference.
    let decoded: ReturnType<typeof decodeFrame>;
    try {
      decoded = decodeFrame(text, EXPECT);
    } catch (error) {
      problem('crash', index, kind, `decodeFrame threw: ${describeError(error)}`, prefix(text));
      continue;
    }
    const reference = expectedDecode(text, EXPECT);
    if (decoded.ok !== reference.ok) {
      const verdict = decoded.ok ? 'accepted' : `refused (${decoded.reason})`;
      problem(
        'disagreement',
        index,
        kind,
        `the decoder ${verdict}, the reference did not`,
        prefix(text),
      );
    } else if (decoded.ok && reference.ok && !isDeepStrictEqual(decoded.frame, reference.value)) {
      problem(
        'disagreement',
        index,
        kind,
        'the decoded frame is not what the text says',
        prefix(text),
      );
    }
    if (decoded.ok) {
      const type = decoded.frame.msg.type;
      tally.types[type] = (tally.types[type] ?? 0) + 1;
    }
    const expected: Outcome = !decoded.ok
      ? decoded.reason
      : decoded.frame.from !== link
        ? 'sender'
        : !decoded.frame.msg.type.startsWith('lease.')
          ? 'unsupported'
          : // A round between the lease's limit (2^48) and the codec's (2^52).
            withinRoundLimit(decoded.frame.msg as LeaseMessage)
            ? 'accepted'
            : 'round-limit';

    // The node, through its transport handler. (Whatever the last frame or timer started has
    // settled: every step ends with a settle.)
    const before = harness.fingerprint();
    const beforeButFramesIn = harness.fingerprint({ framesIn: false });
    const stats = harness.node.stats();
    const handlerErrors = harness.peers.handlerErrors;
    harness.deliver(link, text);
    // The transport catches what the node's handler throws, and counts it.
    if (harness.peers.handlerErrors !== handlerErrors) {
      problem('crash', index, kind, "the node's frame handler threw", prefix(text));
    }
    await settle();
    const outcome = harness.outcome({ framesIn: stats.framesIn, invalid: stats.invalidFrames });
    if (outcome !== expected) {
      problem(
        'disagreement',
        index,
        kind,
        `the node's verdict is ${outcome}, the decoder's ${expected}`,
        prefix(text),
      );
    }
    if (outcome === 'accepted') {
      taken = [...taken, text].slice(-3);
      // What the node answered reaches its peers now, for the source to answer in turn.
      await harness.advance(0);
    }
    for (const refused of harness.peers.refused.splice(0)) {
      problem(
        'crash',
        index,
        kind,
        `the node sent a frame its peers refuse: ${refused}`,
        prefix(text),
      );
    }
    const changed =
      outcome === 'round-limit'
        ? harness.fingerprint({ framesIn: false }) !== beforeButFramesIn
        : harness.fingerprint() !== before;
    if (outcome !== 'accepted' && changed) {
      problem('state', index, kind, `a dropped frame (${outcome}) changed the node`, prefix(text));
    }
    const counts = tally.outcomes[kind];
    if (counts !== undefined && outcome !== 'nothing' && outcome !== 'several') {
      counts[outcome] = (counts[outcome] ?? 0) + 1;
    }
    await replaceIfFailed(index, kind, prefix(text));
  }
  tally.elections += harness.node.stats().elections;
  tally.renewals += harness.node.stats().renewals;
  harness.halt();
  return tally;
}

// --- Workers --------------------------------------------------------------------------------

type ToWorker = { readonly batch: number; readonly size: number } | { readonly done: true };
type FromWorker = { readonly type: 'ready' } | { readonly type: 'result'; readonly tally: Tally };

async function workerMain(seed: number): Promise<void> {
  const port = parentPort;
  if (port === null) return;
  port.on('message', (order: ToWorker) => {
    if ('done' in order) {
      port.close();
      return;
    }
    void runBatch(seed, order.batch, order.size).then((tally) => {
      port.postMessage({ type: 'result', tally } satisfies FromWorker);
    });
  });
  port.postMessage({ type: 'ready' } satisfies FromWorker);
  await Promise.resolve();
}

// --- The command ----------------------------------------------------------------------------

interface Options {
  readonly count: number;
  readonly seed: number;
  readonly workers: number;
  readonly batch: number | null;
  readonly help: boolean;
}

const USAGE = `usage: npm run fuzz -- [--count N] [--seed S] [--workers W] [--batch B]

  --count N    frames in all (default 1,000,000), in batches of ${BATCH_SIZE}, each on a fresh node
  --seed S     the run's seed (default 1); a run replays exactly from it
  --workers W  worker threads (default: one per core)
  --batch B    replays batch B of the seed alone, in this thread
  --help       this text

Frames of every message type (lease, paxos, log and lock) go to a real node, which takes the
lease messages and drops the others as unsupported; every frame is also checked against the
reference in test/fuzz/corpus.ts.`;

function parseArgs(argv: readonly string[]): Options {
  const options = {
    count: 1_000_000,
    seed: 1,
    workers: Math.max(1, availableParallelism()),
    batch: null as number | null,
    help: false,
  };
  for (let k = 0; k < argv.length; k++) {
    const flag = argv[k];
    if (flag === '--help' || flag === '-h') {
      options.help = true;
      continue;
    }
    const value = Number((argv[k + 1] ?? '').replace(/_/g, ''));
    const whole = (min: number): number => {
      if (!Number.isSafeInteger(value) || value < min) {
        throw new Error(`${flag} needs a whole number of at least ${min}`);
      }
      k += 1;
      return value;
    };
    switch (flag) {
      case '--count':
        options.count = whole(1);
        break;
      case '--seed':
        options.seed = whole(0);
        break;
      case '--workers':
        options.workers = whole(1);
        break;
      case '--batch':
        options.batch = whole(0);
        break;
      case undefined:
      default:
        throw new Error(
          `unknown flag ${flag} (flags: --count N, --seed S, --workers W, --batch B, --help)`,
        );
    }
  }
  return options;
}

function group(n: number): string {
  return n.toLocaleString('en-US');
}

/** `type count` pairs, four to a line, by family then type. */
function typeLines(types: Readonly<Record<string, number>>): string[] {
  const cells = Object.keys(types)
    .sort()
    .map((type) => `${type} ${group(types[type] ?? 0)}`.padEnd(30));
  const lines: string[] = [];
  for (let k = 0; k < cells.length; k += 4) lines.push('    ' + cells.slice(k, k + 4).join(''));
  return lines;
}

function report(tally: Tally, options: Options, seconds: number, workers: number): void {
  const out: string[] = [];
  const rate = tally.frames / Math.max(seconds, 1e-9);
  out.push(
    `synod fuzz: ${group(tally.frames)} frames, seed ${options.seed}, ` +
      `${workers} worker${workers === 1 ? '' : 's'}, batches of ${BATCH_SIZE}`,
    `  ${seconds.toFixed(1)} s, ${group(Math.round(rate))} frames/s`,
    '',
  );
  const columns = OUTCOMES.filter((o) =>
    FRAME_KINDS.some((k) => (tally.outcomes[k]?.[o] ?? 0) > 0),
  );
  const width = Math.max(...columns.map((c) => c.length), 9);
  const cell = (s: string): string => s.padStart(width + 1);
  out.push(
    '  outcome by kind of frame ("accepted": handed to the lease machine; else the drop reason)',
  );
  out.push('  ' + 'kind'.padEnd(12) + cell('total') + columns.map(cell).join(''));
  const totals: Record<string, number> = {};
  for (const kind of FRAME_KINDS) {
    const row = tally.outcomes[kind] ?? {};
    const total = Object.values(row).reduce((a, b) => a + b, 0);
    for (const c of columns) totals[c] = (totals[c] ?? 0) + (row[c] ?? 0);
    out.push(
      '  ' +
        kind.padEnd(12) +
        cell(group(total)) +
        columns.map((c) => cell(group(row[c] ?? 0))).join(''),
    );
  }
  const all = Object.values(totals).reduce((a, b) => a + b, 0);
  out.push(
    '  ' +
      'all'.padEnd(12) +
      cell(group(all)) +
      columns.map((c) => cell(group(totals[c] ?? 0))).join(''),
  );
  const accepted = totals['accepted'] ?? 0;
  out.push(
    '',
    `  accepted ${group(accepted)}, rejected ${group(all - accepted)}; ` +
      `the node was elected ${group(tally.elections)} times and renewed ${group(tally.renewals)} times`,
    '',
    '  frames the decoder accepted, by message type:',
    ...typeLines(tally.types),
    '',
    `  crashes: ${group(tally.crashes)}`,
    ...Object.entries(tally.crashKinds)
      .sort((x, y) => y[1] - x[1])
      .map(([what, n]) => `    ${group(n)} × ${what}`),
    `  state changes from dropped frames: ${group(tally.stateChanges)}`,
    `  disagreements (decoder vs reference, node vs decoder): ${group(tally.disagreements)}`,
  );
  for (const [key, title] of [
    ['crash', 'crashes'],
    ['state', 'state changes'],
    ['disagreement', 'disagreements'],
  ] as const) {
    const list = tally.problems[key];
    if (list.length === 0) continue;
    out.push('', `  first ${title}:`);
    for (const p of list) {
      out.push(
        `    batch ${p.batch} frame ${p.index} (${p.kind}): ${p.what}`,
        `      ${p.text}`,
        `      replay: node dist-test/test/fuzz/run.js --seed ${options.seed} --batch ${p.batch}`,
      );
    }
  }
  console.log(out.join('\n'));
}

async function main(): Promise<void> {
  let options: Options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    console.error(describeError(error));
    process.exitCode = 2;
    return;
  }
  if (options.help) {
    console.log(USAGE);
    return;
  }
  const started = performance.now();
  const tally = emptyTally();
  let workers = 0;
  if (options.batch !== null) {
    merge(tally, await runBatch(options.seed, options.batch, BATCH_SIZE));
  } else {
    const batches = Math.ceil(options.count / BATCH_SIZE);
    const sizeOf = (b: number): number => Math.min(BATCH_SIZE, options.count - b * BATCH_SIZE);
    workers = Math.min(options.workers, batches);
    let next = 0;
    let finished = 0;
    let lastReport = performance.now();
    await Promise.all(
      Array.from(
        { length: workers },
        () =>
          new Promise<void>((resolve, reject) => {
            const worker = new Worker(new URL(import.meta.url), {
              workerData: { seed: options.seed },
            });
            const give = (): void => {
              if (next < batches) {
                worker.postMessage({ batch: next, size: sizeOf(next) } satisfies ToWorker);
                next += 1;
              } else {
                worker.postMessage({ done: true } satisfies ToWorker);
              }
            };
            worker.on('message', (message: FromWorker) => {
              if (message.type === 'result') {
                merge(tally, message.tally);
                finished += 1;
                if (performance.now() - lastReport > 10_000) {
                  lastReport = performance.now();
                  console.error(
                    `  … ${group(tally.frames)} frames, ${finished} of ${batches} batches`,
                  );
                }
              }
              give();
            });
            worker.on('error', reject);
            worker.on('exit', (code) => {
              if (code === 0) resolve();
              else reject(new Error(`a worker exited with ${code}`));
            });
          }),
      ),
    );
  }
  report(tally, options, (performance.now() - started) / 1000, Math.max(workers, 1));
  if (tally.crashes + tally.stateChanges + tally.disagreements > 0) process.exitCode = 1;
}

if (isMainThread) {
  await main();
} else {
  await workerMain((workerData as { seed: number }).seed);
}
