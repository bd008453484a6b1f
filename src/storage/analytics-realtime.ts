import type { BufferKeys } from './keys.js';

// The hot analytics figures of every site and the one atomic step that moves them. A figure is
// named by its suffix (src/process/buckets.ts and src/process/aggregate.ts build them): a hash
// of counters, a ranking, a HyperLogLog of visitors, the live set. Redis keeps them under the
// site's hash tag (src/storage/redis/analytics-realtime.ts, lua/apply-aggregate.lua); the
// embedded default in this process (src/storage/embedded/analytics-realtime.ts).

/** A buffered delta: the flusher writes it to PostgreSQL under `name` (see src/counters). */
export interface Durable {
  buffer: BufferKeys;
  name: string;
}

/**
 * One primitive of a pre-aggregated analytics step: each sums the effect of several events.
 * `pfadd` marks its durable name in `dirty` when the HyperLogLog changed (the uniques flush
 * copies it); `session` runs one visitor's page views, in time order, against the visitor's
 * session state (see lua/apply-aggregate.lua for the rule). Keys are full keys (keys.siteKey).
 */
export type AggregateOp =
  | { op: 'count'; key: string; field: string; by: number; durable?: Durable; onFirst?: AggregateOp[] }
  | { op: 'pfadd'; key: string; members: string[]; dirty?: Durable }
  | { op: 'zincrby'; key: string; member: string; by: number }
  | { op: 'zmax'; key: string; member: string; score: number }
  | { op: 'zremrangebyscore'; key: string; max: number }
  | { op: 'expire'; key: string; seconds: number }
  | { op: 'session'; key: string; buffer: BufferKeys; gapMs: number; ttlSeconds: number; views: SessionView[] };

/** A page view for the session op: its time and the totals hashes (key, durable suffix) it counts in. */
export interface SessionView {
  at: number;
  totals: { key: string; name: string }[];
}

/**
 * Deltas for one buffer that do not depend on what the real-time layer holds: written with the
 * step as one item instead of one increment per name (see BufferKeys.pendingPacked).
 */
export interface PackedDeltas {
  buffer: BufferKeys;
  names: string[];
  deltas: number[];
}

export interface AggregateBatch {
  dedupeTtlSeconds: number;
  /** One per event: the events the ops sum up. */
  dedupeKeys: string[];
  ops: AggregateOp[];
  /** Buffered only when the ops are applied (no duplicate in the batch). */
  packed: PackedDeltas[];
}

/** A figure written back whole (tally rebuild; embedded start), with its expiry. */
export type RestoreItem =
  | { kind: 'counters' | 'ranking'; suffix: string; values: Record<string, number>; ttlSeconds?: number }
  | { kind: 'unique'; suffix: string; hll: Buffer; ttlSeconds?: number };

export interface RankedMember {
  member: string;
  score: number;
}

/** A HyperLogLog as PostgreSQL stores it: Redis's bytes in both modes, and its count. */
export interface UniqueCopy {
  hll: Buffer;
  visitors: number;
}

export interface AnalyticsRealtime {
  /**
   * Runs a pre-aggregated step only if every event is new: [] when applied, else the positions
   * of the duplicate events (nothing was written; drop them and call again).
   */
  apply(batch: AggregateBatch): Promise<number[]>;
  /** A hash of counters (0 for a missing field). */
  counters(siteId: string, suffix: string): Promise<Record<string, number>>;
  /**
   * Distinct visitors of the union of the HyperLogLogs, and of `sketches` when given
   * (HyperLogLog bytes as copyUniques gives them: PostgreSQL's copies of buckets the real-time
   * layer no longer holds).
   */
  countUniques(siteId: string, suffixes: readonly string[], sketches?: readonly Uint8Array[]): Promise<number>;
  /** Top `limit` members (0: all) of the sum of the rankings, highest first, ties by member. */
  rank(siteId: string, suffixes: readonly string[], limit: number): Promise<RankedMember[]>;
  /** Visitors of the live set last seen at or after sinceMs. */
  liveSince(siteId: string, sinceMs: number): Promise<number>;
  /** Each HyperLogLog's copy for PostgreSQL, null when it is gone (expired). */
  copyUniques(siteId: string, suffixes: readonly string[]): Promise<(UniqueCopy | null)[]>;
  /** Writes figures back whole, replacing what is there. */
  restore(siteId: string, items: readonly RestoreItem[]): Promise<void>;
}

/**
 * Refuses a step the stores would refuse half-way: Redis's HINCRBY takes integers only, and a
 * script that fails after claiming its dedupe keys would leave its events marked as seen but
 * never counted. Both implementations check every step here first.
 */
export function checkStep(batch: AggregateBatch): void {
  const check = (ops: readonly AggregateOp[]) => {
    for (const op of ops) {
      if (op.op === 'count') {
        if (!Number.isSafeInteger(op.by)) throw new Error(`a counter moves by whole numbers only (${op.key} ${op.field} by ${op.by})`);
        if (op.onFirst) check(op.onFirst);
      }
    }
  };
  check(batch.ops);
  for (const p of batch.packed) {
    for (const d of p.deltas) if (!Number.isSafeInteger(d)) throw new Error(`a buffered delta is a whole number (${d})`);
  }
}
