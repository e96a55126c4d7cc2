import { ConfigError, InvariantError } from '../errors.js';
import type { Rng } from '../random.js';
import type { NodeId, Output } from '../types.js';
import { Acceptor, type Accepted, type AcceptorState } from './acceptor.js';
import { ballotEquals, type Ballot } from './ballot.js';
import type { PaxosMessage } from './messages.js';
import { earliest, emptyOutput } from './output.js';
import { DEFAULT_MAX_ATTEMPTS, Proposer, type ProposerAction } from './proposer.js';

export interface DecreeConfig {
  readonly id: NodeId;
  /** Drawn at every start, so a restarted node never reuses a ballot of its earlier life. */
  readonly incarnation: string;
  /** Every voter, this node included. */
  readonly peers: readonly NodeId[];
  readonly rng: Rng;
  /** How long each phase of a round waits for a majority. */
  readonly roundTimeoutMs: number;
  /** The base of the exponential backoff after a failed round. */
  readonly backoffMs: number;
  /** Give up proposing after this many rounds; default 20. */
  readonly maxAttempts?: number;
}

/** What must survive a restart with storage: every acceptor's state and the highest round seen. */
export interface DecreeRecord {
  readonly maxRound: number;
  /** `[instance, state]` pairs in ascending instance order. */
  readonly acceptors: readonly (readonly [number, AcceptorState<string>])[];
}

export type DecreeEvent =
  /** This node's proposer sent a Prepare with a fresh ballot. */
  | { readonly type: 'prepared'; readonly instance: number; readonly ballot: Ballot }
  /** This node's acceptor accepted `value` in `ballot`. */
  | {
      readonly type: 'voted';
      readonly instance: number;
      readonly ballot: Ballot;
      readonly value: string;
    }
  /** This node's proposer saw a majority accept `value` in `ballot`. */
  | {
      readonly type: 'chosen';
      readonly instance: number;
      readonly ballot: Ballot;
      readonly value: string;
    }
  /** This node's proposer ran out of attempts without seeing a value chosen. */
  | { readonly type: 'gaveUp'; readonly instance: number };

export type DecreeInput =
  | { readonly type: 'message'; readonly from: NodeId; readonly message: PaxosMessage }
  | { readonly type: 'tick' };

export type DecreeOutput = Output<PaxosMessage, DecreeRecord, DecreeEvent>;

/**
 * Many independent single-decree Basic Paxos instances on one node, keyed by a non-negative
 * integer: one acceptor per instance (created on demand) and at most one proposer attempt.
 * Pure: each call takes `now` and returns what to persist, send and announce, and `wakeAt`.
 *
 * Messages to this node itself are handled in the same call, so its own acceptor votes without
 * a network hop; `send` carries only envelopes to other nodes. `persist` carries the whole
 * record whenever an acceptor's state or the highest round changed: the runtime writes it
 * before sending, so no promise or vote leaves the node before it is durable.
 */
export class DecreeMachine {
  readonly #config: DecreeConfig;
  readonly #voters: ReadonlySet<NodeId>;
  readonly #maxAttempts: number;
  readonly #acceptors = new Map<number, Acceptor<string>>();
  /** Restored states not yet needed; their acceptors are built on first use. */
  readonly #restored = new Map<number, AcceptorState<string>>();
  readonly #attempts = new Map<number, Proposer<string>>();
  readonly #chosen = new Map<number, string>();
  /** Messages this node sent itself during the current call, handled before it returns. */
  readonly #local: PaxosMessage[] = [];
  #maxRound = 0;
  #dirty = false;

