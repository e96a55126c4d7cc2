import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decodeFrame,
  encodeFrame,
  PROTOCOL_VERSION,
  type DecodeExpectations,
  type Frame,
  type ProtocolMessage,
} from '../../lib/codec/messages.js';
import { InvalidMessageError } from '../../lib/errors.js';
import { LeaseMachine } from '../../lib/lease/machine.js';
import type { LeaseMessage } from '../../lib/lease/messages.js';
import type { Ballot } from '../../lib/paxos/ballot.js';
import { createRng } from '../../lib/random.js';
import {
  applyRawMutation,
  expectedDecode,
  NUMBER_EDGES,
  RAW_OPS,
  RETYPE_TOKENS,
  scanMembers,
  SPECIAL_KEYS,
  STRING_EDGES,
  type Member,
  type RawMutation,
  type RawOp,
} from '../fuzz/corpus.js';
import { lockArbitraries } from './codec-arbitraries.js';

/**
 * The decoder against hostile text. test/unit/codec.test.ts checks each rule and edits frames
 * as JSON trees; here frames are edited as *text* (duplicate keys, numbers JSON.parse reads
 * differently than they look, escapes, truncation, prototype keys, …) and every answer is
 * compared with an independent reference (test/fuzz/corpus.ts): the decoder must refuse what
 * the reference refuses, and accept exactly what JSON.parse reads from the rest. Accepted
 * frames then go to a real lease machine.
 */

const EXPECT: DecodeExpectations = { cluster: 'synod', self: 'a', peers: new Set(['b', 'c']) };
const RUNS = { numRuns: 2000, seed: 0x5eed_f022 } as const;

/** Decodes `text` and checks the answer against the reference; returns the accepted frame. */
function checkAgainstReference(text: string, expect = EXPECT): Frame | null {
  let result: ReturnType<typeof decodeFrame>;
  try {
    result = decodeFrame(text, expect);
  } catch (error) {
    assert.fail(`decodeFrame threw on ${JSON.stringify(text.slice(0, 120))}: ${String(error)}`);
  }
  const expected = expectedDecode(text, expect);
  if (!result.ok) {
    assert.ok(result.error instanceof InvalidMessageError);
    // The message goes to logs: short, one line, whatever the input.
    assert.ok(result.error.message.length < 200, result.error.message.slice(0, 300));
    assert.ok(!/[\n\r]/.test(result.error.message) && !result.error.message.includes('\u0000'));
    assert.equal(
      expected.ok,
      false,
      `refused a valid frame (${result.reason}: ${result.error.message}): ${text.slice(0, 300)}`,
    );
    return null;
  }
  assert.ok(expected.ok, `accepted a frame outside the schema: ${text.slice(0, 300)}`);
  assert.deepEqual(result.frame, expected.value, 'the decoded frame is not what the text says');
  return result.frame;
}

// --- Arbitraries -----------------------------------------------------------------------------

const INCARNATIONS = ['00000000000000b1', '00000000000000c1', 'ffffffffffffffff'];
const incArb = fc.oneof(fc.constantFrom(...INCARNATIONS), fc.stringMatching(/^[0-9a-f]{16}$/));
const idArb = fc.oneof(
  fc.constantFrom('a', 'b', 'c'),
  fc.string({ minLength: 1, maxLength: 64 }),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 32 }),
);
const roundArb = fc.oneof(
  fc.nat(100),
  fc.integer({ min: 0, max: 2 ** 52 }),
  fc.constantFrom(0, 1, 2 ** 31, 2 ** 32, 2 ** 52 - 1, 2 ** 52),
);
const termArb = roundArb.map((r) => Math.max(1, r));
const ballotArb: fc.Arbitrary<Ballot> = fc.record({
  round: roundArb,
  node: idArb,
  incarnation: incArb,
});
const ownerArb = fc.record({ node: idArb, incarnation: incArb });
const leaseValueArb = fc.record({
  owner: ownerArb,
  leaseMs: fc.oneof(
    fc.constantFrom(1, 300, 1000, 3_600_000),
    fc.integer({ min: 1, max: 3_600_000 }),
  ),
  term: termArb,
});
const paxosValueArb = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
);
const lock = lockArbitraries({ id: idArb, incarnation: incArb, round: roundArb });

