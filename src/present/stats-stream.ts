import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import type { Auth } from '../http/auth.js';
import type { StatsQueries } from './stats-queries.js';
import { resolvePeriod } from './stats-range.js';
import { PeriodQuery } from './stats-schemas.js';

// GET /v1/stats/stream: Server-Sent Events. Every second the figures are read again and sent
// (event "stats") when they changed: {"realtime": {"visitors"}, "summary": {…}} for the period
// asked (default today). The first event goes out at once; a comment line every 15 s keeps
// proxies from closing a quiet stream. Streams end when the client leaves or the app closes.

const TICK_MS = 1000;
const KEEPALIVE_MS = 15_000;

export function registerStatsStream(app: FastifyInstance, deps: { auth: Auth; queries: StatsQueries }): void {
  const open = new Set<() => void>();
  app.addHook('onClose', async () => {
    for (const end of [...open]) end();
  });

  app.withTypeProvider<TypeBoxTypeProvider>().get('/v1/stats/stream', { schema: { querystring: PeriodQuery } }, async (request, reply) => {
    const site = await deps.auth.secret(request);
    const query = { period: 'today' as const, ...request.query };
    // A range the schema lets through but the range rules refuse (custom without dates, `to`
    // before `from`, too long) is a 400 now: once the stream is open, every tick would fail.
    resolvePeriod(query, Date.now(), site.timezone);
    const raw = reply.raw;
    reply.hijack();
    const headers: Record<string, string | number | string[]> = {};
    for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) headers[name] = value;
    raw.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });

    let last = '';
    let busy = false;
    let lastWrite = Date.now();
    const tick = async () => {
      if (busy) return;
      busy = true;
      try {
        const [realtime, summary] = await Promise.all([deps.queries.realtime(site), deps.queries.summary(site, query)]);
        const data = JSON.stringify({ realtime, summary });
        if (data !== last) {
          last = data;
          raw.write(`event: stats\ndata: ${data}\n\n`);
          lastWrite = Date.now();
        } else if (Date.now() - lastWrite >= KEEPALIVE_MS) {
          raw.write(': keep-alive\n\n');
          lastWrite = Date.now();
        }
      } catch (err) {
        request.log.warn({ err }, 'stats stream could not read the figures');
      } finally {
        busy = false;
      }
    };
    const timer = setInterval(() => void tick(), TICK_MS);
    const end = () => {
      clearInterval(timer);
      open.delete(end);
      if (!raw.writableEnded) raw.end();
    };
    open.add(end);
    request.raw.on('close', end);
    await tick();
  });
}
