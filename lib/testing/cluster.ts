import { MemoryNetwork } from '../../adapters/memory/network.js';
import { memoryNodeStorage, type MemoryStorage } from '../../adapters/memory/storage.js';
import { ConfigError, InvariantError } from '../errors.js';
import type { NodeRecord, NodeUpdate } from '../storage.js';
import { createNode, HALT, type SynodNode } from '../node/node.js';
import { DEFAULTS, type NodeOptions } from '../options.js';
import { createRng } from '../random.js';
import type { NodeId } from '../types.js';
import { VirtualClock } from './virtual-clock.js';

/** Node options the test cluster leaves to the caller (it sets the others itself). */
export type TestNodeOptions = Omit<
  NodeOptions,
  'id' | 'peers' | 'transport' | 'clock' | 'scheduler' | 'rng' | 'storage' | 'leaseMs' | 'wallClock'
>;

export interface TestClusterOptions {
  /** How many nodes, named `n1`, `n2`, …; default 3. Ignored when `ids` is given. */
  readonly size?: number;
  /** The node ids. */
  readonly ids?: readonly NodeId[];
  readonly leaseMs?: number;
  /** Seeds the network's faults and every node's election jitter; default 1. */
  readonly seed?: number;
  /** Each frame's delay, uniform over `[min, max]` whole ms; default `[1, 5]`. */
  readonly delayMs?: readonly [number, number];
  readonly lossRate?: number;
  readonly duplicateRate?: number;
  /** Give each node storage that survives its restarts; default false (diskless). */
  readonly storage?: boolean;
  /** More options for every node (logger, handoffTimeoutMs, preferredLeader, …). */
  readonly node?: TestNodeOptions;
  /**
   * Called for every node the cluster creates, before it starts: the first ones and every
   * restarted one. Register `onLeader` / `onFollower` here so restarted nodes get them too.
   */
  readonly setup?: (node: SynodNode) => void;
  /** The virtual clock's first reading; default 0. */
  readonly startMs?: number;
}

const OPTION_KEYS: readonly (keyof TestClusterOptions)[] = [
  'size',
  'ids',
  'leaseMs',
  'seed',
  'delayMs',
  'lossRate',
  'duplicateRate',
  'storage',
  'node',
  'setup',
  'startMs',
];

interface Member {
  node: SynodNode;
  readonly storage: MemoryStorage<NodeRecord, NodeUpdate> | null;
  generation: number;
  crashed: boolean;
}

/**
 * Real `SynodNode`s on one virtual clock and an in-memory network with fault injection, for
 * testing the code you run in `onLeader` under partitions, crashes and restarts. Nothing
 * happens until the test moves time (`advance`, `runUntil`, `waitForLeader`).
 *
 * ```ts
 * const cluster = createTestCluster({ size: 3, setup: (node) => node.onLeader(myWork) });
 * await cluster.start();
 * const leader = await cluster.waitForLeader();
 * cluster.isolate(leader.id);
 * await cluster.advance(2000);
 * ```
 */
export class TestCluster {
  readonly clock: VirtualClock;
  readonly network: MemoryNetwork;
  readonly ids: readonly NodeId[];
  readonly leaseMs: number;
  readonly #options: TestClusterOptions;
  readonly #seed: number;
  readonly #members = new Map<NodeId, Member>();

