import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { isValidId } from '../../lib/codec/messages.js';
import { decodeSettings, type TransportSettings } from '../../lib/settings.js';
import type { NodeId } from '../../lib/types.js';
import type { NonceCache } from './nonce-cache.js';

/**
 * The authenticated handshake, carried in the headers of the HTTP upgrade: nothing of the
 * protocol flows over a connection before both ends proved they hold the cluster's secret.
 *
 * Dialler → listener: cluster, protocol version, sender id, receiver id, the sender's instance
 * (random per transport, so a restarted peer is told apart from a stale connection), a fresh
 * random nonce, a wall-clock timestamp, the settings every peer must agree on (their canonical
 * text, lib/settings.ts), and HMAC-SHA256 over all of them. The listener checks
 * every field, the timestamp against a freshness window, the HMAC in constant time, and the
 * nonce against the recently seen ones; it answers the upgrade with its own instance and an
 * HMAC over the dialler's nonce, which the dialler checks before using the connection. A
 * captured handshake is thus good for nothing: replayed to the listener its nonce is known,
 * and a fake listener cannot produce the answer to a fresh nonce.
 *
 * The timestamp is the one wall-clock reading here. It only bounds how long nonces must be
 * remembered; no safety property rests on it. A listener also refuses handshakes timestamped
 * before it started: a restarted listener has forgotten the nonces it saw, and would otherwise
 * take a handshake captured in the last window. (A wall clock stepped back by more than the
 * window could still make a forgotten nonce fresh again; a replay then needs a handshake
 * captured from this very listener's life.) An honest dialler meets that rule at start-up, when
 * it stamps a dial just before the listener starts and the dial arrives just after (a busy event
 * loop between the two is enough): the listener answers 425 Too Early, which it tells only to a
 * dialler that signed correctly, and the dialler redials at once with a fresh timestamp.
 *
 * A dialler that proved it holds the secret but whose settings differ from the listener's is
 * refused with 412 Precondition Failed, before any frame: the answer carries the listener's
 * settings and an HMAC over them and the dialler's nonce, so the dialler learns, and can log,
 * which setting differs and both values, and a stranger can neither learn nor forge them.
 *
 * The handshake authenticates the peer at connection time; it does not sign each frame. On a
 * network where someone could tamper with a TCP stream, use `wss://` (the `tls` option).
 */

export const HANDSHAKE_HEADERS = Object.freeze({
  version: 'x-synod-version',
  cluster: 'x-synod-cluster',
  from: 'x-synod-from',
  to: 'x-synod-to',
  instance: 'x-synod-instance',
  nonce: 'x-synod-nonce',
  time: 'x-synod-time',
  signature: 'x-synod-signature',
  /**
   * Both ways: the canonical text of the sender's settings (absent: none); the listener's only
   * in a 412.
   */
  settings: 'x-synod-settings',
  /** Listener → dialler: the HMAC over the dialler's nonce (and, in a 412, its settings). */
  proof: 'x-synod-proof',
  /** Listener → dialler, in a 412: the name of the first setting that differs. */
  refused: 'x-synod-refused-setting',
});

/** The HTTP status of a refusal for settings that differ: 412 Precondition Failed. */
export const SETTINGS_STATUS = 412;

/** A handshake is fresh while its timestamp is within this much of the listener's clock. */
export const HANDSHAKE_WINDOW_MS = 60_000;
/** Most nonces remembered at once (each about 100 bytes): far above any honest reconnect rate. */
export const NONCE_CACHE_CAPACITY = 10_000;

