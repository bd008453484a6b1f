import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { CollectedMessage } from '../src/collect/message.js';
import { commandsBetween, redisUsage } from './lib/redis-usage.js';
import { int, table } from './lib/report.js';
import { REDIS_URL, unlinkMatching } from './lib/tally-server.js';

// The processor's modules as production runs them, from dist/ (the npm script builds first):
// tsx's transform of src/ wraps every closure in a naming helper, which made building a step
// look ~1.7× slower than it is.
const dist = async <T>(path: string): Promise<T> => (await import(new URL(`../dist/${path}`, import.meta.url).href)) as T;
const { createAggregator } = await dist<typeof import('../src/process/aggregate.js')>('process/aggregate.js');
const { createEnricher } = await dist<typeof import('../src/process/enrich.js')>('process/enrich.js');
const { openGeoDatabase } = await dist<typeof import('../src/process/geo.js')>('process/geo.js');
const { createKeys } = await dist<typeof import('../src/storage/keys.js')>('storage/keys.js');
const { connectRedis, createRedisRealtime } = await dist<typeof import('../src/storage/redis/index.js')>('storage/redis/index.js');

// npm run bench:step — the processor's atomic analytics step alone, against Redis: no HTTP, no
// stream, no PostgreSQL. Steps of 1,000 events with bench:pipeline's mix (60 % page views, 20 %
// product clicks, 15 % custom events, 5 % Page Engaged; 100,000 visitors of whom 30,000 signed
// in, 200 pages, 1,000 products) are enriched, pre-aggregated (createAggregator) and applied (apply-aggregate.lua)
// one after the other. Printed per event: Redis CPU (INFO cpu), the commands the script ran
// (INFO commandstats), Node's time to build the step, and the bytes of buffered deltas waiting
// in Redis for the flush (MEMORY USAGE; nothing is flushed here). BENCH_WARM_STEPS (20) steps
// first fill the rankings and HyperLogLogs like a running site; BENCH_STEPS (60) are measured.
// Redis' counters are server-wide: other clients of the same Redis count too.

const WARM_STEPS = Number(process.env['BENCH_WARM_STEPS'] ?? 20);
const STEPS = Number(process.env['BENCH_STEPS'] ?? 60);
const STEP_EVENTS = 1000;
const SITE = 'bench';
const AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15',
  'Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1',
];
const REFERRERS = ['', 'https://www.google.com/', 'https://news.ycombinator.com/', 'https://twitter.com/'];

const pick = <T>(list: readonly T[]): T => list[Math.floor(Math.random() * list.length)] as T;
const upTo = (n: number) => 1 + Math.floor(Math.random() * n);

let sequence = 0;
function step(): CollectedMessage[] {
  const now = new Date().toISOString();
  const out: CollectedMessage[] = [];
  for (let i = 0; i < STEP_EVENTS; i++) {
    const path = `/page/${upTo(200)}`;
    const visitor = upTo(100_000);
    const base = {
      messageId: `m${sequence++}`,
      anonymousId: `v${visitor}`,
      // The first 30,000 visitors are signed in (as bench:pipeline's batches).
      ...(visitor <= 30_000 ? { userId: `u${visitor}` } : {}),
      traits: {},
      timestamp: now,
      receivedAt: now,
      context: { userAgent: pick(AGENTS), page: { path, url: `https://shop.example${path}`, referrer: pick(REFERRERS) } },
    };
    const k = i % 100;
    if (k < 60) out.push({ ...base, type: 'page', properties: {} });
    else if (k < 80) out.push({ ...base, type: 'track', event: 'Product Clicked', properties: { product_id: `p${upTo(1000)}` } });
    else if (k < 95) out.push({ ...base, type: 'track', event: `Event ${upTo(20)}`, properties: {} });
    else out.push({ ...base, type: 'track', event: 'Page Engaged', properties: { engaged_ms: upTo(60_000) } });
  }
  return out;
}

