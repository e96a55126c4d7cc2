import { WebSocketTransport } from '../../adapters/websocket/index.js';
import { createNode, type SynodNode } from '../../lib/index.js';
import type { Transport } from '../../lib/transport.js';
import { freePort } from '../integration/websocket-harness.js';
import { EchoClient } from './echo.js';
import { summarize, type Summary } from './stats.js';

/**
 * A lease round over real WebSocket connections on loopback, against the raw round trip of the
 * same kind of connection.
 *
 * Three nodes run in this process, each on a real `WebSocketTransport` (its own server, its own
 * authenticated connections to the others). The leader's transport is wrapped to time each
 * lease round: from the first Prepare of a ballot handed to `send` until the Accepted that
 * completes a majority arrives (the leader's own vote is local). That is two quorum round trips
 * plus the work of encoding, decoding and validating every frame on both sides.
 *
 * The reference is an echo between two `ws` sockets with the transport's socket settings
 * (no compression, the same payload limit), carrying a real Accept frame of the protocol. Echo
 * samples are taken between lease rounds, in the same process and on the same event loop, so
 * both figures see the same machine at the same moments. A round starts after the process sat
 * idle since the last one, and a round trip from idle is several times slower than one right
 * after another (caches, the scheduler waking an idle CPU): so the reference is the first echo
 * after an idle gap, in the state a renewal starts in; back-to-back echoes are kept apart as
 * `hotRttMs`, for information.
 */

export interface LeaseRoundOptions {
  readonly leaseMs: number;
  /** Lease rounds to time (after a few of warm-up). */
  readonly rounds: number;
  /** Echo round trips between two consecutive lease rounds: one after an idle gap, then more. */
  readonly echoesPerRound: number;
}

export interface LeaseRoundResult {
  /** Raw WebSocket round trip after an idle gap (as a renewal starts), ms. */
  readonly rttMs: Summary;
  /** Raw WebSocket round trip right after another one, ms. */
  readonly hotRttMs: Summary;
  /** Prepare sent to a majority of Accepted received, ms. */
  readonly roundMs: Summary;
  /** The size of the echoed frame (a real Accept), in bytes. */
  readonly frameBytes: number;
}

const SECRET = 'bench-secret-of-at-least-16-bytes';
const WARM_UP_ROUNDS = 5;

interface Frame {
  readonly from?: string;
  readonly msg?: { readonly type?: string; readonly ballot?: unknown };
}

function ballotKey(frame: Frame): string {
  return JSON.stringify(frame.msg?.ballot ?? null);
}

/** Wraps the leader-to-be's transport: times rounds from first Prepare to majority Accepted. */
class RoundTimer {
  readonly samples: number[] = [];
  /** A real Accept frame, kept for the echo. */
  acceptFrame: string | null = null;
  #prepared = new Map<string, { at: number; accepted: Set<string>; done: boolean }>();
  #waiters: (() => void)[] = [];

  constructor(private readonly majority: number) {}

