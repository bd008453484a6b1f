import { randomUUID } from 'node:crypto';
import { TallyError } from '../errors.js';
import type { Db } from '../storage/db.js';
import * as sql from './notification-sql.js';
import { createBatcher } from './statement-batch.js';
import { durableOf, type UnreadCounter, type UnreadValue } from './unread-counter.js';

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

  const single = (statement: string) => async (input: ByIdInput) =>
    (await db.query<ChangeRow>(statement, [input.siteId, input.id, input.userId, input.buffer])).rows[0] as ChangeRow;

  // Mark-read, the busiest change, runs batched; a batch is one conditional statement, so its
  // affected rows are still exactly the deltas, and each request's intent began before it.
  const markReadStatement = createBatcher<ByIdInput, ChangeRow>({
    ...BATCH,
    one: single(sql.MARK_READ),
    many: async (inputs) => {
      const result = await db.query<ChangeRow>(sql.MARK_READ_MANY, [
        inputs.map((i) => i.siteId),
        inputs.map((i) => i.id),
        inputs.map((i) => i.userId),
        inputs.map((i) => i.buffer),
      ]);
      // The same notification twice in a batch changed once: the first request gets the change.
      const seen = new Set<string>();
      return result.rows.map((row, i) => {
        const input = inputs[i] as ByIdInput;
        const key = `${input.siteId}\n${input.id}\n${input.userId}`;
        if (seen.has(key)) return { ...row, changed: 0 };
        seen.add(key);
        return row;
      });
    },
  });

  const markUnreadStatement = single(sql.MARK_UNREAD);
  const deleteStatement = single(sql.DELETE_ONE);

  /** Runs a by-id change (read, unread, delete) for the notification's owner; sign: +1 when rows become unread. */
  async function changeById(siteId: string, id: string, scope: Scope, statement: (input: ByIdInput) => Promise<ChangeRow>, sign: 1 | -1) {
    for (const cached of [true, false]) {
      const userId = scope.userId ?? (await ownerOf(siteId, id, cached));
      if (userId === null) throw notFound();
      const keys = counter.keysOf(siteId, userId);
      const { result: row, finished } = await counter.change(siteId, [userId], async () => {
        const row = await statement({ siteId, id, userId, buffer: keys.buffer.name });
        return { result: row, deltas: new Map([[userId, sign * Number(row.changed)]]) };
      });
      if (Number(row.found) === 0) {
        if (scope.userId === undefined && cached) continue;
        throw notFound();
      }
      const count = await counter.settle(siteId, userId, durableOf(row), finished.get(userId));
      return { row, count };
    }
    throw notFound();
  }

  async function createMany(siteId: string, inputs: readonly NewNotification[]): Promise<Notification[]> {
    const ids = inputs.map((n) => n.id ?? randomUUID());
    const userIds = inputs.map((n) => n.userId);
    const { result } = await counter.change(siteId, userIds, () =>
      db.transaction(async (tx) => {
        const inserted = await tx.query<sql.NotificationRow>(sql.INSERT_MANY, [
          siteId,
          ids,
          userIds,
          inputs.map((n) => n.category ?? null),
          inputs.map((n) => n.title),
          inputs.map((n) => n.body ?? ''),
          inputs.map((n) => JSON.stringify(n.data ?? {})),
        ]);
        const byId = new Map(inserted.rows.map((row) => [row.id, row]));
        const deltas = new Map<string, number>();
        for (const row of inserted.rows) deltas.set(row.user_id, (deltas.get(row.user_id) ?? 0) + 1);
        const missing = ids.filter((id) => !byId.has(id));
        if (missing.length > 0) {
          const existing = await tx.query<sql.NotificationRow>(sql.SELECT_BY_IDS, [siteId, missing]);
          for (const row of existing.rows) byId.set(row.id, row);
        }
        const rows = ids.map((id, i) => {
          const row = byId.get(id);
          // Same id again is the same notification (idempotent); for another user it is a conflict.
          if (!row || row.user_id !== userIds[i]) throw conflictAt(`/notifications/${i}/id`);
          return row;
        });
        return { result: rows, deltas };
      }),
    );
    return result.map((row) => {
      remember(siteId, row.id, row.user_id);
      return toNotification(row);
    });
  }

  return {
    /** Idempotent by id: the same id again returns the same notification, counted once. */
    async create(siteId: string, input: NewNotification): Promise<Notification> {
      const id = input.id ?? randomUUID();
      const { result: row } = await counter.change(siteId, [input.userId], async () => {
        const params = [siteId, id, input.userId, input.category ?? null, input.title, input.body ?? '', JSON.stringify(input.data ?? {})];
        const inserted = await db.query<sql.NotificationRow>(sql.INSERT_ONE, params);
        const row = inserted.rows[0] ?? (await db.query<sql.NotificationRow>(sql.SELECT_BY_IDS, [siteId, [id]])).rows[0];
        if (!row || row.user_id !== input.userId) throw conflictAt('/id');
        return { result: row, deltas: new Map([[input.userId, inserted.rows.length]]) };
      });
      remember(siteId, row.id, row.user_id);
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
      const { row, count } = await changeById(siteId, id, scope, markReadStatement, -1);
      return { changed: Number(row.changed) > 0, unread: count.unread };
    },

    async markUnread(siteId: string, id: string, scope: Scope) {
      const { row, count } = await changeById(siteId, id, scope, markUnreadStatement, 1);
      return { changed: Number(row.changed) > 0, unread: count.unread };
    },

    async remove(siteId: string, id: string, scope: Scope) {
      const { row, count } = await changeById(siteId, id, scope, deleteStatement, -1);
      if (Number(row.deleted) > 0) owners.delete(`${siteId}\n${id}`);
      return { deleted: Number(row.deleted) > 0, unread: count.unread };
    },

    async markAllRead(siteId: string, userId: string, options: { category?: string | undefined; before?: string | undefined }) {
      const keys = counter.keysOf(siteId, userId);
      const { result: row, finished } = await counter.change(siteId, [userId], async () => {
        const result = await db.query<ChangeRow>(sql.MARK_ALL_READ, [
          siteId,
          userId,
          keys.buffer.name,
          options.category ?? null,
          options.before ?? null,
        ]);
        const row = result.rows[0] as ChangeRow;
        return { result: row, deltas: new Map([[userId, -Number(row.changed)]]) };
      });
      if (options.before !== undefined && Number(row.found) === 0) {
        throw new TallyError('not_found', 'No notification of this user has the `before` id.', '/before');
      }
      const count = await counter.settle(siteId, userId, durableOf(row), finished.get(userId));
      return { changed: Number(row.changed), unread: count.unread };
    },
  };
}

export type Inbox = ReturnType<typeof createInbox>;
