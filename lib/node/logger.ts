import { pino } from 'pino';
import { boundLogger, GatedLogger, type LoggerLike, type LogLevel } from '../logger.js';

/**
 * The node's logger. Silent unless the user passes a `logger` (bound to this node's id with
 * `child` when it has one) or a `logLevel` (then pino writes to stdout). The node hands it on
 * to the WebSocket transport it builds, so the transport's lines carry the node's bindings.
 */
export class NodeLogger extends GatedLogger {
  constructor(options: { logger: LoggerLike | null; logLevel: LogLevel | null; id: string }) {
    const { logger, logLevel, id } = options;
    const bindings = { node: id };
    if (logger !== null) {
      super(boundLogger(logger, bindings, logLevel));
    } else if (logLevel !== null && logLevel !== 'silent') {
      super(pino({ level: logLevel, name: 'synod' }).child(bindings));
    } else {
      super(null);
    }
  }
}
