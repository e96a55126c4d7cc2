import { InvalidMessageError, InvariantError } from '../errors.js';
import type { LeaseMessage } from '../lease/messages.js';
import { MAX_LOCK_NAME_LENGTH, type LockCommand } from '../locks/commands.js';
import type { LockMessage } from '../locks/messages.js';
import type { LogMessage } from '../log/messages.js';
import { MAX_SNAPSHOT_PART_CHARS, MAX_SNAPSHOT_PARTS } from '../log/snapshot.js';
import type { PaxosMessage } from '../paxos/messages.js';
import type { NodeId } from '../types.js';

/**
 * The wire format: one JSON text frame per message, in a versioned envelope, decoded strictly.
 *
 * Every frame comes from the network, so it is hostile until proven otherwise: decoding checks
 * the size before parsing, the nesting depth before parsing, then the exact key set and type of
 * every field at every level, then the envelope against what this node expects. Nothing is
 * coerced and nothing unknown is ignored: a peer on another protocol version or a corrupted
 * frame is refused, never half-understood. A value that reached the pure core has passed here.
 *
 * One schema (below) drives both directions. Its key sets are checked against the message
 * types at compile time, so a field added to a message without a rule here fails the build.
 * 64-bit values (fencing tokens) travel as decimal strings and come out as `bigint`s.
 */

export const PROTOCOL_VERSION = 1;

/** Largest frame accepted, in UTF-8 bytes, unless `maxBytes` says otherwise. */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024;
/** Largest Paxos value, in UTF-8 bytes: a frame with one stays far below the frame limit. */
export const MAX_VALUE_BYTES = 16 * 1024;
/** Longest node or cluster id, in UTF-16 code units. */
export const MAX_ID_LENGTH = 64;
/** Bound on a lease duration on the wire: an hour, far above any allowed `leaseMs`. */
export const MAX_LEASE_MS = 3_600_000;
/**
 * The highest round (and term, and instance) a peer may name: 2^52, so that a node that adopts
 * it still has 2^52 rounds of headroom before its own ballots leave the safe-integer range. At
 * three renewals a second a real cluster needs tens of millions of years to get there; a frame
 * naming more is hostile or corrupt and is refused.
 */
export const MAX_ROUND = 2 ** 52;
/**
 * Deepest nesting of objects and arrays a frame may have. The deepest valid frame (a log
 * promise: frame, msg, entries, entry, value, command, locks, lock) has 8; a little slack, but
 * no room for a parser bomb.
 */
const MAX_DEPTH = 10;
/** Longest lock TTL on the wire, in ms: the largest timer delay Node accepts. */
export const MAX_TTL_MS = 2_147_483_647;
/** Most items in one array of a frame: commands in a batch, entries in a page, locks renewed. */
export const MAX_ARRAY_ITEMS = 4096;
/** Tokens are signed 64-bit integers, so they fit a BIGINT column. */
const MAX_TOKEN = 2n ** 63n - 1n;
/** How much hostile input an error message may quote. */
const QUOTE_CHARS = 24;

export type ProtocolMessage = LeaseMessage | PaxosMessage | LogMessage<LockCommand> | LockMessage;
export type ProtocolMessageType = ProtocolMessage['type'];

export interface Frame {
  readonly v: typeof PROTOCOL_VERSION;
  readonly cluster: string;
  readonly from: NodeId;
  readonly to: NodeId;
  /** The sender's incarnation: 16 lowercase hex digits, random per start. */
  readonly inc: string;
  readonly msg: ProtocolMessage;
}

/** What the receiving node expects of every frame it accepts. */
export interface DecodeExpectations {
  readonly cluster: string;
  readonly self: NodeId;
  /** The other nodes of the cluster; a frame from anyone else is refused. */
  readonly peers: ReadonlySet<NodeId>;
  /** Frame size limit in UTF-8 bytes; default `DEFAULT_MAX_FRAME_BYTES`. */
  readonly maxBytes?: number;
}

/** Why a frame was refused, for counters: stable, unlike the error's text. */
export type DecodeFailure =
  'oversized' | 'malformed' | 'version' | 'cluster' | 'misaddressed' | 'sender' | 'schema';

