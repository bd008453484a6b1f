import { randomBytes } from 'node:crypto';
import { setPriority } from 'node:os';
import pg from 'pg';
import { pino } from 'pino';
import { buildApp } from '../src/app.js';
import type { CollectedMessage } from '../src/collect/message.js';
import { loadConfig } from '../src/config.js';
import { openContext } from '../src/context.js';
import { analyticsTargets } from '../src/counters/analytics-counters.js';
import { startFlusher } from '../src/counters/flusher.js';
import { createAggregator } from '../src/process/aggregate.js';
import { createEnricher, createSaltSource } from '../src/process/enrich.js';
import { rollupTargets } from '../src/process/rollup-targets.js';
import { int, ms, table } from './lib/report.js';
import { DATABASE_URL, REDIS_URL, unlinkMatching } from './lib/tally-server.js';

// npm run bench:query — stats latency against the amount of data. Synthetic events spread over
// the last 30 days (page views, clicks, events; 100k visitors, 500 pages, 2000 products) are
// loaded through the processor's own code (enrichment, pre-aggregation, the atomic step,
// rollups flushed to PostgreSQL every 100,000 events) without HTTP, in steps up to BENCH_EVENTS
// (default 1,000,000; the issue asks 10,000,000: set it, and allow the time). After each step, summary, top and
// timeseries over 30 days and 1 day (and a custom range reaching past Redis' minute retention,
// answered partly from PostgreSQL) are timed through the HTTP app (app.inject), BENCH_QUERIES
// (200) times each: p50 / p99. Raw events are not written: no stats query reads them.

const TARGET = Number(process.env['BENCH_EVENTS'] ?? 1_000_000);
const QUERIES = Number(process.env['BENCH_QUERIES'] ?? 200);
const BATCH = 5000;
const FLUSH_EVERY = 100_000;
/** Niceness while loading (BENCH_LOAD_NICE, default 0): on a shared machine a long load can yield
 * to others, while the timed queries always run at normal priority. */
const LOAD_NICE = Number(process.env['BENCH_LOAD_NICE'] ?? 0);
const DAY = 86_400_000;
const AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15',
  'Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1',
];

const say = (line: string) => process.stdout.write(line + '\n');
const pick = <T>(list: readonly T[]) => list[Math.floor(Math.random() * list.length)] as T;
const rand = (n: number) => 1 + Math.floor(Math.random() * n);

/** One event around `around` (ms): a batch covers a few minutes, as a live stream's does. */
function synthetic(i: number, around: number, now: number): CollectedMessage {
  const at = new Date(Math.min(now, around + Math.floor(Math.random() * 5 * 60_000))).toISOString();
  const page = `/page/${rand(500)}`;
  const kind = i % 10;
  const m: CollectedMessage = {
    type: kind < 6 ? 'page' : 'track',
    messageId: `q-${i}`,
    anonymousId: `v${rand(100_000)}`,
    properties: {},
    traits: {},
    context: {
      userAgent: pick(AGENTS),
      page: { path: page, url: `https://shop.example${page}`, referrer: pick(['', 'https://www.google.com/', 'https://t.co/']) },
    },
    timestamp: at,
    receivedAt: new Date(now).toISOString(),
  };
  if (kind >= 6 && kind < 8) {
    m.event = 'Product Clicked';
    m.properties = { product_id: `p${rand(2000)}` };
  } else if (kind >= 8) m.event = `Event ${rand(30)}`;
  return m;
}

