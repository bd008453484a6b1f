import type { Logger } from 'pino';
import { buildApp } from './app.js';
import type { Config } from './config.js';
import { type Context, openContext } from './context.js';
import { TallyError } from './errors.js';
import { createMetrics } from './ops/metrics.js';
import { startWorker, type Worker } from './worker.js';

// Starting and stopping processes: logs, listens, and shuts down in order on SIGTERM/SIGINT —
// stop accepting and finish in-flight requests, drain the processor, flush, close connections.

/** On an empty store, creates the site "default" and prints its keys, this once. */
export async function ensureDefaultSite(ctx: Context, print: (line: string) => void): Promise<void> {
  if ((await ctx.sites.count()) > 0) return;
  try {
    const site = await ctx.sites.create('default');
    print(
      [
        '',
        `Tally created the site "default" (${site.id}). Its keys are shown this once; keep them:`,
        `  write key  (browser and SDKs, collect only):      ${site.writeKey}`,
        `  secret key (server side: stats, notifications):   ${site.secretKey}`,
        `  the live dashboard is http://localhost:${ctx.config.port}/ (it asks for the secret key)`,
        '',
      ].join('\n'),
    );
  } catch (err) {
    // Another process created it first.
    if (!(err instanceof TallyError && err.code === 'conflict')) throw err;
  }
}

function onSignals(log: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    stop()
      .then(() => process.exit(0))
      .catch((err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.once('SIGTERM', handler);
  process.once('SIGINT', handler);
}

export async function runServer(config: Config, log: Logger, options: { worker: boolean }): Promise<void> {
  const ctx = await openContext(config, log);
  await ensureDefaultSite(ctx, (line) => process.stdout.write(line + '\n'));
  const metrics = createMetrics();
  const worker: Worker | undefined = options.worker ? startWorker(ctx, metrics) : undefined;
  const app = await buildApp(ctx, worker ? { metrics, flusher: worker.flusher } : { metrics });
  const address = await app.listen({ port: config.port, host: config.host });
  log.info({ address, mode: config.mode, worker: options.worker }, 'Tally is listening');
  onSignals(log, async () => {
    await app.close();
    await worker?.stop();
    await ctx.close();
  });
}

export async function runWorker(config: Config, log: Logger): Promise<void> {
  const ctx = await openContext(config, log);
  const metrics = createMetrics();
  const worker = startWorker(ctx, metrics);
  // A worker answers health, readiness and metrics only.
  const app = await buildApp(ctx, { metrics, flusher: worker.flusher, routes: 'ops' });
  const address = await app.listen({ port: config.port, host: config.host });
  log.info({ address, mode: config.mode }, 'Tally worker started');
  onSignals(log, async () => {
    await app.close();
    await worker.stop();
    await ctx.close();
  });
}
