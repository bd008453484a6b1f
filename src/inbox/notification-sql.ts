import { type Prepared, prepared } from '../storage/db.js';

// The inbox's SQL, one statement per operation. A row counts ("live") while it is not archived,
// expired or muted; a live row counts in its cell (tenant, category) as total, unread (read_at
// IS NULL) and unseen (seen_at IS NULL). Every statement that changes rows returns, per cell of
// each user, the change of those three counts computed from the rows it changed: their state
// before (locked with FOR UPDATE, so a concurrent change is seen, not overwritten) and after.
// Statements are conditional (`read_at IS NULL`, …), so racing requests change a row once and
// count it once. Rows are locked in id order, so statements changing several rows wait for each
// other instead of deadlocking (a deadlock left is retried: retryDeadlocks). The statements run per request are prepared (src/storage/db.ts); those whose
// best plan depends on which optional filters are null (the *-all filters, listings) are planned
// for their parameters each time.

const COLUMNS =
  'id, user_id, category, tenant, title, body, data, created_at, read_at, seen_at, archived_at, expires_at, action_url, actions';

export interface NotificationRow {
  id: string;
  user_id: string;
  category: string | null;
  tenant: string | null;
  title: string;
  body: string;
  data: Record<string, unknown>;
  created_at: Date | string;
  read_at: Date | string | null;
  seen_at: Date | string | null;
  archived_at: Date | string | null;
  expires_at: Date | string | null;
  action_url: string | null;
  actions: { id: string; label: string; url?: string }[] | null;
}

/** A row is counted while this holds (alias a). */
const live = (a: string) => `(${a}.archived_at IS NULL AND NOT ${a}.expired AND NOT ${a}.muted)`;
const OLD_FLAGS = (a: string) => `${live(a)} AS ol, ${a}.read_at IS NULL AS ou, ${a}.seen_at IS NULL AS os`;
const NEW_FLAGS = (a: string) => `${live(a)} AS nl, ${a}.read_at IS NULL AS nu, ${a}.seen_at IS NULL AS ns`;
/** What a changed row returns: its user and cell, its state before (CTE o) and after. */
const CHANGED = (a: string) => `${a}.site_id, ${a}.id, ${a}.user_id, ${a}.tenant, ${a}.category, o.ol, o.ou, o.os, ${NEW_FLAGS(a)}`;

/**
 * The column `deltas`: a JSON array of the cells (site_id, user_id, tenant, category) whose counts
 * the rows of CTE `x` changed, with the changes ds (unseen), du (unread) and dt (total).
 */
const deltaCells = (x: string) => `(SELECT coalesce(jsonb_agg(d), '[]'::jsonb) FROM (
    SELECT site_id, user_id, coalesce(tenant, '') AS tenant, coalesce(category, '') AS category,
      sum((nl AND ns)::int - (ol AND os)::int) AS ds, sum((nl AND nu)::int - (ol AND ou)::int) AS du,
      sum(nl::int - ol::int) AS dt
    FROM ${x} GROUP BY 1, 2, 3, 4) d) AS deltas`;

// A create's notification: the one it inserted (i), else the one already there (n).
const picked = COLUMNS.split(', ')
  .map((c) => `CASE WHEN i.id IS NOT NULL THEN i.${c} ELSE n.${c} END AS ${c}`)
  .join(', ');

/** Muted when the user (else the site's default) has the category's in-app channel off (alias c: site_id, user_id, category). */
const MUTED = `NOT coalesce(
    (SELECT p.in_app FROM inbox_preferences p WHERE p.site_id = c.site_id AND p.user_id = c.user_id AND p.category = c.category),
    (SELECT d.in_app FROM inbox_preference_defaults d WHERE d.site_id = c.site_id AND d.category = c.category), true)`;

/**
 * Creates and mark-reads of several requests (even of several sites) as ONE statement: one
 * round trip and one commit for all the requests that arrived together. Built for the kinds the
 * batch has (a part for a kind it lacks would still cost PostgreSQL planning and running).
 * Creates, arrays in input order ($1–$11): sites, ids, users, categories, tenants, titles,
 * bodies, data (JSON text), expiries (ISO text), action URLs, actions (JSON text). Mark-reads,
 * after them ($12–$14, or $1–$3 without creates): sites, ids, users (the owners).
 * One row per input, creates (`kind` 'c') then mark-reads ('r'), each in input order. A create:
 * `inserted`, and the notification (the one inserted, or the one already there under that id:
 * an idempotent repeat or a conflict; none when it committed after this statement's snapshot).
 * A mark-read: `found`, `changed`, and the row's tenant and category. Both: the row's state
 * before (ol, ou, os) and after (nl, nu, ns) this statement. A mark-read does not see a
 * notification the same statement creates (as if it ran first). An id repeated in the batch is
 * inserted, or changed, once and shows so on each repeat: the caller keeps it for the first only.
 */
