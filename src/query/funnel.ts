import type { SnapshotDay } from '../events/event-row.js';
import { likePattern, pageViewSql } from './build-sql.js';
import { type BuiltSql, NO_FILTER, rangeRows, SqlParams, summarisedDays, type WhereSql, withEventSource } from './event-source.js';
import type { EventSource } from './run-query.js';

// Funnels (API.md "Funnels"): a visitor counts at step k if they did steps 1..k in that order,
// step k no later than `window` after their step 1, within the date range; sessions do not bound
// it. "In that order": each step is strictly later in time than the one before (events of the
// same millisecond do not follow each other, whatever order they were sent in), and one event
// moves a chain forward by one step at most (it may also start a new chain, as a step 1).
//
// One scan of the files keeps the events that may be a step, with one flag per step. The scan's
// filter tests one column at a time (the pages and event names of the steps), which costs little
// per row; the exact step tests (kind, page pattern) run on the kept rows only. Days inside the
// range are read without a time filter, and none with a site filter (rangeRows). A funnel without
// filters reads the page steps of whole days from their pages files (src/events/pages-file.ts),
// where a page's views sit together, and their event steps from the event files, where an event
// name's do (compaction.ts): neither reads the rows of other pages or names. A filter may test
// any column, so a filtered funnel reads the events.
//
// Then one of two algorithms, neither of which sorts every kept event once per step:
// - no window (or one as long as the range): the earliest chain is the best one. t_1 is a
//   visitor's first step 1, t_k their first step-k event strictly after t_(k-1). One GROUP BY on
//   the visitor gives t_1, the list of times of each middle step and the last step's last time;
//   list filters then give t_2 … t_(n-1), and the visitor reached step n if that last time is
//   after t_(n-1).
// - a window: for every event that matches step k, c_k is the latest start (step 1's time) of a
//   chain that reaches step k with it: c_1 is the event's own time, and c_k is the greatest
//   c_(k-1) among the visitor's strictly earlier events, if that start is within the window (the
//   latest start leaves the most room for the steps after it). c_k never decreases with the
//   event's time, so the greatest earlier c_(k-1) is the one of the latest earlier event that has
//   one: an ASOF join of step k's events on step k-1's chains.
// (A window function per step over all the kept events, hash joins per step for the earliest
// chains, and a list_reduce over each visitor's list of events were measured slower.)

export const MIN_FUNNEL_STEPS = 2;
export const MAX_FUNNEL_STEPS = 8;

export type FunnelStep = { page: string } | { event: string };

export interface FunnelQuery {
  siteId: string;
  /** Inclusive start, ms. */
  fromMs: number;
  /** Exclusive end, ms. */
  toMs: number;
  steps: readonly FunnelStep[];
  /** Longest time from step 1 to the last step, ms; null: the whole range. */
  windowMs: number | null;
  /** The query's filters. */
  where: WhereSql;
}

export interface FunnelStepResult {
  visitors: number;
  /** Percentage (0–100, two decimals) of step 1's visitors who reached this step. */
  conversion_rate: number;
  /** Visitors of the step before who did not reach this one (0 for step 1). */
  dropoff: number;
}

/**
 * How the chains are followed (see the header): `earliest` is exact only when the window cannot
 * bind; `latest-start` always is. Tests pick one to compare them.
 */
export type FunnelAlgorithm = 'earliest' | 'latest-start';

/** `earliest` when no two events of the range can be further apart than the window. */
export function funnelAlgorithm(query: FunnelQuery): FunnelAlgorithm {
  return query.windowMs === null || query.windowMs >= query.toMs - query.fromMs ? 'earliest' : 'latest-start';
}

/** An event of the step. */
export function stepSql(step: FunnelStep, params: SqlParams): string {
  if ('event' in step) return `(kind = 'event' AND name = ${params.add(step.event)})`;
  return pageViewSql(step.page, params);
}

/** True for every event of some step, testing `page` and `name` apart (a superset of the steps). */
export function candidateSql(steps: readonly FunnelStep[], params: SqlParams): string {
  const pages = new Set<string>();
  const patterns = new Set<string>();
  const names = new Set<string>();
  for (const step of steps) {
    if ('event' in step) names.add(step.event);
    else if (step.page.includes('*')) patterns.add(step.page);
    else pages.add(step.page);
  }
  const terms = [...patterns].map((p) => `page LIKE ${params.add(likePattern(p))} ESCAPE '\\'`);
  if (pages.size > 0) terms.push(`page IN (${[...pages].map((p) => params.add(p)).join(', ')})`);
  if (names.size > 0) terms.push(`name IN (${[...names].map((n) => params.add(n)).join(', ')})`);
  return terms.join(' OR ');
}

/** The SQL that gives one row, `s1 … sn`: the visitors who reached each step (`days` has a file). */
export function funnelSql(days: readonly SnapshotDay[], query: FunnelQuery, algorithm = funnelAlgorithm(query)): BuiltSql {
  const params = new SqlParams();
  const kept = keptSql(days, query, params);
  const n = query.steps.length;
  const window = Math.round(query.windowMs ?? query.toMs - query.fromMs);
  const sql = algorithm === 'earliest' ? earliestSql(kept, n) : latestStartSql(kept, n, window);
  return { sql, params: params.values };
}

