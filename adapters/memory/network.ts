import { MAX_TIMER_MS, systemScheduler, type Scheduler } from '../../lib/clock.js';
import { isValidId, MAX_ID_LENGTH } from '../../lib/codec/messages.js';
import { snapshot } from '../../lib/counters.js';
import { ConfigError, TransportError } from '../../lib/errors.js';
import { createRng, randomInt, type Rng } from '../../lib/random.js';
import {
  checkSettings,
  NO_SETTINGS,
  settingsMismatch,
  type TransportSettings,
} from '../../lib/settings.js';
import {
  countRefusal,
  Handlers,
  transportCounters,
  type PeerEvent,
  type SettingsRefusal,
  type Transport,
  type TransportCounters,
  type TransportStats,
} from '../../lib/transport.js';
import type { NodeId } from '../../lib/types.js';
import { rejectUnknownKeys } from '../../lib/validate.js';

/**
 * An in-process network for tests and the simulator-backed test cluster, with faults injected
 * at run time. Every random choice (loss, duplication, delay) comes from one generator seeded by
 * `seed`, and every delivery goes through the scheduler, so a seed and a virtual clock replay
 * the same run.
 *
 * Model, chosen to match what a node would see over real connections:
 * - A frame is checked against the links when sent and again when it arrives: a partition cuts
 *   off frames already in flight, as it would packets on the wire. The sender does not learn of
 *   it (it counts the frame as sent), as over a real connection until pings time out.
 * - A peer is reported `up` while its transport is open and the links both ways are open.
 *   Reports are immediate here, where a real adapter notices after a ping timeout.
 * - A crash loses what is in flight *to* the node, but what it sent before crashing still
 *   arrives (the case the design's "crash right after sending a promise" faults need).
 * - A paused node (a stalled event loop) keeps its connections; what arrives for it is held and
 *   handed over in arrival order once resumed. Pausing holds deliveries only: stalling the
 *   node's own timers is the test clock's business.
 * - Partitions, cuts and isolation are per node id and outlive a crash and restart: they model
 *   the network around a host, not one process.
 * - Two open transports whose settings (given to `start`) differ are never connected, as the
 *   WebSocket adapter's handshake refuses them: neither reports the other up, frames between
 *   them are dropped as `unreachable` when sent, and when the second of the pair starts each
 *   side reports the refusal once (`onRefusal`) and counts it.
 */

export interface MemoryNetworkOptions {
  /** Timers for deliveries; default the global ones (so sinon fake timers drive them). */
  readonly scheduler?: Scheduler;
  /** Seed of the generator behind every random choice; default 1. */
  readonly seed?: number;
  /** Each frame's delay, uniform over `[min, max]` whole milliseconds; default `[0, 0]`. */
  readonly delayMs?: readonly [number, number];
  /** Probability that a frame is lost; default 0. */
  readonly lossRate?: number;
  /** Probability that a frame is delivered twice (each copy with its own delay); default 0. */
  readonly duplicateRate?: number;
}

const OPTION_KEYS: readonly (keyof MemoryNetworkOptions)[] = [
  'scheduler',
  'seed',
  'delayMs',
  'lossRate',
  'duplicateRate',
];

export interface MemoryNetworkStats {
  /** Frames that entered the network (a duplicate counts once). */
  readonly sent: number;
  /** Frames that reached a receiving transport, duplicates included. */
  readonly delivered: number;
  /** Frames dropped by the random loss rate. */
  readonly lost: number;
  /** Extra copies made by the duplication rate. */
  readonly duplicated: number;
  /** Frames stopped by a partition, a cut or an isolation, when sent or on arrival. */
  readonly blocked: number;
  /** Frames whose receiver had crashed or closed by the time they arrived. */
  readonly undeliverable: number;
  /** Frames and peer events waiting now for paused nodes. */
  readonly held: number;
}

type EndpointState = 'new' | 'open' | 'closed' | 'crashed';

