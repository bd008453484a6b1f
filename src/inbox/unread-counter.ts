import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { TallyError } from '../errors.js';
import type { Queryable } from '../storage/db.js';
import { type InboxKeys, type Keys, part } from '../storage/keys.js';
import type { BufferedValue, FinishedInboxChange, InboxCount, InboxState, Realtime } from '../storage/realtime.js';

// A user's unread count = durable value in PostgreSQL (unread_counts, written behind by the
// flusher) + deltas pending in the user's Redis buffer shard + the batch in flight, if PostgreSQL
// does not hold it yet (the durable value is cached in Redis between two flushes of the shard, so
// most reads are one Redis call). Every change goes through `change()`: intent, ONE conditional SQL
// statement whose affected rows are the delta, then the delta. There is no other path.

/** Length of a change's id: intent fields are the id followed by the user id. */
export const MUTATION_ID_LENGTH = 16;

/** Buffer shards per site: spreads a site's hot users over several Redis Cluster slots. */
export const INBOX_SHARDS = 8;

/** Stable shard of a user (FNV-1a of the id): every process agrees without coordination. */
export function shardOf(userId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < userId.length; i++) {
    h ^= userId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % INBOX_SHARDS;
}

/** What one SQL statement read of the durable side, in its snapshot. */
export interface DurableCount {
  durable: number;
  /** flush_state.last_seq of the user's buffer: the last batch PostgreSQL holds. */
  lastSeq: number;
}

/** SQL columns `durable` and `last_seq` for user $userParam of site $siteParam and buffer $bufferParam. */
export function durableColumns(siteParam: number, userParam: number, bufferParam: number): string {
  return `(SELECT unread FROM unread_counts WHERE site_id = $${siteParam} AND user_id = $${userParam}) AS durable,
    (SELECT last_seq FROM flush_state WHERE buffer = $${bufferParam}) AS last_seq`;
}

export function durableOf(row: { durable?: number | null; last_seq?: number | null } | undefined): DurableCount {
  return { durable: Number(row?.durable ?? 0), lastSeq: Number(row?.last_seq ?? 0) };
}

/**
 * The count, or null when a flush committed between the two reads (PostgreSQL first, then Redis):
 * the batch PostgreSQL did not show may already be gone from Redis; read again. A batch in flight
 * counts only if PostgreSQL did not hold it, so no read ever counts a batch twice.
 */
export function composeUnread(durable: DurableCount, buffered: BufferedValue): number | null {
  if (buffered.doneSeq > durable.lastSeq) return null;
  const value = durable.durable + buffered.pending + (buffered.inflightSeq > durable.lastSeq ? buffered.inflight : 0);
  // A read's -1 can reach the buffer before its create's +1 (both requests still running): the
  // sum dips for that instant; 0 is a value the count really had.
  return Math.max(0, value);
}

/**
 * The durable count cached in Redis, with the batch PostgreSQL had applied when it was read. It is
 * as good as reading PostgreSQL again: PostgreSQL's value changes only when a later batch commits,
 * and composeUnread then either counts that batch from flight or, once it finished, refuses.
 */
export function cachedDurable(state: InboxState): DurableCount | null {
  return state.cachedSeq >= 0 ? { durable: state.cachedDurable, lastSeq: state.cachedSeq } : null;
}

export interface UnreadValue {
  unread: number;
  version: number;
}

export interface ChangeOutcome<T> {
  result: T;
  /** Per user changed: the count state right after the delta went in. */
  finished: Map<string, FinishedInboxChange>;
}

export interface UnreadCounter {
  keysOf(siteId: string, userId: string): InboxKeys;
  /**
   * Runs `statement` (one conditional SQL statement, or one transaction) as a change of these
   * users' counts; it returns its result and the delta of each user from its affected rows.
   */
  change<T>(
    siteId: string,
    userIds: readonly string[],
    statement: () => Promise<{ result: T; deltas: ReadonlyMap<string, number> }>,
  ): Promise<ChangeOutcome<T>>;
  /** The count from a statement's durable columns and a finished change, re-read if a flush raced. */
  settle(siteId: string, userId: string, durable: DurableCount, state: InboxCount | undefined): Promise<UnreadValue>;
  read(siteId: string, userId: string): Promise<UnreadValue>;
  /** Tells live streams of the user that the count moved to `version`. */
  announce(siteId: string, userId: string, version: number): void;
  channel(siteId: string, userId: string): string;
}

