import { tally, type Counters, type Tally } from './counters.js';
import type { SettingsMismatch, TransportSettings } from './settings.js';
import type { NodeId } from './types.js';

/**
 * The peer transport contract every adapter implements (memory, WebSocket, Redis), and the two
 * small building blocks they share: counters and a handler list that survives throwing handlers.
 *
 * A transport carries opaque, well-formed Unicode strings (what `encodeFrame` produces) between
 * the nodes of one cluster. It never parses or validates them: strict decoding is the codec's
 * job (`lib/codec/messages.ts`), done once, in one place, for every adapter. An adapter may
 * enforce a size limit of its own (the WebSocket `maxPayload`); a frame above it is dropped and
 * counted as `oversized`, never truncated, and never breaks the link for later frames.
 *
 * Liveness signals (`onPeer`) are hints for catching up and logging. Safety never rests on
 * them: the lease and lock deadlines rest on timers only.
 *
 * Peers must agree on the settings given to `start` (lib/settings.ts): a transport compares
 * them with each peer's before any frame flows (the WebSocket adapter in its handshake), and
 * refuses a peer whose settings differ. No frame flows between the two, neither reports the
 * other up, and each side reports the refusal (`onRefusal`) and counts it by the setting named.
 */

/**
 * A peer became reachable (`up`) or stopped being reachable. Every peer counts as down until
 * reported up, and only changes are reported: never `up` twice in a row for one peer.
 */
export interface PeerEvent {
  readonly peer: NodeId;
  readonly up: boolean;
}

/** A peer refused because a setting differs: the first that does, with both values. */
export interface SettingsRefusal extends SettingsMismatch {
  readonly peer: NodeId;
}

export interface Transport {
  readonly self: NodeId;
  /** The other nodes of the cluster (never `self`). */
  readonly peers: readonly NodeId[];
  /**
   * Begins sending and receiving. Subscribe before calling it to see the first peer events.
   * `settings` (default none) are what every peer must agree on; the node passes its timing
   * settings. Idempotent while open with the same settings; rejects with a `ConfigError` for
   * invalid settings or other settings than the first call's, and with a `TransportError` after
   * `close()`.
   */
  start(settings?: TransportSettings): Promise<void>;
  /**
   * Best effort: loss, duplication and reordering must be safe for the caller. Never throws for
   * an unreachable or unknown peer; before `start()` and after `close()` it drops silently.
   * Every frame not handed on is counted in `stats().dropped`.
   */
  send(to: NodeId, frame: string): void;
  /**
   * Calls `handler` for every frame that arrives from a peer, never synchronously inside a
   * `send`. A handler that throws is caught and counted; the others still run and later frames
   * still arrive. Returns the unsubscribe function (calling it twice is harmless).
   */
  onMessage(handler: (from: NodeId, frame: string) => void): () => void;
  /** Like `onMessage`, for peer reachability changes. */
  onPeer(handler: (event: PeerEvent) => void): () => void;
  /** Like `onMessage`, for peers refused because their settings differ from this transport's. */
  onRefusal(handler: (refusal: SettingsRefusal) => void): () => void;
  /** Stops sending, receiving and reporting. Idempotent: every call resolves. */
  close(): Promise<void>;
  stats(): TransportStats;
}

/**
 * Why a transport did not hand a frame on. Shared by all adapters so dashboards read the same:
 * - `closed`: `send` before `start()` or after `close()` (or after the node crashed);
 * - `unknown-peer`: addressed to, or arriving from, a node outside `peers`;
 * - `unreachable`: no connection to the peer at the moment of sending (a peer refused for its
 *   settings never has one);
 * - `oversized`: above the adapter's frame size limit;
 * - `backpressure`: the connection's send buffer is over its limit;
 * - `rate-limited`: the peer sent faster than its allowed rate;
 * - `no-handler`: a frame arrived while no `onMessage` handler was subscribed.
 */
export const TRANSPORT_DROP_REASONS = [
  'closed',
  'unknown-peer',
  'unreachable',
  'oversized',
  'backpressure',
  'rate-limited',
  'no-handler',
] as const;

export type TransportDropReason = (typeof TRANSPORT_DROP_REASONS)[number];

export interface TransportStats {
  /** Frames `send` handed to the network (they may still be lost on the way). */
  readonly sent: number;
  /** Frames that arrived and were given to the message handlers. */
  readonly delivered: number;
  /** Frames not handed on, by reason; every reason is present, zero when it never happened. */
  readonly dropped: Tally<TransportDropReason>;
  /** Handler calls (message, peer or refusal) that threw. */
  readonly handlerErrors: number;
  /**
   * Peers refused because a setting differs, by the first setting that differs (present once it
   * happened). The WebSocket adapter counts each refused handshake; the memory adapter, each
   * pair of started transports.
   */
  readonly refusedSettings: Readonly<Record<string, number>>;
}

/** Mutable counters behind `Transport.stats()` (`snapshot` in lib/counters.ts copies them). */
export type TransportCounters = Counters<TransportStats>;

export function transportCounters(): TransportCounters {
  return {
    sent: 0,
    delivered: 0,
    dropped: tally(TRANSPORT_DROP_REASONS),
    handlerErrors: 0,
    refusedSettings: {},
  };
}

/** Counts a peer refused for its settings, under the setting named. */
export function countRefusal(counters: TransportCounters, refusal: SettingsMismatch): void {
  const { setting } = refusal;
  counters.refusedSettings[setting] = (counters.refusedSettings[setting] ?? 0) + 1;
}

/**
 * A list of subscribers. `emit` calls each one in subscription order and catches what it
 * throws: one faulty subscriber must not starve the others or break the adapter's loop.
 */
export class Handlers<A extends readonly unknown[]> {
  #list: ((...args: A) => void)[] = [];

  get size(): number {
    return this.#list.length;
  }

  add(handler: (...args: A) => void): () => void {
    // A fresh wrapper per subscription, so subscribing one function twice gives two
    // independent subscriptions and each unsubscribe removes exactly its own.
    const entry = (...args: A): void => {
      handler(...args);
    };
    this.#list = [...this.#list, entry];
    return () => {
      this.#list = this.#list.filter((h) => h !== entry);
    };
  }

  /** Returns how many handlers threw. */
  emit(...args: A): number {
    let errors = 0;
    // #list is replaced, never mutated, so (un)subscribing inside a handler is safe here.
    for (const handler of this.#list) {
      try {
        handler(...args);
      } catch {
        errors += 1;
      }
    }
    return errors;
  }

  clear(): void {
    this.#list = [];
  }
}