export type DecodeResult =
  | { readonly ok: true; readonly frame: Frame }
  | {
      readonly ok: false;
      readonly reason: DecodeFailure;
      readonly error: InvalidMessageError;
    };

// ---------------------------------------------------------------------------------------------
// Schema

/** A rule for one field. */
type Rule =
  /** A node or cluster id: a non-empty string of at most MAX_ID_LENGTH code units. */
  | { readonly kind: 'id' }
  /** An incarnation: exactly 16 lowercase hex digits. */
  | { readonly kind: 'incarnation' }
  /** A Paxos value: a string of at most MAX_VALUE_BYTES UTF-8 bytes. */
  | { readonly kind: 'value' }
  | { readonly kind: 'enum'; readonly values: readonly string[] }
  /** A round, instance or `maxRound`: a non-negative safe integer. */
  | { readonly kind: 'round' }
  /** A term: a positive safe integer (terms start at the first round, 1). */
  | { readonly kind: 'term' }
  /** A lease duration in ms: a positive integer up to MAX_LEASE_MS. */
  | { readonly kind: 'leaseMs' }
  | { readonly kind: 'boolean' }
  | { readonly kind: 'version' }
  | { readonly kind: 'message' }
  /** A lock name: 1 to MAX_LOCK_NAME_LENGTH UTF-16 code units. */
  | { readonly kind: 'name' }
  /** A lock TTL in ms: a positive integer up to MAX_TTL_MS. */
  | { readonly kind: 'ttl' }
  /** A signed 64-bit integer as a decimal string on the wire, a `bigint` in memory. */
  | { readonly kind: 'bigint' }
  /** A snapshot part: padded base64 (whole 4-character groups), MAX_SNAPSHOT_PART_CHARS at most. */
  | { readonly kind: 'base64' }
  /** A count of snapshot parts: 1 to MAX_SNAPSHOT_PARTS. */
  | { readonly kind: 'parts' }
  | { readonly kind: 'array'; readonly of: Rule; readonly max: number }
  /** One of several object shapes, told apart by the string field `tag`. */
  | {
      readonly kind: 'union';
      readonly tag: string;
      readonly variants: Readonly<Record<string, Readonly<Record<string, Rule>>>>;
    }
  | { readonly kind: 'nullable'; readonly of: Rule }
  | { readonly kind: 'object'; readonly fields: Readonly<Record<string, Rule>> };

type StringRule = Extract<
  Rule,
  { kind: 'id' | 'incarnation' | 'value' | 'enum' | 'name' | 'base64' }
>;
type NumberRule = Extract<Rule, { kind: 'round' | 'term' | 'leaseMs' | 'ttl' | 'parts' }>;
type BooleanRule = Extract<Rule, { kind: 'boolean' }>;
type BigintRule = Extract<Rule, { kind: 'bigint' }>;
type UnionRule = Extract<Rule, { kind: 'union' }>;

/**
 * The rule shape a TypeScript type needs: nullable types need a `nullable` rule, objects need an
 * `object` rule naming exactly their keys. Field *types* are the rules' business; key sets are
 * enforced here, so the schema cannot drift from the message types.
 */
type RuleFor<T> = null extends T
  ? { readonly kind: 'nullable'; readonly of: RuleFor<NonNullable<T>> }
  : T extends string
    ? StringRule
    : T extends bigint
      ? BigintRule
      : T extends number
        ? NumberRule
        : T extends boolean
          ? BooleanRule
          : T extends readonly (infer E)[]
            ? { readonly kind: 'array'; readonly of: RuleFor<E> | UnionRule; readonly max: number }
            : T extends object
              ? { readonly kind: 'object'; readonly fields: FieldsOf<T> } | UnionRule
              : never;

type FieldsOf<T> = { readonly [K in keyof T]-?: RuleFor<T[K]> };

type MessageRules = {
  readonly [K in ProtocolMessageType]: FieldsOf<
    Omit<Extract<ProtocolMessage, { type: K }>, 'type'>
  >;
};

