import type { EventSource } from './run-query.js';

// What the event-scanning queries (funnels, retention, a user's events) share: parameters, the
// way filters reach their SQL, and the FROM clause over a snapshot's files.

/** The values of a statement's `$n` placeholders, collected as its SQL is written. */
export class SqlParams {
  readonly values: unknown[] = [];
  /** The placeholder of one more value. */
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/**
 * Writes a boolean SQL expression over the event columns (src/events/event-row.ts), its values
 * added as parameters: how the query's filters reach a statement.
 */
export type WhereSql = (params: SqlParams) => string;

export const NO_FILTER: WhereSql = () => 'TRUE';

/** A placeholder for epoch ms, typed as the ts column (file statistics then skip row groups). */
export const tsParam = (params: SqlParams, ms: number) => `epoch_ms(${params.add(ms)}::BIGINT)::TIMESTAMP_MS`;

export interface BuiltSql {
  sql: string;
  params: readonly unknown[];
}

/** A SQL string literal (the store's own file paths, never user input). */
const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;

/**
 * Runs `query` with the FROM source of the site's files that hold [fromMs, toMs), released after;
 * `empty` when there are none (DuckDB refuses an empty file list).
 */
export async function withEventSource<T>(
  deps: EventSource,
  siteId: string,
  fromMs: number,
  toMs: number,
  query: (source: string) => Promise<T>,
  empty: () => T,
): Promise<T> {
  const snapshot = await deps.snapshot(siteId, fromMs, toMs);
  try {
    if (snapshot.files.length === 0) return empty();
    return await query(`read_parquet([${snapshot.files.map(literal).join(', ')}], union_by_name = true, hive_partitioning = false)`);
  } finally {
    snapshot.release();
  }
}
