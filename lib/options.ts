import {
  TUNING_KEYS,
  validateWebSocketOptions,
  type TlsOptions,
  type WebSocketTransportOptions,
} from '../adapters/websocket/options.js';
import { MAX_TIMER_MS, type Clock, type Scheduler } from './clock.js';
import { isValidId, MAX_ID_LENGTH } from './codec/messages.js';
import { ConfigError } from './errors.js';
import { LOG_LEVELS, type LoggerLike, type LogLevel } from './logger.js';
import type { Rng } from './random.js';
import type { TransportSettings } from './settings.js';
import type { NodeStorage } from './storage.js';
import type { Transport } from './transport.js';
import type { NodeId } from './types.js';
import {
  hasMethods,
  isObject,
  readClock,
  readLogger,
  readRng,
  readScheduler,
  rejectUnknownKeys,
} from './validate.js';

/**
 * Every default in one place, frozen. Each can be overridden per node; `validateOptions` says
 * which values are allowed.
 */
export const DEFAULTS = Object.freeze({
  /** How long a lease lasts on each acceptor's clock (allowed 100–60000). */
  leaseMs: 1000,
  /** ρ: the bound on clock *rate* drift between any two nodes, a ratio in [0, 0.1). */
  maxClockDrift: 0.01,
  /** Taken off the believed lease on top of the drift allowance. */
  marginMs: 10,
  /**
   * The bound on lock TTLs, for the lock service to come: no lock is granted for longer, and a
   * whole cluster restarting without storage waits it out.
   */
  maxTtlMs: 60_000,
  /** How long a graceful `stop()` waits for running `onLeader` work before letting the lease lapse. */
  handoffTimeoutMs: 5000,
  /** The cluster id every frame carries; frames of another cluster are refused. */
  cluster: 'synod',
});

export const LEASE_MS_MIN = 100;
export const LEASE_MS_MAX = 60_000;
/** ρ must stay below this: beyond 10% a lease believed for L·(1−ρ)/(1+ρ) is mostly margin. */
export const MAX_CLOCK_DRIFT_LIMIT = 0.1;

/**
 * The settings every node of a cluster must agree on: each node's restart silence and lease
 * arithmetic use its own values, so nodes that disagree are unsafe together. The node hands
 * them to its transport, which refuses a peer whose settings differ (`agreedSettings`).
 */
export const AGREED_SETTINGS = ['leaseMs', 'maxClockDrift', 'marginMs', 'maxTtlMs'] as const;

/**
 * Tuning of the built-in WebSocket transport, for `createNode` with `peers` as a map of URLs.
 * Each field means what it means in `WebSocketTransportOptions` and has the same default.
 */
export type WebSocketTuning = Pick<WebSocketTransportOptions, (typeof TUNING_KEYS)[number]>;

/** The options of `createNode` whatever carries the frames. */
export interface BaseNodeOptions {
  /** This node's id: 1 to 64 characters, unique in the cluster, stable across restarts. */
  readonly id: NodeId;
  readonly leaseMs?: number;
  readonly maxClockDrift?: number;
  readonly marginMs?: number;
  /** The bound on lock TTLs (for the lock service to come); default 60000. */
  readonly maxTtlMs?: number;
  readonly handoffTimeoutMs?: number;
  /** Named as successor when this node hands off leadership gracefully. */
  readonly preferredLeader?: NodeId;
  /** The cluster id; every node of one cluster must use the same. */
  readonly cluster?: string;
  /** Monotonic milliseconds; default the global `performance.now()`. */
  readonly clock?: Clock;
  /** A pino (or pino-compatible) logger. Without it and without `logLevel`, synod is silent. */
  readonly logger?: LoggerLike;
  /** With `logger`: the level of the node's child logger. Alone: log to stdout with pino. */
  readonly logLevel?: LogLevel;
  /**
   * Keeps the node's votes and state across restarts (`synod/adapters/file`). Loaded before
   * start; every update is saved before anything that depends on it is sent.
   */
  readonly storage?: NodeStorage;
  /**
   * Advanced, for tests: the timers the node uses (default the global `setTimeout`). The test
   * cluster passes its virtual clock here.
   */
  readonly scheduler?: Scheduler;
  /**
   * Advanced, for tests: the randomness behind election jitter. Default: seeded from
   * `node:crypto` at each start. The incarnation is always drawn from `node:crypto`.
   */
  readonly rng?: Rng;
  /**
   * Advanced, for tests: wall-clock milliseconds (default `Date.now`), read once at each start
   * for the token base of a new cluster epoch, its one use.
   */
  readonly wallClock?: () => number;
}

