import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import sinon from 'sinon';
import {
  DEFAULT_MAX_FRAME_BYTES,
  decodeFrame,
  encodeFrame,
  MAX_ROUND,
  MAX_VALUE_BYTES,
  PROTOCOL_VERSION,
  type DecodeExpectations,
  type Frame,
  type ProtocolMessage,
} from '../../lib/codec/messages.js';
import { InvalidMessageError, InvariantError } from '../../lib/errors.js';
import type { Ballot } from '../../lib/paxos/ballot.js';

const INC_A = '00000000000000a1';
const INC_B = '00000000000000b2';
const BALLOT: Ballot = { round: 7, node: 'a', incarnation: INC_A };
const OWNER = { node: 'a', incarnation: INC_A };
const EXPECT: DecodeExpectations = { cluster: 'prod', self: 'b', peers: new Set(['a', 'c']) };

function frame(msg: ProtocolMessage): Frame {
  return { v: PROTOCOL_VERSION, cluster: 'prod', from: 'a', to: 'b', inc: INC_A, msg };
}

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
function rejectsEdit(pattern: RegExp, edit: (t: JsonObject) => void, base?: Frame): void {
  const t = tree(base);
  edit(t);
  rejects(JSON.stringify(t), pattern);
}

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
        rejects('{"a":'.repeat(9) + '1' + '}'.repeat(9), /nested deeper than/);
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
      return false;
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
  assert.ok(frameOk(result.frame, expect), `decoded an invalid frame from ${text.slice(0, 200)}`);
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
const messageArb: fc.Arbitrary<ProtocolMessage> = fc.oneof(
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
});

/** Every place in a JSON tree: the object holding it and its key. */
function places(
  node: Json,
  out: { parent: JsonObject; key: string }[] = [],
): { parent: JsonObject; key: string }[] {
  if (typeof node === 'object' && node !== null && !Array.isArray(node)) {
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
