import { Server as NetServer } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { MAX_TIMER_MS, type Clock, type Scheduler } from '../../lib/clock.js';
import { DEFAULT_MAX_FRAME_BYTES, isValidId, MAX_ID_LENGTH } from '../../lib/codec/messages.js';
import { ConfigError } from '../../lib/errors.js';
import type { LoggerLike } from '../../lib/logger.js';
import type { Rng } from '../../lib/random.js';
import type { NodeId } from '../../lib/types.js';
import {
  isObject,
  readClock,
  readLogger,
  readRng,
  readScheduler,
  rejectUnknownKeys,
} from '../../lib/validate.js';

/**
 * Options of `WebSocketTransport`, validated once at construction. Every problem is a
 * `ConfigError` whose message names the option; the secret never appears in a message.
 */
export interface WebSocketTransportOptions {
  /** This node's id. */
  readonly self: NodeId;
  /**
   * Every node's URL (`ws://` or `wss://`), by id. This node's own entry is optional; when
   * present and `listen` is absent, the transport listens on its port.
   */
  readonly peers: Readonly<Record<NodeId, string>>;
  /**
   * Where to accept connections: an address to bind (the transport creates and owns the
   * server), or a server the application owns and listens with (the transport only adds an
   * `upgrade` listener, and leaves alone upgrades without synod's handshake headers).
   * Default: the port of `peers[self]`, on every interface.
   */
  readonly listen?:
    | { readonly host?: string; readonly port: number }
    | { readonly server: HttpServer | HttpsServer };
  /** The cluster id; a dialler of another cluster is refused. */
  readonly cluster: string;
  /** The shared secret behind the HMAC handshake: at least 16 bytes. Never logged. */
  readonly secret: string | Uint8Array;
  /**
   * TLS for `wss://`: the server certificate and key this node presents (as a listener and, for
   * mutual TLS, as a dialler), and the CA that peers' certificates must chain to. With `tls`,
   * every peer URL must be `wss://`.
   */
  readonly tls?: TlsOptions;
  /** Largest frame in UTF-8 bytes, both ways; default 64 KiB. */
  readonly maxPayload?: number;
  /** A connection that has not finished its handshake by then is destroyed; default 5000. */
  readonly handshakeTimeoutMs?: number;
  /** How often an open connection is pinged; default 1000. Below `peerTimeoutMs`. */
  readonly pingIntervalMs?: number;
  /** A peer silent this long (no frame, no pong) is declared down; default 3000. */
  readonly peerTimeoutMs?: number;
  /** Redial delays: full jitter below `min(maxMs, baseMs·2^attempt)`; default 100 and 5000. */
  readonly reconnect?: { readonly baseMs: number; readonly maxMs: number };
  /** Above this many bytes queued on a connection, sends to it are dropped; default 4 MiB. */
  readonly maxBufferedBytes?: number;
  /** Frames a peer may send per second, sustained; default 10000. */
  readonly ratePerSec?: number;
  /** Frames a peer may send in a burst; default twice `ratePerSec`. */
  readonly burst?: number;
  /** Timers; default the global ones (so fake timers drive them). */
  readonly scheduler?: Scheduler;
  /** Monotonic milliseconds for liveness and rate limits; default `performance.now()`. */
  readonly clock?: Clock;
  /** Randomness behind reconnect jitter; default `Math.random`. */
  readonly rng?: Rng;
  /** A pino (or pino-compatible) logger; default silent. */
  readonly logger?: LoggerLike;
}

export type PemInput = string | Buffer | readonly (string | Buffer)[];

export interface TlsOptions {
  readonly cert: PemInput;
  readonly key: PemInput;
  readonly ca: PemInput;
  /** Whether a listener asks diallers for a certificate and verifies it against `ca`; default true. */
  readonly requestCert?: boolean;
}

export type ListenTarget =
  | { readonly kind: 'address'; readonly host: string | null; readonly port: number }
  | { readonly kind: 'server'; readonly server: HttpServer | HttpsServer };

export interface ResolvedWebSocketOptions {
  readonly self: NodeId;
  /** The other nodes' URLs, by id (never `self`). */
  readonly peerUrls: ReadonlyMap<NodeId, string>;
  readonly listen: ListenTarget;
  readonly cluster: string;
  readonly secret: Buffer;
  readonly tls: {
    readonly cert: PemInput;
    readonly key: PemInput;
    readonly ca: PemInput;
    readonly requestCert: boolean;
  } | null;
  readonly maxPayload: number;
  readonly handshakeTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly peerTimeoutMs: number;
  readonly reconnect: { readonly baseMs: number; readonly maxMs: number };
  readonly maxBufferedBytes: number;
  readonly ratePerSec: number;
  readonly burst: number;
  readonly scheduler: Scheduler | null;
  readonly clock: Clock | null;
  readonly rng: Rng | null;
  readonly logger: LoggerLike | null;
}

export const WEBSOCKET_DEFAULTS = Object.freeze({
  maxPayload: DEFAULT_MAX_FRAME_BYTES,
  handshakeTimeoutMs: 5000,
  pingIntervalMs: 1000,
  peerTimeoutMs: 3000,
  reconnectBaseMs: 100,
  reconnectMaxMs: 5000,
  maxBufferedBytes: 4 * 1024 * 1024,
  ratePerSec: 10_000,
});

