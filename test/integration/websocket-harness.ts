import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import {
  connect,
  createServer as createNetServer,
  type Server as NetServer,
  type Socket,
} from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { WebSocket, type ClientOptions } from 'ws';
import {
  dialHeaders,
  HANDSHAKE_HEADERS,
  newInstance,
  newNonce,
} from '../../adapters/websocket/handshake.js';
import type { WebSocketTransport } from '../../adapters/websocket/index.js';
import { PROTOCOL_VERSION } from '../../lib/codec/messages.js';
import type { LoggerLike } from '../../lib/logger.js';
import type { PeerEvent } from '../../lib/transport.js';

/** Shared set-up for the WebSocket adapter's tests: real sockets on 127.0.0.1. */

export const SECRET = 'test-secret-of-at-least-16-bytes';
export const CLUSTER = 'test-cluster';

/** Timings that keep loopback tests fast. */
export const FAST = Object.freeze({
  handshakeTimeoutMs: 1000,
  pingIntervalMs: 100,
  peerTimeoutMs: 1000,
  reconnect: Object.freeze({ baseMs: 10, maxMs: 100 }),
});

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every few ms until it holds, failing after `timeoutMs`. */
export async function waitFor(
  what: string,
  condition: () => boolean,
  timeoutMs = 5000,
  stepMs = 5,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(stepMs);
  }
}

/** A port free a moment ago, for a transport that binds its own server. */
export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  await new Promise<void>((resolve) =>
    server.close(() => {
      resolve();
    }),
  );
  return address.port;
}

/**
 * An HTTP server the test owns, handed to a transport as `listen: { server }`. It remembers its
 * sockets and which node each upgrade claimed to come from, so a test can cut them abruptly
 * (what peers see when a process dies), and it records the upgrade requests it saw.
 */
export class TestServer {
  readonly sockets = new Set<Socket>();
  readonly upgradeFrom = new Map<Socket, string>();
  readonly upgrades: IncomingMessage[] = [];

