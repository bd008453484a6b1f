import type { BufferKeys } from './keys.js';

// Counter buffers: deltas waiting to be written behind to PostgreSQL (src/counters/flush.ts).
// The analytics step and the inbox counts add to them; the flusher takes a batch atomically,
// applies it in one transaction that records the batch's sequence number, then finishes it.
// A batch left in flight by a crash is taken again, under the same number, until finished.

export interface TakenBatch {
  seq: number;
  /** Names and their summed deltas (a name appears once). */
  fields: string[];
  deltas: number[];
  /** Deltas were left pending: the batch reached its size bound; take again for the rest. */
  more: boolean;
}

export interface CounterBuffers {
  /**
   * The batch in flight if one is left over, else the pending deltas moved into flight under
   * the next sequence number after max(last number, minSeq). With maxPackedBytes, a large
   * backlog is taken in batches of about that size. null when nothing is pending.
   */
  take(buffer: BufferKeys, minSeq: number, maxPackedBytes?: number): Promise<TakenBatch | null>;
  /** Drops the in-flight batch once PostgreSQL recorded it (a no-op for any other number). */
  finish(buffer: BufferKeys, seq: number): Promise<void>;
}
