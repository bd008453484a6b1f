import { randomUUID } from 'node:crypto';
import { TallyError } from '../errors.js';
import type { Db, Prepared, Queryable } from '../storage/db.js';
import type { FinishedInboxChange } from '../storage/inbox-counts.js';
import { type CountsAnswer, type CountsBy, summarize } from './counts-view.js';
import * as sql from './notification-sql.js';
import { createBatcher, retryDeadlocks } from './statement-batch.js';
import {
  addDeltas,
  type CellDelta,
  type CountsValue,
  type Deltas,
  refKey,
  type StatementOutcome,
  type UnreadCounter,
} from './unread-counter.js';

// Notifications, their states (seen, read, archived, expired) and their counts. Every change of a
// notification is one method here, and every one runs its statement through counter.change():
// none can skip the counts.

export interface Notification {
  id: string;
  userId: string;
  title: string;
  body: string;
  category: string | null;
  data: Record<string, unknown>;
  createdAt: string;
  readAt: string | null;
  seenAt: string | null;
  archivedAt: string | null;
  tenant: string | null;
  expiresAt: string | null;
  actionUrl: string | null;
  actions: NotificationAction[];
}

export interface NotificationAction {
  id: string;
  label: string;
  url?: string | undefined;
}

export interface NewNotification {
  id?: string | undefined;
  userId: string;
  title: string;
  body?: string | undefined;
  category?: string | undefined;
  data?: Record<string, unknown> | undefined;
  tenant?: string | undefined;
  /** ISO 8601 time. */
  expiresAt?: string | undefined;
  actionUrl?: string | undefined;
  actions?: NotificationAction[] | undefined;
}

/** What a change answers: the change, and the user's counts right after it. */
export interface ChangeAnswer<C> {
  changed: C;
  unread: number;
  counts: CountsAnswer;
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
    readAt: isoOrNull(row.read_at),
    seenAt: isoOrNull(row.seen_at),
    archivedAt: isoOrNull(row.archived_at),
    tenant: row.tenant,
    expiresAt: isoOrNull(row.expires_at),
    actionUrl: row.action_url,
    actions: row.actions ?? [],
  };
}

const isoOrNull = (value: Date | string | null) => (value === null ? null : iso(value));

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

/** A change statement's row (notification-sql.ts): counts come back as text from PostgreSQL. */
interface ChangeRow {
  found: number | string | null;
  changed: number | string;
  deltas: CellDelta[];
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
  tenant: string | null;
  expiresAt: string | null;
  actionUrl: string | null;
  /** JSON text. */
  actions: string | null;
}

/** A row's state before and after a statement: live (counted), unread, unseen. */
interface Flags {
  ol: boolean;
  ou: boolean;
  os: boolean;
  nl: boolean;
  nu: boolean;
  ns: boolean;
}

/** A row of sql.mutate(): a create's (inserted, the notification) or a mark-read's (found, changed), with its flags. */
type MutateRow = { [K in keyof sql.NotificationRow]: sql.NotificationRow[K] | null } & Flags & {
    inserted: boolean | null;
    found: number | string | null;
    changed: number | string;
  };

/** The change of a row's cell from its flags. */
function cellDelta(siteId: string, userId: string, row: MutateRow): CellDelta {
  const b = (v: boolean) => (v ? 1 : 0);
  return {
    site_id: siteId,
    user_id: userId,
    tenant: row.tenant ?? '',
    category: row.category ?? '',
    ds: b(row.nl && row.ns) - b(row.ol && row.os),
    du: b(row.nl && row.nu) - b(row.ol && row.ou),
    dt: b(row.nl) - b(row.ol),
  };
}

type Mutation = { kind: 'create'; input: CreateInput } | { kind: 'read'; input: ByIdInput };
type MutationResult = { kind: 'create'; row: sql.NotificationRow | null } | { kind: 'read'; outcome: ByIdOutcome };

const OWNER_CACHE_SIZE = 50_000;
/** Batched statements in flight at once per batcher (mutations, owner lookups; the pool has 10 connections), and their size. */
const BATCH = { parallel: 2, max: 256 };

/** A by-id change's statement, for the notification's owner. */
interface ByIdInput {
  siteId: string;
  id: string;
  userId: string;
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
    tenant: input.tenant ?? null,
    expiresAt: input.expiresAt ?? null,
    actionUrl: input.actionUrl ?? null,
    actions: input.actions ? JSON.stringify(input.actions) : null,
  };
}