const messageArbs: Record<ProtocolMessage['type'], fc.Arbitrary<ProtocolMessage>> = {
  'lease.prepare': fc.record({ type: fc.constant('lease.prepare' as const), ballot: ballotArb }),
  'lease.promise': fc.record({
    type: fc.constant('lease.promise' as const),
    ballot: ballotArb,
    accepted: fc.option(fc.record({ ballot: ballotArb, value: leaseValueArb }), { nil: null }),
    maxRound: roundArb,
    termSeen: roundArb,
  }),
  'lease.accept': fc.record({
    type: fc.constant('lease.accept' as const),
    ballot: ballotArb,
    value: leaseValueArb,
  }),
  'lease.accepted': fc.record({
    type: fc.constant('lease.accepted' as const),
    ballot: ballotArb,
    maxRound: roundArb,
  }),
  'lease.reject': fc.record({
    type: fc.constant('lease.reject' as const),
    ballot: ballotArb,
    phase: fc.constantFrom('prepare' as const, 'accept' as const),
    promised: fc.option(ballotArb, { nil: null }),
    holder: fc.option(ownerArb, { nil: null }),
    maxRound: roundArb,
    termSeen: roundArb,
  }),
  'lease.chosen': fc.record({
    type: fc.constant('lease.chosen' as const),
    ballot: ballotArb,
    term: termArb,
  }),
  'lease.release': fc.record({
    type: fc.constant('lease.release' as const),
    owner: ownerArb,
    ballot: ballotArb,
    successor: fc.option(idArb, { nil: null }),
  }),
  'lease.recover': fc.record({ type: fc.constant('lease.recover' as const), incarnation: incArb }),
  'lease.recovery': fc.record({
    type: fc.constant('lease.recovery' as const),
    incarnation: incArb,
    maxRound: roundArb,
    recovered: fc.boolean(),
  }),
  'paxos.prepare': fc.record({
    type: fc.constant('paxos.prepare' as const),
    instance: roundArb,
    ballot: ballotArb,
  }),
  'paxos.promise': fc.record({
    type: fc.constant('paxos.promise' as const),
    instance: roundArb,
    ballot: ballotArb,
    accepted: fc.option(fc.record({ ballot: ballotArb, value: paxosValueArb }), { nil: null }),
  }),
  'paxos.accept': fc.record({
    type: fc.constant('paxos.accept' as const),
    instance: roundArb,
    ballot: ballotArb,
    value: paxosValueArb,
  }),
  'paxos.accepted': fc.record({
    type: fc.constant('paxos.accepted' as const),
    instance: roundArb,
    ballot: ballotArb,
  }),
  'paxos.reject': fc.record({
    type: fc.constant('paxos.reject' as const),
    instance: roundArb,
    ballot: ballotArb,
    promised: ballotArb,
  }),
  ...lock.messages,
};
const MESSAGE_TYPES = Object.keys(messageArbs) as ProtocolMessage['type'][];

/** A valid frame for node `a` of cluster `synod`, from `b` or `c`, of one of `types`. */
function framesOf(types: readonly ProtocolMessage['type'][]): fc.Arbitrary<Frame> {
  return fc
    .record({
      from: fc.constantFrom('b', 'c'),
      inc: incArb,
      msg: fc.oneof(...types.map((type) => messageArbs[type])),
    })
    .map(({ from, inc, msg }) => ({
      v: PROTOCOL_VERSION,
      cluster: 'synod',
      from,
      to: 'a',
      inc,
      msg,
    }));
}
const frameArb = framesOf(MESSAGE_TYPES);
/** Frames of the log and lock messages only. */
const lockFrameArb = framesOf(
  MESSAGE_TYPES.filter((type) => type.startsWith('log.') || type.startsWith('lock.')),
);

const rawMutationArb: fc.Arbitrary<RawMutation> = fc.record({
  op: fc.constantFrom(...RAW_OPS),
  at: fc.nat(),
  pick: fc.nat(),
});
const editsArb = fc.array(rawMutationArb, { minLength: 1, maxLength: 3 });

function mutated(frame: Frame, edits: readonly RawMutation[]): string {
  let text = encodeFrame(frame);
  for (const edit of edits) text = applyRawMutation(text, edit);
  return text;
}

