import { Buffer } from 'node:buffer';
import {
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrame,
  PROTOCOL_VERSION,
  type DecodeExpectations,
  type Frame,
  type ProtocolMessage,
} from '../../lib/codec/messages.js';
import type { LockCommand, LockReply } from '../../lib/locks/commands.js';
import type { ClientCommand } from '../../lib/locks/messages.js';
import type { AcceptedEntry, LogValue, SlotValue } from '../../lib/log/messages.js';
import type { Ballot } from '../../lib/paxos/ballot.js';
import { createRng, randomIncarnation, type Rng } from '../../lib/random.js';
import type { NodeId, Owner } from '../../lib/types.js';

/**
 * Hostile frames, shared by the decoder's property test, the hostile-node tests and the
 * million-frame fuzzer (`npm run fuzz`):
 *
 * - a reference predicate for "a frame this node must accept", written from the wire schema in
 *   docs/design.md without the codec's code, so the two can be checked against each other;
 * - mutations applied to the *text* of a valid frame (duplicate keys, edge numbers, escapes,
 *   truncation, …): what a tree edit cannot express;
 * - a seeded source of frames of every kind, for the runs that do not use fast-check.
 */

// ---------------------------------------------------------------------------------------------
// The reference predicate

type Obj = Record<string, unknown>;

