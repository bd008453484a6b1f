import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import Type, { type Static } from 'typebox';
import type { Auth } from '../http/auth.js';
import { DIMENSIONS, type Dimension } from '../process/buckets.js';
import { toCsv } from './stats-csv.js';
import { METRICS, type Metric, type StatsQueries } from './stats-queries.js';
import { INTERVALS } from './stats-range.js';
import { PeriodFields, PeriodQuery } from './stats-schemas.js';
import { registerStatsStream } from './stats-stream.js';

// GET /v1/stats/{summary,top,timeseries,realtime,stream,export} (secret key): API.md "Stats".
// A bad query parameter is a 400 invalid_request whose path names it (/period, /limit, …).

export const MAX_TOP_LIMIT = 1000;

const Limit = Type.Integer({ minimum: 1, maximum: MAX_TOP_LIMIT, default: 10 });
const MetricField = Type.Enum([...METRICS]);
const IntervalField = Type.Enum(Object.keys(INTERVALS) as (keyof typeof INTERVALS)[]);

const TopQuery = Type.Object(
  { ...PeriodFields, dimension: Type.Enum([...DIMENSIONS]), metric: Type.Optional(MetricField), limit: Type.Optional(Limit) },
  { additionalProperties: false },
);
const SeriesQuery = Type.Object(
  { ...PeriodFields, metric: Type.Optional(MetricField), interval: Type.Optional(IntervalField) },
  { additionalProperties: false },
);
const ExportQuery = Type.Object(
  {
    ...PeriodFields,
    format: Type.Literal('csv'),
    dimension: Type.Optional(Type.Enum([...DIMENSIONS])),
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
const DEFAULT_METRIC: Record<Dimension, Metric> = {
  page: 'pageviews',
  referrer: 'pageviews',
  utm_source: 'pageviews',
  browser: 'pageviews',
  os: 'pageviews',
  device: 'pageviews',
  event: 'events',
  product: 'clicks',
  user: 'events',
};

type TopParams = Static<typeof TopQuery>;
const topArgs = (q: Omit<TopParams, 'dimension'> & { dimension: Dimension }) => ({
  ...q,
  metric: q.metric ?? DEFAULT_METRIC[q.dimension],
  limit: q.limit ?? 10,
});

export function registerStatsRoutes(app: FastifyInstance, deps: { auth: Auth; queries: StatsQueries }): void {
  const routes = app.withTypeProvider<TypeBoxTypeProvider>();
  const { auth, queries } = deps;

  routes.get('/v1/stats/summary', { schema: { querystring: PeriodQuery, response: { 200: Summary } } }, async (request) => {
    const site = await auth.secret(request);
    return queries.summary(site, request.query);
  });

  routes.get('/v1/stats/top', { schema: { querystring: TopQuery, response: { 200: TopResults } } }, async (request) => {
    const site = await auth.secret(request);
    return { results: await queries.top(site, topArgs(request.query)) };
  });

  routes.get('/v1/stats/timeseries', { schema: { querystring: SeriesQuery, response: { 200: SeriesResults } } }, async (request) => {
    const site = await auth.secret(request);
    return { results: await queries.timeseries(site, { ...request.query, metric: request.query.metric ?? 'pageviews' }) };
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
      const rows = await queries.top(site, topArgs({ ...query, dimension }));
      csv = toCsv(
        ['value', 'count'],
        rows.map((r) => [r.value, r.count]),
      );
      name = `top-${dimension}`;
    } else {
      const rows = await queries.timeseries(site, { ...query, metric: query.metric ?? 'pageviews' });
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
