import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { systemClock, systemScheduler, type Clock, type Scheduler } from '../../lib/clock.js';
import { PROTOCOL_VERSION } from '../../lib/codec/messages.js';
import { snapshot } from '../../lib/counters.js';
import { ConfigError, TransportError } from '../../lib/errors.js';
import { boundLogger, errorFields, GatedLogger } from '../../lib/logger.js';
import type { Rng } from '../../lib/random.js';
import {
  checkSettings,
  encodeSettings,
  NO_SETTINGS,
  settingsMismatch,
  type SettingsMismatch,
  type TransportSettings,
} from '../../lib/settings.js';
import {
  countRefusal,
  Handlers,
  type PeerEvent,
  type SettingsRefusal,
  type Transport,
} from '../../lib/transport.js';
import type { NodeId } from '../../lib/types.js';
import { backoffDelayMs, mathRandom } from './backoff.js';
import { dial, socketLimits } from './dial.js';
import {
  HANDSHAKE_HEADERS,
  listenerProof,
  newInstance,
  NONCE_CACHE_CAPACITY,
  REJECTION_STATUS,
  SETTINGS_STATUS,
  settingsRefusalHeaders,
  verifyDial,
  type DialClaims,
  type HandshakeRejection,
} from './handshake.js';
import { CLOSE_CODES } from './close-codes.js';
import type { ConnectionInfo } from './connection-info.js';
import { Link, rawDataToString, type LinkTiming } from './link.js';
import { Listener } from './listener.js';
import { LogThrottle } from './log-throttle.js';
import { NonceCache } from './nonce-cache.js';
import {
  validateWebSocketOptions,
  type ResolvedWebSocketOptions,
  type WebSocketTransportOptions,
} from './options.js';
import { webSocketCounters, type WebSocketTransportStats } from './stats.js';
import { newerLinkWins } from './tie-break.js';
import { TokenBucket } from './token-bucket.js';

/** What the transport knows about one peer. */
interface PeerState {
  readonly id: NodeId;
  readonly url: string;
  /** The open connection frames go over; at most one per pair. */
  current: Link | null;
  /** An outbound dial in progress. Never set while `current` is. */
  dialing: Link | null;
  /** Failed or lost connections since the last one that opened: drives the backoff. */
  attempt: number;
  retryTimer: unknown;
  /**
   * The one redial without backoff a peer gets per run of failed dials, for a dial it refused
   * as stamped before it started (425): `'due'` once refused, `'spent'` once redialled, so a
   * peer that keeps answering 425 (a wall clock behind its own) costs no more than backoff.
   */
  earlyRedial: 'available' | 'due' | 'spent';
  /** What `onPeer` last reported. */
  up: boolean;
  everUp: boolean;
  /** Rate limit on frames received from this peer, across its connections. */
  readonly bucket: TokenBucket;
}

type State = 'new' | 'starting' | 'open' | 'closed';

const WS_PAYLOAD_TOO_BIG = 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH';

/**
 * The production transport: every node listens and dials every peer over WebSocket, with an
 * authenticated handshake, one live connection per pair, rate and buffer limits, liveness
 * pings, and reconnection with capped exponential backoff and full jitter.
 *
 * Frames are opaque text; strict decoding is the codec's job. What this adapter refuses on its
 * own: unauthenticated connections (in the HTTP upgrade, before any frame), peers whose
 * settings (given to `start`) differ from this transport's (412, in the upgrade too), binary
 * frames, frames above `maxPayload` (dropped at the sender; a peer that sends one anyway loses
 * its connection, which `ws` closes with 1009, and redials), frames beyond a peer's rate, and
 * sends to a connection whose send buffer is over `maxBufferedBytes`.
 */
export class WebSocketTransport implements Transport {
  readonly self: NodeId;
  readonly peers: readonly NodeId[];

