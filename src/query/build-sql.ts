import { COUNTED_KINDS, type SnapshotDay } from '../events/event-row.js';
import { aggregateSql, propValueSql } from '../events/event-sql.js';
import { PROP_FIGURES } from '../events/props-file.js';
import { VISIT_FIELDS } from '../events/visits-file.js';
import type { Goal } from '../goals/goal.js';
import { type Dimension, type FilterDimension, NONE } from './dimensions.js';
import { type BuiltSql, rangeRows, SqlParams, summarisedDays } from './event-source.js';
import { type Metric, SESSION_METRICS } from './metrics.js';
import { topLevelGoalConditions } from './parse-query.js';
import type { Condition, Filter, Query, TimeRange } from './query.js';
import { bucketSql } from './time-buckets.js';

// The one place a Query becomes SQL (DuckDB, over the event store's Parquet files). Every value
// from the request (and the snapshot's file list) is a bound parameter; the SQL text holds only
// the catalogues' names.
//
//   all_  the site's human events of the range (site and time first: files are partitioned by
//         day; compacted files are sorted by kind, name, source and session, segments by ts)
//   s     per session: page views, first and last event, exit page (only when a session metric
//         or exit_page asks for it; one GROUP BY, no window)
//   ev    all_ with its session's columns
//   m     the events that match the filters (with the goal they complete, one row per goal,
//         when goal is a dimension)
//   e     event metrics per group: counts and unique visitors of m
//   v     visit metrics per group: the sessions with an event in m, each whole; a session's time
//         is its start
//   b     visitors per group without the goal conditions (what conversion_rate divides by)
//
// When the range holds whole days with a visits file (src/events/visits-file.ts), s and b read
// those days' visits instead of their events, and group only the other days' events; an
// unfiltered breakdown by a property reads those days' props files (src/events/props-file.ts).

/** A path pattern (`*` = any characters) as a LIKE pattern with `\` escaping. */
export function likePattern(pattern: string): string {
  return pattern.replace(/[\\%_]/g, (c) => `\\${c}`).replace(/\*/g, '%');
}

/** A custom property's value (NULL when the event lacks it), its key bound. */
const propSql = (key: string, p: SqlParams) => propValueSql(p.add(key));

/** A page view of a path pattern (goals, funnel steps); without a `*` the pattern is the path itself, and equality is cheaper than LIKE. */
export function pageViewSql(pattern: string, p: SqlParams): string {
  if (!pattern.includes('*')) return `(kind = 'pageview' AND page = ${p.add(pattern)})`;
  return `(kind = 'pageview' AND page LIKE ${p.add(likePattern(pattern))} ESCAPE '\\')`;
}

function goalSql(goal: Goal, p: SqlParams): string {
  if (goal.page !== undefined) return pageViewSql(goal.page, p);
  const props = Object.entries(goal.props ?? {}).map(([k, v]) => ` AND ${propSql(k, p)} = ${p.add(v)}`);
  return `(kind = 'event' AND name = ${p.add(goal.event)}${props.join('')})`;
}

function columnSql(d: FilterDimension | Dimension, p: SqlParams): string {
  if (d.kind === 'column') return d.sql;
  if (d.kind === 'prop') return propSql(d.key, p);
  throw new Error(`no column for ${d.name}`);
}

/**
 * SQL that is true where the condition holds. Under a negation it is never NULL (a missing value
 * is not any value); elsewhere NULL stands for false as it does in WHERE, FILTER and bool_or, and
 * the bare comparison is a filter the Parquet scan can evaluate (COALESCE hides it).
 */
