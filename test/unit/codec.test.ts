import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import sinon from 'sinon';
import {
  DEFAULT_MAX_FRAME_BYTES,
  decodeFrame,
  encodeEnvelope,
  encodeFrame,
  encodeFrameWith,
  encodeMessage,
  MAX_ARRAY_ITEMS,
  MAX_ROUND,
  MAX_TTL_MS,
  MAX_VALUE_BYTES,
  PROTOCOL_VERSION,
  type DecodeExpectations,
  type Frame,
  type ProtocolMessage,
} from '../../lib/codec/messages.js';
import { InvalidMessageError, InvariantError } from '../../lib/errors.js';
import type { LockCommand, LockReply } from '../../lib/locks/commands.js';
import type { ClientCommand } from '../../lib/locks/messages.js';
import { MAX_SNAPSHOT_PART_CHARS, MAX_SNAPSHOT_PARTS } from '../../lib/log/snapshot.js';
import type { Ballot } from '../../lib/paxos/ballot.js';
import { isValidMessage, textDepth } from '../fuzz/corpus.js';
import { lockArbitraries } from './codec-arbitraries.js';

const INC_A = '00000000000000a1';
const INC_B = '00000000000000b2';
const BALLOT: Ballot = { round: 7, node: 'a', incarnation: INC_A };
const OWNER = { node: 'a', incarnation: INC_A };
const EXPECT: DecodeExpectations = { cluster: 'prod', self: 'b', peers: new Set(['a', 'c']) };

function frame(msg: ProtocolMessage): Frame {
  return { v: PROTOCOL_VERSION, cluster: 'prod', from: 'a', to: 'b', inc: INC_A, msg };
}

const MIN_TOKEN = -(2n ** 63n);
const MAX_TOKEN = 2n ** 63n - 1n;
const CLIENT = { holder: OWNER, seq: 4, acked: 2 };
/** One command of every op, in this order (tests below index into it). */
const COMMANDS: readonly LockCommand[] = [
  { op: 'acquire', ...CLIENT, name: 'jobs/nightly', ttlMs: 30_000, wait: true },
  { op: 'release', ...CLIENT, name: 'jobs/nightly', token: 12n },
  {
    op: 'renew',
    ...CLIENT,
    locks: [
      { name: 'a', token: 1n },
      { name: 'b', token: MIN_TOKEN },
    ],
  },
  { op: 'cancel', ...CLIENT, target: 3 },
  { op: 'expire', name: 'x', token: MAX_TOKEN, version: 9 },
  { op: 'retire', holders: [OWNER, { node: 'c', incarnation: INC_B }] },
  { op: 'epoch', base: 1_700_000_000_000n << 16n },
];
const CLIENT_COMMANDS = COMMANDS.slice(0, 4) as readonly ClientCommand[];
/** One reply of every type, in this order. */
const REPLIES: readonly LockReply[] = [
  { type: 'granted', seq: 4, name: 'jobs/nightly', token: 12n, ttlMs: 30_000, version: 3 },
  { type: 'queued', seq: 5, name: 'a' },
  { type: 'busy', seq: 6, name: 'a' },
  { type: 'ended', seq: 7, name: 'a' },
  { type: 'released', seq: 8, name: 'a' },
  { type: 'not-held', seq: 9, name: 'a' },
  { type: 'renewed', seq: 10, versions: [11, null] },
  { type: 'cancelled', seq: 12, target: 5, was: 'unknown' },
  { type: 'stale', seq: 1 },
];

/** One message of every type, and the nullable fields both ways. */
const MESSAGES: ProtocolMessage[] = [
  { type: 'lease.prepare', ballot: BALLOT },
  { type: 'lease.promise', ballot: BALLOT, accepted: null, maxRound: 0, termSeen: 0 },
  {
    type: 'lease.promise',
    ballot: BALLOT,
    accepted: { ballot: { ...BALLOT, round: 5 }, value: { owner: OWNER, leaseMs: 1000, term: 5 } },
    maxRound: 6,
    termSeen: 0,
  },
  { type: 'lease.accept', ballot: BALLOT, value: { owner: OWNER, leaseMs: 1000, term: 7 } },
  { type: 'lease.accepted', ballot: BALLOT, maxRound: 7 },
  {
    type: 'lease.reject',
    ballot: BALLOT,
    phase: 'prepare',
    promised: null,
    holder: null,
    maxRound: 0,
    termSeen: 0,
  },
  {
    type: 'lease.reject',
    ballot: BALLOT,
    phase: 'accept',
    promised: { round: 9, node: 'c', incarnation: INC_B },
    holder: { node: 'c', incarnation: INC_B },
    maxRound: 9,
    termSeen: 0,
  },
  { type: 'lease.chosen', ballot: BALLOT, term: 7 },
  { type: 'lease.release', owner: OWNER, ballot: BALLOT, successor: null },
  { type: 'lease.release', owner: OWNER, ballot: BALLOT, successor: 'c' },
  { type: 'lease.recover', incarnation: OWNER.incarnation },
  { type: 'lease.recovery', incarnation: OWNER.incarnation, maxRound: 12, recovered: false },
  { type: 'paxos.prepare', instance: 0, ballot: BALLOT },
  { type: 'paxos.promise', instance: 3, ballot: BALLOT, accepted: null },
  {
    type: 'paxos.promise',
    instance: 3,
    ballot: BALLOT,
    accepted: { ballot: { ...BALLOT, round: 2 }, value: '{"cmd":"acquire"}' },
  },
  { type: 'paxos.accept', instance: 3, ballot: BALLOT, value: '' },
  { type: 'paxos.accepted', instance: 3, ballot: BALLOT },
  {
    type: 'paxos.reject',
    instance: 3,
    ballot: BALLOT,
    promised: { round: 8, node: 'c', incarnation: INC_B },
  },
  { type: 'log.prepare', ballot: BALLOT, attempt: 1, from: 5 },
  {
    type: 'log.promise',
    ballot: BALLOT,
    attempt: 1,
    from: 5,
    entries: [
      { slot: 5, ballot: { ...BALLOT, round: 3 }, value: COMMANDS },
      { slot: 6, ballot: BALLOT, value: null },
      { slot: 7, ballot: BALLOT, value: [] },
    ],
    next: 8,
    floor: 4,
    applied: 4,
    maxRound: 7,
    lossy: false,
  },
  {
    type: 'log.promise',
    ballot: BALLOT,
    attempt: 2,
    from: 0,
    entries: [],
    next: null,
    floor: 0,
    applied: 0,
    maxRound: 0,
    lossy: true,
  },
  { type: 'log.recover', incarnation: INC_B, from: 0 },
  {
    type: 'log.recovery',
    incarnation: INC_B,
    voting: true,
    promised: BALLOT,
    maxRound: 9,
    floor: 4,
    from: 0,
    entries: [{ slot: 5, ballot: BALLOT, value: COMMANDS }],
    next: 6,
  },
  {
    type: 'log.accept',
    ballot: BALLOT,
    attempt: 3,
    entries: [
      { slot: 9, value: COMMANDS },
      { slot: 10, value: null },
    ],
    commit: 8,
  },
  { type: 'log.accept', ballot: BALLOT, attempt: 4, entries: [], commit: 10 },
  { type: 'log.accepted', ballot: BALLOT, attempt: 3, applied: 8 },
  { type: 'log.reject', ballot: BALLOT, attempt: 3, promised: null, maxRound: 7 },
  {
    type: 'log.reject',
    ballot: BALLOT,
    attempt: 3,
    promised: { round: 8, node: 'c', incarnation: INC_B },
    maxRound: 8,
  },
  { type: 'log.fetch', from: 11 },
  { type: 'log.chosen', entries: [{ slot: 11, value: COMMANDS.slice(4) }] },
  { type: 'log.snapshot-fetch', slot: 0, part: 0 },
  { type: 'log.snapshot', slot: 64, part: 2, parts: 3, data: 'eyJsb2NrcyI6W119' },
  { type: 'log.snapshot', slot: 64, part: 0, parts: 1, data: '' },
  { type: 'lock.request', commands: CLIENT_COMMANDS },
  { type: 'lock.reply', incarnation: INC_A, replies: REPLIES },
  { type: 'lock.redirect', incarnation: INC_A, seqs: [4, 5], leader: 'c' },
  { type: 'lock.redirect', incarnation: INC_A, seqs: [], leader: null },
  { type: 'lock.read', incarnation: INC_A, id: 1, name: 'jobs/nightly' },
  {
    type: 'lock.view',
    incarnation: INC_A,
    id: 1,
    name: 'jobs/nightly',
    holder: null,
    token: null,
    waiters: 0,
  },
  {
    type: 'lock.view',
    incarnation: INC_A,
    id: 2,
    name: 'jobs/nightly',
    holder: { node: 'c', incarnation: INC_B },
    token: 5n,
    waiters: 3,
  },
];

