import { MemoryNetwork } from '../../adapters/memory/network.js';
import type { Scheduler } from '../../lib/clock.js';
import { decodeFrame } from '../../lib/codec/messages.js';
import type { TransportSettings } from '../../lib/settings.js';
import type { Transport } from '../../lib/transport.js';
import type { NodeId } from '../../lib/types.js';
import type { Sent, Target } from './corpus.js';

/**
 * The peers of one node under test, played by the test on the memory network. The node gets a
 * real memory transport (`transport`, for the node to start). Each peer has a transport that
 * only listens: it keeps what the node sends it, decoded, in `sent`. And the test makes any peer
 * say anything with `say`: the frame reaches the node's transport at once, as if it came over
 * that peer's link, and goes through the transport's checks and counters like any other.
 *
 * Frames from the node travel through `scheduler` (with no delay), so they show in `sent` once
 * the test lets that much time pass.
 */
export class ScriptedPeers {
  /** The node's transport. */
  readonly transport: Transport;
  /** What the node sent its peers, decoded, oldest first: take what you answer. */
  readonly sent: Sent[] = [];
  /** Frames the node sent that a peer's decoder refused, with the reason: there must be none. */
  readonly refused: string[] = [];
  readonly #network: MemoryNetwork;
  readonly #target: Target;
  readonly #peers: Transport[];

  private constructor(target: Target, scheduler: Scheduler) {
    this.#target = target;
    this.#network = new MemoryNetwork({ scheduler });
    const ids = [target.self, ...target.peers];
    this.transport = this.#network.transport(target.self, ids);
    this.#peers = target.peers.map((peer) => {
      const transport = this.#network.transport(peer, ids);
      const expect = { cluster: target.cluster, self: peer, peers: new Set([target.self]) };
      transport.onMessage((_from, frame) => {
        const decoded = decodeFrame(frame, expect);
        if (decoded.ok) this.sent.push({ to: peer, message: decoded.frame.msg });
        else this.refused.push(`${decoded.reason}: ${decoded.error.message}`);
      });
      return transport;
    });
  }

  /** The peers of `target`, listening, started with the settings the node starts with. */
  static async start(
    target: Target,
    scheduler: Scheduler,
    settings?: TransportSettings,
  ): Promise<ScriptedPeers> {
    const peers = new ScriptedPeers(target, scheduler);
    await Promise.all(peers.#peers.map((t) => t.start(settings)));
    return peers;
  }

  /** `text` arrives at the node now, over `from`'s link. */
  say(from: NodeId, text: string): void {
    this.#network.inject(from, this.#target.self, text);
  }

  /** Calls of the node's frame handler that threw (the transport catches and counts them). */
  get handlerErrors(): number {
    return this.transport.stats().handlerErrors;
  }

  async close(): Promise<void> {
    await Promise.all([this.transport, ...this.#peers].map((t) => t.close()));
  }
}