/**
 * Why this node refused or abandoned a handshake, counted in `stats().handshakeRejections`:
 * - `malformed`: not a WebSocket upgrade, or a synod header missing or badly formed;
 * - `wrong-version`, `wrong-cluster`: another protocol version or cluster id;
 * - `wrong-receiver`: addressed to another node id;
 * - `unknown-peer`: a sender id outside `peers`;
 * - `stale-timestamp`: outside the freshness window (wall clocks that far apart, or an old
 *   capture);
 * - `bad-signature`: the HMAC does not match (a wrong secret, or tampered fields);
 * - `before-start`: signed correctly, but stamped before this listener started (see above):
 *   expected now and then at start-up, answered 425 so the dialler redials at once; a count
 *   that keeps rising long after a start means a dialler's wall clock is behind this node's;
 * - `replayed-nonce`: a nonce already used;
 * - `nonce-cache-full`: too many recent handshakes to remember another (fails closed);
 * - `timeout`: a connection that did not complete its handshake in `handshakeTimeoutMs`;
 * - `tls`: a TLS handshake that failed (for instance a client certificate not from `ca`);
 * - `bad-proof`: as dialler, the listener's answer did not prove it holds the secret;
 * - `refused`: as dialler, the listener answered the upgrade with an HTTP error (not counted:
 *   409, the other connection of the pair won; 425, the listener had just started; and a 412
 *   that proves the listener's settings differ, counted in `refusedSettings` instead).
 */
export const HANDSHAKE_REJECTIONS = [
  'malformed',
  'wrong-version',
  'wrong-cluster',
  'wrong-receiver',
  'unknown-peer',
  'stale-timestamp',
  'bad-signature',
  'before-start',
  'replayed-nonce',
  'nonce-cache-full',
  'timeout',
  'tls',
  'bad-proof',
  'refused',
] as const;

export type HandshakeRejection = (typeof HANDSHAKE_REJECTIONS)[number];

/** The HTTP status a listener answers each refusal with. The body says nothing more. */
export const REJECTION_STATUS: Readonly<
  Record<Exclude<HandshakeRejection, 'timeout' | 'tls' | 'bad-proof' | 'refused'>, number>
> = Object.freeze({
  malformed: 400,
  'wrong-version': 400,
  'wrong-cluster': 403,
  'wrong-receiver': 403,
  'unknown-peer': 403,
  'stale-timestamp': 401,
  'bad-signature': 401,
  // Too Early: the listener will not risk a replay, and a fresh timestamp will do.
  'before-start': 425,
  'replayed-nonce': 401,
  'nonce-cache-full': 503,
});

/** What a dialler claims; every field is covered by the signature. */
export interface DialClaims {
  readonly version: number;
  readonly cluster: string;
  readonly from: NodeId;
  readonly to: NodeId;
  /** The dialler's instance: 16 lowercase hex digits. */
  readonly instance: string;
  /** 32 lowercase hex digits (16 random bytes). */
  readonly nonce: string;
  /** Wall-clock milliseconds since the epoch. */
  readonly timeMs: number;
  /** The canonical text of the dialler's settings (lib/settings.ts). */
  readonly settings: string;
}

const HEX16 = /^[0-9a-f]{16}$/;
const HEX32 = /^[0-9a-f]{32}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const DECIMAL = /^[0-9]{1,15}$/;

/** A fresh instance id: 64 random bits from the operating system. */
export function newInstance(): string {
  return randomBytes(8).toString('hex');
}

/** A fresh handshake nonce: 128 random bits from the operating system. */
export function newNonce(): string {
  return randomBytes(16).toString('hex');
}

/** The upgrade request headers a dialler sends. */
export function dialHeaders(claims: DialClaims, secret: Buffer): Record<string, string> {
  return {
    [HANDSHAKE_HEADERS.version]: String(claims.version),
    [HANDSHAKE_HEADERS.cluster]: encodeURIComponent(claims.cluster),
    [HANDSHAKE_HEADERS.from]: encodeURIComponent(claims.from),
    [HANDSHAKE_HEADERS.to]: encodeURIComponent(claims.to),
    [HANDSHAKE_HEADERS.instance]: claims.instance,
    [HANDSHAKE_HEADERS.nonce]: claims.nonce,
    [HANDSHAKE_HEADERS.time]: String(claims.timeMs),
    // No settings, no header: an empty value may not survive every proxy.
    ...(claims.settings === '' ? {} : { [HANDSHAKE_HEADERS.settings]: claims.settings }),
    [HANDSHAKE_HEADERS.signature]: sign(secret, dialMessage(claims)),
  };
}