/** The `nth` sample message of `type`. */
function sample(type: ProtocolMessage['type'], nth = 0): ProtocolMessage {
  const found = MESSAGES.filter((m) => m.type === type)[nth];
  assert.ok(found, `no sample ${type} #${nth}`);
  return found;
}

/** The frame as a mutable JSON tree, for tests that break one field. */
type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = Record<string, Json>;

function tree(f: Frame = frame({ type: 'lease.prepare', ballot: BALLOT })): JsonObject {
  return JSON.parse(encodeFrame(f)) as JsonObject;
}

function child(obj: JsonObject, key: string): JsonObject {
  const value = obj[key];
  assert.ok(typeof value === 'object' && value !== null && !Array.isArray(value), key);
  return value;
}

function rejects(text: string, pattern: RegExp, expect: DecodeExpectations = EXPECT): void {
  const result = decodeFrame(text, expect);
  assert.equal(result.ok, false, `accepted: ${text.slice(0, 200)}`);
  assert.ok(result.error instanceof InvalidMessageError);
  assert.equal(result.error.code, 'SYNOD_INVALID_MESSAGE');
  assert.match(result.error.message, pattern);
}

/** Changes the tree with `edit`, then expects the frame to be refused with `pattern`. */
function rejectsEdit(
  pattern: RegExp,
  edit: (t: JsonObject) => void,
  base?: Frame,
  expect: DecodeExpectations = EXPECT,
): void {
  const t = tree(base);
  edit(t);
  rejects(JSON.stringify(t), pattern, expect);
}

/** The object or array at `path` in a tree (keys and indices). */
function dig(t: Json, path: readonly (string | number)[]): JsonObject | Json[] {
  let at: Json | undefined = t;
  for (const step of path) {
    assert.ok(typeof at === 'object' && at !== null, `no ${String(step)} in ${path.join('.')}`);
    at = Array.isArray(at) ? at[step as number] : at[step as string];
  }
  assert.ok(typeof at === 'object' && at !== null, path.join('.'));
  return at;
}

/** Sets the field at `path` (its last step names it) of the tree; returns the tree. */
function put(t: JsonObject, path: readonly (string | number)[], value: Json): JsonObject {
  const parent = dig(t, path.slice(0, -1));
  const last = path[path.length - 1];
  if (Array.isArray(parent)) parent[last as number] = value;
  else parent[last as string] = value;
  return t;
}

/** Whether the frame decodes once the field at `path` holds `value`. */
function acceptsWith(
  base: Frame,
  path: readonly (string | number)[],
  value: Json,
  expect: DecodeExpectations = EXPECT,
): DecodeResultOk {
  const t = tree(base);
  put(t, path, value);
  const result = decodeFrame(JSON.stringify(t), expect);
  assert.ok(result.ok, result.ok ? '' : `${path.join('.')}: ${result.error.message}`);
  return result;
}

type DecodeResultOk = Extract<ReturnType<typeof decodeFrame>, { ok: true }>;

/** Expectations with room for frames far above the default size limit. */
const ROOMY: DecodeExpectations = { ...EXPECT, maxBytes: 64 << 20 };

