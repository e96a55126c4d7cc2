/**
 * synod: leader election and cluster-wide locks (and, later, singleton cron) among the replicas
 * of an app, with no coordination server. This module is the public facade only.
 */
export { createNode, SynodNode, type NodeState } from './node/node.js';
export { Lock } from './node/lock-handle.js';
export { LOCK_DEFAULTS, type LockInfo, type LockOptions } from './node/locks.js';
export { FencingGuard } from './fencing.js';
export type { LoggerLike, LogFn, LogLevel } from './logger.js';
export {
  DEFAULTS,
  type BaseNodeOptions,
  type NodeOptions,
  type TransportNodeOptions,
  type WebSocketNodeOptions,
  type WebSocketTuning,
} from './options.js';
export type {
  FollowerHandler,
  FollowerInfo,
  LeaderChange,
  LeaderHandler,
  LeaderInfo,
  NodeEvents,
} from './events.js';
export type { InvalidFrameReason, NodeStats } from './node/stats.js';
export {
  AbortError,
  ConfigError,
  HandshakeError,
  InvalidMessageError,
  InvariantError,
  LeadershipLostError,
  LockLostError,
  LockTimeoutError,
  NotLeaderError,
  NotStartedError,
  StaleTokenError,
  SynodError,
  TransportError,
} from './errors.js';
export type { Clock, Scheduler } from './clock.js';
export {
  foldNodeUpdate,
  nodeRecordCodec,
  type NodeRecord,
  type NodeStorage,
  type NodeUpdate,
  type Storage,
} from './storage.js';
export type { SettingsMismatch, TransportSettings } from './settings.js';
export type {
  PeerEvent,
  SettingsRefusal,
  Transport,
  TransportDropReason,
  TransportStats,
} from './transport.js';
export type { LeaseRecord } from './lease/machine.js';
export type { Ballot } from './paxos/ballot.js';
export type { NodeId, Owner } from './types.js';
