import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { TallyError } from '../errors.js';
import { prepared, type Queryable } from '../storage/db.js';
import type { DurableSnapshot, FinishedInboxChange } from '../storage/inbox-counts.js';
import { type InboxKeys, type Keys, part } from '../storage/keys.js';
import type { Realtime } from '../storage/realtime.js';
import { statementFailed } from './statement-batch.js';

// A user's unread count = durable value in PostgreSQL (unread_counts, written behind by the
// flusher) + deltas pending in the user's Redis buffer shard + the batch in flight, if PostgreSQL
// does not hold it yet. Redis keeps that sum per user as a total, moved by every delta in the same
// script that adds it to the buffer (a flush moves deltas into PostgreSQL and leaves the sum as it
// is): a count read is one Redis call. A user without a total gets one composed from a PostgreSQL
// read. Every change goes through `change()`: intent, ONE conditional SQL statement (or one batch
// of them, run as one statement) whose affected rows are the deltas, then the deltas. There is no
// other path.

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
export type DurableCount = DurableSnapshot;

/** SQL columns `durable` and `last_seq` for user $userParam of site $siteParam and buffer $bufferParam. */
export function durableColumns(siteParam: number, userParam: number, bufferParam: number): string {
  return `(SELECT unread FROM unread_counts WHERE site_id = $${siteParam} AND user_id = $${userParam}) AS durable,
    (SELECT last_seq FROM flush_state WHERE buffer = $${bufferParam}) AS last_seq`;
}

export function durableOf(row: { durable?: number | string | null; last_seq?: number | string | null } | undefined): DurableCount {
  return { durable: Number(row?.durable ?? 0), lastSeq: Number(row?.last_seq ?? 0) };
}

export interface UnreadValue {
  unread: number;
  version: number;
}

/** One user's count: changes of several users (even of several sites) run as one statement. */
export interface UserRef {
  siteId: string;
  userId: string;
}

/** Key of a user in the maps of a change (site ids hold no newline). */
export const refKey = (siteId: string, userId: string): string => `${siteId}\n${userId}`;

export interface StatementOutcome<T> {
  result: T;
  /** Per user (refKey) changed: the delta, from the statement's affected rows. */
  deltas: ReadonlyMap<string, number>;
  /** Per user (refKey), when the statement read it: the durable count in its snapshot. */
  durable?: ReadonlyMap<string, DurableCount>;
}

export interface ChangeOutcome<T> {
  result: T;
  /** Per user (refKey): the count state right after the delta went in. */
  finished: Map<string, FinishedInboxChange>;
}

export interface UnreadCounter {
  keysOf(siteId: string, userId: string): InboxKeys;
  /**
   * Runs `statement` (one conditional SQL statement, or one transaction) as a change of these
   * users' counts; it returns its result and the delta of each user from its affected rows.
   */
  change<T>(users: readonly UserRef[], statement: () => Promise<StatementOutcome<T>>): Promise<ChangeOutcome<T>>;
  /**
   * The count to answer a finished change with: a consistent read (`read`), not `state`'s total,
   * which may hold the change before an earlier-committed change of the user still running.
   */
  settle(siteId: string, userId: string, state: FinishedInboxChange | undefined): Promise<UnreadValue>;
  read(siteId: string, userId: string): Promise<UnreadValue>;
  /** Tells live streams of the user that the count moved to `version`. */
  announce(siteId: string, userId: string, version: number): void;
  channel(siteId: string, userId: string): string;
}

const READ_ATTEMPTS = 10;

/** A user's durable count and its buffer's last applied batch: $1 site, $2 user, $3 buffer name. */
const SELECT_DURABLE = prepared('inbox_durable', `SELECT ${durableColumns(1, 2, 3)}`);

/** COUNT(*) of a user's unread rows, in one snapshot: $1 site, $2 user. */
const SELECT_UNREAD_ROWS = prepared(
  'inbox_unread_rows',
  'SELECT count(*) AS n FROM notifications WHERE site_id = $1 AND user_id = $2 AND read_at IS NULL',
);