export function mutate(creates: boolean, reads: boolean): Prepared {
  return MUTATE[creates ? (reads ? 'both' : 'creates') : 'reads'];
}

function mutateText(creates: boolean, reads: boolean): string {
  const at = creates ? 12 : 1;
  const ctes: string[] = [];
  const parts: string[] = [];
  if (creates) {
    ctes.push(
      `c AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
          $9::text[], $10::text[], $11::text[])
        WITH ORDINALITY AS c(site_id, id, user_id, category, tenant, title, body, data, expires_at, action_url, actions, ord))`,
      `i AS (INSERT INTO notifications (site_id, id, user_id, category, tenant, title, body, data, expires_at, action_url, actions, muted, expired)
        SELECT site_id, id, user_id, category, tenant, title, body, data::jsonb, expires_at::timestamptz, action_url, actions::jsonb,
          ${MUTED}, coalesce(expires_at::timestamptz <= now(), false)
        FROM c ORDER BY ord
        ON CONFLICT (site_id, id) DO NOTHING
        RETURNING site_id, ${COLUMNS}, ${NEW_FLAGS('notifications')})`,
    );
    parts.push(`SELECT 'c' AS kind, c.ord, i.id IS NOT NULL AS inserted, NULL::int8 AS found, NULL::int8 AS changed, ${picked},
      false AS ol, false AS ou, false AS os, coalesce(i.nl, false) AS nl, coalesce(i.nu, false) AS nu, coalesce(i.ns, false) AS ns
    FROM c LEFT JOIN i ON i.site_id = c.site_id AND i.id = c.id
      LEFT JOIN notifications n ON i.id IS NULL AND n.site_id = c.site_id AND n.id = c.id`);
  }
  if (reads) {
    ctes.push(
      `r AS (SELECT * FROM unnest($${at}::text[], $${at + 1}::text[], $${at + 2}::text[]) WITH ORDINALITY AS r(site_id, id, user_id, ord))`,
      `o AS (SELECT n.site_id, n.id, ${OLD_FLAGS('n')} FROM notifications n
        WHERE n.read_at IS NULL AND (n.site_id, n.id, n.user_id) IN (SELECT site_id, id, user_id FROM r)
        ORDER BY n.site_id, n.id FOR UPDATE)`,
      `x AS (UPDATE notifications n SET read_at = now(), seen_at = coalesce(n.seen_at, now()) FROM o
        WHERE n.site_id = o.site_id AND n.id = o.id
        RETURNING ${CHANGED('n')})`,
    );
    const nulls = COLUMNS.split(', ')
      .map((c) => (c === 'tenant' || c === 'category' ? `x.${c}` : `NULL AS ${c}`))
      .join(', ');
    parts.push(`SELECT 'r' AS kind, r.ord, NULL::boolean AS inserted,
      (SELECT count(*) FROM notifications n WHERE n.site_id = r.site_id AND n.id = r.id AND n.user_id = r.user_id) AS found,
      (x.id IS NOT NULL)::int::int8 AS changed, ${nulls},
      coalesce(x.ol, false) AS ol, coalesce(x.ou, false) AS ou, coalesce(x.os, false) AS os,
      coalesce(x.nl, false) AS nl, coalesce(x.nu, false) AS nu, coalesce(x.ns, false) AS ns
    FROM r LEFT JOIN x ON x.site_id = r.site_id AND x.id = r.id AND x.user_id = r.user_id`);
  }
  return `WITH ${ctes.join(',\n  ')}\n  ${parts.join('\n  UNION ALL\n  ')}\n  ORDER BY kind, ord`;
}

const MUTATE = {
  creates: prepared('inbox_mutate_c', mutateText(true, false)),
  reads: prepared('inbox_mutate_r', mutateText(false, true)),
  both: prepared('inbox_mutate_cr', mutateText(true, true)),
};

/** $1 site, $2 ids. */
export const SELECT_BY_IDS = `SELECT ${COLUMNS} FROM notifications WHERE site_id = $1 AND id = ANY($2::text[])`;

/** $1 site, $2 id. */
export const SELECT_OWNER = prepared('inbox_owner', 'SELECT user_id FROM notifications WHERE site_id = $1 AND id = $2');

/** Several lookups at once: arrays $1 sites, $2 ids; one row per input, in order (user_id null: none). */
export const SELECT_OWNERS = prepared(
  'inbox_owners',
  `SELECT t.ord, n.user_id
  FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(site_id, id, ord)
  LEFT JOIN notifications n ON n.site_id = t.site_id AND n.id = t.id
  ORDER BY t.ord`,
);