/** A node on a transport the application provides (the memory network, a transport of its own). */
export interface TransportNodeOptions extends BaseNodeOptions {
  /** Every voting node's id, this node's included. An odd count tolerates the most failures. */
  readonly peers: readonly NodeId[];
  /** How frames reach the other nodes. Its `self` must be `id` and it must reach every peer. */
  readonly transport: Transport;
}

/** A node on the built-in WebSocket transport, which the node creates, starts and closes. */
export interface WebSocketNodeOptions extends BaseNodeOptions {
  /**
   * Every voting node's `ws://` or `wss://` URL, by id, this node's included (it listens on the
   * port of its own URL unless `listen` says otherwise). An odd count tolerates the most failures.
   */
  readonly peers: Readonly<Record<NodeId, string>>;
  /** The shared secret (at least 16 bytes) that authenticates every connection. Never logged. */
  readonly secret: string | Uint8Array;
  /** Where to accept connections, if not on the port of `peers[id]` on every interface. */
  readonly listen?: WebSocketTransportOptions['listen'];
  /** TLS (and mutual TLS) for `wss://` peers. */
  readonly tls?: TlsOptions;
  /** Timeouts and limits of the transport; the defaults suit most clusters. */
  readonly websocket?: WebSocketTuning;
  /** Not with peers as a map: the node builds its own WebSocket transport. */
  readonly transport?: never;
}

/**
 * Options of `createNode`: `id`, plus either `peers` as an array of ids with a `transport`, or
 * `peers` as a map of id to WebSocket URL with a `secret` (the built-in WebSocket transport).
 */
export type NodeOptions = TransportNodeOptions | WebSocketNodeOptions;

/** Options after validation, with every default filled in. */
export interface ResolvedOptions {
  readonly id: NodeId;
  readonly peers: readonly NodeId[];
  /** The transport the application gave, or null when the node builds its WebSocket transport. */
  readonly transport: Transport | null;
  /** With peers as a map of URLs: the (validated) options of that WebSocket transport. */
  readonly websocket: WebSocketTransportOptions | null;
  readonly leaseMs: number;
  readonly maxClockDrift: number;
  readonly marginMs: number;
  readonly maxTtlMs: number;
  readonly handoffTimeoutMs: number;
  readonly preferredLeader: NodeId | null;
  readonly cluster: string;
  readonly clock: Clock | null;
  readonly logger: LoggerLike | null;
  readonly logLevel: LogLevel | null;
  readonly storage: NodeStorage | null;
  readonly scheduler: Scheduler | null;
  readonly rng: Rng | null;
  readonly wallClock: (() => number) | null;
}

type OptionKey = keyof TransportNodeOptions | keyof WebSocketNodeOptions;

const OPTION_KEYS: readonly OptionKey[] = [
  'id',
  'peers',
  'transport',
  'leaseMs',
  'maxClockDrift',
  'marginMs',
  'maxTtlMs',
  'handoffTimeoutMs',
  'preferredLeader',
  'cluster',
  'clock',
  'logger',
  'logLevel',
  'storage',
  'scheduler',
  'rng',
  'wallClock',
  'secret',
  'listen',
  'tls',
  'websocket',
];

/** Options that only the built-in WebSocket transport takes. */
const WEBSOCKET_ONLY_KEYS = ['secret', 'listen', 'tls', 'websocket'] as const;

/**
 * The lease a holder believes, from the moment it sent its Prepare: L·(1−ρ)/(1+ρ) − margin.
 * Its own clock may run slow by ρ while an acceptor's runs fast by ρ, so this is the longest it
 * can be sure every acceptor that voted still holds the value.
 */
