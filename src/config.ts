import { isIP } from 'node:net';
import { join } from 'node:path';
import { IN_MEMORY } from './storage/pglite.js';

// Configuration is read from the environment once, at start, validated and frozen; every module
// receives it as an argument. Nothing else in src/ reads process.env.

export type Mode = 'embedded' | 'external';

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly adminToken: string | undefined;
  /** 'embedded': PGlite in dataDir + the in-process real-time layer. 'external': Redis + PostgreSQL. */
  readonly mode: Mode;
  readonly dataDir: string;
  /**
   * Folder of the columnar event store (Parquet files), shared by every processor and API process
   * of an installation (TALLY_EVENTS_DIR, default DATA_DIR/events); undefined with an in-memory
   * DATA_DIR: a temporary folder, deleted at close.
   */
  readonly eventsDir: string | undefined;
  readonly redisUrl: string | undefined;
  readonly redisClusterNodes: readonly { host: string; port: number }[] | undefined;
  readonly databaseUrl: string | undefined;
  /** Prefix of every Redis key, so several Tallies (or test files) can share one Redis. */
  readonly redisPrefix: string;
  /** PostgreSQL schema holding Tally's tables (tests give each file its own). */
  readonly pgSchema: string;
  /** Number of ingestion stream shards; each has its own consumer group. */
  readonly streamShards: number;
  /** Ingestion answers 503 overloaded once a shard holds this many unprocessed batches. */
  readonly streamMaxBacklog: number;
  readonly flushIntervalMs: number;
  /** A stream entry delivered to a consumer that has not acknowledged it for this long is taken over (the consumer died). */
  readonly claimIdleMs: number;
  /** Failed attempts after which a stream batch moves to its shard's dead letters. */
  readonly deadLetterAttempts: number;
  readonly logLevel: string;
  /** Requests per second allowed per write key (token bucket); 0 disables. */
  readonly collectRateLimit: number;
  /** Seconds a user token stays valid. */
  readonly userTokenTtlSeconds: number;
  /** Processes serving the HTTP API (`tally serve`, external mode only): Node runs JavaScript on one core per process. */
  readonly httpProcesses: number;
  /**
   * Which peers may name the client's address in X-Forwarded-For (Fastify's trustProxy): every
   * peer (true), none (false), the nearest N hops, or addresses, CIDR ranges and the names
   * loopback, linklocal, uniquelocal. The address feeds the hash of visitors without an id.
   */
  readonly trustProxy: boolean | number | readonly string[];
  /**
   * Milliseconds a client has to send a whole request, headers and body; after that it gets a 408
   * and its connection is closed, so slow or stalled senders cannot hold connections open. Only
   * the request counts: a response that lasts (a live stream) is not cut.
   */
  readonly requestTimeoutMs: number;
  /**
   * Start even when Redis may evict keys (a maxmemory-policy other than noeviction). Pending
   * counter deltas live only in Redis until flushed, so an evicting Redis loses counts silently.
   */
  readonly allowEvictingRedis: boolean;
  /** An MMDB file to place visitors' addresses in (country, region); unset: the bundled CC0 country database. */
  readonly geoipDatabase: string | undefined;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

type Env = Readonly<Record<string, string | undefined>>;

function intVar(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`${name} must be a whole number, got "${raw}".`);
  const value = Number(raw);
  if (value < min || value > max) {
    throw new ConfigError(`${name} must be between ${min} and ${max}, got ${value}.`);
  }
  return value;
}

function boolVar(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = raw.trim();
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new ConfigError(`${name} must be true or false, got "${raw}".`);
}