/** The network's view of one transport: the transport object is a thin face over it. */
interface Endpoint {
  readonly id: NodeId;
  readonly peers: ReadonlySet<NodeId>;
  state: EndpointState;
  /** What the transport was started with: peers must have the same. */
  settings: TransportSettings;
  readonly messages: Handlers<[from: NodeId, frame: string]>;
  readonly peerEvents: Handlers<[event: PeerEvent]>;
  readonly refusals: Handlers<[refusal: SettingsRefusal]>;
  readonly counters: TransportCounters;
  /** The reachability last reported to this endpoint, per peer (absent: down). */
  readonly announced: Map<NodeId, boolean>;
}

type Arrival =
  | { readonly kind: 'message'; readonly from: NodeId; readonly frame: string }
  | { readonly kind: 'peer'; readonly event: PeerEvent }
  | { readonly kind: 'refusal'; readonly refusal: SettingsRefusal };

interface Held {
  readonly target: Endpoint;
  readonly arrival: Arrival;
}

/** What arrives for one node id while it is paused, and until the backlog is handed over. */
interface Inbox {
  paused: boolean;
  held: Held[];
  drainScheduled: boolean;
}

/** What a transport asks of its network. */
interface NetworkPort {
  start(endpoint: Endpoint, settings: TransportSettings): void;
  send(endpoint: Endpoint, to: NodeId, frame: string): void;
  close(endpoint: Endpoint): void;
}

export class MemoryNetwork {
  readonly #scheduler: Scheduler;
  readonly #rng: Rng;
  #delayMs: readonly [number, number];
  #lossRate: number;
  #duplicateRate: number;

  /** The current transport of each id, from creation until it closes or crashes. */
  readonly #live = new Map<NodeId, Endpoint>();
  /** Ids that crashed and were not restarted: no transport can be made for them. */
  readonly #crashed = new Set<NodeId>();
  readonly #inboxes = new Map<NodeId, Inbox>();

  /** One-way cuts: from → the ids it cannot reach. */
  readonly #cuts = new Map<NodeId, Set<NodeId>>();
  readonly #isolated = new Set<NodeId>();
  /** The group of each id named in the current partition; `null` when there is none. */
  #groups: Map<NodeId, number> | null = null;

  readonly #stats = { sent: 0, delivered: 0, lost: 0, duplicated: 0, blocked: 0, undeliverable: 0 };

