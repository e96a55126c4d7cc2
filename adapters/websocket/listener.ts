import { createServer as createHttpServer, STATUS_CODES } from 'node:http';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Scheduler } from '../../lib/clock.js';
import { TransportError } from '../../lib/errors.js';
import { HANDSHAKE_HEADERS } from './handshake.js';
import type { ListenTarget, ResolvedWebSocketOptions } from './options.js';

/** What the listener reports to its transport. */
export interface ListenerEvents {
  /** An upgrade request that carries synod's handshake headers (or any, on an owned server). */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** A connection that did not complete its handshake in time was destroyed. */
  handshakeTimeout(remote: string | undefined): void;
  /** A TLS handshake failed (a missing or untrusted client certificate, for instance). */
  tlsError(error: Error, remote: string | undefined): void;
  /** The server failed after it started listening. */
  serverError(error: Error): void;
}

/**
 * The accepting side: a server the transport creates and owns, or one the application owns.
 *
 * On an owned server every connection must complete a WebSocket upgrade within
 * `handshakeTimeoutMs` of its arrival (after TLS, for `wss`; the TLS handshake itself is bounded
 * by the same timeout), or it is destroyed: raw TCP that sends nothing, headers sent a byte at a
 * time, an upgrade that stalls. Plain HTTP requests get 426. On an application's server the
 * transport touches only upgrades that carry synod's headers; the server's own `headersTimeout`
 * and `requestTimeout` bound what happens before its `upgrade` event.
 */
export class Listener {
  readonly #target: ListenTarget;
  readonly #server: HttpServer | HttpsServer;
  readonly #owned: boolean;
  readonly #secure: boolean;
  readonly #scheduler: Scheduler;
  readonly #handshakeTimeoutMs: number;
  readonly #events: ListenerEvents;
  /** Connections that have not completed their handshake yet, with their deadline timers. */
  readonly #pending = new Map<Duplex, unknown>();
  /** Every socket of an owned server, so `close()` can end them all. */
  readonly #sockets = new Set<Socket>();
  #closed = false;

  readonly #onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    // On an application's server, upgrades for other endpoints are none of our business.
    if (!this.#owned && req.headers[HANDSHAKE_HEADERS.version] === undefined) return;
    this.#events.upgrade(req, socket, head);
  };