export const STATUSES = ['unread', 'unseen', 'read', 'all', 'archived'] as const;
export type Status = (typeof STATUSES)[number];

const STATUS_FILTER: Record<Status, string> = {
  unread: `${live('n')} AND n.read_at IS NULL`,
  unseen: `${live('n')} AND n.seen_at IS NULL`,
  read: `${live('n')} AND n.read_at IS NOT NULL`,
  all: live('n'),
  archived: 'n.archived_at IS NOT NULL AND NOT n.expired AND NOT n.muted',
};

/** $1 site, $2 user, $3 category or null, $4 tenant or null, $5 cursor seq or null, $6 limit. Also returns seq. */
export function selectPage(status: Status): string {
  return `SELECT ${COLUMNS}, seq FROM notifications n
    WHERE site_id = $1 AND user_id = $2 AND ${STATUS_FILTER[status]}
      AND ($3::text IS NULL OR category = $3) AND ($4::text IS NULL OR tenant = $4) AND ($5::int8 IS NULL OR seq < $5)
    ORDER BY seq DESC LIMIT $6`;
}

/** A change of state: which rows it changes (besides the target) and what it sets. */
export const ACTIONS = {
  seen: { guard: 'n.seen_at IS NULL', set: 'seen_at = now()' },
  // Reading implies seen.
  read: { guard: 'n.read_at IS NULL', set: 'read_at = now(), seen_at = coalesce(n.seen_at, now())' },
  unread: { guard: 'n.read_at IS NOT NULL', set: 'read_at = NULL' },
  archive: { guard: 'n.archived_at IS NULL', set: 'archived_at = now()' },
  unarchive: { guard: 'n.archived_at IS NOT NULL', set: 'archived_at = NULL' },
} as const;
export type Action = keyof typeof ACTIONS;

/**
 * The rows a change targets, of user $2 of site $1: one id ($3), a list of ids ($3 array), or
 * the user's live rows matching optional filters ($3 category, $4 tenant, $5 `before` id: that
 * notification and older, $6 `before` time: created at or before it).
 */
const TARGETS = {
  one: { where: 'n.id = $3', found: '(SELECT count(*) FROM notifications WHERE site_id = $1 AND id = $3 AND user_id = $2)' },
  ids: { where: 'n.id = ANY($3::text[])', found: 'NULL::int8' },
  filter: {
    where: `${live('n')} AND ($3::text IS NULL OR n.category = $3) AND ($4::text IS NULL OR n.tenant = $4)
      AND ($5::text IS NULL OR n.seq <= (SELECT seq FROM notifications WHERE site_id = $1 AND id = $5 AND user_id = $2))
      AND ($6::timestamptz IS NULL OR n.created_at <= $6)`,
    found: '(SELECT count(*) FROM notifications WHERE site_id = $1 AND id = $5 AND user_id = $2)',
  },
} as const;
export type Target = keyof typeof TARGETS;

/**
 * One change of state as ONE statement: one row with `found` (the `one` target's notification,
 * or the `filter` target's `before` notification, exists for this user), `changed` (rows
 * changed) and `deltas` (deltaCells).
 */
function changeText(action: Action, target: Target): string {
  const { guard, set } = ACTIONS[action];
  const { where, found } = TARGETS[target];
  return `WITH o AS (SELECT n.id, ${OLD_FLAGS('n')} FROM notifications n
      WHERE n.site_id = $1 AND n.user_id = $2 AND ${where} AND ${guard} ORDER BY n.id FOR UPDATE),
    x AS (UPDATE notifications n SET ${set} FROM o WHERE n.site_id = $1 AND n.id = o.id RETURNING ${CHANGED('n')})
  SELECT ${found} AS found, (SELECT count(*) FROM x) AS changed, ${deltaCells('x')}`;
}

function deleteText(target: Exclude<Target, 'filter'>): string {
  const { where, found } = TARGETS[target];
  return `WITH o AS (SELECT n.id, ${OLD_FLAGS('n')} FROM notifications n
      WHERE n.site_id = $1 AND n.user_id = $2 AND ${where} ORDER BY n.id FOR UPDATE),
    x AS (DELETE FROM notifications n USING o WHERE n.site_id = $1 AND n.id = o.id
      RETURNING n.site_id, n.id, n.user_id, n.tenant, n.category, o.ol, o.ou, o.os, false AS nl, false AS nu, false AS ns)
  SELECT ${found} AS found, (SELECT count(*) FROM x) AS changed, ${deltaCells('x')}`;
}

const BY_ID = Object.fromEntries(
  (Object.keys(ACTIONS) as Action[]).map((action) => [action, prepared(`inbox_${action}_one`, changeText(action, 'one'))]),
) as Record<Action, Prepared>;

