import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import {
  isMainThread,
  parentPort,
  Worker,
  workerData,
  type MessagePort,
} from 'node:worker_threads';
import type { WebSocket } from 'ws';
import { WebSocketTransport } from '../../adapters/websocket/index.js';
import { decodeFrame, encodeFrame, type Frame } from '../../lib/codec/messages.js';
import { createNode, DEFAULTS, type NodeStats, type SynodNode } from '../../lib/index.js';
import { LeaseMachine, type LeaseEvent, type LeaseRecord } from '../../lib/lease/machine.js';
import type { LeaseMessage } from '../../lib/lease/messages.js';
import { Driver, type MachineInput, type PureMachine } from '../../lib/node/driver.js';
import { NodeLogger } from '../../lib/node/logger.js';
import { INVALID_FRAME_REASONS, nodeCounters } from '../../lib/node/stats.js';
import type { LoggerLike } from '../../lib/logger.js';
import { agreedSettings } from '../../lib/options.js';
import { createRng } from '../../lib/random.js';
import { encodeSettings } from '../../lib/settings.js';
import type { NodeRecord, NodeStorage, NodeUpdate, Storage } from '../../lib/storage.js';
import { VirtualClock } from '../../lib/testing/virtual-clock.js';
import type { NodeId, Output } from '../../lib/types.js';
import {
  expectationsOf,
  expectedDecode,
  FrameSource,
  type Sent,
  type Target,
} from '../fuzz/corpus.js';
import { ScriptedPeers } from '../fuzz/scripted-peers.js';
import {
  closed,
  CLUSTER,
  collector,
  FAST,
  freePort,
  puppetDial,
  puppetHeaders,
  puppetOpen,
  SECRET,
  sleep,
  waitFor,
} from './websocket-harness.js';

/**
 * A real three-node cluster over WebSocket on loopback, with an elected leader, under attack.
 * Each test aims one kind of hostile input at the leader and at a follower, then checks that
 * nothing moved: the leader keeps leading in the same term and keeps renewing, the followers
 * keep following it, no node counted an election, a deposition or a leader change, no vote any
 * node wrote down mentions the attacker's ballots, the right counter moved, and the heap after
 * a forced collection stayed within a loose bound.
 *
 * The attacker `eve` holds the cluster's secret and is known to every transport (it may connect
 * and send frames) but is not a voter: it stands for a compromised or broken process with the
 * secret. Its frames reach each node's decoder exactly as a voter's would. (Connecting under a
 * voter's id instead would replace that voter's own connection: another attack.) `eve` sorts
 * below every node id, so a node that happens to be dialling it when it dials in keeps eve's
 * connection (the lower id's dial wins), and the tests do not depend on that race. Nodes are
 * built with an explicit WebSocketTransport for this reason: a peers map of URLs makes every
 * entry a voter.
 *
 * Memory: mocha runs without --expose-gc here, so a collector is obtained at run time with
 * `v8.setFlagsFromString('--expose-gc')` and `vm.runInNewContext('gc')`; the structures an attack
 * could grow are bounded through the transport's stats too (nonce cache, connections, handshake
 * timeouts for every idle socket).
 */

const IDS = ['n1', 'n2', 'n3'];
const ATTACKER = 'eve';
/**
 * Long enough that a stall of the shared event loop (the three nodes share it with the test and
 * the attacker's bookkeeping) of up to about 900 ms costs no renewal: leadership must change only
 * if an attack causes it.
 */
const LEASE_MS = 1500;
const HANDSHAKE_TIMEOUT_MS = 300;
const WRONG_SECRET = 'not-the-secret-but-long-enough';
/** Rounds and an incarnation no honest node uses: a vote mentioning them came from the attack. */
const EVIL_ROUND = 2 ** 40;
const EVIL_INC = 'deadbeefdeadbeef';
/** The settings the nodes dial with: eve, holding the secret, claims the same. */
const SETTINGS = encodeSettings(agreedSettings({ ...DEFAULTS, leaseMs: LEASE_MS }));
/** How much the heap may grow across one attack, after forced collections. */
const HEAP_SLACK_BYTES = 24 * 1024 * 1024;

// --- A cluster on loopback ------------------------------------------------------------------

/**
 * A TCP relay in front of a node, recording the HTTP upgrade request of every connection and
 * the status it was answered with: an eavesdropper on the path of real handshakes.
 */
class Eavesdropper {
  readonly heads: { request: Buffer; status: number | null }[] = [];
  readonly #sockets = new Set<Socket>();

