import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { UnknownNames } from './counters/counter-names.js';
import type { EventStore } from './events/event-store.js';
import { openEventStore } from './events/open-event-store.js';
import { type GeoLookup, openGeoDatabase } from './process/geo.js';
import { rebuildSite } from './process/rebuild.js';
import { restoreSessions } from './process/restore-sessions.js';
import { SiteRepository } from './sites/site-repository.js';
import type { Db } from './storage/db.js';
import { openEmbeddedRealtime } from './storage/embedded/index.js';
import { createEmbeddedSessions, type EmbeddedSessions } from './storage/embedded/sessions.js';
import { createKeys, type Keys } from './storage/keys.js';
import { migrate } from './storage/migrate.js';
import { openPglite, type PgliteOptions } from './storage/pglite.js';
import { connectPostgres } from './storage/postgres.js';
import type { Realtime } from './storage/realtime.js';
import { checkRedisEviction } from './storage/redis/eviction-guard.js';
import { connectRedis, createRedisRealtime } from './storage/redis/index.js';

/** Everything a Tally process works with, built once at start and passed down. */
export interface Context {
  config: Config;
  log: Logger;
  db: Db;
  realtime: Realtime;
  keys: Keys;
  sites: SiteRepository;
  /** The columnar event store (Parquet files under config.eventsDir, read through DuckDB). */
  events: EventStore;
  /** Where stored names this version cannot read are reported (logged, and counted for /metrics). */
  unknownNames: UnknownNames & { seen(): number };
  /** Places a client's IP (the processor's enrichment); its database is read once, at start. */
  geo: GeoLookup;
  close(): Promise<void>;
}

function reportUnknownNames(log: Logger): UnknownNames & { seen(): number } {
  let seen = 0;
  return Object.assign(
    (where: string, names: readonly string[]) => {
      seen += names.length;
      log.error({ where, count: names.length, names: names.slice(0, 10) }, 'stored counter names this version cannot read were skipped');
    },
    { seen: () => seen },
  );
}

export interface ContextOptions {
  /** How an in-memory embedded database starts (tests open many: a copied image spares initdb). */
  pglite?: PgliteOptions;
}

export async function openContext(config: Config, log: Logger, options: ContextOptions = {}): Promise<Context> {
  const keys = createKeys(config.redisPrefix);
  let db: Db;
  let openRealtime: () => Promise<Realtime>;
  /** The embedded layer's session state, restored from the event store below. */
  let embeddedSessions: EmbeddedSessions | undefined;
  if (config.mode === 'external') {
    const client = connectRedis({ url: config.redisUrl, clusterNodes: config.redisClusterNodes });
    client.on('error', (err: Error) => log.warn({ err: err.message }, 'Redis connection error'));
    try {
      await checkRedisEviction(client, config.allowEvictingRedis, log);
    } catch (err) {
      client.disconnect();
      throw err;
    }
    db = connectPostgres({
      connectionString: config.databaseUrl as string,
      schema: config.pgSchema,
      onError: (err) => log.warn({ err }, 'idle PostgreSQL connection failed'),
    });
    openRealtime = async () => createRedisRealtime(client, keys);
  } else {
    log.info({ dataDir: config.dataDir }, 'embedded mode: PGlite and the in-process real-time layer');
    db = await openPglite(config.dataDir, config.pgSchema, options.pglite);
    const sessions = createEmbeddedSessions(keys, Date.now);
    embeddedSessions = sessions;
    openRealtime = () => openEmbeddedRealtime(keys, db, Date.now, sessions);
  }
  const applied = await migrate(db, config.pgSchema);
  if (applied.length > 0) log.info({ applied }, 'migrations applied');
  // The embedded layer reads its queue's journal from the migrated database.
  const realtime = await openRealtime();
  const sites = new SiteRepository(db);
  const events = await openEventStore(config);
  const unknownNames = reportUnknownNames(log);
  if (embeddedSessions) {
    // The in-process layer starts empty: PostgreSQL's durable counters are the truth to reload,
    // the event store's recent events that of the session state. Both before any worker starts.
    const nowMs = Date.now();
    let visitors = 0;
    for (const site of await sites.list()) {
      await rebuildSite({ db, realtime, unknownNames }, site.id, nowMs);
      visitors += await restoreSessions({ events, sessions: embeddedSessions }, site.id, nowMs);
    }
    log.info({ visitors }, 'embedded mode: session state restored from the event store');
  }
  return {
    config,
    log,
    db,
    realtime,
    keys,
    sites,
    events,
    unknownNames,
    geo: openGeoDatabase(config.geoipDatabase),
    async close() {
      await realtime.close();
      await db.close();
      await events.close();
    },
  };
}
