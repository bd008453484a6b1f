import { randomUUID } from 'node:crypto';
import { TallyError } from '../errors.js';
import type { Db, Queryable } from '../storage/db.js';
import type { FinishedInboxChange } from '../storage/realtime.js';
import * as sql from './notification-sql.js';
import { createBatcher } from './statement-batch.js';
import { type DurableCount, durableOf, refKey, type StatementOutcome, type UnreadCounter, type UnreadValue } from './unread-counter.js';

// Notifications and their unread counts. Every change of a notification is one method here, and
// every one runs its statement through counter.change(): none can skip the count.

export interface Notification {
  id: string;
  userId: string;
  title: string;
  body: string;
  category: string | null;
  data: Record<string, unknown>;
  createdAt: string;
  readAt: string | null;
}

export interface NewNotification {
  id?: string | undefined;
  userId: string;
  title: string;
  body?: string | undefined;
  category?: string | undefined;
  data?: Record<string, unknown> | undefined;
}

/** Who asks: the secret key (any user of the site) or a user token (that user only). */
export type Scope = { userId?: string | undefined };

export interface Page {
  items: Notification[];
  nextCursor: string | null;
}

const iso = (value: Date | string) => (value instanceof Date ? value : new Date(value)).toISOString();

function toNotification(row: sql.NotificationRow): Notification {
  return {
    id: row.id,
    userId: row.user_id,
    title: row.title,
    body: row.body,
    category: row.category,
    data: row.data,
    createdAt: iso(row.created_at),
    readAt: row.read_at === null ? null : iso(row.read_at),
  };
}

export function encodeCursor(seq: number): string {
  return Buffer.from(`s${seq}`).toString('base64url');
}

/** The seq a cursor names, or null when it is not one of ours. */
export function decodeCursor(cursor: string): number | null {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!/^s\d{1,15}$/.test(text) || encodeCursor(Number(text.slice(1))) !== cursor) return null;
  return Number(text.slice(1));
}

const notFound = () => new TallyError('not_found', 'No such notification.');
const conflictAt = (path: string) =>
  new TallyError('conflict', 'That id belongs to a notification of another user.', path);

interface ChangeRow {
  found: number;
  changed: number;
  deleted?: number;
  durable: number | null;
  last_seq: number | null;
}

/** A by-id change's statement row, and the owner's count state right after its delta. */
interface ByIdOutcome {
  row: ChangeRow;
  state: FinishedInboxChange | undefined;
}

/** A create, ready for the insert statement. */
interface CreateInput {
  siteId: string;
  id: string;
  userId: string;
  category: string | null;
  title: string;
  body: string;
  /** JSON text. */
  data: string;
}

type InsertedRow = sql.NotificationRow & { inserted: boolean; durable: number | null; last_seq: number | null };

const OWNER_CACHE_SIZE = 50_000;
/** Batched statements in flight at once per kind (the pool has 10 connections), and their size. */
const BATCH = { parallel: 2, max: 256 };

/** A by-id change's statement, for the notification's owner and the owner's buffer. */
interface ByIdInput {
  siteId: string;
  id: string;
  userId: string;
  buffer: string;
}

function toCreateInput(siteId: string, input: NewNotification, id: string): CreateInput {
  return {
    siteId,
    id,
    userId: input.userId,
    category: input.category ?? null,
    title: input.title,
    body: input.body ?? '',
    data: JSON.stringify(input.data ?? {}),
  };
}

