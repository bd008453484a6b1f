import type { InboxKeys } from './keys.js';

// The inbox count protocol's real-time half (src/inbox/unread-counter.ts is the other half).
// A change records an intent per user before its SQL statement and finishes it with the
// statement's deltas after: the deltas go to the user's buffer shard (flushed behind to
// PostgreSQL) and to the user's kept total, and the user's version grows. So the reconciler
// (src/inbox/reconcile.ts) knows which counts may be missing a delta: those with an intent
// that never finished. Redis: lua/inbox-*.lua (src/storage/redis/inbox-counts.ts); embedded:
// plain maps in this process (src/storage/embedded/inbox-counts.ts).

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
  /** The user's changes still begun and not finished, this one no longer among them. */
  running: number;
}

/** A user's count as the real-time layer keeps it: version and total (null: none kept). */
export interface InboxTotal {
  version: number;
  total: number | null;
  /**
   * The user's changes begun and not finished. While one is, the total may hold a later change
   * before it: not a count the rows ever had.
   */
  running: number;
}

export interface InboxCounts {
  /** Records an intent of change `changeId` for each user and marks them touched. */
  begin(keys: InboxKeys, changeId: string, userIds: readonly string[], nowMs: number): Promise<void>;
  /**
   * Per change: if its intent is still there, removes it, adds the delta (to the buffer and the
   * kept total), bumps the version and publishes it; composes a missing total from `durable`.
   */
  finish(keys: InboxKeys, changeId: string, changes: readonly InboxChange[], nowMs: number): Promise<FinishedInboxChange[]>;
  readState(keys: InboxKeys, userId: string): Promise<InboxState>;
  /**
   * The user's kept total; without one, composed from `durable` and kept, unless a batch newer
   * than durable.lastSeq finished (then total is null: read PostgreSQL again).
   */
  readTotal(keys: InboxKeys, userId: string, durable?: DurableSnapshot): Promise<InboxTotal>;
  /** Users with an intent begun at or before beforeMs (a change that died mid-way, or a slow one). */
  staleUsers(keys: InboxKeys, beforeMs: number): Promise<string[]>;
  /** Drops the user's intents begun at or before beforeMs; returns how many. */
  dropStaleIntents(keys: InboxKeys, userId: string, beforeMs: number): Promise<number>;
  /** Adds delta (bumps the version, drops the kept total) only if the version is still expectVersion. */
  repair(keys: InboxKeys, userId: string, delta: number, expectVersion: number, nowMs: number): Promise<boolean>;
  /** Users last touched at or before maxMs, oldest first. */
  listTouched(keys: InboxKeys, maxMs: number, limit: number): Promise<string[]>;
  /** Removes users from the touched set unless touched after maxMs. */
  untouch(keys: InboxKeys, userIds: readonly string[], maxMs: number): Promise<void>;
  /** Users with a delta pending or in flight in the shard's buffer. */
  bufferedUsers(keys: InboxKeys): Promise<string[]>;
}
