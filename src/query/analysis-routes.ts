import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { MAX_NAME_LENGTH } from '../collect/message.js';
import { TallyError } from '../errors.js';
import type { Auth } from '../http/auth.js';
import { MAX_VALUE_LENGTH } from '../process/enrich.js';
import { type FunnelStep, MAX_FUNNEL_STEPS, MIN_FUNNEL_STEPS, queryFunnel } from './funnel.js';
import type { QueryInputs } from './query-inputs.js';
import { MAX_RETENTION_PERIODS, queryRetention, retentionPeriods } from './retention.js';
import type { EventSource } from './run-query.js';

// POST /v1/stats/funnel and POST /v1/stats/retention (secret key): API.md "Funnels" and
// "Retention". date_range and filters take the query API's forms and its parser.

/** Longest conversion window: a year. */
export const MAX_FUNNEL_WINDOW_MS = 365 * 86_400_000;

const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 } as const;

const DateRange = Type.Union([Type.String({ maxLength: 40 }), Type.Array(Type.String({ maxLength: 40 }), { minItems: 2, maxItems: 2 })], {
  description: '`realtime|today|24h|7d|30d|12mo|all`, or `[from, to]` (dates or ISO times, both included), in the site time zone',
});
const Filters = Type.Unknown({ description: 'The query API\'s filters, e.g. `["is", "country", ["DE"]]`' });

// One object with exactly one of the two, not a union: the body validator drops unknown fields,
// and in a union it would drop `event` from {page, event} to make the first branch match.
const Step = Type.Object(
  {
    page: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: MAX_VALUE_LENGTH,
        pattern: '^/',
        description: 'A path pattern, `*` for any characters (as goals)',
      }),
    ),
    event: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_NAME_LENGTH, description: 'A custom event name' })),
  },
  { additionalProperties: false, minProperties: 1, maxProperties: 1, description: 'Either page or event' },
);

const FunnelBody = Type.Object(
  {
    date_range: DateRange,
    steps: Type.Array(Step, { minItems: MIN_FUNNEL_STEPS, maxItems: MAX_FUNNEL_STEPS }),
    window: Type.Optional(
      Type.String({
        pattern: '^[1-9][0-9]{0,5}[mhdw]$',
        description:
          'Longest time from step 1 to the last step (`30m`, `12h`, `1d`, `2w`; at most a year); default: the whole date range, as Plausible',
      }),
    ),
    filters: Type.Optional(Filters),
  },
  { additionalProperties: false, examples: [{ date_range: '30d', steps: [{ page: '/pricing*' }, { event: 'Signed Up' }], window: '1d' }] },
);

const FunnelAnswer = Type.Object(
  {
    steps: Type.Array(
      Type.Object({
        visitors: Type.Integer(),
        conversion_rate: Type.Number({ description: 'Percentage of step 1 visitors (0–100)' }),
        dropoff: Type.Integer({ description: 'Visitors of the step before who did not reach this one' }),
      }),
    ),
  },
  {
    examples: [
      {
        steps: [
          { visitors: 120, conversion_rate: 100, dropoff: 0 },
          { visitors: 30, conversion_rate: 25, dropoff: 90 },
        ],
      },
    ],
  },
);

const RetentionBody = Type.Object(
  {
    date_range: DateRange,
    interval: Type.Optional(Type.Enum(['day', 'week'], { default: 'day' })),
    filters: Type.Optional(Filters),
  },
  { additionalProperties: false, examples: [{ date_range: '30d', interval: 'week' }] },
);

const RetentionAnswer = Type.Object(
  {
    cohorts: Type.Array(
      Type.Object({
        start: Type.String({ description: 'First day of the period, in the site time zone' }),
        visitors: Type.Integer({ description: 'Visitors first seen in the period (in the site whole history)' }),
        returning: Type.Array(Type.Integer(), { description: 'Of those, the visitors seen again in each later period' }),
      }),
    ),
  },
  { examples: [{ cohorts: [{ start: '2026-03-02', visitors: 40, returning: [12, 9] }] }] },
);

/** A step as validated: exactly one of page and event is there. */
const toStep = (step: { page?: string; event?: string }): FunnelStep =>
  step.page !== undefined ? { page: step.page } : { event: step.event ?? '' };

function windowMs(window: string): number {
  const ms = Number(window.slice(0, -1)) * UNIT_MS[window.slice(-1) as keyof typeof UNIT_MS];
  if (ms > MAX_FUNNEL_WINDOW_MS) throw new TallyError('invalid_request', 'A funnel window is at most a year (365d).', '/window');
  return ms;
}

export function registerAnalysisRoutes(
  app: FastifyInstance,
  deps: { auth: Auth; events: EventSource; inputs: QueryInputs; now?: () => number },
): void {
  const routes = app.withTypeProvider<TypeBoxTypeProvider>();
  const { auth, events, inputs } = deps;
  const now = deps.now ?? Date.now;

  routes.post('/v1/stats/funnel', { schema: { body: FunnelBody, response: { 200: FunnelAnswer } } }, async (request) => {
    const site = await auth.secret(request);
    const body = request.body;
    const range = inputs.dateRange(body.date_range, site.timezone, now(), '/date_range');
    const window = body.window === undefined ? null : windowMs(body.window);
    const where = await inputs.filters(body.filters, site.id);
    const steps = await queryFunnel(events, { siteId: site.id, ...range, steps: body.steps.map(toStep), windowMs: window, where });
    return { steps };
  });

  routes.post('/v1/stats/retention', { schema: { body: RetentionBody, response: { 200: RetentionAnswer } } }, async (request) => {
    const site = await auth.secret(request);
    const body = request.body;
    const interval = body.interval ?? 'day';
    const range = inputs.dateRange(body.date_range, site.timezone, now(), '/date_range');
    if (retentionPeriods(interval, site.timezone, range.fromMs, range.toMs).length > MAX_RETENTION_PERIODS) {
      throw new TallyError(
        'invalid_request',
        `Retention answers at most ${MAX_RETENTION_PERIODS} cohorts: use a shorter date_range or weeks.`,
        '/date_range',
      );
    }
    const where = await inputs.filters(body.filters, site.id);
    const cohorts = await queryRetention(events, { siteId: site.id, ...range, interval, zone: site.timezone, where });
    return { cohorts };
  });
}