  readonly #options: ResolvedWebSocketOptions;
  readonly #scheduler: Scheduler;
  readonly #clock: Clock;
  readonly #rng: Rng;
  readonly #log: GatedLogger;
  /** This transport's instance: tells peers a restart from a stale connection. */
  readonly #instance = newInstance();
  readonly #peers = new Map<NodeId, PeerState>();
  readonly #peerIds: ReadonlySet<NodeId>;
  readonly #counters = webSocketCounters();
  readonly #messages = new Handlers<[from: NodeId, frame: string]>();
  readonly #peerEvents = new Handlers<[event: PeerEvent]>();
  readonly #refusals = new Handlers<[refusal: SettingsRefusal]>();
  readonly #nonces = new NonceCache(NONCE_CACHE_CAPACITY);
  /** Handshake rejections are logged at most 10 a second: strangers must not flood the log. */
  readonly #rejectionLog = new LogThrottle(10, 1000);
  readonly #listener: Listener;
  readonly #wss: WebSocketServer;
  readonly #timing: LinkTiming;
  /** Every link not yet closed, current or not. */
  readonly #links = new Set<Link>();
  /** The answer headers of an accepted upgrade, handed to `ws` through its 'headers' event. */
  readonly #answers = new WeakMap<IncomingMessage, string[]>();
  /** Wall-clock ms when listening began: handshakes stamped earlier are refused. */
  #startedAtMs = Number.POSITIVE_INFINITY;
  /** What every peer must agree on, from `start`, and its canonical text for the handshake. */
  #settings: TransportSettings = NO_SETTINGS;
  #settingsText = '';
  #state: State = 'new';
  #starting: Promise<void> | null = null;
  #closing: Promise<void> | null = null;