export function believedLeaseMs(leaseMs: number, maxClockDrift: number, marginMs: number): number {
  return (leaseMs * (1 - maxClockDrift)) / (1 + maxClockDrift) - marginMs;
}

/**
 * What the node hands its transport: the `AGREED_SETTINGS`, each as its canonical text (a
 * number's shortest round-trip form), in that order.
 */
export function agreedSettings(
  options: Pick<ResolvedOptions, (typeof AGREED_SETTINGS)[number]>,
): TransportSettings {
  return Object.freeze(
    Object.fromEntries(AGREED_SETTINGS.map((name) => [name, String(options[name])])),
  );
}

/**
 * Checks `createNode` options once, at construction, and fills in the defaults. Every problem is
 * a `ConfigError` whose message names the option. An `undefined` value counts as absent.
 */
export function validateOptions(options: unknown): ResolvedOptions {
  if (!isObject(options)) {
    throw new ConfigError(
      'options must be an object with at least id and peers (and transport or secret)',
    );
  }
  rejectUnknownKeys('option', options, OPTION_KEYS);
  const get = (key: OptionKey): unknown => options[key];

  const id = get('id');
  if (!isValidId(id)) {
    throw new ConfigError(`id must be a string of 1 to ${MAX_ID_LENGTH} characters`);
  }
  const peersValue = get('peers');
  const peerUrls = isObject(peersValue) ? readPeerUrls(peersValue, id, get('listen')) : null;
  const peers = peerUrls === null ? readPeers(peersValue, id) : peerIds(peerUrls, id);

  const leaseMs = get('leaseMs') ?? DEFAULTS.leaseMs;
  if (!isInteger(leaseMs) || leaseMs < LEASE_MS_MIN || leaseMs > LEASE_MS_MAX) {
    throw new ConfigError(
      `leaseMs must be a whole number of milliseconds from ${LEASE_MS_MIN} to ${LEASE_MS_MAX}`,
    );
  }
  const maxClockDrift = get('maxClockDrift') ?? DEFAULTS.maxClockDrift;
  if (
    typeof maxClockDrift !== 'number' ||
    !(maxClockDrift >= 0 && maxClockDrift < MAX_CLOCK_DRIFT_LIMIT)
  ) {
    throw new ConfigError(
      `maxClockDrift must be a ratio of at least 0 and below ${MAX_CLOCK_DRIFT_LIMIT}`,
    );
  }
  const marginMs = get('marginMs') ?? DEFAULTS.marginMs;
  if (typeof marginMs !== 'number' || !Number.isFinite(marginMs) || marginMs < 0) {
    throw new ConfigError('marginMs must be a finite number of milliseconds, at least 0');
  }
  const believed = believedLeaseMs(leaseMs, maxClockDrift, marginMs);
  if (!(believed > 0)) {
    throw new ConfigError(
      `marginMs ${marginMs} is too large for leaseMs ${leaseMs} and maxClockDrift ` +
        `${maxClockDrift}: the believed lease leaseMs·(1−ρ)/(1+ρ) − marginMs must be positive`,
    );
  }
  const maxTtlMs = get('maxTtlMs') ?? DEFAULTS.maxTtlMs;
  if (!isInteger(maxTtlMs) || maxTtlMs < 1 || maxTtlMs > MAX_TIMER_MS) {
    throw new ConfigError(
      `maxTtlMs must be a whole number of milliseconds from 1 to ${MAX_TIMER_MS}`,
    );
  }
  const handoffTimeoutMs = get('handoffTimeoutMs') ?? DEFAULTS.handoffTimeoutMs;
  if (!isInteger(handoffTimeoutMs) || handoffTimeoutMs < 0 || handoffTimeoutMs > MAX_TIMER_MS) {
    throw new ConfigError(
      `handoffTimeoutMs must be a whole number of milliseconds from 0 to ${MAX_TIMER_MS}`,
    );
  }

  const preferred = get('preferredLeader');
  let preferredLeader: NodeId | null = null;
  if (preferred !== undefined && preferred !== null) {
    if (typeof preferred !== 'string' || !peers.includes(preferred)) {
      throw new ConfigError('preferredLeader must be one of peers');
    }
    preferredLeader = preferred;
  }

  const cluster = get('cluster') ?? DEFAULTS.cluster;
  if (!isValidId(cluster)) {
    throw new ConfigError(`cluster must be a string of 1 to ${MAX_ID_LENGTH} characters`);
  }

  const clock = readClock(get('clock'));
  const logger = readLogger(get('logger'));
  const logLevel = get('logLevel');
  if (logLevel !== undefined && !(LOG_LEVELS as readonly unknown[]).includes(logLevel)) {
    throw new ConfigError(`logLevel must be one of ${LOG_LEVELS.join(', ')}`);
  }
  const storage = get('storage');
  if (storage !== undefined && !hasMethods(storage, ['load', 'save'])) {
    throw new ConfigError('storage must be an object with load() and save(update) methods');
  }
  const scheduler = readScheduler(get('scheduler'));
  const rng = readRng(get('rng'));
  const wallClock = get('wallClock');
  if (wallClock !== undefined && typeof wallClock !== 'function') {
    throw new ConfigError('wallClock must be a function returning Unix milliseconds');
  }

  let transport: Transport | null = null;
  let websocket: WebSocketTransportOptions | null = null;
  if (peerUrls === null) {
    for (const key of WEBSOCKET_ONLY_KEYS) {
      if (get(key) !== undefined) {
        throw new ConfigError(
          `${key} is only for peers given as a map of URLs (the built-in WebSocket ` +
            'transport); with peers as an array of ids, configure your transport instead',
        );
      }
    }
    transport = readTransport(get('transport'), id, peers);
  } else {
    websocket = readWebSocketWiring(get, {
      self: id,
      peers: peerUrls,
      cluster,
      clock,
      scheduler,
    });
  }

  return Object.freeze({
    id,
    peers,
    transport,
    websocket,
    leaseMs,
    maxClockDrift,
    marginMs,
    maxTtlMs,
    handoffTimeoutMs,
    preferredLeader,
    cluster,
    clock,
    logger,
    logLevel: (logLevel as LogLevel | undefined) ?? null,
    storage: (storage as NodeStorage | undefined) ?? null,
    scheduler,
    rng,
    wallClock: (wallClock as (() => number) | undefined) ?? null,
  });
}

