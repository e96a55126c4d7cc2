import { isValidId } from '../codec/messages.js';
import { InvalidMessageError } from '../errors.js';
import { MAX_LOCK_NAME_LENGTH } from './commands.js';

/**
 * The lock table as plain JSON data, and its strict reader.
 *
 * A snapshot holds everything a later command can observe: the apply index, the token base and
 * counter, every session (acked, deduplication entries in table order), every grant and every
 * FIFO queue in order. Holders of grants and waiters are indices into `sessions`. Bigints are
 * decimal strings. `readSnapshot` checks every field's type and bounds, and that grants, queues
 * and deduplication entries agree with one another as a table's always do, so a restored table
 * starts from a state its own rules keep consistent. (`encodeSnapshot` and `decodeSnapshot`,
 * text to table and back, live beside `LockTable` in lock-table.ts, which imports this module.)
 */

/** Bumped when the layout changes: a reader refuses formats it does not know. */
export const SNAPSHOT_FORMAT = 1;

const INT64_MAX = (1n << 63n) - 1n;

/**
 * The highest token base an `epoch` may set. At most one grant happens per applied command and
 * the apply index is a safe integer, so the counter stays below 2^53 and every token fits in a
 * signed 64-bit integer.
 */
export const MAX_TOKEN_BASE = INT64_MAX - (1n << 53n);

export interface LockTableSnapshot {
  readonly format: typeof SNAPSHOT_FORMAT;
  readonly index: number;
  /** Decimal. */
  readonly base: string;
  /** Decimal: grants since the base was set; the last token is base + counter. */
  readonly counter: string;
  /** In the table's order (the order of `LockTable#sessions`). */
  readonly sessions: readonly SessionSnapshot[];
  /** In the table's order (the order of `LockTable#grants`). */
  readonly grants: readonly GrantSnapshot[];
  /** Names with waiters, each queue head first. */
  readonly queues: readonly QueueSnapshot[];
}

export interface SessionSnapshot {
  readonly node: string;
  readonly incarnation: string;
  readonly acked: number;
  /** Every entry's seq is at or above `acked`. */
  readonly entries: readonly EntrySnapshot[];
}

export type EntrySnapshot =
  | {
      readonly seq: number;
      readonly op: 'acquire';
      /** Null for a request cancelled before it was applied (its name was never seen). */
      readonly name: string | null;
      readonly state: 'granted' | 'queued' | 'busy' | 'ended';
    }
  | {
      readonly seq: number;
      readonly op: 'release';
      readonly name: string;
      readonly released: boolean;
    }
  | { readonly seq: number; readonly op: 'renew'; readonly versions: readonly (number | null)[] }
  | {
      readonly seq: number;
      readonly op: 'cancel';
      readonly target: number;
      readonly was: 'queued' | 'granted' | 'unknown';
    };

export interface GrantSnapshot {
  readonly name: string;
  /** Index into `sessions`. */
  readonly holder: number;
  readonly seq: number;
  /** Decimal. */
  readonly token: string;
  readonly ttlMs: number;
  readonly version: number;
}

export interface WaiterSnapshot {
  /** Index into `sessions`. */
  readonly holder: number;
  readonly seq: number;
  readonly ttlMs: number;
}

export interface QueueSnapshot {
  readonly name: string;
  /** Never empty: a name without waiters has no queue. */
  readonly waiters: readonly WaiterSnapshot[];
}

// ---------------------------------------------------------------------------------------------
// Field rules, shared with the table's check of the commands it applies.

/** A lock name: 1 to MAX_LOCK_NAME_LENGTH UTF-16 code units. */
export function isLockName(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_LOCK_NAME_LENGTH;
}

/** A holder's incarnation: exactly 16 lowercase hex digits. */
export function isIncarnation(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9a-f]{16}$/.test(value);
}

