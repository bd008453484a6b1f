import cluster, { type Worker as HttpProcess } from 'node:cluster';
import type { AddressInfo } from 'node:net';
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

/** What a process stops, each part optional: its HTTP side, its worker, its connections. */
interface Stoppable {
  /** Stops accepting and finishes in-flight requests (or stops the HTTP processes). */
  http?: () => Promise<void>;
  worker?: Worker | undefined;
  /** Closes Redis and PostgreSQL, once nothing uses them. */
  close?: () => Promise<void>;
}

/**
 * The one stop order of every start mode: no more requests and the in-flight ones finished, then
 * the worker (embedded drain, final flush), then the connections. A part that fails does not
 * keep the next from stopping; the first failure is thrown at the end.
 */
async function stopInOrder(parts: Stoppable): Promise<void> {
  try {
    await parts.http?.();
  } finally {
    try {
      await parts.worker?.stop();
    } finally {
      await parts.close?.();
    }
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
  if (config.httpProcesses > 1 && cluster.isPrimary) return runHttpProcesses(config, log, options);
  const ctx = await openContext(config, log);
  await ensureDefaultSite(ctx, (line) => process.stdout.write(line + '\n'));
  const metrics = createMetrics();
  const worker: Worker | undefined = options.worker ? startWorker(ctx, metrics) : undefined;
  const app = await buildApp(ctx, worker ? { metrics, flusher: worker.flusher } : { metrics });
  const address = await app.listen({ port: config.port, host: config.host });
  // One of TALLY_HTTP_PROCESSES: the primary says when all of them listen.
  if (cluster.isWorker) log.debug({ address }, 'HTTP process listening');
  else log.info({ address, mode: config.mode, worker: options.worker }, 'Tally is listening');
  onSignals(log, () => stopInOrder({ http: () => app.close(), worker, close: () => ctx.close() }));
}

const CHILD_STOP_MS = 30_000;

/**
 * TALLY_HTTP_PROCESSES > 1: this process migrates, creates the default site, runs the worker
 * (unless --no-worker) and forks that many `serve --no-worker` processes sharing the port
 * (node:cluster hands them connections in turn). SIGTERM stops them gracefully, then the worker.
 * A process that dies after it listened is replaced; one that dies before fails the start.
 */
async function runHttpProcesses(config: Config, log: Logger, options: { worker: boolean }): Promise<void> {
  const ctx = await openContext(config, log);
  await ensureDefaultSite(ctx, (line) => process.stdout.write(line + '\n'));
  const worker: Worker | undefined = options.worker ? startWorker(ctx, createMetrics()) : undefined;
  if (!worker) await ctx.close();
  cluster.setupPrimary({ args: ['serve', '--no-worker'] });

  let stopping = false;
  /** Each HTTP process, and whether it listens yet. */
  const children = new Map<HttpProcess, boolean>();
  const fork = () =>
    new Promise<AddressInfo>((resolve, reject) => {
      const child = cluster.fork();
      children.set(child, false);
      child.once('listening', (address: AddressInfo) => {
        children.set(child, true);
        resolve(address);
      });
      child.once('exit', (code, signal) => {
        const listened = children.get(child) === true;
        children.delete(child);
        if (stopping) return;
        if (!listened) {
          reject(new Error(`an HTTP process exited (${signal ?? code}) before it listened; its log says why.`));
          return;
        }
        log.error({ httpPid: child.process.pid, code, signal }, 'an HTTP process died; starting another');
        fork().catch((err: unknown) => log.error({ err }, 'could not replace an HTTP process'));
      });
    });

  /** SIGTERM to every HTTP process; rejects unless all stopped cleanly (one still starting has nothing to finish). */
  const stopChildren = async () => {
    stopping = true;
    const clean = await Promise.all(
      [...children].map(
        ([child, listened]) =>
          new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => child.process.kill('SIGKILL'), CHILD_STOP_MS);
            child.once('exit', (code, signal) => {
              clearTimeout(timer);
              resolve(code === 0 || (!listened && signal === 'SIGTERM'));
            });
            child.process.kill('SIGTERM');
          }),
      ),
    );
    if (!clean.every(Boolean)) throw new Error('an HTTP process did not stop cleanly (see its log)');
  };
  // Without a worker the connections were closed after the start.
  const stop = () => stopInOrder({ http: stopChildren, worker, close: worker ? () => ctx.close() : undefined });

  let addresses: AddressInfo[];
  try {
    addresses = await Promise.all(Array.from({ length: config.httpProcesses }, fork));
  } catch (err) {
    await stop().catch((stopErr: unknown) => log.error({ err: stopErr }, 'stopping after the failed start failed too'));
    throw err;
  }
  const first = addresses[0] as AddressInfo;
  const host = first.address.includes(':') ? `[${first.address}]` : first.address;
  log.info(
    {
      address: `http://${host}:${first.port}`,
      mode: config.mode,
      worker: options.worker,
      httpProcesses: [...children.keys()].map((child) => child.process.pid),
    },
    'Tally is listening',
  );
  onSignals(log, stop);
}

export async function runWorker(config: Config, log: Logger): Promise<void> {
  const ctx = await openContext(config, log);
  const metrics = createMetrics();
  const worker = startWorker(ctx, metrics);
  // A worker answers health, readiness and metrics only.
  const app = await buildApp(ctx, { metrics, flusher: worker.flusher, routes: 'ops' });
  const address = await app.listen({ port: config.port, host: config.host });
  log.info({ address, mode: config.mode }, 'Tally worker started');
  onSignals(log, () => stopInOrder({ http: () => app.close(), worker, close: () => ctx.close() }));
}
