import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { MAX_ID_LENGTH, MAX_NAME_LENGTH } from '../collect/message.js';
import { TallyError } from '../errors.js';
import type { Auth } from '../http/auth.js';
import { instantOf } from '../time/zone.js';
import type { EventSource } from './run-query.js';
import {
  DEFAULT_USER_EVENTS_LIMIT,
  decodeUserEventsCursor,
  MAX_USER_EVENTS_LIMIT,
  queryUserEvents,
  type UserEventsPosition,
} from './user-events.js';

// GET /v1/users/:userId/events (secret key): API.md "A user's events".

const DAY = 86_400_000;
/** A cursor holds a time and a messageId (at most 256 characters, 4 bytes each in UTF-8), base64url. */
const MAX_CURSOR_LENGTH = Math.ceil(((16 + 1 + 4 * MAX_ID_LENGTH) * 4) / 3);

const Params = Type.Object({ userId: Type.String({ minLength: 1, maxLength: MAX_ID_LENGTH }) });
const Bound = (description: string) => Type.String({ minLength: 1, maxLength: 40, description });
const Query = Type.Object(
  {
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_CURSOR_LENGTH, description: 'nextCursor of the page before' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_USER_EVENTS_LIMIT, default: DEFAULT_USER_EVENTS_LIMIT })),
    event: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_NAME_LENGTH, description: 'Only track events of this name' })),
    from: Type.Optional(Bound('Earliest event: a date (its start, in the site time zone) or an ISO 8601 time with an offset')),
    to: Type.Optional(Bound('Latest event, included: a date (its end, in the site time zone) or an ISO 8601 time with an offset')),
  },
  { additionalProperties: false },
);
const Answer = Type.Object(
  {
    items: Type.Array(
      Type.Object({
        type: Type.String({ description: 'The Segment call: page, screen, track, identify, …' }),
        event: Type.Optional(Type.String()),
        page: Type.Optional(Type.String()),
        properties: Type.Record(Type.String(), Type.String(), { description: 'The custom properties, as stored' }),
        timestamp: Type.String(),
        messageId: Type.String(),
      }),
    ),
    nextCursor: Type.Union([Type.String(), Type.Null()]),
  },
  {
    examples: [
      {
        items: [
          {
            type: 'track',
            event: 'Signed Up',
            page: '/signup',
            properties: { plan: 'pro' },
            timestamp: '2026-03-02T10:15:00.000Z',
            messageId: 'm-2',
          },
          { type: 'page', page: '/pricing', properties: {}, timestamp: '2026-03-02T10:14:02.120Z', messageId: 'm-1' },
        ],
        nextCursor: null,
      },
    ],
  },
);

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
/** An ISO 8601 time that names its offset: a bound without one would be ambiguous here. */
const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/;

/** One bound as an instant: a date is its start in `zone` (with `end`, the next day's start). */
function parseBound(value: string, zone: string, end: boolean, path: string): number {
  const date = DATE.exec(value);
  let ms = Number.NaN;
  if (date) {
    const [y, m, d] = [Number(date[1]), Number(date[2]), Number(date[3])];
    const check = new Date(Date.UTC(y, m - 1, d));
    if (y >= 1970 && check.getUTCMonth() === m - 1 && check.getUTCDate() === d) ms = instantOf(zone, y, m, d + (end ? 1 : 0));
  } else if (TIME.test(value)) {
    ms = Date.parse(value) + (end ? 1 : 0);
  }
  if (!Number.isFinite(ms) || ms < 0) {
    throw new TallyError('invalid_request', `${path.slice(1)} must be a date (YYYY-MM-DD) or an ISO 8601 time with an offset.`, path);
  }
  return ms;
}

export function registerUserEventsRoute(app: FastifyInstance, deps: { auth: Auth; events: EventSource; now?: () => number }): void {
  const routes = app.withTypeProvider<TypeBoxTypeProvider>();
  const now = deps.now ?? Date.now;

  routes.get('/v1/users/:userId/events', { schema: { params: Params, querystring: Query, response: { 200: Answer } } }, async (request) => {
    const site = await deps.auth.secret(request);
    const q = request.query;
    let after: UserEventsPosition | undefined;
    if (q.cursor !== undefined) {
      const position = decodeUserEventsCursor(q.cursor);
      if (!position) throw new TallyError('invalid_request', 'cursor is not one this route gave.', '/cursor');
      after = position;
    }
    const fromMs = q.from === undefined ? 0 : parseBound(q.from, site.timezone, false, '/from');
    // Without an end: everything up to a day from now (clocks of senders run ahead).
    const toMs = q.to === undefined ? now() + DAY : parseBound(q.to, site.timezone, true, '/to');
    if (toMs <= fromMs) throw new TallyError('invalid_request', 'to must not be before from.', '/to');
    return queryUserEvents(deps.events, {
      siteId: site.id,
      userId: request.params.userId,
      fromMs,
      toMs,
      limit: q.limit ?? DEFAULT_USER_EVENTS_LIMIT,
      ...(q.event === undefined ? {} : { event: q.event }),
      ...(after ? { after } : {}),
    });
  });
}