  readonly #port: NetworkPort = {
    start: (endpoint, settings) => {
      this.#start(endpoint, settings);
    },
    send: (endpoint, to, frame) => {
      this.#send(endpoint, to, frame);
    },
    close: (endpoint) => {
      this.#close(endpoint);
    },
  };

  constructor(options: MemoryNetworkOptions = {}) {
    if (typeof options !== 'object' || (options as unknown) === null) {
      throw new ConfigError('MemoryNetwork options must be an object');
    }
    rejectUnknownKeys('MemoryNetwork option', options as Record<string, unknown>, OPTION_KEYS);
    const { scheduler = systemScheduler, seed = 1 } = options;
    if (
      typeof scheduler !== 'object' ||
      (scheduler as unknown) === null ||
      typeof scheduler.setTimeout !== 'function' ||
      typeof scheduler.clearTimeout !== 'function'
    ) {
      throw new ConfigError('scheduler must have setTimeout and clearTimeout functions');
    }
    if (!Number.isSafeInteger(seed)) throw new ConfigError('seed must be a safe integer');
    this.#scheduler = scheduler;
    this.#rng = createRng(seed);
    this.#delayMs = checkDelay(options.delayMs ?? [0, 0]);
    this.#lossRate = checkRate('lossRate', options.lossRate ?? 0);
    this.#duplicateRate = checkRate('duplicateRate', options.duplicateRate ?? 0);
  }

  /**
   * A transport for node `id`. `peers` lists the cluster's node ids; `id` itself may be among
   * them and is left out. One id has at most one open transport at a time (one id in two
   * processes is an operator error the design rules out).
   */
  transport(id: NodeId, peers: readonly NodeId[]): Transport {
    checkId('id', id);
    if (!Array.isArray(peers)) throw new ConfigError('peers must be an array of node ids');
    const others = new Set<NodeId>();
    for (const peer of peers) {
      checkId('peers', peer);
      if (others.has(peer)) throw new ConfigError(`peers lists "${peer}" twice`);
      if (peer !== id) others.add(peer);
    }
    if (this.#crashed.has(id)) {
      throw new ConfigError(`node "${id}" crashed: call restart("${id}") before a new transport`);
    }
    if (this.#live.has(id)) {
      throw new ConfigError(`node "${id}" already has an open transport on this network`);
    }
    const endpoint: Endpoint = {
      id,
      peers: others,
      state: 'new',
      settings: NO_SETTINGS,
      messages: new Handlers(),
      peerEvents: new Handlers(),
      refusals: new Handlers(),
      counters: transportCounters(),
      announced: new Map(),
    };
    this.#live.set(id, endpoint);
    return new MemoryTransport(endpoint, this.#port);
  }

  // --- Fault injection ----------------------------------------------------------------------

  setLoss(rate: number): void {
    this.#lossRate = checkRate('lossRate', rate);
  }

  /** Random delays also reorder: a later frame can draw a shorter delay. */
  setDelay(minMs: number, maxMs: number): void {
    this.#delayMs = checkDelay([minMs, maxMs]);
  }

  setDuplication(rate: number): void {
    this.#duplicateRate = checkRate('duplicateRate', rate);
  }

  /**
   * Splits the network into groups that cannot reach one another (both ways). Ids named in no
   * group form one more group together. Replaces any earlier partition; cuts and isolations
   * stay until `heal()`.
   */
  partition(...groups: (readonly NodeId[])[]): void {
    const map = new Map<NodeId, number>();
    groups.forEach((group, index) => {
      if (!Array.isArray(group)) throw new ConfigError('partition groups must be arrays of ids');
      for (const id of group) {
        checkId('partition', id);
        if (map.has(id)) throw new ConfigError(`partition names "${id}" in two groups`);
        map.set(id, index);
      }
    });
    this.#groups = map;
    this.#refreshPeers();
  }

  /** Frames from `from` to `to` are lost until `restore(from, to)` or `heal()`; not the reverse. */
  cut(from: NodeId, to: NodeId): void {
    checkId('from', from);
    checkId('to', to);
    let cut = this.#cuts.get(from);
    if (cut === undefined) {
      cut = new Set();
      this.#cuts.set(from, cut);
    }
    cut.add(to);
    this.#refreshPeers();
  }

  restore(from: NodeId, to: NodeId): void {
    checkId('from', from);
    checkId('to', to);
    this.#cuts.get(from)?.delete(to);
    this.#refreshPeers();
  }

  /** Cuts `id` off from every other node, both ways, until `heal()`. */
  isolate(id: NodeId): void {
    checkId('id', id);
    this.#isolated.add(id);
    this.#refreshPeers();
  }

  /** Every link back: ends partitions, cuts and isolations (not pauses or crashes). */
  heal(): void {
    this.#groups = null;
    this.#cuts.clear();
    this.#isolated.clear();
    this.#refreshPeers();
  }

  /** Holds everything that arrives for `id` (frames and peer events) until `resume(id)`. */
  pause(id: NodeId): void {
    checkId('id', id);
    this.#inbox(id).paused = true;
  }

  /** Hands over what was held for `id`, in arrival order, then delivers normally. */
  resume(id: NodeId): void {
    checkId('id', id);
    const inbox = this.#inboxes.get(id);
    if (!inbox?.paused) return;
    inbox.paused = false;
    this.#scheduleDrain(inbox);
  }

  /**
   * The process of `id` dies: its transport neither sends nor receives again, what was in
   * flight to it or held for it is lost, what it sent is still delivered, and the others see it
   * go down. No transport can be made for `id` until `restart(id)`.
   */
  crash(id: NodeId): void {
    checkId('id', id);
    this.#crashed.add(id);
    const endpoint = this.#live.get(id);
    if (endpoint !== undefined) {
      endpoint.state = 'crashed';
      endpoint.messages.clear();
      endpoint.peerEvents.clear();
      endpoint.refusals.clear();
      this.#live.delete(id);
    }
    const inbox = this.#inboxes.get(id);
    if (inbox !== undefined) {
      // A restarted process is neither stalled nor owed anything its earlier life was sent.
      this.#stats.undeliverable += inbox.held.filter((h) => h.arrival.kind === 'message').length;
      inbox.held = [];
      this.#inboxes.delete(id);
    }
    this.#refreshPeers();
  }

  /** Allows a fresh transport for a crashed `id`; the new one starts with nothing in flight. */
  restart(id: NodeId): void {
    checkId('id', id);
    this.#crashed.delete(id);
  }

  /**
   * A frame arrives for `to` now, as if its peer `from` had sent it: a test's stand-in for a peer
   * that says anything (hostile input, fuzzing) and needs no transport of its own. It skips the
   * sender's side (loss, duplication, delay) but not the receiver's: links, a pause
   * and a closed or crashed receiver apply as to any arrival, and the receiving transport checks
   * and counts it as any other frame. Unless held by a pause, the handlers run inside this call.
   */
  inject(from: NodeId, to: NodeId, frame: string): void {
    checkId('from', from);
    checkId('to', to);
    if (typeof frame !== 'string') throw new ConfigError('frame must be a string');
    const target = this.#live.get(to);
    if (target === undefined) {
      this.#stats.undeliverable += 1;
      return;
    }
    this.#arrive(target, { kind: 'message', from, frame });
  }

  stats(): MemoryNetworkStats {
    let held = 0;
    for (const inbox of this.#inboxes.values()) held += inbox.held.length;
    return Object.freeze({ ...this.#stats, held });
  }

  // --- Transport operations -----------------------------------------------------------------

  #start(endpoint: Endpoint, settings: TransportSettings): void {
    switch (endpoint.state) {
      case 'new':
        endpoint.settings = settings;
        endpoint.state = 'open';
        this.#refuseDisagreeing(endpoint);
        this.#refreshPeers();
        return;
      case 'open':
        if (settingsMismatch(endpoint.settings, settings) !== null) {
          throw new ConfigError(
            `the transport of "${endpoint.id}" was started with other settings`,
          );
        }
        return;
      case 'closed':
      case 'crashed':
        throw new TransportError(`the transport of "${endpoint.id}" is closed`, {
          retriable: false,
        });
      default: {
        const unreachable: never = endpoint.state;
        return unreachable;
      }
    }
  }

  #send(endpoint: Endpoint, to: NodeId, frame: string): void {
    if (endpoint.state !== 'open') {
      endpoint.counters.dropped.closed += 1;
      return;
    }
    if (!endpoint.peers.has(to)) {
      endpoint.counters.dropped['unknown-peer'] += 1;
      return;
    }
    const target = this.#live.get(to);
    if (target?.state !== 'open' || !agree(endpoint, target)) {
      // As a real adapter with no open connection to the peer would.
      endpoint.counters.dropped.unreachable += 1;
      return;
    }
    endpoint.counters.sent += 1;
    this.#stats.sent += 1;
    if (!this.#linkOpen(endpoint.id, to)) {
      this.#stats.blocked += 1;
      return;
    }
    if (this.#lossRate > 0 && this.#rng.next() < this.#lossRate) {
      this.#stats.lost += 1;
      return;
    }
    const copies = this.#duplicateRate > 0 && this.#rng.next() < this.#duplicateRate ? 2 : 1;
    if (copies === 2) this.#stats.duplicated += 1;
    const arrival: Arrival = { kind: 'message', from: endpoint.id, frame };
    for (let i = 0; i < copies; i++) {
      // The target is bound now: a node restarted before the frame lands is another process,
      // and the frame, in flight to the dead one, is lost.
      this.#scheduler.setTimeout(() => {
        this.#arrive(target, arrival);
      }, this.#drawDelay());
    }
  }

  #close(endpoint: Endpoint): void {
    if (endpoint.state !== 'new' && endpoint.state !== 'open') return;
    endpoint.state = 'closed';
    endpoint.messages.clear();
    endpoint.peerEvents.clear();
    endpoint.refusals.clear();
    if (this.#live.get(endpoint.id) === endpoint) this.#live.delete(endpoint.id);
    this.#refreshPeers();
  }

  // --- Delivery -----------------------------------------------------------------------------

  #arrive(target: Endpoint, arrival: Arrival): void {
    const isMessage = arrival.kind === 'message';
    if (target.state !== 'open') {
      if (isMessage) this.#stats.undeliverable += 1;
      return;
    }
    if (isMessage && !this.#linkOpen(arrival.from, target.id)) {
      this.#stats.blocked += 1;
      return;
    }
    const inbox = this.#inboxes.get(target.id);
    // While a backlog is being handed over, newer arrivals queue behind it to keep the order.
    if (inbox !== undefined && (inbox.paused || inbox.held.length > 0)) {
      inbox.held.push({ target, arrival });
      return;
    }
    this.#dispatch(target, arrival);
  }

  #dispatch(target: Endpoint, arrival: Arrival): void {
    switch (arrival.kind) {
      case 'message':
        this.#stats.delivered += 1;
        if (!target.peers.has(arrival.from)) {
          target.counters.dropped['unknown-peer'] += 1;
        } else if (target.messages.size === 0) {
          target.counters.dropped['no-handler'] += 1;
        } else {
          target.counters.delivered += 1;
          target.counters.handlerErrors += target.messages.emit(arrival.from, arrival.frame);
        }
        return;
      case 'peer':
        target.counters.handlerErrors += target.peerEvents.emit(arrival.event);
        return;
      case 'refusal':
        countRefusal(target.counters, arrival.refusal);
        target.counters.handlerErrors += target.refusals.emit(arrival.refusal);
        return;
      default: {
        const unreachable: never = arrival;
        return unreachable;
      }
    }
  }

  #scheduleDrain(inbox: Inbox): void {
    if (inbox.drainScheduled || inbox.held.length === 0) return;
    inbox.drainScheduled = true;
    this.#scheduler.setTimeout(() => {
      inbox.drainScheduled = false;
      this.#drain(inbox);
    }, 0);
  }

  /** Hands the backlog over in one turn, as a resumed event loop would run its queue. */
  #drain(inbox: Inbox): void {
    const batch = inbox.held;
    inbox.held = [];
    for (const [i, { target, arrival }] of batch.entries()) {
      if (inbox.paused) {
        // A handler paused the node again: the rest waits, still ahead of newer arrivals.
        inbox.held = batch.slice(i).concat(inbox.held);
        return;
      }
      if (target.state !== 'open') {
        if (arrival.kind === 'message') this.#stats.undeliverable += 1;
        continue;
      }
      this.#dispatch(target, arrival);
    }
  }

  #inbox(id: NodeId): Inbox {
    let inbox = this.#inboxes.get(id);
    if (inbox === undefined) {
      inbox = { paused: false, held: [], drainScheduled: false };
      this.#inboxes.set(id, inbox);
    }
    return inbox;
  }

  // --- Links and reachability ---------------------------------------------------------------

  #linkOpen(from: NodeId, to: NodeId): boolean {
    if (this.#isolated.has(from) || this.#isolated.has(to)) return false;
    if (this.#cuts.get(from)?.has(to) === true) return false;
    if (this.#groups === null) return true;
    // Ids named in no group share group -1.
    return (this.#groups.get(from) ?? -1) === (this.#groups.get(to) ?? -1);
  }

  #reachable(from: Endpoint, to: NodeId): boolean {
    const target = this.#live.get(to);
    return (
      target?.state === 'open' &&
      agree(from, target) &&
      this.#linkOpen(from.id, to) &&
      this.#linkOpen(to, from.id)
    );
  }

  /**
   * Reports to both sides each open peer of a transport that just started whose settings differ
   * from its own, through the scheduler (as peer events). Links play no part: a refused pair
   * stays refused across partitions and heals.
   */
  #refuseDisagreeing(endpoint: Endpoint): void {
    for (const other of this.#live.values()) {
      if (other === endpoint || other.state !== 'open') continue;
      const mismatch = settingsMismatch(endpoint.settings, other.settings);
      if (mismatch === null) continue;
      const reports: [Endpoint, SettingsRefusal][] = [];
      if (endpoint.peers.has(other.id)) reports.push([endpoint, { peer: other.id, ...mismatch }]);
      if (other.peers.has(endpoint.id)) {
        const theirs = { setting: mismatch.setting, ours: mismatch.theirs, theirs: mismatch.ours };
        reports.push([other, { peer: endpoint.id, ...theirs }]);
      }
      for (const [target, refusal] of reports) {
        const arrival: Arrival = { kind: 'refusal', refusal: Object.freeze(refusal) };
        this.#scheduler.setTimeout(() => {
          this.#arrive(target, arrival);
        }, 0);
      }
    }
  }

  /**
   * Reports every reachability change to the open transports, through the scheduler. The
   * announced state changes at once, so a quick down-then-up still reports both, in order.
   */
  #refreshPeers(): void {
    for (const endpoint of this.#live.values()) {
      if (endpoint.state !== 'open') continue;
      for (const peer of endpoint.peers) {
        const up = this.#reachable(endpoint, peer);
        if ((endpoint.announced.get(peer) ?? false) === up) continue;
        endpoint.announced.set(peer, up);
        const arrival: Arrival = { kind: 'peer', event: Object.freeze({ peer, up }) };
        this.#scheduler.setTimeout(() => {
          this.#arrive(endpoint, arrival);
        }, 0);
      }
    }
  }

  #drawDelay(): number {
    const [min, max] = this.#delayMs;
    return min === max ? min : randomInt(this.#rng, min, max);
  }
}