  constructor(options: TestClusterOptions = {}) {
    for (const key of Object.keys(options)) {
      if (!(OPTION_KEYS as readonly string[]).includes(key)) {
        throw new ConfigError(
          `unknown test cluster option "${key}" (allowed: ${OPTION_KEYS.join(', ')})`,
        );
      }
    }
    this.#options = options;
    const size = options.size ?? 3;
    if (options.ids === undefined && (!Number.isSafeInteger(size) || size < 1)) {
      throw new ConfigError('size must be a whole number of nodes, at least 1');
    }
    this.ids = Object.freeze(
      options.ids === undefined
        ? Array.from({ length: size }, (_, i) => `n${i + 1}`)
        : [...options.ids],
    );
    if (this.ids.length === 0) throw new ConfigError('ids must name at least one node');
    this.leaseMs = options.leaseMs ?? DEFAULTS.leaseMs;
    this.#seed = options.seed ?? 1;
    if (!Number.isSafeInteger(this.#seed)) throw new ConfigError('seed must be a safe integer');
    this.clock = new VirtualClock(options.startMs ?? 0);
    this.network = new MemoryNetwork({
      scheduler: this.clock,
      seed: this.#seed,
      delayMs: options.delayMs ?? [1, 5],
      lossRate: options.lossRate ?? 0,
      duplicateRate: options.duplicateRate ?? 0,
    });
    for (const id of this.ids) {
      const storage = options.storage === true ? memoryNodeStorage() : null;
      const node = this.#create(id, storage, 0);
      this.#members.set(id, { node, storage, generation: 0, crashed: false });
    }
  }

  /** The current node of `id` (a restart replaces it). */
  node(id: NodeId): SynodNode {
    return this.#member(id).node;
  }

  /** The current node of every id, in `ids` order. */
  nodes(): SynodNode[] {
    return this.ids.map((id) => this.#member(id).node);
  }

  /** Starts every node. */
  async start(): Promise<void> {
    await Promise.all(this.nodes().map((node) => node.start()));
  }

  /** Every node that believes it leads now (by its lease and the clock). */
  leaders(): SynodNode[] {
    return this.nodes().filter((node) => node.isLeader);
  }

  /**
   * The node that leads now, or null. Throws `InvariantError` if two nodes both believe they
   * lead: the one thing synod guarantees never happens.
   */
  leader(): SynodNode | null {
    const leaders = this.leaders();
    if (leaders.length > 1) {
      throw new InvariantError(
        `two leaders at once: ${leaders.map((n) => n.id).join(', ')} at ${this.clock.now()} ms`,
      );
    }
    return leaders[0] ?? null;
  }

  /** Moves virtual time forward by `ms`, running every timer due on the way. */
  advance(ms: number): Promise<void> {
    return this.clock.advance(ms);
  }

  /** Runs time forward until `predicate()` holds, at most `maxMs`; resolves whether it held. */
  runUntil(predicate: () => boolean, maxMs: number): Promise<boolean> {
    return this.clock.runUntil(predicate, maxMs);
  }

  /**
   * Runs time until some node leads (at most `maxMs`, default ten lease periods) and returns it.
   * Rejects if none does in time.
   */
  async waitForLeader(maxMs = 10 * this.leaseMs): Promise<SynodNode> {
    const found = await this.clock.runUntil(() => this.leader() !== null, maxMs);
    const leader = this.leader();
    if (!found || leader === null) {
      throw new InvariantError(`no leader within ${maxMs} ms of virtual time`);
    }
    return leader;
  }

  /**
   * The process of `id` dies: its timers stop, it sends nothing more (no Release), its
   * leadership signal aborts, and frames in flight to it are lost.
   */
  crash(id: NodeId): void {
    const member = this.#member(id);
    member.node[HALT]();
    member.crashed = true;
    this.network.crash(id);
  }

  /**
   * Starts a fresh process for `id` (a new incarnation, after a crash or a stop): with storage
   * if the cluster has it, otherwise diskless. `setup` runs on the new node before it starts.
   */
  async restart(id: NodeId): Promise<SynodNode> {
    const member = this.#member(id);
    if (member.crashed) {
      this.network.restart(id);
    } else if (member.node.state !== 'stopped' && member.node.state !== 'failed') {
      // Replacing a live process: it dies first (one id never runs in two processes).
      this.crash(id);
      this.network.restart(id);
    }
    member.crashed = false;
    member.generation += 1;
    member.node = this.#create(id, member.storage, member.generation);
    await member.node.start();
    return member.node;
  }

  /** Gracefully stops `id` (a handoff if it leads), running virtual time until it is done. */
  async stop(id: NodeId): Promise<void> {
    const node = this.node(id);
    let done = false;
    const isDone = (): boolean => done;
    const stopping = node.stop().finally(() => {
      done = true;
    });
    // The handoff waits on timers (handler work, the handoff timeout): run them.
    while (!isDone()) {
      await this.clock.runUntil(isDone, this.leaseMs);
      // Waiting on something no timer will bring: only the stop itself can end it.
      if (!isDone() && this.clock.pending === 0) break;
    }
    await stopping;
  }

  /** Splits the network into groups that cannot reach one another. */
  partition(...groups: NodeId[][]): void {
    this.network.partition(...groups);
  }

  /** Cuts `id` off from every other node, both ways. */
  isolate(id: NodeId): void {
    this.network.isolate(id);
  }

  /** Frames from `from` to `to` are lost (one way). */
  cut(from: NodeId, to: NodeId): void {
    this.network.cut(from, to);
  }

  /** Ends every partition, cut and isolation. */
  heal(): void {
    this.network.heal();
  }

  /** Halts every node at once and drops every pending timer. */
  async close(): Promise<void> {
    for (const member of this.#members.values()) {
      member.node[HALT]();
    }
    await Promise.all(
      [...this.#members.values()].map((member) => member.node.stop().catch(() => undefined)),
    );
    this.clock.reset();
  }

  #member(id: NodeId): Member {
    const member = this.#members.get(id);
    if (member === undefined) throw new ConfigError(`no node "${id}" in this test cluster`);
    return member;
  }

  #create(
    id: NodeId,
    storage: MemoryStorage<NodeRecord, NodeUpdate> | null,
    generation: number,
  ): SynodNode {
    const index = this.ids.indexOf(id);
    const node = createNode({
      ...this.#options.node,
      id,
      peers: this.ids,
      transport: this.network.transport(id, this.ids),
      leaseMs: this.leaseMs,
      clock: this.clock,
      scheduler: this.clock,
      // One stream per node and per life, all derived from the cluster's seed.
      rng: createRng(Math.imul(this.#seed, 0x9e3779b1) + index * 7919 + generation * 104729),
      // Wall time moves with the virtual clock, from a fixed date: epochs' token bases are
      // the same on every run.
      wallClock: () => VIRTUAL_WALL_EPOCH_MS + this.clock.now(),
      ...(storage === null ? {} : { storage }),
    });
    this.#options.setup?.(node);
    return node;
  }
}

/** The wall-clock reading of a test cluster's virtual time 0 (2026-01-01, UTC). */
const VIRTUAL_WALL_EPOCH_MS = 1_767_225_600_000;

/** Creates a test cluster: real nodes on a virtual clock and an in-memory network. */
export function createTestCluster(options: TestClusterOptions = {}): TestCluster {
  return new TestCluster(options);
}