function readPeers(value: unknown, id: NodeId): readonly NodeId[] {
  if (!Array.isArray(value)) {
    throw new ConfigError(
      'peers must be an array of node ids, this node included (with a transport), or an ' +
        'object mapping each node id to its ws:// or wss:// URL (with a secret)',
    );
  }
  if (value.length === 0) throw new ConfigError('peers must not be empty');
  const seen = new Set<NodeId>();
  for (const peer of value as unknown[]) {
    if (!isValidId(peer)) {
      throw new ConfigError(
        `peers must hold node ids of 1 to ${MAX_ID_LENGTH} characters; found ${describe(peer)}`,
      );
    }
    if (seen.has(peer)) throw new ConfigError(`peers lists "${peer}" twice`);
    seen.add(peer);
  }
  if (!seen.has(id)) throw new ConfigError(`peers must include this node's own id "${id}"`);
  return Object.freeze([...seen]);
}

/**
 * `peers` as a map of id to URL: checks the ids and that every URL is `ws://` or `wss://`.
 * The WebSocket transport checks the rest (credentials in a URL, `wss://` with `tls`).
 */
function readPeerUrls(
  value: Record<string, unknown>,
  id: NodeId,
  listen: unknown,
): Readonly<Record<NodeId, string>> {
  const entries = Object.entries(value);
  if (entries.length === 0) throw new ConfigError('peers must not be empty');
  const urls: Record<NodeId, string> = {};
  for (const [peer, url] of entries) {
    if (!isValidId(peer)) {
      throw new ConfigError(
        `peers keys must be node ids of 1 to ${MAX_ID_LENGTH} characters; found ${describe(peer)}`,
      );
    }
    // The URL itself is not quoted back: it might carry credentials.
    const parsed = typeof url === 'string' && URL.canParse(url) ? new URL(url) : null;
    if (parsed === null || (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:')) {
      throw new ConfigError(`peers["${peer}"] must be a ws:// or wss:// URL`);
    }
    urls[peer] = url as string;
  }
  if (!(id in urls) && listen === undefined) {
    throw new ConfigError(
      `peers has no URL for this node's own id "${id}": add it (the node listens on its ` +
        'port), or give listen',
    );
  }
  return Object.freeze(urls);
}

/** The voters of a map of URLs: its ids, and this node's (which `listen` may stand for). */
function peerIds(urls: Readonly<Record<NodeId, string>>, id: NodeId): readonly NodeId[] {
  const ids = Object.keys(urls);
  if (!ids.includes(id)) ids.push(id);
  return Object.freeze(ids);
}

/**
 * The built-in WebSocket transport's options, from `createNode`'s: checked here, once, so that
 * every problem is a `ConfigError` at construction (the secret never appears in a message).
 */
function readWebSocketWiring(
  get: (key: OptionKey) => unknown,
  base: {
    self: NodeId;
    peers: Readonly<Record<NodeId, string>>;
    cluster: string;
    clock: Clock | null;
    scheduler: Scheduler | null;
  },
): WebSocketTransportOptions {
  const transport = get('transport');
  if (transport !== undefined && transport !== null) {
    throw new ConfigError(
      'transport must not be given when peers is a map of URLs: the node builds its WebSocket ' +
        'transport from them (give peers as an array of ids to use a transport of your own)',
    );
  }
  const secret = get('secret');
  if (secret === undefined || secret === null) {
    throw new ConfigError(
      'secret is required when peers is a map of URLs: the shared secret (a string or Buffer ' +
        'of at least 16 bytes) that authenticates every connection',
    );
  }
  const tuning = get('websocket');
  if (tuning !== undefined && !isObject(tuning)) {
    throw new ConfigError(`websocket must be an object with some of ${TUNING_KEYS.join(', ')}`);
  }
  rejectUnknownKeys('websocket option', tuning ?? {}, TUNING_KEYS);
  const listen = get('listen');
  const tls = get('tls');
  const options = {
    ...(tuning as WebSocketTuning | undefined),
    self: base.self,
    peers: base.peers,
    cluster: base.cluster,
    secret,
    ...(listen === undefined ? {} : { listen }),
    ...(tls === undefined ? {} : { tls }),
    ...(base.clock === null ? {} : { clock: base.clock }),
    ...(base.scheduler === null ? {} : { scheduler: base.scheduler }),
  } as WebSocketTransportOptions;
  // Throws a ConfigError naming the problem: a short secret, bad tls, listen or tuning values.
  validateWebSocketOptions(options);
  return Object.freeze(options);
}

function readTransport(value: unknown, id: NodeId, peers: readonly NodeId[]): Transport {
  if (value === undefined || value === null) {
    throw new ConfigError(
      'transport is required when peers is an array of ids (for tests, MemoryNetwork from ' +
        'synod/adapters/memory), or give peers as a map of id to ws:// URL with a secret',
    );
  }
  if (!hasMethods(value, ['start', 'send', 'onMessage', 'close', 'stats'])) {
    throw new ConfigError('transport must have start, send, onMessage, close and stats methods');
  }
  const transport = value as unknown as Transport;
  if (transport.self !== id) {
    throw new ConfigError(
      `transport.self is ${describe(transport.self)}, not this node's id "${id}"`,
    );
  }
  const reachable = new Set(Array.isArray(transport.peers) ? transport.peers : []);
  const missing = peers.filter((peer) => peer !== id && !reachable.has(peer));
  if (missing.length > 0) {
    throw new ConfigError(`transport does not reach the peers ${missing.join(', ')}`);
  }
  return transport;
}

function isInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value);
}

/** A short description of a bad value, safe to put in a message. */
function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 24));
  return value === null ? 'null' : typeof value;
}
