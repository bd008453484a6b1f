import type { SnapshotDay } from '../events/event-row.js';
import { DAY_MS } from '../events/layout.js';
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

/** Whether the whole day lies in the range. */
const insideRange = (d: SnapshotDay, range: { fromMs: number; toMs: number }) =>
  d.startMs >= range.fromMs && d.startMs + DAY_MS <= range.toMs;

/** The days wholly inside the range that have summaries: what a query may read from those instead of their events. */
export const summarisedDays = (days: readonly SnapshotDay[], range: { fromMs: number; toMs: number }) =>
  days.filter((d) => d.summaries !== undefined && insideRange(d, range));

/**
 * The rows of `days` in [fromMs, toMs) where `where` holds, as `cols`: a SELECT for the days
 * inside the range and one for the days it cuts, joined by UNION ALL; null without a day. A day
 * inside the range is read without a time filter, which DuckDB would test on every row whatever
 * the files' statistics say; no day with a site filter (a site's files hold only its rows).
 */
export function rangeRows(
  days: readonly SnapshotDay[],
  range: { fromMs: number; toMs: number },
  cols: readonly string[],
  where: string,
  params: SqlParams,
): string | null {
  const whole = (d: SnapshotDay) => insideRange(d, range);
  const read = (ds: readonly SnapshotDay[], condition: string) =>
    ds.length === 0
      ? []
      : [
          `SELECT ${cols.join(', ')} FROM read_parquet(${params.add(ds.flatMap((d) => d.files))}, hive_partitioning = false, union_by_name = true)
      WHERE ${condition}`,
        ];
  const cut = days.filter((d) => !whole(d));
  const parts = [
    ...read(days.filter(whole), where),
    ...read(cut, cut.length === 0 ? '' : `ts >= ${tsParam(params, range.fromMs)} AND ts < ${tsParam(params, range.toMs)} AND ${where}`),
  ];
  return parts.length === 0 ? null : parts.join('\n      UNION ALL ');
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
  query: (source: string, days: readonly SnapshotDay[]) => Promise<T>,
  empty: () => T,
): Promise<T> {
  const snapshot = await deps.snapshot(siteId, fromMs, toMs);
  try {
    if (snapshot.files.length === 0) return empty();
    return await query(
      `read_parquet([${snapshot.files.map(literal).join(', ')}], union_by_name = true, hive_partitioning = false)`,
      snapshot.days,
    );
  } finally {
    snapshot.release();
  }
}
