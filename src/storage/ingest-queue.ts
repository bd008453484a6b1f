// The ingestion queue: what the collector appends and the processor consumes. Entries stay
// until a consumer acknowledges them, so a crash between reading and acknowledging means the
// entry is delivered again (the processor's dedupe makes that harmless).
// Redis: one stream per shard, read through a consumer group (src/storage/redis/ingest-queue.ts).
// Embedded: one in-process list per stream (src/storage/embedded/ingest-queue.ts).

export interface QueueEntry {
  id: string;
  payload: string;
}

/** One reader of one stream; Redis gives it a connection of its own for blocking reads. */
export interface QueueConsumer {
  /** Entries nobody was given yet, waiting up to blockMs for the first one (0: no wait). */
  read(count: number, blockMs: number): Promise<QueueEntry[]>;
  /** Entries this consumer was given and has not acknowledged (to retry after a failure). */
  readOwnPending(count: number): Promise<QueueEntry[]>;
  /** Takes over entries another consumer was given and left unacknowledged for minIdleMs. */
  claimStale(minIdleMs: number, count: number): Promise<QueueEntry[]>;
  /** Acknowledges and deletes processed entries. */
  ack(ids: readonly string[]): Promise<void>;
  /**
   * Moves entries given to this consumer to deadStream (a stream of the same shard) in one step:
   * each is in exactly one of the two at any time. Returns how many moved (gone ones are skipped).
   */
  deadLetter(ids: readonly string[], deadStream: string): Promise<number>;
  /** Ends a blocked read at once and releases the consumer. */
  close(): Promise<void>;
}

export interface IngestQueue {
  /** Appends to the stream unless it holds maxBacklog entries already; null when full. */
  enqueue(stream: string, payload: string, maxBacklog: number): Promise<string | null>;
  /** A consumer of the stream, one of `group` (consumers of one group share its entries). */
  openConsumer(stream: string, group: string, consumer: string): Promise<QueueConsumer>;
  /** Entries not yet acknowledged and deleted (the backlog). */
  length(stream: string): Promise<number>;
}
