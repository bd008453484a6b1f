import { randomUUID } from 'node:crypto';
import { TallyError } from '../errors.js';
import type { Db, Prepared, Queryable } from '../storage/db.js';
import type { FinishedInboxChange } from '../storage/inbox-counts.js';
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
const conflictAt = (path: string) => new TallyError('conflict', 'That id belongs to a notification of another user.', path);

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

/** A row of sql.mutate(): a create's (inserted, the notification) or a mark-read's (found, changed). */
type MutateRow = ChangeRow & { [K in keyof sql.NotificationRow]: sql.NotificationRow[K] | null } & { inserted: boolean | null };

type Mutation = { kind: 'create'; input: CreateInput } | { kind: 'read'; input: ByIdInput };
type MutationResult = { kind: 'create'; row: sql.NotificationRow | null } | { kind: 'read'; outcome: ByIdOutcome };

const OWNER_CACHE_SIZE = 50_000;
/** Batched statements in flight at once per batcher (mutations, owner lookups; the pool has 10 connections), and their size. */
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
  const single =
    (statement: Prepared, sign: 1 | -1) =>
    async (input: ByIdInput): Promise<ByIdOutcome> => {
      const key = refKey(input.siteId, input.userId);
      const { result: row, finished } = await counter.change([input], async () => {
        const row = (await db.query<ChangeRow>(statement, [input.siteId, input.id, input.userId, input.buffer])).rows[0] as ChangeRow;
        return { result: row, deltas: new Map([[key, sign * Number(row.changed)]]), durable: new Map([[key, durableOf(row)]]) };
      });
      return { row, state: finished.get(key) };
    };

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

  /**
   * Creates and mark-reads as ONE statement (sql.mutate), with each user's delta from the rows it
   * inserted and changed.
   */
  async function mutateStatement(
    run: Queryable,
    creates: readonly CreateInput[],
    reads: readonly ByIdInput[],
  ): Promise<StatementOutcome<{ created: MutateRow[]; read: MutateRow[] }>> {
    const result = await run.query<MutateRow>(sql.mutate(creates.length > 0, reads.length > 0), [
      ...(creates.length > 0
        ? [
            creates.map((i) => i.siteId),
            creates.map((i) => i.id),
            creates.map((i) => i.userId),
            creates.map((i) => i.category),
            creates.map((i) => i.title),
            creates.map((i) => i.body),
            creates.map((i) => i.data),
            creates.map((i) => counter.keysOf(i.siteId, i.userId).buffer.name),
          ]
        : []),
      ...(reads.length > 0
        ? [reads.map((i) => i.siteId), reads.map((i) => i.id), reads.map((i) => i.userId), reads.map((i) => i.buffer)]
        : []),
    ]);
    const created = result.rows.slice(0, creates.length);
    const read = result.rows.slice(creates.length);
    const deltas = new Map<string, number>();
    const durable = new Map<string, DurableCount>();
    // An id twice in a batch is one notification, inserted (or read) once: the first request
    // gets the change.
    const seen = new Set<string>();
    const count = (input: { siteId: string; userId: string }, change: string, row: MutateRow, delta: number) => {
      const key = refKey(input.siteId, input.userId);
      durable.set(key, durableOf(row));
      const first = !seen.has(change);
      seen.add(change);
      if (first && delta !== 0) deltas.set(key, (deltas.get(key) ?? 0) + delta);
      return first;
    };
    creates.forEach((input, i) => {
      const row = created[i] as MutateRow;
      count(input, `c\n${input.siteId}\n${input.id}`, row, row.inserted ? 1 : 0);
    });
    read.forEach((row, i) => {
      const input = reads[i] as ByIdInput;
      if (!count(input, `r\n${refKey(input.siteId, input.userId)}\n${input.id}`, row, -Number(row.changed))) row.changed = 0;
    });
    return { result: { created, read }, deltas, durable };
  }

  /** Per create, its notification, or null when the id belongs to another user's notification. */
  async function notificationsOf(run: Queryable, inputs: readonly CreateInput[], rows: readonly MutateRow[]) {
    // A notification that committed after the statement's snapshot: read it now (no count change).
    const late = new Map<string, sql.NotificationRow>();
    for (const [siteId, ids] of groupBy(
      inputs.filter((_, i) => rows[i]?.id == null),
      (i) => i.siteId,
      (i) => i.id,
    )) {
      for (const row of (await run.query<sql.NotificationRow>(sql.SELECT_BY_IDS, [siteId, ids])).rows)
        late.set(`${siteId}\n${row.id}`, row);
    }
    return inputs.map((input, i): sql.NotificationRow | null => {
      const found = rows[i];
      const row = found?.id != null ? (found as sql.NotificationRow) : late.get(`${input.siteId}\n${input.id}`);
      // Same id again is the same notification (idempotent); for another user it is a conflict.
      if (!row || row.user_id !== input.userId) return null;
      remember(input.siteId, row.id, row.user_id);
      return row;
    });
  }

  /** Runs creates and mark-reads as one change of their users' counts. */
  async function mutate(mutations: readonly Mutation[]): Promise<MutationResult[]> {
    const creates: CreateInput[] = [];
    const reads: ByIdInput[] = [];
    for (const m of mutations) {
      if (m.kind === 'create') creates.push(m.input);
      else reads.push(m.input);
    }
    const { result, finished } = await counter.change([...creates, ...reads], () => mutateStatement(db, creates, reads));
    const notifications = await notificationsOf(db, creates, result.created);
    let c = 0;
    let r = 0;
    return mutations.map((m): MutationResult => {
      if (m.kind === 'create') return { kind: 'create', row: notifications[c++] ?? null };
      const row = result.read[r++] as MutateRow;
      return { kind: 'read', outcome: { row, state: finished.get(refKey(m.input.siteId, m.input.userId)) } };
    });
  }

  // Creates and mark-reads, the busy changes, run batched: for all the requests that arrived
  // together, one intent script per buffer shard, ONE conditional statement (its affected rows
  // are still exactly the deltas) and one commit, one finish script per buffer shard.
  const mutation = createBatcher<Mutation, MutationResult>({
    ...BATCH,
    one: async (m) => (await mutate([m]))[0] as MutationResult,
    many: mutate,
  });

  async function markReadStatement(input: ByIdInput): Promise<ByIdOutcome> {
    const result = await mutation({ kind: 'read', input });
    if (result.kind !== 'read') throw new Error('a mark-read answered as a create');
    return result.outcome;
  }

  async function createMany(siteId: string, inputs: readonly NewNotification[]): Promise<Notification[]> {
    const creates = inputs.map((n) => toCreateInput(siteId, n, n.id ?? randomUUID()));
    const { result } = await counter.change(creates, () =>
      db.transaction(async (tx) => {
        const outcome = await mutateStatement(tx, creates, []);
        const rows = await notificationsOf(tx, creates, outcome.result.created);
        const conflict = rows.indexOf(null);
        if (conflict >= 0) throw conflictAt(`/notifications/${conflict}/id`);
        return { ...outcome, result: rows as sql.NotificationRow[] };
      }),
    );
    return result.map(toNotification);
  }

  return {
    /** Idempotent by id: the same id again returns the same notification, counted once. */
    async create(siteId: string, input: NewNotification): Promise<Notification> {
      const result = await mutation({ kind: 'create', input: toCreateInput(siteId, input, input.id ?? randomUUID()) });
      if (result.kind !== 'create') throw new Error('a create answered as a mark-read');
      if (!result.row) throw conflictAt('/id');
      return toNotification(result.row);
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

    /** One notification, if it exists and the scope's user (when there is one) owns it. */
    async get(siteId: string, id: string, scope: Scope): Promise<Notification> {
      const row = (await db.query<sql.NotificationRow>(sql.SELECT_BY_IDS, [siteId, [id]])).rows[0];
      if (!row || (scope.userId !== undefined && row.user_id !== scope.userId)) throw notFound();
      return toNotification(row);
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
function groupBy<T, V>(items: readonly T[], keyOf: (item: T) => string, valueFor: (item: T) => V): Map<string, V[]> {
  const groups = new Map<string, V[]>();
  for (const item of items) {
    const list = groups.get(keyOf(item));
    if (list) list.push(valueFor(item));
    else groups.set(keyOf(item), [valueFor(item)]);
  }
  return groups;
}

export type Inbox = ReturnType<typeof createInbox>;