  private constructor(
    readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<Eavesdropper> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    assert.ok(address !== null && typeof address === 'object');
    const relay = new Eavesdropper(server, address.port);
    server.on('connection', (client: Socket) => {
      relay.#relay(client, targetPort);
    });
    return relay;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/`;
  }

  #relay(client: Socket, targetPort: number): void {
    const upstream = connect(targetPort, '127.0.0.1');
    const entry: { request: Buffer; status: number | null } = {
      request: Buffer.alloc(0),
      status: null,
    };
    this.heads.push(entry);
    let head: Buffer | null = Buffer.alloc(0);
    for (const socket of [client, upstream]) {
      this.#sockets.add(socket);
      socket.on('error', () => undefined);
      socket.once('close', () => {
        this.#sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (chunk: Buffer) => {
      if (head !== null) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end >= 0) {
          entry.request = head.subarray(0, end + 4);
          head = null;
        }
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (entry.status === null) {
        const match = /^HTTP\/1\.1 (\d{3})/.exec(chunk.toString('latin1', 0, 16));
        entry.status = match === null ? 0 : Number(match[1]);
      }
      client.write(chunk);
    });
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
    });
  }
}

/** Keeps every update a node writes: the history of its promises. */
class RecordingStorage implements NodeStorage {
  readonly history: NodeUpdate[] = [];

  load(): Promise<NodeRecord | null> {
    return Promise.resolve(null);
  }

  save(update: NodeUpdate): Promise<void> {
    this.history.push(structuredClone(update));
    return Promise.resolve();
  }
}

/** A logger that counts lines and checks each one as it goes, keeping none. */
class CheckingLogger implements LoggerLike {
  readonly counts = new Map<string, number>();
  readonly problems: string[] = [];

  readonly fatal = this.#at('fatal');
  readonly error = this.#at('error');
  readonly warn = this.#at('warn');
  readonly info = this.#at('info');
  readonly debug = this.#at('debug');
  readonly trace = this.#at('trace');

  isLevelEnabled(level: string): boolean {
    return level !== 'trace' && level !== 'debug';
  }

  count(level: string, message: string): number {
    return this.counts.get(`${level} ${message}`) ?? 0;
  }

  #at(level: string) {
    return (fields: object, message: string): void => {
      const key = `${level} ${message}`;
      this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
      // The one line per dropped frame is checked by its quoted detail, the rest in full.
      const line =
        message === 'dropped an invalid frame'
          ? String((fields as { detail?: unknown }).detail)
          : JSON.stringify(fields);
      if (line.includes(SECRET) || line.includes(WRONG_SECRET)) {
        this.problems.push(`a secret reached the log: ${message}`);
      }
      if (line.length > 600) this.problems.push(`a long log line (${line.length}): ${message}`);
    };
  }
}

interface Member {
  readonly id: NodeId;
  readonly node: SynodNode;
  readonly transport: WebSocketTransport;
  /** The node's own address, where attacks are aimed. */
  readonly url: string;
  readonly port: number;
  /** The relay in front of the node, when the cluster has them. */
  readonly eavesdropper: Eavesdropper | null;
  readonly storage: RecordingStorage;
  readonly logger: CheckingLogger;
}

interface Cluster {
  readonly members: readonly Member[];
  readonly leader: Member;
  readonly follower: Member;
  close(): Promise<void>;
}

/** Starts the three nodes and resolves once one leads and both others follow it. */
async function electedCluster(options: { eavesdrop: boolean }): Promise<Cluster> {
  const ports = new Map<NodeId, number>();
  const relays = new Map<NodeId, Eavesdropper>();
  for (const id of IDS) {
    const port = await freePort();
    ports.set(id, port);
    if (options.eavesdrop) relays.set(id, await Eavesdropper.start(port));
  }
  // With eavesdroppers, nodes reach one another through them (a relay doubles every hop, so only
  // the test that needs captured handshakes has them). eve's address answers nothing.
  const peers: Record<NodeId, string> = { [ATTACKER]: `ws://127.0.0.1:${await freePort()}/` };
  for (const id of IDS) {
    peers[id] = relays.get(id)?.url ?? `ws://127.0.0.1:${ports.get(id) ?? 0}/`;
  }
  const members: Member[] = IDS.map((id) => {
    const port = ports.get(id) ?? 0;
    const logger = new CheckingLogger();
    const storage = new RecordingStorage();
    const transport = new WebSocketTransport({
      self: id,
      peers,
      listen: { host: '127.0.0.1', port },
      cluster: CLUSTER,
      secret: SECRET,
      ...FAST,
      handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
      logger,
    });
    const node = createNode({
      id,
      peers: IDS,
      transport,
      cluster: CLUSTER,
      leaseMs: LEASE_MS,
      storage,
      logger,
    });
    const eavesdropper = relays.get(id) ?? null;
    return {
      id,
      node,
      transport,
      url: `ws://127.0.0.1:${port}/`,
      port,
      eavesdropper,
      storage,
      logger,
    };
  });
  const close = async (): Promise<void> => {
    await Promise.all(members.map((m) => m.node.stop()));
    for (const m of members) await m.eavesdropper?.close();
  };
  try {
    await Promise.all(members.map((m) => m.node.start()));
    await waitFor(
      'a leader that both other nodes follow, every pair connected',
      () => {
        const leaders = members.filter((m) => m.node.isLeader);
        const leader = leaders[0];
        if (leaders.length !== 1 || leader === undefined) return false;
        return members.every(
          (m) =>
            (m === leader || (m.node.leaderId === leader.id && m.node.term === leader.node.term)) &&
            m.transport.connections().filter((c) => c.peer !== ATTACKER).length === 2,
        );
      },
      10 * LEASE_MS,
    );
  } catch (error) {
    await close();
    throw error;
  }
  const leader = members.find((m) => m.node.isLeader);
  const follower = members.find((m) => !m.node.isLeader);
  assert.ok(leader && follower);
  return { members, leader, follower, close };
}

// --- Watching for disturbance ---------------------------------------------------------------

const gc = collector();

function heapAfterGc(): number {
  gc?.();
  return process.memoryUsage().heapUsed;
}

type Counts = Pick<NodeStats, 'elections' | 'depositions' | 'leaderChanges' | 'staleIncarnations'>;

function counts(m: Member): Counts {
  const s = m.node.stats();
  return {
    elections: s.elections,
    depositions: s.depositions,
    leaderChanges: s.leaderChanges,
    staleIncarnations: s.staleIncarnations,
  };
}

/**
 * Samples the cluster every few milliseconds from the moment it is created: the leader must lead
 * in its term with a deadline that only moves forward, and every follower must follow it.
 */
class Watch {
  readonly violations: string[] = [];
  readonly #cluster: Cluster;
  readonly #term: number;
  readonly #counts: Counts[];
  readonly #renewals: number;
  readonly #heap: number;
  readonly #timer: ReturnType<typeof setInterval>;
  /** Event-loop delay over the watch: a stall longer than a lease round lapses a lease by design. */
  readonly #delay = monitorEventLoopDelay({ resolution: 5 });
  /** Watches not yet finished, stopped after each test whatever happened. */
  static readonly running = new Set<Watch>();
  #samples = 0;
  #deadline = Number.NEGATIVE_INFINITY;
  #deadlineMoves = 0;

