import cors from '@fastify/cors';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { registerApiDocsRoutes, registerOpenApi } from './api-docs/openapi.js';
import { registerClickRoute } from './collect/click-route.js';
import { createIngest } from './collect/ingest.js';
import { registerPlausibleRoute } from './collect/plausible-route.js';
import { createRateLimiter } from './collect/rate-limit.js';
import { registerSegmentRoutes } from './collect/segment-routes.js';
import type { Config } from './config.js';
import type { Context } from './context.js';
import type { Flusher } from './counters/flusher.js';
import { TallyError } from './errors.js';
import { GoalRepository } from './goals/goal-repository.js';
import { registerGoalRoutes } from './goals/goal-routes.js';
import { createAuth } from './http/auth.js';
import { answerClientError, answerFrameworkError, MAX_PARAM_LENGTH, registerErrorHandling } from './http/error-handler.js';
import { createJsonParser, registerJsonBodies } from './http/json-body.js';
import { serializeRequest } from './http/request-log.js';
import { createValidatorCompiler } from './http/validation.js';
import { registerInboxRoutes } from './inbox/inbox-routes.js';
import { registerInboxUiRoutes } from './inbox-ui/inbox-ui-routes.js';
import { registerHealthRoutes } from './ops/health-routes.js';
import { createMetrics, type Metrics } from './ops/metrics.js';
import { registerCounterRoutes } from './present/counter-routes.js';
import { createCounterStats } from './present/counter-stats.js';
import { registerDashboardRoute } from './present/dashboard-route.js';
import { createStatsQueries } from './present/stats-queries.js';
import { createStatsReader } from './present/stats-reader.js';
import { registerStatsRoutes } from './present/stats-routes.js';
import { registerAnalysisRoutes } from './query/analysis-routes.js';
import { createFilteredStats } from './query/filtered-stats.js';
import { createQueryInputs } from './query/query-inputs.js';
import { registerQueryRoutes } from './query/query-routes.js';
import { createQueryEngine } from './query/run-query.js';
import { registerUserEventsRoute } from './query/user-events-route.js';
import { registerSiteRoutes } from './sites/site-routes.js';
import { registerTrackerRoute } from './tracker/tracker-route.js';

export interface AppOptions {
  /** The process's metrics (shared with its worker); a fresh registry when absent. */
  metrics?: Metrics;
  /** The in-process flusher, when this process runs one (its lag is exported). */
  flusher?: Flusher;
  /** 'ops': health, readiness and metrics only (a worker process's HTTP face). */
  routes?: 'all' | 'ops';
  logger?: boolean;
  /** The stats routes' clock (what "today" is); Date.now unless a test fixes it. */
  now?: () => number;
}

/** The config's trusted proxies as Fastify takes them (a hop count as the function Fastify would make of it). */
function fastifyTrustProxy(trust: Config['trustProxy']): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (typeof trust === 'number') return (_address, hop) => hop < trust;
  return typeof trust === 'boolean' ? trust : [...trust];
}

/** The HTTP application: every route, over the context's storage. No listening here. */
export async function buildApp(ctx: Context, options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance:
      options.logger === false ? undefined : (ctx.log.child({}, { serializers: { req: serializeRequest } }) as FastifyBaseLogger),
    // Per-request log lines would cost more than the requests; latency goes to /metrics.
    logController: new LogController({ disableRequestLogging: true }),
    trustProxy: fastifyTrustProxy(ctx.config.trustProxy),
    bodyLimit: 1024 * 1024,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    requestTimeout: ctx.config.requestTimeoutMs,
    http: {
      requestTimeout: ctx.config.requestTimeoutMs,
      // Node looks for requests past their time this often (30 s by default, which would let a
      // trickling client hold its connection three times as long as the setting says).
      connectionsCheckingInterval: Math.min(1000, Math.ceil(ctx.config.requestTimeoutMs / 4)),
    },
    frameworkErrors: answerFrameworkError,
    clientErrorHandler: answerClientError,
    // Routes close their own connections on shutdown (SSE); idle keep-alives close at once.
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  });
  const metrics = options.metrics ?? createMetrics();
  const auth = createAuth(ctx.sites);

  app.setValidatorCompiler(createValidatorCompiler());
  registerErrorHandling(app);
  registerJsonBodies(app);
  // Before CORS: a preflight it would refuse gets the contract's error body, not plain text.
  app.addHook('onRequest', async (request) => {
    if (request.method === 'OPTIONS' && (!request.headers.origin || !request.headers['access-control-request-method'])) {
      throw new TallyError('invalid_request', 'A CORS preflight needs the Origin and Access-Control-Request-Method headers.');
    }
  });
  // Any origin, no credentials (keys travel in headers, never cookies); every method a browser
  // holding a user token uses on the inbox routes.
  await app.register(cors, { origin: true, methods: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS'], maxAge: 86400 });
  await registerOpenApi(app);

  app.addHook('onResponse', async (request, reply) => {
    metrics.requestDuration.observe(
      { method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  registerHealthRoutes(app, ctx, metrics, options.flusher);
  if (options.routes === 'ops') return app;

  const ingest = createIngest(ctx, (n) => metrics.ingested.inc(n));
  const collect = { auth, ingest, rateLimit: createRateLimiter(ctx.config.collectRateLimit) };
  await app.register(async (collectApp) => {
    // RudderStack's Node SDK posts its gzipped JSON through axios, which labels a Buffer body as a
    // form; RudderStack's own server reads it as JSON regardless, so the collect routes do too.
    collectApp.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, createJsonParser(app));
    registerSegmentRoutes(collectApp, collect);
    registerClickRoute(collectApp, collect);
    registerPlausibleRoute(collectApp, { ...collect, sites: ctx.sites, unknownDomain: metrics.plausibleUnknownDomain });
  });
  registerCounterRoutes(app, { auth, stats: createCounterStats(ctx) });
  const now = options.now ?? Date.now;
  const goals = new GoalRepository(ctx.db);
  const runQuery = createQueryEngine(ctx.events);
  registerStatsRoutes(app, {
    auth,
    queries: createStatsQueries(createStatsReader(ctx, now), now),
    filtered: createFilteredStats(runQuery),
    goals,
  });
  registerQueryRoutes(app, { auth, goals, runQuery, now });
  registerGoalRoutes(app, { auth, goals });
  registerAnalysisRoutes(app, { auth, events: ctx.events, inputs: createQueryInputs(goals), now });
  registerUserEventsRoute(app, { auth, events: ctx.events, now });
  registerSiteRoutes(app, { config: ctx.config, sites: ctx.sites, auth });
  registerInboxRoutes(app, { ctx, auth, registry: metrics.registry });
  registerTrackerRoute(app);
  registerInboxUiRoutes(app);
  registerDashboardRoute(app);
  registerApiDocsRoutes(app);
  return app;
}