describe('codec: frames', function () {
  it('names a stable reason for every kind of refusal, for the counters', function () {
    const reason = (text: string): string => {
      const result = decodeFrame(text, EXPECT);
      if (result.ok) assert.fail(`accepted: ${text.slice(0, 80)}`);
      return result.reason;
    };
    const edited = (edit: (t: JsonObject) => void): string => {
      const t = tree();
      edit(t);
      return JSON.stringify(t);
    };
    assert.equal(reason('x'.repeat(70_000)), 'oversized');
    assert.equal(reason('{"v":1,'), 'malformed');
    assert.equal(reason('['.repeat(20) + ']'.repeat(20)), 'malformed');
    assert.equal(reason(edited((t) => (t['v'] = 2))), 'version');
    assert.equal(reason(edited((t) => (t['cluster'] = 'other'))), 'cluster');
    assert.equal(reason(edited((t) => (t['to'] = 'zz'))), 'misaddressed');
    assert.equal(reason(edited((t) => (t['from'] = 'zz'))), 'sender');
    assert.equal(reason(edited((t) => (t['from'] = EXPECT.self))), 'sender');
    assert.equal(reason(edited((t) => (child(t, 'msg')['type'] = 'lease.nope'))), 'schema');
  });

  describe('round trips', function () {
    for (const msg of MESSAGES) {
      const nulls = Object.entries(msg)
        .filter(([, value]) => value === null)
        .map(([key]) => key);
      const variant = nulls.length > 0 ? ` with ${nulls.join(', ')} null` : '';
      it(`round-trips ${msg.type}${variant}`, function () {
        const f = frame(msg);
        const text = encodeFrame(f);
        const result = decodeFrame(text, EXPECT);
        assert.ok(result.ok, result.ok ? '' : result.error.message);
        assert.deepEqual(result.frame, f);
        assert.equal(encodeFrame(result.frame), text);
      });
    }

    it('encodes the envelope and message fields in schema order, type first', function () {
      const text = encodeFrame(frame({ type: 'lease.chosen', ballot: BALLOT, term: 7 }));
      assert.equal(
        text,
        '{"v":1,"cluster":"prod","from":"a","to":"b","inc":"00000000000000a1",' +
          '"msg":{"type":"lease.chosen","ballot":{"round":7,"node":"a","incarnation":"00000000000000a1"},"term":7}}',
      );
    });

    it('leaves out properties the schema does not know when encoding', function () {
      const msg = { type: 'lease.prepare', ballot: { ...BALLOT, extra: 1 }, note: 'x' } as const;
      // Structural typing lets such objects reach encodeFrame from a variable.
      const withExtras = { ...frame(msg), debug: true };
      const text = encodeFrame(withExtras);
      assert.doesNotMatch(text, /extra|note|debug/);
      assert.ok(decodeFrame(text, EXPECT).ok);
    });

    it('refuses to encode a frame that would not decode', function () {
      const bad = frame({ type: 'lease.chosen', ballot: { ...BALLOT, round: -1 }, term: 7 });
      assert.throws(() => encodeFrame(bad), InvariantError);
      assert.throws(() => encodeFrame({ ...frame(sample('lease.prepare')), inc: 'XYZ' }), /inc/);
      // The same, with the message encoded once for several frames.
      assert.throws(
        () => encodeMessage(bad.msg),
        (error: unknown) =>
          error instanceof InvariantError && error.message.includes('msg.ballot.round'),
      );
      const { msg, ...envelope } = frame(sample('lease.prepare'));
      assert.throws(() => encodeFrameWith({ ...envelope, inc: 'XYZ' }, encodeMessage(msg)), /inc/);
      assert.throws(() => encodeEnvelope({ ...envelope, to: '' }), InvariantError);
    });

    it('writes a message encoded once into each frame as encodeFrame writes the whole frame', function () {
      for (const msg of MESSAGES) {
        const encoded = encodeMessage(msg);
        for (const to of ['b', 'c']) {
          const { msg: _, ...envelope } = frame(msg);
          const whole = encodeFrame({ ...frame(msg), to });
          assert.equal(encodeFrameWith({ ...envelope, to }, encoded), whole, msg.type);
          assert.equal(
            encodeFrameWith(encodeEnvelope({ ...envelope, to }), encoded),
            whole,
            msg.type,
          );
        }
      }
    });

    it('refuses rounds and terms above 2^52, so adopting one can never overflow', function () {
      for (const round of [MAX_ROUND + 1, Number.MAX_SAFE_INTEGER]) {
        const text = encodeFrame(frame({ type: 'lease.prepare', ballot: { ...BALLOT, round } }));
        assert.equal(decodeFrame(text, EXPECT).ok, false, `round ${round}`);
      }
    });

    it('accepts the bounds of every number', function () {
      const big = MAX_ROUND;
      const msgs: ProtocolMessage[] = [
        {
          type: 'lease.accept',
          ballot: { ...BALLOT, round: big },
          value: { owner: OWNER, leaseMs: 3_600_000, term: big },
        },
        { type: 'lease.accept', ballot: BALLOT, value: { owner: OWNER, leaseMs: 1, term: 1 } },
        { type: 'paxos.accepted', instance: big, ballot: { ...BALLOT, round: 0 } },
        {
          type: 'paxos.accept',
          instance: 0,
          ballot: BALLOT,
          value: 'é'.repeat(MAX_VALUE_BYTES / 2),
        },
      ];
      for (const msg of msgs) assert.ok(decodeFrame(encodeFrame(frame(msg)), EXPECT).ok);
    });

    it('accepts ids of 64 characters, including non-ASCII ones', function () {
      const long = 'n'.repeat(63) + 'ü';
      const f: Frame = { ...frame(sample('lease.prepare')), cluster: long, from: long };
      const result = decodeFrame(encodeFrame(f), {
        ...EXPECT,
        cluster: long,
        peers: new Set([long]),
      });
      assert.ok(result.ok);
    });

    it('turns a -0 into 0', function () {
      const text = encodeFrame(frame({ type: 'paxos.prepare', instance: 0, ballot: BALLOT }));
      const result = decodeFrame(text.replace('"instance":0', '"instance":-0'), EXPECT);
      assert.ok(result.ok);
      assert.ok(Object.is((result.frame.msg as { instance: number }).instance, 0));
    });
  });

  describe('rejections before parsing', function () {
    it('rejects input that is not a string', function () {
      for (const input of [undefined, null, 1, {}, Buffer.from('{}')]) {
        const result = decodeFrame(input as string, EXPECT);
        assert.equal(result.ok, false);
      }
    });

    it('rejects a frame over the size limit without parsing it', function () {
      const parse = sinon.spy(JSON, 'parse');
      try {
        rejects(' '.repeat(DEFAULT_MAX_FRAME_BYTES + 1), /larger than 65536 bytes/);
        rejects(encodeFrame(frame(sample('lease.prepare'))), /larger than 50 bytes/, {
          ...EXPECT,
          maxBytes: 50,
        });
        assert.equal(parse.callCount, 0);
      } finally {
        parse.restore();
      }
    });

    it('counts the size in UTF-8 bytes, not characters', function () {
      const text = encodeFrame(
        frame({ type: 'paxos.accept', instance: 0, ballot: BALLOT, value: '€'.repeat(100) }),
      );
      const bytes = Buffer.byteLength(text, 'utf8');
      assert.ok(text.length < bytes);
      assert.ok(decodeFrame(text, { ...EXPECT, maxBytes: bytes }).ok);
      rejects(text, /larger than/, { ...EXPECT, maxBytes: bytes - 1 });
      rejects(text, /larger than/, { ...EXPECT, maxBytes: Number.NaN });
    });

    it('rejects deep nesting without parsing it', function () {
      const parse = sinon.spy(JSON, 'parse');
      try {
        rejects('['.repeat(20_000) + ']'.repeat(20_000), /nested deeper than/);
        rejects('{"a":'.repeat(11) + '1' + '}'.repeat(11), /nested deeper than/);
        assert.equal(parse.callCount, 0);
      } finally {
        parse.restore();
      }
      // Brackets inside strings do not count.
      const f = frame({
        type: 'paxos.accept',
        instance: 0,
        ballot: BALLOT,
        value: '[{"\\'.repeat(50),
      });
      assert.ok(decodeFrame(encodeFrame(f), EXPECT).ok);
    });

    it('rejects text that is not JSON, without quoting it', function () {
      const secret = 'x'.repeat(40) + 'SECRET';
      rejects(secret, /^invalid frame: not valid JSON$/);
      rejects('', /not valid JSON/);
      rejects('{"v":1,', /not valid JSON/);
    });
  });

  describe('rejections of the envelope', function () {
    it('rejects a top level that is not an object', function () {
      for (const text of ['[]', 'null', '1', '"frame"', 'true'])
        rejects(text, /expected an object/);
    });

    it('rejects unknown and missing envelope keys', function () {
      rejectsEdit(/unknown key "extra"/, (t) => {
        t['extra'] = 1;
      });
      for (const key of ['v', 'cluster', 'from', 'to', 'inc', 'msg']) {
        rejectsEdit(new RegExp(`^invalid frame: ${key}: missing$`), (t) => {
          t[key] = null;
          Reflect.deleteProperty(t, key);
        });
      }
    });

    it('rejects a __proto__ key rather than letting it through', function () {
      const text = encodeFrame(frame(sample('lease.prepare'))).replace(
        '{"v":1',
        '{"__proto__":{"admin":true},"v":1',
      );
      rejects(text, /unknown key "__proto__"/);
    });

    it('rejects another protocol version', function () {
      for (const v of [0, 2, '1', 1.5, null]) {
        rejectsEdit(/^invalid frame: v: unsupported protocol version/, (t) => {
          t['v'] = v;
        });
      }
    });

    it('rejects a frame for another cluster, another node, or from outside the cluster', function () {
      rejectsEdit(/^invalid frame: cluster: another cluster$/, (t) => {
        t['cluster'] = 'staging';
      });
      rejectsEdit(/^invalid frame: to: addressed to another node$/, (t) => {
        t['to'] = 'c';
      });
      rejectsEdit(/^invalid frame: from: claims to come from this node$/, (t) => {
        t['from'] = 'b';
      });
      rejectsEdit(/^invalid frame: from: not a peer of this node$/, (t) => {
        t['from'] = 'mallory';
      });
    });

    it('rejects ids that are empty, too long or not strings', function () {
      for (const key of ['cluster', 'from', 'to']) {
        for (const bad of ['', 'x'.repeat(65), 7, null, ['a']]) {
          rejectsEdit(new RegExp(`^invalid frame: ${key}: expected an id of 1 to 64`), (t) => {
            t[key] = bad;
          });
        }
      }
    });

    it('rejects an incarnation that is not 16 lowercase hex digits', function () {
      for (const bad of [
        '00000000000000A1',
        '00000000000000a',
        '00000000000000a12',
        'g000000000000000',
        1,
        null,
      ]) {
        rejectsEdit(/^invalid frame: inc: expected 16 lowercase hex digits$/, (t) => {
          t['inc'] = bad;
        });
      }
    });
  });

  describe('rejections of messages', function () {
    it('rejects a message that is not an object', function () {
      for (const bad of [null, 'lease.prepare', [], 3]) {
        rejectsEdit(/^invalid frame: msg: expected an object$/, (t) => {
          t['msg'] = bad;
        });
      }
    });

    it('rejects an unknown or missing message type, including inherited names', function () {
      for (const bad of ['lease.nope', '__proto__', 'constructor', 'toString', '']) {
        rejectsEdit(/^invalid frame: msg\.type: unknown message type/, (t) => {
          child(t, 'msg')['type'] = bad;
        });
      }
      rejectsEdit(/^invalid frame: msg\.type: expected a string$/, (t) => {
        Reflect.deleteProperty(child(t, 'msg'), 'type');
      });
    });

    it('rejects unknown and missing keys in messages and nested objects', function () {
      rejectsEdit(/^invalid frame: msg: unknown key "extra"$/, (t) => {
        child(t, 'msg')['extra'] = 1;
      });
      rejectsEdit(/^invalid frame: msg\.ballot: unknown key "extra"$/, (t) => {
        child(child(t, 'msg'), 'ballot')['extra'] = 1;
      });
      rejectsEdit(/^invalid frame: msg\.ballot: missing$/, (t) => {
        Reflect.deleteProperty(child(t, 'msg'), 'ballot');
      });
      rejectsEdit(/^invalid frame: msg\.ballot\.incarnation: missing$/, (t) => {
        Reflect.deleteProperty(child(child(t, 'msg'), 'ballot'), 'incarnation');
      });
      const promise = sample('lease.promise', 1);
      rejectsEdit(
        /^invalid frame: msg\.accepted\.value\.owner: unknown key "admin"$/,
        (t) => {
          child(child(child(child(t, 'msg'), 'accepted'), 'value'), 'owner')['admin'] = true;
        },
        frame(promise),
      );
      rejectsEdit(
        /^invalid frame: msg\.accepted\.value\.term: missing$/,
        (t) => {
          Reflect.deleteProperty(child(child(child(t, 'msg'), 'accepted'), 'value'), 'term');
        },
        frame(promise),
      );
    });

    it('rejects rounds, instances and maxRound that are not integers from 0 to 2^52', function () {
      const cases: [ProtocolMessage, (t: JsonObject) => JsonObject, string, RegExp][] = [
        [
          sample('lease.prepare'),
          (t) => child(child(t, 'msg'), 'ballot'),
          'round',
          /msg\.ballot\.round/,
        ],
        [sample('paxos.prepare'), (t) => child(t, 'msg'), 'instance', /msg\.instance/],
        [sample('lease.accepted'), (t) => child(t, 'msg'), 'maxRound', /msg\.maxRound/],
      ];
      for (const [msg, at, key, path] of cases) {
        for (const bad of [-1, 1.5, 2 ** 53, 1e300, '1', null, true]) {
          rejectsEdit(
            path,
            (t) => {
              at(t)[key] = bad;
            },
            frame(msg),
          );
        }
        const text = encodeFrame(frame(msg)).replace(new RegExp(`"${key}":\\d+`), `"${key}":1e999`);
        rejects(text, new RegExp(`${key}: expected an integer from 0 to 2\\^52`));
      }
    });

    it('rejects terms that are not integers from 1 to 2^52', function () {
      for (const bad of [0, -1, 2.5, 2 ** 52 + 1, 2 ** 53, '7']) {
        rejectsEdit(
          /^invalid frame: msg\.term: expected an integer from 1 to 2\^52$/,
          (t) => {
            child(t, 'msg')['term'] = bad;
          },
          frame({ type: 'lease.chosen', ballot: BALLOT, term: 7 }),
        );
      }
    });

    it('rejects a lease duration outside 1 to 3600000 ms', function () {
      for (const bad of [0, -1000, 3_600_001, 1000.5, '1000']) {
        rejectsEdit(
          /^invalid frame: msg\.value\.leaseMs: expected an integer from 1 to 3600000$/,
          (t) => {
            child(child(t, 'msg'), 'value')['leaseMs'] = bad;
          },
          frame(sample('lease.accept')),
        );
      }
    });

    it('rejects a phase outside its enum', function () {
      for (const bad of ['commit', 'PREPARE', '', 1, null]) {
        rejectsEdit(
          /^invalid frame: msg\.phase: expected one of prepare, accept$/,
          (t) => {
            child(t, 'msg')['phase'] = bad;
          },
          frame(sample('lease.reject')),
        );
      }
    });

    it('accepts null only where a field is nullable, and checks what is not null', function () {
      const reject = sample('lease.reject');
      rejectsEdit(
        /msg\.promised: expected an object/,
        (t) => (child(t, 'msg')['promised'] = 'b'),
        frame(reject),
      );
      rejectsEdit(
        /msg\.holder\.node: missing/,
        (t) => (child(t, 'msg')['holder'] = {}),
        frame(reject),
      );
      rejectsEdit(
        /msg\.accepted: expected an object/,
        (t) => (child(t, 'msg')['accepted'] = 0),
        frame(sample('lease.promise')),
      );
      const release = sample('lease.release');
      for (const bad of ['', 'x'.repeat(65), 1]) {
        rejectsEdit(
          /msg\.successor: expected an id/,
          (t) => (child(t, 'msg')['successor'] = bad),
          frame(release),
        );
      }
      // paxos.reject always names the promised ballot.
      rejectsEdit(
        /msg\.promised: expected an object/,
        (t) => (child(t, 'msg')['promised'] = null),
        frame(sample('paxos.reject')),
      );
      // Nullable is not optional.
      rejectsEdit(
        /msg\.successor: missing/,
        (t) => Reflect.deleteProperty(child(t, 'msg'), 'successor'),
        frame(release),
      );
    });

    it('rejects a Paxos value over 16 KiB of UTF-8, or not a string', function () {
      const accept = (value: string): Frame =>
        frame({ type: 'paxos.accept', instance: 0, ballot: BALLOT, value });
      // 8193 two-byte characters: under the limit in characters, over it in bytes.
      rejectsEdit(
        /^invalid frame: msg\.value: expected a string of at most 16384 bytes$/,
        (t) => {
          child(t, 'msg')['value'] = 'é'.repeat(MAX_VALUE_BYTES / 2 + 1);
        },
        accept(''),
      );
      rejectsEdit(
        /msg\.value: expected a string/,
        (t) => (child(t, 'msg')['value'] = 1),
        accept(''),
      );
      rejectsEdit(
        /msg\.accepted\.value: expected a string/,
        (t) => {
          child(child(t, 'msg'), 'accepted')['value'] = { big: true };
        },
        frame(sample('paxos.promise', 1)),
      );
    });

    it('quotes at most a short prefix of hostile input in its messages', function () {
      const hostile = 'K'.repeat(10_000);
      const t = tree();
      child(t, 'msg')[hostile] = 1;
      const result = decodeFrame(JSON.stringify(t), EXPECT);
      assert.ok(!result.ok);
      assert.ok(result.error.message.length < 120, result.error.message);
      assert.match(result.error.message, /^invalid frame: msg: unknown key "K{24}"…$/);
      const typed = tree();
      child(typed, 'msg')['type'] = '\u0000\n' + hostile;
      const second = decodeFrame(JSON.stringify(typed), EXPECT);
      assert.ok(!second.ok);
      assert.ok(second.error.message.length < 120);
      assert.doesNotMatch(second.error.message, /\n/);
    });

    it('names the first unknown key of a message with thousands of them', function () {
      const t = tree();
      const msg = child(t, 'msg');
      for (let i = 0; i < 5000; i++) msg[`k${i}`] = i;
      rejects(JSON.stringify(t), /^invalid frame: msg: unknown key "k0"$/);
    });
  });
});

