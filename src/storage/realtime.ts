import type { BufferKeys, InboxKeys } from './keys.js';

// The real-time layer: what Tally needs from Redis, named by what it does. Two implementations
// pass one contract suite (test/realtime-contract.test.ts): Redis (src/storage/redis/) for
// production and an in-process one (src/storage/memory/) for the embedded default.
// Every write that must happen together is one method here, and one Lua script in Redis.

export interface StreamEntry {
  id: string;
  payload: string;
}

/** A blocking reader of one stream shard; Redis gives it a connection of its own. */
export interface StreamReader {
  read(consumer: string, count: number, blockMs: number): Promise<StreamEntry[]>;
  /** Entries delivered to this consumer and not acknowledged yet (to retry after a failure). */
  readOwnPending(consumer: string, count: number): Promise<StreamEntry[]>;
  close(): Promise<void>;
}

/** A buffered delta: the flusher writes it to PostgreSQL under `name` (see src/counters). */
export interface Durable {
  buffer: BufferKeys;
  name: string;
}

/**
 * One primitive of a pre-aggregated analytics batch (lua/apply-aggregate.lua): each sums the
 * effect of several events. `pfadd` marks its key in `dirty` when the HyperLogLog changed (the
 * uniques flush persists it); `session` runs one visitor's page views, in time order, against
 * the visitor's session state (see the Lua header for the rule).
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
 * batch, as one packed item, instead of one increment per name (see BufferKeys.pendingPacked).
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

/** What `restore` writes back (tally rebuild): a hash, a sorted set or a dumped HyperLogLog. */
export type RestoreItem =
  | { kind: 'hash' | 'zset'; key: string; values: Record<string, number>; ttlSeconds?: number }
  | { kind: 'unique'; key: string; dump: Buffer; ttlSeconds?: number };

export interface TakenBatch {
  seq: number;
  fields: string[];
  deltas: number[];
  /** Packed deltas were left pending: the batch reached its size bound (a replay tells what its take did). */
  more: boolean;
}

export interface BufferedValue {
  pending: number;
  inflight: number;
  /** Sequence number of the batch in flight, 0 when none. */
  inflightSeq: number;
  /** Sequence number of the last batch whose flush finished. */
  doneSeq: number;
}

/** One user's inbox count in the real-time layer, read at one instant. */
export interface InboxCount extends BufferedValue {
  /** Bumped by every change of the count; only grows (0: never changed). */
  version: number;
}

export interface InboxState extends InboxCount {
  /** Changes of this user begun and not finished: running now, or left by a crash. */
  intents: number;
  /** Start (ms) of the oldest of them, 0 when none. */
  oldestIntentMs: number;
  /** The user's kept total (durable + pending + in flight), null when none is kept yet. */
  total: number | null;
}

/** A user's durable count as one PostgreSQL snapshot showed it, with the last batch it held. */
export interface DurableSnapshot {
  durable: number;
  lastSeq: number;
}

export interface InboxChange {
  userId: string;
  delta: number;
  /** Where the user's new version is published when the delta is added. */
  channel?: string | undefined;
  /** The durable count the change's statement read: composes the total if none is kept yet. */
  durable?: DurableSnapshot | undefined;
}

export interface FinishedInboxChange extends InboxCount {
  /** False when the reconciler had dropped the change's intent as stale: its delta was not added. */
  applied: boolean;
  /** The user's total right after the change, null when none is kept and none could be composed. */
  total: number | null;
}

/** A user's count as the real-time layer keeps it: version and total (null: none kept). */
export interface InboxTotal {
  version: number;
  total: number | null;
}

export interface Realtime {
  readonly kind: 'redis' | 'memory';

  // Ingestion streams
  ensureGroup(stream: string, group: string): Promise<void>;
  /** Appends to the stream unless it holds maxBacklog entries already; null when full. */
  enqueue(stream: string, payload: string, maxBacklog: number): Promise<string | null>;
  openReader(stream: string, group: string): StreamReader;
  /** Takes over entries delivered to another consumer and not acknowledged for minIdleMs. */
  claimStale(stream: string, group: string, consumer: string, minIdleMs: number, count: number): Promise<StreamEntry[]>;
  /** Acknowledges and deletes processed entries. */
  ackEntries(stream: string, group: string, ids: readonly string[]): Promise<void>;
  /** Entries not yet acknowledged and deleted (the backlog). */
  streamLength(stream: string): Promise<number>;
  /**
   * Appends the entries' payloads to deadStream (a stream of the same hash tag) and acknowledges
   * and deletes them from stream, in one step; returns how many moved (ids already gone are skipped).
   */
  deadLetter(stream: string, deadStream: string, group: string, ids: readonly string[]): Promise<number>;