/** `text` with whitespace around every member, where JSON allows it. */
function spaced(text: string, members: readonly Member[]): string {
  const cuts = members.flatMap((m) => [
    { at: m.keyStart, insert: '\n\t' },
    { at: m.keyEnd, insert: ' ' },
    { at: m.valueStart, insert: ' \r\n' },
    { at: m.valueEnd, insert: '  ' },
  ]);
  let out = text;
  for (const { at, insert } of cuts.sort((x, y) => y.at - x.at)) {
    out = out.slice(0, at) + insert + out.slice(at);
  }
  return ' ' + out + '\n';
}

// --- The decoder -----------------------------------------------------------------------------

describe('codec: fuzzing the decoder through the text of frames', function () {
  it('never throws on random text in any part of Unicode, and accepts none of it', function () {
    const jsonSoup = fc.constantFrom(...'{}[]":,0123456789-+.eEtruefalsn\\ \u0000\ud800'.split(''));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 200 }),
          fc.string({ unit: 'grapheme', maxLength: 100 }),
          fc.string({ unit: 'binary', maxLength: 200 }),
          fc.string({ unit: jsonSoup, maxLength: 200 }),
        ),
        (text) => {
          assert.equal(checkAgainstReference(text), null);
        },
      ),
      RUNS,
    );
  });

  it('agrees with the reference on random JSON values', function () {
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue({ maxDepth: 8 }), fc.json({ maxDepth: 4 })), (value) => {
        checkAgainstReference(typeof value === 'string' ? value : JSON.stringify(value));
      }),
      RUNS,
    );
  });

  it('agrees with the reference on valid frames of every type edited through their text', function () {
    const seen = { types: new Set<string>(), ops: new Set<RawOp>(), accepted: 0, refused: 0 };
    fc.assert(
      fc.property(frameArb, editsArb, (frame, edits) => {
        seen.types.add(frame.msg.type);
        for (const edit of edits) seen.ops.add(edit.op);
        const decoded = checkAgainstReference(mutated(frame, edits));
        if (decoded === null) seen.refused += 1;
        else seen.accepted += 1;
      }),
      RUNS,
    );
    // The run reached every message type and every kind of edit, and both verdicts.
    assert.deepEqual([...seen.types].sort(), [...MESSAGE_TYPES].sort());
    assert.deepEqual([...seen.ops].sort(), [...RAW_OPS].sort());
    assert.ok(seen.accepted > 20 && seen.refused > 1000, JSON.stringify(seen));
  });

  it('accepts the same frame however its text spells it: escapes, spacing, key order, repeated keys', function () {
    /** The tree with the keys of every object in reverse order (arrays keep theirs). */
    const reversed = (value: unknown): unknown => {
      if (Array.isArray(value)) return value.map(reversed);
      if (typeof value !== 'object' || value === null) return value;
      const entries = Object.entries(value).reverse();
      return Object.fromEntries(entries.map(([k, v]) => [k, reversed(v)]));
    };
    fc.assert(
      fc.property(frameArb, fc.nat(), (frame, pick) => {
        const text = encodeFrame(frame);
        // Escapes can make a frame near the size limit larger than it: size is not the point.
        const roomy = { ...EXPECT, maxBytes: 1 << 20 };
        const original = decodeFrame(text, roomy);
        assert.ok(original.ok);
        const members = scanMembers(text) ?? [];
        const spellings = [
          // Every string written with \u escapes, one edit per string.
          members.reduce((t, _, k) => applyRawMutation(t, { op: 'escape', at: k, pick }), text),
          spaced(text, members),
          JSON.stringify(reversed(JSON.parse(text))),
          // A key written twice, the original value last: JSON.parse keeps the last.
          applyRawMutation(text, { op: 'duplicate-before', at: pick, pick: 1 + (pick % 10) }),
        ];
        for (const spelling of spellings) {
          const decoded = checkAgainstReference(spelling, roomy);
          assert.ok(decoded !== null, `refused ${spelling.slice(0, 300)}`);
          assert.deepEqual(decoded, original.frame);
        }
      }),
      { ...RUNS, numRuns: 500 },
    );
  });

  it('agrees with the reference on every edge value in every field of log and lock frames', function () {
    // Tokens spelled "-0", "01" or "+1", base64 of a length that is no multiple of 4, counts
    // and TTLs one past their bound, …: in each field, a quarter of the edges of its kind and
    // of the other kinds (a different quarter from field to field and run to run).
    const edges = (kind: Member['kind']): readonly string[] =>
      kind === 'string'
        ? [...STRING_EDGES, ...RETYPE_TOKENS]
        : kind === 'number'
          ? [...NUMBER_EDGES, ...RETYPE_TOKENS]
          : RETYPE_TOKENS;
    const seen = { accepted: 0, refused: 0 };
    fc.assert(
      fc.property(lockFrameArb, fc.nat(3), (frame, quarter) => {
        const text = encodeFrame(frame);
        if (text.length > 4096) return;
        for (const [k, m] of (scanMembers(text) ?? []).entries()) {
          for (const edge of edges(m.kind).filter((_, e) => (e + k + quarter) % 4 === 0)) {
            const edited = text.slice(0, m.valueStart) + edge + text.slice(m.valueEnd);
            if (checkAgainstReference(edited) === null) seen.refused += 1;
            else seen.accepted += 1;
          }
        }
      }),
      { ...RUNS, numRuns: 40 },
    );
    assert.ok(seen.accepted > 100 && seen.refused > 5000, JSON.stringify(seen));
  });

  it('refuses a prototype key at any level, and never changes Object.prototype', function () {
    const keys = SPECIAL_KEYS.filter((k) => ['__proto__', 'constructor', 'prototype'].includes(k));
    fc.assert(
      fc.property(frameArb, fc.nat(), fc.nat(), (frame, at, pick) => {
        const edit = pick % 2 === 0 ? 'insert-key' : 'rename';
        const text = applyRawMutation(encodeFrame(frame), {
          op: edit,
          at,
          pick: SPECIAL_KEYS.indexOf(keys[pick % keys.length] ?? '__proto__'),
        });
        assert.equal(checkAgainstReference(text), null);
        assert.equal(({} as Record<string, unknown>)['round'], undefined);
        assert.equal(Object.getPrototypeOf({}), Object.prototype);
      }),
      { ...RUNS, numRuns: 500 },
    );
  });
});

