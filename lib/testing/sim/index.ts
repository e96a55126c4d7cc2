/**
 * The deterministic simulator of the lease and Basic Paxos cores, its invariant checker and its
 * parts (exported as part of `synod/testing`). `simulate({ seed })` runs one seed; the same seed
 * and profile always give the same trace.
 */
export {
  simulate,
  replayCommand,
  type DecreeFactory,
  type FaultCounts,
  type LeaseFactory,
  type SimCounts,
  type SimResult,
  type SimulateOptions,
} from './simulator.js';
export { Checker, type CheckerConfig, type Violation, type ViolationKind } from './checker.js';
export { DriftClock } from './clock.js';
export { EventQueue, type Scheduled } from './queue.js';
export { FaultyNetwork, type NetworkFaults } from './network.js';
export { formatEvent, formatMessage } from './format.js';
export {
  DEFAULT_PERIODS,
  NO_FAULTS,
  PROFILES,
  deriveParams,
  isProfileName,
  type FaultRates,
  type ParamOptions,
  type ProfileName,
  type SimParams,
} from './profiles.js';
