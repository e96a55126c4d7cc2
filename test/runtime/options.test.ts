import assert from 'node:assert/strict';
import { ConfigError } from '../../lib/errors.js';
import { createNode, DEFAULTS } from '../../lib/index.js';
import { validateOptions, type NodeOptions } from '../../lib/options.js';
import { captureLogger, idleTransport } from './helpers.js';

const PEERS = ['a', 'b', 'c'];

function base(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id: 'a', peers: PEERS, transport: idleTransport('a', PEERS), ...extra };
}

function rejects(options: unknown, pattern: RegExp): void {
  assert.throws(
    () => validateOptions(options),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
      assert.equal(error.code, 'SYNOD_CONFIG');
      assert.match(error.message, pattern);
      return true;
    },
  );
}

describe('options', () => {
  it('has one frozen set of defaults', () => {
    assert.ok(Object.isFrozen(DEFAULTS));
    assert.deepEqual(
      { ...DEFAULTS },
      {
        leaseMs: 1000,
        maxClockDrift: 0.01,
        marginMs: 10,
        maxTtlMs: 60_000,
        handoffTimeoutMs: 5000,
        cluster: 'synod',
      },
    );
  });

  it('fills in the defaults', () => {
    const resolved = validateOptions(base());
    assert.equal(resolved.leaseMs, 1000);
    assert.equal(resolved.maxClockDrift, 0.01);
    assert.equal(resolved.marginMs, 10);
    assert.equal(resolved.maxTtlMs, 60_000);
    assert.equal(resolved.handoffTimeoutMs, 5000);
    assert.equal(resolved.cluster, 'synod');
    assert.equal(resolved.preferredLeader, null);
    assert.deepEqual(resolved.peers, PEERS);
    assert.ok(Object.isFrozen(resolved));
  });

  it('treats undefined as absent', () => {
    assert.equal(validateOptions(base({ leaseMs: undefined })).leaseMs, 1000);
  });

  it('rejects options that are not an object', () => {
    rejects(null, /options must be an object/);
    rejects('a', /options must be an object/);
  });

  it('rejects an unknown key, naming it and the allowed ones', () => {
    rejects(
      base({ leaseMS: 500 }),
      /unknown option "leaseMS" \(allowed: id, peers, transport, leaseMs/,
    );
  });

  it('rejects an empty or invalid id', () => {
    rejects(base({ id: '' }), /^id must be a string of 1 to 64 characters/);
    rejects(base({ id: 42 }), /^id must be/);
    rejects(base({ id: 'x'.repeat(65) }), /^id must be/);
  });

  it('rejects peers that are not an array of valid ids', () => {
    rejects(base({ peers: 'a,b,c' }), /peers must be an array/);
    rejects(base({ peers: [] }), /peers must not be empty/);
    rejects(base({ peers: ['a', ''] }), /peers must hold node ids.*found ""/);
    rejects(base({ peers: ['a', 7] }), /peers must hold node ids.*found number/);
  });

  it('rejects duplicate peer ids', () => {
    rejects(base({ peers: ['a', 'b', 'b'] }), /peers lists "b" twice/);
  });

  it('rejects peers without its own id', () => {
    rejects(
      { id: 'a', peers: ['b', 'c', 'd'], transport: idleTransport('a', ['b', 'c', 'd']) },
      /peers must include this node's own id "a"/,
    );
  });

  it('rejects a missing or incomplete transport', () => {
    rejects({ id: 'a', peers: PEERS }, /transport is required/);
    rejects(
      base({ transport: { self: 'a' } }),
      /transport must have start, send, onMessage, close and stats/,
    );
    rejects(
      base({ transport: idleTransport('b', PEERS) }),
      /transport.self is "b", not this node's id "a"/,
    );
    rejects(
      base({ transport: idleTransport('a', ['a', 'b']) }),
      /transport does not reach the peers c/,
    );
  });

  it('rejects leaseMs out of 100–60000 or not whole', () => {
    rejects(
      base({ leaseMs: 99 }),
      /leaseMs must be a whole number of milliseconds from 100 to 60000/,
    );
    rejects(base({ leaseMs: 60_001 }), /leaseMs must be/);
    rejects(base({ leaseMs: 500.5 }), /leaseMs must be/);
    rejects(base({ leaseMs: '1000' }), /leaseMs must be/);
    assert.equal(validateOptions(base({ leaseMs: 100 })).leaseMs, 100);
    assert.equal(validateOptions(base({ leaseMs: 60_000 })).leaseMs, 60_000);
  });

  it('rejects maxClockDrift outside [0, 0.1)', () => {
    rejects(
      base({ maxClockDrift: -0.01 }),
      /maxClockDrift must be a ratio of at least 0 and below 0.1/,
    );
    rejects(base({ maxClockDrift: 0.1 }), /maxClockDrift/);
    rejects(base({ maxClockDrift: Number.NaN }), /maxClockDrift/);
    assert.equal(validateOptions(base({ maxClockDrift: 0 })).maxClockDrift, 0);
    assert.equal(validateOptions(base({ maxClockDrift: 0.099 })).maxClockDrift, 0.099);
  });

  it('rejects a negative or non-finite margin', () => {
    rejects(base({ marginMs: -1 }), /marginMs must be a finite number/);
    rejects(base({ marginMs: Number.POSITIVE_INFINITY }), /marginMs must be a finite number/);
  });

  it('rejects a margin that leaves no believed lease', () => {
    // 100·(0.99/1.01) ≈ 98.02: a margin of 98 leaves a sliver, 99 leaves nothing.
    assert.equal(validateOptions(base({ leaseMs: 100, marginMs: 98 })).marginMs, 98);
    rejects(
      base({ leaseMs: 100, marginMs: 99 }),
      /marginMs 99 is too large for leaseMs 100 and maxClockDrift 0.01: the believed lease/,
    );
  });

  it('rejects a maxTtlMs that is not a whole number of milliseconds from 1', () => {
    rejects(base({ maxTtlMs: 0 }), /maxTtlMs must be a whole number of milliseconds from 1 to/);
    rejects(base({ maxTtlMs: 1.5 }), /maxTtlMs/);
    rejects(base({ maxTtlMs: '60000' }), /maxTtlMs/);
    rejects(base({ maxTtlMs: 2 ** 31 }), /maxTtlMs/);
    assert.equal(validateOptions(base({ maxTtlMs: 1 })).maxTtlMs, 1);
    assert.equal(validateOptions(base({ maxTtlMs: 600_000 })).maxTtlMs, 600_000);
  });

  it('rejects a bad handoffTimeoutMs', () => {
    rejects(base({ handoffTimeoutMs: -1 }), /handoffTimeoutMs must be a whole number/);
    rejects(base({ handoffTimeoutMs: 1.5 }), /handoffTimeoutMs/);
    rejects(base({ handoffTimeoutMs: 2 ** 31 }), /handoffTimeoutMs/);
    assert.equal(validateOptions(base({ handoffTimeoutMs: 0 })).handoffTimeoutMs, 0);
  });

  it('rejects a preferredLeader that is not a peer', () => {
    rejects(base({ preferredLeader: 'z' }), /preferredLeader must be one of peers/);
    assert.equal(validateOptions(base({ preferredLeader: 'b' })).preferredLeader, 'b');
  });

  it('rejects a bad cluster id, clock, logger, logLevel, storage, scheduler or rng', () => {
    rejects(base({ cluster: '' }), /cluster must be a string/);
    rejects(base({ clock: () => 0 }), /clock must be an object with a now\(\) method/);
    rejects(base({ logger: console }), /logger must be pino-compatible/);
    rejects(base({ logLevel: 'verbose' }), /logLevel must be one of fatal, error, warn/);
    rejects(base({ storage: {} }), /storage must be an object with load\(\) and save/);
    rejects(base({ scheduler: { setTimeout } }), /scheduler must be an object with setTimeout/);
    rejects(base({ rng: Math }), /rng must be an object with a next\(\) method/);
  });

  it('validates at construction', () => {
    assert.throws(() => createNode(base({ leaseMs: 5 }) as unknown as NodeOptions), ConfigError);
  });

  it('allows an even-sized cluster but logs a warning', () => {
    const logger = captureLogger();
    const peers = ['a', 'b', 'c', 'd'];
    createNode({ id: 'a', peers, transport: idleTransport('a', peers), logger });
    const warning = logger.lines.find((l) => l.level === 'warn');
    assert.ok(warning);
    assert.match(warning.message, /even number of peers/);
  });

  it('logs nothing for an odd-sized cluster', () => {
    const logger = captureLogger();
    createNode({ id: 'a', peers: PEERS, transport: idleTransport('a', PEERS), logger });
    assert.deepEqual(
      logger.lines.filter((l) => l.level === 'warn'),
      [],
    );
  });
});