function isObj(x: unknown): x is Obj {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Exactly these own keys, in any order. */
function hasExactly(x: unknown, keys: readonly string[]): x is Obj {
  if (!isObj(x)) return false;
  const own = Object.keys(x);
  return (
    own.length === keys.length && keys.every((k) => Object.prototype.hasOwnProperty.call(x, k))
  );
}

const isId = (x: unknown): boolean => typeof x === 'string' && x.length >= 1 && x.length <= 64;
const isInc = (x: unknown): boolean => typeof x === 'string' && /^[0-9a-f]{16}$/.test(x);
/** Rounds, instances and terms a peer may name: up to 2^52 (the codec's MAX_ROUND). */
const isNat = (x: unknown): boolean =>
  Number.isSafeInteger(x) && (x as number) >= 0 && (x as number) <= 2 ** 52;
const isPos = (x: unknown): boolean => isNat(x) && (x as number) >= 1;
const isLeaseMs = (x: unknown): boolean => isPos(x) && (x as number) <= 3_600_000;
const isPaxosValue = (x: unknown): boolean =>
  typeof x === 'string' && Buffer.byteLength(x, 'utf8') <= 16 * 1024;
const nullOr = (x: unknown, ok: (y: unknown) => boolean): boolean => x === null || ok(x);

const isBallot = (x: unknown): boolean =>
  hasExactly(x, ['round', 'node', 'incarnation']) &&
  isNat(x['round']) &&
  isId(x['node']) &&
  isInc(x['incarnation']);
const isOwner = (x: unknown): boolean =>
  hasExactly(x, ['node', 'incarnation']) && isId(x['node']) && isInc(x['incarnation']);
const isLeaseValue = (x: unknown): boolean =>
  hasExactly(x, ['owner', 'leaseMs', 'term']) &&
  isOwner(x['owner']) &&
  isLeaseMs(x['leaseMs']) &&
  isPos(x['term']);
const isAcceptedLease = (x: unknown): boolean =>
  hasExactly(x, ['ballot', 'value']) && isBallot(x['ballot']) && isLeaseValue(x['value']);
const isAcceptedValue = (x: unknown): boolean =>
  hasExactly(x, ['ballot', 'value']) && isBallot(x['ballot']) && isPaxosValue(x['value']);

// The log and the locks.

/** Most items in one array of a frame. */
const MAX_ITEMS = 4096;
/** Lock names: 1 to 256 UTF-16 code units. */
const isName = (x: unknown): boolean => typeof x === 'string' && x.length >= 1 && x.length <= 256;
/** Lock TTLs: 1 ms to the longest timer delay Node accepts, 2^31 − 1 ms. */
const isTtl = (x: unknown): boolean =>
  Number.isSafeInteger(x) && (x as number) >= 1 && (x as number) <= 2 ** 31 - 1;
/** Snapshot part counts: 1 to 16,384. */
const isPartCount = (x: unknown): boolean =>
  Number.isSafeInteger(x) && (x as number) >= 1 && (x as number) <= 16_384;
const arrayOf = (x: unknown, ok: (y: unknown) => boolean): boolean =>
  Array.isArray(x) && x.length <= MAX_ITEMS && x.every((y) => ok(y));
/**
 * A fencing token: a signed 64-bit integer as a decimal string, spelled exactly as
 * `BigInt.prototype.toString` spells it (no sign on zero, no '+', no leading zeros, no exponent).
 */
const isToken = (x: unknown): boolean => {
  if (typeof x !== 'string' || !/^-?[0-9]{1,20}$/.test(x)) return false;
  const n = BigInt(x);
  return String(n) === x && n >= -(2n ** 63n) && n < 2n ** 63n;
};
/** One part of a snapshot: padded standard base64, at most 36 KiB of data (49,152 characters). */
const isSnapshotData = (x: unknown): boolean =>
  typeof x === 'string' &&
  x.length <= 49_152 &&
  /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(x);

/** A lock command; `leader` admits the ones only the leader proposes (expire, retire, abandon, epoch). */
function isCommand(x: unknown, leader: boolean): boolean {
  if (!isObj(x)) return false;
  const client = (...rest: string[]): boolean =>
    hasExactly(x, ['op', 'holder', 'seq', 'acked', ...rest]) &&
    isOwner(x['holder']) &&
    isNat(x['seq']) &&
    isNat(x['acked']);
  switch (x['op']) {
    case 'acquire':
      return (
        client('name', 'ttlMs', 'wait') &&
        isName(x['name']) &&
        isTtl(x['ttlMs']) &&
        typeof x['wait'] === 'boolean'
      );
    case 'release':
      return client('name', 'token') && isName(x['name']) && isToken(x['token']);
    case 'renew':
      return (
        client('locks') &&
        arrayOf(
          x['locks'],
          (l) => hasExactly(l, ['name', 'token']) && isName(l['name']) && isToken(l['token']),
        )
      );
    case 'cancel':
      return client('target') && isNat(x['target']);
    case 'expire':
      return (
        leader &&
        hasExactly(x, ['op', 'name', 'token', 'version']) &&
        isName(x['name']) &&
        isToken(x['token']) &&
        isNat(x['version'])
      );
    case 'retire':
    case 'abandon':
      return leader && hasExactly(x, ['op', 'holders']) && arrayOf(x['holders'], isOwner);
    case 'epoch':
      return leader && hasExactly(x, ['op', 'base']) && isToken(x['base']);
    default:
      return false;
  }
}

/** A log slot's value: a batch of lock commands, or null (a no-op). */
const isLogValue = (x: unknown): boolean =>
  nullOr(x, (batch) => arrayOf(batch, (c) => isCommand(c, true)));
const isSlotValue = (x: unknown): boolean =>
  hasExactly(x, ['slot', 'value']) && isNat(x['slot']) && isLogValue(x['value']);
const isAcceptedEntry = (x: unknown): boolean =>
  hasExactly(x, ['slot', 'ballot', 'value']) &&
  isNat(x['slot']) &&
  isBallot(x['ballot']) &&
  isLogValue(x['value']);

/** The answer to one client command. */
function isLockReply(x: unknown): boolean {
  if (!isObj(x)) return false;
  const keys = (...rest: string[]): boolean =>
    hasExactly(x, ['type', 'seq', ...rest]) && isNat(x['seq']);
  switch (x['type']) {
    case 'granted':
      return (
        keys('name', 'token', 'ttlMs', 'version') &&
        isName(x['name']) &&
        isToken(x['token']) &&
        isTtl(x['ttlMs']) &&
        isNat(x['version'])
      );
    case 'queued':
    case 'busy':
    case 'ended':
    case 'released':
    case 'not-held':
      return keys('name') && isName(x['name']);
    case 'renewed':
      return keys('versions') && arrayOf(x['versions'], (v) => nullOr(v, isNat));
    case 'cancelled':
      return (
        keys('target', 'was') &&
        isNat(x['target']) &&
        ['queued', 'granted', 'unknown'].includes(x['was'] as string)
      );
    case 'stale':
      return keys();
    default:
      return false;
  }
}

/** Whether `m` is one of the protocol's messages, field for field. */
export function isValidMessage(m: unknown): boolean {
  if (!isObj(m)) return false;
  const keys = (...rest: string[]): boolean => hasExactly(m, ['type', ...rest]);
  switch (m['type']) {
    case 'lease.prepare':
      return keys('ballot') && isBallot(m['ballot']);
    case 'lease.promise':
      return (
        keys('ballot', 'accepted', 'maxRound', 'termSeen') &&
        isBallot(m['ballot']) &&
        nullOr(m['accepted'], isAcceptedLease) &&
        isNat(m['maxRound']) &&
        isNat(m['termSeen'])
      );
    case 'lease.accept':
      return keys('ballot', 'value') && isBallot(m['ballot']) && isLeaseValue(m['value']);
    case 'lease.accepted':
      return keys('ballot', 'maxRound') && isBallot(m['ballot']) && isNat(m['maxRound']);
    case 'lease.reject':
      return (
        keys('ballot', 'phase', 'promised', 'holder', 'maxRound', 'termSeen') &&
        isBallot(m['ballot']) &&
        (m['phase'] === 'prepare' || m['phase'] === 'accept') &&
        nullOr(m['promised'], isBallot) &&
        nullOr(m['holder'], isOwner) &&
        isNat(m['maxRound']) &&
        isNat(m['termSeen'])
      );
    case 'lease.chosen':
      return keys('ballot', 'term') && isBallot(m['ballot']) && isPos(m['term']);
    case 'lease.release':
      return (
        keys('owner', 'ballot', 'successor') &&
        isOwner(m['owner']) &&
        isBallot(m['ballot']) &&
        nullOr(m['successor'], isId)
      );
    case 'lease.recover':
      return keys('incarnation') && isInc(m['incarnation']);
    case 'lease.recovery':
      return (
        keys('incarnation', 'maxRound', 'recovered') &&
        isInc(m['incarnation']) &&
        isNat(m['maxRound']) &&
        typeof m['recovered'] === 'boolean'
      );
    case 'paxos.prepare':
    case 'paxos.accepted':
      return keys('instance', 'ballot') && isNat(m['instance']) && isBallot(m['ballot']);
    case 'paxos.promise':
      return (
        keys('instance', 'ballot', 'accepted') &&
        isNat(m['instance']) &&
        isBallot(m['ballot']) &&
        nullOr(m['accepted'], isAcceptedValue)
      );
    case 'paxos.accept':
      return (
        keys('instance', 'ballot', 'value') &&
        isNat(m['instance']) &&
        isBallot(m['ballot']) &&
        isPaxosValue(m['value'])
      );
    case 'paxos.reject':
      return (
        keys('instance', 'ballot', 'promised') &&
        isNat(m['instance']) &&
        isBallot(m['ballot']) &&
        isBallot(m['promised'])
      );
    case 'log.prepare':
      return (
        keys('ballot', 'attempt', 'from') &&
        isBallot(m['ballot']) &&
        isNat(m['attempt']) &&
        isNat(m['from'])
      );
    case 'log.promise':
      return (
        keys(
          'ballot',
          'attempt',
          'from',
          'entries',
          'next',
          'floor',
          'applied',
          'maxRound',
          'lossy',
        ) &&
        isBallot(m['ballot']) &&
        isNat(m['attempt']) &&
        isNat(m['from']) &&
        arrayOf(m['entries'], isAcceptedEntry) &&
        nullOr(m['next'], isNat) &&
        isNat(m['floor']) &&
        isNat(m['applied']) &&
        isNat(m['maxRound']) &&
        typeof m['lossy'] === 'boolean'
      );
    case 'log.accept':
      return (
        keys('ballot', 'attempt', 'entries', 'commit') &&
        isBallot(m['ballot']) &&
        isNat(m['attempt']) &&
        arrayOf(m['entries'], isSlotValue) &&
        isNat(m['commit'])
      );
    case 'log.accepted':
      return (
        keys('ballot', 'attempt', 'applied') &&
        isBallot(m['ballot']) &&
        isNat(m['attempt']) &&
        isNat(m['applied'])
      );
    case 'log.reject':
      return (
        keys('ballot', 'attempt', 'promised', 'maxRound') &&
        isBallot(m['ballot']) &&
        isNat(m['attempt']) &&
        nullOr(m['promised'], isBallot) &&
        isNat(m['maxRound'])
      );
    case 'log.recover':
      return keys('incarnation', 'from') && isInc(m['incarnation']) && isNat(m['from']);
    case 'log.recovery':
      return (
        keys('incarnation', 'voting', 'promised', 'maxRound', 'floor', 'from', 'entries', 'next') &&
        isInc(m['incarnation']) &&
        typeof m['voting'] === 'boolean' &&
        nullOr(m['promised'], isBallot) &&
        isNat(m['maxRound']) &&
        isNat(m['floor']) &&
        isNat(m['from']) &&
        arrayOf(m['entries'], isAcceptedEntry) &&
        nullOr(m['next'], isNat)
      );
    case 'log.fetch':
      return keys('from') && isNat(m['from']);
    case 'log.chosen':
      return keys('entries') && arrayOf(m['entries'], isSlotValue);
    case 'log.snapshot-fetch':
      return keys('slot', 'part') && isNat(m['slot']) && isNat(m['part']);
    case 'log.snapshot':
      return (
        keys('slot', 'part', 'parts', 'data') &&
        isNat(m['slot']) &&
        isNat(m['part']) &&
        isPartCount(m['parts']) &&
        isSnapshotData(m['data'])
      );
    case 'lock.request':
      return keys('commands') && arrayOf(m['commands'], (c) => isCommand(c, false));
    case 'lock.reply':
      return (
        keys('incarnation', 'replies') &&
        isInc(m['incarnation']) &&
        arrayOf(m['replies'], isLockReply)
      );
    case 'lock.redirect':
      return (
        keys('incarnation', 'seqs', 'leader') &&
        isInc(m['incarnation']) &&
        arrayOf(m['seqs'], isNat) &&
        nullOr(m['leader'], isId)
      );
    case 'lock.read':
      return (
        keys('incarnation', 'id', 'name') &&
        isInc(m['incarnation']) &&
        isNat(m['id']) &&
        isName(m['name'])
      );
    case 'lock.view':
      return (
        keys('incarnation', 'id', 'name', 'holder', 'token', 'waiters') &&
        isInc(m['incarnation']) &&
        isNat(m['id']) &&
        isName(m['name']) &&
        nullOr(m['holder'], isOwner) &&
        nullOr(m['token'], isToken) &&
        isNat(m['waiters'])
      );
    default:
      return false;
  }
}

/** Whether the parsed value `f` is a frame the node described by `expect` must accept. */
export function isAcceptableFrame(f: unknown, expect: DecodeExpectations): boolean {
  return (
    hasExactly(f, ['v', 'cluster', 'from', 'to', 'inc', 'msg']) &&
    f['v'] === PROTOCOL_VERSION &&
    isId(f['cluster']) &&
    isId(f['from']) &&
    isId(f['to']) &&
    isInc(f['inc']) &&
    isValidMessage(f['msg']) &&
    f['cluster'] === expect.cluster &&
    f['to'] === expect.self &&
    f['from'] !== expect.self &&
    expect.peers.has(f['from'] as string)
  );
}

/**
 * What the decoder must answer for `text`: refused, or accepted with exactly the value that
 * `JSON.parse` reads from it (a duplicate key thus means its last occurrence, as in JSON.parse).
 */
export function expectedDecode(
  text: string,
  expect: DecodeExpectations,
): { readonly ok: true; readonly value: unknown } | { readonly ok: false } {
  if (Buffer.byteLength(text, 'utf8') > (expect.maxBytes ?? DEFAULT_MAX_FRAME_BYTES)) {
    return { ok: false };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false };
  }
  // Nesting is limited in the text, before parsing: a deep value under a key that a later
  // duplicate overrides still counts.
  if (textDepth(text) > MAX_TEXT_DEPTH) return { ok: false };
  if (!isAcceptableFrame(value, expect)) return { ok: false };
  const decoded = withoutNegativeZero(value) as Obj;
  withTokensAsBigints(decoded['msg'] as Obj);
  return { ok: true, value: decoded };
}

