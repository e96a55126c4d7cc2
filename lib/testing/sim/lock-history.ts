import { ConfigError, InvariantError } from '../../errors.js';

/**
 * One operation of a lock history, in true (simulated real) time. The simulator records them
 * per run; `checkLinearizable` judges them (guarantee G5).
 */
export type LockHistoryOp =
  | {
      readonly type: 'acquire';
      readonly client: string;
      readonly name: string;
      readonly invokedAt: number;
      readonly respondedAt: number | null;
      /**
       * The grant's token: set when the client got a grant (respondedAt set), or, for an op with
       * no response (client crashed, request timed out or cancelled), the token the log granted
       * it if any; null if it never took effect.
       */
      readonly token: bigint | null;
    }
  | {
      readonly type: 'release';
      readonly client: string;
      readonly name: string;
      readonly token: bigint;
      readonly invokedAt: number;
      readonly respondedAt: number | null;
      /** null: no response. */
      readonly result: 'released' | 'not-held' | null;
    }
  /**
   * The leader's expire of a grant, as an operation of a virtual client: invoked when the leader
   * proposed it, responded when it applied. Only expires that applied are recorded.
   */
  | {
      readonly type: 'expire';
      readonly name: string;
      readonly token: bigint;
      readonly invokedAt: number;
      readonly respondedAt: number;
    };

export type LinearizabilityResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly name: string; readonly explanation: string }
  /**
   * The search spent its budget (`maxSteps`) on one name without deciding: the history is too
   * concurrent for an exhaustive search. Neither a pass nor a failure; report it as such.
   */
  | { readonly ok: 'unknown'; readonly name: string; readonly explanation: string };

export interface LinearizabilityOptions {
  /**
   * Search steps allowed per lock name (one step: one operation tried, or one undone). A nearly
   * sequential history takes about ten steps per operation; the budget only stops a search that
   * blows up, which then answers `ok: 'unknown'`. Default `DEFAULT_MAX_STEPS`.
   */
  readonly maxSteps?: number;
}

/**
 * Steps per name before the search gives up. A realistic history takes about ten per op (a
 * 5,000-op history with a few dozen acquires in flight: about 55,000); the whole budget is a
 * fraction of a second of search.
 */
export const DEFAULT_MAX_STEPS = 1_000_000;

/**
 * Whether a lock history is linearizable against the sequential lock: per name, state
 * `{ holder, lastToken }`; `acquire(t)` needs no holder and `t` above every earlier token and
 * makes `t` the holder; `release(t)` frees the name if `t` holds it (answer `released`), else
 * changes nothing (answer `not-held`); `expire(t)` needs `t` to hold and frees the name.
 *
 * An operation with no response may take effect at any point after its invocation: an acquire
 * that the log granted (`token` set) must take effect, a release with no answer may also never
 * take effect, and an acquire with no token took no effect and is left out. If an operation's
 * response precedes another's invocation (strictly), it must be ordered first.
 *
 * Names are independent (a lock's operations touch one name), so each name is checked alone.
 * The first name that fails is reported; if none fails, the first the search could not decide
 * within `maxSteps` is reported as `ok: 'unknown'`.
 *
 * The search is Wing and Gong's, with Lowe's memo of visited configurations (the set of
 * operations linearized and the holder; the last token follows from the set), in the form of
 * Porcupine's `checkSingle`: a list of call and return entries in time order, from which a
 * placed operation is lifted out. Two reductions keep lock histories cheap. Every acquire
 * must take effect and tokens only grow, so only the acquire with the smallest token not yet
 * placed is ever tried. And a release that can no longer change anything (answered `not-held`,
 * or of a token this name granted earlier and that is not held now, or never granted) is placed
 * as soon as it may be, and never tried later instead: moving it earlier keeps a linearization
 * legal, as it changes no state and everything it must follow is already placed.
 */