const ID = { kind: 'id' } as const;
const INCARNATION = { kind: 'incarnation' } as const;
const ROUND = { kind: 'round' } as const;
const TERM = { kind: 'term' } as const;
const BALLOT = {
  kind: 'object',
  fields: { round: ROUND, node: ID, incarnation: INCARNATION },
} as const;
const OWNER = { kind: 'object', fields: { node: ID, incarnation: INCARNATION } } as const;
const NAME = { kind: 'name' } as const;
const TOKEN = { kind: 'bigint' } as const;
const TTL = { kind: 'ttl' } as const;

/** The fields every holder's command carries. */
const CLIENT_FIELDS = { holder: OWNER, seq: ROUND, acked: ROUND } as const;
const CLIENT_VARIANTS = {
  acquire: { ...CLIENT_FIELDS, name: NAME, ttlMs: TTL, wait: { kind: 'boolean' } },
  release: { ...CLIENT_FIELDS, name: NAME, token: TOKEN },
  renew: {
    ...CLIENT_FIELDS,
    locks: {
      kind: 'array',
      of: { kind: 'object', fields: { name: NAME, token: TOKEN } },
      max: MAX_ARRAY_ITEMS,
    },
  },
  cancel: { ...CLIENT_FIELDS, target: ROUND },
} as const;
const CLIENT_COMMAND: Rule = { kind: 'union', tag: 'op', variants: CLIENT_VARIANTS };
const LOCK_COMMAND: Rule = {
  kind: 'union',
  tag: 'op',
  variants: {
    ...CLIENT_VARIANTS,
    expire: { name: NAME, token: TOKEN, version: ROUND },
    retire: { holders: { kind: 'array', of: OWNER, max: MAX_ARRAY_ITEMS } },
    abandon: { holders: { kind: 'array', of: OWNER, max: MAX_ARRAY_ITEMS } },
    epoch: { base: TOKEN },
  },
};
const LOG_VALUE = {
  kind: 'nullable',
  of: { kind: 'array', of: LOCK_COMMAND, max: MAX_ARRAY_ITEMS },
} as const;
const SLOT_VALUES = {
  kind: 'array',
  of: { kind: 'object', fields: { slot: ROUND, value: LOG_VALUE } },
  max: MAX_ARRAY_ITEMS,
} as const;
const LOCK_REPLY: Rule = {
  kind: 'union',
  tag: 'type',
  variants: {
    granted: { seq: ROUND, name: NAME, token: TOKEN, ttlMs: TTL, version: ROUND },
    queued: { seq: ROUND, name: NAME },
    busy: { seq: ROUND, name: NAME },
    ended: { seq: ROUND, name: NAME },
    released: { seq: ROUND, name: NAME },
    'not-held': { seq: ROUND, name: NAME },
    renewed: {
      seq: ROUND,
      versions: { kind: 'array', of: { kind: 'nullable', of: ROUND }, max: MAX_ARRAY_ITEMS },
    },
    cancelled: {
      seq: ROUND,
      target: ROUND,
      was: { kind: 'enum', values: ['queued', 'granted', 'unknown'] },
    },
    stale: { seq: ROUND },
  },
};

