import type { NodeId } from '../types.js';

/** How many replaced incarnations are remembered per peer, besides its current one. */
export const REPLACED_KEPT = 3;
/**
 * Frames that go back to a replaced incarnation count towards a conflict only within this
 * window, and only if that incarnation itself was seen within it (both are live).
 */
export const CONFLICT_WINDOW_MS = 10_000;
/** Returns to a replaced incarnation within the window that make a conflict: A→B→A→B→A. */
export const CONFLICT_RETURNS = 3;
/** At most one log line per peer and kind (restart, conflict) in this interval. */
export const LOG_INTERVAL_MS = 60_000;

/**
 * What a frame's incarnation says about its peer:
 * - `same`: the peer's current incarnation, or the first one seen from it;
 * - `restart`: one never seen (or long forgotten): the peer restarted, or a stray frame;
 * - `returned`: one the peer had replaced lately: a frame delayed across a restart, the return
 *   after a stray frame, or, when it keeps happening (`conflict`), one id in two processes.
 *
 * `log` is null while the line would be rate-limited; otherwise it carries how many lines of
 * that kind were suppressed since the last one.
 */
export type IncarnationNote =
  | { readonly type: 'same' }
  | {
      readonly type: 'restart';
      readonly previous: string;
      readonly log: { readonly suppressed: number } | null;
    }
  | {
      readonly type: 'returned';
      readonly replaced: string;
      readonly conflict: boolean;
      readonly log: { readonly suppressed: number } | null;
    };

interface Seen {
  readonly incarnation: string;
  lastSeen: number;
}

/** One line per interval; what falls between is counted. */
interface Throttle {
  lastAt: number | null;
  suppressed: number;
}

interface PeerState {
  current: Seen;
  /** Most recently replaced first; at most REPLACED_KEPT. */
  readonly replaced: Seen[];
  /** When the latest returns happened, oldest first; at most CONFLICT_RETURNS. */
  returns: number[];
  readonly restartLog: Throttle;
  readonly conflictLog: Throttle;
}

/**
 * The incarnations seen from each peer, in bounded memory: per peer its current incarnation and
 * the few it replaced last, each with when it was last seen. It tells a restart (a new
 * incarnation that goes on) from one id in two live processes (frames going back and forth
 * between two incarnations, several times within a short window), and rate-limits what it
 * asks to be logged. Takes `now`, reads no clock.
 */
export class IncarnationTracker {
  readonly #peers = new Map<NodeId, PeerState>();

  /** Incarnations remembered, over every peer: at most peers × (1 + REPLACED_KEPT). */
  get size(): number {
    let n = 0;
    for (const state of this.#peers.values()) n += 1 + state.replaced.length;
    return n;
  }

  note(peer: NodeId, incarnation: string, now: number): IncarnationNote {
    const state = this.#peers.get(peer);
    if (state === undefined) {
      this.#peers.set(peer, {
        current: { incarnation, lastSeen: now },
        replaced: [],
        returns: [],
        restartLog: { lastAt: null, suppressed: 0 },
        conflictLog: { lastAt: null, suppressed: 0 },
      });
      return { type: 'same' };
    }
    if (state.current.incarnation === incarnation) {
      state.current.lastSeen = now;
      return { type: 'same' };
    }
    const back = state.replaced.find((s) => s.incarnation === incarnation);
    const previous = state.current;
    if (back === undefined) {
      this.#replace(state, { incarnation, lastSeen: now });
      return { type: 'restart', previous: previous.incarnation, log: admit(state.restartLog, now) };
    }
    const live = now - back.lastSeen <= CONFLICT_WINDOW_MS;
    if (!live) {
      // A frame delayed for long: it says nothing of who runs now, and changes nothing.
      back.lastSeen = now;
      return { type: 'returned', replaced: previous.incarnation, conflict: false, log: null };
    }
    state.replaced.splice(state.replaced.indexOf(back), 1);
    back.lastSeen = now;
    this.#replace(state, back);
    state.returns = [...state.returns.filter((t) => now - t <= CONFLICT_WINDOW_MS), now].slice(
      -CONFLICT_RETURNS,
    );
    const conflict = state.returns.length >= CONFLICT_RETURNS;
    return {
      type: 'returned',
      replaced: previous.incarnation,
      conflict,
      log: conflict ? admit(state.conflictLog, now) : null,
    };
  }

  #replace(state: PeerState, next: Seen): void {
    state.replaced.unshift(state.current);
    if (state.replaced.length > REPLACED_KEPT) state.replaced.length = REPLACED_KEPT;
    state.current = next;
  }
}

/** Whether a line may be written now; if so, how many were suppressed since the last. */
function admit(throttle: Throttle, now: number): { suppressed: number } | null {
  if (throttle.lastAt !== null && now - throttle.lastAt < LOG_INTERVAL_MS) {
    throttle.suppressed += 1;
    return null;
  }
  const suppressed = throttle.suppressed;
  throttle.lastAt = now;
  throttle.suppressed = 0;
  return { suppressed };
}
