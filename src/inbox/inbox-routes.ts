import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Gauge, type Registry } from 'prom-client';
import type { Context } from '../context.js';
import { TallyError } from '../errors.js';
import type { Auth, Principal } from '../http/auth.js';
import { isStorableJson, isStorableText } from '../storage/storable-text.js';
import type { CountsBy } from './counts-view.js';
import { createInbox, decodeCursor, type NewNotification } from './inbox.js';
import * as schema from './inbox-schemas.js';
import { LIMITS } from './inbox-schemas.js';
import { registerLiveCount } from './live-count.js';
import type { Action, Status } from './notification-sql.js';
import { createPreferences, type Preferences } from './preferences.js';
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
  for (const field of ['id', 'userId', 'title', 'body', 'category', 'tenant', 'actionUrl'] as const) {
    refuseUnstorableText(input[field], `${at}/${field}`);
  }
  const ids = new Set<string>();
  input.actions?.forEach((action, i) => {
    for (const field of ['id', 'label', 'url'] as const) refuseUnstorableText(action[field], `${at}/actions/${i}/${field}`);
    if (ids.has(action.id)) throw new TallyError('invalid_request', 'Two actions have the same id.', `${at}/actions/${i}/id`);
    ids.add(action.id);
  });
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
  const preferences = createPreferences({ db: ctx.db });
  const stream = registerLiveCount(app, { live: ctx.realtime.live, counter });
  if (deps.registry) registerDriftMetrics(deps.registry, ctx);

  const byId = async (request: FastifyRequest) => {
    const principal = await auth.secretOrUser(request);
    const { id } = request.params as { id: string };
    refuseUnstorableText(id, '/id');
    return { siteId: principal.site.id, id, scope: { userId: principal.kind === 'user' ? principal.userId : undefined } };
  };

  /** The principal and the user a /v1/users/:userId route names, if the caller may act for them. */
  const userRoute = async (request: FastifyRequest) => {
    const principal = await auth.secretOrUser(request);
    return { siteId: principal.site.id, userId: forUser(principal, (request.params as { userId: string }).userId) };
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
    const { siteId, userId } = await userRoute(request);
    const query = request.query as { status?: Status; category?: string; tenant?: string; limit?: number; cursor?: string };
    refuseUnstorableText(query.category, '/category');
    refuseUnstorableText(query.tenant, '/tenant');
    let cursor: number | undefined;
    if (query.cursor !== undefined) {
      const seq = decodeCursor(query.cursor);
      if (seq === null) throw new TallyError('invalid_request', 'querystring /cursor is not a cursor this API gave.', '/cursor');
      cursor = seq;
    }
    return inbox.list(siteId, userId, {
      status: query.status ?? 'all',
      category: query.category,
      tenant: query.tenant,
      cursor,
      limit: query.limit ?? LIMITS.defaultPageSize,
    });
  });

  app.get(
    '/v1/users/:userId/notifications/count',
    { schema: { params: schema.UserParams, response: { 200: schema.UnreadCount } } },
    async (request) => {
      const { siteId, userId } = await userRoute(request);
      const { unread } = await inbox.counts(siteId, userId);
      return { unread };
    },
  );

  app.get(
    '/v1/users/:userId/notifications/counts',
    { schema: { params: schema.UserParams, querystring: schema.CountsQuery, response: { 200: schema.CountsAnswer } } },
    async (request) => {
      const { siteId, userId } = await userRoute(request);
      const query = request.query as { tenant?: string; by?: CountsBy };
      refuseUnstorableText(query.tenant, '/tenant');
      const { version: _, ...counts } = await inbox.counts(siteId, userId, query);
      return counts;
    },
  );

  app.get(
    '/v1/users/:userId/notifications/stream',
    { schema: { params: schema.UserParams, querystring: schema.StreamQuery } },
    async (request, reply) => {
      const { tenant, token } = request.query as { tenant?: string; token?: string };
      const principal = await auth.streamPrincipal(request, token);
      const siteId = principal.site.id;
      const userId = forUser(principal, (request.params as { userId: string }).userId);
      refuseUnstorableText(tenant, '/tenant');
      await stream(request, reply, { siteId, userId, tenant });
    },
  );

  app.get('/v1/notifications/:id', { schema: { params: schema.IdParams } }, async (request) => {
    const { siteId, id, scope } = await byId(request);
    return inbox.get(siteId, id, scope);
  });

  for (const action of ['seen', 'read', 'unread', 'archive', 'unarchive'] as const) {
    app.post(
      `/v1/notifications/:id/${action}`,
      { config: emptyBody, schema: { params: schema.IdParams, response: { 200: schema.Changed } } },
      async (request) => {
        const { siteId, id, scope } = await byId(request);
        return inbox.change(siteId, id, scope, action);
      },
    );
  }

  app.post(
    '/v1/notifications/:id/actions/:actionId',
    { config: emptyBody, schema: { params: schema.ActionParams, response: { 200: schema.Changed } } },
    async (request) => {
      const { siteId, id, scope } = await byId(request);
      const { actionId } = request.params as { actionId: string };
      refuseUnstorableText(actionId, '/actionId');
      return inbox.clickAction(siteId, id, actionId, scope);
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

  for (const action of ['seen', 'read', 'archive'] as const) {
    app.post(
      `/v1/users/:userId/notifications/${action}-all`,
      {
        config: emptyBody,
        schema: { params: schema.UserParams, body: schema.AllBody, response: { 200: schema.ChangedMany } },
        preValidation: async (request) => {
          request.body ??= {};
        },
      },
      async (request) => {
        const { siteId, userId } = await userRoute(request);
        const body = request.body as { category?: string; tenant?: string; before?: string };
        refuseUnstorableText(body.category, '/category');
        refuseUnstorableText(body.tenant, '/tenant');
        refuseUnstorableText(body.before, '/before');
        return inbox.changeAll(siteId, userId, action, body);
      },
    );
  }

  app.post(
    '/v1/users/:userId/notifications/bulk',
    { schema: { params: schema.UserParams, body: schema.BulkBody, response: { 200: schema.ChangedMany } } },
    async (request) => {
      const { siteId, userId } = await userRoute(request);
      const body = request.body as { ids: string[]; action: Action | 'delete' };
      body.ids.forEach((id, i) => refuseUnstorableText(id, `/ids/${i}`));
      return inbox.bulk(siteId, userId, body.ids, body.action);
    },
  );

  app.get('/v1/users/:userId/preferences', { schema: { params: schema.UserParams } }, async (request) => {
    const { siteId, userId } = await userRoute(request);
    return { categories: await preferences.ofUser(siteId, userId) };
  });

  app.put('/v1/users/:userId/preferences', { schema: { params: schema.UserParams, body: schema.PreferencesBody } }, async (request) => {
    const { siteId, userId } = await userRoute(request);
    const { categories } = request.body as { categories: Preferences };
    checkPreferences(categories);
    return { categories: await preferences.setUser(siteId, userId, categories) };
  });

  app.get('/v1/preferences/defaults', async (request) => {
    const site = await auth.secret(request);
    return { categories: await preferences.defaults(site.id) };
  });

  app.put('/v1/preferences/defaults', { schema: { body: schema.PreferencesBody } }, async (request) => {
    const site = await auth.secret(request);
    const { categories } = request.body as { categories: Preferences };
    checkPreferences(categories);
    return { categories: await preferences.setDefaults(site.id, categories) };
  });
}

/** Category names of a preferences body: as long as a notification's category may be, storable. */
function checkPreferences(categories: Preferences): void {
  for (const name of Object.keys(categories)) {
    const path = `/categories/${name.replace(/~/g, '~0').replace(/\//g, '~1')}`;
    if (name.length === 0 || name.length > LIMITS.categoryLength) {
      throw new TallyError('invalid_request', `A category name has 1 to ${LIMITS.categoryLength} characters.`, path);
    }
    refuseUnstorableText(name, path);
  }
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
