import type { IncomingMessage } from 'node:http';
import { WebSocket } from 'ws';
import type { TransportSettings } from '../../lib/settings.js';
import type { NodeId } from '../../lib/types.js';
import {
  dialHeaders,
  newNonce,
  SETTINGS_STATUS,
  verifyListener,
  verifySettingsRefusal,
} from './handshake.js';
import type { ResolvedWebSocketOptions } from './options.js';

/** What a dial needs to know. */
export interface DialSpec {
  readonly url: string;
  readonly self: NodeId;
  readonly peer: NodeId;
  readonly cluster: string;
  readonly version: number;
  readonly instance: string;
  readonly secret: Buffer;
  readonly maxPayload: number;
  readonly tls: ResolvedWebSocketOptions['tls'];
  /** Wall-clock ms since the epoch, for the handshake timestamp. */
  readonly nowMs: number;
  /** The canonical text of this transport's settings. */
  readonly settings: string;
}

/** How the handshake of a dial ended, before the socket opens. */
export interface DialCallbacks {
  /** The listener proved it holds the secret; `open` follows. */
  authenticated(listenerInstance: string): void;
  /** The listener's answer carried no valid proof: the socket is dropped. */
  badProof(): void;
  /** The listener answered with an HTTP error (409: the other connection of the pair won). */
  refused(status: number): void;
  /** The listener refused this dial for settings that differ, and proved it: here are its own. */
  settingsRefused(theirs: TransportSettings): void;
}

/** Limits shared by both ends of every connection. */
export function socketLimits(maxPayload: number): {
  perMessageDeflate: false;
  maxPayload: number;
  maxFragments: number;
  maxBufferedChunks: number;
  skipUTF8Validation: false;
} {
  return {
    // Compression is off both ways: it buys nothing for small frames and opens the door to
    // decompression bombs and memory fragmentation.
    perMessageDeflate: false,
    maxPayload,
    // Our frames are never fragmented; a few fragments are tolerated, thousands are an attack.
    maxFragments: 64,
    maxBufferedChunks: 4096,
    skipUTF8Validation: false,
  };
}

/**
 * Dials a peer with the handshake headers and checks the listener's proof in the `upgrade`
 * event, before `ws` hands over the socket: a listener without the secret never gets a frame.
 * Redirects are not followed (a redirect would send the handshake to someone else).
 */
export function dial(spec: DialSpec, callbacks: DialCallbacks): { ws: WebSocket; nonce: string } {
  const nonce = newNonce();
  const headers = dialHeaders(
    {
      version: spec.version,
      cluster: spec.cluster,
      from: spec.self,
      to: spec.peer,
      instance: spec.instance,
      nonce,
      timeMs: spec.nowMs,
      settings: spec.settings,
    },
    spec.secret,
  );
  const answering = {
    version: spec.version,
    cluster: spec.cluster,
    listener: spec.peer,
    dialler: spec.self,
    diallerNonce: nonce,
  };
  const tls =
    spec.tls === null
      ? {}
      : {
          cert: spec.tls.cert as string | Buffer | (string | Buffer)[],
          key: spec.tls.key as string | Buffer | (string | Buffer)[],
          ca: spec.tls.ca as string | Buffer | (string | Buffer)[],
        };
  const ws = new WebSocket(spec.url, {
    ...socketLimits(spec.maxPayload),
    ...tls,
    headers,
    followRedirects: false,
    rejectUnauthorized: true,
  });
  ws.on('upgrade', (res: IncomingMessage) => {
    const instance = verifyListener(res.headers, answering, spec.secret);
    if (instance === null) {
      callbacks.badProof();
      ws.terminate();
      return;
    }
    callbacks.authenticated(instance);
  });
  ws.on('unexpected-response', (_req, res: IncomingMessage) => {
    const status = res.statusCode ?? 0;
    const theirs =
      status === SETTINGS_STATUS
        ? verifySettingsRefusal(res.headers, answering, spec.secret)
        : null;
    if (theirs === null) callbacks.refused(status);
    else callbacks.settingsRefused(theirs);
    res.resume();
    ws.terminate();
  });
  return { ws, nonce };
}