  // Analytics: one atomic step per batch.
  /**
   * Runs a pre-aggregated batch only if every event is new: returns [] when applied, else the
   * positions of the duplicate events (nothing was written; drop them and call again).
   */
  applyAggregate(batch: AggregateBatch): Promise<number[]>;

  // Counter buffers (src/counters): pending deltas, atomic take, finish after commit.
  addDeltas(buffer: BufferKeys, fields: readonly string[], deltas: readonly number[]): Promise<void>;
  /**
   * The batch in flight if one is left over, else the pending deltas renamed into flight; its
   * deltas are the pending hash's and the packed ones', summed per name. With maxPackedBytes,
   * packed items (JSON text, taken whole, oldest first, at least one) are taken only up to that
   * many bytes; the rest stays pending for the next batch.
   */
  takeBatch(buffer: BufferKeys, minSeq: number, maxPackedBytes?: number): Promise<TakenBatch | null>;
  /** Drops the in-flight batch once PostgreSQL recorded it. */
  finishBatch(buffer: BufferKeys, seq: number): Promise<void>;
  /** One field of the pending and in-flight hashes (packed deltas are read only by takeBatch). */
  readBuffered(buffer: BufferKeys, field: string): Promise<BufferedValue>;

  // Inbox counters (src/inbox): an intent is recorded before a change's SQL statement and
  // finished with its delta after, so the reconciler knows which counts may be missing one.
  // A user's total (durable + pending + in flight) is kept beside the buffer once composed: every
  // delta moves it with the pending hash, a flush leaves it unchanged, a repair drops it.
  /** mutationId is 16 characters; marks the users touched. */
  beginInboxChange(keys: InboxKeys, mutationId: string, userIds: readonly string[], nowMs: number): Promise<void>;
  /**
   * Per change: adds the delta (to the pending hash and the total), bumps the version and
   * publishes it if the intent is still there; composes a missing total from `durable`.
   */
  finishInboxChange(keys: InboxKeys, mutationId: string, changes: readonly InboxChange[], nowMs: number): Promise<FinishedInboxChange[]>;
  readInboxState(keys: InboxKeys, userId: string): Promise<InboxState>;
  /** Drops the user's intents begun at or before beforeMs; returns how many. */
  dropStaleIntents(keys: InboxKeys, userId: string, beforeMs: number): Promise<number>;
  /** Adds delta (bumps the version, drops the total) only if the version is still expectVersion. */
  repairInboxCount(keys: InboxKeys, userId: string, delta: number, expectVersion: number, nowMs: number): Promise<boolean>;
  /**
   * The user's total; without one kept, composed from `durable` and kept, unless a batch newer
   * than durable.lastSeq finished (then total is null: read PostgreSQL again).
   */
  readInboxTotal(keys: InboxKeys, userId: string, durable?: DurableSnapshot): Promise<InboxTotal>;
  /** Users last touched at or before maxMs, oldest first. */
  listTouched(keys: InboxKeys, maxMs: number, limit: number): Promise<string[]>;
  /** Removes users from the touched set unless touched after maxMs. */
  untouch(keys: InboxKeys, userIds: readonly string[], maxMs: number): Promise<void>;

  // Reads
  hget(key: string, field: string): Promise<number>;
  hgetall(key: string): Promise<Record<string, number>>;
  zrevrangeWithScores(key: string, start: number, stop: number): Promise<{ member: string; score: number }[]>;
  zcount(key: string, min: number, max: number): Promise<number>;
  pfcount(keys: readonly string[]): Promise<number>;
  /** Top `limit` members (0: all) of the sum of sorted sets; `scratch` is a free key of their slot. */
  rankUnion(keys: readonly string[], limit: number, scratch: string): Promise<{ member: string; score: number }[]>;

  // Restore (tally rebuild; embedded start)
  hset(key: string, values: Record<string, number>): Promise<void>;
  /** Writes keys back whole (replacing them), with their expiry. */
  restore(items: readonly RestoreItem[]): Promise<void>;
  /** HyperLogLogs as opaque bytes (null when missing), for `restore` by the same implementation. */
  dumpUniques(keys: readonly string[]): Promise<(Buffer | null)[]>;
  /** Sets key to value with a TTL unless it exists; returns the value it holds (a shared salt). */
  getOrSet(key: string, value: string, ttlSeconds: number): Promise<string>;

  // Coordination and live pushes
  tryLock(key: string, token: string, ttlMs: number): Promise<boolean>;
  unlock(key: string, token: string): Promise<void>;
  publish(channel: string, message: string): Promise<void>;
  /** Resolves once subscribed; the returned function unsubscribes. */
  subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>>;

  ping(): Promise<void>;
  close(): Promise<void>;
}