const MESSAGE_RULES: MessageRules = {
  'lease.prepare': { ballot: BALLOT },
  'lease.promise': {
    ballot: BALLOT,
    accepted: {
      kind: 'nullable',
      of: {
        kind: 'object',
        fields: {
          ballot: BALLOT,
          value: {
            kind: 'object',
            fields: { owner: OWNER, leaseMs: { kind: 'leaseMs' }, term: TERM },
          },
        },
      },
    },
    maxRound: ROUND,
    termSeen: ROUND,
  },
  'lease.accept': {
    ballot: BALLOT,
    value: { kind: 'object', fields: { owner: OWNER, leaseMs: { kind: 'leaseMs' }, term: TERM } },
  },
  'lease.accepted': { ballot: BALLOT, maxRound: ROUND },
  'lease.reject': {
    ballot: BALLOT,
    phase: { kind: 'enum', values: ['prepare', 'accept'] },
    promised: { kind: 'nullable', of: BALLOT },
    holder: { kind: 'nullable', of: OWNER },
    maxRound: ROUND,
    termSeen: ROUND,
  },
  'lease.chosen': { ballot: BALLOT, term: TERM },
  'lease.release': {
    owner: OWNER,
    ballot: BALLOT,
    successor: { kind: 'nullable', of: ID },
  },
  'lease.recover': { incarnation: INCARNATION },
  'lease.recovery': {
    incarnation: INCARNATION,
    maxRound: ROUND,
    recovered: { kind: 'boolean' },
  },
  'paxos.prepare': { instance: ROUND, ballot: BALLOT },
  'paxos.promise': {
    instance: ROUND,
    ballot: BALLOT,
    accepted: {
      kind: 'nullable',
      of: { kind: 'object', fields: { ballot: BALLOT, value: { kind: 'value' } } },
    },
  },
  'paxos.accept': { instance: ROUND, ballot: BALLOT, value: { kind: 'value' } },
  'paxos.accepted': { instance: ROUND, ballot: BALLOT },
  'paxos.reject': { instance: ROUND, ballot: BALLOT, promised: BALLOT },
  'log.prepare': { ballot: BALLOT, attempt: ROUND, from: ROUND },
  'log.promise': {
    ballot: BALLOT,
    attempt: ROUND,
    from: ROUND,
    entries: {
      kind: 'array',
      of: { kind: 'object', fields: { slot: ROUND, ballot: BALLOT, value: LOG_VALUE } },
      max: MAX_ARRAY_ITEMS,
    },
    next: { kind: 'nullable', of: ROUND },
    floor: ROUND,
    applied: ROUND,
    maxRound: ROUND,
    lossy: { kind: 'boolean' },
  },
  'log.accept': { ballot: BALLOT, attempt: ROUND, entries: SLOT_VALUES, commit: ROUND },
  'log.accepted': { ballot: BALLOT, attempt: ROUND, applied: ROUND },
  'log.reject': {
    ballot: BALLOT,
    attempt: ROUND,
    promised: { kind: 'nullable', of: BALLOT },
    maxRound: ROUND,
  },
  'log.recover': { incarnation: INCARNATION, from: ROUND },
  'log.recovery': {
    incarnation: INCARNATION,
    voting: { kind: 'boolean' },
    promised: { kind: 'nullable', of: BALLOT },
    maxRound: ROUND,
    floor: ROUND,
    from: ROUND,
    entries: {
      kind: 'array',
      of: { kind: 'object', fields: { slot: ROUND, ballot: BALLOT, value: LOG_VALUE } },
      max: MAX_ARRAY_ITEMS,
    },
    next: { kind: 'nullable', of: ROUND },
  },
  'log.fetch': { from: ROUND },
  'log.chosen': { entries: SLOT_VALUES },
  'log.snapshot-fetch': { slot: ROUND, part: ROUND },
  'log.snapshot': {
    slot: ROUND,
    part: ROUND,
    parts: { kind: 'parts' },
    data: { kind: 'base64' },
  },
  'lock.request': {
    commands: { kind: 'array', of: CLIENT_COMMAND, max: MAX_ARRAY_ITEMS },
  },
  'lock.reply': {
    incarnation: INCARNATION,
    replies: { kind: 'array', of: LOCK_REPLY, max: MAX_ARRAY_ITEMS },
  },
  'lock.redirect': {
    incarnation: INCARNATION,
    seqs: { kind: 'array', of: ROUND, max: MAX_ARRAY_ITEMS },
    leader: { kind: 'nullable', of: ID },
  },
  'lock.read': { incarnation: INCARNATION, id: ROUND, name: NAME },
  'lock.view': {
    incarnation: INCARNATION,
    id: ROUND,
    name: NAME,
    holder: { kind: 'nullable', of: OWNER },
    token: { kind: 'nullable', of: TOKEN },
    waiters: ROUND,
  },
};

/** Each message as an object rule with its `type` first, so encoded frames read naturally. */
const MESSAGES: ReadonlyMap<string, Rule> = new Map(
  Object.entries(MESSAGE_RULES).map(([type, fields]: [string, Readonly<Record<string, Rule>>]) => [
    type,
    { kind: 'object', fields: { type: { kind: 'enum', values: [type] }, ...fields } },
  ]),
);

