import type { RawData, WebSocket } from 'ws';
import type { Clock, Scheduler } from '../../lib/clock.js';
import type { NodeId } from '../../lib/types.js';
import type { LinkDirection } from './connection-info.js';
import type { LinkFacts } from './tie-break.js';

export interface LinkTiming {
  readonly scheduler: Scheduler;
  readonly clock: Clock;
  readonly pingIntervalMs: number;
  readonly peerTimeoutMs: number;
}

/**
 * One WebSocket connection to a peer, from the moment it is dialled (outbound) or accepted
 * (inbound) until it closes, with its liveness watch.
 *
 * Liveness: any frame or pong from the peer counts as a sign of life. One timer per link wakes
 * at whichever comes first, the next ping or the moment the peer has been silent for
 * `peerTimeoutMs`; then the socket is terminated (no close handshake: the peer is not
 * answering). A pulled cable or a stopped process is thus noticed within `peerTimeoutMs` of its
 * last sign of life. Liveness only drives reconnection and `onPeer`; safety never rests on it.
 */
export class Link implements LinkFacts {
  readonly ws: WebSocket;
  readonly peer: NodeId;
  readonly direction: LinkDirection;
  readonly dialledBy: NodeId;
  peerInstance: string | null;
  /** The dialler's nonce (outbound links): what the listener's proof must cover. */
  readonly nonce: string | null;
  #open: boolean;
  #closed = false;
  readonly #timing: LinkTiming;
  #lastSeenMs = 0;
  #lastPingMs = 0;
  #timer: unknown = null;
  #onDead: (() => void) | null = null;
  /** The socket under `ws` while it holds back writes for the end of the turn; else null. */
  #corked: CorkableSocket | null = null;
  /** About how many bytes it holds back (UTF-16 units of the frames: a flush threshold). */
  #corkedBytes = 0;

  constructor(init: {
    ws: WebSocket;
    peer: NodeId;
    direction: LinkDirection;
    dialledBy: NodeId;
    peerInstance: string | null;
    nonce: string | null;
    open: boolean;
    timing: LinkTiming;
  }) {
    this.ws = init.ws;
    this.peer = init.peer;
    this.direction = init.direction;
    this.dialledBy = init.dialledBy;
    this.peerInstance = init.peerInstance;
    this.nonce = init.nonce;
    this.#open = init.open;
    this.#timing = init.timing;
  }

  get isOpen(): boolean {
    return this.#open && !this.#closed;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /** Arms a timer that terminates the link if it is not open after `delayMs`. */
  armHandshakeTimer(delayMs: number, onTimeout: () => void): void {
    this.#clearTimer();
    this.#timer = this.#timing.scheduler.setTimeout(() => {
      this.#timer = null;
      if (this.#open || this.#closed) return;
      onTimeout();
      this.terminate();
    }, delayMs);
  }

  /** The handshake completed: starts the liveness watch; `onDead` runs if the peer goes silent. */
  markOpen(onDead: () => void): void {
    this.#clearTimer();
    this.#open = true;
    this.#onDead = onDead;
    const now = this.#timing.clock.now();
    this.#lastSeenMs = now;
    this.#lastPingMs = now;
    this.#arm(now);
  }

  /** A frame or a pong arrived. Called per frame: keep it to one clock read. */
  seen(): void {
    this.#lastSeenMs = this.#timing.clock.now();
  }

  /**
   * Called before each frame is handed to `ws`: the frames of one turn of the event loop (its
   * timers, the input it read, and the microtasks of both) go to the socket as one write (one
   * `writev`) once the turn has handled its input, instead of one write each (`ws` writes every
   * frame at once). Each frame is still its own WebSocket message, checked and counted by the
   * sender as before. Past `HOLD_BYTES` held, what is held is written at once, so the buffer
   * limit still sees about what the kernel has not taken.
   */
  holdWrites(bytes: number): void {
    let socket = this.#corked;
    if (socket === null) {
      socket = socketOf(this.ws);
      if (socket === null) return;
      socket.cork();
      this.#corked = socket;
      this.#corkedBytes = 0;
      realSetImmediate(releaseWrites, this);
    }
    this.#corkedBytes += bytes;
    if (this.#corkedBytes > HOLD_BYTES) {
      this.#corkedBytes = 0;
      socket.uncork();
      socket.cork();
    }
  }