/** The events that may be a step: `visitor_h`, `t` (epoch ms) and a flag per step, `m1 … mn`. */
function keptSql(days: readonly SnapshotDay[], query: FunnelQuery, params: SqlParams): string {
  const cols = ['visitor_h', 'epoch_ms(ts) AS t', ...query.steps.map((step, i) => `${stepSql(step, params)} AS m${i + 1}`)];
  const summarised = query.where === NO_FILTER ? summarisedDays(days, query) : [];
  const others = days.filter((d) => !summarised.includes(d));
  const pageSteps = query.steps.filter((step) => 'page' in step);
  const eventSteps = query.steps.filter((step) => 'event' in step);
  // Each part's SQL is written only when it is read: a placeholder that no part reads would shift
  // DuckDB's numbering.
  const parts: (string | null)[] = [];
  if (others.length > 0)
    parts.push(rangeRows(others, query, cols, `NOT bot AND (${query.where(params)}) AND (${candidateSql(query.steps, params)})`, params));
  if (summarised.length > 0 && pageSteps.length > 0) {
    // The pages file's rows are page views; the step tests read kind and name too.
    const pages = `(SELECT *, 'pageview' AS kind, NULL::VARCHAR AS name FROM read_parquet(${params.add(summarised.map((d) => d.summaries?.pages))}))`;
    parts.push(`SELECT ${cols.join(', ')} FROM ${pages} WHERE NOT bot AND (${candidateSql(pageSteps, params)})`);
  }
  if (summarised.length > 0 && eventSteps.length > 0)
    parts.push(rangeRows(summarised, query, cols, `NOT bot AND kind = 'event' AND (${candidateSql(eventSteps, params)})`, params));
  const rows = parts.filter((part) => part !== null);
  if (rows.length === 0) throw new Error('a funnel reads at least one day');
  return rows.join('\n      UNION ALL ');
}

/**
 * Earliest chains, from one GROUP BY on the visitor: step 1's first time t1, every time of each
 * middle step, and the last step's last time (the last step only has to come after t_(n-1)).
 */
function earliestSql(kept: string, n: number): string {
  const perVisitor = range(n).map((k) => {
    if (k === 1) return 'min(t) FILTER (WHERE m1) AS t1';
    if (k < n) return `list(t) FILTER (WHERE m${k}) AS l${k}`;
    return `max(t) FILTER (WHERE m${k}) AS x${k}`;
  });
  // t_k: the first time of step k strictly after t_(k-1) (NULL when none); each refers to the one before.
  const chain = range(n - 1)
    .slice(1)
    .map((k) => `list_min(list_filter(l${k}, lambda x: x > t${k - 1})) AS t${k}`);
  const counts = range(n).map((k) => (k < n ? `count(t${k})::DOUBLE AS s${k}` : `count_if(x${k} > t${k - 1})::DOUBLE AS s${k}`));
  return `SELECT ${counts.join(', ')}
    FROM (SELECT t1, ${[...chain, `x${n}`].join(', ')}
      FROM (SELECT ${perVisitor.join(', ')} FROM (${kept}) GROUP BY visitor_h))`;
}

/** Latest starts: c_k, the events of step k that end a chain within the window, with its start c. */
function latestStartSql(kept: string, n: number, window: number): string {
  const steps = ['c1 AS (SELECT visitor_h, t, t AS c FROM kept WHERE m1)'];
  for (let k = 2; k <= n; k++) {
    // ASOF: the visitor's latest chain of step k-1 strictly before the event.
    steps.push(
      `c${k} AS (SELECT e.visitor_h, e.t, p.c
        FROM (SELECT visitor_h, t FROM kept WHERE m${k}) e
        ASOF JOIN c${k - 1} p ON e.visitor_h = p.visitor_h AND e.t > p.t
        WHERE p.c >= e.t - ${window})`,
    );
  }
  const counts = range(n).map((k) => `(SELECT count(DISTINCT visitor_h) FROM c${k})::DOUBLE AS s${k}`);
  return `WITH kept AS MATERIALIZED (${kept}),
    ${steps.join(',\n    ')}
    SELECT ${counts.join(', ')}`;
}

/** The funnel's steps, in order. */
export async function queryFunnel(deps: EventSource, query: FunnelQuery, algorithm = funnelAlgorithm(query)): Promise<FunnelStepResult[]> {
  const visitors = await withEventSource(
    deps,
    query.siteId,
    query.fromMs,
    query.toMs,
    async (_, days) => {
      const { sql, params } = funnelSql(days, query, algorithm);
      const [row] = await deps.sql.all(sql, params);
      return query.steps.map((_, i) => Number(row?.[`s${i + 1}`] ?? 0));
    },
    () => query.steps.map(() => 0),
  );
  return funnelSteps(visitors);
}

/** Conversion rates and drop-offs of the visitors at each step. */
export function funnelSteps(visitors: readonly number[]): FunnelStepResult[] {
  const entered = visitors[0] ?? 0;
  return visitors.map((v, i) => ({
    visitors: v,
    conversion_rate: entered === 0 ? 0 : Math.round((v / entered) * 10_000) / 100,
    dropoff: i === 0 ? 0 : (visitors[i - 1] ?? 0) - v,
  }));
}

/** 1 … n */
const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