export function checkLinearizable(
  ops: readonly LockHistoryOp[],
  options: LinearizabilityOptions = {},
): LinearizabilityResult {
  const maxSteps = options.maxSteps ?? DEFAULT_MAX_STEPS;
  if (!Number.isSafeInteger(maxSteps) || maxSteps < 1) {
    throw new ConfigError(`maxSteps must be a whole number of steps, at least 1 (got ${maxSteps})`);
  }
  const byName = new Map<string, LockHistoryOp[]>();
  for (const op of ops) {
    validate(op);
    let list = byName.get(op.name);
    if (list === undefined) {
      list = [];
      byName.set(op.name, list);
    }
    list.push(op);
  }
  let unknown: LinearizabilityResult | null = null;
  for (const [name, list] of byName) {
    const result = checkName(name, list, maxSteps);
    if (result.ok === false) return result;
    if (result.ok === 'unknown') unknown ??= result;
  }
  return unknown ?? { ok: true };
}

function validate(op: LockHistoryOp): void {
  if (!Number.isFinite(op.invokedAt)) {
    throw new InvariantError(`lock history: ${describe(op)} has no finite invocation time`);
  }
  const r = op.respondedAt;
  if (r !== null && (!Number.isFinite(r) || r < op.invokedAt)) {
    throw new InvariantError(`lock history: ${describe(op)} responds before it is invoked`);
  }
}

/** One operation as the search sees it; `id` orders by invocation. */
interface Op {
  readonly source: LockHistoryOp;
  readonly kind: 'acquire' | 'release' | 'expire';
  readonly token: bigint;
  readonly result: 'released' | 'not-held' | null;
  readonly invokedAt: number;
  /** Infinity when there was no response. */
  readonly respondedAt: number;
  /** A release with no response and no answer: may be left out entirely. */
  readonly optional: boolean;
  /** An acquire's place in token order among the name's acquires (ties by id); -1 otherwise. */
  rank: number;
  /** The rank of the (first) acquire of this op's token; -1 if this name never granted it. */
  tokenRank: number;
}

interface State {
  holder: bigint | null;
  /** The last token granted; null before any. */
  last: bigint | null;
  /** Acquires placed. */
  granted: number;
}

const ILLEGAL = 0;
/** Legal, and changes nothing here; its token may still be held later, when it would. */
const NOOP = 1;
/** Legal, changes nothing, and never will: a `not-held` answer, or a token past or never held. */
const DEAD = 2;
const EFFECT = 3;
type Outcome = typeof ILLEGAL | typeof NOOP | typeof DEAD | typeof EFFECT;

/** The sequential lock: what `op` does in state `s` (without changing `s`). */
function outcome(op: Op, s: State): Outcome {
  switch (op.kind) {
    case 'acquire':
      // Every acquire here must take effect, in token order: only the one with the smallest
      // token not yet placed can go next (any other would leave that one no legal place).
      return s.holder === null && op.rank === s.granted && (s.last === null || op.token > s.last)
        ? EFFECT
        : ILLEGAL;
    case 'release':
      if (s.holder === op.token) return op.result === 'not-held' ? ILLEGAL : EFFECT;
      if (op.result === 'released') return ILLEGAL;
      // Not held now; held later only if its acquire is still to come.
      return op.result === 'not-held' || op.tokenRank < s.granted ? DEAD : NOOP;
    case 'expire':
      return s.holder === op.token ? EFFECT : ILLEGAL;
  }
}

interface Frame {
  readonly id: number;
  readonly holder: bigint | null;
  readonly last: bigint | null;
  readonly granted: number;
  /** Placed as a no-op for good (DEAD): if the search fails after it, it fails without it. */
  readonly forced: boolean;
}

const NONE = -1;

