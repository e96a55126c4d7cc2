import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import type { ProtocolMessage } from '../../lib/codec/messages.js';
import type { LockCommand, LockReply } from '../../lib/locks/commands.js';
import type { ClientCommand } from '../../lib/locks/messages.js';
import type { LogValue } from '../../lib/log/messages.js';
import type { Ballot } from '../../lib/paxos/ballot.js';
import type { Owner } from '../../lib/types.js';

/**
 * Arbitraries for the log and lock messages, shared by the codec's unit and fuzz tests. The
 * caller gives its own ids, incarnations and rounds; values at the edges of every new rule come
 * up often: tokens at 0, ±1 and the ends of the signed 64-bit range, names of 1 and 256 UTF-16
 * code units (non-BMP characters included), TTLs of 1 ms and 2^31 − 1 ms, empty arrays, and
 * arrays of the most items allowed (4,096) where such a frame still fits 64 KiB.
 */

type NewType = Extract<ProtocolMessage['type'], `log.${string}` | `lock.${string}`>;
type MessageOf<T extends ProtocolMessage['type']> = Extract<ProtocolMessage, { type: T }>;

export interface Base {
  readonly id: fc.Arbitrary<string>;
  readonly incarnation: fc.Arbitrary<string>;
  readonly round: fc.Arbitrary<number>;
}

/** The most items an array of a frame may hold. */
export const MAX_ITEMS = 4096;

export const TOKEN_EDGES: readonly bigint[] = [
  0n,
  1n,
  -1n,
  2n ** 63n - 1n,
  -(2n ** 63n),
  2n ** 53n + 1n,
  -(2n ** 53n) - 1n,
];

export const tokenArb: fc.Arbitrary<bigint> = fc.oneof(
  fc.constantFrom(...TOKEN_EDGES),
  fc.bigInt({ min: 0n, max: 1000n }),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
);

export const NAME_EDGES: readonly string[] = [
  'a',
  '\ud83d\ude00',
  'n'.repeat(256),
  '\ud83d\ude00'.repeat(128),
  'n'.repeat(254) + '\ud83d\ude00',
  'é'.repeat(256),
  '\u0000'.repeat(256),
];

export const nameArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...NAME_EDGES),
  fc.string({ minLength: 1, maxLength: 20 }),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }),
);

export const ttlArb: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(1, 30_000, 2 ** 31 - 1),
  fc.integer({ min: 1, max: 2 ** 31 - 1 }),
);

/** Padded base64 of 0 to 40 bytes mostly, of a whole 36 KiB part sometimes. */
export const snapshotDataArb: fc.Arbitrary<string> = fc
  .oneof(
    { weight: 20, arbitrary: fc.uint8Array({ maxLength: 40 }) },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(36 * 1024, 36 * 1024 - 1, 36 * 1024 - 2)
        .map((n) => new Uint8Array(n).map((_, i) => (i * 7) & 255)),
    },
  )
  .map((bytes) => Buffer.from(bytes).toString('base64'));

/** Short arrays mostly, up to 40 items sometimes. */
function list<T>(item: fc.Arbitrary<T>): fc.Arbitrary<T[]> {
  return fc.oneof(
    { weight: 8, arbitrary: fc.array(item, { maxLength: 3 }) },
    { weight: 1, arbitrary: fc.array(item, { maxLength: 40 }) },
  );
}

/** An array inside the items of another: at most three items, so frames stay small. */
function few<T>(item: fc.Arbitrary<T>): fc.Arbitrary<T[]> {
  return fc.array(item, { maxLength: 3 });
}

/** Sometimes exactly MAX_ITEMS `tiny` items (small enough to fit a frame), else `list`. */
function upToMax<T>(item: fc.Arbitrary<T>, tiny: fc.Arbitrary<T>): fc.Arbitrary<T[]> {
  return fc.oneof(
    { weight: 20, arbitrary: list(item) },
    { weight: 1, arbitrary: fc.array(tiny, { minLength: MAX_ITEMS, maxLength: MAX_ITEMS }) },
  );
}

export interface LockArbitraries {
  readonly messages: { readonly [T in NewType]: fc.Arbitrary<MessageOf<T>> };
  readonly clientCommand: fc.Arbitrary<ClientCommand>;
  readonly command: fc.Arbitrary<LockCommand>;
  readonly reply: fc.Arbitrary<LockReply>;
}