describe('codec: log and lock messages', function () {
  const request = (): Frame => frame(sample('lock.request'));
  const accept = (): Frame => frame(sample('log.accept'));
  const reply = (): Frame => frame(sample('lock.reply'));
  const msg = (...path: (string | number)[]): (string | number)[] => ['msg', ...path];

  describe('arrays', function () {
    /** Every array field: a frame holding one (with items), and the path to it. */
    const ARRAYS: [string, () => Frame, (string | number)[]][] = [
      ['lock.request commands', request, msg('commands')],
      ['renew locks', request, msg('commands', 2, 'locks')],
      ['lock.reply replies', reply, msg('replies')],
      ['renewed versions', reply, msg('replies', 6, 'versions')],
      ['lock.redirect seqs', () => frame(sample('lock.redirect')), msg('seqs')],
      ['log.promise entries', () => frame(sample('log.promise')), msg('entries')],
      ['log.accept entries', accept, msg('entries')],
      ['a slot value (a batch of commands)', accept, msg('entries', 0, 'value')],
      ['retire holders', accept, msg('entries', 0, 'value', 5, 'holders')],
      ['log.chosen entries', () => frame(sample('log.chosen')), msg('entries')],
    ];
    /** The first item of the array at `path`: a valid one. */
    function itemFor(base: Frame, path: (string | number)[]): Json {
      const list = dig(tree(base), path);
      assert.ok(Array.isArray(list) && list[0] !== undefined, path.join('.'));
      return list[0];
    }

    for (const [what, base, path] of ARRAYS) {
      it(`takes up to ${MAX_ARRAY_ITEMS} items in ${what}, and refuses one more`, function () {
        const item = itemFor(base(), path);
        acceptsWith(base(), path, [], ROOMY);
        acceptsWith(base(), path, Array<Json>(MAX_ARRAY_ITEMS).fill(item), ROOMY);
        const at = path.map((p) => (typeof p === 'number' ? `\\[${p}\\]` : `.${p}`)).join('');
        const pattern = new RegExp(
          `^invalid frame: ${at.slice(1).replace(/\.\\\[/g, '\\[')}: expected at most 4096 items$`,
        );
        rejectsEdit(
          pattern,
          (t) => put(t, path, Array<Json>(MAX_ARRAY_ITEMS + 1).fill(item)),
          base(),
          ROOMY,
        );
        for (const bad of [{}, 'x', 1, true]) {
          rejectsEdit(/: expected an array$/, (t) => put(t, path, bad), base(), ROOMY);
        }
      });
    }

    it('refuses null for every array except a slot value (a no-op)', function () {
      for (const [what, base, path] of ARRAYS) {
        if (what.startsWith('a slot value')) {
          acceptsWith(base(), path, null);
        } else {
          rejectsEdit(/: expected an array$/, (t) => put(t, path, null), base());
        }
      }
    });

    it('checks the items of arrays of numbers: seqs and renewed versions', function () {
      const redirect = frame(sample('lock.redirect'));
      for (const bad of [-1, 1.5, 2 ** 53, '1', null, [1]]) {
        rejectsEdit(
          /^invalid frame: msg\.seqs\[1\]: expected an integer from 0 to 2\^52$/,
          (t) => put(t, msg('seqs', 1), bad),
          redirect,
        );
      }
      for (const bad of [-1, 1.5, '1', false]) {
        rejectsEdit(
          /^invalid frame: msg\.replies\[6\]\.versions\[0\]: expected an integer from 0 to 2\^52$/,
          (t) => put(t, msg('replies', 6, 'versions', 0), bad),
          reply(),
        );
      }
      acceptsWith(reply(), msg('replies', 6, 'versions'), [null, 0, MAX_ROUND]);
    });

    it('refuses a whole frame for one bad field deep inside a long array', function () {
      // 4,000 commands: the 3,000th names its holder's incarnation in capitals.
      const commands = Array.from({ length: 4000 }, (_, i) => CLIENT_COMMANDS[i % 4]!);
      const big = frame({ type: 'lock.request', commands });
      const text = encodeFrame(big);
      assert.ok(decodeFrame(text, ROOMY).ok);
      const t = tree(big);
      put(t, msg('commands', 2999, 'holder', 'incarnation'), INC_A.toUpperCase());
      const result = decodeFrame(JSON.stringify(t), ROOMY);
      assert.ok(!result.ok);
      assert.equal(result.reason, 'schema');
      assert.equal(
        result.error.message,
        'invalid frame: msg.commands[2999].holder.incarnation: expected 16 lowercase hex digits',
      );
      assert.ok(!('frame' in result));

      // 3,000 slots of a log.accept: the last one's renew holds a token with a leading zero.
      const entries = Array.from({ length: 3000 }, (_, slot) => ({ slot, value: COMMANDS }));
      const log = frame({ type: 'log.accept', ballot: BALLOT, attempt: 1, entries, commit: 0 });
      assert.ok(decodeFrame(encodeFrame(log), ROOMY).ok);
      rejectsEdit(
        /^invalid frame: msg\.entries\[2999\]\.value\[2\]\.locks\[1\]\.token: expected a decimal integer string$/,
        (t2) => put(t2, msg('entries', 2999, 'value', 2, 'locks', 1, 'token'), '01'),
        log,
        ROOMY,
      );
      // And a version of the 4,096th renewed lock that is not a number.
      const versions = Array<number | null>(MAX_ARRAY_ITEMS).fill(1);
      const renewed = frame({
        type: 'lock.reply',
        incarnation: INC_A,
        replies: [{ type: 'renewed', seq: 1, versions }],
      });
      rejectsEdit(
        /^invalid frame: msg\.replies\[0\]\.versions\[4095\]: expected an integer/,
        (t2) => put(t2, msg('replies', 0, 'versions', 4095), '1'),
        renewed,
      );
    });

    it('refuses to encode an array over the limit, or with holes', function () {
      const seqs = Array<number>(MAX_ARRAY_ITEMS + 1).fill(1);
      const over = frame({ type: 'lock.redirect', incarnation: INC_A, seqs, leader: null });
      assert.throws(() => encodeFrame(over), InvariantError);
      // A hole would be sent as null, which no peer takes for a seq.
      const holes = new Array<number>(3);
      holes[2] = 7;
      const sparse = frame({
        type: 'lock.redirect',
        incarnation: INC_A,
        seqs: holes,
        leader: null,
      });
      assert.throws(() => encodeFrame(sparse), /msg\.seqs\[0\]/);
      assert.throws(() => encodeFrame(sparse), InvariantError);
    });
  });

  describe('tagged unions', function () {
    it('tells commands apart by op, and refuses an unknown or missing op', function () {
      const clientOps =
        /^invalid frame: msg\.commands\[0\]\.op: expected one of acquire, release, renew, cancel$/;
      for (const bad of [
        'steal',
        '',
        'ACQUIRE',
        'acquire ',
        '__proto__',
        'toString',
        1,
        null,
        ['acquire'],
      ]) {
        rejectsEdit(clientOps, (t) => put(t, msg('commands', 0, 'op'), bad), request());
      }
      rejectsEdit(
        clientOps,
        (t) => Reflect.deleteProperty(dig(t, msg('commands', 0)), 'op'),
        request(),
      );
      rejectsEdit(
        /^invalid frame: msg\.commands\[0\]: expected an object$/,
        (t) => put(t, msg('commands', 0), 'acquire'),
        request(),
      );
      // The log takes the leader's own commands as well.
      const allOps =
        /^invalid frame: msg\.entries\[0\]\.value\[0\]\.op: expected one of acquire, release, renew, cancel, expire, retire, abandon, epoch$/;
      rejectsEdit(allOps, (t) => put(t, msg('entries', 0, 'value', 0, 'op'), 'steal'), accept());
    });

    it('refuses the leader-only commands in a lock.request', function () {
      for (const command of COMMANDS.slice(4)) {
        const t = tree(accept());
        const json = dig(t, msg('entries', 0, 'value', COMMANDS.indexOf(command)));
        rejectsEdit(
          /^invalid frame: msg\.commands\[1\]\.op: expected one of acquire, release, renew, cancel$/,
          (r) => put(r, msg('commands', 1), json),
          request(),
        );
      }
    });

    it('refuses a field of another variant, and a missing one of its own', function () {
      const cases: [number, string, Json][] = [
        [0, 'token', '1'], // acquire with release's token
        [1, 'ttlMs', 1000], // release with acquire's TTL
        [1, 'wait', true],
        [2, 'name', 'a'], // renew with a name
        [3, 'locks', []], // cancel with renew's locks
        [0, 'type', 'granted'],
      ];
      for (const [index, key, value] of cases) {
        rejectsEdit(
          new RegExp(`^invalid frame: msg\\.commands\\[${index}\\]: unknown key "${key}"$`),
          (t) => put(t, msg('commands', index, key), value),
          request(),
        );
      }
      // An acquire's fields under release's op.
      rejectsEdit(
        /^invalid frame: msg\.commands\[0\]: unknown key "ttlMs"$/,
        (t) => put(t, msg('commands', 0, 'op'), 'release'),
        request(),
      );
      rejectsEdit(
        /^invalid frame: msg\.commands\[1\]\.token: missing$/,
        (t) => Reflect.deleteProperty(dig(t, msg('commands', 1)), 'token'),
        request(),
      );
      rejectsEdit(
        /^invalid frame: msg\.entries\[0\]\.value\[4\]: unknown key "holder"$/,
        (t) => put(t, msg('entries', 0, 'value', 4, 'holder'), { node: 'a', incarnation: INC_A }),
        accept(),
      );
      rejectsEdit(
        /^invalid frame: msg\.entries\[0\]\.value\[6\]: unknown key "token"$/,
        (t) => put(t, msg('entries', 0, 'value', 6, 'token'), '1'),
        accept(),
      );
    });

    it('tells replies apart by type, and checks each shape', function () {
      const types =
        /^invalid frame: msg\.replies\[0\]\.type: expected one of granted, queued, busy, ended, released, not-held, renewed, cancelled, stale$/;
      for (const bad of ['GRANTED', 'granted ', 'lock.reply', 'hasOwnProperty', '', 0, null]) {
        rejectsEdit(types, (t) => put(t, msg('replies', 0, 'type'), bad), reply());
      }
      rejectsEdit(
        /^invalid frame: msg\.replies\[1\]: unknown key "token"$/,
        (t) => put(t, msg('replies', 1, 'token'), '1'),
        reply(),
      );
      rejectsEdit(
        /^invalid frame: msg\.replies\[8\]: unknown key "name"$/,
        (t) => put(t, msg('replies', 8, 'name'), 'a'),
        reply(),
      );
      rejectsEdit(
        /^invalid frame: msg\.replies\[0\]\.version: missing$/,
        (t) => Reflect.deleteProperty(dig(t, msg('replies', 0)), 'version'),
        reply(),
      );
      for (const bad of ['maybe', 'Queued', null]) {
        rejectsEdit(
          /^invalid frame: msg\.replies\[7\]\.was: expected one of queued, granted, unknown$/,
          (t) => put(t, msg('replies', 7, 'was'), bad),
          reply(),
        );
      }
      // A queued reply turned into a grant lacks the grant's fields.
      rejectsEdit(
        /^invalid frame: msg\.replies\[1\]\.token: missing$/,
        (t) => put(t, msg('replies', 1, 'type'), 'granted'),
        reply(),
      );
    });
  });

  describe('tokens', function () {
    /** Every token position: a frame and the path to its token. */
    const TOKENS: [() => Frame, (string | number)[]][] = [
      [request, msg('commands', 1, 'token')],
      [request, msg('commands', 2, 'locks', 1, 'token')],
      [accept, msg('entries', 0, 'value', 4, 'token')],
      [accept, msg('entries', 0, 'value', 6, 'base')],
      [reply, msg('replies', 0, 'token')],
      [() => frame(sample('lock.view', 1)), msg('token')],
    ];
    const where = (path: (string | number)[]): string =>
      path
        .map((p) => (typeof p === 'number' ? `\\[${p}\\]` : `\\.${p}`))
        .join('')
        .slice(2);

    it('decodes decimal strings of signed 64-bit integers into bigints', function () {
      const edges: [string, bigint][] = [
        ['0', 0n],
        ['1', 1n],
        ['-1', -1n],
        ['9007199254740993', 2n ** 53n + 1n],
        ['9223372036854775807', MAX_TOKEN],
        ['-9223372036854775808', MIN_TOKEN],
      ];
      for (const [base, path] of TOKENS) {
        for (const [text, value] of edges) {
          const result = acceptsWith(base(), path, text);
          const decoded = (
            dig(result.frame as unknown as Json, path.slice(0, -1)) as unknown as Record<
              string,
              unknown
            >
          )[path[path.length - 1] as string];
          assert.equal(decoded, value, `${path.join('.')} = ${text}`);
          assert.ok(encodeFrame(result.frame).includes(`"${text}"`));
        }
      }
    });

    it('refuses any other spelling, numbers, and values outside 64 bits', function () {
      const bad: Json[] = [
        '01',
        '00',
        '-0',
        '+1',
        '1e3',
        ' 1',
        '1 ',
        '',
        '-',
        '--1',
        '0x10',
        '1.0',
        '１',
        '9223372036854775808',
        '-9223372036854775809',
        '99999999999999999999',
        '1'.repeat(400),
        1,
        0,
        -1,
        2 ** 53,
        true,
        {},
        [],
      ];
      for (const [base, path] of TOKENS) {
        for (const value of bad) {
          rejectsEdit(
            new RegExp(
              `^invalid frame: ${where(path)}: expected a (decimal integer string|signed 64-bit integer)$`,
            ),
            (t) => put(t, path, value),
            base(),
          );
        }
      }
    });

    it('accepts null only for the token of a lock.view', function () {
      for (const [base, path] of TOKENS) {
        if (path[1] === 'token' && path.length === 2) acceptsWith(base(), path, null);
        else rejectsEdit(/: expected a decimal integer string$/, (t) => put(t, path, null), base());
      }
    });

    it('keeps names and incarnations made of digits as strings', function () {
      const result = acceptsWith(frame(sample('lock.read')), msg('name'), '123');
      assert.equal((result.frame.msg as { name: unknown }).name, '123');
    });

    it('refuses to encode a token that is not a signed 64-bit bigint', function () {
      for (const bad of [1, '1', 1.5, null, undefined, MAX_TOKEN + 1n, MIN_TOKEN - 1n]) {
        if (bad !== null) {
          // (A view's token may be null: nobody holds the lock.)
          const view = { ...sample('lock.view', 1), token: bad as unknown as bigint };
          assert.throws(() => encodeFrame(frame(view)), InvariantError, String(bad));
        }
        const release = { ...CLIENT_COMMANDS[1]!, token: bad as unknown as bigint };
        const commands = [release] as ClientCommand[];
        assert.throws(
          () => encodeFrame(frame({ type: 'lock.request', commands })),
          /msg\.commands\[0\]\.token: expected a signed 64-bit bigint/,
        );
      }
    });
  });

  describe('names, TTLs and snapshot parts', function () {
    const NAMES: [() => Frame, (string | number)[]][] = [
      [() => frame(sample('lock.read')), msg('name')],
      [() => frame(sample('lock.view')), msg('name')],
      [request, msg('commands', 0, 'name')],
      [request, msg('commands', 2, 'locks', 0, 'name')],
      [accept, msg('entries', 0, 'value', 4, 'name')],
      [reply, msg('replies', 0, 'name')],
      [reply, msg('replies', 5, 'name')],
    ];

    it('takes lock names of 1 to 256 UTF-16 code units, non-BMP characters included', function () {
      const emoji = '\ud83d\ude00';
      for (const [base, path] of NAMES) {
        for (const name of ['a', emoji, 'n'.repeat(256), emoji.repeat(128), 'é'.repeat(256)]) {
          acceptsWith(base(), path, name);
        }
        for (const bad of ['', 'n'.repeat(257), 'n'.repeat(255) + emoji, 7, null, ['a']]) {
          rejectsEdit(
            /: expected a name of 1 to 256 characters$/,
            (t) => put(t, path, bad),
            base(),
          );
        }
      }
    });

    it('takes TTLs of 1 ms to 2^31 − 1 ms', function () {
      for (const [base, path] of [
        [request, msg('commands', 0, 'ttlMs')],
        [reply, msg('replies', 0, 'ttlMs')],
      ] as const) {
        acceptsWith(base(), path, 1);
        acceptsWith(base(), path, MAX_TTL_MS);
        for (const bad of [0, -1, MAX_TTL_MS + 1, 1.5, '1000', null]) {
          rejectsEdit(
            /: expected an integer from 1 to 2147483647$/,
            (t) => put(t, path, bad),
            base(),
          );
        }
      }
    });

    it('takes snapshot parts as padded base64 of at most 49,152 characters', function () {
      const snapshot = frame(sample('log.snapshot'));
      const data = msg('data');
      for (const good of [
        '',
        'AAAA',
        'AA==',
        'AAA=',
        'ab+/',
        'A'.repeat(MAX_SNAPSHOT_PART_CHARS),
      ]) {
        acceptsWith(snapshot, data, good);
      }
      const bad: Json[] = [
        'A',
        'AA',
        'AAA',
        'AAAAA',
        'AA=',
        '=',
        '====',
        'A===',
        'AA==AAAA',
        'A=AA',
        'AA-_',
        'AA A',
        'AA\nA',
        'AAé=',
        'A'.repeat(MAX_SNAPSHOT_PART_CHARS + 4),
        1,
        null,
      ];
      for (const value of bad) {
        rejectsEdit(
          /^invalid frame: msg\.data: expected base64 text of a snapshot part$/,
          (t) => put(t, data, value),
          snapshot,
        );
      }
    });

    it('takes part counts of 1 to 16,384', function () {
      const snapshot = frame(sample('log.snapshot'));
      acceptsWith(snapshot, msg('parts'), 1);
      acceptsWith(snapshot, msg('parts'), MAX_SNAPSHOT_PARTS);
      for (const bad of [0, MAX_SNAPSHOT_PARTS + 1, 1.5, '2', null]) {
        rejectsEdit(
          /^invalid frame: msg\.parts: expected an integer from 1 to 16384$/,
          (t) => put(t, msg('parts'), bad),
          snapshot,
        );
      }
    });

    it('checks the nullable fields: a slot value, next, the leader, a view holder', function () {
      acceptsWith(accept(), msg('entries', 0, 'value'), null);
      for (const bad of ['', {}, 0]) {
        rejectsEdit(
          /msg\.entries\[0\]\.value: expected an array$/,
          (t) => put(t, msg('entries', 0, 'value'), bad),
          accept(),
        );
      }
      const redirect = frame(sample('lock.redirect'));
      for (const bad of ['', 'x'.repeat(65), 1]) {
        rejectsEdit(
          /^invalid frame: msg\.leader: expected an id/,
          (t) => put(t, msg('leader'), bad),
          redirect,
        );
      }
      rejectsEdit(
        /^invalid frame: msg\.holder\.node: missing$/,
        (t) => put(t, msg('holder'), {}),
        frame(sample('lock.view')),
      );
      rejectsEdit(
        /^invalid frame: msg\.next: expected an integer/,
        (t) => put(t, msg('next'), -1),
        frame(sample('log.promise')),
      );
    });
  });

  describe('depth and size', function () {
    it('admits the deepest valid frame (8 levels) and text up to 10 levels deep, not 11', function () {
      // frame, msg, entries, entry, value, command, locks, lock
      const deepest = encodeFrame(frame(sample('log.promise')));
      assert.equal(textDepth(deepest), 8);
      assert.ok(decodeFrame(deepest, EXPECT).ok);
      const nested = (depth: number): string => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
      const ten = decodeFrame(nested(10), EXPECT);
      assert.ok(!ten.ok);
      assert.equal(ten.reason, 'schema', 'ten levels pass the depth check');
      assert.equal(ten.error.message, 'invalid frame: unknown key "a"');
      rejects(nested(11), /^invalid frame: nested deeper than 10 levels$/);
      const eleven = decodeFrame('['.repeat(11) + ']'.repeat(11), EXPECT);
      assert.ok(!eleven.ok);
      assert.equal(eleven.reason, 'malformed');
      // Two more levels inside a valid frame's deepest lock: 10, still only a schema matter.
      const deeper = deepest.replace('{"name":"a","token":"1"}', '{"name":"a","token":[["1"]]}');
      assert.equal(textDepth(deeper), 10);
      rejects(deeper, /locks\[0\]\.token: expected a decimal integer string$/);
      const deepest11 = deepest.replace(
        '{"name":"a","token":"1"}',
        '{"name":"a","token":[[["1"]]]}',
      );
      rejects(deepest11, /^invalid frame: nested deeper than 10 levels$/);
    });

    // What fits the default 64 KiB frame (DEFAULT_MAX_FRAME_BYTES). Array caps (4,096 items)
    // never bind for commands or entries at that size: the byte limit does, and the senders
    // (the log's pages and batches, a node's lock requests) must stay under it themselves.
    it('fits a lock.request of ~600 small or ~37 largest commands in 64 KiB, not 4,096', function () {
      const bytes = (f: Frame): number => Buffer.byteLength(encodeFrame(f), 'utf8');
      const small: ClientCommand = {
        op: 'cancel',
        holder: OWNER,
        seq: 1000,
        acked: 999,
        target: 998,
      };
      const largest: ClientCommand = {
        op: 'acquire',
        holder: { node: 'n'.repeat(64), incarnation: INC_A },
        seq: MAX_ROUND,
        acked: MAX_ROUND,
        // Each control character takes six bytes escaped: the longest a name gets on the wire.
        name: '\u0001'.repeat(256),
        ttlMs: MAX_TTL_MS,
        wait: false,
      };
      const requestOf = (command: ClientCommand, n: number): Frame =>
        frame({ type: 'lock.request', commands: Array<ClientCommand>(n).fill(command) });
      const most = (command: ClientCommand): number => {
        let n = 1;
        while (bytes(requestOf(command, n + 1)) <= DEFAULT_MAX_FRAME_BYTES) n += 1;
        return n;
      };
      const smallFit = most(small);
      const largestFit = most(largest);
      assert.ok(smallFit >= 500 && smallFit < 700, `${smallFit} small commands`);
      assert.ok(largestFit >= 30 && largestFit < 40, `${largestFit} largest commands`);
      assert.ok(decodeFrame(encodeFrame(requestOf(largest, largestFit)), EXPECT).ok);
      const over = decodeFrame(encodeFrame(requestOf(largest, largestFit + 1)), EXPECT);
      assert.ok(!over.ok);
      assert.equal(over.reason, 'oversized');
      const full = decodeFrame(encodeFrame(requestOf(small, MAX_ARRAY_ITEMS)), EXPECT);
      assert.ok(!full.ok);
      assert.equal(full.reason, 'oversized');
    });

    it('fits two slots of a full 24 KiB batch in a log.promise, not a page of 64 (oversized)', function () {
      // A batch as the log cuts it by default (maxBatchBytes 24 KiB): acquires of 64-char
      // holders and 100-char names, about 24 KiB of JSON.
      const acquire: LockCommand = {
        op: 'acquire',
        holder: { node: 'n'.repeat(64), incarnation: INC_A },
        seq: 123_456,
        acked: 123_450,
        name: 'x'.repeat(100),
        ttlMs: 30_000,
        wait: true,
      };
      const each = JSON.stringify(acquire).length;
      const batch = Array<LockCommand>(Math.floor((24 * 1024) / each)).fill(acquire);
      const page = (n: number): Frame =>
        frame({
          type: 'log.promise',
          ballot: BALLOT,
          attempt: 1,
          from: 1,
          entries: Array.from({ length: n }, (_, i) => ({
            slot: i + 1,
            ballot: BALLOT,
            value: batch,
          })),
          next: n + 1,
          floor: 0,
          applied: 0,
          maxRound: 7,
          lossy: false,
        });
      assert.ok(decodeFrame(encodeFrame(page(2)), EXPECT).ok);
      for (const n of [3, 64]) {
        const result = decodeFrame(encodeFrame(page(n)), EXPECT);
        assert.ok(!result.ok, `${n} slots`);
        assert.equal(result.reason, 'oversized');
      }
      // The same page decodes where the limit allows it.
      assert.ok(decodeFrame(encodeFrame(page(64)), ROOMY).ok);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Property tests: an independent reference of what a valid frame is, and hostile inputs.

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);
const keysAre = (x: unknown, keys: string[]): x is Obj =>
  isObj(x) && Object.keys(x).sort().join('\u0000') === [...keys].sort().join('\u0000');
const idOk = (x: unknown): boolean => typeof x === 'string' && x.length >= 1 && x.length <= 64;
const incOk = (x: unknown): boolean => typeof x === 'string' && /^[0-9a-f]{16}$/.test(x);
const natOk = (x: unknown): boolean =>
  Number.isSafeInteger(x) && (x as number) >= 0 && (x as number) <= MAX_ROUND;
const posOk = (x: unknown): boolean => natOk(x) && (x as number) >= 1;
const ballotOk = (x: unknown): boolean =>
  keysAre(x, ['round', 'node', 'incarnation']) &&
  natOk(x['round']) &&
  idOk(x['node']) &&
  incOk(x['incarnation']);
const ownerOk = (x: unknown): boolean =>
  keysAre(x, ['node', 'incarnation']) && idOk(x['node']) && incOk(x['incarnation']);
const leaseValueOk = (x: unknown): boolean =>
  keysAre(x, ['owner', 'leaseMs', 'term']) &&
  ownerOk(x['owner']) &&
  posOk(x['leaseMs']) &&
  (x['leaseMs'] as number) <= 3_600_000 &&
  posOk(x['term']);
const valueOk = (x: unknown): boolean =>
  typeof x === 'string' && Buffer.byteLength(x, 'utf8') <= 16384;

function messageOk(m: unknown): boolean {
  if (!isObj(m)) return false;
  const has = (...keys: string[]): boolean => keysAre(m, ['type', ...keys]);
  switch (m['type']) {
    case 'lease.prepare':
      return has('ballot') && ballotOk(m['ballot']);
    case 'lease.promise': {
      const a = m['accepted'];
      return (
        has('ballot', 'accepted', 'maxRound', 'termSeen') &&
        ballotOk(m['ballot']) &&
        natOk(m['maxRound']) &&
        natOk(m['termSeen']) &&
        (a === null ||
          (keysAre(a, ['ballot', 'value']) && ballotOk(a['ballot']) && leaseValueOk(a['value'])))
      );
    }
    case 'lease.accept':
      return has('ballot', 'value') && ballotOk(m['ballot']) && leaseValueOk(m['value']);
    case 'lease.accepted':
      return has('ballot', 'maxRound') && ballotOk(m['ballot']) && natOk(m['maxRound']);
    case 'lease.reject':
      return (
        has('ballot', 'phase', 'promised', 'holder', 'maxRound', 'termSeen') &&
        ballotOk(m['ballot']) &&
        (m['phase'] === 'prepare' || m['phase'] === 'accept') &&
        (m['promised'] === null || ballotOk(m['promised'])) &&
        (m['holder'] === null || ownerOk(m['holder'])) &&
        natOk(m['maxRound']) &&
        natOk(m['termSeen'])
      );
    case 'lease.chosen':
      return has('ballot', 'term') && ballotOk(m['ballot']) && posOk(m['term']);
    case 'lease.release':
      return (
        has('owner', 'ballot', 'successor') &&
        ownerOk(m['owner']) &&
        ballotOk(m['ballot']) &&
        (m['successor'] === null || idOk(m['successor']))
      );
    case 'lease.recover':
      return has('incarnation') && incOk(m['incarnation']);
    case 'lease.recovery':
      return (
        has('incarnation', 'maxRound', 'recovered') &&
        incOk(m['incarnation']) &&
        natOk(m['maxRound']) &&
        typeof m['recovered'] === 'boolean'
      );
    case 'paxos.prepare':
    case 'paxos.accepted':
      return has('instance', 'ballot') && natOk(m['instance']) && ballotOk(m['ballot']);
    case 'paxos.promise': {
      const a = m['accepted'];
      return (
        has('instance', 'ballot', 'accepted') &&
        natOk(m['instance']) &&
        ballotOk(m['ballot']) &&
        (a === null ||
          (keysAre(a, ['ballot', 'value']) && ballotOk(a['ballot']) && valueOk(a['value'])))
      );
    }
    case 'paxos.accept':
      return (
        has('instance', 'ballot', 'value') &&
        natOk(m['instance']) &&
        ballotOk(m['ballot']) &&
        valueOk(m['value'])
      );
    case 'paxos.reject':
      return (
        has('instance', 'ballot', 'promised') &&
        natOk(m['instance']) &&
        ballotOk(m['ballot']) &&
        ballotOk(m['promised'])
      );
    default:
      // The log and lock messages: the fuzz corpus's reference, also written without the codec.
      return isValidMessage(m);
  }
}

function frameOk(f: unknown, expect: DecodeExpectations): boolean {
  return (
    keysAre(f, ['v', 'cluster', 'from', 'to', 'inc', 'msg']) &&
    f['v'] === 1 &&
    idOk(f['cluster']) &&
    f['cluster'] === expect.cluster &&
    f['to'] === expect.self &&
    f['from'] !== expect.self &&
    typeof f['from'] === 'string' &&
    expect.peers.has(f['from']) &&
    idOk(f['to']) &&
    incOk(f['inc']) &&
    messageOk(f['msg'])
  );
}

/** Decoding must not throw, and anything it accepts must be valid and stable under re-encoding. */
function checkDecode(text: string, expect: DecodeExpectations): boolean {
  const result = decodeFrame(text, expect);
  if (!result.ok) {
    assert.ok(result.error instanceof InvalidMessageError);
    assert.ok(result.error.message.length < 200, result.error.message.slice(0, 300));
    return false;
  }
  // Checked on the text as JSON.parse reads it (the decoded frame holds tokens as bigints).
  assert.ok(
    frameOk(JSON.parse(text) as unknown, expect),
    `decoded an invalid frame from ${text.slice(0, 200)}`,
  );
  assert.ok(Buffer.byteLength(text, 'utf8') <= (expect.maxBytes ?? DEFAULT_MAX_FRAME_BYTES));
  const again = decodeFrame(encodeFrame(result.frame), expect);
  assert.ok(again.ok);
  assert.deepEqual(again.frame, result.frame);
  return true;
}

const RUNS = { numRuns: 300, seed: 0x5eed } as const;

const idArb = fc.oneof(
  fc.string({ minLength: 1, maxLength: 64 }),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 32 }),
);
const incArb = fc.stringMatching(/^[0-9a-f]{16}$/);
const roundArb = fc.oneof(fc.constantFrom(0, 1, MAX_ROUND), fc.integer({ min: 0, max: MAX_ROUND }));
const termArb = fc.oneof(fc.constant(1), fc.integer({ min: 1, max: MAX_ROUND }));
const ballotArb = fc.record({ round: roundArb, node: idArb, incarnation: incArb });
const ownerArb = fc.record({ node: idArb, incarnation: incArb });
const leaseValueArb = fc.record({
  owner: ownerArb,
  leaseMs: fc.integer({ min: 1, max: 3_600_000 }),
  term: termArb,
});
const valueArb = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 100 }),
  fc.string({ maxLength: 2000 }),
  fc.constant('v'.repeat(MAX_VALUE_BYTES)),
);
const lockMessageArbs = Object.values(
  lockArbitraries({ id: idArb, incarnation: incArb, round: roundArb }).messages,
) as fc.Arbitrary<ProtocolMessage>[];
const messageArb: fc.Arbitrary<ProtocolMessage> = fc.oneof(
  ...lockMessageArbs,
  fc.record({ type: fc.constant('lease.prepare' as const), ballot: ballotArb }),
  fc.record({
    type: fc.constant('lease.promise' as const),
    ballot: ballotArb,
    accepted: fc.option(fc.record({ ballot: ballotArb, value: leaseValueArb }), { nil: null }),
    maxRound: roundArb,
    termSeen: roundArb,
  }),
  fc.record({
    type: fc.constant('lease.accept' as const),
    ballot: ballotArb,
    value: leaseValueArb,
  }),
  fc.record({
    type: fc.constant('lease.accepted' as const),
    ballot: ballotArb,
    maxRound: roundArb,
  }),
  fc.record({
    type: fc.constant('lease.reject' as const),
    ballot: ballotArb,
    phase: fc.constantFrom('prepare' as const, 'accept' as const),
    promised: fc.option(ballotArb, { nil: null }),
    holder: fc.option(ownerArb, { nil: null }),
    maxRound: roundArb,
    termSeen: roundArb,
  }),
  fc.record({ type: fc.constant('lease.chosen' as const), ballot: ballotArb, term: termArb }),
  fc.record({
    type: fc.constant('lease.release' as const),
    owner: ownerArb,
    ballot: ballotArb,
    successor: fc.option(idArb, { nil: null }),
  }),
  fc.record({ type: fc.constant('paxos.prepare' as const), instance: roundArb, ballot: ballotArb }),
  fc.record({
    type: fc.constant('paxos.promise' as const),
    instance: roundArb,
    ballot: ballotArb,
    accepted: fc.option(fc.record({ ballot: ballotArb, value: valueArb }), { nil: null }),
  }),
  fc.record({
    type: fc.constant('paxos.accept' as const),
    instance: roundArb,
    ballot: ballotArb,
    value: valueArb,
  }),
  fc.record({
    type: fc.constant('paxos.accepted' as const),
    instance: roundArb,
    ballot: ballotArb,
  }),
  fc.record({
    type: fc.constant('paxos.reject' as const),
    instance: roundArb,
    ballot: ballotArb,
    promised: ballotArb,
  }),
);
const frameArb: fc.Arbitrary<Frame> = fc
  .record({
    v: fc.constant(PROTOCOL_VERSION),
    cluster: idArb,
    from: idArb,
    to: idArb,
    inc: incArb,
    msg: messageArb,
  })
  .filter((f) => f.from !== f.to);

