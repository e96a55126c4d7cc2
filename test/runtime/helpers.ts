import { encodeFrame } from '../../lib/codec/messages.js';
import { snapshot } from '../../lib/counters.js';
import type { LoggerLike } from '../../lib/logger.js';
import type { TestCluster } from '../../lib/testing/cluster.js';
import { transportCounters, type Transport } from '../../lib/transport.js';

export interface LogLine {
  readonly level: string;
  readonly fields: Record<string, unknown>;
  readonly message: string;
}

/** A pino-compatible logger that keeps every line, at every level. */
export function captureLogger(): LoggerLike & { readonly lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: string) =>
    (fields: object, message: string): void => {
      lines.push({ level, fields: fields as Record<string, unknown>, message });
    };
  const logger = {
    lines,
    fatal: at('fatal'),
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    trace: at('trace'),
    isLevelEnabled: (): boolean => true,
  };
  return logger;
}

/** A transport that does nothing: enough for option validation. */
export function idleTransport(self: string, peers: readonly string[]): Transport {
  const stats = snapshot(transportCounters());
  return {
    self,
    peers: peers.filter((p) => p !== self),
    start: () => Promise.resolve(),
    send: () => undefined,
    onMessage: () => () => undefined,
    onPeer: () => () => undefined,
    onRefusal: () => () => undefined,
    close: () => Promise.resolve(),
    stats: () => stats,
  };
}

/**
 * Runs the cluster for `ms` of virtual time, checking after every timer that no two nodes
 * believe they lead at once (`leader()` throws if they do).
 */
export async function runChecked(cluster: TestCluster, ms: number): Promise<void> {
  await cluster.runUntil(() => {
    cluster.leader();
    return false;
  }, ms);
}

/**
 * Makes a bare transport answer every `lease.recover` that reaches it as a peer with its memory
 * would ("round 0, recovered"), so that a real node beside it, started without storage, votes
 * once its silence is over.
 */
export function answerRecovery(transport: Transport, id: string, incarnation: string): void {
  transport.onMessage((from, text) => {
    const frame = JSON.parse(text) as { msg: { type: string; incarnation?: string } };
    if (frame.msg.type !== 'lease.recover' || frame.msg.incarnation === undefined) return;
    const msg = {
      type: 'lease.recovery',
      incarnation: frame.msg.incarnation,
      maxRound: 0,
      recovered: true,
    } as const;
    transport.send(
      from,
      encodeFrame({ v: 1, cluster: 'synod', from: id, to: from, inc: incarnation, msg }),
    );
  });
}
