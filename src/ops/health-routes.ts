import type { FastifyInstance } from 'fastify';
import type { Context } from '../context.js';
import type { Flusher } from '../counters/flusher.js';
import { migrationsApplied } from '../storage/migrate.js';
import type { Metrics } from './metrics.js';

export function registerHealthRoutes(app: FastifyInstance, ctx: Context, metrics: Metrics, flusher?: Flusher): void {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const check = async (fn: () => Promise<unknown>) => {
      try {
        return (await fn()) !== false ? 'ok' : 'pending';
      } catch {
        return 'down';
      }
    };
    const [redis, postgres, migrations] = await Promise.all([
      check(() => ctx.realtime.ping()),
      check(() => ctx.db.query('SELECT 1')),
      check(() => migrationsApplied(ctx.db)),
    ]);
    const ready = redis === 'ok' && postgres === 'ok' && migrations === 'ok';
    return reply.status(ready ? 200 : 503).send({ ready, redis, postgres, migrations });
  });

  app.get('/metrics', async (_request, reply) => {
    let backlog = 0;
    for (let shard = 0; shard < ctx.config.streamShards; shard++) {
      backlog += await ctx.realtime.queue.length(ctx.keys.stream(shard)).catch(() => 0);
    }
    metrics.streamBacklog.set(backlog);
    if (flusher) metrics.flushLag.set(flusher.lagSeconds());
    metrics.unknownNames.set(ctx.unknownNames.seen());
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
}
