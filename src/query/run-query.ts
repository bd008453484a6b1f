import type { EventScan, EventSql } from '../events/event-row.js';
import { buildSql } from './build-sql.js';
import { type Metric, RATE_METRICS } from './metrics.js';
import type { Query, TimeRange } from './query.js';
import { bucketLabel, bucketOrdinal } from './time-buckets.js';

// Runs a parsed Query over a snapshot of the event store and shapes API.md's answer: rows of
// dimension values and metrics in the query's order, each with its comparison when asked.

/** The event store as the query API reads it: snapshots of a site's files, and SQL over them. */
export type EventSource = EventScan & { readonly sql: EventSql };

export interface ResultRow {
  dimensions: string[];
  metrics: number[];
  comparison?: { metrics: number[]; change: (number | null)[] };
}

export interface QueryAnswer {
  results: ResultRow[];
  meta: {
    date_range: [string, string];
    comparison_date_range?: [string, string];
    time_zone: string;
    metrics: string[];
    dimensions: string[];
    /** Groups in the whole answer, before pagination. */
    total_rows: number;
  };
}

interface Grouped {
  /** Raw dimension values (time as the bucket start, epoch ms). */
  keys: (string | number)[];
  metrics: number[];
}

const toNumber = (v: unknown): number => (typeof v === 'bigint' ? Number(v) : typeof v === 'number' ? v : Number(v ?? 0));
const isoRange = (r: TimeRange): [string, string] => [new Date(r.fromMs).toISOString(), new Date(r.toMs - 1).toISOString()];

/** Change from `before` to `now`: percent for counts (null when there was nothing before), points for rates. */
export function change(metric: Metric, now: number, before: number): number | null {
  if (RATE_METRICS.has(metric)) return Math.round((now - before) * 100) / 100;
  if (before === 0) return null;
  return Math.round(((now - before) / before) * 1000) / 10;
}

export function createQueryEngine(events: EventSource) {
  async function grouped(query: Query, range: TimeRange, paginate: boolean): Promise<{ rows: Grouped[]; total: number }> {
    const snapshot = await events.snapshot(query.siteId, range.fromMs, range.toMs);
    try {
      if (snapshot.files.length === 0) {
        // Nothing stored: a query without dimensions still answers its one row of zeros.
        const rows = query.dimensions.length === 0 ? [{ keys: [], metrics: query.metrics.map(() => 0) }] : [];
        return { rows, total: rows.length };
      }
      const { sql, params } = buildSql(query, { range, days: snapshot.days, paginate });
      const raw = await events.sql.all(sql, params);
      const rows = raw.map((r) => ({
        keys: query.dimensions.map((d, i) => (d.kind === 'time' ? toNumber(r[`d${i}`]) : String(r[`d${i}`]))),
        metrics: query.metrics.map((_, i) => toNumber(r[`m${i}`])),
      }));
      return { rows, total: raw.length > 0 ? toNumber(raw[0]?.['total_rows']) : 0 };
    } finally {
      snapshot.release();
    }
  }

  /** A row's key for pairing with the compared period: time buckets by their place in the range. */
  const pairKey = (query: Query, keys: (string | number)[], range: TimeRange) =>
    JSON.stringify(
      query.dimensions.map((d, i) => (d.kind === 'time' ? bucketOrdinal(d.unit, keys[i] as number, range.fromMs, query.zone) : keys[i])),
    );

  return async function runQuery(query: Query): Promise<QueryAnswer> {
    const { rows, total } = await grouped(query, query.range, true);
    let compared: Map<string, number[]> | null = null;
    if (query.comparison !== null) {
      const cmp = query.comparison.range;
      const before = await grouped(query, cmp, false);
      compared = new Map(before.rows.map((r) => [pairKey(query, r.keys, cmp), r.metrics]));
    }
    const results = rows.map((r): ResultRow => {
      const row: ResultRow = {
        dimensions: query.dimensions.map((d, i) =>
          d.kind === 'time' ? bucketLabel(d.unit, r.keys[i] as number, query.zone) : String(r.keys[i]),
        ),
        metrics: r.metrics,
      };
      if (compared !== null) {
        const before = compared.get(pairKey(query, r.keys, query.range)) ?? query.metrics.map(() => 0);
        row.comparison = { metrics: before, change: query.metrics.map((m, i) => change(m, r.metrics[i] ?? 0, before[i] ?? 0)) };
      }
      return row;
    });
    const meta: QueryAnswer['meta'] = {
      date_range: isoRange(query.range),
      time_zone: query.zone,
      metrics: [...query.metrics],
      dimensions: query.dimensions.map((d) => d.name),
      total_rows: total,
    };
    if (query.comparison !== null) meta.comparison_date_range = isoRange(query.comparison.range);
    return { results, meta };
  };
}

export type RunQuery = ReturnType<typeof createQueryEngine>;