function checkName(
  name: string,
  history: readonly LockHistoryOp[],
  maxSteps: number,
): LinearizabilityResult {
  const ops = prepare(history);
  const n = ops.length;
  if (n === 0) return { ok: true };

  // Entries: call of op i is 2i, its return 2i + 1 (absent for an optional op), the head 2n.
  const head = 2 * n;
  const next = new Int32Array(2 * n + 1).fill(NONE);
  const prev = new Int32Array(2 * n + 1).fill(NONE);
  const entries: number[] = [];
  for (let i = 0; i < n; i++) {
    entries.push(2 * i);
    if (!at(ops, i).optional) entries.push(2 * i + 1);
  }
  const time = (e: number): number => {
    const op = at(ops, e >> 1);
    return (e & 1) === 0 ? op.invokedAt : op.respondedAt;
  };
  // Time order; at one instant calls before returns (a response at the instant of another's
  // invocation does not order them), then by op.
  entries.sort((a, b) => time(a) - time(b) || (a & 1) - (b & 1) || a - b);
  let before = head;
  for (const e of entries) {
    next[before] = e;
    prev[e] = before;
    before = e;
  }

  // Dancing links: an entry taken out keeps its own links, so undoing in reverse order restores it.
  const out = (e: number): void => {
    const p = prev[e] ?? NONE;
    const q = next[e] ?? NONE;
    next[p] = q;
    if (q !== NONE) prev[q] = p;
  };
  const back = (e: number): void => {
    const p = prev[e] ?? NONE;
    const q = next[e] ?? NONE;
    next[p] = e;
    if (q !== NONE) prev[q] = e;
  };
  const lift = (i: number): void => {
    out(2 * i);
    if (!at(ops, i).optional) out(2 * i + 1);
  };
  const unlift = (i: number): void => {
    if (!at(ops, i).optional) back(2 * i + 1);
    back(2 * i);
  };

  const key = new SetKey(ops);
  const seen = new Set<string>();
  const stack: Frame[] = [];
  const state: State = { holder: null, last: null, granted: 0 };
  let required = ops.filter((op) => !op.optional).length;
  let steps = 0;
  /** The deepest point the search reached, for the explanation. */
  let deepest: { depth: number; blocked: number; state: State; lastOp: number | null } | null =
    null;

  let entry = next[head] ?? NONE;
  while (required > 0) {
    if (++steps > maxSteps) {
      return {
        ok: 'unknown',
        name,
        explanation:
          `${name}: undecided after ${maxSteps} search steps over ${n} ops ` +
          `(${seen.size} configurations; at most ${deepest?.depth ?? stack.length} ops placed)`,
      };
    }
    // A required op's return entry stays in the list until it is placed, so the scan meets
    // one before the end.
    if (entry === NONE) throw new InvariantError('lock history: the search ran off the list');
    if ((entry & 1) === 0) {
      const id = entry >> 1;
      const op = at(ops, id);
      const o = outcome(op, state);
      // An optional op that changes nothing now is as good as left out (or placed later).
      if (o === ILLEGAL || (o === NOOP && op.optional)) {
        entry = next[entry] ?? NONE;
        continue;
      }
      key.add(id);
      const holder = o === EFFECT ? (op.kind === 'acquire' ? op.token : null) : state.holder;
      const k = key.text(holder);
      if (seen.has(k)) {
        key.remove(id);
        // Explored from there and failed; for a DEAD op that means from here too.
        if (o !== DEAD) {
          entry = next[entry] ?? NONE;
          continue;
        }
      } else {
        seen.add(k);
        stack.push({
          id,
          holder: state.holder,
          last: state.last,
          granted: state.granted,
          forced: o === DEAD,
        });
        if (o === EFFECT) {
          state.holder = holder;
          if (op.kind === 'acquire') {
            state.last = op.token;
            state.granted++;
          }
        }
        lift(id);
        if (!op.optional) required--;
        entry = next[head] ?? NONE;
        continue;
      }
    } else if (deepest === null || stack.length > deepest.depth) {
      // A return entry: its op must be placed before anything invoked later, and it cannot be.
      deepest = {
        depth: stack.length,
        blocked: entry >> 1,
        state: { ...state },
        lastOp: stack.at(-1)?.id ?? null,
      };
    }

    // Backtrack: undo the last placement and try the next candidate in its place. Undoing a
    // DEAD op fails its configuration as well (see above), so keep undoing.
    for (;;) {
      const frame = stack.pop();
      if (frame === undefined) {
        return { ok: false, name, explanation: explain(name, ops, deepest) };
      }
      state.holder = frame.holder;
      state.last = frame.last;
      state.granted = frame.granted;
      key.remove(frame.id);
      unlift(frame.id);
      if (!at(ops, frame.id).optional) required++;
      if (!frame.forced) {
        entry = next[2 * frame.id] ?? NONE;
        break;
      }
    }
  }
  return { ok: true };
}

