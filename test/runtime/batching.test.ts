import assert from 'node:assert/strict';
import { MemoryNetwork } from '../../adapters/memory/index.js';
import { encodeFrame, PROTOCOL_VERSION } from '../../lib/codec/messages.js';
import { createNode, type SynodNode } from '../../lib/index.js';
import type { ClientCommand } from '../../lib/locks/messages.js';
import { HALT } from '../../lib/node/node.js';
import { createRng } from '../../lib/random.js';
import { VirtualClock } from '../../lib/testing/virtual-clock.js';
import type { Transport } from '../../lib/transport.js';

const IDS = ['a', 'b', 'c'];
const LEASE_MS = 200;
/** The holder the injected requests name: not the incarnation of b's own client. */
const HOLDER_INC = '00000000000000aa';

interface Sent {
  readonly from: string;
  readonly to: string;
  readonly msg: { readonly type: string; readonly entries?: { value: { name?: string }[] }[] };
}

/** A transport that notes every frame handed to it. */
function recording(inner: Transport, sent: Sent[]): Transport {
  return {
    get self() {
      return inner.self;
    },
    get peers() {
      return inner.peers;
    },
    start: (settings) => inner.start(settings),
    send: (to, frame) => {
      const { msg } = JSON.parse(frame) as { msg: Sent['msg'] };
      sent.push({ from: inner.self, to, msg });
      inner.send(to, frame);
    },
    onMessage: (handler) => inner.onMessage(handler),
    onPeer: (handler) => inner.onPeer(handler),
    onRefusal: (handler) => inner.onRefusal(handler),
    close: () => inner.close(),
    stats: () => inner.stats(),
  };
}

async function serving(): Promise<{
  clock: VirtualClock;
  network: MemoryNetwork;
  leader: SynodNode;
  follower: SynodNode;
  other: SynodNode;
  sent: Sent[];
  close: () => Promise<void>;
}> {
  const clock = new VirtualClock();
  const network = new MemoryNetwork({ scheduler: clock, delayMs: [1, 1] });
  const sent: Sent[] = [];
  const nodes = IDS.map((id, i) =>
    createNode({
      id,
      peers: IDS,
      transport: recording(network.transport(id, IDS), sent),
      leaseMs: LEASE_MS,
      maxTtlMs: 1000,
      clock,
      scheduler: clock,
      rng: createRng(i + 1),
    }),
  );
  await Promise.all(nodes.map((n) => n.start()));
  await clock.runUntil(() => nodes.some((n) => n.isLeader), 20 * LEASE_MS);
  const leader = nodes.find((n) => n.isLeader);
  const [follower, other] = nodes.filter((n) => n !== leader);
  assert.ok(leader !== undefined && follower !== undefined && other !== undefined);
  // A new cluster's first grant waits out maxTtlMs + leaseMs: past it, requests go straight in.
  let granted = false;
  void follower.acquireLock('first', { ttlMs: 1000 }).then(async (lock) => {
    await lock.release();
    granted = true;
  });
  assert.ok(await clock.runUntil(() => granted, 10_000), 'the first lock was not granted');
  await clock.advance(50);
  const close = async (): Promise<void> => {
    for (const n of nodes) n[HALT]();
    await Promise.all(nodes.map((n) => n.stop().catch(() => undefined)));
    clock.reset();
  };
  return { clock, network, leader, follower, other, sent, close };
}

/** A frame of `from` asking the leader for lock `name` (request `seq` of the holder). */
function request(from: string, to: string, inc: string, seq: number, name: string): string {
  const command: ClientCommand = {
    op: 'acquire',
    holder: { node: from, incarnation: HOLDER_INC },
    seq,
    acked: 1,
    name,
    ttlMs: 1000,
    wait: true,
  };
  return encodeFrame({
    v: PROTOCOL_VERSION,
    cluster: 'synod',
    from,
    to,
    inc,
    msg: { type: 'lock.request', commands: [command] },
  });
}

/** The log slots (Accepts with entries, to `to`) that carried lock `names`, by slot. */
function slotsOf(sent: readonly Sent[], from: string, to: string, prefix: string): string[][] {
  const slots: string[][] = [];
  for (const s of sent) {
    if (s.from !== from || s.to !== to || s.msg.type !== 'log.accept') continue;
    for (const entry of s.msg.entries ?? []) {
      const names = entry.value.flatMap((c) =>
        typeof c.name === 'string' && c.name.startsWith(prefix) ? [c.name] : [],
      );
      if (names.length > 0) slots.push(names);
    }
  }
  return slots;
}

describe('frames of one turn', () => {
  let close: (() => Promise<void>) | null = null;

  afterEach(async () => {
    await close?.();
    close = null;
  });

  it('gives lock requests of one node that reach the leader in one turn one log slot', async () => {
    const c = await serving();
    close = c.close;
    const { network, leader, follower, other, sent, clock } = c;
    const inc = follower.incarnation ?? '';
    sent.length = 0;
    const names = Array.from({ length: 10 }, (_, i) => `together-${String(i)}`);
    names.forEach((name, i) => {
      network.inject(follower.id, leader.id, request(follower.id, leader.id, inc, 100 + i, name));
    });
    await clock.advance(20);
    assert.deepEqual(slotsOf(sent, leader.id, other.id, 'together-'), [names]);
  });

  it("sends a follower's lock calls of one turn to the leader in one frame, and they share a slot", async () => {
    const c = await serving();
    close = c.close;
    const { leader, follower, other, sent, clock } = c;
    sent.length = 0;
    const names = Array.from({ length: 10 }, (_, i) => `remote-${String(i)}`);
    const locks = names.map((name) => follower.acquireLock(name, { ttlMs: 1000 }));
    await clock.advance(20);
    assert.equal((await Promise.all(locks)).length, 10);
    const requests = sent.filter(
      (s) => s.from === follower.id && s.to === leader.id && s.msg.type === 'lock.request',
    );
    assert.deepEqual(
      requests.map((r) => (r.msg as unknown as { commands: { name: string }[] }).commands.length),
      [10],
    );
    assert.deepEqual(slotsOf(sent, leader.id, other.id, 'remote-'), [names]);
  });

  it("puts the leader's own lock calls made while four slots are in flight into one slot", async () => {
    const c = await serving();
    close = c.close;
    const { leader, other, sent, clock } = c;
    sent.length = 0;
    const names = Array.from({ length: 10 }, (_, i) => `local-${String(i)}`);
    const locks = names.map((name) => leader.acquireLock(name, { ttlMs: 1000 }));
    await clock.advance(20);
    assert.equal((await Promise.all(locks)).length, 10);
    // Four slots go out at once; the six calls made meanwhile wait for the first to be chosen.
    assert.deepEqual(slotsOf(sent, leader.id, other.id, 'local-'), [
      ...names.slice(0, 4).map((n) => [n]),
      names.slice(4),
    ]);
  });

  it('gives requests that arrive in turns of their own a slot each (the pipeline has room)', async () => {
    const c = await serving();
    close = c.close;
    const { network, leader, follower, other, sent, clock } = c;
    const inc = follower.incarnation ?? '';
    sent.length = 0;
    const names = Array.from({ length: 4 }, (_, i) => `apart-${String(i)}`);
    for (const [i, name] of names.entries()) {
      network.inject(follower.id, leader.id, request(follower.id, leader.id, inc, 100 + i, name));
      await Promise.resolve();
    }
    await clock.advance(20);
    assert.deepEqual(
      slotsOf(sent, leader.id, other.id, 'apart-'),
      names.map((n) => [n]),
    );
  });
});