/** The envelope: every field of a frame but its message. */
const ENVELOPE_FIELDS: Readonly<Record<string, Rule>> = {
  v: { kind: 'version' },
  cluster: ID,
  from: ID,
  to: ID,
  inc: INCARNATION,
};

const FRAME: Rule = {
  kind: 'object',
  fields: { ...ENVELOPE_FIELDS, msg: { kind: 'message' } },
};

// ---------------------------------------------------------------------------------------------
// Encode and decode

/**
 * The frame as JSON text, with exactly the schema's keys in the schema's order (extra properties
 * of the objects passed in are left out). Throws `InvariantError` on a frame that would not
 * decode: sending one is a bug in synod, better caught at the sender than dropped by every peer.
 */
export function encodeFrame(frame: Frame): string {
  try {
    return JSON.stringify(read(FRAME, frame, false));
  } catch (error) {
    if (error instanceof Rejection) {
      throw new InvariantError(`cannot encode frame: ${error.message}`);
    }
    throw error;
  }
}

/** A message checked and encoded once, to go out in several frames (`encodeFrameWith`). */
export interface EncodedMessage {
  /** The message's JSON text, as `encodeFrame` writes it inside a frame. */
  readonly text: string;
}

/** `encodeFrame`'s checks and text for the message alone. */
export function encodeMessage(msg: ProtocolMessage): EncodedMessage {
  try {
    return { text: JSON.stringify(read({ kind: 'message' }, msg, false)) };
  } catch (error) {
    if (error instanceof Rejection) {
      throw new InvariantError(`cannot encode frame: ${error.within('msg').message}`);
    }
    throw error;
  }
}

/** A frame's envelope checked and encoded once, for every frame to one node (`encodeFrameWith`). */
export interface EncodedEnvelope {
  /** The frame's JSON text up to its message: `{"v":…,"inc":"…"`. */
  readonly head: string;
}

/** `encodeFrame`'s checks and text for the envelope alone (every field but `msg`). */
export function encodeEnvelope(envelope: Omit<Frame, 'msg'>): EncodedEnvelope {
  let text: string;
  try {
    text = JSON.stringify(readObject(ENVELOPE_FIELDS, envelope, false));
  } catch (error) {
    if (error instanceof Rejection) {
      throw new InvariantError(`cannot encode frame: ${error.message}`);
    }
    throw error;
  }
  return { head: text.slice(0, -1) };
}

/**
 * The same text as `encodeFrame({ ...envelope, msg })` for an envelope and a message encoded
 * apart: a message sent to several nodes (a leader's Accept) is checked and encoded once, and
 * the envelope of the frames to one node once for all of them.
 */
export function encodeFrameWith(
  envelope: EncodedEnvelope | Omit<Frame, 'msg'>,
  msg: EncodedMessage,
): string {
  const head = 'head' in envelope ? envelope.head : encodeEnvelope(envelope).head;
  return `${head},"msg":${msg.text}}`;
}

/**
 * Decodes one frame from a peer. Never throws: every failure, whatever the input, is an
 * `InvalidMessageError` whose message names the field at fault and quotes at most a short prefix
 * of the offending input (a hostile peer must not be able to flood the logs through us).
 */
export function decodeFrame(text: string, expect: DecodeExpectations): DecodeResult {
  try {
    return { ok: true, frame: decode(text, expect) };
  } catch (error) {
    const rejection = error instanceof Rejection ? error : null;
    const detail = rejection?.message ?? 'could not be decoded (unexpected failure)';
    return {
      ok: false,
      reason: rejection?.failure ?? 'malformed',
      error: new InvalidMessageError(`invalid frame: ${detail}`),
    };
  }
}