/** The ops of one name, in invocation order; acquires that took no effect left out. */
function prepare(history: readonly LockHistoryOp[]): Op[] {
  const ops: Op[] = [];
  for (const source of history) {
    const respondedAt = source.respondedAt ?? Infinity;
    switch (source.type) {
      case 'acquire':
        // Took no effect: placing it anywhere in its interval changes nothing, and everything
        // it would have to follow also precedes everything that would have to follow it.
        if (source.token === null) break;
        ops.push({
          source,
          kind: 'acquire',
          token: source.token,
          result: null,
          invokedAt: source.invokedAt,
          respondedAt,
          optional: false,
          rank: -1,
          tokenRank: -1,
        });
        break;
      case 'release':
        ops.push({
          source,
          kind: 'release',
          token: source.token,
          result: source.result,
          invokedAt: source.invokedAt,
          respondedAt,
          optional: source.respondedAt === null && source.result === null,
          rank: -1,
          tokenRank: -1,
        });
        break;
      case 'expire':
        ops.push({
          source,
          kind: 'expire',
          token: source.token,
          result: null,
          invokedAt: source.invokedAt,
          respondedAt,
          optional: false,
          rank: -1,
          tokenRank: -1,
        });
        break;
    }
  }
  ops.sort((a, b) => a.invokedAt - b.invokedAt);
  ops
    .map((op, id) => ({ op, id }))
    .filter(({ op }) => op.kind === 'acquire')
    .sort((a, b) => (a.op.token < b.op.token ? -1 : a.op.token > b.op.token ? 1 : a.id - b.id))
    .forEach(({ op }, rank) => (op.rank = rank));
  const ranks = new Map<bigint, number>();
  for (const op of ops) {
    if (op.kind !== 'acquire') continue;
    const r = ranks.get(op.token);
    if (r === undefined || op.rank < r) ranks.set(op.token, op.rank);
  }
  for (const op of ops) op.tokenRank = ranks.get(op.token) ?? -1;
  return ops;
}

/**
 * The memo key of a set of placed ops. Ops are split in two runs, those with a response and
 * those without, each in invocation order; per run, the key holds the first unplaced position
 * (every op before it is placed) and the placed positions after it. In a nearly sequential
 * history few ops after that frontier are placed at once (each was invoked before the
 * frontier op's response, or, without responses, they are few), so keys stay short however
 * long the history.
 */
class SetKey {
  readonly #placed: Uint8Array;
  readonly #answered: Run;
  readonly #open: Run;
  /** Per op: its run (0 answered, 1 open) and its position there. */
  readonly #run: Uint8Array;
  readonly #pos: Int32Array;

  constructor(ops: readonly Op[]) {
    this.#placed = new Uint8Array(ops.length);
    this.#run = new Uint8Array(ops.length);
    this.#pos = new Int32Array(ops.length);
    const answered: number[] = [];
    const open: number[] = [];
    ops.forEach((op, id) => {
      const list = op.respondedAt === Infinity ? open : answered;
      this.#run[id] = list === open ? 1 : 0;
      this.#pos[id] = list.length;
      list.push(id);
    });
    this.#answered = new Run(answered, this.#placed);
    this.#open = new Run(open, this.#placed);
  }

