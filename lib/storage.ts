import { InvalidMessageError } from './errors.js';
import type { LeaseRecord } from './lease/machine.js';
import type { LockCommand } from './locks/commands.js';
import type { AcceptedEntry, SlotValue } from './log/messages.js';
import type { LogRecord, LogUpdate } from './log/multi-paxos.js';

/**
 * Where a node keeps the state it must not forget across a restart: the lease acceptor's
 * promise and highest round, and the log's promise, accepted entries and latest snapshot (which
 * carries the lock table, its tokens included). Adapters: memory (tests) and file.
 *
 * Safety depends on the ordering the runtime keeps: it persists, then sends. So `save` must
 * resolve only once the update is durable (written and fsynced for the file adapter); a reply
 * sent after a `save` that resolved too early could be a vote the node forgets after a crash.
 *
 * `save` takes what changed (`U`); `load` returns everything saved so far, folded (`R`).
 */
export interface Storage<R, U = R> {
  /** Everything saved so far, or `null` if nothing was ever saved. */
  load(): Promise<R | null>;
  /** Adds an update; resolves only once it is durable. */
  save(update: U): Promise<void>;
}

/** What a node keeps. A part that is null was never saved. */
export interface NodeRecord {
  readonly lease: LeaseRecord | null;
  readonly log: LogRecord<LockCommand> | null;
}

/** What changed since the last save. */
export interface NodeUpdate {
  readonly lease: LeaseRecord | null;
  readonly log: LogUpdate<LockCommand> | null;
}

/** The storage a node takes (`createNode({ storage })`). */
export type NodeStorage = Storage<NodeRecord, NodeUpdate>;

/**
 * Folds an update into the record: the lease record and the log's promise are replaced, a
 * snapshot replaces an older one, and accepted entries are added (a later one replaces an
 * earlier one of the same slot; entries at or below the snapshot are dropped). Pure.
 */
export function foldNodeUpdate(record: NodeRecord | null, update: NodeUpdate): NodeRecord {
  const lease = update.lease ?? record?.lease ?? null;
  const log =
    update.log === null ? (record?.log ?? null) : foldLog(record?.log ?? null, update.log);
  return { lease, log };
}

function foldLog(
  record: LogRecord<LockCommand> | null,
  update: LogUpdate<LockCommand>,
): LogRecord<LockCommand> {
  const old = record?.snapshot ?? null;
  const snapshot =
    update.snapshot !== null && (old === null || update.snapshot.slot > old.slot)
      ? update.snapshot
      : old;
  const floor = snapshot?.slot ?? 0;
  const bySlot = new Map<number, AcceptedEntry<LockCommand>>();
  for (const e of record?.accepted ?? []) if (e.slot > floor) bySlot.set(e.slot, e);
  for (const e of update.accepted) if (e.slot > floor) bySlot.set(e.slot, e);
  const chosen = new Map<number, SlotValue<LockCommand>>();
  for (const e of record?.chosen ?? []) if (e.slot > floor) chosen.set(e.slot, e);
  for (const e of update.chosen) if (e.slot > floor) chosen.set(e.slot, e);
  return {
    promised: update.promised,
    maxRound: update.maxRound,
    snapshot,
    accepted: [...bySlot.values()].sort((a, b) => a.slot - b.slot),
    chosen: [...chosen.values()].sort((a, b) => a.slot - b.slot),
    lossyAbove: update.lossyAbove ?? null,
  };
}

/**
 * JSON text for records and updates: fencing tokens (`bigint`s inside commands) become
 * `{"$bigint": "…"}`. Decoding checks the shape of what it reads and throws
 * `InvalidMessageError` on anything else; the file adapter's checksums catch torn writes before.
 */
export const nodeRecordCodec = {
  encodeState: (record: NodeRecord): string => stringify(record),
  decodeState: (text: string): NodeRecord => checkRecord(parse(text)),
  encodeUpdate: (update: NodeUpdate): string => stringify(update),
  decodeUpdate: (text: string): NodeUpdate => checkUpdate(parse(text)),
  reduce: foldNodeUpdate,
} as const;

function stringify(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'bigint' ? { $bigint: v.toString() } : v,
  );
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text, (_key, v: unknown) => {
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
        const keys = Object.keys(v);
        const big = (v as Record<string, unknown>)['$bigint'];
        if (keys.length === 1 && typeof big === 'string' && /^-?\d{1,20}$/.test(big)) {
          return BigInt(big);
        }
      }
      return v;
    });
  } catch {
    throw new InvalidMessageError('stored record: not valid JSON');
  }
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function checkLease(x: unknown): void {
  if (x === null) return;
  if (!isObject(x) || typeof x['maxRound'] !== 'number' || !('promised' in x)) {
    throw new InvalidMessageError('stored record: bad lease record');
  }
}

function checkLog(x: unknown, update: boolean): void {
  if (x === null) return;
  if (
    !isObject(x) ||
    typeof x['maxRound'] !== 'number' ||
    !('promised' in x) ||
    !Array.isArray(x['accepted']) ||
    !Array.isArray(x['chosen']) ||
    !('snapshot' in x)
  ) {
    throw new InvalidMessageError(`stored record: bad log ${update ? 'update' : 'record'}`);
  }
  const snapshot = x['snapshot'];
  if (
    snapshot !== null &&
    (!isObject(snapshot) ||
      typeof snapshot['slot'] !== 'number' ||
      typeof snapshot['text'] !== 'string')
  ) {
    throw new InvalidMessageError('stored record: bad snapshot');
  }
  const lossyAbove = x['lossyAbove'];
  if (lossyAbove !== undefined && lossyAbove !== null && !Number.isSafeInteger(lossyAbove)) {
    throw new InvalidMessageError('stored record: bad lossyAbove');
  }
}

function checkRecord(x: unknown): NodeRecord {
  if (!isObject(x) || !('lease' in x) || !('log' in x)) {
    throw new InvalidMessageError('stored record: expected { lease, log }');
  }
  checkLease(x['lease']);
  checkLog(x['log'], false);
  return x as unknown as NodeRecord;
}

function checkUpdate(x: unknown): NodeUpdate {
  if (!isObject(x) || !('lease' in x) || !('log' in x)) {
    throw new InvalidMessageError('stored update: expected { lease, log }');
  }
  checkLease(x['lease']);
  checkLog(x['log'], true);
  return x as unknown as NodeUpdate;
}