/** The shortest secret accepted, in bytes: HMAC-SHA256 wants at least 128 bits of key. */
export const MIN_SECRET_BYTES = 16;
/** Bounds on `maxPayload`: room for the largest frame the codec makes, and a sane ceiling. */
export const MIN_MAX_PAYLOAD = 1024;
export const MAX_MAX_PAYLOAD = 64 * 1024 * 1024;

/** The limits and timings an application may tune (also through `createNode`). */
export const TUNING_KEYS = [
  'maxPayload',
  'handshakeTimeoutMs',
  'pingIntervalMs',
  'peerTimeoutMs',
  'reconnect',
  'maxBufferedBytes',
  'ratePerSec',
  'burst',
] as const satisfies readonly (keyof WebSocketTransportOptions)[];

const OPTION_KEYS: readonly (keyof WebSocketTransportOptions)[] = [
  'self',
  'peers',
  'listen',
  'cluster',
  'secret',
  'tls',
  ...TUNING_KEYS,
  'scheduler',
  'clock',
  'rng',
  'logger',
];

export function validateWebSocketOptions(options: unknown): ResolvedWebSocketOptions {
  if (!isObject(options)) {
    throw new ConfigError('WebSocketTransport options must be an object');
  }
  rejectUnknownKeys('WebSocketTransport option', options, OPTION_KEYS);
  const get = (key: keyof WebSocketTransportOptions): unknown => options[key];

  const self = get('self');
  if (!isValidId(self)) {
    throw new ConfigError(`self must be a node id of 1 to ${MAX_ID_LENGTH} characters`);
  }
  const cluster = get('cluster');
  if (!isValidId(cluster)) {
    throw new ConfigError(`cluster must be a string of 1 to ${MAX_ID_LENGTH} characters`);
  }
  const secret = readSecret(get('secret'));
  const tls = readTls(get('tls'));
  const { peerUrls, selfUrl } = readPeers(get('peers'), self, tls !== null);
  const listen = readListen(get('listen'), selfUrl);

  const maxPayload = readInteger(
    'maxPayload',
    get('maxPayload'),
    WEBSOCKET_DEFAULTS.maxPayload,
    MIN_MAX_PAYLOAD,
    MAX_MAX_PAYLOAD,
  );
  const handshakeTimeoutMs = readInteger(
    'handshakeTimeoutMs',
    get('handshakeTimeoutMs'),
    WEBSOCKET_DEFAULTS.handshakeTimeoutMs,
    1,
    MAX_TIMER_MS,
  );
  const pingIntervalMs = readInteger(
    'pingIntervalMs',
    get('pingIntervalMs'),
    WEBSOCKET_DEFAULTS.pingIntervalMs,
    1,
    MAX_TIMER_MS,
  );
  const peerTimeoutMs = readInteger(
    'peerTimeoutMs',
    get('peerTimeoutMs'),
    WEBSOCKET_DEFAULTS.peerTimeoutMs,
    1,
    MAX_TIMER_MS,
  );
  if (pingIntervalMs >= peerTimeoutMs) {
    throw new ConfigError(
      `pingIntervalMs (${pingIntervalMs}) must be below peerTimeoutMs (${peerTimeoutMs}), ` +
        'so a live peer answers a ping before it is declared down',
    );
  }
  const reconnect = readReconnect(get('reconnect'));
  const maxBufferedBytes = readInteger(
    'maxBufferedBytes',
    get('maxBufferedBytes'),
    WEBSOCKET_DEFAULTS.maxBufferedBytes,
    0,
    Number.MAX_SAFE_INTEGER,
  );
  const ratePerSec = readNumber('ratePerSec', get('ratePerSec'), WEBSOCKET_DEFAULTS.ratePerSec);
  const burst = readNumber('burst', get('burst'), Math.max(1, 2 * ratePerSec));
  if (burst < 1) throw new ConfigError('burst must be at least 1 frame');

  const scheduler = readScheduler(get('scheduler'));
  const clock = readClock(get('clock'));
  const rng = readRng(get('rng'));
  const logger = readLogger(get('logger'));

  return Object.freeze({
    self,
    peerUrls,
    listen,
    cluster,
    secret,
    tls,
    maxPayload,
    handshakeTimeoutMs,
    pingIntervalMs,
    peerTimeoutMs,
    reconnect,
    maxBufferedBytes,
    ratePerSec,
    burst,
    scheduler,
    clock,
    rng,
    logger,
  });
}

function readSecret(value: unknown): Buffer {
  let bytes: Buffer;
  if (typeof value === 'string') bytes = Buffer.from(value, 'utf8');
  else if (value instanceof Uint8Array) bytes = Buffer.from(value);
  else throw new ConfigError('secret is required: a string or a Buffer');
  if (bytes.length < MIN_SECRET_BYTES) {
    // The length of a too-short secret is as much as the message may say about it.
    throw new ConfigError(`secret must be at least ${MIN_SECRET_BYTES} bytes long`);
  }
  return bytes;
}