/** The face of an endpoint that callers hold. All behaviour lives in the network. */
class MemoryTransport implements Transport {
  readonly self: NodeId;
  readonly peers: readonly NodeId[];
  readonly #endpoint: Endpoint;
  readonly #network: NetworkPort;

  constructor(endpoint: Endpoint, network: NetworkPort) {
    this.self = endpoint.id;
    this.peers = Object.freeze([...endpoint.peers]);
    this.#endpoint = endpoint;
    this.#network = network;
  }

  start(settings?: TransportSettings): Promise<void> {
    try {
      this.#network.start(this.#endpoint, checkSettings(settings));
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(
        error instanceof Error ? error : new TransportError('start failed', { cause: error }),
      );
    }
  }

  send(to: NodeId, frame: string): void {
    this.#network.send(this.#endpoint, to, frame);
  }

  onMessage(handler: (from: NodeId, frame: string) => void): () => void {
    return this.#subscribe(this.#endpoint.messages, handler);
  }

  onPeer(handler: (event: PeerEvent) => void): () => void {
    return this.#subscribe(this.#endpoint.peerEvents, handler);
  }

  onRefusal(handler: (refusal: SettingsRefusal) => void): () => void {
    return this.#subscribe(this.#endpoint.refusals, handler);
  }

  close(): Promise<void> {
    this.#network.close(this.#endpoint);
    return Promise.resolve();
  }

