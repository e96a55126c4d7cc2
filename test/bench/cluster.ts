import { MemoryNetwork } from '../../adapters/memory/index.js';
import { InvariantError } from '../../lib/errors.js';
import { createNode, HALT, type SynodNode } from '../../lib/node/node.js';
import { createRng } from '../../lib/random.js';
import { VirtualClock } from '../../lib/testing/virtual-clock.js';
import type { Transport } from '../../lib/transport.js';
import type { NodeId } from '../../lib/types.js';

/**
 * Real runtime nodes (`createNode`, the same code as in production) on a virtual clock and an
 * in-memory network with a fixed one-way delay, for measurements that are deterministic for a
 * seed. Unlike the public test cluster, every node's transport is wrapped to count what it
 * sends, by message type.
 */
export interface BenchClusterOptions {
  readonly size: number;
  readonly leaseMs: number;
  /** Every frame takes exactly this long, one way. */
  readonly delayMs: number;
  readonly seed: number;
}

export interface Election {
  readonly id: NodeId;
  readonly term: number;
  /** Virtual ms when the node's `onLeader` handler started. */
  readonly at: number;
}

/** Frames handed to transports, in total and by protocol message type. */
export class SendCounter {
  total = 0;
  readonly byType = new Map<string, number>();

  count(frame: string): void {
    this.total += 1;
    const type = (JSON.parse(frame) as { msg?: { type?: unknown } }).msg?.type;
    const key = typeof type === 'string' ? type : '?';
    this.byType.set(key, (this.byType.get(key) ?? 0) + 1);
  }

  reset(): void {
    this.total = 0;
    this.byType.clear();
  }
}

/** A transport that counts every `send`, then hands the frame to the real one. */
function counting(inner: Transport, counter: SendCounter): Transport {
  return {
    self: inner.self,
    peers: inner.peers,
    start: (settings) => inner.start(settings),
    send: (to, frame) => {
      counter.count(frame);
      inner.send(to, frame);
    },
    onMessage: (handler) => inner.onMessage(handler),
    onPeer: (handler) => inner.onPeer(handler),
    onRefusal: (handler) => inner.onRefusal(handler),
    close: () => inner.close(),
    stats: () => inner.stats(),
  };
}

export class BenchCluster {
  readonly clock = new VirtualClock();
  readonly network: MemoryNetwork;
  readonly ids: readonly NodeId[];
  readonly sends = new SendCounter();
  /** Every `onLeader` start, in order. */
  readonly elections: Election[] = [];
  readonly #options: BenchClusterOptions;
  readonly #nodes = new Map<NodeId, SynodNode>();
  readonly #generations = new Map<NodeId, number>();

  constructor(options: BenchClusterOptions) {
    this.#options = options;
    this.ids = Array.from({ length: options.size }, (_, i) => `n${i + 1}`);
    this.network = new MemoryNetwork({
      scheduler: this.clock,
      seed: options.seed,
      delayMs: [options.delayMs, options.delayMs],
    });
    for (const id of this.ids) this.#nodes.set(id, this.#create(id));
  }

  node(id: NodeId): SynodNode {
    const node = this.#nodes.get(id);
    if (node === undefined) throw new InvariantError(`no node ${id}`);
    return node;
  }

  nodes(): SynodNode[] {
    return this.ids.map((id) => this.node(id));
  }

  async start(): Promise<void> {
    await Promise.all(this.nodes().map((node) => node.start()));
  }

  /** The node that leads now, or null; throws if two do (the one thing that must never happen). */
  leader(): SynodNode | null {
    const leaders = this.nodes().filter((node) => node.isLeader);
    if (leaders.length > 1) {
      throw new InvariantError(
        `two leaders at ${this.clock.now()} ms: ${leaders.map((n) => n.id).join(', ')}`,
      );
    }
    return leaders[0] ?? null;
  }

  /** Runs virtual time until `predicate` holds (checking for two leaders after every timer). */
  async runUntil(predicate: () => boolean, maxMs: number): Promise<boolean> {
    return this.clock.runUntil(() => {
      this.leader();
      return predicate();
    }, maxMs);
  }

  /** Runs virtual time for `ms`, checking for two leaders after every timer. */
  async run(ms: number): Promise<void> {
    await this.runUntil(() => false, ms);
  }

  /** Runs until an election after index `since` satisfies `accept`; returns it. */
  async nextElection(
    since: number,
    accept: (e: Election) => boolean,
    maxMs: number,
  ): Promise<Election> {
    const found = (): Election | undefined => this.elections.slice(since).find(accept);
    await this.runUntil(() => found() !== undefined, maxMs);
    const election = found();
    if (election === undefined) {
      throw new InvariantError(`no election within ${maxMs} ms of virtual time`);
    }
    return election;
  }

  /** The process of `id` dies at once: no timer, no frame, no Release. */
  crash(id: NodeId): void {
    this.node(id)[HALT]();
    this.network.crash(id);
  }

  /** Starts `stop()` on `id` and runs virtual time until it has finished. */
  async stop(id: NodeId, maxMs: number): Promise<void> {
    let done = false;
    const stopping = this.node(id)
      .stop()
      .finally(() => {
        done = true;
      });
    await this.runUntil(() => done, maxMs);
    await stopping;
  }

  async close(): Promise<void> {
    for (const node of this.nodes()) node[HALT]();
    await Promise.all(this.nodes().map((node) => node.stop().catch(() => undefined)));
    this.clock.reset();
  }

  #create(id: NodeId): SynodNode {
    const generation = this.#generations.get(id) ?? 0;
    this.#generations.set(id, generation + 1);
    const index = this.ids.indexOf(id);
    const { leaseMs, seed } = this.#options;
    const node = createNode({
      id,
      peers: this.ids,
      transport: counting(this.network.transport(id, this.ids), this.sends),
      leaseMs,
      clock: this.clock,
      scheduler: this.clock,
      // One stream per node and per life, all derived from the seed.
      rng: createRng(Math.imul(seed, 0x9e3779b1) + index * 7919 + generation * 104_729),
    });
    node.onLeader(({ term, signal }) => {
      this.elections.push({ id, term, at: this.clock.now() });
      // Leadership work that ends on its signal, as well-behaved work does.
      return new Promise<void>((resolve) => {
        signal.addEventListener(
          'abort',
          () => {
            resolve();
          },
          { once: true },
        );
      });
    });
    return node;
  }
}