/** What the listener expects of every dialler. */
export interface ListenerExpectations {
  readonly version: number;
  readonly cluster: string;
  readonly self: NodeId;
  readonly peers: ReadonlySet<NodeId>;
  readonly secret: Buffer;
  readonly nonces: NonceCache;
  /** The listener's wall clock, ms since the epoch. */
  readonly nowMs: number;
  /** When the listener started (wall clock): earlier handshakes may be replays it forgot. */
  readonly notBeforeMs: number;
}

export type VerifyResult =
  | {
      readonly ok: true;
      readonly claims: DialClaims;
      /** The dialler's settings, decoded: the transport compares them with its own. */
      readonly settings: TransportSettings;
    }
  | {
      readonly ok: false;
      readonly reason: Exclude<HandshakeRejection, 'timeout' | 'tls' | 'bad-proof' | 'refused'>;
      /** The sender id the dialler claimed, when it could be read: for the log line only. */
      readonly claimedFrom: string | null;
    };

/**
 * Checks a dialler's upgrade headers. Cheap, public checks first (so a misconfigured peer gets
 * a precise reason in the listener's log), then the freshness window, then the HMAC in constant
 * time, then the listener's start (so only a holder of the secret learns it dialled too early,
 * and a stranger's refusal never passes for the benign start-up case), and only then the nonce
 * cache, so unauthenticated traffic never fills it.
 */
export function verifyDial(
  headers: IncomingHttpHeaders,
  expect: ListenerExpectations,
): VerifyResult {
  const raw = (name: string): string | null => {
    const value = headers[name];
    return typeof value === 'string' ? value : null;
  };
  const versionText = raw(HANDSHAKE_HEADERS.version);
  const cluster = decodeId(raw(HANDSHAKE_HEADERS.cluster));
  const from = decodeId(raw(HANDSHAKE_HEADERS.from));
  const to = decodeId(raw(HANDSHAKE_HEADERS.to));
  const instance = raw(HANDSHAKE_HEADERS.instance);
  const nonce = raw(HANDSHAKE_HEADERS.nonce);
  const timeText = raw(HANDSHAKE_HEADERS.time);
  const signature = raw(HANDSHAKE_HEADERS.signature);
  const settingsText = raw(HANDSHAKE_HEADERS.settings) ?? '';
  const settings = decodeSettings(settingsText);
  const fail = (reason: Exclude<VerifyResult, { ok: true }>['reason']): VerifyResult => ({
    ok: false,
    reason,
    claimedFrom: from,
  });

  if (versionText === null || !DECIMAL.test(versionText)) return fail('malformed');
  if (Number(versionText) !== expect.version) return fail('wrong-version');
  if (
    cluster === null ||
    from === null ||
    to === null ||
    instance === null ||
    !HEX16.test(instance) ||
    nonce === null ||
    !HEX32.test(nonce) ||
    timeText === null ||
    !DECIMAL.test(timeText) ||
    signature === null ||
    !HEX64.test(signature) ||
    settings === null
  ) {
    return fail('malformed');
  }
  if (cluster !== expect.cluster) return fail('wrong-cluster');
  if (to !== expect.self) return fail('wrong-receiver');
  if (!expect.peers.has(from)) return fail('unknown-peer');
  const timeMs = Number(timeText);
  if (!(Math.abs(expect.nowMs - timeMs) < HANDSHAKE_WINDOW_MS)) return fail('stale-timestamp');

  const claims: DialClaims = {
    version: expect.version,
    cluster,
    from,
    to,
    instance,
    nonce,
    timeMs,
    settings: settingsText,
  };
  if (!signatureMatches(expect.secret, dialMessage(claims), signature)) {
    return fail('bad-signature');
  }
  if (timeMs < expect.notBeforeMs) return fail('before-start');
  switch (expect.nonces.add(nonce, timeMs + HANDSHAKE_WINDOW_MS, expect.nowMs)) {
    case 'ok':
      return { ok: true, claims, settings };
    case 'replayed':
      return fail('replayed-nonce');
    case 'full':
      return fail('nonce-cache-full');
  }
}