  add(id: number): void {
    this.#placed[id] = 1;
    this.#of(id).add(this.#pos[id] ?? 0);
  }

  remove(id: number): void {
    this.#placed[id] = 0;
    this.#of(id).remove(this.#pos[id] ?? 0);
  }

  text(holder: bigint | null): string {
    return `${this.#answered.text()}/${this.#open.text()}|${holder ?? '-'}`;
  }

  #of(id: number): Run {
    return this.#run[id] === 1 ? this.#open : this.#answered;
  }
}

class Run {
  readonly #ids: readonly number[];
  readonly #placed: Uint8Array;
  #frontier = 0;
  #count = 0;

  constructor(ids: readonly number[], placed: Uint8Array) {
    this.#ids = ids;
    this.#placed = placed;
  }

  add(pos: number): void {
    this.#count++;
    if (pos !== this.#frontier) return;
    while (this.#frontier < this.#ids.length && this.#isPlaced(this.#frontier)) this.#frontier++;
  }

  remove(pos: number): void {
    this.#count--;
    if (pos < this.#frontier) this.#frontier = pos;
  }

  text(): string {
    let s = `${this.#frontier}`;
    let above = this.#count - this.#frontier;
    for (let p = this.#frontier + 1; above > 0; p++) {
      if (this.#isPlaced(p)) {
        s += `,${p - this.#frontier}`;
        above--;
      }
    }
    return s;
  }

  #isPlaced(pos: number): boolean {
    return this.#placed[this.#ids[pos] ?? 0] === 1;
  }
}

function at(ops: readonly Op[], i: number): Op {
  const op = ops[i];
  if (op === undefined) throw new InvariantError(`lock history: no op ${i}`);
  return op;
}

function explain(
  name: string,
  ops: readonly Op[],
  deepest: { depth: number; blocked: number; state: State; lastOp: number | null } | null,
): string {
  if (deepest === null) return `${name}: no legal order of its ${ops.length} ops`;
  const blocked = at(ops, deepest.blocked);
  const s = deepest.state;
  const after =
    deepest.lastOp === null
      ? 'at the start'
      : `after ${describe(at(ops, deepest.lastOp).source)} (${deepest.depth} ops placed)`;
  const held = s.holder === null ? 'nothing held' : `token ${s.holder} held`;
  return (
    `${name}: no legal order of its ${ops.length} ops; at best, ${after}, with ${held}, ` +
    `${describe(blocked.source)} cannot take effect before its response: ${why(ops, blocked, s)}`
  );
}

function why(ops: readonly Op[], op: Op, s: State): string {
  if (outcome(op, s) !== ILLEGAL) return 'every order that places it here fails later';
  switch (op.kind) {
    case 'acquire': {
      if (s.holder !== null) return `token ${s.holder} still holds the name`;
      if (s.last !== null && op.token <= s.last) {
        return `token ${op.token} is not above the last token ${s.last}`;
      }
      const first = ops.find((o) => o.rank === s.granted);
      return `${first === undefined ? 'a lower token' : describe(first.source)} must take effect first`;
    }
    case 'release':
      return op.result === 'released'
        ? `it answered released, but token ${op.token} was not held`
        : `it answered not-held, but token ${op.token} was held`;
    case 'expire':
      return `token ${op.token} was not held`;
  }
}

function describe(op: LockHistoryOp): string {
  const span = `[${op.invokedAt}, ${op.respondedAt ?? '-'}]`;
  switch (op.type) {
    case 'acquire':
      return `acquire by ${op.client} (token ${op.token ?? '-'}) ${span}`;
    case 'release':
      return `release by ${op.client} of token ${op.token} -> ${op.result ?? '?'} ${span}`;
    case 'expire':
      return `expire of token ${op.token} ${span}`;
  }
}