  /** Writes what the turn held back (see `holdWrites`). */
  releaseWrites(): void {
    const socket = this.#corked;
    if (socket === null) return;
    this.#corked = null;
    this.#corkedBytes = 0;
    try {
      socket.uncork();
    } catch {
      // A socket destroyed meanwhile has nothing left to write.
    }
  }

  /** Closes with a close frame (when open) and then drops the socket at once. */
  close(code: number, reason: string): void {
    this.#markClosed();
    if (this.ws.readyState === this.ws.OPEN) {
      try {
        this.ws.close(code, reason);
      } catch {
        // Closing a socket that is going away anyway: nothing to report.
      }
    }
    this.terminate();
  }

  /** Drops the socket without a close handshake. */
  terminate(): void {
    this.#markClosed();
    // What this turn held back would have been written already without the hold.
    this.releaseWrites();
    try {
      this.ws.terminate();
    } catch {
      // As above.
    }
  }

  /** The socket closed (or is closing): no more timers. Idempotent. */
  #markClosed(): void {
    this.#closed = true;
    this.#onDead = null;
    this.#clearTimer();
  }

  /** Called once the ws 'close' event fired. */
  closed(): void {
    this.#markClosed();
  }

  #arm(now: number): void {
    const { scheduler, pingIntervalMs, peerTimeoutMs } = this.#timing;
    const wakeAt = Math.min(this.#lastPingMs + pingIntervalMs, this.#lastSeenMs + peerTimeoutMs);
    this.#timer = scheduler.setTimeout(
      () => {
        this.#timer = null;
        this.#check();
      },
      Math.max(0, Math.ceil(wakeAt - now)),
    );
  }

  #check(): void {
    if (this.#closed) return;
    const { clock, pingIntervalMs, peerTimeoutMs } = this.#timing;
    const now = clock.now();
    if (now - this.#lastSeenMs >= peerTimeoutMs) {
      const onDead = this.#onDead;
      this.terminate();
      onDead?.();
      return;
    }
    if (now - this.#lastPingMs >= pingIntervalMs) {
      this.#lastPingMs = now;
      try {
        this.ws.ping();
      } catch {
        // The socket is closing; its 'close' event follows.
      }
    }
    this.#arm(now);
  }

  #clearTimer(): void {
    if (this.#timer !== null) {
      this.#timing.scheduler.clearTimeout(this.#timer);
      this.#timer = null;
    }
  }
}

/** What `holdWrites` needs of the socket under a WebSocket. */
interface CorkableSocket {
  cork(): void;
  uncork(): void;
}

/** Held frames past this many bytes are written without waiting for the end of the turn. */
const HOLD_BYTES = 64 * 1024;

function releaseWrites(link: Link): void {
  link.releaseWrites();
}

/**
 * Node's own `setImmediate`, taken when this module loads: its callbacks run right after the
 * event loop has handled the input of the current turn. Fake timers a test installs later (which
 * replace the global) must not hold frames back until the test moves its clock.
 */
const realSetImmediate: <A>(callback: (arg: A) => void, arg: A) => unknown =
  globalThis.setImmediate.bind(globalThis);

/**
 * The socket `ws` writes to (its `_socket`, set before the connection opens and kept until it
 * closes); null if this version of `ws` does not expose it, and writes are then not held.
 */
function socketOf(ws: WebSocket): CorkableSocket | null {
  const socket = (ws as unknown as { _socket?: Partial<CorkableSocket> | null })._socket;
  if (
    socket === null ||
    socket === undefined ||
    typeof socket.cork !== 'function' ||
    typeof socket.uncork !== 'function'
  ) {
    return null;
  }
  return socket as CorkableSocket;
}

/** The text of a frame, whichever of its three shapes `ws` hands over. */
export function rawDataToString(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}
