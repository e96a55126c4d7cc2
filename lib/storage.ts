/**
 * Where a node keeps the state it must not forget across a restart (promised and accepted
 * ballots, the log, the token base). Adapters: memory (tests) and file.
 *
 * Safety depends on the ordering the runtime keeps: it persists, then sends. So `save` must
 * resolve only once the record is durable (written and fsynced for the file adapter); a reply
 * sent after a `save` that resolved too early could be a vote the node forgets after a crash.
 */
export interface Storage<R> {
  /** The last record saved, or `null` if nothing was ever saved. */
  load(): Promise<R | null>;
  /** Replaces the stored record; resolves only once it is durable. */
  save(record: R): Promise<void>;
}
