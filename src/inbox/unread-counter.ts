import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { TallyError } from '../errors.js';
import { prepared, type Queryable } from '../storage/db.js';
import { countName } from '../storage/inbox-count-names.js';
import type { CountVector, FinishedInboxChange } from '../storage/inbox-counts.js';
import { type InboxKeys, type Keys, part } from '../storage/keys.js';
import type { Realtime } from '../storage/realtime.js';
import { statementFailed } from './statement-batch.js';

// The inbox count protocol's SQL half, the one place that changes a count. A user's counts are a
// vector: per cell (tenant, category), unseen, unread and total, over the user's live rows (not
// archived, expired or muted). Their sum = durable value in PostgreSQL (inbox_counts, written
// behind by the flusher) + deltas pending in the user's Redis buffer shard + the batch in flight,
// if PostgreSQL does not hold it yet. Redis keeps that sum per user (the kept counts), moved by
// every delta in the same script that adds it to the buffer (a flush moves deltas into
// PostgreSQL and leaves the sum as it is): a count read is one Redis call. A user without kept
// counts gets them counted from the rows. Every change goes through `change()`: intent, ONE
// conditional SQL statement (or one batch of them, run as one statement) whose affected rows,
// their state before and after, are the deltas, then the deltas. There is no other path.

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

/** A user's counts (count name -> value) and the version they were read at. */
export interface CountsValue {
  counts: ReadonlyMap<string, number>;
  version: number;
}

/** One user's count: changes of several users (even of several sites) run as one statement. */
export interface UserRef {
  siteId: string;
  userId: string;
}

/** Key of a user in the maps of a change (site ids hold no newline). */
export const refKey = (siteId: string, userId: string): string => `${siteId}\n${userId}`;

/**
 * A statement's change of one cell of one user, from its affected rows: unseen, unread and total
 * after minus before (SQL: DELTA_COLUMNS in notification-sql.ts).
 */
export interface CellDelta {
  site_id: string;
  user_id: string;
  tenant: string;
  category: string;
  ds: number | string;
  du: number | string;
  dt: number | string;
}

/** Per user (refKey) changed: the deltas by count name. */
export type Deltas = Map<string, Map<string, number>>;

/** Adds cell deltas to `into` (zeros left out). */
export function addDeltas(into: Deltas, cells: readonly CellDelta[]): Deltas {
  for (const cell of cells) {
    const key = refKey(cell.site_id, cell.user_id);
    let user = into.get(key);
    if (!user) into.set(key, (user = new Map()));
    for (const [kind, value] of [
      ['unseen', cell.ds],
      ['unread', cell.du],
      ['total', cell.dt],
    ] as const) {
      const delta = Number(value);
      if (delta === 0) continue;
      const name = countName(kind, cell.tenant, cell.category);
      const sum = (user.get(name) ?? 0) + delta;
      if (sum === 0) user.delete(name);
      else user.set(name, sum);
    }
  }
  return into;
}

export interface StatementOutcome<T> {
  result: T;
  /** Per user (refKey) changed: the deltas, from the statement's affected rows. */
  deltas: Deltas;
}

export interface ChangeOutcome<T> {
  result: T;
  /** Per user (refKey): the count state right after the deltas went in. */
  finished: Map<string, FinishedInboxChange>;
}

export interface UnreadCounter {
  keysOf(siteId: string, userId: string): InboxKeys;
  /**
   * Runs `statement` (one conditional SQL statement, or one transaction) as a change of these
   * users' counts; it returns its result and the deltas of each user from its affected rows.
   */
  change<T>(users: readonly UserRef[], statement: () => Promise<StatementOutcome<T>>): Promise<ChangeOutcome<T>>;
  /**
   * The counts to answer a finished change with: the kept counts right after it, unless another
   * change of the user was still running (its deltas may come after this one's though it
   * committed first): then the rows.
   */
  settle(siteId: string, userId: string, state: FinishedInboxChange | undefined): Promise<CountsValue>;
  read(siteId: string, userId: string): Promise<CountsValue>;
  /** Tells live streams of the user that the counts moved to `version`. */
  announce(siteId: string, userId: string, version: number): void;
  channel(siteId: string, userId: string): string;
}

/** A user's counts from the rows, in one snapshot: $1 site, $2 user. */
const COUNT_ROWS = prepared(
  'inbox_count_rows',
  `SELECT coalesce(tenant, '') AS tenant, coalesce(category, '') AS category,
    count(*) FILTER (WHERE seen_at IS NULL) AS unseen, count(*) FILTER (WHERE read_at IS NULL) AS unread, count(*) AS total
  FROM notifications WHERE site_id = $1 AND user_id = $2 AND archived_at IS NULL AND NOT expired AND NOT muted
  GROUP BY 1, 2`,
);

/** A user's counts from the rows, in one snapshot. */
export async function countRows(db: Queryable, siteId: string, userId: string): Promise<Map<string, number>> {
  const result = await db.query<{ tenant: string; category: string; unseen: string; unread: string; total: string }>(COUNT_ROWS, [
    siteId,
    userId,
  ]);
  const counts = new Map<string, number>();
  for (const row of result.rows) {
    for (const kind of ['unseen', 'unread', 'total'] as const) {
      if (Number(row[kind]) !== 0) counts.set(countName(kind, row.tenant, row.category), Number(row[kind]));
    }
  }
  return counts;
}

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

  async function read(siteId: string, userId: string): Promise<CountsValue> {
    const keys = keysOf(siteId, userId);
    // The kept counts move in the order deltas arrive, not the order their statements committed:
    // while a change of the user sits between its commit and its deltas (its intent still open),
    // they can be counts the rows never had (a read's -1 before its create's +1: below zero).
    // Then the rows answer, in one snapshot: every acknowledged change is in it. With no intent
    // open, every committed change is in the kept counts and nothing else: almost every read is
    // this one Redis call. A user without kept counts gets them from the rows, kept unless a
    // change started meanwhile (lua/inbox-keep.lua).
    const kept = await deps.realtime.inbox.readCounts(keys, userId);
    if (kept.running === 0 && kept.counts) return { counts: kept.counts, version: kept.version };
    const counts = await countRows(deps.db, siteId, userId);
    if (kept.running === 0) await deps.realtime.inbox.keepCounts(keys, userId, counts, kept.version);
    return { counts, version: kept.version };
  }

  /** Adds a change's deltas and closes its intents: one script call per shard. */
  type Finish = (deltas: Deltas) => Promise<Map<string, FinishedInboxChange>>;
  const none: CountVector = new Map();

  return {
    keysOf,
    channel,
    announce,
    read,

    async settle(siteId, userId, state) {
      // The finish already told whether another change of the user is running: no second look.
      if (state && state.running > 0) return { counts: await countRows(deps.db, siteId, userId), version: state.version };
      if (state?.counts) return { counts: state.counts, version: state.version };
      return read(siteId, userId);
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
      const finish: Finish = async (deltas) => {
        const done = new Map<string, FinishedInboxChange>();
        const now = Date.now();
        await Promise.all(
          [...groups.values()].map(async ({ siteId, keys, users: ids }) => {
            const changes = ids.map((userId) => ({
              userId,
              deltas: deltas.get(refKey(siteId, userId)) ?? none,
              channel: channel(siteId, userId),
            }));
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
      const finished = await finish(outcome.deltas);
      return { result: outcome.result, finished };
    },
  };
}