  wrap(inner: Transport): Transport {
    return {
      self: inner.self,
      peers: inner.peers,
      start: (settings) => inner.start(settings),
      send: (to, frame) => {
        const parsed = JSON.parse(frame) as Frame;
        if (parsed.msg?.type === 'lease.prepare') {
          const key = ballotKey(parsed);
          if (!this.#prepared.has(key)) {
            this.#prepared.set(key, { at: performance.now(), accepted: new Set(), done: false });
          }
        } else if (parsed.msg?.type === 'lease.accept') {
          this.acceptFrame ??= frame;
        }
        inner.send(to, frame);
      },
      onMessage: (handler) =>
        inner.onMessage((from, frame) => {
          // Timed before the node handles the frame, as the round is complete on arrival.
          const at = performance.now();
          const parsed = JSON.parse(frame) as Frame;
          if (parsed.msg?.type === 'lease.accepted') {
            const round = this.#prepared.get(ballotKey(parsed));
            if (round !== undefined && !round.done) {
              round.accepted.add(from);
              // The leader's own acceptor votes locally: one vote is already in.
              if (round.accepted.size + 1 >= this.majority) {
                round.done = true;
                this.samples.push(at - round.at);
                for (const wake of this.#waiters.splice(0)) wake();
              }
            }
          }
          handler(from, frame);
        }),
      onPeer: (handler) => inner.onPeer(handler),
      onRefusal: (handler) => inner.onRefusal(handler),
      close: () => inner.close(),
      stats: () => inner.stats(),
    };
  }

  /** Resolves when the next round completes. */
  next(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}

async function waitUntil(what: string, condition: () => boolean, timeoutMs: number) {
  const end = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export async function measureLeaseRounds(options: LeaseRoundOptions): Promise<LeaseRoundResult> {
  const ids = ['a', 'b', 'c'];
  const urls: Record<string, string> = {};
  for (const id of ids) urls[id] = `ws://127.0.0.1:${await freePort()}`;
  const timers = new Map(ids.map((id) => [id, new RoundTimer(2)]));
  const nodes: SynodNode[] = ids.map((id) => {
    const transport = new WebSocketTransport({
      self: id,
      peers: urls,
      cluster: 'bench',
      secret: SECRET,
      listen: { host: '127.0.0.1', port: Number(new URL(urls[id] ?? '').port) },
    });
    const timer = timers.get(id);
    if (timer === undefined) throw new Error(`no timer for ${id}`);
    return createNode({
      id,
      peers: ids,
      transport: timer.wrap(transport),
      cluster: 'bench',
      leaseMs: options.leaseMs,
    });
  });
  const echo = await EchoClient.inProcess();
  try {
    await Promise.all(nodes.map((node) => node.start()));
    await waitUntil('a leader', () => nodes.some((n) => n.isLeader), 20 * options.leaseMs);
    const leader = nodes.find((n) => n.isLeader);
    const timer = leader === undefined ? undefined : timers.get(leader.id);
    if (leader === undefined || timer === undefined) throw new Error('no leader');
    for (let i = 0; i < WARM_UP_ROUNDS; i++) await timer.next();
    const frame = timer.acceptFrame;
    if (frame === null) throw new Error('no Accept frame seen');
    timer.samples.length = 0;

    const rtts: number[] = [];
    const hot: number[] = [];
    for (let echo0 = 0; echo0 < 20; echo0++) await echo.roundTrip(frame); // warm-up
    while (timer.samples.length < options.rounds) {
      await timer.next();
      if (!leader.isLeader) throw new Error('the leader changed during the measurement');
      // Halfway to the next round, after a quiet gap like the one before each round.
      await new Promise((resolve) => setTimeout(resolve, options.leaseMs / 6));
      for (let i = 0; i < options.echoesPerRound; i++) {
        const rtt = await echo.roundTrip(frame);
        (i === 0 ? rtts : hot).push(rtt);
      }
    }
    return {
      rttMs: summarize(rtts),
      hotRttMs: summarize(hot.length > 0 ? hot : [Number.NaN]),
      roundMs: summarize(timer.samples.slice(0, options.rounds)),
      frameBytes: Buffer.byteLength(frame),
    };
  } finally {
    await Promise.all(nodes.map((node) => node.stop().catch(() => undefined)));
    await echo.close();
  }
}

/**
 * Graceful handoffs over real WebSocket connections, with the three nodes in this process (on
 * the built-in transport: `peers` as a map of URLs): the protocol's handoff on real sockets,
 * without processes competing for the CPU. Each trial stops the leader, times until another
 * node's `onLeader` starts, then starts a new node in its place and waits out its silence.
 */
export async function measureInProcessHandoffs(options: {
  readonly leaseMs: number;
  readonly handoffs: number;
}): Promise<Summary> {
  const ids = ['a', 'b', 'c'];
  const urls: Record<string, string> = {};
  for (const id of ids) urls[id] = `ws://127.0.0.1:${await freePort()}`;
  /** When the latest onLeader started (an object: closures set it). */
  const elected: { at: number | null } = { at: null };
  const electedAt = (): number | null => elected.at;
  const create = (id: string): SynodNode => {
    const node = createNode({ id, peers: urls, secret: SECRET, leaseMs: options.leaseMs });
    node.onLeader(() => {
      elected.at ??= performance.now();
    });
    return node;
  };
  const nodes = ids.map(create);
  const samples: number[] = [];
  try {
    await Promise.all(nodes.map((node) => node.start()));
    for (let trial = 0; trial < options.handoffs; trial++) {
      await waitUntil('a leader', () => nodes.some((n) => n.isLeader), 20 * options.leaseMs);
      // A random moment of the renewal cycle.
      await new Promise((resolve) => setTimeout(resolve, (Math.random() * options.leaseMs) / 3));
      const leader = nodes.find((n) => n.isLeader);
      if (leader === undefined) continue;
      elected.at = null;
      const stoppedAt = performance.now();
      const stopping = leader.stop();
      await waitUntil('a successor', () => electedAt() !== null, 20 * options.leaseMs);
      samples.push((electedAt() ?? Number.NaN) - stoppedAt);
      await stopping;
      const index = nodes.indexOf(leader);
      const next = create(leader.id);
      nodes[index] = next;
      await next.start();
      // Its restart silence, so the next trial has three voters.
      await new Promise((resolve) => setTimeout(resolve, options.leaseMs * 1.2));
    }
    return summarize(samples);
  } finally {
    await Promise.all(nodes.map((node) => node.stop().catch(() => undefined)));
  }
}
