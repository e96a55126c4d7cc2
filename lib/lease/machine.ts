import type { Ballot } from '../paxos/ballot.js';
import type { Rng } from '../random.js';
import type { NodeId, Output, Owner } from '../types.js';
import type { LeaseMessage } from './messages.js';

export interface LeaseConfig {
  readonly id: NodeId;
  /** 16 hex digits, drawn at every start. */
  readonly incarnation: string;
  /** Every voter, this node included. */
  readonly peers: readonly NodeId[];
  readonly leaseMs: number;
  /** ρ: the bound on clock rate drift, a ratio (0.01 = 1%). */
  readonly maxClockDrift: number;
  readonly marginMs: number;
  readonly rng: Rng;
  /** Named as successor on a graceful handoff when it is not this node. */
  readonly preferredLeader?: NodeId | null;
}

/** Kept across a restart with storage: the promise, and the highest round seen. */
export interface LeaseRecord {
  readonly promised: Ballot | null;
  readonly maxRound: number;
}

export type LeaseInput =
  | { readonly type: 'message'; readonly from: NodeId; readonly message: LeaseMessage }
  | { readonly type: 'tick' };

export type LeaseEvent =
  /** This node now holds the lease, in a new term, until `deadline` on its own clock. */
  | { readonly type: 'elected'; readonly term: number; readonly deadline: number }
  /** A renewal applied before the old deadline: same term, later deadline. */
  | { readonly type: 'renewed'; readonly term: number; readonly deadline: number }
  /** This node no longer holds the lease. */
  | {
      readonly type: 'deposed';
      readonly term: number;
      readonly reason: 'expired' | 'released' | 'stopped';
    }
  /** Who this node believes leads changed (itself included); null while unknown. */
  | { readonly type: 'leader'; readonly leader: Owner | null; readonly term: number | null };

export type LeaseOutput = Output<LeaseMessage, LeaseRecord, LeaseEvent>;

export interface LeaderView {
  readonly owner: Owner;
  readonly term: number;
}