async function main(): Promise<void> {
  const name = `bench_q_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const config = loadConfig({ REDIS_URL, DATABASE_URL, TALLY_REDIS_PREFIX: name, TALLY_PG_SCHEMA: name, LOG_LEVEL: 'warn' });
  const ctx = await openContext(config, pino({ level: 'warn' }));
  const app = await buildApp(ctx, { logger: false });
  try {
    const site = await ctx.sites.create('bench');
    const auth = { authorization: `Bearer ${site.secretKey}` };
    const build = createAggregator(ctx.keys);
    const enrich = createEnricher(
      createSaltSource((k, v, t) => ctx.realtime.coordination.getOrSet(k, v, t), ctx.keys.salt),
      ctx.geo,
    );
    const flusher = startFlusher(ctx, {
      intervalMs: 1000,
      providers: [analyticsTargets(ctx), rollupTargets(ctx, ctx.unknownNames)],
      autoStart: false,
    });
    const now = Date.now();
    const day = new Date(now).toISOString().slice(0, 10);
    const queries: [string, string][] = [
      ['summary 30d', '/v1/stats/summary?period=30d'],
      ['summary 1d', '/v1/stats/summary?period=24h'],
      ['top page 30d', '/v1/stats/top?period=30d&dimension=page&limit=10'],
      ['top page 1d', '/v1/stats/top?period=24h&dimension=page&limit=10'],
      ['top page visitors 30d', '/v1/stats/top?period=30d&dimension=page&metric=visitors&limit=10'],
      ['timeseries 30d (days)', '/v1/stats/timeseries?period=30d&metric=pageviews&interval=day'],
      ['timeseries 1d (hours)', '/v1/stats/timeseries?period=24h&metric=visitors&interval=hour'],
      [
        'summary custom, edges in PostgreSQL',
        `/v1/stats/summary?from=${new Date(now - 20 * DAY - 17 * 60_000).toISOString()}&to=${new Date(now - 3 * DAY - 13 * 60_000).toISOString()}`,
      ],
    ];
    say(`site ${site.id}, today ${day}; loading up to ${int(TARGET)} events`);

    const steps = [100_000, 300_000, 1_000_000, 3_000_000, 10_000_000].filter((n) => n < TARGET).concat([TARGET]);
    let loaded = 0;
    const rows: Record<string, string>[] = [];
    for (const step of steps) {
      const started = Date.now();
      // Two lanes, as the processor's shard loops run: one builds a batch while Redis applies the other's.
      let taken = loaded;
      const lane = async () => {
        while (taken < step) {
          const first = taken;
          const n = Math.min(BATCH, step - first);
          taken += n;
          const around = now - Math.floor(Math.random() * 30 * DAY);
          const messages = Array.from({ length: n }, (_, k) => synthetic(first + k, around, now));
          const enriched = await enrich(site.id, messages);
          const duplicates = await ctx.realtime.analytics.apply(
            build(
              site.id,
              messages.map((message, k) => ({ message, enriched: enriched[k]! })),
              Date.now(),
            ),
          );
          if (duplicates.length > 0) throw new Error('synthetic message ids repeat');
          loaded += n;
          // Write behind as the service does, so the buffers stay small at 10 million events.
          if (loaded % FLUSH_EVERY === 0) await flusher.flushAll();
        }
      };
      if (LOAD_NICE !== 0) setPriority(LOAD_NICE);
      await Promise.all([lane(), lane()]);
      if (LOAD_NICE !== 0) setPriority(0);
      const loadSeconds = (Date.now() - started) / 1000;
      await flusher.flushAll();
      say(
        `loaded ${int(loaded)} events (${int((step - (steps[steps.indexOf(step) - 1] ?? 0)) / loadSeconds)} events/s through the aggregation)`,
      );
      for (const [label, url] of queries) {
        // One untimed pass: the first call of a route compiles its serializer.
        await app.inject({ url, headers: auth });
        const times: number[] = [];
        for (let q = 0; q < QUERIES; q++) {
          const t0 = performance.now();
          const res = await app.inject({ url, headers: auth });
          times.push(performance.now() - t0);
          if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
        }
        times.sort((a, b) => a - b);
        const row = {
          events: int(loaded),
          query: label,
          p50: ms(times[Math.floor(QUERIES / 2)]!),
          p99: ms(times[Math.floor(QUERIES * 0.99)]!),
        };
        rows.push(row);
        // Each step's figures as they come: a 10-million run that is stopped early keeps them.
        say(`  ${row.query}: p50 ${row.p50}, p99 ${row.p99}`);
      }
    }
    say('');
    say(table(['events', 'query', 'p50', 'p99'], rows));
  } finally {
    await app.close();
    await ctx.close();
    await unlinkMatching(REDIS_URL, `${name}:*`);
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`);
    await client.end();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:query failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
