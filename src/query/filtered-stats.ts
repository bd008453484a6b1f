import { TallyError } from '../errors.js';
import type { Goal } from '../goals/goal.js';
import type { Metric as CounterMetric } from '../present/stats-queries.js';
import { type Interval, MAX_POINTS, type Period, resolvePeriod } from '../present/stats-range.js';
import { parseCompactFilters } from './compact-filters.js';
import { type Dimension, dimensionNamed, NONE } from './dimensions.js';
import type { Metric } from './metrics.js';
import { parseFilters } from './parse-query.js';
import type { BotsChoice, Filter, Query, TimeRange } from './query.js';
import type { RunQuery } from './run-query.js';
import { bucketLabel, bucketStart, nextBucket } from './time-buckets.js';

// The GET /v1/stats/summary|top|timeseries|export answers from the query engine: what those
// routes do when they are given filters, or a dimension the counters do not keep (country). The
// answers keep the routes' own shapes; the figures follow docs/query.md's definitions.

export interface StatsScope {
  siteId: string;
  zone: string;
  goals: readonly Goal[];
  /** The compact filters text, if any. */
  filters: string | undefined;
  period: { period?: Period; from?: string; to?: string };
}

/** Names of the GET top route's dimensions in the query API (its referrer is the referrer's host). */
const TOP_DIMENSION: Record<string, string> = { referrer: 'referrer_host' };

export function createFilteredStats(runQuery: RunQuery, now: () => number = Date.now) {
  function filterOf(scope: StatsScope): Filter | null {
    if (scope.filters === undefined) return null;
    try {
      return parseFilters(parseCompactFilters(scope.filters), scope.goals);
    } catch (err) {
      // The tree's pointers mean nothing in a query string: the parameter is what is wrong.
      if (err instanceof TallyError) throw new TallyError('invalid_request', `filters: ${err.message}`, '/filters');
      throw err;
    }
  }

  function query(
    scope: StatsScope,
    parts: { metrics: Metric[]; dimensions?: Dimension[]; filters?: Filter | null; limit?: number; bots?: BotsChoice; range?: TimeRange },
  ): Query {
    const range = parts.range ?? rangeOf(scope);
    return {
      siteId: scope.siteId,
      zone: scope.zone,
      range,
      comparison: null,
      metrics: parts.metrics,
      dimensions: parts.dimensions ?? [],
      filters: parts.filters === undefined ? filterOf(scope) : parts.filters,
      goals: scope.goals,
      orderBy: [],
      limit: parts.limit ?? 10_000,
      offset: 0,
      bots: parts.bots ?? 'exclude',
    };
  }

  function rangeOf(scope: StatsScope): TimeRange {
    const r = resolvePeriod(scope.period, now(), scope.zone);
    return { fromMs: r.from, toMs: r.to };
  }

  async function summary(scope: StatsScope) {
    const filters = filterOf(scope);
    const metrics: Metric[] = ['visitors', 'pageviews', 'events', 'clicks', 'bounce_rate', 'time_on_page'];
    const [human, bots] = await Promise.all([
      runQuery(query(scope, { metrics, filters })),
      runQuery(query(scope, { metrics: ['pageviews', 'events'], filters, bots: 'only' })),
    ]);
    const [visitors = 0, pageviews = 0, events = 0, clicks = 0, bounceRate = 0, engaged = 0] = human.results[0]?.metrics ?? [];
    const [botViews = 0, botEvents = 0] = bots.results[0]?.metrics ?? [];
    return {
      visitors,
      pageviews,
      events,
      clicks,
      // The summary route's rate is a share (0 to 1), the query API's a percentage.
      bounceRate: Math.round(bounceRate * 100) / 10_000,
      avgEngagedSeconds: engaged,
      bots: botViews + botEvents,
    };
  }

  async function top(scope: StatsScope, args: { dimension: string; metric: CounterMetric; limit: number }) {
    const dimension = dimensionNamed(TOP_DIMENSION[args.dimension] ?? args.dimension) as Dimension;
    if (dimension.kind === 'time' || dimension.kind === 'goal') throw new Error(`not a top dimension: ${args.dimension}`);
    // A ranking lists values events had: a missing value is no row (as the counters' rankings).
    const present: Filter = { op: 'is_not', dimension, values: [NONE] };
    const filters = filterOf(scope);
    const answer = await runQuery(
      query(scope, {
        metrics: [args.metric],
        dimensions: [dimension],
        filters: filters === null ? present : { op: 'and', filters: [filters, present] },
        limit: args.limit,
      }),
    );
    return answer.results.map((r) => ({ value: r.dimensions[0] as string, count: r.metrics[0] ?? 0 }));
  }

  async function timeseries(scope: StatsScope, args: { metric: CounterMetric; interval?: Interval }) {
    const r = resolvePeriod(scope.period, now(), scope.zone);
    const unit = args.interval ?? r.interval;
    const starts: number[] = [];
    for (let t = bucketStart(unit, r.from, scope.zone); t < r.to; t = nextBucket(unit, t, scope.zone)) {
      starts.push(t);
      if (starts.length > MAX_POINTS) {
        throw new TallyError('invalid_request', `A timeseries answers at most ${MAX_POINTS} points: use a longer interval.`, '/interval');
      }
    }
    const range = { fromMs: r.from, toMs: r.to };
    const answer = await runQuery(
      query(scope, { metrics: [args.metric], dimensions: [{ kind: 'time', name: `time:${unit}`, unit }], range }),
    );
    // The engine labels buckets for people; the route's points are UTC instants.
    const counts = new Map<string, number>();
    for (const row of answer.results) counts.set(row.dimensions[0] as string, row.metrics[0] ?? 0);
    return starts.map((t) => ({ t: new Date(t).toISOString(), count: counts.get(bucketLabel(unit, t, scope.zone)) ?? 0 }));
  }

  return { summary, top, timeseries };
}

export type FilteredStats = ReturnType<typeof createFilteredStats>;