export function createInbox(deps: { db: Db; counter: UnreadCounter }) {
  const { db, counter } = deps;
  // Owners of notifications, for secret-key calls by id: the intent must name the user before the
  // statement runs. An id can be reused after a delete, so a stale entry is retried once, uncached.
  const owners = new Map<string, string>();
  const remember = (siteId: string, id: string, userId: string) => {
    if (owners.size >= OWNER_CACHE_SIZE) owners.delete(owners.keys().next().value as string);
    owners.set(`${siteId}\n${id}`, userId);
  };

  const lookUpOwner = createBatcher<{ siteId: string; id: string }, string | null>({
    ...BATCH,
    one: async ({ siteId, id }) => (await db.query<{ user_id: string }>(sql.SELECT_OWNER, [siteId, id])).rows[0]?.user_id ?? null,
    many: async (inputs) => {
      const result = await db.query<{ user_id: string | null }>(sql.SELECT_OWNERS, [inputs.map((i) => i.siteId), inputs.map((i) => i.id)]);
      return result.rows.map((row) => row.user_id);
    },
  });

  async function ownerOf(siteId: string, id: string, cached: boolean): Promise<string | null> {
    const key = `${siteId}\n${id}`;
    const hit = cached ? owners.get(key) : undefined;
    if (hit !== undefined) return hit;
    const owner = await lookUpOwner({ siteId, id });
    if (owner === null) owners.delete(key);
    else remember(siteId, id, owner);
    return owner;
  }

  /** A by-id change of one notification as its own statement; sign: +1 when rows become unread. */
  const single = (statement: string, sign: 1 | -1) => async (input: ByIdInput): Promise<ByIdOutcome> => {
    const key = refKey(input.siteId, input.userId);
    const { result: row, finished } = await counter.change([input], async () => {
      const row = (await db.query<ChangeRow>(statement, [input.siteId, input.id, input.userId, input.buffer])).rows[0] as ChangeRow;
      return { result: row, deltas: new Map([[key, sign * Number(row.changed)]]), durable: new Map([[key, durableOf(row)]]) };
    });
    return { row, state: finished.get(key) };
  };

  // Mark-read, the busiest change, runs batched: one intent script per buffer shard, ONE
  // conditional statement (its affected rows are still exactly the deltas), one finish script
  // per buffer shard, for all the requests that arrived together.
  const markReadStatement = createBatcher<ByIdInput, ByIdOutcome>({
    ...BATCH,
    one: single(sql.MARK_READ, -1),
    many: async (inputs) => {
      const { result: rows, finished } = await counter.change(inputs, async () => {
        const result = await db.query<ChangeRow>(sql.MARK_READ_MANY, [
          inputs.map((i) => i.siteId),
          inputs.map((i) => i.id),
          inputs.map((i) => i.userId),
          inputs.map((i) => i.buffer),
        ]);
        // The same notification twice in a batch changed once: the first request gets the change.
        const seen = new Set<string>();
        const deltas = new Map<string, number>();
        const durable = new Map<string, DurableCount>();
        const rows = result.rows.map((row, i) => {
          const input = inputs[i] as ByIdInput;
          const key = refKey(input.siteId, input.userId);
          durable.set(key, durableOf(row));
          const change = `${key}\n${input.id}`;
          if (seen.has(change)) return { ...row, changed: 0 };
          seen.add(change);
          deltas.set(key, (deltas.get(key) ?? 0) - Number(row.changed));
          return row;
        });
        return { result: rows, deltas, durable };
      });
      return rows.map((row, i) => {
        const input = inputs[i] as ByIdInput;
        return { row, state: finished.get(refKey(input.siteId, input.userId)) };
      });
    },
  });

  const markUnreadStatement = single(sql.MARK_UNREAD, 1);
  const deleteStatement = single(sql.DELETE_ONE, -1);

  /** Runs a by-id change (read, unread, delete) for the notification's owner. */
  async function changeById(siteId: string, id: string, scope: Scope, statement: (input: ByIdInput) => Promise<ByIdOutcome>) {
    for (const cached of [true, false]) {
      const userId = scope.userId ?? (await ownerOf(siteId, id, cached));
      if (userId === null) throw notFound();
      const keys = counter.keysOf(siteId, userId);
      const { row, state } = await statement({ siteId, id, userId, buffer: keys.buffer.name });
      if (Number(row.found) === 0) {
        if (scope.userId === undefined && cached) continue;
        throw notFound();
      }
      const count = await counter.settle(siteId, userId, state);
      return { row, count };
    }
    throw notFound();
  }

  /** Creates as one insert statement, with each user's delta from the rows it inserted. */
  async function insertStatement(run: Queryable, inputs: readonly CreateInput[]): Promise<StatementOutcome<InsertedRow[]>> {
    const result = await run.query<InsertedRow>(sql.INSERT_BATCH, [
      inputs.map((i) => i.siteId),
      inputs.map((i) => i.id),
      inputs.map((i) => i.userId),
      inputs.map((i) => i.category),
      inputs.map((i) => i.title),
      inputs.map((i) => i.body),
      inputs.map((i) => i.data),
      inputs.map((i) => counter.keysOf(i.siteId, i.userId).buffer.name),
    ]);
    // An id twice in a batch is one notification, inserted (and counted) once.
    const seen = new Set<string>();
    const deltas = new Map<string, number>();
    const durable = new Map<string, DurableCount>();
    result.rows.forEach((row, i) => {
      const input = inputs[i] as CreateInput;
      const key = refKey(input.siteId, input.userId);
      durable.set(key, durableOf(row));
      const created = `${input.siteId}\n${input.id}`;
      if (row.inserted && !seen.has(created)) deltas.set(key, (deltas.get(key) ?? 0) + 1);
      seen.add(created);
    });
    return { result: result.rows, deltas, durable };
  }

  /** Per input, its notification, or null when the id belongs to another user's notification. */
  async function notificationsOf(run: Queryable, inputs: readonly CreateInput[], rows: readonly InsertedRow[]) {
    // A notification that committed after the statement's snapshot: read it now (no count change).
    const late = new Map<string, sql.NotificationRow>();
    for (const [siteId, ids] of groupBy(inputs.filter((_, i) => rows[i]?.id == null), (i) => i.siteId, (i) => i.id)) {
      for (const row of (await run.query<sql.NotificationRow>(sql.SELECT_BY_IDS, [siteId, ids])).rows) late.set(`${siteId}\n${row.id}`, row);
    }
    return inputs.map((input, i): sql.NotificationRow | null => {
      const found = rows[i];
      const row = found && found.id != null ? found : late.get(`${input.siteId}\n${input.id}`);
      // Same id again is the same notification (idempotent); for another user it is a conflict.
      if (!row || row.user_id !== input.userId) return null;
      remember(input.siteId, row.id, row.user_id);
      return row;
    });
  }

  async function insert(inputs: readonly CreateInput[]): Promise<(sql.NotificationRow | null)[]> {
    const { result: rows } = await counter.change(inputs, () => insertStatement(db, inputs));
    return notificationsOf(db, inputs, rows);
  }

  // Creates run batched like mark-reads: the requests that arrived together are one insert.
  const createStatement = createBatcher<CreateInput, sql.NotificationRow | null>({
    ...BATCH,
    one: async (input) => (await insert([input]))[0] ?? null,
    many: (inputs) => insert(inputs),
  });

  async function createMany(siteId: string, inputs: readonly NewNotification[]): Promise<Notification[]> {
    const creates = inputs.map((n) => toCreateInput(siteId, n, n.id ?? randomUUID()));
    const { result } = await counter.change(creates, () =>
      db.transaction(async (tx) => {
        const outcome = await insertStatement(tx, creates);
        const rows = await notificationsOf(tx, creates, outcome.result);
        const conflict = rows.findIndex((row) => row === null);
        if (conflict >= 0) throw conflictAt(`/notifications/${conflict}/id`);
        return { ...outcome, result: rows as sql.NotificationRow[] };
      }),
    );
    return result.map(toNotification);
  }

  return {
    /** Idempotent by id: the same id again returns the same notification, counted once. */
    async create(siteId: string, input: NewNotification): Promise<Notification> {
      const row = await createStatement(toCreateInput(siteId, input, input.id ?? randomUUID()));
      if (!row) throw conflictAt('/id');
      return toNotification(row);
    },

    /** All or nothing: one transaction, one insert statement. */
    createMany,

    async list(
      siteId: string,
      userId: string,
      query: { status: sql.Status; category?: string | undefined; cursor?: number | undefined; limit: number },
    ): Promise<Page> {
      const result = await db.query<sql.NotificationRow & { seq: number }>(sql.selectPage(query.status), [
        siteId,
        userId,
        query.category ?? null,
        query.cursor ?? null,
        query.limit + 1,
      ]);
      const rows = result.rows.slice(0, query.limit);
      const last = rows[rows.length - 1];
      return {
        items: rows.map(toNotification),
        nextCursor: result.rows.length > query.limit && last ? encodeCursor(Number(last.seq)) : null,
      };
    },

    count: (siteId: string, userId: string): Promise<UnreadValue> => counter.read(siteId, userId),

    async markRead(siteId: string, id: string, scope: Scope) {
      const { row, count } = await changeById(siteId, id, scope, markReadStatement);
      return { changed: Number(row.changed) > 0, unread: count.unread };
    },

    async markUnread(siteId: string, id: string, scope: Scope) {
      const { row, count } = await changeById(siteId, id, scope, markUnreadStatement);
      return { changed: Number(row.changed) > 0, unread: count.unread };
    },

    async remove(siteId: string, id: string, scope: Scope) {
      const { row, count } = await changeById(siteId, id, scope, deleteStatement);
      if (Number(row.deleted) > 0) owners.delete(`${siteId}\n${id}`);
      return { deleted: Number(row.deleted) > 0, unread: count.unread };
    },

    async markAllRead(siteId: string, userId: string, options: { category?: string | undefined; before?: string | undefined }) {
      const keys = counter.keysOf(siteId, userId);
      const key = refKey(siteId, userId);
      const { result: row, finished } = await counter.change([{ siteId, userId }], async () => {
        const result = await db.query<ChangeRow>(sql.MARK_ALL_READ, [
          siteId,
          userId,
          keys.buffer.name,
          options.category ?? null,
          options.before ?? null,
        ]);
        const row = result.rows[0] as ChangeRow;
        return { result: row, deltas: new Map([[key, -Number(row.changed)]]), durable: new Map([[key, durableOf(row)]]) };
      });
      if (options.before !== undefined && Number(row.found) === 0) {
        throw new TallyError('not_found', 'No notification of this user has the `before` id.', '/before');
      }
      const count = await counter.settle(siteId, userId, finished.get(key));
      return { changed: Number(row.changed), unread: count.unread };
    },
  };
}

/** Groups values by key. */
function groupBy<T, V>(items: readonly T[], keyOf: (item: T) => string, valueOf: (item: T) => V): Map<string, V[]> {
  const groups = new Map<string, V[]>();
  for (const item of items) {
    const list = groups.get(keyOf(item));
    if (list) list.push(valueOf(item));
    else groups.set(keyOf(item), [valueOf(item)]);
  }
  return groups;
}

export type Inbox = ReturnType<typeof createInbox>;
