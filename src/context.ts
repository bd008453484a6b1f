import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { Db } from './storage/db.js';
import { createKeys, type Keys } from './storage/keys.js';
import { createMemoryRealtime } from './storage/memory/realtime-memory.js';
import { rebuildSite } from './process/rebuild.js';
import { migrate } from './storage/migrate.js';
import { openPglite } from './storage/pglite.js';
import { connectPostgres } from './storage/postgres.js';
import type { Realtime } from './storage/realtime.js';
import { checkRedisEviction } from './storage/redis/eviction-guard.js';
import { connectRedis, createRedisRealtime } from './storage/redis/realtime-redis.js';
import { SiteRepository } from './sites/site-repository.js';

/** Everything a Tally process works with, built once at start and passed down. */
export interface Context {
  config: Config;
  log: Logger;
  db: Db;
  realtime: Realtime;
  keys: Keys;
  sites: SiteRepository;
  close(): Promise<void>;
}

export async function openContext(config: Config, log: Logger): Promise<Context> {
  const keys = createKeys(config.redisPrefix);
  let db: Db;
  let realtime: Realtime;
  if (config.mode === 'external') {
    const client = connectRedis({ url: config.redisUrl, clusterNodes: config.redisClusterNodes });
    client.on('error', (err: Error) => log.warn({ err: err.message }, 'Redis connection error'));
    try {
      await checkRedisEviction(client, config.allowEvictingRedis, log);
    } catch (err) {
      client.disconnect();
      throw err;
    }
    realtime = createRedisRealtime(client);
    db = connectPostgres({
      connectionString: config.databaseUrl as string,
      schema: config.pgSchema,
      onError: (err) => log.warn({ err }, 'idle PostgreSQL connection failed'),
    });
  } else {
    log.info({ dataDir: config.dataDir }, 'embedded mode: PGlite and the in-process real-time layer');
    db = await openPglite(config.dataDir, config.pgSchema);
    realtime = createMemoryRealtime();
  }
  const applied = await migrate(db, config.pgSchema);
  if (applied.length > 0) log.info({ applied }, 'migrations applied');
  const sites = new SiteRepository(db);
  if (config.mode === 'embedded') {
    // The in-process layer starts empty: PostgreSQL's durable counters are the truth to reload.
    for (const site of await sites.list()) await rebuildSite({ db, realtime, keys }, site.id);
  }
  return {
    config,
    log,
    db,
    realtime,
    keys,
    sites,
    async close() {
      await realtime.close();
      await db.close();
    },
  };
}
