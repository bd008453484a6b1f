// A finished day's page views ordered by page, written beside its compacted file by the
// compaction that makes the day one file. The compacted file keeps a session's events together
// (compaction.ts says why), so a test on the page reads every page view's page; here the page
// views of one page sit in a few row groups, and a funnel's page steps read only those.

/** DuckDB type of each column of a pages file, in file order (the site and day are its folder's). */
export const PAGE_COLUMNS = {
  page: 'VARCHAR',
  visitor_h: 'UBIGINT',
  ts: 'TIMESTAMP_MS',
  bot: 'BOOLEAN',
} as const;

/**
 * The SELECT that makes a pages file's rows from a day's event files (`events`, a FROM source):
 * every page view, humans' first (queries keep bots apart), then by page, visitor and time.
 */
export function pagesSql(events: string): string {
  return `SELECT ${Object.keys(PAGE_COLUMNS).join(', ')} FROM ${events}
    WHERE kind = 'pageview'
    ORDER BY bot, page, visitor_h, ts`;
}
