import { likePattern } from './build-sql.js';
import { type BuiltSql, SqlParams, tsParam, type WhereSql, withEventSource } from './event-source.js';
import type { EventSource } from './run-query.js';

// Funnels (API.md "Funnels"): a visitor counts at step k if they did steps 1..k in that order,
// step k no later than `window` after their step 1, within the date range; sessions do not bound
// it. "In that order": each step is strictly later in time than the one before (events of the
// same millisecond do not follow each other, whatever order they were sent in), and one event
// moves a chain forward by one step at most (it may also start a new chain, as a step 1).
//
// One scan of the files. For every event that matches step k, c_k is the latest start (step 1's
// time) of a chain that reaches step k with it: c_1 is the event's own time, and c_k is the
// greatest c_(k-1) among the visitor's earlier events, if that start is within the window. The
// latest start is the one to keep because it leaves the most room for the steps after it. Each
// c_k is one window function over the rows c_(k-1) left, so a funnel of n steps is one read and
// n-1 window passes, where a join per step would read the events n times.
// (A list_reduce over each visitor's list of events, one sort instead of n-1, was measured
// slower: DuckDB evaluates its lambdas event by event.)

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

export function stepSql(step: FunnelStep, params: SqlParams): string {
  if ('page' in step) return `(kind = 'pageview' AND page LIKE ${params.add(likePattern(step.page))} ESCAPE '\\')`;
  return `(kind = 'event' AND name = ${params.add(step.event)})`;
}

/** The SQL that gives one row, `s1 … sn`: the visitors who reached each step. */
export function funnelSql(source: string, query: FunnelQuery): BuiltSql {
  const n = query.steps.length;
  const params = new SqlParams();
  const steps = query.steps.map((step) => stepSql(step, params));
  const window = Math.round(query.windowMs ?? query.toMs - query.fromMs);
  const layers = ['l1 AS (SELECT *, CASE WHEN m1 THEN t END AS c1 FROM matched)'];
  for (let k = 2; k <= n; k++) {
    layers.push(
      `l${k} AS (SELECT * EXCLUDE (p), CASE WHEN m${k} AND p >= t - ${window} THEN p END AS c${k}
        FROM (SELECT *, max(c${k - 1}) OVER (${ORDERED}) AS p FROM l${k - 1}))`,
    );
  }
  const reached = range(n)
    .reverse()
    .map((k) => `WHEN c${k} IS NOT NULL THEN ${k}`)
    .join(' ');
  const sql = `WITH matched AS (
      SELECT visitor_h, epoch_ms(ts) AS t, ${steps.map((s, i) => `${s} AS m${i + 1}`).join(', ')}
      FROM ${source}
      WHERE site_id = ${params.add(query.siteId)} AND ts >= ${tsParam(params, query.fromMs)} AND ts < ${tsParam(params, query.toMs)}
        AND NOT bot AND (${query.where(params)}) AND (${steps.join(' OR ')})),
    ${layers.join(',\n    ')}
    SELECT ${range(n)
      .map((k) => `count(*) FILTER (WHERE r >= ${k})::DOUBLE AS s${k}`)
      .join(', ')}
    FROM (SELECT visitor_h, max(CASE ${reached} END) AS r FROM l${n} GROUP BY visitor_h)`;
  return { sql, params: params.values };
}

/** The funnel's steps, in order. */
export async function queryFunnel(deps: EventSource, query: FunnelQuery): Promise<FunnelStepResult[]> {
  const visitors = await withEventSource(
    deps,
    query.siteId,
    query.fromMs,
    query.toMs,
    async (source) => {
      const { sql, params } = funnelSql(source, query);
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

/**
 * A visitor's events by time: a frame of every strictly earlier one (a range frame, so events of
 * the same millisecond are not in each other's frame, and no tie-breaking key is sorted).
 */
const ORDERED = 'PARTITION BY visitor_h ORDER BY t RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING';

/** 1 … n */
const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