function decode(text: unknown, expect: DecodeExpectations): Frame {
  if (typeof text !== 'string') throw new Rejection('', 'expected a string');
  const maxBytes = expect.maxBytes ?? DEFAULT_MAX_FRAME_BYTES;
  if (!fitsUtf8(text, maxBytes)) {
    throw new Rejection('', `larger than ${maxBytes} bytes`, 'oversized');
  }
  checkDepth(text);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // V8's SyntaxError quotes the input: never pass it on.
    throw new Rejection('', 'not valid JSON', 'malformed');
  }
  const frame = read(FRAME, parsed, true) as Frame;
  if (frame.cluster !== expect.cluster) {
    throw new Rejection('cluster', 'another cluster', 'cluster');
  }
  if (frame.to !== expect.self) {
    throw new Rejection('to', 'addressed to another node', 'misaddressed');
  }
  if (frame.from === expect.self) {
    throw new Rejection('from', 'claims to come from this node', 'sender');
  }
  if (!expect.peers.has(frame.from))
    throw new Rejection('from', 'not a peer of this node', 'sender');
  return frame;
}

/**
 * A decoding failure at `path`. Internal: it never leaves this module. The path is built while
 * the failure travels up through the schema (`within`), so a frame that decodes builds none.
 */
class Rejection extends Error {
  #path: string;
  readonly #reason: string;

  constructor(
    path: string,
    reason: string,
    readonly failure: DecodeFailure = 'schema',
  ) {
    super(path === '' ? reason : `${path}: ${reason}`);
    this.#path = path;
    this.#reason = reason;
  }

  /** The failure was inside field `key` (a name) or item `key` (an index) of what failed. */
  within(key: string | number): this {
    const step = typeof key === 'number' ? `[${key}]` : key;
    const path = this.#path;
    this.#path = path === '' ? step : path.startsWith('[') ? `${step}${path}` : `${step}.${path}`;
    this.message = `${this.#path}: ${this.#reason}`;
    return this;
  }
}

/** An object rule's fields, as a list in schema order (made once per rule). */
type FieldList = readonly (readonly [string, Rule])[];

const FIELD_LISTS = new WeakMap<Readonly<Record<string, Rule>>, FieldList>();

function fieldList(fields: Readonly<Record<string, Rule>>): FieldList {
  let list = FIELD_LISTS.get(fields);
  if (list === undefined) {
    list = Object.entries(fields);
    FIELD_LISTS.set(fields, list);
  }
  return list;
}

/** Each union variant's fields with its tag first (made once per variant). */
const VARIANT_FIELDS = new WeakMap<UnionRule, Map<string, Readonly<Record<string, Rule>>>>();

function variantFields(rule: UnionRule, tag: string): Readonly<Record<string, Rule>> {
  let variants = VARIANT_FIELDS.get(rule);
  if (variants === undefined) {
    variants = new Map();
    VARIANT_FIELDS.set(rule, variants);
  }
  let fields = variants.get(tag);
  if (fields === undefined) {
    fields = { [rule.tag]: { kind: 'enum', values: [tag] }, ...(rule.variants[tag] ?? {}) };
    variants.set(tag, fields);
  }
  return fields;
}

/**
 * Checks `input` against `rule`. Encoding (`strict` false) returns a fresh copy holding only the
 * schema's keys, tokens as decimal strings. Decoding (`strict`) refuses a key the schema does
 * not know, so the parsed object (fresh from `JSON.parse`, and nobody else's) already holds
 * exactly the schema's keys: it is kept, with tokens turned into `bigint`s and -0 into 0 where
 * it stands, instead of being copied. Recursion follows the schema, never the input, so its
 * depth is bounded by the schema's.
 */
