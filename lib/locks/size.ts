import type { LockCommand, LockReply } from './commands.js';

/**
 * About how many bytes a command takes in a frame (JSON, names up to 3 bytes a character):
 * batches and pages are cut by it so every frame stays under the transport's limit. An upper
 * estimate, cheap enough to run on every command.
 */
export function commandBytes(command: LockCommand): number {
  switch (command.op) {
    case 'acquire':
      return 170 + command.name.length * 3;
    case 'release':
      return 170 + command.name.length * 3;
    case 'cancel':
      return 150;
    case 'renew': {
      let bytes = 140;
      for (const lock of command.locks) bytes += 50 + lock.name.length * 3;
      return bytes;
    }
    case 'expire':
      return 110 + command.name.length * 3;
    case 'retire':
    case 'abandon':
      return 40 + command.holders.length * 70;
    case 'epoch':
      return 60;
    default: {
      const never: never = command;
      return never;
    }
  }
}

export function replyBytes(reply: LockReply): number {
  switch (reply.type) {
    case 'renewed':
      return 60 + reply.versions.length * 18;
    case 'granted':
    case 'queued':
    case 'busy':
    case 'ended':
    case 'released':
    case 'not-held':
      return 110 + reply.name.length * 3;
    case 'cancelled':
    case 'stale':
      return 90;
    default: {
      const never: never = reply;
      return never;
    }
  }
}
