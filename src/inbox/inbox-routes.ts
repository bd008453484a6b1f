import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Gauge, type Registry } from 'prom-client';
import type { Context } from '../context.js';
import { TallyError } from '../errors.js';
import type { Auth, Principal } from '../http/auth.js';
import { isStorableJson, isStorableText } from '../storage/storable-text.js';
import { createInbox, decodeCursor, type NewNotification } from './inbox.js';
import * as schema from './inbox-schemas.js';
import { LIMITS } from './inbox-schemas.js';
import { registerLiveCount } from './live-count.js';
import { createUnreadCounter } from './unread-counter.js';

// The notification routes of API.md. A secret key may act for any user of its site; a user
// token only for its own user: another user's notification, or count, is a 404.

/** Action POSTs and DELETE: an empty body, even labelled JSON, is no body (see json-body.ts). */
const emptyBody = { acceptsEmptyBody: true };

const notFound = () => new TallyError('not_found', 'No such notification.');

const unstorable = (path: string) =>
  new TallyError('invalid_request', `${path} must not contain NUL characters or unpaired UTF-16 surrogates.`, path);

/** Text PostgreSQL cannot store (see storable-text.ts) is bad input, refused with its path. */
function refuseUnstorableText(value: unknown, path: string): void {
  if (typeof value === 'string' && !isStorableText(value)) throw unstorable(path);
}

function checkNotification(input: NewNotification, at: string): void {
  for (const field of ['id', 'userId', 'title', 'body', 'category'] as const) refuseUnstorableText(input[field], `${at}/${field}`);
  if (input.data !== undefined) {
    const json = JSON.stringify(input.data);
    if (Buffer.byteLength(json) > LIMITS.dataBytes) {
      throw new TallyError('invalid_request', `${at}/data must be at most ${LIMITS.dataBytes} bytes as JSON.`, `${at}/data`);
    }
    if (!isStorableJson(json)) throw unstorable(`${at}/data`);
  }
}

/** The user a route names, if the caller may act for them. */
function forUser(principal: Principal, userId: string): string {
  refuseUnstorableText(userId, '/userId');
  if (principal.kind === 'user' && principal.userId !== userId) throw notFound();
  return userId;
}

