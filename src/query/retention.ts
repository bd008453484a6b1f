import { localDate, startOfDay, startOfWeek } from '../time/zone.js';
import { type BuiltSql, SqlParams, tsParam, type WhereSql, withEventSource } from './event-source.js';
import type { EventSource } from './run-query.js';

// Retention (API.md "Retention"): cohorts of first-seen visitors, by the day or week (in the
// site's time zone) of their first event, and how many of each cohort came back in each later
// period. "First seen" means in the site's whole history, as PostHog's first-time retention: a
// visitor who was here last month is no one's new visitor this week, so the events before the
// range are read too (their visitor and time columns only). Filters apply to every event: with
// `source is Google`, a cohort is the visitors whose first event came from Google, and coming
// back means coming back from Google. Bots are left out. The range is widened to the start of
// its first period so that every cohort is whole; the last period may still be running.

export type RetentionInterval = 'day' | 'week';

/** Most periods (cohorts) one answer holds: a year of days. */
export const MAX_RETENTION_PERIODS = 366;

export interface RetentionQuery {
  siteId: string;
  fromMs: number;
  toMs: number;
  interval: RetentionInterval;
  /** The site's IANA time zone. */
  zone: string;
  where: WhereSql;
}

export interface Cohort {
  /** First day of the period (YYYY-MM-DD, in the site's zone). */
  start: string;
  /** Visitors first seen in this period. */
  visitors: number;
  /** returning[i]: those of them seen again in the (i+1)-th period after it. */
  returning: number[];
}

/** Start instants of the periods that cover [fromMs, toMs), in order (the first at or before fromMs). */
export function retentionPeriods(interval: RetentionInterval, zone: string, fromMs: number, toMs: number): number[] {
  const startOf = interval === 'day' ? startOfDay : startOfWeek;
  const starts: number[] = [];
  for (let start = startOf(zone, fromMs); start < toMs; start = startOf(zone, start, 1)) {
    starts.push(start);
    // Checked by the caller before it asks; this bounds the loop whatever the caller does.
    if (starts.length > MAX_RETENTION_PERIODS) break;
  }
  return starts;
}

/** SQL giving (cohort, period, visitors) rows: visitors of cohort c seen in period i (i >= c). */
export function retentionSql(source: string, query: RetentionQuery, starts: readonly number[]): BuiltSql {
  const params = new SqlParams();
  // The period starts are this module's own integers, written into the SQL as literals.
  const periods = starts.map((start, i) => `(${i}, ${Math.trunc(start)})`).join(', ');
  const from = starts[0] ?? query.fromMs;
  const sql = `WITH ev AS (
      SELECT visitor_h, ts FROM ${source}
      WHERE site_id = ${params.add(query.siteId)} AND ts < ${tsParam(params, query.toMs)} AND NOT bot AND (${query.where(params)})),
    periods AS (SELECT i, epoch_ms(start)::TIMESTAMP_MS AS start FROM (VALUES ${periods}) AS p(i, start)),
    new_visitors AS (SELECT visitor_h FROM ev GROUP BY visitor_h HAVING min(ts) >= ${tsParam(params, from)}),
    active AS (
      SELECT DISTINCT e.visitor_h, p.i FROM ev e ASOF JOIN periods p ON e.ts >= p.start
      WHERE e.visitor_h IN (SELECT visitor_h FROM new_visitors)),
    cohorts AS (SELECT visitor_h, min(i) AS c FROM active GROUP BY visitor_h)
    SELECT c::INTEGER AS cohort, i::INTEGER AS period, count(*)::DOUBLE AS visitors
    FROM active JOIN cohorts USING (visitor_h) GROUP BY c, i`;
  return { sql, params: params.values };
}

export async function queryRetention(deps: EventSource, query: RetentionQuery): Promise<Cohort[]> {
  const starts = retentionPeriods(query.interval, query.zone, query.fromMs, query.toMs);
  const cohorts: Cohort[] = starts.map((start, i) => ({
    start: localDate(query.zone, start),
    visitors: 0,
    returning: new Array<number>(starts.length - 1 - i).fill(0),
  }));
  const rows = await withEventSource(
    deps,
    query.siteId,
    0,
    query.toMs,
    (source) => {
      const { sql, params } = retentionSql(source, query, starts);
      return deps.sql.all(sql, params);
    },
    () => [],
  );
  for (const row of rows) {
    const cohort = cohorts[Number(row['cohort'])];
    const later = Number(row['period']) - Number(row['cohort']);
    if (!cohort) continue;
    if (later === 0) cohort.visitors = Number(row['visitors']);
    else cohort.returning[later - 1] = Number(row['visitors']);
  }
  return cohorts;
}
