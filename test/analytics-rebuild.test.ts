import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { rebuildSite } from '../src/process/rebuild.js';
import { openEmbeddedRealtime } from '../src/storage/embedded/index.js';
import { startWorker } from '../src/worker.js';
import { dropRedisKeys, eventually, openTestApp, type TestApp } from './helpers.js';
import { TALLY_CLI } from './server-process.js';

// `tally rebuild`: after the real-time layer lost its data, restoring it from PostgreSQL gives
// every stats answer it gave before: per user and product, every period, dimension, metric and
// interval, for recent buckets and for old ones (minutes past 48 h, hours past 90 days).
// Not compared: /v1/stats/realtime (the five-minute live set is not restored).

const ROOT = new URL('..', import.meta.url).pathname;
const CHROME = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0';
const MINUTE = 60_000;
const DAY = 86_400_000;
const now = Date.now();

function events(): unknown[] {
  const out: unknown[] = [];
  const offsets = [2 * MINUTE, 50 * MINUTE, 5 * 3600_000, 3 * DAY + 7 * MINUTE, 3 * DAY + 9 * MINUTE, 12 * DAY, 100 * DAY + 30 * MINUTE];
  offsets.forEach((offset, i) => {
    for (let v = 0; v < 4; v++) {
      const visitor = `v${(i + v) % 5}`;
      const at = new Date(now - offset - v * 1000).toISOString();
      const context = {
        userAgent: v % 2 ? CHROME : FIREFOX,
        page: { path: `/p${v}`, url: `https://s.example/p${v}?utm_source=u${i % 2}`, referrer: `https://r${v % 3}.example/` },
      };
      // Half the page views signed in: users and anonymous visitors both have something to restore.
      out.push({
        type: 'page',
        ...(v % 2 ? { userId: visitor } : { anonymousId: visitor }),
        timestamp: at,
        messageId: `pv-${i}-${v}`,
        context,
      });
      out.push({
        type: 'track',
        userId: visitor,
        event: 'Product Clicked',
        properties: { product_id: `sku${v % 3}` },
        timestamp: at,
        messageId: `ck-${i}-${v}`,
        context,
      });
      out.push({
        type: 'track',
        userId: visitor,
        event: 'Page Engaged',
        properties: { engaged_ms: 1000 * (v + 1) },
        timestamp: at,
        messageId: `en-${i}-${v}`,
        context,
      });
    }
  });
  return out;
}

const iso = (ms: number) => new Date(ms).toISOString();
const DIMENSIONS = ['page', 'product', 'referrer', 'event', 'user', 'browser', 'os', 'device', 'utm_source'];
const METRICS = ['pageviews', 'clicks', 'events', 'visitors'];
const PERIODS = [
  'period=today',
  'period=24h',
  'period=7d',
  'period=30d',
  `period=custom&from=${iso(now - 101 * DAY)}&to=${iso(now - 99 * DAY)}`,
  `period=custom&from=${iso(now - 3 * DAY - 30 * MINUTE)}&to=${iso(now - 3 * DAY)}`,
];

function urls(): string[] {
  const list = ['/v1/stats/users/v1', '/v1/stats/users/v3', '/v1/stats/products/sku0', '/v1/stats/products/sku2'];
  for (const p of PERIODS) {
    list.push(`/v1/stats/summary?${p}`);
    for (const d of DIMENSIONS) for (const m of METRICS) list.push(`/v1/stats/top?${p}&dimension=${d}&metric=${m}&limit=20`);
    for (const m of METRICS) list.push(`/v1/stats/timeseries?${p}&metric=${m}`);
  }
  list.push(
    `/v1/stats/timeseries?period=custom&from=${iso(now - 3 * DAY - 20 * MINUTE)}&to=${iso(now - 3 * DAY)}&metric=pageviews&interval=minute`,
  );
  list.push(`/v1/stats/timeseries?period=custom&from=${iso(now - 101 * DAY)}&to=${iso(now - 99 * DAY)}&metric=events&interval=hour`);
  return list;
}

async function snapshot(t: Pick<TestApp, 'app' | 'bearer'>): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const url of urls()) {
    const res = await t.app.inject({ url, headers: { authorization: t.bearer } });
    expect(res.statusCode, `${url}: ${res.body}`).toBe(200);
    out[url] = res.json();
  }
  return out;
}

async function fill(t: TestApp): Promise<Record<string, unknown>> {
  const worker = startWorker(t.ctx);
  const batch = events();
  const res = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: t.basic }, payload: { batch } });
  expect(res.statusCode).toBe(200);
  await eventually(async () => {
    const s = await t.app.inject({
      url: `/v1/stats/summary?period=custom&from=${iso(now - 200 * DAY)}&to=${iso(now + DAY)}`,
      headers: { authorization: t.bearer },
    });
    expect(s.json().pageviews).toBe(28);
  });
  await worker.stop();
  const before = await snapshot(t);
  // Buckets only PostgreSQL serves (minutes past 48 h, hours past 90 days) are in the answers.
  const pageviews = (period: string | undefined) => (before[`/v1/stats/summary?${period}`] as { pageviews: number }).pageviews;
  expect(pageviews(PERIODS[4])).toBe(4);
  expect(pageviews(PERIODS[5])).toBe(8);
  return before;
}

async function runCli(env: Record<string, string>): Promise<string> {
  const proc = spawn(process.execPath, [TALLY_CLI, 'rebuild'], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
  });
  let out = '';
  let err = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
  expect(code, err).toBe(0);
  return out;
}

describe('tally rebuild', () => {
  it('restores Redis from PostgreSQL with every stats answer as before (external)', async () => {
    const t = await openTestApp('external');
    try {
      const before = await fill(t);
      const config = t.ctx.config;
      await dropRedisKeys(config);
      const lost = await snapshot(t);
      expect(lost).not.toEqual(before);
      const printed = await runCli({
        REDIS_URL: config.redisUrl as string,
        DATABASE_URL: config.databaseUrl as string,
        TALLY_PG_SCHEMA: config.pgSchema,
        TALLY_REDIS_PREFIX: config.redisPrefix,
      });
      expect(JSON.parse(printed)[t.site.name]).toMatchObject({ counters: expect.any(Number), buckets: expect.any(Number) });
      expect(await snapshot(t)).toEqual(before);
    } finally {
      await t.close();
    }
  }, 120_000);

  it('restores an empty in-process layer the same way (embedded start)', async () => {
    const t = await openTestApp('embedded');
    try {
      const before = await fill(t);
      const ctx = { ...t.ctx, realtime: await openEmbeddedRealtime(t.ctx.keys, t.ctx.db) };
      const app = await buildApp(ctx, { logger: false });
      try {
        expect(await snapshot({ app, bearer: t.bearer })).not.toEqual(before);
        await rebuildSite(ctx, t.site.id);
        expect(await snapshot({ app, bearer: t.bearer })).toEqual(before);
      } finally {
        await app.close();
        await ctx.realtime.close();
      }
    } finally {
      await t.close();
    }
  }, 120_000);
});