const expectFor = (f: Frame): DecodeExpectations => ({
  cluster: f.cluster,
  self: f.to,
  peers: new Set([f.from, 'someone-else']),
  // A batch of long lock names can pass 64 KiB: the size limit has tests of its own.
  maxBytes: 1 << 20,
});

/** Every member of an object in a JSON tree (arrays' items included): its object and key. */
function places(
  node: Json,
  out: { parent: JsonObject; key: string }[] = [],
): { parent: JsonObject; key: string }[] {
  if (Array.isArray(node)) {
    for (const item of node) places(item, out);
  } else if (typeof node === 'object' && node !== null) {
    for (const [key, value] of Object.entries(node)) {
      out.push({ parent: node, key });
      places(value, out);
    }
  }
  return out;
}

function kindOf(value: Json): string {
  return value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
}

const PLACEHOLDER = '@@mutation@@';
type Mutation =
  | { readonly kind: 'delete'; readonly at: number }
  | { readonly kind: 'extra'; readonly at: number; readonly key: string }
  | { readonly kind: 'retype'; readonly at: number; readonly pick: number }
  | { readonly kind: 'number'; readonly at: number; readonly text: string }
  | { readonly kind: 'nest'; readonly at: number; readonly depth: number; readonly brace: boolean }
  | { readonly kind: 'random'; readonly at: number; readonly value: Json };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('extra' as const),
    at: fc.nat(),
    key: fc.string({ maxLength: 10 }),
  }),
  fc.record({ kind: fc.constant('retype' as const), at: fc.nat(), pick: fc.nat() }),
  fc.record({
    kind: fc.constant('number' as const),
    at: fc.nat(),
    text: fc.constantFrom('-1', '0.5', '9007199254740992', '1e300', '1e999', '-1e999'),
  }),
  fc.record({
    kind: fc.constant('nest' as const),
    at: fc.nat(),
    depth: fc.oneof(fc.integer({ min: 4, max: 12 }), fc.constant(5000)),
    brace: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('random' as const),
    at: fc.nat(),
    value: fc.jsonValue() as fc.Arbitrary<Json>,
  }),
);

