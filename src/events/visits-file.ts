import { SESSION_FIELD_ORDER, SESSION_GAP_MS } from '../storage/sessions.js';
import { COUNTED_KINDS } from './event-row.js';
import { DAY_MS } from './layout.js';

// A finished day's visits: one row per session of the day's compacted file (per session and bot
// flag, as queries count bots apart), written beside it by the compaction that makes the day one
// file. Visit metrics (visits, bounce rate, duration, and the visitors and page views of visits)
// over whole days then read about a fifth of the rows and group none of them, as Plausible's
// sessions table spares it its events table.
//
// A session that crosses midnight has a row in each day. Queries merge only the rows flagged
// `edge`, by the sessions rule (src/storage/sessions.ts): a session's events are at most
// SESSION_GAP_MS apart, so a part of a longer one has an event (of any kind, bots included)
// within that gap of its day's start or end.

/** The session-level columns a visits row keeps: what a session's first event fixes for all of its events. */
export const VISIT_FIELDS = SESSION_FIELD_ORDER;

/** DuckDB type of each column of a visits file, in file order (the site and day are its folder's). */
export const VISIT_COLUMNS = {
  session_h: 'UBIGINT',
  visitor_h: 'UBIGINT',
  bot: 'BOOLEAN',
  /** The session may go on in the day before or after (see above). */
  edge: 'BOOLEAN',
  /** The first counted event (page view, event, engagement) of the session in the day, and the time to its last. */
  t0: 'TIMESTAMP_MS',
  duration_ms: 'BIGINT',
  /** Its page views. */
  pageviews: 'BIGINT',
  ...Object.fromEntries(VISIT_FIELDS.map((f) => [f, 'VARCHAR'])),
} as const;

/**
 * The SELECT that makes a visits file's rows from a day's event files (`events`, a FROM source).
 * Rows only for sessions with a counted event; sorted by source, so a filter
 * on it reads only that source's row groups.
 */
export function visitsSql(events: string): string {
  const fields = VISIT_FIELDS.map((f) => `any_value(${f}) AS ${f}`).join(', ');
  const inDay = (t: string) => `epoch_ms(${t}) % ${DAY_MS}`;
  const edge = `${inDay('min(min(ts)) OVER w')} < ${SESSION_GAP_MS} OR ${inDay('max(max(ts)) OVER w')} >= ${DAY_MS - SESSION_GAP_MS}`;
  return `SELECT session_h, any_value(visitor_h) AS visitor_h, bot, ${edge} AS edge,
      (min(ts) FILTER (WHERE ${COUNTED_KINDS}))::TIMESTAMP_MS AS t0,
      epoch_ms(max(ts) FILTER (WHERE ${COUNTED_KINDS})) - epoch_ms(min(ts) FILTER (WHERE ${COUNTED_KINDS})) AS duration_ms,
      count(*) FILTER (WHERE kind = 'pageview') AS pageviews,
      ${fields}
    FROM ${events}
    GROUP BY session_h, bot
    WINDOW w AS (PARTITION BY session_h)
    QUALIFY count(*) FILTER (WHERE ${COUNTED_KINDS}) > 0
    ORDER BY source, session_h`;
}
