import type { Scheduler } from '../clock.js';
import { decodeFrame, encodeFrame, PROTOCOL_VERSION } from '../codec/messages.js';
import { LeaseMachine, type LeaseOutput } from '../lease/machine.js';
import type { LeaseMessage } from '../lease/messages.js';
import { createRng } from '../random.js';
import type { NodeId } from '../types.js';
import { LeaderRole } from './leader.js';
import { NodeLogger } from './logger.js';
import { nodeCounters } from './stats.js';

/**
 * Runs the code of a graceful handoff once, on scratch objects that share nothing with the
 * node, so that the node's own handoff later does not run it for the first time.
 *
 * A handoff is made of code a process has usually never run: a leader stops once in its life,
 * and a follower that never led has never campaigned. The first call of a JavaScript function
 * compiles it, and Node.js sets up parts of itself on first use (an `AbortSignal`'s first abort
 * costs a few tenths of a millisecond); between processes on loopback, those first runs added
 * more than a millisecond to a handoff of about eight (docs/benchmarks.md). Here they happen at
 * start, inside the restart silence, when the node votes for nothing and nothing waits on it.
 *
 * Pure and private: three scratch lease machines elect a leader, which stops and releases to
 * a successor that is elected in turn, each type of message also going through the codec; and
 * a scratch leader role starts a handler and aborts its signal. No clock, timer, I/O, log line or
 * counter of the node is touched, and the randomness is a fixed seed of its own, so the node
 * behaves exactly as without it (a seeded simulation replays the same).
 */
export function warmUpHandoff(scheduler: Scheduler): void {
  warmUpRole(scheduler);
  warmUpMachines();
}

const IDS: readonly NodeId[] = ['a', 'b', 'c'];
const CLUSTER = 'warm-up';
const LEASE_MS = 1000;

/** `elected`, a handler with an abort listener, then a stepdown that aborts its signal. */
function warmUpRole(scheduler: Scheduler): void {
  const role = new LeaderRole({
    now: () => 0,
    holds: () => true,
    scheduler,
    log: new NodeLogger({ logger: null, logLevel: null, id: 'warm-up' }),
    counters: nodeCounters(),
  });
  role.onLeader(({ signal }) => {
    signal.addEventListener('abort', () => undefined, { once: true });
  });
  role.elected(1);
  role.stepDown();
}

interface ScratchNode {
  readonly id: NodeId;
  readonly incarnation: string;
  readonly machine: LeaseMachine;
  readonly expect: { cluster: string; self: NodeId; peers: ReadonlySet<NodeId> };
  wakeAt: number | null;
}

interface InFlight {
  readonly from: NodeId;
  readonly to: ScratchNode;
  readonly message: LeaseMessage;
}

/**
 * An election, a graceful stop with its Release, and the successor's election. Messages go
 * straight from machine to machine, and the first of each type also through the codec (the
 * codec's work depends on the type, not on the values).
 */
function warmUpMachines(): void {
  const rng = createRng(1);
  const nodes: ScratchNode[] = IDS.map((id, i) => {
    const incarnation = i.toString(16).padStart(16, '0');
    return {
      id,
      incarnation,
      machine: new LeaseMachine(
        { id, incarnation, peers: IDS, leaseMs: LEASE_MS, maxClockDrift: 0.01, marginMs: 10, rng },
        null,
      ),
      expect: { cluster: CLUSTER, self: id, peers: new Set(IDS.filter((p) => p !== id)) },
      wakeAt: null,
    };
  });
  const queue: InFlight[] = [];
  const coded = new Set<string>();
  const elected: ScratchNode[] = [];
  const apply = (node: ScratchNode, out: LeaseOutput): void => {
    node.wakeAt = out.wakeAt;
    for (const { to, message } of out.send) {
      const target = nodes.find((n) => n.id === to);
      if (target === undefined) continue;
      if (!coded.has(message.type)) {
        coded.add(message.type);
        const text = encodeFrame({
          v: PROTOCOL_VERSION,
          cluster: CLUSTER,
          from: node.id,
          to,
          inc: node.incarnation,
          msg: message,
        });
        decodeFrame(text, target.expect);
      }
      queue.push({ from: node.id, to: target, message });
    }
    for (const event of out.events) if (event.type === 'elected') elected.push(node);
  };
  const deliver = (now: number): void => {
    for (let n = 0; n < 100 && queue.length > 0; n++) {
      const next = queue.shift();
      if (next === undefined) return;
      const { from, to, message } = next;
      apply(to, to.machine.handle({ type: 'message', from, message }, now));
    }
  };

  for (const node of nodes) apply(node, node.machine.start(0));
  // Each node is woken when it asks to be, as the driver does: past the restart silence, one
  // campaigns after its random wait and wins.
  let now = 0;
  for (let step = 0; step < 20 && elected.length === 0; step++) {
    const wakes = nodes.map((n) => n.wakeAt ?? Number.POSITIVE_INFINITY);
    now = Math.max(now, Math.min(...wakes));
    if (!Number.isFinite(now)) return;
    for (const node of nodes) {
      if ((node.wakeAt ?? Number.POSITIVE_INFINITY) <= now) {
        apply(node, node.machine.handle({ type: 'tick' }, now));
      }
    }
    deliver(now);
  }
  const leader = elected[0];
  if (leader === undefined) return;
  apply(leader, leader.machine.stop(now, true));
  deliver(now);
}