async function main(): Promise<void> {
  const prefix = `bench_step_${randomBytes(4).toString('hex')}`;
  const client = connectRedis({ url: REDIS_URL });
  const redis = client as Redis;
  const keys = createKeys(prefix);
  const realtime = createRedisRealtime(client, keys);
  const build = createAggregator(keys);
  const enrich = createEnricher(async () => 'bench-salt', openGeoDatabase());
  try {
    let buildMs = 0;
    let ops = 0;
    const apply = async (measured: boolean) => {
      const messages = step();
      const enriched = await enrich(SITE, messages);
      const started = performance.now();
      const batch = build(
        SITE,
        messages.map((message, i) => ({ message, enriched: enriched[i] as (typeof enriched)[number] })),
        Date.now(),
      );
      if (measured) {
        buildMs += performance.now() - started;
        ops += batch.ops.length;
      }
      if ((await realtime.analytics.apply(batch)).length > 0) throw new Error('unexpected duplicates');
    };
    for (let i = 0; i < WARM_STEPS; i++) await apply(false);

    const before = await redisUsage(redis);
    const wallStart = performance.now();
    for (let i = 0; i < STEPS; i++) await apply(true);
    const wallMs = performance.now() - wallStart;
    const after = await redisUsage(redis);
    const cpu = after.cpuSeconds - before.cpuSeconds;
    const between = commandsBetween(before, after);

    const events = STEPS * STEP_EVENTS;
    const perEvent = (n: number) => (n / events).toFixed(2);
    const commands = between
      .filter((c) => c.calls >= events / 100 && !['info', 'evalsha'].includes(c.name))
      .sort((a, b) => b.usec - a.usec);
    const evalsha = between.find((c) => c.name === 'evalsha')?.usec ?? 0;

    const buffered = async (key: string) => Number((await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')) ?? 0);
    const buffers = [keys.analyticsBuffer(SITE), keys.rollupBuffer(SITE), keys.uniquesBuffer(SITE)];
    let bufferedBytes = 0;
    for (const b of buffers) bufferedBytes += (await buffered(b.pending)) + (await buffered(b.pendingPacked));

    console.log(
      `bench:step — ${int(events)} events in steps of ${int(STEP_EVENTS)} after ${int(WARM_STEPS * STEP_EVENTS)} warm-up events; Redis ${REDIS_URL}`,
    );
    console.log(
      table(
        ['figure', 'per event'],
        [
          { figure: 'Redis CPU (INFO cpu, whole server)', 'per event': `${((cpu * 1e6) / events).toFixed(1)} µs` },
          { figure: 'time inside the script (EVALSHA)', 'per event': `${perEvent(evalsha)} µs` },
          { figure: 'ops in the step (after summing)', 'per event': perEvent(ops) },
          { figure: 'Node: building the step', 'per event': `${((buildMs * 1000) / events).toFixed(1)} µs` },
          { figure: 'wall time, enrich + build + apply, one step at a time', 'per event': `${((wallMs * 1000) / events).toFixed(1)} µs` },
          {
            figure: 'buffered deltas waiting in Redis (all steps, nothing flushed)',
            'per event': `${(bufferedBytes / ((WARM_STEPS + STEPS) * STEP_EVENTS)).toFixed(0)} bytes`,
          },
        ],
      ),
    );
    console.log('\ncommands the step ran (INFO commandstats):');
    console.log(
      table(
        ['command', 'calls per event', 'µs per event'],
        commands.map((c) => ({ command: c.name, 'calls per event': perEvent(c.calls), 'µs per event': perEvent(c.usec) })),
      ),
    );
  } finally {
    await client.quit();
    await unlinkMatching(REDIS_URL, `${prefix}:*`);
  }
}

main().catch((err: unknown) => {
  console.error('bench:step failed:', err);
  process.exitCode = 1;
});