function read(rule: Rule, input: unknown, strict: boolean): unknown {
  switch (rule.kind) {
    case 'id':
      if (!isValidId(input)) {
        throw new Rejection('', `expected an id of 1 to ${MAX_ID_LENGTH} characters`);
      }
      return input;
    case 'incarnation':
      if (typeof input !== 'string' || !isIncarnation(input)) {
        throw new Rejection('', 'expected 16 lowercase hex digits');
      }
      return input;
    case 'value':
      if (typeof input !== 'string' || !fitsUtf8(input, MAX_VALUE_BYTES)) {
        throw new Rejection('', `expected a string of at most ${MAX_VALUE_BYTES} bytes`);
      }
      return input;
    case 'enum':
      if (typeof input !== 'string' || !rule.values.includes(input)) {
        throw new Rejection('', `expected one of ${rule.values.join(', ')}`);
      }
      return input;
    case 'round':
      // Decoding caps what a peer may name; encoding our own rounds allows all safe integers.
      return strict
        ? integer(input, 0, MAX_ROUND, `an integer from 0 to 2^52`)
        : integer(input, 0, Number.MAX_SAFE_INTEGER, 'a non-negative safe integer');
    case 'term':
      return strict
        ? integer(input, 1, MAX_ROUND, 'an integer from 1 to 2^52')
        : integer(input, 1, Number.MAX_SAFE_INTEGER, 'a positive safe integer');
    case 'boolean':
      if (typeof input !== 'boolean') throw new Rejection('', 'expected true or false');
      return input;
    case 'leaseMs':
      return integer(input, 1, MAX_LEASE_MS, `an integer from 1 to ${MAX_LEASE_MS}`);
    case 'version':
      if (input !== PROTOCOL_VERSION) {
        throw new Rejection(
          '',
          `unsupported protocol version (this node speaks ${PROTOCOL_VERSION})`,
          'version',
        );
      }
      return input;
    case 'message': {
      if (!isRecord(input)) throw new Rejection('', 'expected an object');
      const type = input['type'];
      if (typeof type !== 'string') throw new Rejection('type', 'expected a string');
      const message = MESSAGES.get(type);
      if (message === undefined) {
        throw new Rejection('type', `unknown message type ${quote(type)}`);
      }
      return read(message, input, strict);
    }
    case 'name':
      if (typeof input !== 'string' || input.length === 0 || input.length > MAX_LOCK_NAME_LENGTH) {
        throw new Rejection('', `expected a name of 1 to ${MAX_LOCK_NAME_LENGTH} characters`);
      }
      return input;
    case 'ttl':
      return integer(input, 1, MAX_TTL_MS, `an integer from 1 to ${MAX_TTL_MS}`);
    case 'parts':
      return integer(input, 1, MAX_SNAPSHOT_PARTS, `an integer from 1 to ${MAX_SNAPSHOT_PARTS}`);
    case 'base64':
      if (
        typeof input !== 'string' ||
        input.length > MAX_SNAPSHOT_PART_CHARS ||
        input.length % 4 !== 0 ||
        !/^[A-Za-z0-9+/]*={0,2}$/.test(input)
      ) {
        throw new Rejection('', 'expected base64 text of a snapshot part');
      }
      return input;
    case 'bigint':
      return strict ? decodeToken(input) : encodeToken(input);
    case 'array': {
      if (!Array.isArray(input)) throw new Rejection('', 'expected an array');
      if (input.length > rule.max) {
        throw new Rejection('', `expected at most ${rule.max} items`);
      }
      // Decoding keeps the parsed array (JSON.parse makes no holes). Encoding copies every
      // index, holes included (map skips them, and JSON.stringify would send null).
      const items: unknown[] = strict ? input : [];
      for (let i = 0; i < input.length; i++) {
        const item = input[i] as unknown;
        let value: unknown;
        try {
          value = read(rule.of, item, strict);
        } catch (error) {
          throw error instanceof Rejection ? error.within(i) : error;
        }
        if (!strict) items.push(value);
        else if (!Object.is(value, item)) items[i] = value;
      }
      return items;
    }
    case 'union': {
      if (!isRecord(input)) throw new Rejection('', 'expected an object');
      const tag = input[rule.tag];
      if (typeof tag !== 'string' || !Object.hasOwn(rule.variants, tag)) {
        throw new Rejection(rule.tag, `expected one of ${Object.keys(rule.variants).join(', ')}`);
      }
      return readObject(variantFields(rule, tag), input, strict);
    }
    case 'nullable':
      return input === null ? null : read(rule.of, input, strict);
    case 'object':
      return readObject(rule.fields, input, strict);
    default: {
      const unreachable: never = rule;
      return unreachable;
    }
  }
}