function urlVar(env: Env, name: string, protocols: readonly string[]): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${name} is not a valid URL.`);
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(`${name} must start with ${protocols.map((p) => `${p}//`).join(' or ')}.`);
  }
  return raw;
}

function clusterNodes(raw: string | undefined): { host: string; port: number }[] | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  return raw.split(',').map((part) => {
    const match = /^\s*([^:\s]+):(\d{1,5})\s*$/.exec(part);
    if (!match) throw new ConfigError(`REDIS_CLUSTER_NODES must be comma-separated host:port, got "${part}".`);
    return { host: match[1] as string, port: Number(match[2]) };
  });
}

/**
 * Proxies on private networks only, by default: a reverse proxy in front of Tally (same host, a
 * container network, a VPC) is trusted, while a client on the internet cannot choose the
 * address its visitor hash is made from.
 */
const DEFAULT_TRUSTED_PROXIES = Object.freeze(['loopback', 'linklocal', 'uniquelocal']);

function trustProxyVar(raw: string | undefined): boolean | number | readonly string[] {
  if (raw === undefined || raw.trim() === '') return DEFAULT_TRUSTED_PROXIES;
  const value = raw.trim();
  if (value === 'true') return true;
  if (value === 'false') return false;
  if (/^\d+$/.test(value)) {
    const hops = Number(value);
    if (hops < 1 || hops > 32) throw new ConfigError(`TALLY_TRUST_PROXY as a hop count must be between 1 and 32, got ${hops}.`);
    return hops;
  }
  const entries = value.split(',').map((e) => e.trim());
  for (const entry of entries) {
    if (DEFAULT_TRUSTED_PROXIES.includes(entry)) continue;
    const [address = '', prefix, extra] = entry.split('/');
    const family = isIP(address);
    const bits = family === 4 ? 32 : 128;
    const prefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= bits);
    if (family === 0 || !prefixOk || extra !== undefined) {
      throw new ConfigError(
        `TALLY_TRUST_PROXY must be true, false, a hop count, or comma-separated addresses, CIDR ranges, loopback, linklocal and uniquelocal; "${entry}" is none of them.`,
      );
    }
  }
  return Object.freeze(entries);
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

export function loadConfig(env: Env): Config {
  const redisUrl = urlVar(env, 'REDIS_URL', ['redis:', 'rediss:']);
  const redisClusterNodes = clusterNodes(env['REDIS_CLUSTER_NODES']);
  const databaseUrl = urlVar(env, 'DATABASE_URL', ['postgres:', 'postgresql:']);
  const hasRedis = redisUrl !== undefined || redisClusterNodes !== undefined;
  if (hasRedis !== (databaseUrl !== undefined)) {
    throw new ConfigError(
      'Set both DATABASE_URL and REDIS_URL (or REDIS_CLUSTER_NODES) to use Redis and PostgreSQL, or neither for the embedded default.',
    );
  }
  const pgSchema = env['TALLY_PG_SCHEMA'] || 'public';
  if (!IDENTIFIER.test(pgSchema)) {
    throw new ConfigError(`TALLY_PG_SCHEMA must be a lower-case SQL identifier, got "${pgSchema}".`);
  }
  const redisPrefix = env['TALLY_REDIS_PREFIX'] || 'tally';
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(redisPrefix)) {
    throw new ConfigError(`TALLY_REDIS_PREFIX may hold letters, digits, '_', '.', '-' only, got "${redisPrefix}".`);
  }
  const httpProcesses = intVar(env, 'TALLY_HTTP_PROCESSES', 1, 1, 64);
  if (httpProcesses > 1 && !hasRedis) {
    throw new ConfigError(
      'TALLY_HTTP_PROCESSES above 1 needs REDIS_URL and DATABASE_URL: the embedded mode keeps its data and buffers in one process.',
    );
  }
  const dataDir = env['DATA_DIR'] || './data';
  const adminToken = env['ADMIN_TOKEN'] || undefined;
  if (adminToken !== undefined && adminToken.length < 16) {
    throw new ConfigError('ADMIN_TOKEN must be at least 16 characters long.');
  }
  return Object.freeze({
    port: intVar(env, 'PORT', 8080, 0, 65535),
    host: env['HOST'] || '0.0.0.0',
    adminToken,
    mode: hasRedis ? 'external' : 'embedded',
    dataDir,
    eventsDir: env['TALLY_EVENTS_DIR'] || (dataDir === IN_MEMORY ? undefined : join(dataDir, 'events')),
    redisUrl,
    redisClusterNodes: redisClusterNodes ? Object.freeze(redisClusterNodes) : undefined,
    databaseUrl,
    redisPrefix,
    pgSchema,
    streamShards: intVar(env, 'TALLY_STREAM_SHARDS', 4, 1, 256),
    streamMaxBacklog: intVar(env, 'TALLY_STREAM_MAX_BACKLOG', 100_000, 100, 100_000_000),
    flushIntervalMs: intVar(env, 'TALLY_FLUSH_INTERVAL_MS', 1000, 10, 3_600_000),
    claimIdleMs: intVar(env, 'TALLY_CLAIM_IDLE_MS', 30_000, 100, 3_600_000),
    deadLetterAttempts: intVar(env, 'TALLY_DEAD_LETTER_ATTEMPTS', 5, 1, 1000),
    logLevel: env['LOG_LEVEL'] || 'info',
    collectRateLimit: intVar(env, 'TALLY_COLLECT_RATE_LIMIT', 10_000, 0, 10_000_000),
    userTokenTtlSeconds: intVar(env, 'TALLY_USER_TOKEN_TTL', 3600, 60, 31_536_000),
    httpProcesses,
    trustProxy: trustProxyVar(env['TALLY_TRUST_PROXY']),
    requestTimeoutMs: intVar(env, 'TALLY_REQUEST_TIMEOUT_MS', 10_000, 100, 600_000),
    allowEvictingRedis: boolVar(env, 'TALLY_ALLOW_EVICTING_REDIS', false),
    geoipDatabase: env['TALLY_GEOIP_DATABASE'] || undefined,
  } satisfies Config);
}