function conditionSql(c: Condition, p: SqlParams, negated: boolean): string {
  let positive: string;
  if (c.dimension.kind === 'goal') {
    const goals = c.goals ?? [];
    const any = goals.map((g) => goalSql(g, p)).join(' OR ');
    // A goal on a property reads NULL where the event lacks the property: not a completion.
    const negates = negated || c.op === 'is_not' || c.op === 'contains_not';
    positive = goals.length === 0 ? 'false' : negates ? `coalesce(${any}, false)` : `(${any})`;
  } else {
    const col = columnSql(c.dimension, p);
    const values = c.values.filter((v) => v !== NONE);
    const parts: string[] = [];
    if (c.op === 'is' || c.op === 'is_not') {
      if (values.length > 0) parts.push(`${col} IN (${values.map((v) => p.add(v)).join(', ')})`);
      if (values.length < c.values.length) parts.push(`${col} IS NULL`);
    } else {
      // A missing value contains nothing, `(none)` included.
      for (const v of values) parts.push(`contains(${col}, ${p.add(v)})`);
    }
    if (parts.length === 0) parts.push('false');
    const negates = negated || c.op === 'is_not' || c.op === 'contains_not';
    positive = negates ? `coalesce(${parts.join(' OR ')}, false)` : `(${parts.join(' OR ')})`;
  }
  return c.op === 'is_not' || c.op === 'contains_not' ? `NOT ${positive}` : positive;
}

