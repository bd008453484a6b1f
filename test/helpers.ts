import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import pg from 'pg';
import { pino } from 'pino';
import { inject } from 'vitest';
import { buildApp } from '../src/app.js';
import { type Config, loadConfig } from '../src/config.js';
import { type Context, type ContextOptions, openContext } from '../src/context.js';
import type { CreatedSite } from '../src/sites/site-repository.js';
import type { BufferKeys } from '../src/storage/keys.js';
import type { Realtime } from '../src/storage/realtime.js';

// Tests talk to the real Redis and PostgreSQL of the machine (CI starts them); each test file
// works in its own PostgreSQL schema and Redis key prefix, dropped at the end.

export const REDIS_URL = process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
export const DATABASE_URL = process.env['TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

export type Mode = 'external' | 'embedded';

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

/** A config for one test: its own schema and key prefix; embedded mode keeps PGlite in memory. */
export function testConfig(mode: Mode, env: Record<string, string> = {}): Config {
  const base: Record<string, string> = {
    TALLY_PG_SCHEMA: uniqueName('t'),
    TALLY_REDIS_PREFIX: uniqueName('t'),
    LOG_LEVEL: 'warn',
    TALLY_FLUSH_INTERVAL_MS: '100',
    DATA_DIR: 'memory://',
  };
  if (mode === 'external') {
    base['REDIS_URL'] = REDIS_URL;
    base['DATABASE_URL'] = DATABASE_URL;
  }
  return loadConfig({ ...base, ...env });
}

export const silentLog = pino({ level: 'silent' });

/** Deletes every Redis key of the test's prefix (SCAN is fine in a test tool): Redis "lost its data". */
export async function dropRedisKeys(config: Config): Promise<void> {
  const redis = new Redis(config.redisUrl as string);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${config.redisPrefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** Removes what a test left in Redis and PostgreSQL. */
export async function dropTestData(config: Config): Promise<void> {
  if (config.mode !== 'external') return;
  await dropRedisKeys(config);
  const client = new pg.Client({ connectionString: config.databaseUrl as string });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${config.pgSchema} CASCADE`);
  } finally {
    await client.end();
  }
}

export interface TestContext {
  ctx: Context;
  close(): Promise<void>;
}

let pgliteTemplate: Promise<Blob> | undefined;

/**
 * The fresh PGlite cluster image the global setup made (test/global-setup.ts), read once per test
 * file: an in-memory PGlite started from it skips initdb.
 */
export function freshPgliteImage(): Promise<Blob> {
  pgliteTemplate ??= readFile(inject('pgliteTemplate')).then((bytes) => new Blob([bytes]));
  return pgliteTemplate;
}

/** Options of a test's context: an embedded one starts from the fresh cluster image. */
export async function testContextOptions(config: Config): Promise<ContextOptions> {
  if (config.mode !== 'embedded') return {};
  return { pglite: { template: await freshPgliteImage() } };
}

export async function openTestContext(mode: Mode, env: Record<string, string> = {}): Promise<TestContext> {
  const config = testConfig(mode, env);
  const ctx = await openContext(config, silentLog, await testContextOptions(config));
  return {
    ctx,
    async close() {
      await ctx.close();
      await dropTestData(config);
    },
  };
}

export interface TestApp extends TestContext {
  app: FastifyInstance;
  site: CreatedSite;
  /** Authorization header value of the site's write key (HTTP Basic, empty password). */
  basic: string;
  /** Authorization header value of the site's secret key. */
  bearer: string;
}

/** A context, an app over it (not listening: use app.inject) and one site. */
export async function openTestApp(mode: Mode, env: Record<string, string> = {}): Promise<TestApp> {
  const test = await openTestContext(mode, env);
  const app = await buildApp(test.ctx, { logger: false });
  const site = await test.ctx.sites.create(uniqueName('site'));
  return {
    ...test,
    app,
    site,
    basic: 'Basic ' + Buffer.from(`${site.writeKey}:`).toString('base64'),
    bearer: `Bearer ${site.secretKey}`,
    async close() {
      await app.close();
      await test.close();
    },
  };
}

/** Polls until check passes (resolves) or the time runs out (rejects with the last error). */
export async function eventually<T>(check: () => Promise<T>, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  }
}

/** Buffers deltas the way the processor does: packed deltas of an analytics step without events. */
export async function bufferDeltas(
  realtime: Pick<Realtime, 'analytics'>,
  buffer: BufferKeys,
  names: string[],
  deltas: number[],
): Promise<void> {
  const duplicates = await realtime.analytics.apply({ dedupeTtlSeconds: 60, dedupeKeys: [], ops: [], packed: [{ buffer, names, deltas }] });
  if (duplicates.length > 0) throw new Error('a step without events has no duplicates');
}

/** The seed of every property test: fixed, so a run is the same each time; TALLY_FC_SEED tries another. */
export const PROPERTY_SEED = Number(process.env['TALLY_FC_SEED'] ?? 20_240_611);

/**
 * fast-check settings of a property test: the fixed seed, its runs, and a time limit kept under
 * the test's own timeout. Past the limit fast-check stops and reports (a failure found so far with
 * its shrunk counterexample, seed and path; runs cut short as a failure too) instead of the test
 * runner killing it with nothing to replay.
 */
export function propertyParams(numRuns: number, limitMs: number): fc.Parameters<unknown> {
  return { seed: PROPERTY_SEED, numRuns, plugins: [fc.interruptAfterTimeLimit(limitMs, { failOnInterrupt: true })] };
}
