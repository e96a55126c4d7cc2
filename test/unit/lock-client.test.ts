import assert from 'node:assert/strict';
import { LockClient, type LockClientSink } from '../../lib/locks/client.js';
import type { LockMessage } from '../../lib/locks/messages.js';
import type { Owner } from '../../lib/types.js';

/** The holder's side of the lock service, driven by hand: where its requests go, and when. */

const A: Owner = { node: 'a', incarnation: '00000000000000a1' };
const RETRY_MS = 100;

function client(): LockClient {
  return new LockClient({ owner: A, maxClockDrift: 0.01, marginMs: 10, retryMs: RETRY_MS });
}

function sink(): LockClientSink {
  return { send: [], events: [] };
}

/** Who each request frame went to. */
function targets(s: LockClientSink): string[] {
  return s.send.filter((e) => e.message.type === 'lock.request').map((e) => e.to);
}

function redirect(leader: string | null, seqs = [1]): LockMessage {
  return { type: 'lock.redirect', incarnation: A.incarnation, seqs, leader };
}

describe('LockClient', () => {
  it('follows a redirect to the leader it names, even while the lease still names another', () => {
    const c = client();
    const s = sink();
    c.setLeader('n5', 0, s);
    c.acquire('x', 1000, true, 0, s);
    assert.deepEqual(targets(s), ['n5']);
    const hop = sink();
    c.handle('n5', redirect('n4'), 1, hop);
    assert.deepEqual(targets(hop), ['n4']);
    // The replica tells the client the lease's view on every step: the same view again does
    // not take the request back to the node that just sent it away.
    const same = sink();
    c.setLeader('n5', 2, same);
    c.tick(2, same);
    assert.deepEqual(targets(same), []);
    // A new view does.
    const changed = sink();
    c.setLeader('n3', 3, changed);
    assert.deepEqual(targets(changed), ['n3']);
  });

  it('follows redirects at most four times a retry interval: two nodes that name each other do not bounce a request at the speed of the network', () => {
    const c = client();
    const s = sink();
    c.setLeader('n5', 0, s);
    c.acquire('x', 1000, true, 0, s);
    let from = 'n5';
    let to = 'n4';
    const sentAt: number[] = [];
    for (let t = 1; t <= 4 * RETRY_MS; t++) {
      const step = sink();
      // Whoever has the request names the other one as leader, at once.
      if (t === 1 || sentAt.length > 0) c.handle(from, redirect(to), t, step);
      c.tick(t, step);
      const sent = targets(step);
      if (sent.length > 0) {
        sentAt.push(t);
        [from, to] = [to, from];
        assert.deepEqual(sent, [from]);
      }
    }
    // 400 ms of ping-pong: about 16 sends, not 400.
    assert.ok(sentAt.length <= 17, `${sentAt.length} sends`);
    assert.ok(sentAt.length >= 12, `${sentAt.length} sends: still makes progress`);
  });

  it('after a redirect that names no leader, tries again after the retry interval, at the lease’s leader', () => {
    const c = client();
    const s = sink();
    c.setLeader('n5', 0, s);
    c.acquire('x', 1000, true, 0, s);
    const hop = sink();
    c.handle('n5', redirect('n4'), 1, hop);
    assert.deepEqual(targets(hop), ['n4']);
    const none = sink();
    c.handle('n4', redirect(null), 2, none);
    assert.deepEqual(targets(none), []);
    const early = sink();
    c.tick(2 + RETRY_MS - 1, early);
    assert.deepEqual(targets(early), []);
    const retry = sink();
    c.tick(2 + RETRY_MS, retry);
    assert.deepEqual(targets(retry), ['n5']);
  });
});
