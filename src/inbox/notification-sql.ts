import { type Prepared, prepared } from '../storage/db.js';
import { durableColumns } from './unread-counter.js';

// The inbox's SQL, one statement per operation. Every statement that changes read state is
// conditional (`read_at IS NULL` / `IS NOT NULL`): its affected rows are exactly the change of the
// unread count, however many requests race on the same rows. Statements that answer a count also
// read the durable side (unread_counts, flush_state) in the same snapshot. The statements run per
// request are prepared (src/storage/db.ts); those whose best plan depends on which optional
// filters are null (read-all, listings) are planned for their parameters each time.

const COLUMNS = 'id, user_id, category, title, body, data, created_at, read_at';

export interface NotificationRow {
  id: string;
  user_id: string;
  category: string | null;
  title: string;
  body: string;
  data: Record<string, unknown>;
  created_at: Date | string;
  read_at: Date | string | null;
}

// A create's notification: the one it inserted (i), else the one already there (n).
const picked = COLUMNS.split(', ')
  .map((c) => `CASE WHEN i.id IS NOT NULL THEN i.${c} ELSE n.${c} END AS ${c}`)
  .join(', ');

/** The durable-count columns of a batch row `alias` (columns site_id, user_id, buffer). */
const durableOfRow = (
  alias: string,
) => `(SELECT unread FROM unread_counts u WHERE u.site_id = ${alias}.site_id AND u.user_id = ${alias}.user_id) AS durable,
    (SELECT last_seq FROM flush_state f WHERE f.buffer = ${alias}.buffer) AS last_seq`;

/**
 * Creates and mark-reads of several requests (even of several sites) as ONE statement: one
 * round trip and one commit for all the requests that arrived together. Built for the kinds the
 * batch has (a part for a kind it lacks would still cost PostgreSQL planning and running).
 * Creates, arrays in input order: sites, ids, users, categories, titles, bodies, data (JSON text),
 * buffer names of the users ($1–$8). Mark-reads, after them ($9–$12, or $1–$4 without creates):
 * sites, ids, users (the owners), buffer names.
 * One row per input, creates (`kind` 'c') then mark-reads ('r'), each in input order, with the
 * user's durable count. A create: `inserted`, and the notification (the one inserted, or the one
 * already there under that id: an idempotent repeat or a conflict; none when it committed after
 * this statement's snapshot). A mark-read: `found` and `changed`. A mark-read does not see a
 * notification the same statement creates (as if it ran first). An id repeated in the batch is
 * inserted, or changed, once and shows so on each repeat: the caller keeps it for the first only.
 */
export function mutate(creates: boolean, reads: boolean): Prepared {
  return MUTATE[creates ? (reads ? 'both' : 'creates') : 'reads'];
}

