#!/usr/bin/env node
import { pino } from 'pino';
import { ConfigError, loadConfig } from './config.js';
import { openContext } from './context.js';
import { analyticsTargets } from './counters/analytics-counters.js';
import { startFlusher } from './counters/flusher.js';
import { DEFAULT_STALE_MS, reconcileSites } from './inbox/reconcile.js';
import { createUnreadCounter } from './inbox/unread-counter.js';
import { inboxTargets } from './inbox/unread-flush.js';
import { listDeadLetters, replayDeadLetters } from './process/dead-letters.js';
import { type RebuildResult, rebuildSite } from './process/rebuild.js';
import { rollupTargets } from './process/rollup-targets.js';
import { runServer, runWorker } from './server.js';

// tally <command>: the one entry point of every Tally process.

const USAGE = `Usage: tally <command>

  serve [--no-worker]   HTTP API, plus the processor and flusher unless --no-worker
  worker                processor and flusher only (needs REDIS_URL and DATABASE_URL)
  migrate               apply database migrations and exit
  site create <name>    create a site and print its keys
  flush                 flush buffered counters to PostgreSQL once and exit
  rebuild               after Redis lost its data: flush what is buffered, then restore every
                        site's counters, time buckets and uniques from PostgreSQL
  dead-letters list     stream entries whose batch failed every attempt (site, message ids)
  dead-letters replay   put them back into their streams (after fixing the cause), then delete them
  reconcile [--all] [--stale-seconds N]
                        check unread counts against their notifications (recently changed
                        users, or every user with --all), repair drift, print what was found

Configuration comes from the environment; see README.md.`;

async function withContext<T>(
  fn: (ctx: Awaited<ReturnType<typeof openContext>>) => Promise<T>,
  config: ReturnType<typeof loadConfig>,
  log: pino.Logger,
) {
  const ctx = await openContext(config, log);
  try {
    return await fn(ctx);
  } finally {
    await ctx.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help') {
    process.stdout.write(USAGE + '\n');
    return command ? 0 : 2;
  }
  const config = loadConfig(process.env);
  const log = pino({ level: config.logLevel, base: { pid: process.pid } });

  switch (command) {
    case 'serve':
      await runServer(config, log, { worker: !rest.includes('--no-worker') });
      return -1;
    case 'worker':
      if (config.mode === 'embedded')
        throw new ConfigError('tally worker needs REDIS_URL and DATABASE_URL: the embedded default runs everything in `tally serve`.');
      await runWorker(config, log);
      return -1;
    case 'migrate':
      await withContext(async () => log.info('migrations are up to date'), config, log);
      return 0;
    case 'site': {
      const name = rest[1];
      if (rest[0] !== 'create' || !name) throw new ConfigError('Usage: tally site create <name>');
      const site = await withContext((ctx) => ctx.sites.create(name), config, log);
      process.stdout.write(JSON.stringify(site, null, 2) + '\n');
      return 0;
    }
    case 'flush': {
      const batches = await withContext(
        async (ctx) => {
          const flusher = startFlusher(ctx, {
            intervalMs: 1000,
            providers: [analyticsTargets(ctx), rollupTargets(ctx, ctx.unknownNames), inboxTargets(ctx)],
            autoStart: false,
          });
          return flusher.flushAll();
        },
        config,
        log,
      );
      log.info({ batches }, 'flushed');
      return 0;
    }
    case 'rebuild': {
      const restored = await withContext(
        async (ctx) => {
          const flusher = startFlusher(ctx, {
            intervalMs: 1000,
            providers: [analyticsTargets(ctx), rollupTargets(ctx, ctx.unknownNames)],
            autoStart: false,
          });
          await flusher.flushAll();
          const sites: Record<string, RebuildResult> = {};
          for (const site of await ctx.sites.list()) sites[site.name] = await rebuildSite(ctx, site.id);
          return sites;
        },
        config,
        log,
      );
      process.stdout.write(JSON.stringify(restored, null, 2) + '\n');
      return 0;
    }
    case 'dead-letters': {
      if (rest[0] !== 'list' && rest[0] !== 'replay') throw new ConfigError('Usage: tally dead-letters list|replay');
      if (config.mode === 'embedded') {
        throw new ConfigError(
          'The embedded mode keeps its dead letters in the serving process (its log shows them); tally dead-letters needs REDIS_URL and DATABASE_URL.',
        );
      }
      const found = await withContext(
        async (ctx) =>
          rest[0] === 'list'
            ? listDeadLetters(ctx, config.streamShards)
            : { replayed: await replayDeadLetters(ctx, config.streamShards, config.streamMaxBacklog) },
        config,
        log,
      );
      process.stdout.write(JSON.stringify(found, null, 2) + '\n');
      return 0;
    }
    case 'reconcile': {
      const at = rest.indexOf('--stale-seconds');
      const stale = at >= 0 ? Number(rest[at + 1]) : DEFAULT_STALE_MS / 1000;
      if (!Number.isFinite(stale) || stale < 0) throw new ConfigError('Usage: tally reconcile [--all] [--stale-seconds N]');
      const found = await withContext(
        (ctx) =>
          reconcileSites(
            { ...ctx, counter: createUnreadCounter(ctx) },
            { all: rest.includes('--all'), staleMs: stale * 1000, settleMs: 0, limit: 1_000_000 },
          ),
        config,
        log,
      );
      process.stdout.write(JSON.stringify(found, null, 2) + '\n');
      return 0;
    }
    default:
      process.stderr.write(`Unknown command "${command}".\n\n${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    if (err instanceof ConfigError || (err instanceof Error && err.name === 'TallyError')) {
      process.stderr.write(`tally: ${err.message}\n`);
    } else {
      process.stderr.write(`tally: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    }
    process.exit(1);
  },
);