/** A request number, an `acked` or a `target`: a non-negative safe integer. */
export function isSeq(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** A TTL: a positive safe integer of milliseconds. */
export function isTtl(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

// ---------------------------------------------------------------------------------------------
// Reading

/** Encodes a snapshot as JSON text (its bigints are already strings). */
export function stringifySnapshot(snapshot: LockTableSnapshot): string {
  return JSON.stringify(snapshot);
}

/** Parses JSON text, for `readSnapshot` to check. */
export function parseSnapshotText(text: string): unknown {
  if (typeof text !== 'string') throw new InvalidMessageError('snapshot: expected JSON text');
  try {
    return JSON.parse(text);
  } catch {
    throw new InvalidMessageError('snapshot: not valid JSON');
  }
}

/**
 * Checks `input` against the layout and the table's invariants, and returns a fresh copy. Throws
 * `InvalidMessageError` naming the first fault. Only own enumerable keys are read, and key sets
 * must match exactly, so `__proto__` or any other stray key is refused; work is linear in the
 * size of the input, and nothing recurses on the input's depth.
 */
export function readSnapshot(input: unknown): LockTableSnapshot {
  const top = record(input, '', [
    'format',
    'index',
    'base',
    'counter',
    'sessions',
    'grants',
    'queues',
  ]);
  if (top['format'] !== SNAPSHOT_FORMAT) {
    throw fault('format', `expected ${SNAPSHOT_FORMAT}`);
  }
  const index = seq(top['index'], 'index');
  const base = bigint(top['base'], 'base', 0n, MAX_TOKEN_BASE);
  // At most one grant per applied command: the counter never passes the index.
  const counter = bigint(top['counter'], 'counter', 0n, BigInt(index));
  const lastToken = base + counter;

  const sessions = list(top['sessions'], 'sessions').map((item, i) =>
    readSession(item, `sessions[${i}]`, index),
  );
  const keys = new Set<string>();
  sessions.forEach((session, i) => {
    const key = `${session.node}/${session.incarnation}`;
    if (keys.has(key)) throw fault(`sessions[${i}]`, 'duplicate holder');
    keys.add(key);
  });

  /** Per session: seq of each grant or queue place -> the name and kind of the place. */
  const places = sessions.map(() => new Map<number, { name: string; granted: boolean }>());
  const place = (holder: number, at: number, name: string, granted: boolean, path: string) => {
    const mine = places[holder];
    if (mine === undefined) throw fault(`${path}.holder`, 'no such session');
    if (mine.has(at)) throw fault(`${path}.seq`, 'request already holds or waits');
    mine.set(at, { name, granted });
  };

  const granted = new Set<string>();
  // Decimal strings are canonical (no leading zeros): equal tokens have equal strings.
  const tokens = new Set<string>();
  const grants = list(top['grants'], 'grants').map((item, i) => {
    const path = `grants[${i}]`;
    const grant = readGrant(item, path, sessions.length, index, lastToken);
    if (granted.has(grant.name)) throw fault(`${path}.name`, 'name granted twice');
    granted.add(grant.name);
    if (tokens.has(grant.token)) throw fault(`${path}.token`, 'token granted twice');
    tokens.add(grant.token);
    place(grant.holder, grant.seq, grant.name, true, path);
    return grant;
  });

  const queued = new Set<string>();
  const queues = list(top['queues'], 'queues').map((item, i): QueueSnapshot => {
    const path = `queues[${i}]`;
    const fields = record(item, path, ['name', 'waiters']);
    const name = lockName(fields['name'], `${path}.name`);
    if (queued.has(name)) throw fault(`${path}.name`, 'name queued twice');
    queued.add(name);
    // Waiters are promoted when the grant ends, so a name with waiters is always held.
    if (!granted.has(name)) throw fault(`${path}.name`, 'queue of a name not held');
    const raw = list(fields['waiters'], `${path}.waiters`);
    if (raw.length === 0) throw fault(`${path}.waiters`, 'empty queue');
    const waiters = raw.map((w, j): WaiterSnapshot => {
      const at = `${path}.waiters[${j}]`;
      const waiter = record(w, at, ['holder', 'seq', 'ttlMs']);
      const read: WaiterSnapshot = {
        holder: holderIndex(waiter['holder'], `${at}.holder`, sessions.length),
        seq: seq(waiter['seq'], `${at}.seq`),
        ttlMs: ttl(waiter['ttlMs'], `${at}.ttlMs`),
      };
      place(read.holder, read.seq, name, false, at);
      return read;
    });
    return { name, waiters };
  });

  // Deduplication entries and places must tell the same story: an acquire entry reads
  // 'granted' or 'queued' exactly when its request holds or waits, for the same name; a place
  // at or above `acked` has its entry (only an ack removes one, and only below `acked`).
  sessions.forEach((session, i) => {
    const mine = places[i] ?? new Map<number, { name: string; granted: boolean }>();
    const entries = new Map<number, EntrySnapshot>();
    session.entries.forEach((entry, j) => {
      const path = `sessions[${i}].entries[${j}]`;
      entries.set(entry.seq, entry);
      const at = mine.get(entry.seq);
      if (entry.op !== 'acquire') {
        if (at !== undefined) throw fault(path, 'a place without its acquire entry');
        return;
      }
      const expected = at === undefined ? null : at.granted ? 'granted' : 'queued';
      const placed = entry.state === 'granted' || entry.state === 'queued' ? entry.state : null;
      if (placed !== expected) throw fault(`${path}.state`, 'does not match the table');
      if (at !== undefined && at.name !== entry.name) {
        throw fault(`${path}.name`, 'does not match the table');
      }
    });
    for (const [at] of mine) {
      if (at >= session.acked && !entries.has(at)) {
        throw fault(`sessions[${i}]`, `no entry for request ${at}`);
      }
    }
  });

  return {
    format: SNAPSHOT_FORMAT,
    index,
    base: base.toString(),
    counter: counter.toString(),
    sessions,
    grants,
    queues,
  };
}

function readSession(input: unknown, path: string, index: number): SessionSnapshot {
  const fields = record(input, path, ['node', 'incarnation', 'acked', 'entries']);
  const node = fields['node'];
  if (!isValidId(node)) throw fault(`${path}.node`, 'expected a node id');
  const incarnation = fields['incarnation'];
  if (!isIncarnation(incarnation)) {
    throw fault(`${path}.incarnation`, 'expected 16 lowercase hex digits');
  }
  const acked = seq(fields['acked'], `${path}.acked`);
  const seen = new Set<number>();
  const entries = list(fields['entries'], `${path}.entries`).map((item, j) => {
    const at = `${path}.entries[${j}]`;
    const entry = readEntry(item, at, index);
    if (entry.seq < acked) throw fault(`${at}.seq`, 'below acked');
    if (seen.has(entry.seq)) throw fault(`${at}.seq`, 'duplicate request');
    seen.add(entry.seq);
    return entry;
  });
  return { node, incarnation, acked, entries };
}

function readEntry(input: unknown, path: string, index: number): EntrySnapshot {
  if (!isObject(input)) throw fault(path, 'expected an object');
  const op = input['op'];
  switch (op) {
    case 'acquire': {
      const fields = record(input, path, ['seq', 'op', 'name', 'state']);
      const state = oneOf(fields['state'], `${path}.state`, [
        'granted',
        'queued',
        'busy',
        'ended',
      ] as const);
      const raw = fields['name'];
      // Only a cancel that arrived before its acquire leaves an entry without a name.
      const name = raw === null && state === 'ended' ? null : lockName(raw, `${path}.name`);
      return { seq: seq(fields['seq'], `${path}.seq`), op, name, state };
    }
    case 'release': {
      const fields = record(input, path, ['seq', 'op', 'name', 'released']);
      const released = fields['released'];
      if (typeof released !== 'boolean') {
        throw fault(`${path}.released`, 'expected true or false');
      }
      const name = lockName(fields['name'], `${path}.name`);
      return { seq: seq(fields['seq'], `${path}.seq`), op, name, released };
    }
    case 'renew': {
      const fields = record(input, path, ['seq', 'op', 'versions']);
      const versions = list(fields['versions'], `${path}.versions`).map((v, k) =>
        v === null ? null : version(v, `${path}.versions[${k}]`, index),
      );
      return { seq: seq(fields['seq'], `${path}.seq`), op, versions };
    }
    case 'cancel': {
      const fields = record(input, path, ['seq', 'op', 'target', 'was']);
      return {
        seq: seq(fields['seq'], `${path}.seq`),
        op,
        target: seq(fields['target'], `${path}.target`),
        was: oneOf(fields['was'], `${path}.was`, ['queued', 'granted', 'unknown'] as const),
      };
    }
    default:
      throw fault(`${path}.op`, 'expected acquire, release, renew or cancel');
  }
}

function readGrant(
  input: unknown,
  path: string,
  sessions: number,
  index: number,
  lastToken: bigint,
): GrantSnapshot {
  const fields = record(input, path, ['name', 'holder', 'seq', 'token', 'ttlMs', 'version']);
  return {
    name: lockName(fields['name'], `${path}.name`),
    holder: holderIndex(fields['holder'], `${path}.holder`, sessions),
    seq: seq(fields['seq'], `${path}.seq`),
    token: bigint(fields['token'], `${path}.token`, 1n, lastToken).toString(),
    ttlMs: ttl(fields['ttlMs'], `${path}.ttlMs`),
    version: version(fields['version'], `${path}.version`, index),
  };
}

// ---------------------------------------------------------------------------------------------
// Primitive readers: each throws an InvalidMessageError naming the path.

/** A fault at `path` of a snapshot. */
function fault(path: string, reason: string): InvalidMessageError {
  return new InvalidMessageError(`snapshot: ${path === '' ? '' : `${path}: `}${reason}`);
}

function isObject(input: unknown): input is Record<string, unknown> {
  return typeof input === 'object' && input !== null && !Array.isArray(input);
}

/** An object with exactly the own enumerable keys `keys`. */
function record(input: unknown, path: string, keys: readonly string[]): Record<string, unknown> {
  if (!isObject(input)) throw fault(path, 'expected an object');
  const own = Object.keys(input);
  for (const key of own) {
    if (!keys.includes(key)) throw fault(path, `unknown key ${quote(key)}`);
  }
  if (own.length !== keys.length) {
    const missing = keys.find((key) => !own.includes(key)) ?? '';
    throw fault(path, `missing key ${quote(missing)}`);
  }
  return input;
}

function list(input: unknown, path: string): unknown[] {
  if (!Array.isArray(input)) throw fault(path, 'expected an array');
  // A copy made by index: holes read as undefined and are refused by the item readers.
  return Array.from({ length: input.length }, (_, i): unknown => (input as unknown[])[i]);
}

function seq(input: unknown, path: string): number {
  if (!isSeq(input)) throw fault(path, 'expected a non-negative safe integer');
  // JSON allows -0; keep it out of the table (Object.is(-0, 0) is false).
  return input === 0 ? 0 : input;
}

function ttl(input: unknown, path: string): number {
  if (!isTtl(input)) throw fault(path, 'expected a positive safe integer');
  return input;
}

function version(input: unknown, path: string, index: number): number {
  if (typeof input !== 'number' || !Number.isSafeInteger(input) || input < 1 || input > index) {
    throw fault(path, 'expected an apply index from 1 to the snapshot index');
  }
  return input;
}

function holderIndex(input: unknown, path: string, sessions: number): number {
  if (typeof input !== 'number' || !Number.isSafeInteger(input) || input < 0 || input >= sessions) {
    throw fault(path, 'expected the index of a session');
  }
  return input === 0 ? 0 : input;
}

function lockName(input: unknown, path: string): string {
  if (!isLockName(input)) {
    throw fault(path, `expected a lock name of 1 to ${MAX_LOCK_NAME_LENGTH} characters`);
  }
  return input;
}

function oneOf<const T extends string>(input: unknown, path: string, values: readonly T[]): T {
  const found = values.find((value) => value === input);
  if (found === undefined) throw fault(path, `expected one of ${values.join(', ')}`);
  return found;
}

/** A decimal string without leading zeros (the form `bigint.toString()` gives) in [min, max]. */
function bigint(input: unknown, path: string, min: bigint, max: bigint): bigint {
  if (typeof input !== 'string' || !/^(?:0|-?[1-9][0-9]{0,18})$/.test(input)) {
    throw fault(path, 'expected a decimal integer string');
  }
  const value = BigInt(input);
  if (value < min || value > max) throw fault(path, `expected ${min} to ${max}`);
  return value;
}

/** A key from hostile input, short enough for a log line. */
function quote(text: string): string {
  return JSON.stringify(text.length > 24 ? `${text.slice(0, 24)}…` : text);
}