function mutateText(creates: boolean, reads: boolean): string {
  const at = creates ? 9 : 1;
  const ctes: string[] = [];
  const parts: string[] = [];
  if (creates) {
    ctes.push(
      `c AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
        WITH ORDINALITY AS c(site_id, id, user_id, category, title, body, data, buffer, ord))`,
      `i AS (INSERT INTO notifications (site_id, id, user_id, category, title, body, data)
        SELECT site_id, id, user_id, category, title, body, data::jsonb FROM c ORDER BY ord
        ON CONFLICT (site_id, id) DO NOTHING
        RETURNING site_id, ${COLUMNS})`,
    );
    parts.push(`SELECT 'c' AS kind, c.ord, i.id IS NOT NULL AS inserted, NULL::int8 AS found, NULL::int8 AS changed, ${picked},
      ${durableOfRow('c')}
    FROM c LEFT JOIN i ON i.site_id = c.site_id AND i.id = c.id
      LEFT JOIN notifications n ON i.id IS NULL AND n.site_id = c.site_id AND n.id = c.id`);
  }
  if (reads) {
    ctes.push(
      `r AS (SELECT * FROM unnest($${at}::text[], $${at + 1}::text[], $${at + 2}::text[], $${at + 3}::text[])
        WITH ORDINALITY AS r(site_id, id, user_id, buffer, ord))`,
      `changed AS (UPDATE notifications n SET read_at = now() FROM r
        WHERE n.site_id = r.site_id AND n.id = r.id AND n.user_id = r.user_id AND n.read_at IS NULL
        RETURNING n.site_id, n.id, n.user_id)`,
    );
    parts.push(`SELECT 'r' AS kind, r.ord, NULL::boolean AS inserted,
      (SELECT count(*) FROM notifications n WHERE n.site_id = r.site_id AND n.id = r.id AND n.user_id = r.user_id) AS found,
      (SELECT count(*) FROM changed x WHERE x.site_id = r.site_id AND x.id = r.id AND x.user_id = r.user_id) AS changed,
      ${COLUMNS.split(', ')
        .map((c) => `NULL AS ${c}`)
        .join(', ')},
      ${durableOfRow('r')}
    FROM r`);
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

export type Status = 'unread' | 'read' | 'all';

const STATUS_FILTER: Record<Status, string> = {
  unread: 'AND read_at IS NULL',
  read: 'AND read_at IS NOT NULL',
  all: '',
};

/** $1 site, $2 user, $3 category or null, $4 cursor seq or null, $5 limit. Also returns seq. */
export function selectPage(status: Status): string {
  return `SELECT ${COLUMNS}, seq FROM notifications
    WHERE site_id = $1 AND user_id = $2 ${STATUS_FILTER[status]}
      AND ($3::text IS NULL OR category = $3) AND ($4::int8 IS NULL OR seq < $4)
    ORDER BY seq DESC LIMIT $5`;
}

// By-id changes: $1 site, $2 id, $3 user (the owner: a token's user, or looked up), $4 buffer name.
// `found` tells "no such notification (for this user)" from "nothing to change".
const target = 'target AS (SELECT 1 FROM notifications WHERE site_id = $1 AND id = $2 AND user_id = $3)';

export const MARK_UNREAD = prepared(
  'inbox_mark_unread',
  `WITH ${target},
  changed AS (UPDATE notifications SET read_at = NULL
    WHERE site_id = $1 AND id = $2 AND user_id = $3 AND read_at IS NOT NULL RETURNING 1)
  SELECT (SELECT count(*) FROM target) AS found, (SELECT count(*) FROM changed) AS changed, ${durableColumns(1, 3, 4)}`,
);

export const DELETE_ONE = prepared(
  'inbox_delete',
  `WITH ${target},
  gone AS (DELETE FROM notifications WHERE site_id = $1 AND id = $2 AND user_id = $3 RETURNING read_at IS NULL AS was_unread)
  SELECT (SELECT count(*) FROM target) AS found, (SELECT count(*) FROM gone) AS deleted,
    (SELECT count(*) FROM gone WHERE was_unread) AS changed, ${durableColumns(1, 3, 4)}`,
);

/**
 * $1 site, $2 user, $3 buffer name, $4 category or null, $5 `before` id or null. One statement:
 * a notification committed after it started is not in its snapshot and stays unread (and counted).
 */
export const MARK_ALL_READ = `WITH mark AS (SELECT seq FROM notifications WHERE site_id = $1 AND id = $5 AND user_id = $2),
  changed AS (UPDATE notifications SET read_at = now()
    WHERE site_id = $1 AND user_id = $2 AND read_at IS NULL
      AND ($4::text IS NULL OR category = $4)
      AND ($5::text IS NULL OR seq <= (SELECT seq FROM mark))
    RETURNING 1)
  SELECT (SELECT count(*) FROM mark) AS found, (SELECT count(*) FROM changed) AS changed, ${durableColumns(1, 2, 3)}`;

/** The reconciler's view of one user, in one snapshot: $1 site, $2 user, $3 buffer name. */
export const TRUE_AND_DURABLE = `SELECT
    (SELECT count(*) FROM notifications WHERE site_id = $1 AND user_id = $2 AND read_at IS NULL) AS truth,
    ${durableColumns(1, 2, 3)}`;

/** Every user of a site whose durable count differs from its rows: $1 site. */
export const DURABLE_MISMATCHES = `SELECT user_id, coalesce(c.unread, 0) AS durable, coalesce(n.truth, 0) AS truth
  FROM (SELECT user_id, unread FROM unread_counts WHERE site_id = $1) c
  FULL JOIN (SELECT user_id, count(*) AS truth FROM notifications WHERE site_id = $1 AND read_at IS NULL GROUP BY user_id) n
    USING (user_id)
  WHERE coalesce(c.unread, 0) <> coalesce(n.truth, 0)`;