// --- Accepted frames into a lease machine ----------------------------------------------------

/** One step of a conversation with a lease machine `a`. */
type Step =
  | { readonly kind: 'frame'; readonly frame: Frame; readonly edits: readonly RawMutation[] }
  | { readonly kind: 'answer'; readonly pick: number; readonly edits: readonly RawMutation[] }
  | { readonly kind: 'wait'; readonly ms: number };

/** Mostly none, sometimes one or two: most frames of a conversation should get through. */
const fewEditsArb = fc.oneof(
  { weight: 2, arbitrary: fc.constant([]) },
  { weight: 1, arbitrary: fc.array(rawMutationArb, { minLength: 1, maxLength: 2 }) },
);

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('frame' as const),
      frame: frameArb,
      edits: fewEditsArb,
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('answer' as const),
      pick: fc.nat(),
      edits: fewEditsArb,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('wait' as const),
      ms: fc.integer({ min: 0, max: 400 }),
    }),
  },
);

/** A valid answer from a peer to something `a` sent it: it lets `a` win its rounds. */
function answer(sent: { to: string; message: LeaseMessage }, inc: string): Frame | null {
  const m = sent.message;
  let msg: LeaseMessage;
  if (m.type === 'lease.prepare') {
    msg = {
      type: 'lease.promise',
      ballot: m.ballot,
      accepted: null,
      maxRound: m.ballot.round - 1,
      termSeen: 0,
    };
  } else if (m.type === 'lease.accept') {
    msg = { type: 'lease.accepted', ballot: m.ballot, maxRound: m.ballot.round };
  } else if (m.type === 'lease.recover') {
    msg = { type: 'lease.recovery', incarnation: m.incarnation, maxRound: 0, recovered: true };
  } else {
    return null;
  }
  return { v: PROTOCOL_VERSION, cluster: 'synod', from: sent.to, to: 'a', inc, msg };
}

