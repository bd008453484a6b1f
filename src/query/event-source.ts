import type { EventScan, EventSql } from '../events/event-row.js';

// What the event-scanning queries (funnels, retention, a user's events) share: the store they
// read, the condition type that filters bring, and the FROM clause over a snapshot's files.

export interface EventQueryDeps {
  scan: EventScan;
  sql: EventSql;
}

/**
 * A boolean SQL expression over the event columns (src/events/event-row.ts) with `?`
 * placeholders, and the values they take in order. Filters arrive built as one.
 */
export interface SqlCondition {
  sql: string;
  params: readonly unknown[];
}

/** A `?` that takes epoch ms, typed as the ts column so file statistics can skip row groups. */
export const TS_PARAM = 'epoch_ms(?::BIGINT)::TIMESTAMP_MS';

export const NO_CONDITION: SqlCondition = { sql: 'TRUE', params: [] };

/** A SQL string literal (the store's own file paths, never user input). */
const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;

/**
 * Runs `query` with the FROM source of the site's files that hold [fromMs, toMs), released after;
 * `empty` when there are none (DuckDB refuses an empty file list).
 */
export async function withEventSource<T>(
  deps: EventQueryDeps,
  siteId: string,
  fromMs: number,
  toMs: number,
  query: (source: string) => Promise<T>,
  empty: () => T,
): Promise<T> {
  const snapshot = await deps.scan.snapshot(siteId, fromMs, toMs);
  try {
    if (snapshot.files.length === 0) return empty();
    return await query(`read_parquet([${snapshot.files.map(literal).join(', ')}])`);
  } finally {
    snapshot.release();
  }
}