export function filterSql(f: Filter, p: SqlParams, negated = false): string {
  if ('dimension' in f) return conditionSql(f, p, negated);
  if (f.op === 'not') return `NOT (${filterSql(f.filter, p, true)})`;
  return `(${f.filters.map((x) => filterSql(x, p, negated)).join(f.op === 'and' ? ' AND ' : ' OR ')})`;
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

/** Each metric over the joined aggregates (their names differ, so none is qualified). */
const METRIC_SQL: Record<Metric, string> = {
  visitors: 'coalesce(visitors, 0)',
  visits: 'coalesce(visits, 0)',
  pageviews: 'coalesce(pageviews, 0)',
  views_per_visit: ratio('session_pageviews', 'visits', 1, 2),
  bounce_rate: ratio('bounces', 'visits', 100, 2),
  visit_duration: ratio('duration_ms', 'visits', 0.001, 1),
  events: 'coalesce(events, 0)',
  clicks: 'coalesce(clicks, 0)',
  time_on_page: ratio('engaged_ms', 'engagements', 0.001, 1),
  conversions: 'coalesce(conversions, 0)',
  conversion_rate: ratio('visitors', 'base_visitors', 100, 2),
  revenue: `${ROUND('coalesce(revenue, 0)::DOUBLE', 2)}`,
};

/** The event aggregates (src/events/event-sql.ts) each metric reads. */
const EVENT_NEEDS: Partial<Record<Metric, readonly string[]>> = {
  visitors: ['visitors'],
  pageviews: ['pageviews'],
  events: ['events'],
  clicks: ['clicks'],
  time_on_page: ['engagements', 'engaged_ms'],
  conversions: ['conversions'],
  conversion_rate: ['visitors'],
  revenue: ['revenue'],
};
/** Columns of the event rows each metric reads beyond ts, kind, visitor_h and session_h. */
const METRIC_COLUMNS: Partial<Record<Metric, readonly string[]>> = {
  clicks: ['product'],
  time_on_page: ['engaged_ms'],
  revenue: ['revenue'],
};
/** The columns goalSql reads (beyond kind): props, a wide column, only for goals on properties. */
const goalColumns = (goal: Goal): string[] =>
  goal.page !== undefined ? ['page'] : Object.keys(goal.props ?? {}).length > 0 ? ['name', 'props'] : ['name'];

function conditions(f: Filter | null): Condition[] {
  if (f === null) return [];
  if ('dimension' in f) return [f];
  return f.op === 'not' ? conditions(f.filter) : f.filters.flatMap(conditions);
}

const isExitPage = (d: FilterDimension | Dimension) => d.kind === 'column' && d.perSession === true;

export interface BuildOptions {
  range: TimeRange;
  /** The snapshot's days (at least one file). */
  days: readonly SnapshotDay[];
  /** The query's pagination; a comparison reads every group instead. */
  paginate: boolean;
}

const VISIT_FIELD_SET: ReadonlySet<string> = new Set(VISIT_FIELDS);

/** Result columns: d0…dn (dimension values; time as bucket start ms), m0…mk, total_rows. */
export function buildSql(query: Query, options: BuildOptions): BuiltSql {
  const p = new SqlParams();
  const zone = query.dimensions.some((d) => d.kind === 'time') ? p.add(query.zone) : '';
  const bots = query.bots === 'exclude' ? ' AND NOT bot' : query.bots === 'only' ? ' AND bot' : '';
  const dims = query.dimensions;
  const conds = conditions(query.filters);

  const eventNeeds = new Set(query.metrics.flatMap((m) => EVENT_NEEDS[m] ?? []));
  const sessionMetrics = query.metrics.some((m) => SESSION_METRICS.has(m));
  const needBase = query.metrics.includes('conversion_rate');
  const exitInFilter = conds.some((c) => isExitPage(c.dimension));
  const needExit = exitInFilter || dims.some(isExitPage);
  /** Visits grouped from the sessions alone: no dimension that differs between a session's events. */
  const bySessions = !exitInFilter && dims.every((d) => d.kind === 'time' || (d.kind === 'column' && d.session === true));

  // Only the columns the query reads: the scan projects them, and nothing else is carried.
  const columns = new Set(['ts', 'kind', 'visitor_h', 'session_h']);
  for (const m of query.metrics) for (const c of METRIC_COLUMNS[m] ?? []) columns.add(c);
  if (needExit) ['page', 'message_id'].forEach((c) => columns.add(c));
  for (const d of [...dims, ...conds.map((c) => c.dimension)]) {
    if (d.kind === 'column' && !isExitPage(d)) columns.add(d.sql);
    else if (d.kind === 'prop') columns.add('props');
  }
  const goalsRead = [...(dims.some((d) => d.kind === 'goal') ? query.goals : []), ...conds.flatMap((c) => c.goals ?? [])];
  for (const c of goalsRead.flatMap(goalColumns)) columns.add(c);

  /** The counted events of `days` in the range that pass `filter`, as `cols` (rangeRows). */
  const eventRows = (days: readonly SnapshotDay[], cols: readonly string[], filter: Filter | null): string | null =>
    rangeRows(days, options.range, cols, `${COUNTED_KINDS}${bots}${filter === null ? '' : ` AND ${filterSql(filter, p)}`}`, p);
  const ctes: string[] = [`all_ AS (${eventRows(options.days, [...columns], null)})`];
  const where = query.filters === null ? '' : ` WHERE ${filterSql(query.filters, p)}`;
  const exitSql = "arg_max(page, (ts, message_id)) FILTER (WHERE kind = 'pageview') AS exit_page";
  // A session's first and last event only when a duration or a time bucket reads them: each is
  // one more aggregate state per session.
  const sessionTimes = query.metrics.includes('visit_duration')
    ? ['min(ts) AS s_t0', 'max(ts) AS s_t1']
    : dims.some((d) => d.kind === 'time')
      ? ['min(ts) AS s_t0']
      : [];
  const sessionStats = ["count(*) FILTER (WHERE kind = 'pageview') AS s_pv", ...sessionTimes].join(', ');

  /** Dimension columns d0…dn; time at `timeOf` (the event's, or the session's start). */
  const dimCols = (timeOf: string, skipGoal = false) =>
    dims.flatMap((d, i) => {
      if (d.kind === 'goal') return skipGoal ? [] : [`goal AS d${i}`];
      if (d.kind === 'time') return [`${bucketSql(d.unit, timeOf, zone)} AS d${i}`];
      return [`coalesce(${columnSql(d, p)}, '${NONE}') AS d${i}`];
    });
  const names = (skipGoal = false) => dims.flatMap((d, i) => (skipGoal && d.kind === 'goal' ? [] : [`d${i}`]));
  const groupBy = (cols: string[]) => (cols.length === 0 ? '' : ` GROUP BY ${cols.join(', ')}`);
  const select = (cols: string[]) => (cols.length === 0 ? '' : `${cols.join(', ')}, `);

  // The events the filters select, with their session's exit page when a filter or an event
  // figure grouped by it needs it on the rows.
  const visitLevel = conds.every((c) => c.dimension.kind === 'column' && c.dimension.session === true);
  // Visits of sessions picked by visit-level filters alone: their rows are exactly the matching events.
  const sessionsOfMatches = sessionMetrics && bySessions && query.filters !== null && visitLevel && !dims.some((d) => d.kind === 'goal');

  // Whole days of the range that have a visits file: their visits (and conversion_rate's
  // visitors) are read from it instead of from their events, when every column those need is in
  // it. Bots counted with humans would need a session's two rows merged: that reads events.
  const visitDays = summarisedDays(options.days, options.range);
  const inVisits = (d: FilterDimension | Dimension) => d.kind === 'column' && VISIT_FIELD_SET.has(d.sql);
  const canVisits = visitDays.length > 0 && query.bots !== 'include';
  const base = withoutGoals(query.filters);
  const sessionsFromVisits =
    canVisits &&
    sessionMetrics &&
    bySessions &&
    visitLevel &&
    conds.every((c) => inVisits(c.dimension)) &&
    dims.every((d) => d.kind === 'time' || inVisits(d));
  const baseFromVisits =
    canVisits && needBase && conditions(base).every((c) => inVisits(c.dimension)) && dims.every((d) => d.kind === 'goal' || inVisits(d));
  const baseWithEvents = needBase && !dims.some((d) => d.kind === 'goal') && !baseFromVisits;
  const visitFields = dims.flatMap((d) => (d.kind === 'column' ? [d.sql] : []));
  /** The whole days' visits rows (visits-file.ts columns) that pass `filter`, and `also`. */
  const visitRows = (cols: readonly string[], filter: Filter | null, also = '') =>
    `SELECT ${cols.join(', ')} FROM read_parquet(${p.add(visitDays.map((d) => d.summaries?.visits))})
      WHERE ${query.bots === 'only' ? 'bot' : 'NOT bot'}${filter === null ? '' : ` AND ${filterSql(filter, p)}`}${also}`;
  /** The events (as eventRows) of the days besides `read` (read from their summaries), or null when there is none. */
  const rowsBesides = (read: readonly SnapshotDay[], cols: readonly string[], filter: Filter | null) =>
    eventRows(
      options.days.filter((d) => !read.includes(d)),
      cols,
      filter,
    );
  const otherRows = (cols: readonly string[], filter: Filter | null) => rowsBesides(visitDays, cols, filter);
  const unionAll = (parts: readonly (string | null)[]) => parts.filter((x) => x !== null).join(' UNION ALL ');
  // A breakdown by one property, unfiltered, of figures a props file carries: the whole days'
  // rows of its key come from their props files (props-file.ts), the other days' from their events.
  const propDim = dims.length === 1 && dims[0]?.kind === 'prop' ? dims[0] : undefined;
  /** Whole days whose props file answers for the key: it holds the key, or all of the day's keys (the day lacks it). */
  const propDays =
    propDim === undefined
      ? []
      : visitDays.filter((d) => d.propKeys !== undefined && (d.propKeys.complete || d.propKeys.keys.includes(propDim.key)));
  const propsFromSummaries =
    propDim !== undefined &&
    propDays.length > 0 &&
    query.filters === null &&
    !sessionMetrics &&
    !needBase &&
    [...eventNeeds].every((n) => n === 'visitors' || (PROP_FIGURES as readonly string[]).includes(n));
  // Visitors and page views from the sessions' rows when those are exactly the matching events
  // and every group is the same for all of a session's events: one GROUP BY over the events (per
  // session) instead of that and a second pass for the distinct visitors.
  const eventsFromSessions =
    sessionMetrics &&
    bySessions &&
    (query.filters === null || visitLevel) &&
    eventNeeds.size > 0 &&
    [...eventNeeds].every((n) => n === 'visitors' || n === 'pageviews') &&
    !dims.some((d) => d.kind === 'time' || isExitPage(d));
  const exitOnRows = exitInFilter || (dims.some(isExitPage) && (eventNeeds.size > 0 || needBase));
  if (exitOnRows) {
    ctes.push(`x AS (SELECT session_h, ${exitSql} FROM all_ GROUP BY session_h)`);
    ctes.push('ev AS (SELECT * FROM all_ JOIN x USING (session_h))');
  } else ctes.push('ev AS (SELECT * FROM all_)');
  if (dims.some((d) => d.kind === 'goal')) {
    const parts = query.goals.map((g) => `SELECT ev.*, ${p.add(g.name)}::VARCHAR AS goal FROM ev WHERE ${goalSql(g, p)}`);
    const union = parts.length === 0 ? 'SELECT ev.*, NULL::VARCHAR AS goal FROM ev WHERE false' : parts.join(' UNION ALL ');
    ctes.push(`m AS (SELECT * FROM (${union})${where})`);
  } else {
    // The matching events once, when both the event figures and the sessions read them (the
    // Parquet files are then scanned once, and only the matching rows are kept).
    const shared = sessionsOfMatches && eventNeeds.size > 0 && !baseWithEvents && !eventsFromSessions && !sessionsFromVisits;
    ctes.push(`m AS${shared ? ' MATERIALIZED' : ''} (SELECT * FROM ev${where})`);
  }

  // conversion_rate's two visitor counts in one pass when they share their groups: the events
  // of the filter less its goal conditions, the goal's among them flagged.
  if (baseWithEvents) {
    const flagged = `SELECT *, ${query.filters === null ? 'true' : filterSql(query.filters, p)} AS hit FROM ev${base === null ? '' : ` WHERE ${filterSql(base, p)}`}`;
    const aggregates = [...[...eventNeeds].map((n) => aggregateSql(n, 'hit')), 'count(DISTINCT visitor_h) AS base_visitors'];
    ctes.push(`e AS (SELECT ${select(dimCols('ts'))}${aggregates.join(', ')} FROM (${flagged})${groupBy(names())})`);
  } else if (eventNeeds.size > 0 && !eventsFromSessions) {
    const props = dims.some((d) => d.kind === 'prop');
    if (propsFromSummaries) {
      // Rows per value and visitor of each day (the other days' grouped so from their events),
      // counted per value. A day without the key has no rows of it: its visitors' totals (no key)
      // are all "(none)". These are a few rows per visitor and day, few enough that the distinct
      // count per value costs less than grouping them by value and visitor first.
      const sums = [...eventNeeds].filter((n) => n !== 'visitors');
      const withKey = propDays.filter((d) => d.propKeys?.keys.includes(propDim.key));
      const lacking = propDays.filter((d) => !withKey.includes(d));
      const rowsOf = (days: readonly SnapshotDay[], where: string) =>
        days.length === 0
          ? null
          : `SELECT ${['value AS d0', 'visitor_h', ...sums].join(', ')} FROM read_parquet(${p.add(days.map((d) => d.summaries?.props))})
            WHERE ${where}${bots}`;
      const events = rowsBesides(propDays, [...columns], null);
      const eventGroups =
        events === null
          ? null
          : `SELECT ${[...dimCols('ts'), 'visitor_h', ...sums.map((n) => aggregateSql(n))].join(', ')} FROM (${events}) GROUP BY d0, visitor_h`;
      const rows = unionAll([rowsOf(withKey, `key = ${p.add(propDim.key)}`), rowsOf(lacking, 'key IS NULL'), eventGroups]);
      const figures = [
        ...(eventNeeds.has('visitors') ? ['count(DISTINCT visitor_h) AS visitors'] : []),
        ...sums.map((n) => `sum(${n}) AS ${n}`),
      ];
      ctes.push(`e AS (SELECT d0, ${figures.join(', ')} FROM (${rows}) GROUP BY d0)`);
    } else if (props && eventNeeds.has('visitors') && dims.every((d) => d.kind === 'column' || d.kind === 'prop')) {
      // Visitors per custom property value: the events grouped by value and visitor, then by
      // value, the second summing the first's counts. Over every event of a range, one hash table
      // of (value, visitor) pairs costs less than the sets count(DISTINCT) keeps per value.
      // (Grouping by the whole props text first, to read the JSON once per group, pays only when
      // few texts repeat: a property such as a product id makes nearly every event a group.)
      const partial = [...eventNeeds].filter((n) => n !== 'visitors');
      const perValue = `SELECT ${[...dimCols('ts'), 'visitor_h', ...partial.map((n) => aggregateSql(n))].join(', ')} FROM m GROUP BY ${[...names(), 'visitor_h'].join(', ')}`;
      const sums = partial.map((n) => `sum(${n}) AS ${n}`);
      ctes.push(
        `e AS (SELECT ${select(names())}${['count(visitor_h) AS visitors', ...sums].join(', ')} FROM (${perValue})${groupBy(names())})`,
      );
    } else {
      const aggregates = [...eventNeeds].map((n) => aggregateSql(n));
      ctes.push(`e AS (SELECT ${select(dimCols('ts'))}${aggregates.join(', ')} FROM m${groupBy(names())})`);
    }
  }
  if (sessionMetrics) {
    const visitAggregates = [
      'count(*) AS visits',
      'sum(s_pv) AS session_pageviews',
      'count(*) FILTER (WHERE s_pv <= 1) AS bounces',
      ...(query.metrics.includes('visit_duration') ? ['sum(epoch_ms(s_t1) - epoch_ms(s_t0)) AS duration_ms'] : []),
    ].join(', ');
    if (bySessions) {
      // One pass over the range's events per session: its figures, its visit-level values, and
      // whether one of its events matches the filters.
      const values = dims.flatMap((d) => (d.kind === 'column' && !isExitPage(d) ? [`any_value(${d.sql}) AS ${d.sql}`] : []));
      // Filters on visit-level values alone hold for every event of a session or for none: they
      // pick the sessions' rows before grouping (a referrer's visits are a small share of all).
      const hit = query.filters === null || visitLevel ? [] : [`bool_or(${filterSql(query.filters, p)}) AS hit`];
      const exit = dims.some(isExitPage) ? [exitSql] : [];
      const visitor = eventsFromSessions ? ['any_value(visitor_h) AS s_visitor'] : [];
      if (sessionsFromVisits) {
        // Rows that cannot be part of a longer session are sessions as they are; the others, and
        // the sessions of the other files' events, are merged by session.
        const cols = [
          'session_h',
          'visitor_h',
          'pageviews AS s_pv',
          't0 AS s_t0',
          't0 + to_milliseconds(duration_ms) AS s_t1',
          ...visitFields,
        ];
        const events = otherRows(['session_h', 'visitor_h', 'kind', 'ts', ...visitFields], query.filters);
        const fromEvents =
          events === null
            ? null
            : `SELECT ${[
                'session_h',
                'any_value(visitor_h) AS visitor_h',
                "count(*) FILTER (WHERE kind = 'pageview') AS s_pv",
                'min(ts) AS s_t0',
                'max(ts) AS s_t1',
              ]
                .concat(visitFields.map((f) => `any_value(${f}) AS ${f}`))
                .join(', ')} FROM (${events}) GROUP BY session_h`;
        const parts = unionAll([visitRows(cols, query.filters, ' AND edge'), fromEvents]);
        const merged = [
          'sum(s_pv) AS s_pv',
          'min(s_t0) AS s_t0',
          'max(s_t1) AS s_t1',
          ...visitFields.map((f) => `any_value(${f}) AS ${f}`),
        ];
        ctes.push(`s AS (SELECT s_pv, s_t0, s_t1, ${select(visitFields)}visitor_h AS s_visitor FROM (${visitRows(cols, query.filters, ' AND NOT edge')})
          UNION ALL SELECT ${merged.join(', ')}, any_value(visitor_h) AS s_visitor FROM (${parts}) GROUP BY session_h)`);
      } else {
        const rows = sessionsOfMatches ? 'm' : query.filters !== null && visitLevel ? `all_${where}` : 'all_';
        ctes.push(`s AS (SELECT ${[sessionStats, ...values, ...exit, ...hit, ...visitor].join(', ')} FROM ${rows} GROUP BY session_h)`);
      }
      // The event figures the sessions give come with the visits: s is read once.
      const fromSessions = eventsFromSessions
        ? [...eventNeeds].map((n) => (n === 'visitors' ? 'count(DISTINCT s_visitor) AS visitors' : 'sum(s_pv) AS pageviews'))
        : [];
      ctes.push(
        `v AS (SELECT ${select(dimCols('s_t0'))}${[visitAggregates, ...fromSessions].join(', ')} FROM s${hit.length > 0 ? ' WHERE hit' : ''}${groupBy(names())})`,
      );
    } else {
      // Visits per group of an event-level dimension: the (session, values) pairs of the matching
      // events, each joined to its session's figures.
      const exit = needExit ? [exitSql] : [];
      ctes.push(`s AS (SELECT session_h, ${[sessionStats, ...exit].join(', ')} FROM all_ GROUP BY session_h)`);
      const pairCols = dims.flatMap((d, i) =>
        d.kind === 'time'
          ? []
          : d.kind === 'goal'
            ? [`goal AS d${i}`]
            : isExitPage(d)
              ? []
              : [`coalesce(${columnSql(d, p)}, '${NONE}') AS d${i}`],
      );
      ctes.push(`pairs AS (SELECT DISTINCT ${select(pairCols)}session_h FROM m)`);
      const outer = dims.flatMap((d, i) =>
        d.kind === 'time'
          ? [`${bucketSql(d.unit, 's_t0', zone)} AS d${i}`]
          : isExitPage(d)
            ? [`coalesce(exit_page, '${NONE}') AS d${i}`]
            : [`d${i}`],
      );
      ctes.push(`v AS (SELECT ${select(outer)}${visitAggregates} FROM pairs JOIN s USING (session_h)${groupBy(names())})`);
    }
  }
  if (baseFromVisits) {
    // Distinct visitors need no merged sessions: the whole days' visits rows and the other events.
    const cols = ['visitor_h', ...visitFields];
    ctes.push(`b AS (SELECT ${select(dimCols('ts', true))}count(DISTINCT visitor_h) AS base_visitors
      FROM (${unionAll([visitRows(cols, base), otherRows(cols, base)])})${groupBy(names(true))})`);
  } else if (needBase && !baseWithEvents) {
    ctes.push(`b AS (SELECT ${select(dimCols('ts', true))}count(DISTINCT visitor_h) AS base_visitors
      FROM ev${base === null ? '' : ` WHERE ${filterSql(base, p)}`}${groupBy(names(true))})`);
  }

  const join = (alias: string, cols: string[], kind: 'FULL' | 'LEFT') =>
    cols.length === 0 ? ` CROSS JOIN ${alias}` : ` ${kind} JOIN ${alias} USING (${cols.join(', ')})`;
  const eventCte = eventNeeds.size > 0 && !eventsFromSessions;
  let from_ = eventCte ? 'e' : 'v';
  if (sessionMetrics && eventCte) from_ += join('v', names(), 'FULL');
  if (needBase && !baseWithEvents) from_ += join('b', names(true), 'LEFT');

  const metricCols = query.metrics.map((m, i) => `${METRIC_SQL[m]} AS m${i}`);
  const nonZero = query.metrics.map((_, i) => `m${i} <> 0`).join(' OR ');
  const order: string[] = query.orderBy.map(
    (o) => `${o.target.kind === 'metric' ? 'm' : 'd'}${o.target.index} ${o.direction.toUpperCase()}`,
  );
  if (query.orderBy.length === 0) {
    const time = dims.findIndex((d) => d.kind === 'time');
    order.push(time >= 0 ? `d${time} ASC` : 'm0 DESC');
  }
  for (const name of names()) order.push(`${name} ASC`);
  // Whole numbers checked by the parser.
  const paging = options.paginate ? ` LIMIT ${query.limit} OFFSET ${query.offset}` : '';

  const main = `SELECT *, count(*) OVER () AS total_rows FROM (SELECT ${select(names())}${metricCols.join(', ')} FROM ${from_}) r
${dims.length > 0 ? `WHERE ${nonZero}\n` : ''}ORDER BY ${order.join(', ')}${paging}`;
  return statement(ctes, main, p.values);
}

/**
 * The statement of the CTEs (`name AS (…)`) the main SELECT reads, directly or through others,
 * with its parameters numbered as they appear. DuckDB drops a CTE nobody reads, and its
 * parameters with it, so one left in would shift the numbers of the rest.
 */
function statement(ctes: readonly string[], main: string, values: readonly unknown[]): BuiltSql {
  const named = ctes.map((text) => ({ name: text.slice(0, text.indexOf(' AS')), text }));
  const read = new Set<string>();
  const visit = (text: string) => {
    for (const c of named) {
      if (!read.has(c.name) && new RegExp(`(FROM|JOIN)\\s+${c.name}\\b`).test(text)) {
        read.add(c.name);
        visit(c.text);
      }
    }
  };
  visit(main);
  const text = `WITH ${named
    .filter((c) => read.has(c.name))
    .map((c) => c.text)
    .join(',\n')}\n${main}`;
  const order = new Map<number, number>();
  const params: unknown[] = [];
  const sql = text.replace(/\$(\d+)/g, (_, n: string) => {
    const from = Number(n);
    let to = order.get(from);
    if (to === undefined) {
      params.push(values[from - 1]);
      to = params.length;
      order.set(from, to);
    }
    return `$${to}`;
  });
  return { sql, params };
}