/** `before` as a time when it is an ISO 8601 date-time, else a notification id. */
export function parseBefore(before: string | undefined): { id: string | null; time: string | null } {
  if (before === undefined) return { id: null, time: null };
  const isTime =
    /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$/.test(before) && !Number.isNaN(Date.parse(before));
  return isTime ? { id: null, time: new Date(before).toISOString() } : { id: before, time: null };
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

  /** A by-id change of one notification as its own statement. */
  const single =
    (statement: Prepared) =>
    async (input: ByIdInput): Promise<ByIdOutcome> => {
      const key = refKey(input.siteId, input.userId);
      const { result: row, finished } = await counter.change([input], async () => {
        const row = (await retryDeadlocks(() => db.query<ChangeRow>(statement, [input.siteId, input.userId, input.id])))
          .rows[0] as ChangeRow;
        return { result: row, deltas: addDeltas(new Map(), row.deltas) };
      });
      return { row, state: finished.get(key) };
    };

  const byIdStatements = {
    seen: single(sql.changeOne('seen')),
    unread: single(sql.changeOne('unread')),
    archive: single(sql.changeOne('archive')),
    unarchive: single(sql.changeOne('unarchive')),
    delete: single(sql.DELETE_ONE),
  };

  /** Runs a by-id change for the notification's owner; answers its row and the owner's counts after it. */
  async function changeById(siteId: string, id: string, scope: Scope, statement: (input: ByIdInput) => Promise<ByIdOutcome>) {
    for (const cached of [true, false]) {
      const userId = scope.userId ?? (await ownerOf(siteId, id, cached));
      if (userId === null) throw notFound();
      const { row, state } = await statement({ siteId, id, userId });
      if (Number(row.found) === 0) {
        if (scope.userId === undefined && cached) continue;
        throw notFound();
      }
      const value = await counter.settle(siteId, userId, state);
      return { row, value };
    }
    throw notFound();
  }

  /**
   * Creates and mark-reads as ONE statement (sql.mutate), with each user's deltas from the rows it
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
            creates.map((i) => i.tenant),
            creates.map((i) => i.title),
            creates.map((i) => i.body),
            creates.map((i) => i.data),
            creates.map((i) => i.expiresAt),
            creates.map((i) => i.actionUrl),
            creates.map((i) => i.actions),
          ]
        : []),
      ...(reads.length > 0 ? [reads.map((i) => i.siteId), reads.map((i) => i.id), reads.map((i) => i.userId)] : []),
    ]);
    const created = result.rows.slice(0, creates.length);
    const read = result.rows.slice(creates.length);
    const cells: CellDelta[] = [];
    // An id twice in a batch is one notification, inserted (or read) once: the first request
    // gets the change.
    const seen = new Set<string>();
    const count = (input: { siteId: string; userId: string }, change: string, row: MutateRow) => {
      const first = !seen.has(change);
      seen.add(change);
      if (first) cells.push(cellDelta(input.siteId, input.userId, row));
      return first;
    };
    creates.forEach((input, i) => {
      const row = created[i] as MutateRow;
      if (row.inserted) count(input, `c\n${input.siteId}\n${input.id}`, row);
    });
    read.forEach((row, i) => {
      const input = reads[i] as ByIdInput;
      if (Number(row.changed) > 0 && !count(input, `r\n${refKey(input.siteId, input.userId)}\n${input.id}`, row)) row.changed = 0;
    });
    return { result: { created, read }, deltas: addDeltas(new Map(), cells) };
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
      return {
        kind: 'read',
        outcome: {
          row: { found: row.found, changed: row.changed, deltas: [] },
          state: finished.get(refKey(m.input.siteId, m.input.userId)),
        },
      };
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

  /** A change of several rows of one user (one statement), answered with the user's counts after it. */
  async function changeMany(siteId: string, userId: string, text: string | Prepared, params: unknown[]) {
    const key = refKey(siteId, userId);
    const { result: row, finished } = await counter.change([{ siteId, userId }], async () => {
      const row = (await retryDeadlocks(() => db.query<ChangeRow>(text, [siteId, userId, ...params]))).rows[0] as ChangeRow;
      return { result: row, deltas: addDeltas(new Map(), row.deltas) };
    });
    return { row, value: await counter.settle(siteId, userId, finished.get(key)) };
  }

  const answer = <C>(changed: C, value: CountsValue): ChangeAnswer<C> => {
    const counts = summarize(value.counts);
    return { changed, unread: counts.unread, counts };
  };

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
      query: {
        status: sql.Status;
        category?: string | undefined;
        tenant?: string | undefined;
        cursor?: number | undefined;
        limit: number;
      },
    ): Promise<Page> {
      const result = await db.query<sql.NotificationRow & { seq: number }>(sql.selectPage(query.status), [
        siteId,
        userId,
        query.category ?? null,
        query.tenant ?? null,
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

    /** The user's counts (within a tenant, broken down by category or tenant) and their version. */
    async counts(
      siteId: string,
      userId: string,
      options: { tenant?: string | undefined; by?: CountsBy | undefined } = {},
    ): Promise<CountsAnswer & { version: number }> {
      const value = await counter.read(siteId, userId);
      return { ...summarize(value.counts, options), version: value.version };
    },

    /** seen, read, unread, archive or unarchive of one notification. */
    async change(siteId: string, id: string, scope: Scope, action: sql.Action): Promise<ChangeAnswer<boolean>> {
      const statement = action === 'read' ? markReadStatement : byIdStatements[action];
      const { row, value } = await changeById(siteId, id, scope, statement);
      return answer(Number(row.changed) > 0, value);
    },

    async remove(siteId: string, id: string, scope: Scope) {
      const { row, value } = await changeById(siteId, id, scope, byIdStatements.delete);
      const deleted = Number(row.changed) > 0;
      if (deleted) owners.delete(`${siteId}\n${id}`);
      const { changed: _, ...rest } = answer(deleted, value);
      return { deleted, ...rest };
    },

    /** An action button clicked: recorded, and the notification marked read. */
    async clickAction(siteId: string, id: string, actionId: string, scope: Scope): Promise<ChangeAnswer<boolean>> {
      let hasAction = true;
      const click = async (input: ByIdInput): Promise<ByIdOutcome> => {
        const key = refKey(input.siteId, input.userId);
        const { result: row, finished } = await counter.change([input], async () => {
          const row = (
            await db.query<ChangeRow & { has_action: string }>(sql.CLICK_ACTION, [input.siteId, input.userId, input.id, actionId])
          ).rows[0] as ChangeRow & { has_action: string };
          return { result: row, deltas: addDeltas(new Map(), row.deltas) };
        });
        hasAction = Number(row.has_action) > 0;
        return { row, state: finished.get(key) };
      };
      const { row, value } = await changeById(siteId, id, scope, click);
      if (!hasAction) throw new TallyError('not_found', 'The notification has no action with this id.', '/actionId');
      return answer(Number(row.changed) > 0, value);
    },

    /** seen-all, read-all, archive-all: the user's live notifications matching the filters. */
    async changeAll(
      siteId: string,
      userId: string,
      action: 'seen' | 'read' | 'archive',
      options: { category?: string | undefined; tenant?: string | undefined; before?: string | undefined },
    ): Promise<ChangeAnswer<number>> {
      const before = parseBefore(options.before);
      const { row, value } = await changeMany(siteId, userId, sql.changeFiltered(action), [
        options.category ?? null,
        options.tenant ?? null,
        before.id,
        before.time,
      ]);
      if (before.id !== null && Number(row.found) === 0) {
        throw new TallyError('not_found', 'No notification of this user has the `before` id.', '/before');
      }
      return answer(Number(row.changed), value);
    },

    /** One action on a list of the user's notifications (ids of other users' are skipped). */
    async bulk(siteId: string, userId: string, ids: readonly string[], action: sql.Action | 'delete'): Promise<ChangeAnswer<number>> {
      const text = action === 'delete' ? sql.DELETE_IDS : sql.changeIds(action);
      const { row, value } = await changeMany(siteId, userId, text, [ids]);
      if (action === 'delete') for (const id of ids) owners.delete(`${siteId}\n${id}`);
      return answer(Number(row.changed), value);
    },

    /**
     * Applies up to `limit` passed expiries, of any site, as one change (one statement): each
     * expired row leaves its user's counts. Returns how many rows expired.
     */
    async expire(limit: number): Promise<number> {
      const due = await db.query<{ site_id: string; id: string; user_id: string }>(sql.SELECT_EXPIRED, [limit]);
      if (due.rows.length === 0) return 0;
      const users = due.rows.map((row) => ({ siteId: row.site_id, userId: row.user_id }));
      const { result } = await counter.change(users, async () => {
        const row = (
          await retryDeadlocks(() =>
            db.query<{ changed: string; deltas: CellDelta[] }>(sql.EXPIRE, [
              due.rows.map((r) => r.site_id),
              due.rows.map((r) => r.id),
              due.rows.map((r) => r.user_id),
            ]),
          )
        ).rows[0] as { changed: string; deltas: CellDelta[] };
        return { result: Number(row.changed), deltas: addDeltas(new Map(), row.deltas) as Deltas };
      });
      return result;
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