/** The listener's answer: proof that it holds the secret, bound to the dialler's fresh nonce. */
export interface ListenerProof {
  readonly version: number;
  readonly cluster: string;
  readonly listener: NodeId;
  readonly dialler: NodeId;
  readonly listenerInstance: string;
  readonly diallerNonce: string;
}

export function listenerProof(proof: ListenerProof, secret: Buffer): string {
  return sign(secret, proofMessage(proof));
}

/**
 * Checks the listener's answer headers, as the dialler. Returns the listener's instance, or null
 * if the answer does not prove the listener holds the secret.
 */
export function verifyListener(
  headers: IncomingHttpHeaders,
  expect: Omit<ListenerProof, 'listenerInstance'>,
  secret: Buffer,
): string | null {
  const instance = headers[HANDSHAKE_HEADERS.instance];
  const proof = headers[HANDSHAKE_HEADERS.proof];
  if (typeof instance !== 'string' || !HEX16.test(instance)) return null;
  if (typeof proof !== 'string' || !HEX64.test(proof)) return null;
  const message = proofMessage({ ...expect, listenerInstance: instance });
  return signatureMatches(secret, message, proof) ? instance : null;
}

/**
 * The headers of a 412 answer to a dialler whose settings differ: the listener's settings, the
 * first setting that differs, and the proof that binds the settings to the dialler's nonce.
 */
export function settingsRefusalHeaders(
  proof: Omit<ListenerProof, 'listenerInstance'>,
  settings: string,
  setting: string,
  secret: Buffer,
): string[] {
  return [
    `${HANDSHAKE_HEADERS.settings}: ${settings}`,
    `${HANDSHAKE_HEADERS.refused}: ${encodeURIComponent(setting)}`,
    `${HANDSHAKE_HEADERS.proof}: ${sign(secret, settingsMessage(proof, settings))}`,
  ];
}

/**
 * Checks a 412 answer, as the dialler: the listener's settings, or null if the answer does not
 * carry them with a proof that the listener holds the secret and answered this very dial.
 */
export function verifySettingsRefusal(
  headers: IncomingHttpHeaders,
  expect: Omit<ListenerProof, 'listenerInstance'>,
  secret: Buffer,
): TransportSettings | null {
  const text = headers[HANDSHAKE_HEADERS.settings];
  const proof = headers[HANDSHAKE_HEADERS.proof];
  if (typeof text !== 'string' || typeof proof !== 'string' || !HEX64.test(proof)) return null;
  if (!signatureMatches(secret, settingsMessage(expect, text), proof)) return null;
  return decodeSettings(text);
}

// Each message starts with its own label, so a dial signature can never pass as a proof.
function dialMessage(c: DialClaims): string {
  return JSON.stringify([
    'synod-dial',
    c.version,
    c.cluster,
    c.from,
    c.to,
    c.instance,
    c.nonce,
    c.timeMs,
    c.settings,
  ]);
}

function proofMessage(p: ListenerProof): string {
  return JSON.stringify([
    'synod-welcome',
    p.version,
    p.cluster,
    p.listener,
    p.dialler,
    p.listenerInstance,
    p.diallerNonce,
  ]);
}

function settingsMessage(p: Omit<ListenerProof, 'listenerInstance'>, settings: string): string {
  return JSON.stringify([
    'synod-settings-differ',
    p.version,
    p.cluster,
    p.listener,
    p.dialler,
    p.diallerNonce,
    settings,
  ]);
}

function sign(secret: Buffer, message: string): string {
  return createHmac('sha256', secret).update(message, 'utf8').digest('hex');
}

function signatureMatches(secret: Buffer, message: string, hex: string): boolean {
  const expected = createHmac('sha256', secret).update(message, 'utf8').digest();
  const given = Buffer.from(hex, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Ids travel URI-encoded: any id is a valid header value that way. */
function decodeId(value: string | null): string | null {
  if (value === null) return null;
  let decoded: string;
  try {
    decoded = decodeURIComponent(value);
  } catch {
    return null;
  }
  return isValidId(decoded) ? decoded : null;
}
