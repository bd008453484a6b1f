import type { Goal } from '../goals/goal.js';
import { type Dimension, type FilterDimension, NONE } from './dimensions.js';
import { type Metric, SESSION_METRICS } from './metrics.js';
import { topLevelGoalConditions } from './parse-query.js';
import type { Condition, Filter, Query, TimeRange } from './query.js';
import { bucketSql } from './time-buckets.js';

// The one place a Query becomes SQL (DuckDB, over the event store's Parquet files). Every value
// from the request (and the snapshot's file list) is a bound parameter; the SQL text holds only
// the catalogues' names.
//
//   all_  the site's human events of the range (site and time first: files are partitioned by
//         day, row groups carry ts statistics)
//   s     per session: page views, first and last event, exit page (only when a session metric
//         or exit_page asks for it; one GROUP BY, no window)
//   ev    all_ with its session's columns
//   m     the events that match the filters (with the goal they complete, one row per goal,
//         when goal is a dimension)
//   e     event metrics per group: counts and unique visitors of m
//   v     visit metrics per group: the sessions with an event in m, each whole; a session's time
//         is its start
//   b     visitors per group without the goal conditions (what conversion_rate divides by)

export interface BuiltSql {
  sql: string;
  params: unknown[];
}

class Params {
  readonly values: unknown[] = [];
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/** A path pattern (`*` = any characters) as a LIKE pattern with `\` escaping. */
export function likePattern(pattern: string): string {
  return pattern.replace(/[\\%_]/g, (c) => `\\${c}`).replace(/\*/g, '%');
}

function goalSql(goal: Goal, p: Params): string {
  if (goal.page !== undefined) return `(kind = 'pageview' AND page LIKE ${p.add(likePattern(goal.page))} ESCAPE '\\')`;
  const props = Object.entries(goal.props ?? {}).map(([k, v]) => ` AND props[${p.add(k)}] = ${p.add(v)}`);
  return `(kind = 'event' AND name = ${p.add(goal.event)}${props.join('')})`;
}

function columnSql(d: FilterDimension | Dimension, p: Params): string {
  if (d.kind === 'column') return d.sql;
  if (d.kind === 'prop') return `props[${p.add(d.key)}]`;
  throw new Error(`no column for ${d.name}`);
}

/** SQL that is true where the condition holds, never NULL (a missing value is not any value). */
function conditionSql(c: Condition, p: Params): string {
  let positive: string;
  if (c.dimension.kind === 'goal') {
    const goals = c.goals ?? [];
    positive = goals.length === 0 ? 'false' : `(${goals.map((g) => goalSql(g, p)).join(' OR ')})`;
  } else {
    const col = columnSql(c.dimension, p);
    const values = c.values.filter((v) => v !== NONE);
    const parts: string[] = [];
    if (c.op === 'is' || c.op === 'is_not') {
      if (values.length > 0) parts.push(`${col} IN (${values.map((v) => p.add(v)).join(', ')})`);
    } else {
      for (const v of values) parts.push(`contains(${col}, ${p.add(v)})`);
    }
    if (values.length < c.values.length) parts.push(`${col} IS NULL`);
    positive = `coalesce(${parts.join(' OR ')}, false)`;
  }
  return c.op === 'is_not' || c.op === 'contains_not' ? `NOT ${positive}` : positive;
}

export function filterSql(f: Filter, p: Params): string {
  if ('dimension' in f) return conditionSql(f, p);
  if (f.op === 'not') return `NOT (${filterSql(f.filter, p)})`;
  return `(${f.filters.map((x) => filterSql(x, p)).join(f.op === 'and' ? ' AND ' : ' OR ')})`;
}

/** The filter without its top-level goal conditions (conversion_rate's denominator), or null. */
function withoutGoals(filter: Filter | null): Filter | null {
  const goals = topLevelGoalConditions(filter);
  if (filter === null || goals.length === 0) return filter;
  if ('dimension' in filter) return null;
  if (filter.op !== 'and') return filter;
  const rest = filter.filters.filter((f) => !goals.includes(f));
  return rest.length === 0 ? null : { op: 'and', filters: rest };
}

const ROUND = (expr: string, digits: number) => `round(${expr}, ${digits})`;
const ratio = (num: string, den: string, scale: number, digits: number) =>
  `CASE WHEN coalesce(${den}, 0) > 0 THEN ${ROUND(`${scale} * ${num}::DOUBLE / ${den}`, digits)} ELSE 0 END`;

const METRIC_SQL: Record<Metric, string> = {
  visitors: 'coalesce(e.visitors, 0)',
  visits: 'coalesce(v.visits, 0)',
  pageviews: 'coalesce(e.pageviews, 0)',
  views_per_visit: ratio('v.session_pageviews', 'v.visits', 1, 2),
  bounce_rate: ratio('v.bounces', 'v.visits', 100, 2),
  visit_duration: ratio('v.duration_ms', 'v.visits', 0.001, 1),
  events: 'coalesce(e.events, 0)',
  clicks: 'coalesce(e.clicks, 0)',
  time_on_page: ratio('e.engaged_ms', 'e.engagements', 0.001, 1),
  conversions: 'coalesce(e.conversions, 0)',
  conversion_rate: ratio('e.visitors', 'b.base_visitors', 100, 2),
  revenue: `${ROUND('coalesce(e.revenue, 0)::DOUBLE', 2)}`,
};

export interface BuildOptions {
  range: TimeRange;
  /** Parquet files of the snapshot (at least one). */
  files: readonly string[];
  /** The query's pagination; a comparison reads every group instead. */
  paginate: boolean;
}

/** Result columns: d0…dn (dimension values; time as bucket start ms), m0…mk, total_rows. */
export function buildSql(query: Query, options: BuildOptions): BuiltSql {
  const p = new Params();
  const site = p.add(query.siteId);
  const from = p.add(options.range.fromMs);
  const to = p.add(options.range.toMs);
  const zone = query.dimensions.some((d) => d.kind === 'time') ? p.add(query.zone) : '';
  const bots = query.bots === 'exclude' ? ' AND NOT bot' : query.bots === 'only' ? ' AND bot' : '';

  const usesExitPage = (f: Filter | null): boolean =>
    f !== null &&
    ('dimension' in f
      ? f.dimension.kind === 'column' && f.dimension.perSession === true
      : f.op === 'not'
        ? usesExitPage(f.filter)
        : f.filters.some(usesExitPage));
  const sessionMetrics = query.metrics.some((m) => SESSION_METRICS.has(m));
  const needSessions =
    sessionMetrics || usesExitPage(query.filters) || query.dimensions.some((d) => d.kind === 'column' && d.perSession === true);
  const needBase = query.metrics.includes('conversion_rate');
  const byGoal = query.dimensions.some((d) => d.kind === 'goal');

  const files = p.add(options.files);
  const ctes: string[] = [
    `all_ AS (SELECT * FROM read_parquet(${files}, hive_partitioning = false, union_by_name = true)
      WHERE site_id = ${site} AND ts >= epoch_ms(${from}::BIGINT) AND ts < epoch_ms(${to}::BIGINT)
        AND kind IN ('pageview', 'event', 'engagement')${bots})`,
  ];
  if (needSessions) {
    ctes.push(`s AS (SELECT session, count(*) FILTER (WHERE kind = 'pageview') AS s_pv, min(ts) AS s_t0, max(ts) AS s_t1,
        arg_max(page, (ts, message_id)) FILTER (WHERE kind = 'pageview') AS exit_page FROM all_ GROUP BY session)`);
    ctes.push('ev AS (SELECT * FROM all_ JOIN s USING (session))');
  } else {
    ctes.push('ev AS (SELECT * FROM all_)');
  }

  const where = query.filters === null ? '' : ` WHERE ${filterSql(query.filters, p)}`;
  if (byGoal) {
    const parts = query.goals.map((g) => `SELECT ev.*, ${p.add(g.name)}::VARCHAR AS goal FROM ev WHERE ${goalSql(g, p)}`);
    const union = parts.length === 0 ? 'SELECT ev.*, NULL::VARCHAR AS goal FROM ev WHERE false' : parts.join(' UNION ALL ');
    ctes.push(`m AS (SELECT * FROM (${union})${where})`);
  } else {
    ctes.push(`m AS (SELECT * FROM ev${where})`);
  }

  /** Dimension columns d0…dn; time at `timeOf` (the event's, or the session's start). */
  const dims = (timeOf: string, skipGoal = false) =>
    query.dimensions.flatMap((d, i) => {
      if (d.kind === 'goal') return skipGoal ? [] : [`goal AS d${i}`];
      if (d.kind === 'time') return [`${bucketSql(d.unit, timeOf, zone)} AS d${i}`];
      return [`coalesce(${columnSql(d, p)}, '${NONE}') AS d${i}`];
    });
  const names = (skipGoal = false) => query.dimensions.flatMap((d, i) => (skipGoal && d.kind === 'goal' ? [] : [`d${i}`]));
  const groupBy = (cols: string[]) => (cols.length === 0 ? '' : ` GROUP BY ${cols.join(', ')}`);
  const select = (cols: string[]) => (cols.length === 0 ? '' : `${cols.join(', ')}, `);

  ctes.push(`e AS (SELECT ${select(dims('ts'))}count(*) FILTER (WHERE kind = 'pageview') AS pageviews,
      count(*) FILTER (WHERE kind = 'event') AS events,
      count(*) FILTER (WHERE kind = 'event' AND product IS NOT NULL) AS clicks,
      count(DISTINCT visitor) AS visitors,
      count(*) FILTER (WHERE kind = 'engagement' AND engaged_ms > 0) AS engagements,
      sum(engaged_ms) FILTER (WHERE kind = 'engagement' AND engaged_ms > 0) AS engaged_ms,
      count(*) AS conversions, sum(revenue) AS revenue
    FROM m${groupBy(names())})`);
  if (sessionMetrics) {
    ctes.push(`v AS (SELECT ${select(names())}count(*) AS visits, sum(s_pv) AS session_pageviews,
        count(*) FILTER (WHERE s_pv <= 1) AS bounces, sum(epoch_ms(s_t1) - epoch_ms(s_t0)) AS duration_ms
      FROM (SELECT DISTINCT ${select(dims('s_t0'))}session, s_pv, s_t0, s_t1 FROM m)${groupBy(names())})`);
  }
  if (needBase) {
    const base = withoutGoals(query.filters);
    ctes.push(`b AS (SELECT ${select(dims('ts', true))}count(DISTINCT visitor) AS base_visitors
      FROM ev${base === null ? '' : ` WHERE ${filterSql(base, p)}`}${groupBy(names(true))})`);
  }

  const join = (alias: string, cols: string[], kind: 'FULL' | 'LEFT') =>
    cols.length === 0 ? ` CROSS JOIN ${alias}` : ` ${kind} JOIN ${alias} USING (${cols.join(', ')})`;
  let from_ = 'e';
  if (sessionMetrics) from_ += join('v', names(), 'FULL');
  if (needBase) from_ += join('b', names(true), 'LEFT');

  const metricCols = query.metrics.map((m, i) => `${METRIC_SQL[m]} AS m${i}`);
  const nonZero = query.metrics.map((_, i) => `m${i} <> 0`).join(' OR ');
  const order: string[] = query.orderBy.map(
    (o) => `${o.target.kind === 'metric' ? 'm' : 'd'}${o.target.index} ${o.direction.toUpperCase()}`,
  );
  if (query.orderBy.length === 0) {
    const time = query.dimensions.findIndex((d) => d.kind === 'time');
    order.push(time >= 0 ? `d${time} ASC` : 'm0 DESC');
  }
  for (const name of names()) order.push(`${name} ASC`);
  // Whole numbers checked by the parser.
  const paging = options.paginate ? ` LIMIT ${query.limit} OFFSET ${query.offset}` : '';

  const sql = `WITH ${ctes.join(',\n')}
SELECT *, count(*) OVER () AS total_rows FROM (SELECT ${select(names())}${metricCols.join(', ')} FROM ${from_}) r
${query.dimensions.length > 0 ? `WHERE ${nonZero}\n` : ''}ORDER BY ${order.join(', ')}${paging}`;
  return { sql, params: p.values };
}