  constructor(cluster: Cluster) {
    this.#cluster = cluster;
    const term = cluster.leader.node.term;
    assert.ok(term !== null);
    this.#term = term;
    this.#counts = cluster.members.map(counts);
    this.#renewals = cluster.leader.node.stats().renewals;
    this.#heap = heapAfterGc();
    this.#sample();
    this.#timer = setInterval(() => {
      this.#sample();
    }, 5);
    this.#delay.enable();
    Watch.running.add(this);
  }

  stop(): void {
    this.#delay.disable();
    clearInterval(this.#timer);
    Watch.running.delete(this);
  }

  #sample(): void {
    this.#samples += 1;
    const { leader, members } = this.#cluster;
    const violation = (what: string): void => {
      if (this.violations.length < 20) this.violations.push(what);
    };
    if (!leader.node.isLeader) violation(`${leader.id} stopped leading`);
    if (leader.node.term !== this.#term) violation(`the term became ${leader.node.term}`);
    const deadline = leader.node.leaseDeadline;
    if (deadline !== null) {
      if (deadline < this.#deadline) violation('the lease deadline moved back');
      if (deadline > this.#deadline) this.#deadlineMoves += 1;
      this.#deadline = deadline;
    }
    for (const m of members) {
      if (m === leader) continue;
      if (m.node.isLeader) violation(`${m.id} believes it leads`);
      if (m.node.leaderId !== leader.id)
        violation(`${m.id} follows ${m.node.leaderId ?? 'nobody'}`);
      if (m.node.term !== this.#term) violation(`${m.id} sees term ${m.node.term}`);
    }
  }

  /**
   * Waits long enough for any disturbance to show (a lease period and a half: a lapsed lease or
   * a campaign would be over by then), then checks everything held.
   */
  async assertUndisturbed(): Promise<void> {
    await sleep(1.5 * LEASE_MS);
    this.stop();
    this.#sample();
    const stall = (this.#delay.max / 1e6).toFixed(0);
    assert.deepEqual(
      this.violations,
      [],
      `the attack disturbed the cluster (longest event-loop stall: ${stall} ms)`,
    );
    assert.ok(this.#samples > 20, `only ${this.#samples} samples`);
    // Renewals went on throughout: the lease was extended several times.
    assert.ok(this.#deadlineMoves >= 3, `the deadline moved ${this.#deadlineMoves} times`);
    assert.ok(this.#cluster.leader.node.stats().renewals >= this.#renewals + 3);
    const { members } = this.#cluster;
    members.forEach((m, k) => {
      assert.deepEqual(counts(m), this.#counts[k], `${m.id}: an election or a change of leader`);
    });
    for (const m of members) {
      // No vote any node wrote down (a promise, a round) came from the attacker's ballots.
      for (const update of m.storage.history) {
        for (const record of [update.lease, update.log]) {
          if (record === null) continue;
          assert.ok(record.maxRound < EVIL_ROUND, `${m.id} saw an attacker's round`);
          assert.notEqual(record.promised?.incarnation, EVIL_INC, `${m.id} promised the attacker`);
        }
      }
      assert.deepEqual(m.logger.problems, []);
      const stats = m.transport.stats();
      assert.ok(stats.connections <= 3, `${m.id} holds ${stats.connections} connections`);
      assert.equal(m.node.state, 'running');
    }
    if (gc !== null) {
      const grown = heapAfterGc() - this.#heap;
      assert.ok(
        grown < HEAP_SLACK_BYTES,
        `the heap grew by ${(grown / 1048576).toFixed(1)} MiB across the attack`,
      );
    }
  }
}

// --- The attacker ---------------------------------------------------------------------------

/** The attacker's open connections, dropped after each test whatever happened. */
const attackerSockets = new Set<WebSocket>();

/** An authenticated connection of `eve` to `target`, once the target counts it as a peer. */
async function eveConnects(target: Member): Promise<WebSocket> {
  const ws = await puppetOpen(
    target.url,
    puppetHeaders({ from: ATTACKER, to: target.id, settings: SETTINGS }),
  );
  attackerSockets.add(ws);
  await waitFor(`eve connected to ${target.id}`, () =>
    target.transport.connections().some((c) => c.peer === ATTACKER),
  );
  return ws;
}

function invalidTotal(m: Member): number {
  const invalid = m.node.stats().invalidFrames;
  return INVALID_FRAME_REASONS.reduce((sum, reason) => sum + invalid[reason], 0);
}

function invalidDelta(
  m: Member,
  before: NodeStats['invalidFrames'],
): Partial<Record<keyof NodeStats['invalidFrames'], number>> {
  const now = m.node.stats().invalidFrames;
  const delta: Partial<Record<keyof NodeStats['invalidFrames'], number>> = {};
  for (const reason of INVALID_FRAME_REASONS) {
    if (now[reason] !== before[reason]) delta[reason] = now[reason] - before[reason];
  }
  return delta;
}

/** Frames aimed at `target`: a valid shape, the attacker's ballot. */
function evilFrame(target: Member, overrides: Partial<Record<keyof Frame, unknown>> = {}): Frame {
  const sender = IDS.find((id) => id !== target.id) ?? '';
  return {
    v: 1,
    cluster: CLUSTER,
    from: sender,
    to: target.id,
    inc: EVIL_INC,
    msg: {
      type: 'lease.prepare',
      ballot: { round: EVIL_ROUND, node: sender, incarnation: EVIL_INC },
    },
    ...overrides,
  } as Frame;
}

/** Sends `frames` over `ws` a few hundred at a time, letting the event loop breathe between. */
async function sendAll(ws: WebSocket, frames: readonly (string | Buffer)[]): Promise<void> {
  for (let k = 0; k < frames.length; k++) {
    ws.send(frames[k] ?? '');
    if (k % 250 === 249) await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Writes `bytes` on a raw TCP connection to `port` and resolves with the HTTP status answered. */
function rawRequest(port: number, bytes: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.on('error', reject);
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
      const match = /^HTTP\/1\.1 (\d{3})/.exec(answer);
      if (match !== null) {
        socket.destroy();
        resolve(Number(match[1]));
      }
    });
    socket.on('close', () => {
      resolve(0);
    });
  });
}

// --- The flood comes from another thread ------------------------------------------------------

/** How many frames the flood sends to each target. */
const FLOOD = 10_000;
/**
 * Frames a second to each target. The nodes share this process's event loop, and an invalid frame
 * costs a node about 40–50 µs (reading, decoding, counting, logging): two targets at this rate keep
 * the loop about a fifth busy, so the test itself does not become the event-loop stall that costs
 * a 400 ms lease its renewals on a loaded machine.
 */
const FLOOD_PER_SECOND = 2000;

/** What the test asks of the attacker's thread. */
interface FloodOrder {
  readonly targets: readonly { readonly id: NodeId; readonly url: string }[];
  readonly count: number;
  readonly perSecond: number;
}

/** What the attacker's thread reports: connected to every target; every frame handed to its socket. */
interface AttackerNews {
  readonly type: 'connected' | 'sent';
}

/**
 * The attacker, on a thread of its own (as another process would be): makes its flood (half valid
 * frames edited through their text into invalid ones, half random text; seeded), connects to each
 * target as eve, then on 'go' sends the flood at the ordered rate.
 */
async function attack(order: FloodOrder, port: MessagePort): Promise<void> {
  // Made first: a thread busy making them could not answer the targets' pings.
  const floods = order.targets.map((t, k) => {
    const target: Target = { cluster: CLUSTER, self: t.id, peers: IDS.filter((p) => p !== t.id) };
    const source = new FrameSource(createRng(100 + k), target, { big: false });
    const expect = expectationsOf(target);
    const frames: string[] = [];
    while (frames.length < order.count) {
      const text =
        frames.length % 2 === 1
          ? source.randomText()
          : source.mutate(encodeFrame(source.validFrame()));
      if (!expectedDecode(text, expect).ok) frames.push(text);
    }
    return frames;
  });
  const sockets = await Promise.all(
    order.targets.map((t) =>
      puppetOpen(t.url, puppetHeaders({ from: ATTACKER, to: t.id, settings: SETTINGS })),
    ),
  );
  port.postMessage({ type: 'connected' } satisfies AttackerNews);
  await new Promise((resolve) => port.once('message', resolve));
  const batch = Math.max(1, Math.round(order.perSecond / 100));
  for (let k = 0; k < order.count; k += batch) {
    sockets.forEach((ws, i) => {
      for (const frame of floods[i]?.slice(k, k + batch) ?? []) ws.send(frame);
    });
    await sleep(10);
  }
  await waitFor('every frame on the wire', () => sockets.every((ws) => ws.bufferedAmount === 0));
  port.postMessage({ type: 'sent' } satisfies AttackerNews);
}

if (!isMainThread && parentPort !== null) {
  void attack(workerData as FloodOrder, parentPort);
}

// --- The tests ------------------------------------------------------------------------------

if (isMainThread)
  describe('a node under hostile input (3 nodes over WebSocket)', function () {
    this.timeout(60_000);
    let cluster: Cluster | null = null;

    afterEach(async function () {
      for (const watch of Watch.running) watch.stop();
      for (const ws of attackerSockets) ws.terminate();
      attackerSockets.clear();
      await cluster?.close();
      cluster = null;
    });

    /** Starts an elected cluster: the leader and a follower are the two targets of every attack. */
    async function start(
      options = { eavesdrop: false },
    ): Promise<{ c: Cluster; both: [Member, Member] }> {
      const c = await electedCluster(options);
      cluster = c;
      return { c, both: [c.leader, c.follower] };
    }

    it('shrugs off garbage text and binary frames from an authenticated peer', async function () {
      const { c, both } = await start();
      const watch = new Watch(c);
      const source = new FrameSource(
        createRng(7),
        { cluster: CLUSTER, self: 'x', peers: IDS },
        { big: false },
      );
      const garbage = [
        '',
        'not json',
        '{"v":1,',
        '\u0000\u0001\u0002',
        '\ud800',
        '[]'.repeat(1000),
        '['.repeat(5000),
        '{"a":'.repeat(100) + '1' + '}'.repeat(100),
        'null',
        '{"__proto__":{"admin":true}}',
        ...Array.from({ length: 100 }, () => source.randomText()),
      ];
      const binary = [
        Buffer.from([0, 1, 2, 3]),
        Buffer.alloc(1000),
        Buffer.from(encodeFrame(evilFrame(c.leader))),
      ];
      await Promise.all(
        both.map(async (target) => {
          const ws = await eveConnects(target);
          const before = target.node.stats();
          const binaryBefore = target.transport.stats().binaryFrames;
          await sendAll(ws, [...binary, ...garbage]);
          await waitFor(
            `every frame accounted for at ${target.id}`,
            () =>
              target.transport.stats().binaryFrames - binaryBefore === binary.length &&
              invalidTotal(target) - invalidTotalOf(before) === garbage.length,
          );
          const delta = invalidDelta(target, before.invalidFrames);
          assert.ok((delta.malformed ?? 0) >= 8, JSON.stringify(delta));
          assert.ok((delta.schema ?? 0) >= 2, JSON.stringify(delta));
          assert.equal(ws.readyState, ws.OPEN, 'garbage does not cost the peer its connection');
          ws.terminate();
        }),
      );
      await watch.assertUndisturbed();
    });

    it('drops well-formed frames that are wrong, spoofed or from a non-voter, without a vote', async function () {
      const { c, both } = await start();
      const watch = new Watch(c);
      await Promise.all(
        both.map(async (target) => {
          const voter = IDS.find((id) => id !== target.id) ?? '';
          const other = IDS.find((id) => id !== target.id && id !== voter) ?? '';
          const accept: LeaseMessage = {
            type: 'lease.accept',
            ballot: { round: EVIL_ROUND, node: ATTACKER, incarnation: EVIL_INC },
            value: {
              owner: { node: ATTACKER, incarnation: EVIL_INC },
              leaseMs: 3_600_000,
              term: EVIL_ROUND,
            },
          };
          const frames: [string, string][] = [
            // A high-ballot Prepare and an hour-long Accept naming a voter as sender, over eve's link.
            ['sender', encodeFrame(evilFrame(target))],
            ['sender', encodeFrame(evilFrame(target, { msg: accept }))],
            // The same from eve under its own name: not a voter.
            ['sender', encodeFrame(evilFrame(target, { from: ATTACKER }))],
            ['sender', encodeFrame(evilFrame(target, { from: target.id }))],
            ['cluster', encodeFrame(evilFrame(target, { cluster: 'other-cluster' }))],
            ['misaddressed', encodeFrame(evilFrame(target, { to: other }))],
            ['version', JSON.stringify({ ...evilFrame(target), v: 2 })],
            ['schema', JSON.stringify({ ...evilFrame(target), inc: 'DEADBEEF' })],
            [
              'schema',
              encodeFrame(evilFrame(target)).replace(`"round":${EVIL_ROUND}`, '"round":-1'),
            ],
            [
              'schema',
              encodeFrame(evilFrame(target)).replace(
                `"round":${EVIL_ROUND}`,
                '"round":9007199254740992',
              ),
            ],
            ['schema', encodeFrame(evilFrame(target)).replace('{"v":1', '{"__proto__":{},"v":1')],
          ];
          const ws = await eveConnects(target);
          const before = target.node.stats();
          for (const [, text] of frames) ws.send(text);
          await waitFor(
            `every frame counted at ${target.id}`,
            () => invalidTotal(target) - invalidTotalOf(before) === frames.length,
          );
          const expected: Record<string, number> = {};
          for (const [reason] of frames) expected[reason] = (expected[reason] ?? 0) + 1;
          assert.deepEqual(invalidDelta(target, before.invalidFrames), expected);
          ws.terminate();
        }),
      );
      await watch.assertUndisturbed();
    });

    it('refuses a connection with the wrong secret', async function () {
      const { c, both } = await start();
      const watch = new Watch(c);
      await Promise.all(
        both.map(async (target) => {
          const before = target.transport.stats().handshakeRejections['bad-signature'];
          for (let k = 0; k < 20; k++) {
            // As eve, and as a voter: the secret is what is checked.
            const from = k % 2 === 0 ? ATTACKER : (IDS.find((id) => id !== target.id) ?? '');
            const result = await puppetDial(
              target.url,
              puppetHeaders({ from, to: target.id, secret: WRONG_SECRET }),
            );
            assert.ok(!result.ok && result.status === 401, JSON.stringify(result));
          }
          assert.equal(target.transport.stats().handshakeRejections['bad-signature'] - before, 20);
        }),
      );
      await watch.assertUndisturbed();
    });

    it('refuses a connection from an unknown node id, or one claiming to be the node itself', async function () {
      const { c, both } = await start();
      const watch = new Watch(c);
      await Promise.all(
        both.map(async (target) => {
          const before = target.transport.stats().handshakeRejections['unknown-peer'];
          for (const from of ['mallory', target.id, 'N1', 'x'.repeat(64)]) {
            const result = await puppetDial(target.url, puppetHeaders({ from, to: target.id }));
            assert.ok(!result.ok && result.status === 403, `${from}: ${JSON.stringify(result)}`);
          }
          assert.equal(target.transport.stats().handshakeRejections['unknown-peer'] - before, 4);
        }),
      );
      await watch.assertUndisturbed();
    });

    it('refuses a replayed handshake: one captured on the wire between two nodes, and its own', async function () {
      const { c, both } = await start({ eavesdrop: true });
      const watch = new Watch(c);
      await Promise.all(
        both.map(async (target) => {
          // Handshakes another node sent this one, as the eavesdropper saw them go by and answered.
          const captured = (target.eavesdropper?.heads ?? []).filter(
            (h) => (h.status === 101 || h.status === 409) && h.request.length > 0,
          );
          assert.ok(captured.length > 0, `no handshake to ${target.id} captured`);
          const before = target.transport.stats().handshakeRejections['replayed-nonce'];
          for (const head of captured)
            assert.equal(await rawRequest(target.port, head.request), 401);
          // eve replays a handshake of its own that was accepted once.
          const headers = puppetHeaders({ from: ATTACKER, to: target.id, settings: SETTINGS });
          const first = await puppetOpen(target.url, headers);
          attackerSockets.add(first);
          const again = await puppetDial(target.url, headers);
          assert.equal(again.ok ? 101 : again.status, 401);
          first.terminate();
          assert.equal(
            target.transport.stats().handshakeRejections['replayed-nonce'] - before,
            captured.length + 1,
          );
        }),
      );
      await watch.assertUndisturbed();
    });

    it('closes a connection that sends an oversized frame, before the node sees it', async function () {
      const { c, both } = await start();
      const watch = new Watch(c);
      await Promise.all(
        both.map(async (target) => {
          const ws = await eveConnects(target);
          const before = target.node.stats();
          const oversized = before.transport?.dropped.oversized ?? 0;
          // Garbage of exactly the largest size reaches the node, and is dropped there.
          ws.send('z'.repeat(64 * 1024));
          await waitFor(
            'the largest frame counted',
            () => invalidTotal(target) === invalidTotalOf(before) + 1,
          );
          ws.send('z'.repeat(64 * 1024 + 1));
          assert.equal(await closed(ws), 1009);
          await waitFor(
            'the oversized frame counted',
            () => (target.node.stats().transport?.dropped.oversized ?? 0) === oversized + 1,
          );
          assert.deepEqual(invalidDelta(target, before.invalidFrames), { malformed: 1 });
          // The peer may come back.
          const back = await eveConnects(target);
          back.terminate();
        }),
      );
      await watch.assertUndisturbed();
    });

    it('destroys raw TCP connections that never complete a handshake', async function () {
      const { c, both } = await start();
      const watch = new Watch(c);
      const PER_TARGET = 20;
      await Promise.all(
        both.map(async (target) => {
          const before = target.transport.stats().handshakeRejections.timeout;
          const start = performance.now();
          const closedAt = await Promise.all(
            Array.from(
              { length: PER_TARGET },
              (_, k) =>
                new Promise<number>((resolve) => {
                  const socket = connect(target.port, '127.0.0.1');
                  socket.on('error', () => undefined);
                  socket.on('connect', () => {
                    // Half say nothing; the others start an upgrade and stall in its headers.
                    if (k % 2 === 1)
                      socket.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n');
                  });
                  socket.once('close', () => {
                    resolve(performance.now() - start);
                  });
                }),
            ),
          );
          for (const after of closedAt) {
            assert.ok(
              after >= HANDSHAKE_TIMEOUT_MS - 50 && after < HANDSHAKE_TIMEOUT_MS + 1500,
              `closed after ${after.toFixed(0)} ms`,
            );
          }
          assert.equal(target.transport.stats().handshakeRejections.timeout - before, PER_TARGET);
        }),
      );
      await watch.assertUndisturbed();
    });

    it('survives a flood of 10,000 invalid frames from an authenticated peer, with bounded memory', async function () {
      const { c, both } = await start();
      const attacker = new Worker(new URL(import.meta.url), {
        workerData: {
          targets: both.map((t) => ({ id: t.id, url: t.url })),
          count: FLOOD,
          perSecond: FLOOD_PER_SECOND,
        } satisfies FloodOrder,
      });
      const said = (type: AttackerNews['type']): Promise<AttackerNews> =>
        new Promise((resolve, reject) => {
          const onMessage = (news: AttackerNews): void => {
            if (news.type !== type) return;
            attacker.off('message', onMessage);
            resolve(news);
          };
          attacker.on('message', onMessage);
          attacker.once('error', reject);
        });
      try {
        await said('connected');
        for (const target of both) {
          await waitFor(`eve connected to ${target.id}`, () =>
            target.transport.connections().some((conn) => conn.peer === ATTACKER),
          );
        }
        const watch = new Watch(c);
        const before = both.map((t) => ({
          stats: t.node.stats(),
          nonces: t.transport.stats().nonceCacheSize,
          logged: t.logger.count('warn', 'dropped an invalid frame'),
        }));
        attacker.postMessage('go');
        await said('sent');
        await Promise.all(
          both.map(async (target, k) => {
            const b = before[k];
            assert.ok(b);
            await waitFor(
              `the flood counted at ${target.id}`,
              () => invalidTotal(target) - invalidTotalOf(b.stats) === FLOOD,
              20_000,
            );
            const after = target.node.stats();
            const delta = invalidDelta(target, b.stats.invalidFrames);
            assert.ok(
              (delta.schema ?? 0) > 1000 && (delta.malformed ?? 0) > 1000,
              JSON.stringify(delta),
            );
            assert.equal(
              after.transport?.dropped['rate-limited'],
              b.stats.transport?.dropped['rate-limited'],
            );
            assert.equal(
              target.transport.connections().filter((conn) => conn.peer === ATTACKER).length,
              1,
              'a flood within the rate limit keeps the connection',
            );
            assert.equal(target.transport.stats().nonceCacheSize, b.nonces, 'frames add no nonces');
            // Each dropped frame is logged (one warning each, short and escaped).
            assert.equal(target.logger.count('warn', 'dropped an invalid frame') - b.logged, FLOOD);
          }),
        );
        await watch.assertUndisturbed();
      } finally {
        await attacker.terminate();
      }
    });
  });

function invalidTotalOf(stats: NodeStats): number {
  return INVALID_FRAME_REASONS.reduce((sum, reason) => sum + stats.invalidFrames[reason], 0);
}

// --- The same, one step down: frames straight into a node's driver ---------------------------

/** A lease machine that counts the messages it is handed. */
class CountingMachine implements PureMachine<LeaseMessage, LeaseRecord, LeaseEvent> {
  messages = 0;

  constructor(readonly inner: LeaseMachine) {}

  start(now: number): Output<LeaseMessage, LeaseRecord, LeaseEvent> {
    return this.inner.start(now);
  }

  handle(
    input: MachineInput<LeaseMessage>,
    now: number,
  ): Output<LeaseMessage, LeaseRecord, LeaseEvent> {
    if (input.type === 'message') this.messages += 1;
    return this.inner.handle(input, now);
  }
}

if (isMainThread)
  describe("hostile frames straight into a node's driver", function () {
    it('change nothing: not the machine, its persisted record, its outputs nor its timer', async function () {
      const ids = ['a', 'b', 'c'];
      const clock = new VirtualClock(1000);
      const target: Target = { cluster: 'synod', self: 'a', peers: ['b', 'c'] };
      const peers = await ScriptedPeers.start(target, clock);
      const saved: string[] = [];
      const storage: Storage<LeaseRecord> = {
        load: () => Promise.resolve(null),
        save: (record) => {
          saved.push(JSON.stringify(record));
          return Promise.resolve();
        },
      };
      const inner = new LeaseMachine(
        {
          id: 'a',
          incarnation: '00000000000000a1',
          peers: ids,
          leaseMs: 300,
          maxClockDrift: 0.01,
          marginMs: 10,
          rng: createRng(5),
        },
        null,
      );
      const machine = new CountingMachine(inner);
      const counters = nodeCounters();
      const events: LeaseEvent[] = [];
      const fatal: unknown[] = [];
      const driver = new Driver<LeaseMessage, LeaseRecord, LeaseEvent>(machine, {
        id: 'a',
        incarnation: '00000000000000a1',
        cluster: 'synod',
        peers: ids,
        transport: peers.transport,
        clock,
        scheduler: clock,
        storage,
        log: new NodeLogger({ logger: null, logLevel: null, id: 'a' }),
        counters,
        accepts: (m): m is LeaseMessage => m.type.startsWith('lease.'),
        onEvents: (list) => events.push(...list),
        afterStep: () => undefined,
        extraWake: () => null,
        onFatal: (error) => fatal.push(error),
      });
      driver.listen();
      await peers.transport.start();
      driver.begin();

      const expect = expectationsOf(target);
      const source = new FrameSource(createRng(11), target);
      /** What `a` sent lately: the source edits answers to it (near-valid frames for live rounds). */
      let recent: Sent[] = [];
      /** `b` and `c` answer a's rounds, so `a` leads and keeps renewing. */
      const answerAll = (): void => {
        const sent = peers.sent.splice(0);
        recent = [...recent, ...sent].slice(-8);
        for (const { to, message } of sent) {
          const reply: LeaseMessage | null =
            message.type === 'lease.prepare'
              ? {
                  type: 'lease.promise',
                  ballot: message.ballot,
                  accepted: null,
                  maxRound: message.ballot.round - 1,
                  termSeen: 0,
                }
              : message.type === 'lease.accept'
                ? { type: 'lease.accepted', ballot: message.ballot, maxRound: message.ballot.round }
                : message.type === 'lease.recover'
                  ? {
                      type: 'lease.recovery',
                      incarnation: message.incarnation,
                      maxRound: 0,
                      recovered: true,
                    }
                  : null;
          if (reply !== null) {
            peers.say(
              to,
              encodeFrame({
                v: 1,
                cluster: 'synod',
                from: to,
                to: 'a',
                inc: '00000000000000b1',
                msg: reply,
              }),
            );
          }
        }
      };
      const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
      const snapshot = (): string => {
        const now = clock.now();
        return JSON.stringify({
          handled: machine.messages,
          sent: peers.transport.stats().sent,
          saved: saved.length,
          record: saved.at(-1) ?? null,
          events: events.length,
          framesIn: counters.framesIn,
          framesOut: counters.framesOut,
          staleIncarnations: counters.staleIncarnations,
          maxRound: inner.maxRound,
          term: inner.term,
          deadline: inner.deadline,
          leader: inner.leader(now),
          isLeader: inner.isLeader(now),
          timers: clock.pending,
          nextDue: clock.nextDueAt(),
        });
      };

      let checked = 0;
      let ledThrough = 0;
      for (let round = 0; round < 12; round++) {
        // Time passes: a's rounds are answered, so it campaigns, leads and renews.
        for (let step = 0; step < 10; step++) {
          await clock.advance(10);
          answerAll();
          await settle();
        }
        if (inner.isLeader(clock.now())) ledThrough += 1;
        for (let k = 0; k < 300; k++) {
          const hostile = source.next(recent);
          const decoded = decodeFrame(hostile.text, expect);
          const verdict = expectedDecode(hostile.text, expect);
          assert.equal(decoded.ok, verdict.ok, hostile.text.slice(0, 200));
          // Only frames the node must drop: refused by the codec, spoofed, or for another machine.
          const expectedReason = !decoded.ok
            ? decoded.reason
            : decoded.frame.from !== hostile.link
              ? 'sender'
              : !decoded.frame.msg.type.startsWith('lease.')
                ? 'unsupported'
                : null;
          if (expectedReason === null) continue;
          await settle();
          const before = snapshot();
          const invalid = { ...counters.invalidFrames };
          peers.say(hostile.link, hostile.text);
          assert.equal(
            snapshot(),
            before,
            `changed by ${hostile.kind}: ${hostile.text.slice(0, 200)}`,
          );
          await settle();
          assert.equal(
            snapshot(),
            before,
            `changed later by ${hostile.kind}: ${hostile.text.slice(0, 200)}`,
          );
          const after = counters.invalidFrames;
          assert.equal(
            after[expectedReason],
            invalid[expectedReason] + 1,
            `not counted as ${expectedReason}`,
          );
          checked += 1;
        }
      }
      assert.deepEqual(fatal, []);
      assert.deepEqual(peers.refused, [], 'the driver sends valid frames');
      assert.equal(peers.handlerErrors, 0, "the driver's frame handler never throws");
      assert.ok(checked > 1500, `only ${checked} frames checked`);
      assert.ok(ledThrough >= 8, `a led through only ${ledThrough} of 12 rounds`);
      driver.halt();
      await peers.close();
    });
  });
