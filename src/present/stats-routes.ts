import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import Type, { type Static } from 'typebox';
import type { GoalRepository } from '../goals/goal-repository.js';
import type { Auth } from '../http/auth.js';
import { DIMENSIONS, type Dimension } from '../process/buckets.js';
import type { FilteredStats, StatsScope } from '../query/filtered-stats.js';
import { zoneOf } from '../query/query-routes.js';
import type { Site } from '../sites/site-repository.js';
import { toCsv } from './stats-csv.js';
import { METRICS, type Metric, type StatsQueries } from './stats-queries.js';
import { INTERVALS } from './stats-range.js';
import { PeriodFields } from './stats-schemas.js';
import { registerStatsStream } from './stats-stream.js';

// GET /v1/stats/{summary,top,timeseries,realtime,stream,export} (secret key): API.md "Stats".
// A bad query parameter is a 400 invalid_request whose path names it (/period, /limit, …).
// Without filters they answer from the counters; with `filters` (the compact form of
// docs/query.md), or a dimension the counters do not keep (country), from the query engine.

export const MAX_TOP_LIMIT = 1000;

const Limit = Type.Integer({ minimum: 1, maximum: MAX_TOP_LIMIT, default: 10 });
const MetricField = Type.Enum([...METRICS]);
const IntervalField = Type.Enum(Object.keys(INTERVALS) as (keyof typeof INTERVALS)[]);

/** The top route's dimensions: the counters' rankings, and what only the event store answers. */
const TOP_DIMENSIONS = [...DIMENSIONS, 'country'] as const;
type TopDimension = (typeof TOP_DIMENSIONS)[number];
const Filters = Type.Optional(
  Type.String({
    minLength: 1,
    maxLength: 4000,
    description: 'Compact filters: `country==DE|FR;page=~/blog;source!=Direct` (docs/query.md)',
  }),
);

const SummaryQuery = Type.Object({ ...PeriodFields, filters: Filters }, { additionalProperties: false });
const TopQuery = Type.Object(
  {
    ...PeriodFields,
    filters: Filters,
    dimension: Type.Enum([...TOP_DIMENSIONS]),
    metric: Type.Optional(MetricField),
    limit: Type.Optional(Limit),
  },
  { additionalProperties: false },
);
const SeriesQuery = Type.Object(
  { ...PeriodFields, filters: Filters, metric: Type.Optional(MetricField), interval: Type.Optional(IntervalField) },
  { additionalProperties: false },
);
const ExportQuery = Type.Object(
  {
    ...PeriodFields,
    filters: Filters,
    format: Type.Literal('csv'),
    dimension: Type.Optional(Type.Enum([...TOP_DIMENSIONS])),
    metric: Type.Optional(MetricField),
    interval: Type.Optional(IntervalField),
    limit: Type.Optional(Limit),
  },
  { additionalProperties: false },
);

const Summary = Type.Object(
  {
    visitors: Type.Integer(),
    pageviews: Type.Integer(),
    events: Type.Integer(),
    clicks: Type.Integer(),
    bounceRate: Type.Number(),
    avgEngagedSeconds: Type.Number(),
    bots: Type.Integer(),
  },
  { examples: [{ visitors: 120, pageviews: 410, events: 95, clicks: 31, bounceRate: 0.42, avgEngagedSeconds: 37.5, bots: 12 }] },
);
const TopResults = Type.Object({ results: Type.Array(Type.Object({ value: Type.String(), count: Type.Integer() })) });
const SeriesResults = Type.Object({ results: Type.Array(Type.Object({ t: Type.String(), count: Type.Integer() })) });
const Realtime = Type.Object({ visitors: Type.Integer() });

/** The metric a dimension is ranked by when none is asked for. */
const DEFAULT_METRIC: Record<TopDimension, Metric> = {
  page: 'pageviews',
  referrer: 'pageviews',
  utm_source: 'pageviews',
  browser: 'pageviews',
  os: 'pageviews',
  device: 'pageviews',
  event: 'events',
  product: 'clicks',
  user: 'events',
  country: 'pageviews',
};

type TopParams = Static<typeof TopQuery>;
const topArgs = (q: Omit<TopParams, 'dimension'> & { dimension: TopDimension }) => ({
  ...q,
  metric: q.metric ?? DEFAULT_METRIC[q.dimension],
  limit: q.limit ?? 10,
});

export interface StatsRouteDeps {
  auth: Auth;
  queries: StatsQueries;
  /** Answers with filters or event-store dimensions. */
  filtered: FilteredStats;
  goals: GoalRepository;
}

const isCounterDimension = (d: TopDimension): d is Dimension => (DIMENSIONS as readonly string[]).includes(d);

export function registerStatsRoutes(app: FastifyInstance, deps: StatsRouteDeps): void {
  const routes = app.withTypeProvider<TypeBoxTypeProvider>();
  const { auth, queries, filtered } = deps;

  const scope = async (site: Site, query: { filters?: string } & StatsScope['period']): Promise<StatsScope> => {
    const { filters, period, from, to } = query;
    return { siteId: site.id, zone: zoneOf(site), goals: await deps.goals.list(site.id), filters, period: { period, from, to } };
  };

  async function top(site: Site, query: TopParams) {
    const args = topArgs(query);
    if (query.filters === undefined && isCounterDimension(args.dimension)) return queries.top(site, { ...args, dimension: args.dimension });
    return filtered.top(await scope(site, query), args);
  }

  async function timeseries(site: Site, query: Static<typeof SeriesQuery>) {
    const args = { ...query, metric: query.metric ?? 'pageviews' };
    if (query.filters === undefined) return queries.timeseries(site, args);
    return filtered.timeseries(await scope(site, query), args);
  }

  routes.get('/v1/stats/summary', { schema: { querystring: SummaryQuery, response: { 200: Summary } } }, async (request) => {
    const site = await auth.secret(request);
    if (request.query.filters === undefined) return queries.summary(site, request.query);
    return filtered.summary(await scope(site, request.query));
  });

  routes.get('/v1/stats/top', { schema: { querystring: TopQuery, response: { 200: TopResults } } }, async (request) => {
    const site = await auth.secret(request);
    return { results: await top(site, request.query) };
  });

  routes.get('/v1/stats/timeseries', { schema: { querystring: SeriesQuery, response: { 200: SeriesResults } } }, async (request) => {
    const site = await auth.secret(request);
    return { results: await timeseries(site, request.query) };
  });

  routes.get('/v1/stats/realtime', { schema: { response: { 200: Realtime } } }, async (request) => {
    const site = await auth.secret(request);
    return queries.realtime(site);
  });

  // The same query as top (with a dimension) or timeseries (without), as CSV with a header row.
  routes.get('/v1/stats/export', { schema: { querystring: ExportQuery } }, async (request, reply) => {
    const site = await auth.secret(request);
    const { format: _format, dimension, ...query } = request.query;
    let csv: string;
    let name: string;
    if (dimension !== undefined) {
      const rows = await top(site, { ...query, dimension });
      csv = toCsv(
        ['value', 'count'],
        rows.map((r) => [r.value, r.count]),
      );
      name = `top-${dimension}`;
    } else {
      const { limit: _limit, ...series } = query;
      const rows = await timeseries(site, series);
      csv = toCsv(
        ['t', 'count'],
        rows.map((r) => [r.t, r.count]),
      );
      name = `timeseries-${query.metric ?? 'pageviews'}`;
    }
    return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="tally-${name}.csv"`).send(csv);
  });

  registerStatsStream(app, deps);
}
