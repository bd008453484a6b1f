import type { InboxKeys } from './keys.js';

// The inbox count protocol's real-time half (src/inbox/unread-counter.ts is the other half).
// A user's counts are a vector: one integer per count name (src/storage/inbox-count-names.ts:
// a cell (tenant, category) and a kind, unseen / unread / total). A change records an intent per
// user before its SQL statement and finishes it with the statement's deltas after: the deltas go
// to the user's buffer shard (flushed behind to PostgreSQL) and to the user's kept counts, and
// the user's version grows. So the reconciler (src/inbox/reconcile.ts) knows which counts may be
// missing a delta: those with an intent that never finished. Redis: lua/inbox-*.lua
// (src/storage/redis/inbox-counts.ts); embedded: plain maps in this process
// (src/storage/embedded/inbox-counts.ts).

/** Count name -> value (or delta). A name missing is 0. */
export type CountVector = ReadonlyMap<string, number>;

/** A user's counts as the real-time layer keeps them, read at one instant. */
export interface KeptCounts {
  /** Bumped by every change of the counts; only grows (0: never changed). */
  version: number;
  /**
   * The user's changes begun and not finished. While one is, the kept counts may hold a later
   * change before it: not counts the rows ever had.
   */
  running: number;
  /** The kept counts (durable + pending + in flight, moved by every delta); null when none are kept. */
  counts: Map<string, number> | null;
}

export interface InboxState extends KeptCounts {
  /** Changes of this user begun and not finished: running now, or left by a crash. */
  intents: number;
  /** Start (ms) of the oldest of them, 0 when none. */
  oldestIntentMs: number;
  /** The user's deltas waiting in the buffer, by count name. */
  pending: Map<string, number>;
  /** The user's deltas of the batch in flight, by count name. */
  inflight: Map<string, number>;
  /** Sequence number of the batch in flight, 0 when none. */
  inflightSeq: number;
  /** Sequence number of the last batch whose flush finished. */
  doneSeq: number;
}

export interface InboxChange {
  userId: string;
  /** The change's deltas, from its statement's affected rows; zeros are left out. */
  deltas: CountVector;
  /** Where the user's new version is published when the deltas are added. */
  channel?: string | undefined;
}

export interface FinishedInboxChange extends KeptCounts {
  /** False when the reconciler had dropped the change's intent as stale: its deltas were not added. */
  applied: boolean;
}

export interface InboxCounts {
  /** Records an intent of change `changeId` for each user and marks them touched. */
  begin(keys: InboxKeys, changeId: string, userIds: readonly string[], nowMs: number): Promise<void>;
  /**
   * Per change: if its intent is still there, removes it, adds the deltas (to the buffer and the
   * kept counts, if kept), bumps the version (when any delta) and publishes it.
   */
  finish(keys: InboxKeys, changeId: string, changes: readonly InboxChange[], nowMs: number): Promise<FinishedInboxChange[]>;
  /** The user's kept counts, version and running changes: the count read, one call. */
  readCounts(keys: InboxKeys, userId: string): Promise<KeptCounts>;
  /**
   * Keeps `counts` (counted from the rows in one snapshot taken after a readCounts that answered
   * `expectVersion` and no running change) unless the version moved, a change is running, or
   * counts are kept already. True when kept.
   */
  keepCounts(keys: InboxKeys, userId: string, counts: CountVector, expectVersion: number): Promise<boolean>;
  readState(keys: InboxKeys, userId: string): Promise<InboxState>;
  /** Users with an intent begun at or before beforeMs (a change that died mid-way, or a slow one). */
  staleUsers(keys: InboxKeys, beforeMs: number): Promise<string[]>;
  /** Drops the user's intents begun at or before beforeMs; returns how many. */
  dropStaleIntents(keys: InboxKeys, userId: string, beforeMs: number): Promise<number>;
  /** Adds the deltas to the buffer (bumps the version, drops the kept counts) only if the version is still expectVersion. */
  repair(keys: InboxKeys, userId: string, deltas: CountVector, expectVersion: number, nowMs: number): Promise<boolean>;
  /** Users last touched at or before maxMs, oldest first. */
  listTouched(keys: InboxKeys, maxMs: number, limit: number): Promise<string[]>;
  /** Removes users from the touched set unless touched after maxMs. */
  untouch(keys: InboxKeys, userIds: readonly string[], maxMs: number): Promise<void>;
  /** Users with a delta pending or in flight in the shard's buffer. */
  bufferedUsers(keys: InboxKeys): Promise<string[]>;
}