/** What a conversation did. */
interface Conversation {
  /** Frames the decoder accepted and the machine was given. */
  readonly accepted: number;
  /** Whether `a` was elected at some point. */
  readonly elected: boolean;
  /** Messages the machine wanted sent that `encodeFrame` refuses: none must exist. */
  readonly unencodable: readonly string[];
}

/**
 * Plays `steps` against a machine `a` (past its restart silence; on odd seeds started without
 * storage, so it must first recover the highest round). Every frame goes through
 * the decoder first, as in the node; what it accepts is handed to the machine, which must not
 * throw and must address only its peers. Only messages that can be encoded are answered (a node
 * could send no other: see `unencodable`).
 */
function converse(steps: readonly Step[], seed: number): Conversation {
  const machine = new LeaseMachine(
    {
      id: 'a',
      incarnation: '00000000000000a1',
      peers: ['a', 'b', 'c'],
      leaseMs: 300,
      maxClockDrift: 0.01,
      marginMs: 10,
      rng: createRng(seed),
    },
    seed % 2 === 1 ? null : { promised: null, maxRound: 0 },
  );
  let now = 1000;
  let sent: { to: string; message: LeaseMessage }[] = [];
  let accepted = 0;
  let elected = false;
  const unencodable: string[] = [];
  const feed = (out: ReturnType<LeaseMachine['handle']>): void => {
    for (const envelope of out.send) {
      assert.ok(envelope.to === 'b' || envelope.to === 'c', `sent to ${envelope.to}`);
      try {
        encodeFrame({
          v: PROTOCOL_VERSION,
          cluster: 'synod',
          from: 'a',
          to: envelope.to,
          inc: '00000000000000a1',
          msg: envelope.message,
        });
      } catch (error) {
        unencodable.push(`${envelope.message.type}: ${String(error)}`);
        continue;
      }
      sent = [...sent, envelope].slice(-8);
    }
    if (out.events.some((e) => e.type === 'elected')) elected = true;
  };
  feed(machine.start(now));
  now += 301;
  feed(machine.handle({ type: 'tick' }, now));
  for (const step of steps) {
    let text: string;
    if (step.kind === 'wait') {
      now += step.ms;
      feed(machine.handle({ type: 'tick' }, now));
      continue;
    }
    if (step.kind === 'frame') {
      text = encodeFrame(step.frame);
    } else {
      const target = sent[sent.length - 1 - (step.pick % Math.max(1, sent.length))];
      const frame = target === undefined ? null : answer(target, INCARNATIONS[0] ?? '');
      if (frame === null) continue;
      text = encodeFrame(frame);
    }
    for (const edit of step.edits) text = applyRawMutation(text, edit);
    const frame = checkAgainstReference(text);
    if (frame?.msg.type.startsWith('lease.') !== true) continue;
    accepted += 1;
    const message = frame.msg as LeaseMessage;
    feed(machine.handle({ type: 'message', from: frame.from, message }, now));
  }
  return { accepted, elected, unencodable };
}

const conversationArb = fc.tuple(fc.array(stepArb, { minLength: 1, maxLength: 30 }), fc.nat());

describe('codec: accepted frames into a lease machine', function () {
  it('never makes a lease machine throw, whatever it accepts', function () {
    let accepted = 0;
    let elections = 0;
    fc.assert(
      fc.property(conversationArb, ([steps, seed]) => {
        const result = converse(steps, seed);
        accepted += result.accepted;
        if (result.elected) elections += 1;
      }),
      { ...RUNS, numRuns: 1000 },
    );
    // The conversations reached the interesting states: frames got through, and `a` led.
    assert.ok(accepted > 1000, `${accepted} frames accepted`);
    assert.ok(elections > 40, `${elections} conversations elected a`);
  });

  // A single valid frame naming round 2^53 − 1 once made the node's next ballot 2^53, which
  // encodeFrame refuses: the node halted. Peers may now name rounds up to 2^52 only.
  it('only ever wants to send messages that can be encoded, whatever it accepted', function () {
    fc.assert(
      fc.property(conversationArb, ([steps, seed]) => {
        assert.deepEqual(converse(steps, seed).unencodable, []);
      }),
      { ...RUNS, numRuns: 500 },
    );
  });
});