export function lockArbitraries(base: Base): LockArbitraries {
  const { id, incarnation, round } = base;
  const ballot: fc.Arbitrary<Ballot> = fc.record({ round, node: id, incarnation });
  const owner: fc.Arbitrary<Owner> = fc.record({ node: id, incarnation });
  const client = { holder: owner, seq: round, acked: round };
  const acquire = fc.record({
    op: fc.constant('acquire' as const),
    ...client,
    name: nameArb,
    ttlMs: ttlArb,
    wait: fc.boolean(),
  });
  const release = fc.record({
    op: fc.constant('release' as const),
    ...client,
    name: nameArb,
    token: tokenArb,
  });
  const renew = fc.record({
    op: fc.constant('renew' as const),
    ...client,
    locks: few(fc.record({ name: nameArb, token: tokenArb })),
  });
  const cancel = fc.record({ op: fc.constant('cancel' as const), ...client, target: round });
  const clientCommand: fc.Arbitrary<ClientCommand> = fc.oneof(acquire, release, renew, cancel);
  const command: fc.Arbitrary<LockCommand> = fc.oneof(
    clientCommand,
    fc.record({
      op: fc.constant('expire' as const),
      name: nameArb,
      token: tokenArb,
      version: round,
    }),
    fc.record({ op: fc.constant('retire' as const), holders: few(owner) }),
    fc.record({ op: fc.constant('abandon' as const), holders: few(owner) }),
    fc.record({ op: fc.constant('epoch' as const), base: tokenArb }),
  );
  const logValue: fc.Arbitrary<LogValue<LockCommand>> = fc.option(few(command), { nil: null });
  const slotValue = fc.record({ slot: round, value: logValue });
  const seqName = { seq: round, name: nameArb };
  const reply: fc.Arbitrary<LockReply> = fc.oneof(
    fc.record({
      type: fc.constant('granted' as const),
      ...seqName,
      token: tokenArb,
      ttlMs: ttlArb,
      version: round,
    }),
    fc.record({
      type: fc.constantFrom(
        'queued' as const,
        'busy' as const,
        'ended' as const,
        'released' as const,
        'not-held' as const,
      ),
      ...seqName,
    }),
    fc.record({
      type: fc.constant('renewed' as const),
      seq: round,
      versions: upToMax(fc.option(round, { nil: null }), fc.option(fc.nat(9), { nil: null })),
    }),
    fc.record({
      type: fc.constant('cancelled' as const),
      seq: round,
      target: round,
      was: fc.constantFrom('queued' as const, 'granted' as const, 'unknown' as const),
    }),
    fc.record({ type: fc.constant('stale' as const), seq: round }),
  );
  const messages: LockArbitraries['messages'] = {
    'log.prepare': fc.record({
      type: fc.constant('log.prepare' as const),
      ballot,
      attempt: round,
      from: round,
    }),
    'log.promise': fc.record({
      type: fc.constant('log.promise' as const),
      ballot,
      attempt: round,
      from: round,
      entries: list(fc.record({ slot: round, ballot, value: logValue })),
      next: fc.option(round, { nil: null }),
      floor: round,
      applied: round,
      maxRound: round,
      lossy: fc.boolean(),
    }),
    'log.recover': fc.record({
      type: fc.constant('log.recover' as const),
      incarnation,
      from: round,
    }),
    'log.recovery': fc.record({
      type: fc.constant('log.recovery' as const),
      incarnation,
      voting: fc.boolean(),
      promised: fc.option(ballot, { nil: null }),
      maxRound: round,
      floor: round,
      from: round,
      entries: list(fc.record({ slot: round, ballot, value: logValue })),
      next: fc.option(round, { nil: null }),
    }),
    'log.accept': fc.record({
      type: fc.constant('log.accept' as const),
      ballot,
      attempt: round,
      entries: list(slotValue),
      commit: round,
    }),
    'log.accepted': fc.record({
      type: fc.constant('log.accepted' as const),
      ballot,
      attempt: round,
      applied: round,
    }),
    'log.reject': fc.record({
      type: fc.constant('log.reject' as const),
      ballot,
      attempt: round,
      promised: fc.option(ballot, { nil: null }),
      maxRound: round,
    }),
    'log.fetch': fc.record({ type: fc.constant('log.fetch' as const), from: round }),
    'log.chosen': fc.record({ type: fc.constant('log.chosen' as const), entries: list(slotValue) }),
    'log.snapshot-fetch': fc.record({
      type: fc.constant('log.snapshot-fetch' as const),
      slot: round,
      part: round,
    }),
    'log.snapshot': fc.record({
      type: fc.constant('log.snapshot' as const),
      slot: round,
      part: round,
      parts: fc.oneof(fc.constantFrom(1, 16_384), fc.integer({ min: 1, max: 16_384 })),
      data: snapshotDataArb,
    }),
    'lock.request': fc.record({
      type: fc.constant('lock.request' as const),
      commands: list(clientCommand),
    }),
    'lock.reply': fc.record({
      type: fc.constant('lock.reply' as const),
      incarnation,
      replies: list(reply),
    }),
    'lock.redirect': fc.record({
      type: fc.constant('lock.redirect' as const),
      incarnation,
      seqs: upToMax(round, fc.nat(9)),
      leader: fc.option(id, { nil: null }),
    }),
    'lock.read': fc.record({
      type: fc.constant('lock.read' as const),
      incarnation,
      id: round,
      name: nameArb,
    }),
    'lock.view': fc.record({
      type: fc.constant('lock.view' as const),
      incarnation,
      id: round,
      name: nameArb,
      holder: fc.option(owner, { nil: null }),
      token: fc.option(tokenArb, { nil: null }),
      waiters: round,
    }),
  };
  return { messages, clientCommand, command, reply };
}
