import type { LeaseMessage } from '../../lease/messages.js';
import type { PaxosMessage } from '../../paxos/messages.js';
import type { Rng } from '../../random.js';
import type { ReplicaMessage } from '../../replica/machine.js';
import type { SimParams } from './profiles.js';

type Message = LeaseMessage | PaxosMessage | ReplicaMessage;

/**
 * The adversaries of the lock profiles. Nothing here can break a correct core: they only delay
 * and drop messages, as a network may; they do it at the moments a broken rule would show.
 *
 * - Late grants (`lateGrantTrap`, the lateGrants profile): a grant the leader answers (a waiter
 *   it promoted, say) is held back until shortly before the grant's TTL runs out on the
 *   leader's clock. Its holder, past its deadline by then, renews at once, and the renew reaches
 *   the leader before the timer does. The leader's Accepts are slowed from then until a little
 *   after its timer ran out, so the renew is still being chosen when the leader proposes the
 *   expire: the renew takes a slot, the expire the slot after it, and both apply in that order
 *   (docs/design.md, "Why two holders' windows never overlap", step 3). A holder that times its
 *   window from the late answer shows here too.
 * - Mute holders (`muteRenewals`, the lockTimers and lockDrift profiles): a node whose holder
 *   sends a renew may, instead, have every lock request it sends lost for one to four lease
 *   periods: its holders live on, believing, while the leader's timers run out. A holder whose
 *   window is too long, or a leader whose timers start too early, shows here.
 */
export class LockAdversary {
  readonly #p: SimParams;
  readonly #rng: Rng;
  readonly #healAt: number;
  /** Per node, the true interval in which its Accepts are slowed (from, until). */
  readonly #slowFrom: Float64Array;
  readonly #slowUntil: Float64Array;
  /** Per node, the true instant until which its lock requests are lost. */
  readonly #mutedUntil: Float64Array;
  /**
   * Grants held, by token: the holder's retries of its acquire are answered with the same grant
   * meanwhile, and those answers are held until the same instant.
   */
  readonly #held = new Map<bigint, number>();

  constructor(params: SimParams, rng: Rng, healAt: number) {
    this.#p = params;
    this.#rng = rng;
    this.#healAt = healAt;
    this.#slowFrom = new Float64Array(params.nodes);
    this.#slowUntil = new Float64Array(params.nodes);
    this.#mutedUntil = new Float64Array(params.nodes);
  }

  /**
   * A lock reply that node `from`, on a clock running at `rate`, sends at true instant `t`: the
   * true instant to deliver it at if a late-grant trap takes it, else null.
   */
  holdGrant(from: number, rate: number, message: Message, t: number): number | null {
    if (message.type !== 'lock.reply' || this.#p.rates.lateGrantTrap === 0) return null;
    const grant = message.replies.find((r) => r.type === 'granted');
    if (grant === undefined) return null;
    const held = this.#held.get(grant.token);
    if (held !== undefined) return held > t ? held : null;
    if (this.#rng.next() >= this.#p.rates.lateGrantTrap) return null;
    const L = this.#p.leaseMs;
    // The grant applied in this very step, where the leader's timer started: it runs out at
    // `timer`. The holder's renew leaves at `at` and reaches the leader before that.
    const timer = t + grant.ttlMs / rate;
    const at = timer - this.#p.maxDelayMs * (1.5 + this.#rng.next());
    if (at <= t || timer + L / 4 >= this.#healAt) return null;
    this.#held.set(grant.token, at);
    this.#slowFrom[from] = at;
    this.#slowUntil[from] = timer + L / 8;
    return at;
  }

  /** Whether a message node `from` sends at `t` is lost: a lock request of a muted node. */
  mutes(from: number, message: Message, t: number): boolean {
    if (message.type !== 'lock.request' || this.#p.rates.muteRenewals === 0) return false;
    if (t < (this.#mutedUntil[from] ?? 0)) return true;
    if (!message.commands.some((c) => c.op === 'renew')) return false;
    if (this.#rng.next() >= this.#p.rates.muteRenewals) return false;
    const L = this.#p.leaseMs;
    this.#mutedUntil[from] = Math.min(this.#healAt, t + L * (1 + 3 * this.#rng.next()));
    return true;
  }

  /** Extra delay of a message node `from` sends at `t`: its Accepts, inside a trap's window. */
  extraDelay(from: number, message: Message, t: number): number {
    if (message.type !== 'log.accept') return 0;
    if (t < (this.#slowFrom[from] ?? 0) || t >= (this.#slowUntil[from] ?? 0)) return 0;
    // Arrives after the timer ran out (the renew was sent at most 2.5 maxDelay before it).
    return 3 * this.#p.maxDelayMs + (this.#p.leaseMs / 16) * (1 + this.#rng.next());
  }
}