  readonly #onConnection = (socket: Duplex): void => {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    this.#watch(socket);
  };

  readonly #onRawConnection = (socket: Socket): void => {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
  };

  readonly #onRequest = (_req: IncomingMessage, res: ServerResponse): void => {
    const body = STATUS_CODES[426] ?? 'Upgrade Required';
    res.writeHead(426, {
      'content-type': 'text/plain',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    });
    res.end(body);
  };

  readonly #onTlsError = (error: Error, socket: { remoteAddress?: string | undefined }): void => {
    this.#events.tlsError(error, socket.remoteAddress);
  };

  readonly #onError = (error: Error): void => {
    this.#events.serverError(error);
  };

  constructor(
    options: Pick<ResolvedWebSocketOptions, 'listen' | 'tls' | 'handshakeTimeoutMs'>,
    scheduler: Scheduler,
    events: ListenerEvents,
  ) {
    this.#target = options.listen;
    this.#scheduler = scheduler;
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs;
    this.#events = events;
    if (options.listen.kind === 'server') {
      this.#server = options.listen.server;
      this.#owned = false;
      this.#secure = 'setSecureContext' in this.#server;
    } else if (options.tls !== null) {
      this.#server = createHttpsServer({
        cert: options.tls.cert as string | Buffer | (string | Buffer)[],
        key: options.tls.key as string | Buffer | (string | Buffer)[],
        ca: options.tls.ca as string | Buffer | (string | Buffer)[],
        requestCert: options.tls.requestCert,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
        handshakeTimeout: options.handshakeTimeoutMs,
      });
      this.#owned = true;
      this.#secure = true;
    } else {
      this.#server = createHttpServer();
      this.#owned = true;
      this.#secure = false;
    }
  }

  /** Attaches to the server, and for an owned one, listens. Rejects if it cannot bind. */
  async start(): Promise<void> {
    const server = this.#server;
    server.on('upgrade', this.#onUpgrade);
    if (!this.#owned) return;
    server.on('connection', this.#onRawConnection);
    server.on(this.#secure ? 'secureConnection' : 'connection', this.#onConnection);
    server.on('request', this.#onRequest);
    server.on('tlsClientError', this.#onTlsError);
    const target = this.#target;
    if (target.kind !== 'address') return;
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => {
        server.off('listening', onListening);
        reject(
          new TransportError(`cannot listen on ${target.host ?? '*'}:${target.port}`, {
            cause: error,
          }),
        );
      };
      const onListening = (): void => {
        server.off('error', onError);
        server.on('error', this.#onError);
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      if (target.host === null) server.listen(target.port);
      else server.listen(target.port, target.host);
    });
  }

  /** The bound address of an owned server, once listening. */
  address(): { host: string; port: number } | null {
    const address = this.#server.address();
    if (address === null || typeof address === 'string') return null;
    return { host: address.address, port: address.port };
  }

  /** The socket's upgrade completed: it no longer has a deadline. */
  upgraded(socket: Duplex): void {
    const timer = this.#pending.get(socket);
    if (timer === undefined) return;
    this.#scheduler.clearTimeout(timer);
    this.#pending.delete(socket);
  }

  /**
   * Answers an upgrade with an HTTP error and destroys the socket. The status is all the
   * dialler learns; the precise reason goes to this node's log and stats. Only an authenticated
   * dialler is told more (`headers`, `body`: the settings that differ).
   */
  refuse(
    socket: Duplex,
    status: number,
    answer: { readonly headers: readonly string[]; readonly body: string } | null = null,
  ): void {
    this.upgraded(socket);
    socket.on('error', ignore);
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const text = STATUS_CODES[status] ?? 'Error';
    // A client that never reads could hold the socket open by not taking the answer: the
    // timer makes sure it goes.
    const timer = this.#scheduler.setTimeout(() => socket.destroy(), this.#handshakeTimeoutMs);
    socket.once('close', () => {
      this.#scheduler.clearTimeout(timer);
    });
    socket.once('finish', () => socket.destroy());
    const body = answer?.body ?? '';
    const head = [
      `HTTP/1.1 ${status} ${text}`,
      'Connection: close',
      ...(answer === null ? [] : ['Content-Type: text/plain; charset=utf-8', ...answer.headers]),
      `Content-Length: ${Buffer.byteLength(body)}`,
    ];
    socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
  }

  /** Stops accepting; ends every connection an owned server still has. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const server = this.#server;
    server.off('upgrade', this.#onUpgrade);
    for (const [socket, timer] of this.#pending) {
      this.#scheduler.clearTimeout(timer);
      socket.destroy();
    }
    this.#pending.clear();
    if (!this.#owned) return;
    server.off(this.#secure ? 'secureConnection' : 'connection', this.#onConnection);
    server.off('request', this.#onRequest);
    server.off('tlsClientError', this.#onTlsError);
    const closed = new Promise<void>((resolve) => {
      if (!server.listening) {
        resolve();
        return;
      }
      server.close(() => {
        resolve();
      });
    });
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    server.off('connection', this.#onRawConnection);
    await closed;
    server.off('error', this.#onError);
  }

  #watch(socket: Duplex): void {
    const timer = this.#scheduler.setTimeout(() => {
      if (!this.#pending.delete(socket)) return;
      this.#events.handshakeTimeout(remoteOf(socket));
      socket.destroy();
    }, this.#handshakeTimeoutMs);
    this.#pending.set(socket, timer);
    socket.once('close', () => {
      if (this.#pending.delete(socket)) this.#scheduler.clearTimeout(timer);
    });
  }
}

function remoteOf(socket: Duplex): string | undefined {
  return (socket as Partial<Socket>).remoteAddress;
}

const ignore = (): void => undefined;