/** The deepest nesting of objects and arrays a frame's text may have (docs/design.md). */
export const MAX_TEXT_DEPTH = 10;

/**
 * Turns the fencing tokens of a valid message (copied from JSON.parse's value, so owned here)
 * from their decimal strings into the `bigint`s a decoded message holds. Only tokens: a name or
 * an incarnation made of digits stays a string.
 */
function withTokensAsBigints(msg: Obj): void {
  const big = (o: Obj, key: string): void => {
    const text = o[key];
    if (typeof text === 'string') o[key] = BigInt(text);
  };
  const command = (c: Obj): void => {
    switch (c['op']) {
      case 'release':
      case 'expire':
        big(c, 'token');
        break;
      case 'renew':
        for (const lock of c['locks'] as Obj[]) big(lock, 'token');
        break;
      case 'epoch':
        big(c, 'base');
        break;
      default:
        break;
    }
  };
  const entries = (list: Obj[]): void => {
    for (const entry of list) {
      const batch = entry['value'] as Obj[] | null;
      for (const c of batch ?? []) command(c);
    }
  };
  switch (msg['type']) {
    case 'log.promise':
    case 'log.accept':
    case 'log.chosen':
    case 'log.recovery':
      entries(msg['entries'] as Obj[]);
      break;
    case 'lock.request':
      for (const c of msg['commands'] as Obj[]) command(c);
      break;
    case 'lock.reply':
      for (const reply of msg['replies'] as Obj[]) {
        if (reply['type'] === 'granted') big(reply, 'token');
      }
      break;
    case 'lock.view':
      big(msg, 'token');
      break;
    default:
      break;
  }
}

/** How deep objects and arrays nest in a JSON text. */
export function textDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charAt(i);
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') max = Math.max(max, ++depth);
    else if (c === '}' || c === ']') depth--;
  }
  return max;
}

/** A copy of a parsed JSON value with every -0 turned into 0 (as the decoder does). */
export function withoutNegativeZero(value: unknown): unknown {
  if (Object.is(value, -0)) return 0;
  if (Array.isArray(value)) return value.map(withoutNegativeZero);
  if (isObj(value)) {
    const out: Obj = {};
    for (const [k, v] of Object.entries(value)) {
      Object.defineProperty(out, k, {
        value: withoutNegativeZero(v),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Where things are in a JSON text

/** One `"key": value` member of an object in a JSON text, by position. */
export interface Member {
  readonly key: string;
  readonly keyStart: number;
  readonly keyEnd: number;
  readonly valueStart: number;
  readonly valueEnd: number;
  readonly kind: 'object' | 'array' | 'string' | 'number' | 'literal';
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

/** Every object member of the JSON text, in text order; null if the text is not JSON. */
export function scanMembers(text: string): Member[] | null {
  const members: Member[] = [];
  let i = 0;
  const skipSpace = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text.charAt(i))) i++;
  };
  const string = (): boolean => {
    if (text.charAt(i) !== '"') return false;
    for (i++; i < text.length; i++) {
      const c = text.charAt(i);
      if (c === '\\') i++;
      else if (c === '"') {
        i++;
        return true;
      }
    }
    return false;
  };
  const value = (depth: number): Member['kind'] | null => {
    if (depth > 64) return null;
    skipSpace();
    const c = text.charAt(i);
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      skipSpace();
      if (text.charAt(i) === close) {
        i++;
        return c === '{' ? 'object' : 'array';
      }
      for (;;) {
        skipSpace();
        if (c === '{') {
          const keyStart = i;
          if (!string()) return null;
          const keyEnd = i;
          let key: unknown;
          try {
            key = JSON.parse(text.slice(keyStart, keyEnd));
          } catch {
            return null;
          }
          skipSpace();
          if (text.charAt(i) !== ':') return null;
          i++;
          skipSpace();
          const valueStart = i;
          const kind = value(depth + 1);
          if (kind === null) return null;
          members.push({ key: String(key), keyStart, keyEnd, valueStart, valueEnd: i, kind });
        } else if (value(depth + 1) === null) {
          return null;
        }
        skipSpace();
        if (text.charAt(i) === ',') {
          i++;
          continue;
        }
        if (text.charAt(i) === close) {
          i++;
          return c === '{' ? 'object' : 'array';
        }
        return null;
      }
    }
    if (c === '"') return string() ? 'string' : null;
    NUMBER.lastIndex = i;
    const number = NUMBER.exec(text);
    if (number !== null) {
      i += number[0].length;
      return 'number';
    }
    for (const literal of ['true', 'false', 'null']) {
      if (text.startsWith(literal, i)) {
        i += literal.length;
        return 'literal';
      }
    }
    return null;
  };
  if (value(0) === null) return null;
  skipSpace();
  return i === text.length ? members : null;
}

// ---------------------------------------------------------------------------------------------
// Mutations of the text of a frame

/** Tokens of every JSON kind, to put where a value of another kind belongs. */
export const RETYPE_TOKENS: readonly string[] = [
  '"s"',
  '""',
  '7',
  '0',
  'true',
  'false',
  'null',
  '[]',
  '[1]',
  '{}',
  '{"round":1}',
  '"1"',
  '[null]',
  '["0"]',
  '{"op":"epoch","base":"1"}',
  '{"type":"stale","seq":1}',
];

/** Numbers at the edges, including texts that are not JSON numbers or not numbers at all. */
export const NUMBER_EDGES: readonly string[] = [
  '-0',
  '-0.0',
  '0.0',
  '0e0',
  '0E+0',
  '1e0',
  '1E1',
  '1.0',
  '1.5',
  '-1',
  '1e308',
  '-1e308',
  '1e309',
  '1e-400',
  '5e-324',
  '4294967296',
  '9007199254740991',
  '9007199254740992',
  '9007199254740993',
  '18446744073709551616',
  '3600000',
  '3600001',
  '16384',
  '16385',
  '2147483647',
  '2147483648',
  '1' + '0'.repeat(400),
  '01',
  '+1',
  '.5',
  '1.',
  '0x10',
  '1_000',
  'NaN',
  'Infinity',
  '-Infinity',
  '"NaN"',
  '"Infinity"',
  '"-0"',
  '"1"',
  '"1e3"',
  '" 1"',
];

/** Ids, types, phases and incarnations that almost fit, as JSON string literals. */
export const STRING_EDGES: readonly string[] = [
  '""',
  '" "',
  '"a"',
  '"b"',
  '"c"',
  '"B"',
  '"b "',
  '" b"',
  '"b\\u0000"',
  '"\\u0062"',
  '"\\ud800"',
  '"\\udc00\\ud800"',
  '"\uff42"',
  '"b\u0301"',
  '"__proto__"',
  '"constructor"',
  '"toString"',
  '"synod"',
  '"prepare"',
  '"accept"',
  '"commit"',
  '"lease.prepare"',
  '"lease.promise"',
  '"lease.accept"',
  '"lease.accepted"',
  '"lease.reject"',
  '"lease.chosen"',
  '"lease.release"',
  '"paxos.prepare"',
  '"paxos.promise"',
  '"paxos.accept"',
  '"paxos.accepted"',
  '"paxos.reject"',
  '"lease.PREPARE"',
  '"log.promise"',
  '"log.accept"',
  '"log.snapshot"',
  '"lock.request"',
  '"lock.reply"',
  '"lock.view"',
  '"acquire"',
  '"release"',
  '"renew"',
  '"expire"',
  '"epoch"',
  '"granted"',
  '"not-held"',
  '"queued"',
  '"unknown"',
  // Tokens, and spellings of them that are not canonical decimal strings.
  '"0"',
  '"-1"',
  '"9223372036854775807"',
  '"-9223372036854775808"',
  '"9223372036854775808"',
  '"-9223372036854775809"',
  '"-0"',
  '"00"',
  '"01"',
  '"+1"',
  '"1 "',
  '"1.0"',
  '"0x10"',
  '"\uff11"',
  // Base64, right and wrong.
  '"AAAA"',
  '"AA=="',
  '"AAA="',
  '"A"',
  '"AAAAA"',
  '"A==="',
  '"AA-_"',
  '"AA\\nAA"',
  '"0123456789abcdef"',
  '"0123456789ABCDEF"',
  '"0123456789abcde"',
  '"0123456789abcdef0"',
  '"0123456789abcdeg"',
  '"\\u0030123456789abcdef"',
];

/** Key names that are special to JavaScript objects, or near the schema's own. */
export const SPECIAL_KEYS: readonly string[] = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'type',
  'v',
  'msg',
  'ballot',
  '',
  ' v',
  'V',
  'v\u0000',
];

/** Characters and escapes that trip decoders, to put inside a string. */
export const UNICODE_EDGES: readonly string[] = [
  '\u0000',
  '\u001f',
  '\u007f',
  '\ud800',
  '\udfff',
  '\ud83d\ude00',
  '\ufeff',
  '\ufffe',
  '\uffff',
  '\u2028',
  '\u2029',
  '\u202e',
  '\u0301',
  'é',
  '€',
  '\\u0000',
  '\\ud800',
  '\\udfff\\ud800',
  '\\u0041',
  '\\"',
  '\\\\',
  '\\/',
  '\\x41',
  '\\u00',
  '\\',
  '\\\n',
];

/** Ways to wrap a whole frame: some leave it valid JSON, most do not. */
const WRAPS: readonly ((t: string) => string)[] = [
  (t) => '\ufeff' + t,
  (t) => ' \n\t\r' + t + ' \n',
  (t) => '\u00a0' + t,
  (t) => t + 'x',
  (t) => t + ',',
  (t) => '[' + t + ']',
  (t) => t + t,
  (t) => '{"v":1,' + t.slice(1),
  (t) => t.slice(0, -1) + ',"v":2}',
  () => 'null',
  (t) => t.replace(/:/g, ' : ').replace(/,/g, ' , '),
];

/** Nesting depths around the decoder's limit, and far beyond it. */
const NEST_DEPTHS: readonly number[] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 64, 5000];

