import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import type { GoalRepository } from '../goals/goal-repository.js';
import type { Auth } from '../http/auth.js';
import type { Site } from '../sites/site-repository.js';
import { parseQuery } from './parse-query.js';
import type { RunQuery } from './run-query.js';

// POST /v1/stats/query (secret key): API.md "Query API". The body is read by parseQuery, not by
// the schema validator, so that every error names its place in the query; the schema below
// documents it.

/** The site's IANA time zone (UTC until the site names one). */
export const zoneOf = (site: Site): string => (site as Site & { timezone?: string | null }).timezone ?? 'UTC';

const QueryBody = Type.Object(
  {
    date_range: Type.Optional(
      Type.Unknown({
        description: '`realtime|today|24h|7d|30d|12mo|all`, or `["<from>", "<to>"]` (dates or ISO times, both included), in the site zone',
      }),
    ),
    metrics: Type.Optional(
      Type.Unknown({
        description:
          'visitors, visits, pageviews, views_per_visit, bounce_rate, visit_duration, events, clicks, time_on_page, conversions, conversion_rate, revenue',
      }),
    ),
    dimensions: Type.Optional(
      Type.Unknown({
        description:
          'page, entry_page, exit_page, hostname, source, referrer, utm_*, browser, os, device, country, region, event, goal, product, user, props:<name>, time:minute|hour|day|week|month',
      }),
    ),
    filters: Type.Optional(
      Type.Unknown({
        description: '[op, dimension, [values…]] with op is|is_not|contains|contains_not, or ["and"|"or", [filters…]], or ["not", filter]',
      }),
    ),
    order_by: Type.Optional(Type.Unknown({ description: '[[metric or dimension, "asc"|"desc"], …]' })),
    include: Type.Optional(Type.Unknown({ description: '{"comparison": "previous_period"|"year_over_year", "bots": boolean}' })),
    pagination: Type.Optional(Type.Unknown({ description: '{"limit": 1–10000, "offset": n}' })),
  },
  {
    examples: [
      {
        date_range: '30d',
        metrics: ['visitors', 'pageviews'],
        dimensions: ['source'],
        filters: [
          'and',
          [
            ['is', 'country', ['DE', 'FR']],
            ['contains', 'page', ['/blog']],
          ],
        ],
        order_by: [['visitors', 'desc']],
        include: { comparison: 'previous_period' },
        pagination: { limit: 100, offset: 0 },
      },
    ],
  },
);

const Row = Type.Object({
  dimensions: Type.Array(Type.String()),
  metrics: Type.Array(Type.Number()),
  comparison: Type.Optional(
    Type.Object({ metrics: Type.Array(Type.Number()), change: Type.Array(Type.Union([Type.Number(), Type.Null()])) }),
  ),
});
const QueryAnswer = Type.Object({
  results: Type.Array(Row),
  meta: Type.Object({
    date_range: Type.Array(Type.String()),
    comparison_date_range: Type.Optional(Type.Array(Type.String())),
    time_zone: Type.String(),
    metrics: Type.Array(Type.String()),
    dimensions: Type.Array(Type.String()),
    total_rows: Type.Integer(),
  }),
});

export function registerQueryRoutes(
  app: FastifyInstance,
  deps: { auth: Auth; goals: GoalRepository; runQuery: RunQuery; now?: () => number },
): void {
  const routes = app.withTypeProvider<TypeBoxTypeProvider>();
  const now = deps.now ?? Date.now;

  routes.post('/v1/stats/query', { bodyLimit: 64 * 1024, schema: { body: QueryBody, response: { 200: QueryAnswer } } }, async (request) => {
    const site = await deps.auth.secret(request);
    const goals = await deps.goals.list(site.id);
    const query = parseQuery(request.body, { siteId: site.id, zone: zoneOf(site), nowMs: now(), goals });
    return deps.runQuery(query);
  });
}