/**
 * Applies `m` to the encoded frame. Returns the text and whether the change certainly makes the
 * frame invalid (every mutation does, except replacing a value by a random one).
 */
function mutate(f: Frame, m: Mutation): { text: string; mustReject: boolean } {
  const root = JSON.parse(encodeFrame(f)) as JsonObject;
  const all = places(root);
  const place = all[m.at % all.length];
  assert.ok(place);
  const { parent, key } = place;
  const original = parent[key] as Json;
  let raw: string | null = null;
  switch (m.kind) {
    case 'delete':
      Reflect.deleteProperty(parent, key);
      break;
    case 'extra': {
      if (Object.hasOwn(parent, m.key)) return { text: encodeFrame(f), mustReject: false };
      parent[m.key] = 1;
      break;
    }
    case 'retype': {
      // A value of another JSON kind; never null, which a nullable field would accept.
      const options: Json[] = ['s', 7, true, [], {}].filter((v) => kindOf(v) !== kindOf(original));
      parent[key] = options[m.pick % options.length] ?? 's';
      // A null may stand for a value of the kind it became (a nullable id, a no-op batch).
      if (original === null) return { text: JSON.stringify(root), mustReject: false };
      break;
    }
    case 'number':
      if (typeof original !== 'number') return { text: encodeFrame(f), mustReject: false };
      raw = m.text;
      break;
    case 'nest':
      raw = m.brace
        ? '{"a":'.repeat(m.depth) + '1' + '}'.repeat(m.depth)
        : '['.repeat(m.depth) + ']'.repeat(m.depth);
      break;
    case 'random':
      parent[key] = m.value;
      return { text: JSON.stringify(root), mustReject: false };
    default: {
      const unreachable: never = m;
      return unreachable;
    }
  }
  if (raw !== null) parent[key] = PLACEHOLDER;
  const text = JSON.stringify(root);
  return { text: raw === null ? text : text.replace(`"${PLACEHOLDER}"`, raw), mustReject: true };
}

