import type { Ballot } from './ballot.js';

/**
 * Wire messages of single-decree Basic Paxos (Paxos Made Simple), one decree per `instance`.
 * Values are strings; the layers above encode what they agree on.
 */
export type PaxosMessage =
  | { readonly type: 'paxos.prepare'; readonly instance: number; readonly ballot: Ballot }
  | {
      readonly type: 'paxos.promise';
      readonly instance: number;
      readonly ballot: Ballot;
      readonly accepted: { readonly ballot: Ballot; readonly value: string } | null;
    }
  | {
      readonly type: 'paxos.accept';
      readonly instance: number;
      readonly ballot: Ballot;
      readonly value: string;
    }
  | { readonly type: 'paxos.accepted'; readonly instance: number; readonly ballot: Ballot }
  | {
      readonly type: 'paxos.reject';
      readonly instance: number;
      readonly ballot: Ballot;
      readonly promised: Ballot;
    };