function readTls(value: unknown): ResolvedWebSocketOptions['tls'] {
  if (value === undefined) return null;
  if (!isObject(value)) throw new ConfigError('tls must be an object with cert, key and ca');
  rejectUnknownKeys('tls option', value, ['cert', 'key', 'ca', 'requestCert']);
  for (const key of ['cert', 'key', 'ca'] as const) {
    if (!isPem(value[key])) {
      throw new ConfigError(`tls.${key} must be PEM text: a string, a Buffer or an array of them`);
    }
  }
  const requestCert = value['requestCert'] ?? true;
  if (typeof requestCert !== 'boolean') throw new ConfigError('tls.requestCert must be a boolean');
  return Object.freeze({
    cert: value['cert'] as PemInput,
    key: value['key'] as PemInput,
    ca: value['ca'] as PemInput,
    requestCert,
  });
}

function readPeers(
  value: unknown,
  self: NodeId,
  tls: boolean,
): { peerUrls: ReadonlyMap<NodeId, string>; selfUrl: URL | null } {
  if (!isObject(value)) {
    throw new ConfigError(
      'peers must be an object mapping each node id to its ws:// or wss:// URL',
    );
  }
  const peerUrls = new Map<NodeId, string>();
  let selfUrl: URL | null = null;
  for (const [id, url] of Object.entries(value)) {
    if (!isValidId(id)) {
      throw new ConfigError(`peers keys must be node ids of 1 to ${MAX_ID_LENGTH} characters`);
    }
    const parsed = typeof url === 'string' && URL.canParse(url) ? new URL(url) : null;
    if (parsed === null || (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:')) {
      throw new ConfigError(`peers["${id}"] must be a ws:// or wss:// URL`);
    }
    if (parsed.username !== '' || parsed.password !== '') {
      throw new ConfigError(`peers["${id}"] must not carry credentials: use secret`);
    }
    if (tls && parsed.protocol !== 'wss:') {
      throw new ConfigError(`peers["${id}"] must be a wss:// URL when tls is set`);
    }
    if (id === self) selfUrl = parsed;
    else peerUrls.set(id, parsed.href);
  }
  return { peerUrls, selfUrl };
}

function readListen(value: unknown, selfUrl: URL | null): ListenTarget {
  if (value === undefined) {
    if (selfUrl === null) {
      throw new ConfigError('listen is required when peers has no URL for this node itself');
    }
    const port = Number(
      selfUrl.port === '' ? (selfUrl.protocol === 'wss:' ? 443 : 80) : selfUrl.port,
    );
    return Object.freeze({ kind: 'address', host: null, port });
  }
  if (!isObject(value)) {
    throw new ConfigError('listen must be { host, port } or { server }');
  }
  if ('server' in value) {
    rejectUnknownKeys('listen option', value, ['server']);
    if (!(value['server'] instanceof NetServer)) {
      throw new ConfigError('listen.server must be an http.Server or https.Server');
    }
    return Object.freeze({ kind: 'server', server: value['server'] as HttpServer | HttpsServer });
  }
  rejectUnknownKeys('listen option', value, ['host', 'port']);
  const host = value['host'];
  if (host !== undefined && (typeof host !== 'string' || host === '')) {
    throw new ConfigError('listen.host must be a non-empty string');
  }
  const port = value['port'];
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError('listen.port must be a whole number from 0 to 65535');
  }
  return Object.freeze({ kind: 'address', host: host ?? null, port });
}

function readReconnect(value: unknown): { baseMs: number; maxMs: number } {
  if (value === undefined) {
    return Object.freeze({
      baseMs: WEBSOCKET_DEFAULTS.reconnectBaseMs,
      maxMs: WEBSOCKET_DEFAULTS.reconnectMaxMs,
    });
  }
  if (!isObject(value)) throw new ConfigError('reconnect must be { baseMs, maxMs }');
  rejectUnknownKeys('reconnect option', value, ['baseMs', 'maxMs']);
  const baseMs = value['baseMs'];
  const maxMs = value['maxMs'];
  if (!isWhole(baseMs) || baseMs < 1 || baseMs > MAX_TIMER_MS) {
    throw new ConfigError(`reconnect.baseMs must be a whole number from 1 to ${MAX_TIMER_MS}`);
  }
  if (!isWhole(maxMs) || maxMs < baseMs || maxMs > MAX_TIMER_MS) {
    throw new ConfigError(
      `reconnect.maxMs must be a whole number from reconnect.baseMs to ${MAX_TIMER_MS}`,
    );
  }
  return Object.freeze({ baseMs, maxMs });
}

function readInteger(
  name: string,
  value: unknown,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  if (!isWhole(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max}`);
  }
  return value;
}

function readNumber(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || !(value > 0)) {
    throw new ConfigError(`${name} must be a finite number above 0`);
  }
  return value;
}

function isPem(value: unknown): boolean {
  const one = (v: unknown): boolean => typeof v === 'string' || Buffer.isBuffer(v);
  return one(value) || (Array.isArray(value) && value.length > 0 && value.every(one));
}

function isWhole(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value);
}
