import type { LeaseEvent } from '../../lease/machine.js';
import type { LeaseMessage, LeaseValue } from '../../lease/messages.js';
import { ballotKey, type Ballot } from '../../paxos/ballot.js';
import type { DecreeEvent } from '../../paxos/decree.js';
import type { PaxosMessage } from '../../paxos/messages.js';
import type { Owner } from '../../types.js';

/**
 * Compact, complete trace forms of messages and events: every field, in a fixed order, so the
 * trace hash sees everything, and a person can read a trace line by line.
 */
export function formatMessage(m: LeaseMessage | PaxosMessage): string {
  switch (m.type) {
    case 'lease.prepare':
      return `lease.prepare ${ballotKey(m.ballot)}`;
    case 'lease.promise': {
      const acc =
        m.accepted === null ? '-' : `${ballotKey(m.accepted.ballot)}=${value(m.accepted.value)}`;
      return `lease.promise ${ballotKey(m.ballot)} acc=${acc} max=${m.maxRound}`;
    }
    case 'lease.accept':
      return `lease.accept ${ballotKey(m.ballot)} ${value(m.value)}`;
    case 'lease.accepted':
      return `lease.accepted ${ballotKey(m.ballot)} max=${m.maxRound}`;
    case 'lease.reject':
      return (
        `lease.reject ${ballotKey(m.ballot)} ${m.phase} promised=${opt(m.promised)} ` +
        `holder=${m.holder === null ? '-' : owner(m.holder)} max=${m.maxRound}`
      );
    case 'lease.chosen':
      return `lease.chosen ${ballotKey(m.ballot)} term=${m.term}`;
    case 'lease.release':
      return `lease.release ${owner(m.owner)} ${ballotKey(m.ballot)} successor=${m.successor ?? '-'}`;
    case 'lease.recover':
      return `lease.recover for=${m.incarnation}`;
    case 'lease.recovery':
      return `lease.recovery for=${m.incarnation} max=${m.maxRound} recovered=${m.recovered}`;
    case 'paxos.prepare':
      return `paxos.prepare #${m.instance} ${ballotKey(m.ballot)}`;
    case 'paxos.promise': {
      const acc = m.accepted === null ? '-' : `${ballotKey(m.accepted.ballot)}=${m.accepted.value}`;
      return `paxos.promise #${m.instance} ${ballotKey(m.ballot)} acc=${acc}`;
    }
    case 'paxos.accept':
      return `paxos.accept #${m.instance} ${ballotKey(m.ballot)} ${m.value}`;
    case 'paxos.accepted':
      return `paxos.accepted #${m.instance} ${ballotKey(m.ballot)}`;
    case 'paxos.reject':
      return `paxos.reject #${m.instance} ${ballotKey(m.ballot)} promised=${ballotKey(m.promised)}`;
    default: {
      const never: never = m;
      return JSON.stringify(never);
    }
  }
}

export function formatEvent(e: LeaseEvent | DecreeEvent): string {
  switch (e.type) {
    case 'elected':
    case 'renewed':
      return `${e.type} term=${e.term} deadline=${e.deadline}`;
    case 'deposed':
      return `deposed term=${e.term} ${e.reason}`;
    case 'leader':
      return `leader ${e.leader === null ? '-' : owner(e.leader)} term=${e.term ?? '-'}`;
    case 'recovered':
      return `recovered max=${e.maxRound}`;
    case 'refused':
      return `refused from=${e.from} ${e.reason}`;
    case 'prepared':
      return `prepared #${e.instance} ${ballotKey(e.ballot)}`;
    case 'voted':
    case 'chosen':
      return `${e.type} #${e.instance} ${ballotKey(e.ballot)} ${e.value}`;
    case 'gaveUp':
      return `gaveUp #${e.instance}`;
    default: {
      const never: never = e;
      return JSON.stringify(never);
    }
  }
}

/** Any other message or event (the log's, the locks'), as JSON with tokens as decimal text. */
export function formatJson(x: unknown): string {
  return JSON.stringify(x, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

function value(v: LeaseValue): string {
  return `${owner(v.owner)}:${v.leaseMs}:${v.term}`;
}

function owner(o: Owner): string {
  return `${o.node}/${o.incarnation}`;
}

function opt(b: Ballot | null): string {
  return b === null ? '-' : ballotKey(b);
}