/** Sizes around the id, name, value, snapshot part and frame limits, as string literals. */
const HUGE: readonly (() => string)[] = [
  () => 'a'.repeat(63),
  () => 'a'.repeat(64),
  () => 'a'.repeat(65),
  () => '\ud83d\ude00'.repeat(32),
  () => '\ud83d\ude00'.repeat(33),
  () => 'n'.repeat(256),
  () => 'n'.repeat(257),
  () => '\ud83d\ude00'.repeat(128),
  () => 'n' + '\ud83d\ude00'.repeat(128),
  () => 'QUJD'.repeat(12_288),
  () => 'QUJD'.repeat(12_289),
  () => 'v'.repeat(16 * 1024),
  () => 'v'.repeat(16 * 1024 + 1),
  () => 'é'.repeat(8 * 1024),
  () => 'é'.repeat(8 * 1024 + 1),
  () => '€'.repeat(5462),
  () => 'x'.repeat(70_000),
  () => '€'.repeat(21_846),
  () => '\\u0000'.repeat(11_000),
];

export const RAW_OPS = [
  'remove',
  'retype',
  'duplicate',
  'duplicate-before',
  'number',
  'string',
  'escape',
  'rename',
  'insert-key',
  'truncate',
  'nest',
  'unicode',
  'bytes',
  'wrap',
  'huge',
] as const;

export type RawOp = (typeof RAW_OPS)[number];

/** One edit of a frame's text; `at` and `pick` choose where and what, modulo what exists. */
export interface RawMutation {
  readonly op: RawOp;
  readonly at: number;
  readonly pick: number;
}

function pickOf<T>(list: readonly T[], n: number): T {
  const item = list[Math.abs(n) % list.length];
  if (item === undefined) throw new Error('empty list');
  return item;
}

function splice(text: string, start: number, end: number, insert: string): string {
  return text.slice(0, start) + insert + text.slice(end);
}

/** A member of `kind`, searching from `at` onwards (wrapping), or null if there is none. */
function memberOf(members: readonly Member[], at: number, kind?: Member['kind']): Member | null {
  for (let k = 0; k < members.length; k++) {
    const m = members[(at + k) % members.length];
    if (m !== undefined && (kind === undefined || m.kind === kind)) return m;
  }
  return null;
}

/**
 * Applies one mutation to `text`. Structural edits need `text` to be JSON; on text that is not,
 * they fall back to a byte-level edit.
 */