function readObject(
  fields: Readonly<Record<string, Rule>>,
  input: unknown,
  strict: boolean,
): Record<string, unknown> {
  if (!isRecord(input)) throw new Rejection('', 'expected an object');
  const list = fieldList(fields);
  if (strict) {
    const keys = Object.keys(input);
    // With more keys than the schema has, one is unknown: the search stops at it, so a frame
    // with thousands of keys costs no more than one with a few.
    if (keys.length > list.length) {
      const unknown = keys.find((key) => !Object.hasOwn(fields, key)) ?? '';
      throw new Rejection('', `unknown key ${quote(unknown)}`);
    }
    for (const key of keys) {
      if (!Object.hasOwn(fields, key)) throw new Rejection('', `unknown key ${quote(key)}`);
    }
  }
  // Decoding: the parsed object itself (its keys are exactly the schema's, checked above).
  const out: Record<string, unknown> = strict ? input : {};
  for (const [name, fieldRule] of list) {
    if (!Object.hasOwn(input, name)) throw new Rejection(name, 'missing');
    const field = input[name];
    let value: unknown;
    try {
      value = read(fieldRule, field, strict);
    } catch (error) {
      throw error instanceof Rejection ? error.within(name) : error;
    }
    if (!strict || !Object.is(value, field)) out[name] = value;
  }
  return out;
}

function integer(input: unknown, min: number, max: number, what: string): number {
  if (typeof input !== 'number' || !Number.isSafeInteger(input) || input < min || input > max) {
    throw new Rejection('', `expected ${what}`);
  }
  // JSON allows -0; keep it from reaching the core (Object.is(-0, 0) is false).
  return input === 0 ? 0 : input;
}

/**
 * A token from the wire: a decimal string of a signed 64-bit integer, spelled as `encodeToken`
 * spells it (no '+', no leading zeros, no "-0"), so each token has one spelling.
 */
function decodeToken(input: unknown): bigint {
  if (typeof input !== 'string' || !/^(0|-?[1-9][0-9]{0,18})$/.test(input)) {
    throw new Rejection('', 'expected a decimal integer string');
  }
  const value = BigInt(input);
  if (value > MAX_TOKEN || value < -MAX_TOKEN - 1n) {
    throw new Rejection('', 'expected a signed 64-bit integer');
  }
  return value;
}

function encodeToken(input: unknown): string {
  if (typeof input !== 'bigint' || input > MAX_TOKEN || input < -MAX_TOKEN - 1n) {
    throw new Rejection('', 'expected a signed 64-bit bigint');
  }
  return input.toString();
}

/** 16 lowercase hex digits (what `/^[0-9a-f]{16}$/` says, without a regular expression). */
function isIncarnation(text: string): boolean {
  if (text.length !== 16) return false;
  for (let i = 0; i < 16; i++) {
    const c = text.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}

/** Whether `value` can be a node or cluster id: 1 to MAX_ID_LENGTH UTF-16 code units. */
export function isValidId(value: unknown): value is NodeId {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_ID_LENGTH;
}

function isRecord(input: unknown): input is Record<string, unknown> {
  return typeof input === 'object' && input !== null && !Array.isArray(input);
}

/** A short, escaped prefix of untrusted text, safe to put in a log line. */
function quote(text: string): string {
  return JSON.stringify(text.slice(0, QUOTE_CHARS)) + (text.length > QUOTE_CHARS ? '…' : '');
}

/**
 * Whether `text` takes at most `limit` bytes in UTF-8. A code unit takes one to three bytes, so
 * most texts are settled by their length alone; the scan stops as soon as the limit is passed.
 * Written as !(x <= limit) so a NaN limit refuses everything rather than nothing.
 */
function fitsUtf8(text: string, limit: number): boolean {
  if (!(text.length <= limit)) return false;
  if (text.length * 3 <= limit) return true;
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && isLowSurrogate(text.charCodeAt(i + 1))) {
      bytes += 4;
      i += 1;
    } else bytes += 3; // the rest of the BMP, and a lone surrogate (sent as U+FFFD)
    if (bytes > limit) return false;
  }
  return true;
}

function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
}

/**
 * Refuses text nested deeper than MAX_DEPTH before JSON.parse builds it: a frame of a few
 * kilobytes of brackets would otherwise allocate thousands of objects for nothing.
 */
function checkDepth(text: string): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i += 1;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      depth += 1;
      if (depth > MAX_DEPTH) {
        throw new Rejection('', `nested deeper than ${MAX_DEPTH} levels`, 'malformed');
      }
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth -= 1;
    }
  }
}