  stats(): TransportStats {
    return snapshot(this.#endpoint.counters);
  }

  #subscribe<A extends readonly unknown[]>(
    handlers: Handlers<A>,
    handler: (...args: A) => void,
  ): () => void {
    // A closed or crashed transport reports nothing more; subscribing to it is harmless.
    if (this.#endpoint.state === 'closed' || this.#endpoint.state === 'crashed') {
      return () => undefined;
    }
    return handlers.add(handler);
  }
}

/** Whether two transports may be connected: the same settings. */
function agree(a: Endpoint, b: Endpoint): boolean {
  return a.settings === b.settings || settingsMismatch(a.settings, b.settings) === null;
}

function checkId(option: string, id: unknown): asserts id is NodeId {
  if (!isValidId(id)) {
    throw new ConfigError(`${option} must be a node id of 1 to ${MAX_ID_LENGTH} characters`);
  }
}

function checkRate(option: string, rate: unknown): number {
  if (typeof rate !== 'number' || !(rate >= 0 && rate <= 1)) {
    throw new ConfigError(`${option} must be a number from 0 to 1`);
  }
  return rate;
}

function checkDelay(delay: unknown): readonly [number, number] {
  const valid =
    Array.isArray(delay) &&
    delay.length === 2 &&
    delay.every(
      (ms) => Number.isSafeInteger(ms) && (ms as number) >= 0 && (ms as number) <= MAX_TIMER_MS,
    ) &&
    (delay[0] as number) <= (delay[1] as number);
  if (!valid) {
    throw new ConfigError(
      `delayMs must be [min, max] whole milliseconds with 0 <= min <= max <= ${MAX_TIMER_MS}`,
    );
  }
  return Object.freeze([delay[0] as number, delay[1] as number] as const);
}