export function applyRawMutation(text: string, mutation: RawMutation): string {
  const { op, at, pick } = mutation;
  const members = scanMembers(text);
  const structural = op !== 'truncate' && op !== 'bytes' && op !== 'wrap';
  if (structural && (members === null || members.length === 0)) {
    return applyRawMutation(text, { op: 'bytes', at, pick });
  }
  const list = members ?? [];
  const member = memberOf(list, at % Math.max(1, list.length));
  switch (op) {
    case 'remove': {
      if (member === null) return text;
      let start = member.keyStart;
      let end = member.valueEnd;
      let after = end;
      while (' \t\n\r'.includes(text.charAt(after)) && after < text.length) after++;
      if (text.charAt(after) === ',') {
        end = after + 1;
      } else {
        let before = start - 1;
        while (before >= 0 && ' \t\n\r'.includes(text.charAt(before))) before--;
        if (text.charAt(before) === ',') start = before;
      }
      return splice(text, start, end, '');
    }
    case 'retype':
      if (member === null) return text;
      return splice(text, member.valueStart, member.valueEnd, pickOf(RETYPE_TOKENS, pick));
    case 'duplicate':
    case 'duplicate-before': {
      if (member === null) return text;
      const own = text.slice(member.valueStart, member.valueEnd);
      const tokens = [own, ...RETYPE_TOKENS, ...NUMBER_EDGES.slice(0, 12), ...STRING_EDGES];
      const pair = `${text.slice(member.keyStart, member.keyEnd)}:${pickOf(tokens, pick)}`;
      return op === 'duplicate'
        ? splice(text, member.valueEnd, member.valueEnd, ',' + pair)
        : splice(text, member.keyStart, member.keyStart, pair + ',');
    }
    case 'number': {
      const m = memberOf(list, at, 'number') ?? member;
      if (m === null) return text;
      return splice(text, m.valueStart, m.valueEnd, pickOf(NUMBER_EDGES, pick));
    }
    case 'string': {
      const m = memberOf(list, at, 'string') ?? member;
      if (m === null) return text;
      return splice(text, m.valueStart, m.valueEnd, pickOf(STRING_EDGES, pick));
    }
    case 'escape': {
      // The same string written with \u escapes: a different text for the same value.
      const m = memberOf(list, at, 'string');
      if (m === null) return text;
      let value: string;
      try {
        value = JSON.parse(text.slice(m.valueStart, m.valueEnd)) as string;
      } catch {
        return applyRawMutation(text, { op: 'bytes', at, pick });
      }
      let escaped = '';
      for (let k = 0; k < value.length; k++) {
        escaped +=
          (k + pick) % 2 === 0
            ? '\\u' + value.charCodeAt(k).toString(16).padStart(4, '0')
            : JSON.stringify(value.charAt(k)).slice(1, -1);
      }
      return splice(text, m.valueStart, m.valueEnd, `"${escaped}"`);
    }
    case 'rename':
      if (member === null) return text;
      return splice(
        text,
        member.keyStart,
        member.keyEnd,
        JSON.stringify(pickOf(SPECIAL_KEYS, pick)),
      );
    case 'insert-key': {
      if (member === null) return text;
      const pair = `${JSON.stringify(pickOf(SPECIAL_KEYS, pick))}:${pickOf(RETYPE_TOKENS, at)}`;
      return splice(text, member.keyStart, member.keyStart, pair + ',');
    }
    case 'truncate': {
      const cut = text.length === 0 ? 0 : at % text.length;
      const tail = pick % 3 === 0 ? '' : pick % 3 === 1 ? '}' : '"}}';
      return text.slice(0, cut) + tail;
    }
    case 'nest': {
      if (member === null) return text;
      const depth = pickOf(NEST_DEPTHS, pick);
      const inner = text.slice(member.valueStart, member.valueEnd);
      const wrapped =
        (at + pick) % 2 === 0
          ? '['.repeat(depth) + inner + ']'.repeat(depth)
          : '{"a":'.repeat(depth) + inner + '}'.repeat(depth);
      return splice(text, member.valueStart, member.valueEnd, wrapped);
    }
    case 'unicode': {
      const m = memberOf(list, at, 'string');
      if (m === null) return applyRawMutation(text, { op: 'bytes', at, pick });
      const where = pick % 2 === 0 ? m.valueStart + 1 : m.valueEnd - 1;
      return splice(text, where, where, pickOf(UNICODE_EDGES, Math.floor(pick / 2)));
    }
    case 'bytes': {
      if (text.length === 0) return pickOf(['{', '"', '\u0000', ' '], pick);
      const p = at % text.length;
      switch (pick % 5) {
        case 0:
          return splice(text, p, p + 1, '');
        case 1:
          return splice(text, p, p, text.charAt(p));
        case 2:
          return splice(
            text,
            p,
            p + 1,
            pickOf(['{', '}', '[', ']', '"', ':', ',', '\\', '0', '9', 'a', '-'], pick),
          );
        case 3:
          return splice(text, p, Math.min(text.length, p + 2), text.charAt(p + 1) + text.charAt(p));
        default:
          return splice(
            text,
            p,
            p + 1,
            String.fromCharCode((text.charCodeAt(p) ^ (1 << (pick % 7))) & 0xffff),
          );
      }
    }
    case 'wrap':
      return pickOf(WRAPS, pick)(text);
    case 'huge': {
      const m = memberOf(list, at, 'string') ?? member;
      if (m === null) return text;
      return splice(text, m.valueStart, m.valueEnd, `"${pickOf(HUGE, pick)()}"`);
    }
    default: {
      const never: never = op;
      return never;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// A seeded source of frames

/** The node frames are aimed at: its cluster, its id, and its peers (itself excluded). */
export interface Target {
  readonly cluster: string;
  readonly self: NodeId;
  readonly peers: readonly NodeId[];
}

export function expectationsOf(target: Target): DecodeExpectations {
  return { cluster: target.cluster, self: target.self, peers: new Set(target.peers) };
}

export const FRAME_KINDS = [
  'random-text',
  'random-json',
  'valid',
  'reply',
  'envelope',
  'mutated',
] as const;

export type FrameKind = (typeof FRAME_KINDS)[number];

/** A frame to deliver, and which peer's link it arrives over. */
export interface Hostile {
  readonly kind: FrameKind;
  readonly link: NodeId;
  readonly text: string;
}

/** A message the target sent, which the source may answer (to drive it into leadership). */
export interface Sent {
  readonly to: NodeId;
  readonly message: ProtocolMessage;
}

const MESSAGE_TYPES: readonly ProtocolMessage['type'][] = [
  'lease.prepare',
  'lease.promise',
  'lease.accept',
  'lease.accepted',
  'lease.reject',
  'lease.chosen',
  'lease.release',
  'lease.recover',
  'lease.recovery',
  'paxos.prepare',
  'paxos.promise',
  'paxos.accept',
  'paxos.accepted',
  'paxos.reject',
  'log.prepare',
  'log.promise',
  'log.accept',
  'log.accepted',
  'log.reject',
  'log.recover',
  'log.recovery',
  'log.fetch',
  'log.chosen',
  'log.snapshot-fetch',
  'log.snapshot',
  'lock.request',
  'lock.reply',
  'lock.redirect',
  'lock.read',
  'lock.view',
];

const RANDOM_KEYS = [
  'v',
  'cluster',
  'from',
  'to',
  'inc',
  'msg',
  'type',
  'ballot',
  'round',
  'node',
  'incarnation',
  'value',
  'term',
  'owner',
  'op',
  'token',
  'entries',
  '__proto__',
  'constructor',
  'x',
  '',
];

const ALPHABETS: readonly string[] = [
  'abcdefghijklmnopqrstuvwxyz0123456789',
  '{}[]":,0123456789-+.eEtruefalsnl \\/',
  '{"v":1,"cluster":"synod","from":"b","to":"a","msg":{"type":"lease.prepare"}}',
];

/**
 * Frames of every kind for one target, from a seeded `Rng`: random text, random JSON, valid
 * frames (with numbers and ids at their edges), answers to what the target sent, frames with a
 * wrong envelope, and valid frames mutated through their text (one to three edits).
 */
export class FrameSource {
  readonly #rng: Rng;
  readonly #target: Target;
  readonly #big: boolean;
  /** Each peer's current incarnation, and the ones it had before (a restart). */
  readonly #incarnations = new Map<NodeId, { current: string; older: string[] }>();

  /**
   * With `big: false`, no text near the frame size limit (random text, or the `huge` edit):
   * for floods that must reach the node rather than lose their connection.
   */
  constructor(rng: Rng, target: Target, options: { readonly big?: boolean } = {}) {
    this.#rng = rng;
    this.#target = target;
    this.#big = options.big ?? true;
    for (const peer of target.peers) {
      this.#incarnations.set(peer, { current: randomIncarnation(rng), older: [] });
    }
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.#rng.next() * n);
  }

  chance(p: number): boolean {
    return this.#rng.next() < p;
  }

  pick<T>(list: readonly T[]): T {
    return pickOf(list, this.int(list.length));
  }

  /** The next frame; `sent` is what the target sent lately, which it may answer. */
  next(sent: readonly Sent[] = []): Hostile {
    const r = this.#rng.next();
    if (r < 0.08) return { kind: 'random-text', link: this.peer(), text: this.randomText() };
    if (r < 0.16) {
      return { kind: 'random-json', link: this.peer(), text: JSON.stringify(this.randomJson(4)) };
    }
    if (r < 0.28) {
      const frame = this.validFrame();
      return { kind: 'valid', link: frame.from, text: encodeFrame(frame) };
    }
    if (r < 0.4) {
      const frame = this.reply(sent) ?? this.validFrame();
      return { kind: 'reply', link: frame.from, text: encodeFrame(frame) };
    }
    if (r < 0.48) return this.envelope();
    const base = this.chance(0.5) ? (this.reply(sent) ?? this.validFrame()) : this.validFrame();
    return { kind: 'mutated', link: base.from, text: this.mutate(encodeFrame(base)) };
  }

  /** `text` after one to three raw mutations. */
  mutate(text: string): string {
    let out = text;
    const edits = 1 + (this.chance(0.7) ? 0 : this.int(3));
    for (let k = 0; k < edits; k++) out = applyRawMutation(out, this.rawMutation());
    return out;
  }

  rawMutation(): RawMutation {
    const ops = this.#big ? RAW_OPS : RAW_OPS.filter((op) => op !== 'huge');
    return { op: this.pick(ops), at: this.int(1 << 30), pick: this.int(1 << 30) };
  }

  peer(): NodeId {
    return this.pick(this.#target.peers);
  }

  /** A peer's incarnation: usually its current one, sometimes a new one (it restarted). */
  incarnation(peer: NodeId): string {
    const known = this.#incarnations.get(peer);
    if (known === undefined) return randomIncarnation(this.#rng);
    if (this.chance(0.01)) {
      known.older.push(known.current);
      if (known.older.length > 4) known.older.shift();
      known.current = randomIncarnation(this.#rng);
    } else if (known.older.length > 0 && this.chance(0.005)) {
      return this.pick(known.older);
    }
    return known.current;
  }

  frame(from: NodeId, msg: ProtocolMessage): Frame {
    return {
      v: PROTOCOL_VERSION,
      cluster: this.#target.cluster,
      from,
      to: this.#target.self,
      inc: this.incarnation(from),
      msg,
    };
  }

  validFrame(): Frame {
    const from = this.peer();
    return this.frame(from, this.message(this.pick(MESSAGE_TYPES), from));
  }

  /** A valid answer to something the target sent, or null if it sent nothing answerable. */
  reply(sent: readonly Sent[]): Frame | null {
    const last =
      sent.length === 0 ? undefined : sent[sent.length - 1 - this.int(Math.min(4, sent.length))];
    if (last === undefined || !this.#target.peers.includes(last.to)) return null;
    const m = last.message;
    const from = last.to;
    let msg: ProtocolMessage;
    switch (m.type) {
      case 'lease.prepare':
        msg = this.chance(0.85)
          ? {
              type: 'lease.promise',
              ballot: m.ballot,
              accepted: null,
              maxRound: Math.max(0, m.ballot.round - 1),
              termSeen: 0,
            }
          : {
              type: 'lease.reject',
              ballot: m.ballot,
              phase: 'prepare',
              promised: { ...m.ballot, round: above(m.ballot.round, 1 + this.int(3)), node: from },
              holder: null,
              maxRound: above(m.ballot.round, 1),
              termSeen: 0,
            };
        break;
      case 'lease.accept':
        msg = this.chance(0.9)
          ? { type: 'lease.accepted', ballot: m.ballot, maxRound: m.ballot.round }
          : {
              type: 'lease.reject',
              ballot: m.ballot,
              phase: 'accept',
              promised: null,
              holder: { node: from, incarnation: this.incarnation(from) },
              maxRound: m.ballot.round,
              termSeen: 0,
            };
        break;
      case 'lease.promise':
      case 'lease.accepted':
      case 'lease.reject':
        // The target answered one of this peer's rounds: the peer goes on (or gives up).
        msg = this.chance(0.7)
          ? {
              type: 'lease.accept',
              ballot: m.ballot,
              value: {
                owner: { node: from, incarnation: m.ballot.incarnation },
                leaseMs: 300,
                term: Math.max(1, m.ballot.round),
              },
            }
          : { type: 'lease.chosen', ballot: m.ballot, term: Math.max(1, m.ballot.round) };
        break;
      case 'log.prepare':
        msg = this.chance(0.85)
          ? {
              type: 'log.promise',
              ballot: m.ballot,
              attempt: m.attempt,
              from: m.from,
              entries: this.chance(0.7) ? [] : this.items(() => this.acceptedEntry(from)),
              next: null,
              floor: Math.max(0, m.from - 1),
              applied: Math.max(0, m.from - 1),
              maxRound: m.ballot.round,
              lossy: false,
            }
          : {
              type: 'log.reject',
              ballot: m.ballot,
              attempt: m.attempt,
              promised: { ...m.ballot, round: above(m.ballot.round, 1), node: from },
              maxRound: above(m.ballot.round, 1),
            };
        break;
      case 'log.accept':
        msg = {
          type: 'log.accepted',
          ballot: m.ballot,
          attempt: m.attempt,
          applied: m.commit,
        };
        break;
      case 'log.fetch':
        msg = { type: 'log.chosen', entries: [{ slot: m.from, value: this.logValue(from) }] };
        break;
      case 'log.recover':
        msg = {
          type: 'log.recovery',
          incarnation: m.incarnation,
          voting: true,
          promised: null,
          maxRound: this.round(),
          floor: 0,
          from: m.from,
          entries: [],
          next: null,
        };
        break;
      case 'log.snapshot-fetch':
        msg = {
          type: 'log.snapshot',
          slot: Math.max(1, m.slot),
          part: m.part,
          parts: Math.min(16_384, m.part + 1),
          data: this.snapshotData(),
        };
        break;
      case 'lock.request': {
        const holder = m.commands[0]?.holder;
        msg = this.chance(0.9)
          ? {
              type: 'lock.reply',
              incarnation: holder?.incarnation ?? this.incarnation(from),
              replies: m.commands.map((c) => this.replyTo(c)),
            }
          : {
              type: 'lock.redirect',
              incarnation: holder?.incarnation ?? this.incarnation(from),
              seqs: m.commands.map((c) => c.seq),
              leader: this.chance(0.5) ? null : this.peer(),
            };
        break;
      }
      case 'lock.read':
        msg = {
          type: 'lock.view',
          incarnation: m.incarnation,
          id: m.id,
          name: m.name,
          holder: this.chance(0.5) ? null : this.owner(),
          token: this.chance(0.5) ? null : this.token(),
          waiters: this.int(3),
        };
        break;
      // Answers, and messages that ask for none.
      case 'lease.chosen':
      case 'lease.release':
      case 'lease.recover':
      case 'lease.recovery':
      case 'paxos.prepare':
      case 'paxos.promise':
      case 'paxos.accept':
      case 'paxos.accepted':
      case 'paxos.reject':
      case 'log.promise':
      case 'log.accepted':
      case 'log.reject':
      case 'log.chosen':
      case 'log.snapshot':
      case 'log.recovery':
      case 'lock.reply':
      case 'lock.redirect':
      case 'lock.view':
        return null;
      default: {
        const never: never = m;
        return never;
      }
    }
    return this.frame(from, msg);
  }

  /** What the leader might answer to one client command, once it applied. */
  replyTo(c: ClientCommand): LockReply {
    switch (c.op) {
      case 'acquire':
        return this.chance(0.7)
          ? {
              type: 'granted',
              seq: c.seq,
              name: c.name,
              token: this.token(),
              ttlMs: c.ttlMs,
              version: this.round(),
            }
          : { type: c.wait ? 'queued' : 'busy', seq: c.seq, name: c.name };
      case 'release':
        return { type: this.chance(0.8) ? 'released' : 'not-held', seq: c.seq, name: c.name };
      case 'renew':
        return {
          type: 'renewed',
          seq: c.seq,
          versions: c.locks.map(() => (this.chance(0.9) ? this.round() : null)),
        };
      case 'cancel':
        return {
          type: 'cancelled',
          seq: c.seq,
          target: c.target,
          was: this.pick(['queued', 'granted', 'unknown'] as const),
        };
      default: {
        const never: never = c;
        return never;
      }
    }
  }

  /** A valid message of `type` from `from`, its fields drawn from values at their edges. */
  message(type: ProtocolMessage['type'], from: NodeId): ProtocolMessage {
    const ballot = (): Ballot => this.ballot(from);
    switch (type) {
      case 'lease.prepare':
        return { type, ballot: ballot() };
      case 'lease.promise':
        return {
          type,
          ballot: ballot(),
          accepted: this.chance(0.5) ? null : { ballot: ballot(), value: this.leaseValue() },
          maxRound: this.round(),
          termSeen: this.round(),
        };
      case 'lease.accept':
        return { type, ballot: ballot(), value: this.leaseValue() };
      case 'lease.accepted':
        return { type, ballot: ballot(), maxRound: this.round() };
      case 'lease.reject':
        return {
          type,
          ballot: ballot(),
          phase: this.chance(0.5) ? 'prepare' : 'accept',
          promised: this.chance(0.3) ? null : ballot(),
          holder: this.chance(0.5) ? null : this.owner(),
          maxRound: this.round(),
          termSeen: this.round(),
        };
      case 'lease.chosen':
        return { type, ballot: ballot(), term: Math.max(1, this.round()) };
      case 'lease.release':
        return {
          type,
          owner: this.owner(),
          ballot: ballot(),
          successor: this.chance(0.5) ? null : this.id(),
        };
      case 'lease.recover':
        return { type, incarnation: this.incarnation(from) };
      case 'lease.recovery':
        return {
          type,
          incarnation: this.incarnation(from),
          maxRound: this.round(),
          recovered: this.chance(0.5),
        };
      case 'paxos.prepare':
      case 'paxos.accepted':
        return { type, instance: this.round(), ballot: ballot() };
      case 'paxos.promise':
        return {
          type,
          instance: this.round(),
          ballot: ballot(),
          accepted: this.chance(0.5) ? null : { ballot: ballot(), value: this.paxosValue() },
        };
      case 'paxos.accept':
        return { type, instance: this.round(), ballot: ballot(), value: this.paxosValue() };
      case 'paxos.reject':
        return { type, instance: this.round(), ballot: ballot(), promised: ballot() };
      case 'log.prepare':
        return { type, ballot: ballot(), attempt: this.round(), from: this.round() };
      case 'log.promise':
        return {
          type,
          ballot: ballot(),
          attempt: this.round(),
          from: this.round(),
          entries: this.items(() => this.acceptedEntry(from)),
          next: this.chance(0.5) ? null : this.round(),
          floor: this.round(),
          applied: this.round(),
          maxRound: this.round(),
          lossy: this.chance(0.5),
        };
      case 'log.recover':
        return { type, incarnation: this.incarnation(from), from: this.round() };
      case 'log.recovery':
        return {
          type,
          incarnation: this.incarnation(from),
          voting: this.chance(0.5),
          promised: this.chance(0.3) ? null : ballot(),
          maxRound: this.round(),
          floor: this.round(),
          from: this.round(),
          entries: this.items(() => this.acceptedEntry(from)),
          next: this.chance(0.5) ? null : this.round(),
        };
      case 'log.accept':
        return {
          type,
          ballot: ballot(),
          attempt: this.round(),
          entries: this.items(() => this.slotValue(from)),
          commit: this.round(),
        };
      case 'log.accepted':
        return { type, ballot: ballot(), attempt: this.round(), applied: this.round() };
      case 'log.reject':
        return {
          type,
          ballot: ballot(),
          attempt: this.round(),
          promised: this.chance(0.3) ? null : ballot(),
          maxRound: this.round(),
        };
      case 'log.fetch':
        return { type, from: this.round() };
      case 'log.chosen':
        return { type, entries: this.items(() => this.slotValue(from)) };
      case 'log.snapshot-fetch':
        return { type, slot: this.round(), part: this.round() };
      case 'log.snapshot':
        return {
          type,
          slot: this.round(),
          part: this.round(),
          parts: this.pick([1, 2, 16_384, 1 + this.int(16_384)]),
          data: this.snapshotData(),
        };
      case 'lock.request':
        return { type, commands: this.items(() => this.clientCommand(from)) };
      case 'lock.reply':
        return {
          type,
          incarnation: this.incarnation(from),
          replies: this.chance(0.01)
            ? [{ type: 'renewed', seq: 1, versions: Array.from({ length: 4096 }, () => null) }]
            : this.items(() => this.lockReply()),
        };
      case 'lock.redirect':
        return {
          type,
          incarnation: this.incarnation(from),
          seqs: this.items(
            () => this.round(),
            () => this.int(10),
          ),
          leader: this.chance(0.5) ? null : this.id(),
        };
      case 'lock.read':
        return { type, incarnation: this.incarnation(from), id: this.round(), name: this.name() };
      case 'lock.view':
        return {
          type,
          incarnation: this.incarnation(from),
          id: this.round(),
          name: this.name(),
          holder: this.chance(0.5) ? null : this.owner(),
          token: this.chance(0.5) ? null : this.token(),
          waiters: this.round(),
        };
      default: {
        const never: never = type;
        return never;
      }
    }
  }

  /**
   * A message's array: empty or short mostly, up to 64 items sometimes, and now and then the
   * most an array may hold (4,096) of `tiny` items, small enough that they fit a frame.
   */
  items<T>(item: () => T, tiny?: () => T): T[] {
    const r = this.#rng.next();
    if (tiny !== undefined && r >= 0.99 && this.#big) return Array.from({ length: 4096 }, tiny);
    // Without `big`, a few items only: a page of long entries would pass the frame limit.
    const length = r < 0.25 ? 0 : r < 0.9 || !this.#big ? 1 + this.int(4) : this.int(65);
    return Array.from({ length }, item);
  }

  /** An array inside an array's items: up to four items, so frames stay of a sane size. */
  few<T>(item: () => T): T[] {
    return Array.from({ length: this.int(5) }, item);
  }

  /** A lock name: short mostly; sometimes 256 UTF-16 code units, non-BMP characters included. */
  name(): string {
    if (this.chance(0.85)) return this.pick(['lock', 'jobs/nightly', 'n' + String(this.int(100))]);
    return this.pick([
      'x',
      '\ud83d\ude00',
      'n'.repeat(256),
      '\ud83d\ude00'.repeat(128),
      'é'.repeat(256),
      '\u0000'.repeat(256),
      'a' + this.#shortText(this.int(255)),
    ]);
  }

  /** A fencing token: small mostly, at the edges of the signed 64-bit range sometimes. */
  token(): bigint {
    const r = this.#rng.next();
    if (r < 0.6) return BigInt(this.int(1000));
    if (r < 0.8) {
      return this.pick([0n, 1n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n, -(2n ** 53n)]);
    }
    const high = BigInt(this.int(2 ** 31)) * (this.chance(0.5) ? 1n : -1n);
    return (high << 32n) + BigInt(this.int(2 ** 32));
  }

  ttl(): number {
    return this.pick([1, 1000, 30_000, 2 ** 31 - 1, 1 + this.int(2 ** 31 - 1)]);
  }

  /** A command a holder on `from` sends (its holder is usually on `from`). */
  clientCommand(from: NodeId): ClientCommand {
    const holder = this.chance(0.8)
      ? { node: from, incarnation: this.incarnation(from) }
      : this.owner();
    const client = { holder, seq: this.round(), acked: this.round() };
    switch (this.int(4)) {
      case 0:
        return {
          op: 'acquire',
          ...client,
          name: this.name(),
          ttlMs: this.ttl(),
          wait: this.chance(0.5),
        };
      case 1:
        return { op: 'release', ...client, name: this.name(), token: this.token() };
      case 2:
        return {
          op: 'renew',
          ...client,
          locks: this.few(() => ({ name: this.name(), token: this.token() })),
        };
      default:
        return { op: 'cancel', ...client, target: this.round() };
    }
  }

  /** A command of any kind, the leader's own included. */
  command(from: NodeId): LockCommand {
    switch (this.int(7)) {
      case 0:
        return { op: 'expire', name: this.name(), token: this.token(), version: this.round() };
      case 1:
        return {
          op: this.int(2) === 0 ? 'retire' : 'abandon',
          holders: this.few(() => this.owner()),
        };
      case 2:
        return { op: 'epoch', base: this.token() };
      default:
        return this.clientCommand(from);
    }
  }

  logValue(from: NodeId): LogValue<LockCommand> {
    return this.chance(0.3) ? null : this.few(() => this.command(from));
  }

  slotValue(from: NodeId): SlotValue<LockCommand> {
    return { slot: this.round(), value: this.logValue(from) };
  }

  acceptedEntry(from: NodeId): AcceptedEntry<LockCommand> {
    return { slot: this.round(), ballot: this.ballot(from), value: this.logValue(from) };
  }

  lockReply(): LockReply {
    const seq = this.round();
    const type = this.pick([
      'granted',
      'queued',
      'busy',
      'ended',
      'released',
      'not-held',
      'renewed',
      'cancelled',
      'stale',
    ] as const);
    switch (type) {
      case 'granted':
        return {
          type,
          seq,
          name: this.name(),
          token: this.token(),
          ttlMs: this.ttl(),
          version: this.round(),
        };
      case 'renewed':
        return {
          type,
          seq,
          versions: this.few(() => (this.chance(0.8) ? this.round() : null)),
        };
      case 'cancelled':
        return {
          type,
          seq,
          target: this.round(),
          was: this.pick(['queued', 'granted', 'unknown'] as const),
        };
      case 'stale':
        return { type, seq };
      case 'queued':
      case 'busy':
      case 'ended':
      case 'released':
      case 'not-held':
        return { type, seq, name: this.name() };
      default: {
        const never: never = type;
        return never;
      }
    }
  }

  /** Base64 of a snapshot part: short mostly, a whole part (36 KiB of data) sometimes. */
  snapshotData(): string {
    // Full parts only with `big`: without, a text edit must not push a frame past the limit.
    const bytes =
      this.#big && this.chance(0.03)
        ? this.pick([36 * 1024, 36 * 1024 - 1, 36 * 1024 - 2])
        : this.int(40);
    return Buffer.from(Array.from({ length: bytes }, () => this.int(256))).toString('base64');
  }

  /** Rounds near zero mostly, at the top of the safe range sometimes. */
  round(): number {
    const r = this.#rng.next();
    if (r < 0.6) return this.int(50);
    if (r < 0.9) return this.int(1_000_000);
    if (r < 0.97) return 2 ** 31 + this.int(3) - 1;
    return Number.MAX_SAFE_INTEGER - this.int(3);
  }

  ballot(from: NodeId): Ballot {
    const node = this.chance(0.8) ? from : this.id();
    return {
      round: this.round(),
      node,
      incarnation: this.chance(0.8) ? this.incarnation(from) : randomIncarnation(this.#rng),
    };
  }

  owner(): Owner {
    const node = this.id();
    return {
      node,
      incarnation: this.chance(0.7) ? this.incarnation(node) : randomIncarnation(this.#rng),
    };
  }

  leaseValue(): { owner: Owner; leaseMs: number; term: number } {
    const leaseMs = this.pick([1, 100, 300, 1000, 60_000, 3_600_000, 1 + this.int(3_600_000)]);
    return { owner: this.owner(), leaseMs, term: Math.max(1, this.round()) };
  }

  /** A node id: a peer, the target itself, or a stranger (up to the 64-character limit). */
  id(): NodeId {
    const r = this.#rng.next();
    if (r < 0.6) return this.peer();
    if (r < 0.75) return this.#target.self;
    if (r < 0.9) return 'n' + String(this.int(100));
    return 'z'.repeat(1 + this.int(64));
  }

  /** A Paxos value: short text mostly, the largest allowed sometimes. */
  paxosValue(): string {
    if (this.chance(0.02)) return this.pick(['v'.repeat(16 * 1024), 'é'.repeat(8 * 1024)]);
    return this.#shortText(this.int(100));
  }

  /**
   * Random text: mostly short, from a few alphabets (JSON-ish ones included) or anywhere in the
   * BMP (lone surrogates included); with `big` sizes, sometimes around the frame size limit.
   */
  randomText(): string {
    const big = this.#big && this.chance(0.05);
    const length = big
      ? this.pick([64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 100_000])
      : this.int(200);
    const chunk = this.#shortText(Math.min(length, 512));
    return big
      ? chunk.repeat(Math.ceil(length / Math.max(1, chunk.length))).slice(0, length)
      : chunk;
  }

  #shortText(length: number): string {
    if (this.chance(0.4)) {
      const alphabet = this.pick(ALPHABETS);
      let s = '';
      for (let k = 0; k < length; k++) s += alphabet.charAt(this.int(alphabet.length));
      return s;
    }
    const units: number[] = [];
    for (let k = 0; k < length; k++) {
      units.push(this.chance(0.7) ? 0x20 + this.int(0x5f) : this.int(0x10000));
    }
    return String.fromCharCode(...units);
  }

  randomJson(depth: number): unknown {
    const r = this.#rng.next();
    if (depth <= 0 || r < 0.4) {
      return this.pick<unknown>([
        null,
        true,
        false,
        0,
        -1,
        1.5,
        2 ** 53,
        'b',
        'a',
        '',
        this.round(),
        this.randomText().slice(0, 20),
      ]);
    }
    if (r < 0.6) return Array.from({ length: this.int(4) }, () => this.randomJson(depth - 1));
    const out: Obj = {};
    const n = this.int(7);
    for (let k = 0; k < n; k++) {
      Object.defineProperty(out, this.pick(RANDOM_KEYS), {
        value: this.randomJson(depth - 1),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }

  /** A valid message in an envelope that is wrong for the target in one way. */
  envelope(): Hostile {
    const frame = this.validFrame();
    const peers = this.#target.peers;
    const other = peers.find((p) => p !== frame.from) ?? 'stranger';
    /** The frame as it travels (tokens as strings), with some envelope fields changed. */
    const loose = (changes: Record<string, unknown>): string =>
      JSON.stringify({ ...(JSON.parse(encodeFrame(frame)) as Obj), ...changes });
    switch (this.int(7)) {
      case 0:
        return {
          kind: 'envelope',
          link: frame.from,
          text: encodeFrame({ ...frame, cluster: 'other' }),
        };
      case 1:
        return { kind: 'envelope', link: frame.from, text: encodeFrame({ ...frame, to: other }) };
      case 2:
        return {
          kind: 'envelope',
          link: frame.from,
          text: encodeFrame({ ...frame, from: 'stranger' }),
        };
      case 3:
        return {
          kind: 'envelope',
          link: frame.from,
          text: encodeFrame({ ...frame, from: this.#target.self }),
        };
      case 4:
        // Over one peer's link, naming another as sender: spoofed.
        return { kind: 'envelope', link: other, text: encodeFrame(frame) };
      case 5:
        return {
          kind: 'envelope',
          link: frame.from,
          text: loose({ v: this.pick([0, 2, '1', 1.0001]) }),
        };
      default:
        return { kind: 'envelope', link: frame.from, text: loose({ inc: 'XYZ' }) };
    }
  }
}

/** `round + by`, kept within the safe integers a frame may carry. */
function above(round: number, by: number): number {
  return Math.min(Number.MAX_SAFE_INTEGER, round + by);
}

/** A source seeded by (seed, stream): every stream of a run is reproducible on its own. */
export function seededSource(seed: number, stream: number, target: Target): FrameSource {
  return new FrameSource(createRng((Math.imul(seed, 0x9e3779b1) ^ stream) >>> 0), target);
}