/** A change of one notification: $1 site, $2 user (the owner), $3 id. */
export const changeOne = (action: Action): Prepared => BY_ID[action];
/** A change of a list of the user's notifications: $1 site, $2 user, $3 ids. */
export const changeIds = (action: Action): string => changeText(action, 'ids');
/** A change of the user's live notifications matching filters: $1–$6 as TARGETS.filter. */
export const changeFiltered = (action: Action): string => changeText(action, 'filter');

export const DELETE_ONE = prepared('inbox_delete', deleteText('one'));
export const DELETE_IDS = deleteText('ids');

/**
 * An action button clicked: records it and marks the notification read (and seen). $1 site, $2
 * user, $3 id, $4 action id. `found` (the notification), `has_action` (it has that action),
 * `changed` (it was unread), `deltas`.
 */
export const CLICK_ACTION = prepared(
  'inbox_click',
  `WITH o AS (SELECT n.id, ${OLD_FLAGS('n')} FROM notifications n
      WHERE n.site_id = $1 AND n.user_id = $2 AND n.id = $3
        AND n.actions @> jsonb_build_array(jsonb_build_object('id', $4::text)) FOR UPDATE),
    x AS (UPDATE notifications n SET clicked_action = $4, clicked_at = now(), read_at = coalesce(n.read_at, now()),
        seen_at = coalesce(n.seen_at, now())
      FROM o WHERE n.site_id = $1 AND n.id = o.id RETURNING ${CHANGED('n')})
  SELECT ${TARGETS.one.found} AS found, (SELECT count(*) FROM x) AS has_action,
    (SELECT count(*) FROM x WHERE ou) AS changed, ${deltaCells('x')}`,
);

/** Rows whose expiry passed and is not applied yet, soonest first: $1 limit. */
export const SELECT_EXPIRED = `SELECT site_id, id, user_id FROM notifications
  WHERE expires_at <= now() AND NOT expired ORDER BY expires_at LIMIT $1`;

/** Applies expiries: arrays $1 sites, $2 ids, $3 their users (rows whose expiry passed). `changed`, `deltas`. */
export const EXPIRE = `WITH o AS (SELECT n.site_id, n.id, ${OLD_FLAGS('n')} FROM notifications n
      WHERE n.expires_at <= now() AND NOT n.expired
        AND (n.site_id, n.id, n.user_id) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))
      ORDER BY n.site_id, n.id FOR UPDATE),
    x AS (UPDATE notifications n SET expired = true FROM o WHERE n.site_id = o.site_id AND n.id = o.id RETURNING ${CHANGED('n')})
  SELECT (SELECT count(*) FROM x) AS changed, ${deltaCells('x')}`;

/**
 * The reconciler's view of one user, in one snapshot: $1 site, $2 user, $3 buffer name. Rows of
 * `src` 'rows' (counted from the notifications) and 'durable' (inbox_counts) per cell, and one
 * 'seq' row whose `unseen` is the buffer's last applied batch.
 */
export const TRUE_AND_DURABLE = `SELECT 'rows' AS src, coalesce(tenant, '') AS tenant, coalesce(category, '') AS category,
    count(*) FILTER (WHERE seen_at IS NULL) AS unseen, count(*) FILTER (WHERE read_at IS NULL) AS unread, count(*) AS total
  FROM notifications n WHERE site_id = $1 AND user_id = $2 AND ${live('n')} GROUP BY 2, 3
  UNION ALL
  SELECT 'durable', tenant, category, unseen, unread, total FROM inbox_counts WHERE site_id = $1 AND user_id = $2
  UNION ALL
  SELECT 'seq', '', '', coalesce((SELECT last_seq FROM flush_state WHERE buffer = $3), 0), 0, 0`;

/** Every user of a site whose durable counts differ from its rows: $1 site. */
export const DURABLE_MISMATCHES = `WITH d AS (SELECT user_id, tenant, category, unseen, unread, total FROM inbox_counts
    WHERE site_id = $1 AND (unseen <> 0 OR unread <> 0 OR total <> 0)),
  t AS (SELECT user_id, coalesce(tenant, '') AS tenant, coalesce(category, '') AS category,
      count(*) FILTER (WHERE seen_at IS NULL) AS unseen, count(*) FILTER (WHERE read_at IS NULL) AS unread, count(*) AS total
    FROM notifications n WHERE site_id = $1 AND ${live('n')} GROUP BY 1, 2, 3)
  SELECT DISTINCT user_id FROM ((SELECT * FROM d EXCEPT SELECT * FROM t) UNION ALL (SELECT * FROM t EXCEPT SELECT * FROM d)) m`;