describe('codec: properties', function () {
  it('round-trips every valid frame', function () {
    fc.assert(
      fc.property(frameArb, (f) => {
        const text = encodeFrame(f);
        const result = decodeFrame(text, expectFor(f));
        assert.ok(result.ok, result.ok ? '' : result.error.message);
        // fast-check builds records without a prototype; the decoder builds plain objects.
        assert.deepEqual(result.frame, structuredClone(f));
        assert.equal(encodeFrame(result.frame), text);
      }),
      RUNS,
    );
  });

  it('never throws on random strings and accepts none', function () {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 300 })),
        (text) => {
          assert.equal(checkDecode(text, EXPECT), false);
        },
      ),
      RUNS,
    );
  });

  it('never throws on random JSON and accepts nothing invalid', function () {
    fc.assert(
      fc.property(fc.json({ maxDepth: 6 }), (text) => {
        checkDecode(text, EXPECT);
      }),
      RUNS,
    );
  });

  it('rejects mutated frames, and never accepts an invalid one', function () {
    fc.assert(
      fc.property(frameArb, mutationArb, (f, m) => {
        const { text, mustReject } = mutate(f, m);
        const accepted = checkDecode(text, expectFor(f));
        if (mustReject) assert.equal(accepted, false, `${m.kind} accepted: ${text.slice(0, 300)}`);
      }),
      RUNS,
    );
  });
});