export function registerInboxRoutes(app: FastifyInstance, deps: { ctx: Context; auth: Auth; registry?: Registry }): void {
  const { ctx, auth } = deps;
  const counter = createUnreadCounter(ctx);
  const inbox = createInbox({ db: ctx.db, counter });
  const stream = registerLiveCount(app, { live: ctx.realtime.live, counter });
  if (deps.registry) registerDriftMetrics(deps.registry, ctx);

  const byId = async (request: FastifyRequest) => {
    const principal = await auth.secretOrUser(request);
    const { id } = request.params as { id: string };
    refuseUnstorableText(id, '/id');
    return { siteId: principal.site.id, id, scope: { userId: principal.kind === 'user' ? principal.userId : undefined } };
  };

  app.post('/v1/notifications', { schema: { body: schema.NewNotification } }, async (request, reply) => {
    const site = await auth.secret(request);
    const input = request.body as NewNotification;
    checkNotification(input, '');
    return reply.status(201).send(await inbox.create(site.id, input));
  });

  app.post('/v1/notifications/batch', { schema: { body: schema.NewBatch } }, async (request, reply) => {
    const site = await auth.secret(request);
    const { notifications } = request.body as { notifications: NewNotification[] };
    const seen = new Set<string>();
    notifications.forEach((n, i) => {
      checkNotification(n, `/notifications/${i}`);
      if (n.id === undefined) return;
      if (seen.has(n.id)) throw new TallyError('invalid_request', 'An id appears twice in the batch.', `/notifications/${i}/id`);
      seen.add(n.id);
    });
    return reply.status(201).send({ items: await inbox.createMany(site.id, notifications) });
  });

  app.get('/v1/users/:userId/notifications', { schema: { params: schema.UserParams, querystring: schema.ListQuery } }, async (request) => {
    const principal = await auth.secretOrUser(request);
    const userId = forUser(principal, (request.params as { userId: string }).userId);
    const query = request.query as { status?: 'unread' | 'read' | 'all'; category?: string; limit?: number; cursor?: string };
    refuseUnstorableText(query.category, '/category');
    let cursor: number | undefined;
    if (query.cursor !== undefined) {
      const seq = decodeCursor(query.cursor);
      if (seq === null) throw new TallyError('invalid_request', 'querystring /cursor is not a cursor this API gave.', '/cursor');
      cursor = seq;
    }
    return inbox.list(principal.site.id, userId, {
      status: query.status ?? 'all',
      category: query.category,
      cursor,
      limit: query.limit ?? LIMITS.defaultPageSize,
    });
  });

  app.get(
    '/v1/users/:userId/notifications/count',
    { schema: { params: schema.UserParams, response: { 200: schema.UnreadCount } } },
    async (request) => {
      const principal = await auth.secretOrUser(request);
      const userId = forUser(principal, (request.params as { userId: string }).userId);
      const { unread } = await inbox.count(principal.site.id, userId);
      return { unread };
    },
  );

  app.get(
    '/v1/users/:userId/notifications/stream',
    { schema: { params: schema.UserParams, querystring: schema.StreamQuery } },
    async (request, reply) => {
      const principal = await auth.streamPrincipal(request, (request.query as { token?: string }).token);
      const userId = forUser(principal, (request.params as { userId: string }).userId);
      await stream(request, reply, principal.site.id, userId);
    },
  );

  app.get('/v1/notifications/:id', { schema: { params: schema.IdParams } }, async (request) => {
    const { siteId, id, scope } = await byId(request);
    return inbox.get(siteId, id, scope);
  });

  app.post(
    '/v1/notifications/:id/read',
    { config: emptyBody, schema: { params: schema.IdParams, response: { 200: schema.Changed } } },
    async (request) => {
      const { siteId, id, scope } = await byId(request);
      return inbox.markRead(siteId, id, scope);
    },
  );

  app.post(
    '/v1/notifications/:id/unread',
    { config: emptyBody, schema: { params: schema.IdParams, response: { 200: schema.Changed } } },
    async (request) => {
      const { siteId, id, scope } = await byId(request);
      return inbox.markUnread(siteId, id, scope);
    },
  );

  app.delete(
    '/v1/notifications/:id',
    { config: emptyBody, schema: { params: schema.IdParams, response: { 200: schema.Deleted } } },
    async (request) => {
      const { siteId, id, scope } = await byId(request);
      return inbox.remove(siteId, id, scope);
    },
  );

  app.post(
    '/v1/users/:userId/notifications/read-all',
    {
      config: emptyBody,
      schema: { params: schema.UserParams, body: schema.ReadAllBody, response: { 200: schema.ChangedMany } },
      preValidation: async (request) => {
        request.body ??= {};
      },
    },
    async (request) => {
      const principal = await auth.secretOrUser(request);
      const userId = forUser(principal, (request.params as { userId: string }).userId);
      const body = request.body as { category?: string; before?: string };
      refuseUnstorableText(body.category, '/category');
      refuseUnstorableText(body.before, '/before');
      return inbox.markAllRead(principal.site.id, userId, body);
    },
  );
}

/** The reconciler's findings, from PostgreSQL: any process's /metrics shows every reconciler's. */
function registerDriftMetrics(registry: Registry, ctx: Context): void {
  // A process's API and worker share one registry; the gauges are registered once.
  if (registry.getSingleMetric('tally_inbox_drift')) return;
  const totals = async () => {
    const result = await ctx.db.query<{ repaired: number; last: number; drifted: number }>(
      `SELECT coalesce(sum(drift_repaired), 0)::int8 AS repaired, coalesce(sum(last_drift), 0)::int8 AS last,
         coalesce(sum(users_drifted), 0)::int8 AS drifted FROM inbox_reconcile_state`,
    );
    return result.rows[0] ?? { repaired: 0, last: 0, drifted: 0 };
  };
  new Gauge({
    name: 'tally_inbox_drift',
    help: 'Unread-count drift the last reconcile run of each site found and repaired (sum of |drift|; 0 when healthy)',
    registers: [registry],
    async collect() {
      this.set(Number((await totals()).last));
    },
  });
  new Gauge({
    name: 'tally_inbox_drift_repaired',
    help: 'Unread-count drift repaired by the reconciler since the database was created (sum of |drift|)',
    registers: [registry],
    async collect() {
      this.set(Number((await totals()).repaired));
    },
  });
}
