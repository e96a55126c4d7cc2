/**
 * The codec's cost per frame, in one process: `node dist-test/test/bench/codec.js`.
 *
 * Encodes and decodes the frames a lock cycle is made of (a leader's Accept carrying a batch of
 * 20 commands, a follower's Accepted, a holder's request, the leader's reply) and prints the
 * microseconds each takes, after a warm-up. `encodeMessage` + `encodeFrameWith` is what the
 * runtime does for a message it sends to several nodes: the message once, then a frame per node.
 */
import process from 'node:process';
import { pathToFileURL } from 'node:url';
import {
  decodeFrame,
  encodeFrame,
  encodeFrameWith,
  encodeMessage,
  PROTOCOL_VERSION,
  type Frame,
  type ProtocolMessage,
} from '../../lib/codec/messages.js';
import type { LockCommand } from '../../lib/locks/commands.js';
import type { ClientCommand } from '../../lib/locks/messages.js';

const INC = '0123456789abcdef';
const HOLDER = { node: 'n1', incarnation: INC };
const BALLOT = { round: 5, node: 'n1', incarnation: INC };

function acquire(i: number): LockCommand {
  const name = `distinct-leader-d${String(i)}`;
  return {
    op: 'acquire',
    holder: HOLDER,
    seq: 1000 + i,
    acked: 990,
    name,
    ttlMs: 5000,
    wait: true,
  };
}

function clientRelease(i: number): ClientCommand {
  const name = `distinct-leader-d${String(i)}`;
  return { op: 'release', holder: HOLDER, seq: 2000 + i, acked: 990, name, token: 10n ** 15n };
}

function release(i: number): LockCommand {
  return clientRelease(i);
}

const BATCH = [
  ...Array.from({ length: 10 }, (_, i) => acquire(i)),
  ...Array.from({ length: 10 }, (_, i) => release(i)),
];

export const SAMPLES: readonly (readonly [string, ProtocolMessage])[] = [
  [
    'log.accept, 20 commands',
    {
      type: 'log.accept',
      ballot: BALLOT,
      attempt: 77,
      entries: [{ slot: 9, value: BATCH }],
      commit: 8,
    },
  ],
  ['log.accepted', { type: 'log.accepted', ballot: BALLOT, attempt: 77, applied: 8 }],
  ['lock.request, 1 command', { type: 'lock.request', commands: [clientRelease(1)] }],
  [
    'lock.reply, 1 reply',
    {
      type: 'lock.reply',
      incarnation: INC,
      replies: [{ type: 'granted', seq: 1, name: 'a', token: 10n ** 15n, ttlMs: 5000, version: 9 }],
    },
  ],
];

const EXPECT = { cluster: 'synod', self: 'n2', peers: new Set(['n1', 'n3']) };

function frame(msg: ProtocolMessage): Frame {
  return { v: PROTOCOL_VERSION, cluster: 'synod', from: 'n1', to: 'n2', inc: INC, msg };
}

/** Microseconds per call of `run`, over about `ms` of calls after a warm-up. */
function time(run: () => void, ms = 300): number {
  const until = performance.now() + ms / 3;
  while (performance.now() < until) run();
  let calls = 0;
  const began = performance.now();
  let now = began;
  while (now - began < ms) {
    for (let i = 0; i < 100; i++) run();
    calls += 100;
    now = performance.now();
  }
  return ((now - began) * 1000) / calls;
}

function main(): void {
  console.log('frame                        bytes  encode µs  encode ×2 once µs  decode µs');
  for (const [name, msg] of SAMPLES) {
    const f = frame(msg);
    const text = encodeFrame(f);
    const { msg: _, ...envelope } = f;
    const encode = time(() => encodeFrame(f));
    const twice = time(() => {
      const once = encodeMessage(msg);
      encodeFrameWith(envelope, once);
      encodeFrameWith({ ...envelope, to: 'n3' }, once);
    });
    const decode = time(() => {
      if (!decodeFrame(text, EXPECT).ok) throw new Error(`${name} does not decode`);
    });
    console.log(
      `${name.padEnd(28)} ${String(text.length).padStart(5)}  ${encode.toFixed(2).padStart(9)}  ` +
        `${twice.toFixed(2).padStart(17)}  ${decode.toFixed(2).padStart(9)}`,
    );
  }
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) main();
