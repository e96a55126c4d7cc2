import type { NodeId } from '../types.js';
import type { LockCommand, LockReply } from './commands.js';

/** The commands a holder sends; `expire`, `retire`, `abandon` and `epoch` come from the leader alone. */
export type ClientCommand = Extract<
  LockCommand,
  { op: 'acquire' | 'release' | 'renew' | 'cancel' }
>;

/**
 * Wire messages between a holder's node and the leader. Every command names its holder, and
 * the leader takes only commands whose holder is the node that sent them; replies name the
 * holder's incarnation, so a restarted process ignores answers meant for its earlier life.
 */
export type LockMessage =
  /** Commands for the log, from the holder's node to the node it believes leads. */
  | { readonly type: 'lock.request'; readonly commands: readonly ClientCommand[] }
  /** Answers once the commands applied, and grants to waiters whose turn came. */
  | {
      readonly type: 'lock.reply';
      readonly incarnation: string;
      readonly replies: readonly LockReply[];
    }
  /** This node does not lead (`leader`: the one it knows, if any): send those again there. */
  | {
      readonly type: 'lock.redirect';
      readonly incarnation: string;
      readonly seqs: readonly number[];
      readonly leader: NodeId | null;
    }
  /** Asks the leader who holds `name`, read under its lease. */
  | {
      readonly type: 'lock.read';
      readonly incarnation: string;
      readonly id: number;
      readonly name: string;
    }
  | {
      readonly type: 'lock.view';
      readonly incarnation: string;
      readonly id: number;
      readonly name: string;
      /** null: nobody holds it. */
      readonly holder: { readonly node: NodeId; readonly incarnation: string } | null;
      readonly token: bigint | null;
      readonly waiters: number;
    };

export type LockMessageType = LockMessage['type'];