export function createUnreadCounter(deps: {
  db: Queryable;
  realtime: Pick<Realtime, 'inbox' | 'live'>;
  keys: Keys;
  log: Logger;
}): UnreadCounter {
  const keysOf = (siteId: string, userId: string) => deps.keys.inbox(siteId, shardOf(userId));
  const channel = (siteId: string, userId: string) => deps.keys.channel(`inbox:${part(siteId)}:${part(userId)}`);

  function announce(siteId: string, userId: string, version: number): void {
    deps.realtime.live
      .publish(channel(siteId, userId), String(version))
      .catch((err: unknown) => deps.log.warn({ err }, 'live count push failed'));
  }

  async function read(siteId: string, userId: string): Promise<UnreadValue> {
    const keys = keysOf(siteId, userId);
    // The total moves in the order deltas arrive, not the order their statements committed: while
    // a change of the user sits between its commit and its delta (its intent still open), the
    // total can be a count the rows never had (a read's -1 before its create's +1: below zero).
    // Then the rows answer, in one snapshot: every acknowledged change is in it. With no intent
    // open, every committed change is in the total and nothing else: almost every read is this
    // one Redis call. A user without a total gets one composed from PostgreSQL's count; a flush
    // finishing between the two reads makes Redis refuse, and PostgreSQL is read again.
    let kept = await deps.realtime.inbox.readTotal(keys, userId);
    for (let attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
      if (kept.running > 0) return countRows(siteId, userId, kept.version);
      if (kept.total !== null) return { unread: kept.total, version: kept.version };
      const row = await deps.db.query<{ durable: number | null; last_seq: number | null }>(SELECT_DURABLE, [
        siteId,
        userId,
        keys.buffer.name,
      ]);
      kept = await deps.realtime.inbox.readTotal(keys, userId, durableOf(row.rows[0]));
    }
    throw new TallyError('unavailable', 'The count kept moving under concurrent flushes; retry.');
  }

  /** The count as the user's rows have it, in one snapshot (a change of the user is in flight). */
  async function countRows(siteId: string, userId: string, version: number): Promise<UnreadValue> {
    const [counted] = (await deps.db.query<{ n: number | string }>(SELECT_UNREAD_ROWS, [siteId, userId])).rows;
    if (!counted) throw new Error('count(*) returned no row');
    return { unread: Number(counted.n), version };
  }

  /** Adds a change's deltas (composing missing totals) and closes its intents: one script call per shard. */
  type Finish = (
    deltas: ReadonlyMap<string, number>,
    durable?: ReadonlyMap<string, DurableCount>,
  ) => Promise<Map<string, FinishedInboxChange>>;

  return {
    keysOf,
    channel,
    announce,
    read,

    // The total right after a change answers unless another change of the user was still in
    // flight (its delta may come after this one's though it committed first): then a read.
    async settle(siteId, userId, state) {
      if (!state) return read(siteId, userId);
      // The finish already told whether another change of the user is in flight: no second look.
      if (state.running > 0) return countRows(siteId, userId, state.version);
      return state.total !== null ? { unread: state.total, version: state.version } : read(siteId, userId);
    },

    async change<T>(users: readonly UserRef[], statement: () => Promise<StatementOutcome<T>>): Promise<ChangeOutcome<T>> {
      // One intent per user, for the whole statement: one script call per buffer shard.
      const changeId = randomBytes(8).toString('hex');
      const groups = new Map<string, { siteId: string; keys: InboxKeys; users: string[] }>();
      const seen = new Set<string>();
      for (const { siteId, userId } of users) {
        const key = refKey(siteId, userId);
        if (seen.has(key)) continue;
        seen.add(key);
        const shard = shardOf(userId);
        const groupKey = `${siteId}\n${shard}`;
        const group = groups.get(groupKey);
        if (group) group.users.push(userId);
        else groups.set(groupKey, { siteId, keys: deps.keys.inbox(siteId, shard), users: [userId] });
      }
      const started = Date.now();
      await Promise.all([...groups.values()].map((g) => deps.realtime.inbox.begin(g.keys, changeId, g.users, started)));
      const finish: Finish = async (deltas, durable) => {
        const done = new Map<string, FinishedInboxChange>();
        const now = Date.now();
        await Promise.all(
          [...groups.values()].map(async ({ siteId, keys, users: ids }) => {
            const changes = ids.map((userId) => {
              const key = refKey(siteId, userId);
              return { userId, delta: deltas.get(key) ?? 0, channel: channel(siteId, userId), durable: durable?.get(key) };
            });
            const states = await deps.realtime.inbox.finish(keys, changeId, changes, now);
            states.forEach((state, i) => done.set(refKey(siteId, ids[i] as string), state));
          }),
        );
        return done;
      };
      let outcome: StatementOutcome<T>;
      try {
        outcome = await statement();
      } catch (err) {
        // Our own errors are thrown, and statements PostgreSQL refused are rolled back, before
        // anything commits: close the intents. Any other failure (a lost connection) may have
        // committed: its intents stay for the reconciler to judge.
        if (err instanceof TallyError || statementFailed(err)) await finish(new Map());
        throw err;
      }
      const finished = await finish(outcome.deltas, outcome.durable);
      return { result: outcome.result, finished };
    },
  };
}