const READ_ATTEMPTS = 10;

export function createUnreadCounter(deps: { db: Queryable; realtime: Realtime; keys: Keys; log: Logger }): UnreadCounter {
  const keysOf = (siteId: string, userId: string) => deps.keys.inbox(siteId, shardOf(userId));
  const channel = (siteId: string, userId: string) => deps.keys.channel(`inbox:${part(siteId)}:${part(userId)}`);

  function announce(siteId: string, userId: string, version: number): void {
    deps.realtime
      .publish(channel(siteId, userId), String(version))
      .catch((err: unknown) => deps.log.warn({ err }, 'live count push failed'));
  }

  async function read(siteId: string, userId: string): Promise<UnreadValue> {
    const keys = keysOf(siteId, userId);
    // Most reads: the durable count cached in Redis, good until the shard's next batch finishes.
    const first = await deps.realtime.readInboxState(keys, userId);
    const cached = cachedDurable(first);
    const fast = cached ? composeUnread(cached, first) : null;
    if (fast !== null) return { unread: fast, version: first.version };
    for (let attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
      const row = await deps.db.query<{ durable: number | null; last_seq: number | null }>(
        `SELECT ${durableColumns(1, 2, 3)}`,
        [siteId, userId, keys.buffer.name],
      );
      const durable = durableOf(row.rows[0]);
      const state = await deps.realtime.readInboxState(keys, userId);
      const unread = composeUnread(durable, state);
      if (unread !== null) {
        deps.realtime
          .cacheDurableCount(keys, userId, durable.lastSeq, durable.durable)
          .catch((err: unknown) => deps.log.warn({ err }, 'caching a durable count failed'));
        return { unread, version: state.version };
      }
    }
    throw new TallyError('unavailable', 'The count kept moving under concurrent flushes; retry.');
  }

  return {
    keysOf,
    channel,
    announce,
    read,

    async settle(siteId, userId, durable, state) {
      const unread = state ? composeUnread(durable, state) : null;
      return unread !== null && state ? { unread, version: state.version } : read(siteId, userId);
    },

    async change<T>(
      siteId: string,
      userIds: readonly string[],
      statement: () => Promise<{ result: T; deltas: ReadonlyMap<string, number> }>,
    ): Promise<ChangeOutcome<T>> {
      const mutationId = randomBytes(MUTATION_ID_LENGTH / 2).toString('hex');
      const byShard = new Map<number, string[]>();
      for (const userId of new Set(userIds)) {
        const shard = shardOf(userId);
        const list = byShard.get(shard);
        if (list) list.push(userId);
        else byShard.set(shard, [userId]);
      }
      const shards = [...byShard];
      const started = Date.now();
      await Promise.all(
        shards.map(([shard, users]) => deps.realtime.beginInboxChange(deps.keys.inbox(siteId, shard), mutationId, users, started)),
      );
      let outcome: { result: T; deltas: ReadonlyMap<string, number> };
      try {
        outcome = await statement();
      } catch (err) {
        // Our own errors are thrown before anything commits: close the intents. Any other
        // failure may have committed: its intents stay for the reconciler to judge.
        if (err instanceof TallyError) await finish(new Map());
        throw err;
      }
      const finished = await finish(outcome.deltas);
      return { result: outcome.result, finished };

      async function finish(deltas: ReadonlyMap<string, number>): Promise<Map<string, FinishedInboxChange>> {
        const done = new Map<string, FinishedInboxChange>();
        const now = Date.now();
        await Promise.all(
          shards.map(async ([shard, users]) => {
            const changes = users.map((userId) => ({ userId, delta: deltas.get(userId) ?? 0 }));
            const states = await deps.realtime.finishInboxChange(deps.keys.inbox(siteId, shard), mutationId, changes, now);
            states.forEach((state, i) => {
              const change = changes[i];
              if (!change) return;
              done.set(change.userId, state);
              if (state.applied && change.delta !== 0) announce(siteId, change.userId, state.version);
            });
          }),
        );
        return done;
      }
    },
  };
}
