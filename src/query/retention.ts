import type { SnapshotDay } from '../events/event-row.js';
import { localDate, startOfDay, startOfWeek } from '../time/zone.js';
import { type BuiltSql, rangeRows, SqlParams, type WhereSql, withEventSource } from './event-source.js';
import type { EventSource } from './run-query.js';

// Retention (API.md "Retention"): cohorts of first-seen visitors, by the day or week (in the
// site's time zone) of their first event, and how many of each cohort came back in each later
// period. "First seen" means in the site's whole history, as PostHog's first-time retention: a
// visitor who was here last month is no one's new visitor this week, so the events before the
// range are read too (their visitor and time columns only). Filters apply to every event: with
// `source is Google`, a cohort is the visitors whose first event came from Google, and coming
// back means coming back from Google. Bots are left out. The range is widened to the start of
// its first period so that every cohort is whole; the last period may still be running.
//
// The events are first made distinct (visitor, time bucket) pairs, a few per visit instead of
// one row per event, and only those are matched to their periods (an ASOF join on the period
// starts). A bucket is the longest of 15 minutes, a minute, a second or a millisecond that every
// period start is a whole number of: a bucket then lies in one period, whatever the zone's
// offset (whole quarter hours today; some zones' historic local mean time is not even whole
// minutes).

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

/** Bucket lengths, longest first; 1 ms divides every instant. */
const BUCKETS_MS = [900_000, 60_000, 1_000, 1];

/** SQL giving (cohort, period, visitors) rows: visitors of cohort c seen in period i (i >= c); `days` has a file. */
export function retentionSql(days: readonly SnapshotDay[], query: RetentionQuery, starts: readonly number[]): BuiltSql {
  const params = new SqlParams();
  const bucket = BUCKETS_MS.find((ms) => starts.every((start) => start % ms === 0)) ?? 1;
  // The period starts are this module's own integers, written into the SQL as literals. Buckets
  // are floored, so an instant's bucket is the one it lies in whatever its sign (// truncates).
  const periods = starts.map((start, i) => `(${i}, ${Math.floor(start / bucket)})`).join(', ');
  const first = Math.floor((starts[0] ?? query.fromMs) / bucket);
  // Every event of the site's history before the range's end: a visitor seen before it is no one's new visitor.
  const events = rangeRows(
    days,
    { fromMs: 0, toMs: query.toMs },
    ['visitor_h', `floor(epoch_ms(ts) / ${bucket})::BIGINT AS b`],
    `NOT bot AND (${query.where(params)})`,
    params,
  );
  if (events === null) throw new Error('retention reads at least one day');
  const sql = `WITH vb AS (SELECT visitor_h, b FROM (${events}) GROUP BY visitor_h, b),
    periods AS (SELECT i, s FROM (VALUES ${periods}) AS p(i, s)),
    new_visitors AS (SELECT visitor_h FROM vb GROUP BY visitor_h HAVING min(b) >= ${first}),
    active AS (
      SELECT DISTINCT v.visitor_h, p.i FROM vb v ASOF JOIN periods p ON v.b >= p.s
      WHERE v.visitor_h IN (SELECT visitor_h FROM new_visitors)),
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
    (_, days) => {
      const { sql, params } = retentionSql(days, query, starts);
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