  constructor(config: DecreeConfig, restored: DecreeRecord | null) {
    validate(config);
    this.#config = config;
    this.#voters = new Set(config.peers);
    this.#maxAttempts = config.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    if (restored !== null) {
      this.#maxRound = restored.maxRound;
      for (const [instance, state] of restored.acceptors) {
        this.#restored.set(instance, state);
        // The record should already cover these rounds; climbing above them costs nothing.
        this.#see(state.promised?.round ?? 0);
        this.#see(state.accepted?.ballot.round ?? 0);
      }
      this.#dirty = false;
    }
  }

  /** The highest round this node has seen in any message or used: new ballots go above it. */
  get maxRound(): number {
    return this.#maxRound;
  }

  /** The value this node's proposer saw chosen for `instance`, if any. */
  chosen(instance: number): string | undefined {
    return this.#chosen.get(instance);
  }

  /**
   * Starts an attempt to get `value` chosen for `instance`. Does nothing if this node already
   * saw a value chosen there or an attempt is still running; after `gaveUp` it may start again.
   */
  propose(instance: number, value: string, now: number): DecreeOutput {
    checkInstance(instance);
    const out: DecreeOutput = emptyOutput();
    if (!this.#chosen.has(instance) && !this.#attempts.has(instance)) {
      const attempt = new Proposer<string>(
        {
          peers: this.#config.peers,
          rng: this.#config.rng,
          roundTimeoutMs: this.#config.roundTimeoutMs,
          backoffMs: this.#config.backoffMs,
          maxAttempts: this.#maxAttempts,
          makeBallot: (round) => this.makeBallot(round),
        },
        value,
        this.#maxRound,
      );
      this.#attempts.set(instance, attempt);
      this.#apply(instance, attempt.start(now), out);
      this.#drain(now, out);
    }
    return this.#finish(out);
  }

  handle(input: DecreeInput, now: number): DecreeOutput {
    const out: DecreeOutput = emptyOutput();
    switch (input.type) {
      case 'tick':
        for (const [instance, attempt] of [...this.#attempts]) {
          attempt.observe(this.#maxRound);
          this.#apply(instance, attempt.tick(now), out);
        }
        break;
      case 'message':
        // Only voters take part: a stranger's promise must never complete a majority, and
        // staying silent towards it is always safe.
        if (input.from !== this.#config.id && this.#voters.has(input.from)) {
          this.#receive(input.from, input.message, now, out);
        }
        break;
      default:
        unreachable(input);
    }
    this.#drain(now, out);
    return this.#finish(out);
  }

  /** Builds each instance's acceptor. Broken variants in the tests override it. */
  protected createAcceptor(restored: AcceptorState<string> | null): Acceptor<string> {
    return new Acceptor<string>(restored);
  }

  /**
   * Every fresh ballot comes from here. The incarnation makes it unique to this life of the
   * node: without it a node restarted without disk could reuse a ballot it already sent with
   * another value. Broken variants in the tests override it.
   */
  protected makeBallot(round: number): Ballot {
    return { round, node: this.#config.id, incarnation: this.#config.incarnation };
  }

  #receive(from: NodeId, message: PaxosMessage, now: number, out: DecreeOutput): void {
    const instance = message.instance;
    if (!Number.isSafeInteger(instance) || instance < 0) return;
    this.#see(message.ballot.round);
    switch (message.type) {
      case 'paxos.prepare':
        this.#onPrepare(from, instance, message.ballot, out);
        break;
      case 'paxos.accept':
        this.#onAccept(from, instance, message.ballot, message.value, out);
        break;
      case 'paxos.promise': {
        if (message.accepted !== null) this.#see(message.accepted.ballot.round);
        const attempt = this.#attempts.get(instance);
        if (attempt === undefined) break;
        attempt.observe(this.#maxRound);
        this.#apply(instance, attempt.onPromise(from, message.ballot, message.accepted, now), out);
        break;
      }
      case 'paxos.accepted': {
        const attempt = this.#attempts.get(instance);
        if (attempt === undefined) break;
        this.#apply(instance, attempt.onAccepted(from, message.ballot), out);
        break;
      }
      case 'paxos.reject': {
        this.#see(message.promised.round);
        const attempt = this.#attempts.get(instance);
        if (attempt === undefined) break;
        attempt.observe(this.#maxRound);
        this.#apply(instance, attempt.onReject(from, message.ballot, message.promised, now), out);
        break;
      }
      default:
        unreachable(message);
    }
  }

  /** Phase 1b (Paxos Made Simple, 2.2): promise unless a higher ballot was promised. */
  #onPrepare(from: NodeId, instance: number, ballot: Ballot, out: DecreeOutput): void {
    const acceptor = this.#acceptor(instance);
    const before = acceptor.state();
    const result = acceptor.prepare(ballot);
    this.#noteChange(before, acceptor.state());
    if (result.ok) {
      this.#post(from, { type: 'paxos.promise', instance, ballot, accepted: result.accepted }, out);
    } else if (result.promised !== null) {
      this.#post(from, { type: 'paxos.reject', instance, ballot, promised: result.promised }, out);
    }
    // A refusal with nothing promised has no ballot to report; silence is always safe.
  }

  /** Phase 2b: accept unless a higher ballot was promised. */
  #onAccept(
    from: NodeId,
    instance: number,
    ballot: Ballot,
    value: string,
    out: DecreeOutput,
  ): void {
    const acceptor = this.#acceptor(instance);
    const before = acceptor.state();
    const result = acceptor.accept(ballot, value);
    const after = acceptor.state();
    this.#noteChange(before, after);
    if (result.ok) {
      if (after.accepted !== null && !sameAccepted(before.accepted, after.accepted)) {
        out.events.push({ type: 'voted', instance, ...after.accepted });
      }
      this.#post(from, { type: 'paxos.accepted', instance, ballot }, out);
    } else if (result.promised !== null) {
      this.#post(from, { type: 'paxos.reject', instance, ballot, promised: result.promised }, out);
    }
  }

  /** Turns a proposer's actions into messages to every voter and events. */
  #apply(instance: number, actions: ProposerAction<string>[], out: DecreeOutput): void {
    for (const action of actions) {
      switch (action.type) {
        case 'prepare':
          // Seen before it is sent, so the record that goes out with it covers this round.
          this.#see(action.ballot.round);
          out.events.push({ type: 'prepared', instance, ballot: action.ballot });
          this.#broadcast({ type: 'paxos.prepare', instance, ballot: action.ballot }, out);
          break;
        case 'accept':
          this.#broadcast(
            { type: 'paxos.accept', instance, ballot: action.ballot, value: action.value },
            out,
          );
          break;
        case 'chosen':
          this.#attempts.delete(instance);
          this.#chosen.set(instance, action.value);
          out.events.push({
            type: 'chosen',
            instance,
            ballot: action.ballot,
            value: action.value,
          });
          break;
        case 'gaveUp':
          this.#attempts.delete(instance);
          out.events.push({ type: 'gaveUp', instance });
          break;
        default:
          unreachable(action);
      }
    }
  }

  #broadcast(message: PaxosMessage, out: DecreeOutput): void {
    for (const to of this.#config.peers) this.#post(to, message, out);
  }

  /** A reply: to this node itself it is handled in this call, never sent. */
  #post(to: NodeId, message: PaxosMessage, out: DecreeOutput): void {
    if (to === this.#config.id) this.#local.push(message);
    else out.send.push({ to, message });
  }

  /** Handles every message this node sent itself, including the ones those produce. */
  #drain(now: number, out: DecreeOutput): void {
    for (let message = this.#local.shift(); message !== undefined; message = this.#local.shift()) {
      this.#receive(this.#config.id, message, now, out);
    }
  }

  #finish(out: DecreeOutput): DecreeOutput {
    if (this.#dirty) {
      out.persist = this.#record();
      this.#dirty = false;
    }
    let wakeAt: number | null = null;
    for (const attempt of this.#attempts.values()) wakeAt = earliest(wakeAt, attempt.wakeAt);
    out.wakeAt = wakeAt;
    return out;
  }

  #record(): DecreeRecord {
    const states = new Map<number, AcceptorState<string>>(this.#restored);
    for (const [instance, acceptor] of this.#acceptors) states.set(instance, acceptor.state());
    const acceptors = [...states].sort(([a], [b]) => a - b);
    return { maxRound: this.#maxRound, acceptors };
  }

  /** Every instance answers Prepare and Accept, even one this node never heard of. */
  #acceptor(instance: number): Acceptor<string> {
    let acceptor = this.#acceptors.get(instance);
    if (acceptor === undefined) {
      acceptor = this.createAcceptor(this.#restored.get(instance) ?? null);
      this.#restored.delete(instance);
      this.#acceptors.set(instance, acceptor);
    }
    return acceptor;
  }

  #see(round: number): void {
    if (round > this.#maxRound) {
      this.#maxRound = round;
      this.#dirty = true;
    }
  }

  #noteChange(before: AcceptorState<string>, after: AcceptorState<string>): void {
    if (
      !ballotEquals(before.promised, after.promised) ||
      !sameAccepted(before.accepted, after.accepted)
    ) {
      this.#dirty = true;
    }
  }
}

function sameAccepted(a: Accepted<string> | null, b: Accepted<string> | null): boolean {
  if (a === null || b === null) return a === b;
  return ballotEquals(a.ballot, b.ballot) && a.value === b.value;
}

function checkInstance(instance: number): void {
  if (!Number.isSafeInteger(instance) || instance < 0) {
    throw new InvariantError(`a decree instance is a non-negative integer, not ${instance}`);
  }
}

function validate(config: DecreeConfig): void {
  if (!config.peers.includes(config.id)) {
    throw new ConfigError(`peers must include this node's id ${config.id}`);
  }
  if (new Set(config.peers).size !== config.peers.length) {
    throw new ConfigError('peers must not repeat an id');
  }
  if (!(config.roundTimeoutMs > 0)) throw new ConfigError('roundTimeoutMs must be positive');
  if (!(config.backoffMs > 0)) throw new ConfigError('backoffMs must be positive');
  const { maxAttempts } = config;
  if (maxAttempts !== undefined && !(Number.isSafeInteger(maxAttempts) && maxAttempts >= 1)) {
    throw new ConfigError('maxAttempts must be a positive integer');
  }
}

function unreachable(x: never): never {
  throw new InvariantError(`unexpected decree input ${JSON.stringify(x)}`);
}