  constructor(options: WebSocketTransportOptions) {
    const resolved = validateWebSocketOptions(options);
    this.#options = resolved;
    this.self = resolved.self;
    this.peers = Object.freeze([...resolved.peerUrls.keys()]);
    this.#peerIds = new Set(this.peers);
    this.#scheduler = resolved.scheduler ?? systemScheduler;
    this.#clock = resolved.clock ?? systemClock;
    this.#rng = resolved.rng ?? mathRandom;
    this.#log = new GatedLogger(
      resolved.logger === null ? null : boundLogger(resolved.logger, { node: resolved.self }),
    );
    this.#timing = {
      scheduler: this.#scheduler,
      clock: this.#clock,
      pingIntervalMs: resolved.pingIntervalMs,
      peerTimeoutMs: resolved.peerTimeoutMs,
    };
    const now = this.#clock.now();
    for (const [id, url] of resolved.peerUrls) {
      this.#peers.set(id, {
        id,
        url,
        current: null,
        dialing: null,
        attempt: 0,
        retryTimer: null,
        earlyRedial: 'available',
        up: false,
        everUp: false,
        bucket: new TokenBucket(resolved.ratePerSec, resolved.burst, now),
      });
    }
    this.#wss = new WebSocketServer({
      ...socketLimits(resolved.maxPayload),
      noServer: true,
      clientTracking: false,
    });
    this.#wss.on('headers', (headers: string[], req: IncomingMessage) => {
      const answer = this.#answers.get(req);
      if (answer !== undefined) headers.push(...answer);
      this.#answers.delete(req);
    });
    this.#listener = new Listener(resolved, this.#scheduler, {
      upgrade: (req, socket, head) => {
        this.#onUpgrade(req, socket, head);
      },
      handshakeTimeout: (remote) => {
        this.#rejected('timeout', remote, null);
      },
      tlsError: (error, remote) => {
        const code = (error as { code?: unknown }).code;
        this.#rejected(code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? 'timeout' : 'tls', remote, null);
      },
      serverError: (error) => {
        this.#log.error(errorFields(error), 'websocket server error');
      },
    });
  }

  start(settings?: TransportSettings): Promise<void> {
    if (this.#state === 'closed') {
      return Promise.reject(new TransportError('the transport is closed', { retriable: false }));
    }
    let checked: TransportSettings;
    try {
      checked = checkSettings(settings);
    } catch (error) {
      return Promise.reject(
        error instanceof Error ? error : new ConfigError('invalid settings', { cause: error }),
      );
    }
    if (this.#starting !== null) {
      if (settingsMismatch(this.#settings, checked) !== null) {
        return Promise.reject(new ConfigError('the transport was started with other settings'));
      }
      return this.#starting;
    }
    this.#settings = checked;
    this.#settingsText = encodeSettings(checked);
    this.#starting = this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    this.#state = 'starting';
    this.#startedAtMs = Date.now();
    try {
      await this.#listener.start();
    } catch (error) {
      this.#state = 'closed';
      await this.#listener.close();
      throw error;
    }
    // close() may have run while the server was binding.
    if ((this.#state as State) !== 'starting') {
      throw new TransportError('the transport was closed while starting', { retriable: false });
    }
    this.#state = 'open';
    const address = this.#listener.address();
    this.#log.info({ ...(address ?? {}), peers: this.peers }, 'websocket transport started');
    for (const peer of this.#peers.values()) {
      if (peer.current === null && peer.dialing === null) this.#dial(peer);
    }
  }

  send(to: NodeId, frame: string): void {
    if (this.#state !== 'open') {
      this.#counters.dropped.closed += 1;
      return;
    }
    const peer = this.#peers.get(to);
    if (peer === undefined) {
      this.#counters.dropped['unknown-peer'] += 1;
      return;
    }
    const link = peer.current;
    if (link?.isOpen !== true || link.ws.readyState !== link.ws.OPEN) {
      this.#counters.dropped.unreachable += 1;
      return;
    }
    const max = this.#options.maxPayload;
    // A UTF-16 code unit takes 1 to 3 bytes: the length settles most frames without a scan.
    if (frame.length > max || (frame.length * 3 > max && Buffer.byteLength(frame, 'utf8') > max)) {
      this.#counters.dropped.oversized += 1;
      return;
    }
    if (link.ws.bufferedAmount > this.#options.maxBufferedBytes) {
      this.#counters.dropped.backpressure += 1;
      return;
    }
    try {
      link.holdWrites(frame.length);
      link.ws.send(frame);
    } catch {
      this.#counters.dropped.unreachable += 1;
      return;
    }
    this.#counters.sent += 1;
  }

  onMessage(handler: (from: NodeId, frame: string) => void): () => void {
    return this.#messages.add(handler);
  }

  onPeer(handler: (event: PeerEvent) => void): () => void {
    return this.#peerEvents.add(handler);
  }

  onRefusal(handler: (refusal: SettingsRefusal) => void): () => void {
    return this.#refusals.add(handler);
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  stats(): WebSocketTransportStats {
    let connections = 0;
    for (const peer of this.#peers.values()) if (peer.current !== null) connections += 1;
    return snapshot(this.#counters, { connections, nonceCacheSize: this.#nonces.size });
  }

  /** Where the transport's own server listens, once started; null with an application's server. */
  address(): { host: string; port: number } | null {
    return this.#options.listen.kind === 'address' ? this.#listener.address() : null;
  }

  /** The open connections, one per reachable peer. */
  connections(): ConnectionInfo[] {
    const list: ConnectionInfo[] = [];
    for (const peer of this.#peers.values()) {
      const link = peer.current;
      if (link !== null) {
        list.push({ peer: peer.id, direction: link.direction, dialledBy: link.dialledBy });
      }
    }
    return list;
  }

  async #shutdown(): Promise<void> {
    const starting = this.#starting;
    this.#state = 'closed';
    for (const peer of this.#peers.values()) {
      this.#clearRetry(peer);
      peer.current = null;
      peer.dialing = null;
    }
    for (const link of this.#links) link.close(CLOSE_CODES.goingAway, 'going away');
    this.#links.clear();
    this.#messages.clear();
    this.#peerEvents.clear();
    this.#refusals.clear();
    if (starting !== null) await starting.catch(() => undefined);
    await this.#listener.close();
    this.#wss.close();
    this.#log.info({}, 'websocket transport closed');
  }

  // --- Accepting ------------------------------------------------------------------------------

  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const remote = req.socket.remoteAddress;
    if (this.#state !== 'open') {
      this.#listener.refuse(socket, 503);
      return;
    }
    if (req.method !== 'GET' || req.headers.upgrade?.toLowerCase() !== 'websocket') {
      this.#rejected('malformed', remote, null);
      this.#listener.refuse(socket, REJECTION_STATUS.malformed);
      return;
    }
    const result = verifyDial(req.headers, {
      version: PROTOCOL_VERSION,
      cluster: this.#options.cluster,
      self: this.self,
      peers: this.#peerIds,
      secret: this.#options.secret,
      nonces: this.#nonces,
      nowMs: Date.now(),
      notBeforeMs: this.#startedAtMs,
    });
    if (!result.ok) {
      this.#rejected(result.reason, remote, result.claimedFrom);
      this.#listener.refuse(socket, REJECTION_STATUS[result.reason]);
      return;
    }
    const { claims } = result;
    const peer = this.#peer(claims.from);
    const answering = {
      version: PROTOCOL_VERSION,
      cluster: this.#options.cluster,
      listener: this.self,
      dialler: claims.from,
      diallerNonce: claims.nonce,
    };
    const mismatch = settingsMismatch(this.#settings, result.settings);
    if (mismatch !== null) {
      // Authenticated, so it may learn ours: the answer names the setting, with both values.
      this.#refused(peer, mismatch);
      this.#listener.refuse(socket, SETTINGS_STATUS, {
        headers: settingsRefusalHeaders(
          answering,
          this.#settingsText,
          mismatch.setting,
          this.#options.secret,
        ),
        body: `settings differ: ${mismatch.setting} is ${mismatch.ours ?? '(not set)'} here, ${mismatch.theirs ?? '(not set)'} in the dial\n`,
      });
      return;
    }
    const existing = peer.current ?? peer.dialing;
    if (
      existing !== null &&
      !newerLinkWins(this.self, peer.id, existing, {
        dialledBy: claims.from,
        peerInstance: claims.instance,
      })
    ) {
      // Both ends dialled at once and ours wins: the dialler learns it from the 409.
      this.#log.debug({ peer: peer.id }, 'refused a duplicate connection (tie-break)');
      this.#listener.refuse(socket, 409);
      return;
    }
    const proof = listenerProof(
      { ...answering, listenerInstance: this.#instance },
      this.#options.secret,
    );
    this.#answers.set(req, [
      `${HANDSHAKE_HEADERS.instance}: ${this.#instance}`,
      `${HANDSHAKE_HEADERS.proof}: ${proof}`,
    ]);
    this.#listener.upgraded(socket);
    this.#wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      this.#accepted(ws, peer, claims);
    });
  }

  #accepted(ws: WebSocket, peer: PeerState, claims: DialClaims): void {
    const link = new Link({
      ws,
      peer: peer.id,
      direction: 'inbound',
      dialledBy: peer.id,
      peerInstance: claims.instance,
      nonce: null,
      open: true,
      timing: this.#timing,
    });
    this.#wire(peer, link);
    if (this.#state !== 'open') {
      link.terminate();
      return;
    }
    this.#adopt(peer, link);
  }

  // --- Dialling -------------------------------------------------------------------------------

  #dial(peer: PeerState): void {
    this.#counters.dials += 1;
    let link: Link | null = null;
    const { ws, nonce } = dial(
      {
        url: peer.url,
        self: this.self,
        peer: peer.id,
        cluster: this.#options.cluster,
        version: PROTOCOL_VERSION,
        instance: this.#instance,
        secret: this.#options.secret,
        maxPayload: this.#options.maxPayload,
        tls: this.#options.tls,
        nowMs: Date.now(),
        settings: this.#settingsText,
      },
      {
        authenticated: (instance) => {
          if (link !== null) link.peerInstance = instance;
        },
        badProof: () => {
          this.#counters.handshakeRejections['bad-proof'] += 1;
          this.#log.warn(
            { peer: peer.id, reason: 'bad-proof' },
            'peer failed to prove it holds the secret: dropped the connection',
          );
        },
        refused: (status) => {
          if (status === 409) {
            this.#log.debug({ peer: peer.id }, 'peer kept its own connection (tie-break)');
            return;
          }
          if (status === REJECTION_STATUS['before-start']) {
            // The peer started between this dial's timestamp and its arrival: expected at
            // start-up, and a fresh timestamp gets in. The redial follows this dial's close.
            const atOnce = peer.earlyRedial === 'available';
            if (atOnce) peer.earlyRedial = 'due';
            this.#log.debug(
              { peer: peer.id, redial: atOnce ? 'at once' : 'after backoff' },
              'peer started after this dial was stamped',
            );
            return;
          }
          this.#counters.handshakeRejections.refused += 1;
          this.#log.warn(
            { peer: peer.id, status },
            'peer refused the handshake (check cluster, secret, ids and versions)',
          );
        },
        settingsRefused: (theirs) => {
          // The redial follows this dial's close, after the usual backoff: the peer will refuse
          // again until one of the two restarts with the other's settings.
          const mismatch = settingsMismatch(this.#settings, theirs);
          if (mismatch !== null) this.#refused(peer, mismatch);
        },
      },
    );
    link = new Link({
      ws,
      peer: peer.id,
      direction: 'outbound',
      dialledBy: this.self,
      peerInstance: null,
      nonce,
      open: false,
      timing: this.#timing,
    });
    const dialled = link;
    peer.dialing = dialled;
    dialled.armHandshakeTimer(this.#options.handshakeTimeoutMs, () => {
      this.#log.debug({ peer: peer.id }, 'dial timed out');
    });
    ws.on('open', () => {
      if (this.#state !== 'open' || peer.dialing !== dialled || dialled.isClosed) {
        dialled.terminate();
        return;
      }
      peer.dialing = null;
      this.#adopt(peer, dialled);
    });
    this.#wire(peer, dialled);
  }

  #scheduleRedial(peer: PeerState): void {
    if (this.#state !== 'open' || peer.current !== null || peer.dialing !== null) return;
    if (peer.retryTimer !== null) return;
    if (peer.earlyRedial === 'due') {
      peer.earlyRedial = 'spent';
      this.#dial(peer);
      return;
    }
    const delayMs = backoffDelayMs(peer.attempt, this.#options.reconnect, this.#rng);
    peer.attempt += 1;
    peer.retryTimer = this.#scheduler.setTimeout(() => {
      peer.retryTimer = null;
      if (this.#state === 'open' && peer.current === null && peer.dialing === null) {
        this.#dial(peer);
      }
    }, delayMs);
  }

  #clearRetry(peer: PeerState): void {
    if (peer.retryTimer !== null) {
      this.#scheduler.clearTimeout(peer.retryTimer);
      peer.retryTimer = null;
    }
  }

  // --- Connections ----------------------------------------------------------------------------

  /** Makes an open link the peer's connection, unless the one it has wins the tie-break. */
  #adopt(peer: PeerState, link: Link): void {
    const existing = peer.current ?? peer.dialing;
    if (existing !== null && existing !== link) {
      if (newerLinkWins(this.self, peer.id, existing, link)) {
        const restarted =
          existing.peerInstance !== null && existing.peerInstance !== link.peerInstance;
        if (restarted && existing.isOpen) {
          this.#log.warn(
            { peer: peer.id },
            'peer connected from a new instance while its old connection was open ' +
              '(a restart, or one node id run by two processes)',
          );
        }
        this.#discard(
          peer,
          existing,
          restarted ? CLOSE_CODES.superseded : CLOSE_CODES.duplicate,
          restarted ? 'superseded' : 'duplicate connection',
        );
      } else {
        this.#counters.duplicatesClosed += 1;
        link.close(CLOSE_CODES.duplicate, 'duplicate connection');
        return;
      }
    }
    peer.current = link;
    peer.attempt = 0;
    peer.earlyRedial = 'available';
    this.#clearRetry(peer);
    link.markOpen(() => {
      this.#timedOut(peer, link);
    });
    this.#setUp(peer, true, link);
  }

  /** Drops a link that lost the tie-break; its later 'close' event is then ignored. */
  #discard(peer: PeerState, link: Link, code: number, reason: string): void {
    if (peer.current === link) peer.current = null;
    if (peer.dialing === link) peer.dialing = null;
    if (link.isOpen) {
      this.#counters.duplicatesClosed += 1;
      link.close(code, reason);
    } else {
      link.terminate();
    }
  }

  #timedOut(peer: PeerState, link: Link): void {
    this.#counters.peerTimeouts += 1;
    this.#log.warn(
      { peer: peer.id, peerTimeoutMs: this.#options.peerTimeoutMs },
      'peer stopped answering: connection terminated',
    );
    // Declared down now, not when the socket's close event comes round.
    if (peer.current === link) {
      peer.current = null;
      this.#setUp(peer, false, link);
      this.#scheduleRedial(peer);
    }
  }

  #wire(peer: PeerState, link: Link): void {
    const ws = link.ws;
    this.#links.add(link);
    ws.on('message', (data: RawData, isBinary: boolean) => {
      this.#onFrame(peer, link, data, isBinary);
    });
    ws.on('pong', () => {
      link.seen();
    });
    ws.on('ping', () => {
      link.seen();
    });
    ws.on('error', (error: Error) => {
      this.#onError(peer, link, error);
    });
    ws.on('close', (code: number) => {
      this.#onClose(peer, link, code);
    });
  }

  #onFrame(peer: PeerState, link: Link, data: RawData, isBinary: boolean): void {
    if (this.#state !== 'open') return;
    link.seen();
    if (!peer.bucket.take(this.#clock.now())) {
      this.#counters.dropped['rate-limited'] += 1;
      return;
    }
    if (isBinary) {
      this.#counters.binaryFrames += 1;
      return;
    }
    if (this.#messages.size === 0) {
      this.#counters.dropped['no-handler'] += 1;
      return;
    }
    const frame = rawDataToString(data);
    this.#counters.delivered += 1;
    this.#counters.handlerErrors += this.#messages.emit(peer.id, frame);
  }

  #onError(peer: PeerState, link: Link, error: Error): void {
    const code = (error as { code?: unknown }).code;
    if (code === WS_PAYLOAD_TOO_BIG) {
      this.#counters.dropped.oversized += 1;
      this.#log.warn(
        { peer: peer.id, maxPayload: this.#options.maxPayload },
        'peer sent a frame above maxPayload: connection closed',
      );
    } else if (typeof code === 'string' && code.startsWith('WS_ERR_') && link.isOpen) {
      this.#counters.protocolErrors += 1;
      this.#log.warn(
        { peer: peer.id, code },
        'peer broke the WebSocket protocol: connection closed',
      );
    } else if (this.#log.enabled('debug')) {
      this.#log.debug({ peer: peer.id, ...errorFields(error) }, 'connection error');
    }
  }

  #onClose(peer: PeerState, link: Link, code: number): void {
    link.closed();
    this.#links.delete(link);
    if (this.#state !== 'open') return;
    if (peer.dialing === link) {
      peer.dialing = null;
      this.#scheduleRedial(peer);
      return;
    }
    if (peer.current === link) {
      peer.current = null;
      this.#log.info({ peer: peer.id, code }, 'connection to peer closed');
      this.#setUp(peer, false, link);
      this.#scheduleRedial(peer);
    }
  }

  #setUp(peer: PeerState, up: boolean, link: Link): void {
    if (peer.up === up) return;
    peer.up = up;
    if (up) {
      if (peer.everUp) this.#counters.reconnects += 1;
      peer.everUp = true;
    }
    this.#log.info({ peer: peer.id, up, direction: link.direction }, up ? 'peer up' : 'peer down');
    if (this.#state !== 'open') return;
    this.#counters.handlerErrors += this.#peerEvents.emit({ peer: peer.id, up });
  }

  /** A peer refused for its settings, as listener or as dialler: counted and reported. */
  #refused(peer: PeerState, mismatch: SettingsMismatch): void {
    countRefusal(this.#counters, mismatch);
    if (this.#log.enabled('debug')) {
      this.#log.debug({ peer: peer.id, ...mismatch }, 'refused a peer whose settings differ');
    }
    if (this.#state !== 'open') return;
    const refusal: SettingsRefusal = Object.freeze({ peer: peer.id, ...mismatch });
    this.#counters.handlerErrors += this.#refusals.emit(refusal);
  }

  #rejected(
    reason: HandshakeRejection,
    remote: string | undefined,
    claimedFrom: string | null,
  ): void {
    this.#counters.handshakeRejections[reason] += 1;
    // A dial stamped just before this node started is expected at start-up, and its dialler
    // redials at once: worth a line, not a warning.
    const level = reason === 'before-start' ? 'info' : 'warn';
    if (!this.#log.enabled(level)) return;
    const suppressed = this.#rejectionLog.admit(this.#clock.now());
    if (suppressed === null) return;
    // The claimed id is untrusted input: quoted and shortened; the headers are never logged.
    this.#log[level](
      {
        reason,
        remote,
        ...(claimedFrom === null ? {} : { claimedFrom: JSON.stringify(claimedFrom.slice(0, 64)) }),
        ...(suppressed > 0 ? { suppressed } : {}),
      },
      'handshake rejected',
    );
  }

  #peer(id: NodeId): PeerState {
    const peer = this.#peers.get(id);
    if (peer === undefined) throw new TransportError(`no peer "${id}"`);
    return peer;
  }
}