  private constructor(
    readonly server: Server,
    readonly port: number,
  ) {
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => {
        this.sockets.delete(socket);
        this.upgradeFrom.delete(socket);
      });
    });
    server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
      this.upgrades.push(req);
      const from = req.headers[HANDSHAKE_HEADERS.from];
      if (typeof from === 'string') this.upgradeFrom.set(socket, decodeURIComponent(from));
    });
  }

  static async listen(port = 0): Promise<TestServer> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    assert.ok(address !== null && typeof address === 'object');
    return new TestServer(server, address.port);
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/`;
  }

  /** Destroys the sockets of upgrades that claimed to come from `id`. */
  cutFrom(id: string): void {
    for (const [socket, from] of this.upgradeFrom) if (from === id) socket.destroy();
  }

  /** Destroys every socket and stops listening. */
  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => {
      if (!this.server.listening) {
        resolve();
        return;
      }
      this.server.close(() => {
        resolve();
      });
    });
  }
}

export interface PuppetClaims {
  readonly from: string;
  readonly to: string;
  readonly secret?: string;
  readonly cluster?: string;
  readonly version?: number;
  readonly instance?: string;
  readonly nonce?: string;
  readonly timeMs?: number;
  /** The canonical text of the settings to claim; default none. */
  readonly settings?: string;
}

/** The headers a node would dial with, with any field overridden. */
export function puppetHeaders(claims: PuppetClaims): Record<string, string> {
  return dialHeaders(
    {
      version: claims.version ?? PROTOCOL_VERSION,
      cluster: claims.cluster ?? CLUSTER,
      from: claims.from,
      to: claims.to,
      instance: claims.instance ?? newInstance(),
      nonce: claims.nonce ?? newNonce(),
      timeMs: claims.timeMs ?? Date.now(),
      settings: claims.settings ?? '',
    },
    Buffer.from(claims.secret ?? SECRET),
  );
}

/** The outcome of a WebSocket dial made by hand. */
export type PuppetResult =
  | { readonly ok: true; readonly ws: WebSocket; readonly res: IncomingMessage }
  | { readonly ok: false; readonly status: number | null; readonly error: string | null };

/**
 * Dials `url` as a hand-driven peer (a puppet a test makes misbehave), with the given headers.
 * Resolves once the socket is open, or with the HTTP status the listener refused it with.
 */
export function puppetDial(
  url: string,
  headers: Record<string, string>,
  options: ClientOptions = {},
): Promise<PuppetResult> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...options, headers });
    let res: IncomingMessage | null = null;
    ws.on('upgrade', (r: IncomingMessage) => {
      res = r;
    });
    ws.on('open', () => {
      assert.ok(res);
      resolve({ ok: true, ws, res });
    });
    ws.on('unexpected-response', (_req, r: IncomingMessage) => {
      r.resume();
      ws.terminate();
      resolve({ ok: false, status: r.statusCode ?? null, error: null });
    });
    ws.on('error', (error: Error) => {
      resolve({ ok: false, status: null, error: error.message });
    });
  });
}

/** Like `puppetDial`, asserting it opened. */
export async function puppetOpen(
  url: string,
  headers: Record<string, string>,
  options: ClientOptions = {},
): Promise<WebSocket> {
  const result = await puppetDial(url, headers, options);
  assert.ok(result.ok, `puppet dial refused: ${JSON.stringify(result)}`);
  return result.ws;
}

/** Resolves when `ws` has closed, with its close code. */
export function closed(ws: WebSocket): Promise<number> {
  if (ws.readyState === ws.CLOSED) return Promise.resolve(1006);
  return new Promise((resolve) =>
    ws.once('close', (code: number) => {
      resolve(code);
    }),
  );
}

/** A transport with everything it delivered and reported, for assertions. */
export interface Recorded {
  readonly transport: WebSocketTransport;
  readonly frames: { from: string; frame: string }[];
  readonly events: PeerEvent[];
  isUp(peer: string): boolean;
}

export function record(transport: WebSocketTransport): Recorded {
  const frames: { from: string; frame: string }[] = [];
  const events: PeerEvent[] = [];
  transport.onMessage((from, frame) => frames.push({ from, frame }));
  transport.onPeer((event) => events.push(event));
  return {
    transport,
    frames,
    events,
    isUp: (peer) => events.findLast((e) => e.peer === peer)?.up ?? false,
  };
}

/** A logger that keeps every line, as `level message {fields}`, to check what reaches the logs. */
export function capturingLogger(lines: string[]): LoggerLike {
  const write =
    (level: string) =>
    (fields: object, message: string): void => {
      lines.push(`${level} ${message} ${JSON.stringify(fields)}`);
    };
  return {
    fatal: write('fatal'),
    error: write('error'),
    warn: write('warn'),
    info: write('info'),
    debug: write('debug'),
    trace: write('trace'),
  };
}

/**
 * A garbage collector, if this V8 lets us have one. mocha runs without `--expose-gc`; the flag
 * set at run time exposes `gc` to contexts created afterwards.
 */
export function collector(): (() => void) | null {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === 'function') return exposed;
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  }
}

/**
 * A TCP gate in front of a port on 127.0.0.1: what a node dials instead of its peer, so a test
 * controls the network between them. It joins each connection to the target; `hold()` makes it
 * keep new connections waiting (nothing read, nothing forwarded) until `release()`; `cut()`
 * destroys every connection at once, both halves, as a broken network does.
 */
export class TcpGate {
  /** Connections accepted so far. */
  accepted = 0;
  readonly #held: Socket[] = [];
  readonly #sockets = new Set<Socket>();
  #holding = false;

  private constructor(
    readonly server: NetServer,
    readonly target: number,
  ) {
    server.on('connection', (socket: Socket) => {
      this.accepted += 1;
      this.#track(socket);
      if (this.#holding) {
        socket.pause();
        this.#held.push(socket);
      } else {
        this.#join(socket);
      }
    });
  }

  static async open(target: number): Promise<TcpGate> {
    const server = createNetServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new TcpGate(server, target);
  }

  get url(): string {
    const address = this.server.address();
    assert.ok(address !== null && typeof address === 'object');
    return `ws://127.0.0.1:${address.port}/`;
  }

  /** Connections kept waiting by `hold()`. */
  get held(): number {
    return this.#held.length;
  }

  hold(): void {
    this.#holding = true;
  }

  release(): void {
    this.#holding = false;
    for (const socket of this.#held.splice(0)) this.#join(socket);
  }

  cut(): void {
    this.#held.length = 0;
    for (const socket of this.#sockets) socket.destroy();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
    });
  }

  #join(socket: Socket): void {
    const upstream = connect(this.target, '127.0.0.1');
    this.#track(upstream);
    // Ends travel through the pipes, so an answer reaches the dialler before its connection
    // goes; an error on either half (a refused upstream, a reset) takes down the other.
    socket.pipe(upstream).pipe(socket);
    socket.once('error', () => upstream.destroy());
    upstream.once('error', () => socket.destroy());
    // Once one half has closed, what the other still receives has nowhere to go: let it flow
    // away, or the other half would never read its end, and never close.
    socket.once('close', () => upstream.resume());
    upstream.once('close', () => socket.resume());
    socket.resume();
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on('error', ignoreError);
    socket.once('close', () => this.#sockets.delete(socket));
  }
}

const ignoreError = (): void => undefined;
