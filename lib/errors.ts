/**
 * Every error synod throws or rejects with. Branch on `code` or `instanceof`, never on the
 * message text. `retriable` says whether the same call may succeed if tried again.
 */
export class SynodError extends Error {
  readonly code: string;
  readonly retriable: boolean;

  constructor(
    code: string,
    message: string,
    options: { retriable?: boolean; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = options.retriable ?? false;
  }
}

/** Invalid options, thrown at construction; the message names the option. */
export class ConfigError extends SynodError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('SYNOD_CONFIG', message, options);
  }
}

export class NotStartedError extends SynodError {
  constructor(message = 'the node is not started') {
    super('SYNOD_NOT_STARTED', message);
  }
}

export class AbortError extends SynodError {
  constructor(message = 'the operation was aborted', options: { cause?: unknown } = {}) {
    super('SYNOD_ABORTED', message, options);
  }
}

export class LeadershipLostError extends SynodError {
  constructor(message = 'leadership was lost', options: { cause?: unknown } = {}) {
    super('SYNOD_LEADERSHIP_LOST', message, { ...options, retriable: true });
  }
}

export class NotLeaderError extends SynodError {
  constructor(message = 'this node is not the leader') {
    super('SYNOD_NOT_LEADER', message, { retriable: true });
  }
}

export class LockTimeoutError extends SynodError {
  constructor(message = 'the lock was not acquired in time') {
    super('SYNOD_LOCK_TIMEOUT', message, { retriable: true });
  }
}

export class LockLostError extends SynodError {
  constructor(message = 'the lock may have been lost', options: { cause?: unknown } = {}) {
    super('SYNOD_LOCK_LOST', message, options);
  }
}

/** A write carried a fencing token below one already accepted: a newer holder has written. */
export class StaleTokenError extends SynodError {
  constructor(message = 'the fencing token is stale') {
    super('SYNOD_STALE_TOKEN', message);
  }
}

export class TransportError extends SynodError {
  constructor(message: string, options: { cause?: unknown; retriable?: boolean } = {}) {
    super('SYNOD_TRANSPORT', message, { retriable: true, ...options });
  }
}

export class HandshakeError extends SynodError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('SYNOD_HANDSHAKE', message, options);
  }
}

/** A peer message that failed strict decoding; it is dropped, logged and counted. */
export class InvalidMessageError extends SynodError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('SYNOD_INVALID_MESSAGE', message, options);
  }
}

/** An internal invariant broke: a bug in synod, never a user error. */
export class InvariantError extends SynodError {
  constructor(message: string) {
    super('SYNOD_INVARIANT', message);
  }
}
