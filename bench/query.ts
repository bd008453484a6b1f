import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg, setPriority } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { buildApp } from '../src/app.js';
import type { CollectedMessage } from '../src/collect/message.js';
import { loadConfig } from '../src/config.js';
import { openContext } from '../src/context.js';
import { analyticsTargets } from '../src/counters/analytics-counters.js';
import { startFlusher } from '../src/counters/flusher.js';
import { dayOfFolder, manifestName } from '../src/events/layout.js';
import { readPartition } from '../src/events/partition.js';
import { type Counted, createAggregator } from '../src/process/aggregate.js';
import { createEnricher, createSaltSource } from '../src/process/enrich.js';
import { createEventRows } from '../src/process/event-rows.js';
import { createEventSink } from '../src/process/event-sink.js';
import { rollupTargets } from '../src/process/rollup-targets.js';
import { int, ms, table } from './lib/report.js';
import { storeQuestions } from './lib/store-questions.js';
import { DATABASE_URL, REDIS_URL, REPO_ROOT, unlinkMatching } from './lib/tally-server.js';

// npm run bench:query — stats latency against the amount of data. Synthetic events spread over
// the last 30 days for one site (100k visitors, 500 pages, 2,000 products, 20 referrers, a UTM
// source on a tenth of the visitors, client IPs from 50 networks for countries, two custom
// properties on events, and a pricing → signup → "Signed Up" path) go through the processor's
// own code without HTTP.
//
// The events come as visits. A visit is one visitor's (of 100k, drawn at random) 1 to 9 events
// (5 on average), 30 to 90 seconds apart, so all of them fall in one session (gap 30 minutes):
// the first is a page view (the entry page), each later one a page view (60 %), a "Product
// Clicked" on the page it is on (20 %, product of 2,000, `plan` and `variant` properties) or a
// custom event (20 %, same properties). A page view after /pricing goes to /signup 40 % of the
// time, otherwise to /pricing 5 % of the time and to one of 500 pages else; a custom event on
// /signup is "Signed Up", elsewhere one of 30 others. The visitor fixes the visit's agent,
// client IP (country), referrer, UTM source and user id. The load goes through the 30 days in
// time order, as a live stream does: a batch of 5,000 events holds the visits starting in its
// share of them (a full load sweeps the 30 days once per step); its last visit is cut short, so
// that exactly BENCH_EVENTS events are loaded. (In random time order, a visit older than a
// visitor's 8 kept sessions would be split into sessions of one event: src/storage/sessions.ts
// keeps the latest ones.)
//
// BENCH_LOAD chooses the path the events take:
// - `full` (default): enrichment, pre-aggregation, the atomic step, rollups flushed to
//   PostgreSQL every 100,000 events, and the event-store sink (its rows appended to the Parquet
//   store, which is compacted after the load, as the elected compactor would).
// - `store`: the event store's path alone, as the processor runs it for the sink: enrichment
//   (createEnricher), the rows with their sessions (createEventRows with the Redis sessions, the
//   ones the processor uses in this external mode), the sink's appends in batches of 5,000, then
//   maintainSite as the elected compactor would. No counters, no Redis atomic step, no rollups:
//   the counter routes are not timed. Much faster, for 10M events.
//
// In full mode the load runs in steps up to BENCH_EVENTS (default 1,000,000; the issue asks
// 10,000,000). After each step, the counter routes (summary, top and timeseries over 30 days and
// 1 day, and a custom range answered partly from PostgreSQL) are timed through the HTTP app
// (app.inject), BENCH_QUERIES (200) times each. After the load (both modes), the event-store
// questions are timed BENCH_STORE_QUERIES (100) times each: a summary filtered on a referrer, top
// pages filtered on a country and a UTM source, a goal's conversion rate, a 3-step funnel, a
// summary with previous_period, a breakdown by a custom property, retention by week, a user's
// events; then the store's size on disk is printed. Each query's p50 and p99 come with the Node
// process's CPU per query (DuckDB runs inside it), and the load average is printed when the
// timing starts: wall times on a shared machine move with its load.
//
// The loaded data is kept in .bench/query-cache/<events>-<zone>-<load> (store folder, Redis
// prefix and PostgreSQL schema named in its site.json) and reused by the next run with the same
// BENCH_EVENTS, BENCH_TIMEZONE and BENCH_LOAD; BENCH_FRESH=1 loads again. BENCH_TIMEZONE (default
// UTC) sets the site's time zone: Asia/Kolkata times the zone's worst case, local days and hours
// cut at half hours.

const TARGET = Number(process.env['BENCH_EVENTS'] ?? 1_000_000);
const QUERIES = Number(process.env['BENCH_QUERIES'] ?? 200);
const STORE_QUERIES = Number(process.env['BENCH_STORE_QUERIES'] ?? 100);
const TIMEZONE = process.env['BENCH_TIMEZONE'] ?? 'UTC';
const FRESH = process.env['BENCH_FRESH'] === '1';
const LOAD = process.env['BENCH_LOAD'] ?? 'full';
if (LOAD !== 'full' && LOAD !== 'store') throw new Error(`BENCH_LOAD is full or store, not ${LOAD}`);
/** Names the generator in the cache: data another generator loaded is loaded again. */
const GENERATOR = 'visits-in-time-order';
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
const REFERRERS = [
  '',
  'https://www.google.com/',
  'https://t.co/',
  'https://www.bing.com/',
  'https://duckduckgo.com/',
  'https://news.ycombinator.com/',
  'https://www.reddit.com/',
  'https://www.facebook.com/',
  'https://www.linkedin.com/',
  'https://github.com/',
  'https://stackoverflow.com/',
  'https://medium.com/',
  'https://dev.to/',
  'https://www.youtube.com/',
  'https://www.instagram.com/',
  'https://search.yahoo.com/',
  'https://www.ecosia.org/',
  'https://lobste.rs/',
  'https://www.producthunt.com/',
  'https://mail.google.com/',
];
const UTM_SOURCES = ['newsletter', 'twitter', 'partner'];
/** First octets of 50 public networks: client IPs, so the country lookup places visitors. */
const NETWORKS = [
  3, 5, 8, 12, 13, 18, 23, 24, 31, 37, 41, 45, 46, 49, 58, 62, 64, 66, 77, 78, 80, 81, 82, 85, 87, 88, 89, 90, 91, 93, 94, 95, 101, 103,
  109, 110, 115, 121, 128, 138, 141, 151, 154, 177, 178, 185, 189, 193, 196, 200,
];
const PLANS = ['free', 'starter', 'pro', 'team', 'enterprise'];

const say = (line: string) => process.stdout.write(line + '\n');
const pick = <T>(list: readonly T[]) => list[Math.floor(Math.random() * list.length)] as T;
const rand = (n: number) => 1 + Math.floor(Math.random() * n);

/** A visitor's fixed traits: the same referrer, network and agent on every event of theirs. */
function visitorOf(v: number) {
  return {
    agent: AGENTS[v % AGENTS.length] as string,
    referrer: REFERRERS[v % REFERRERS.length] as string,
    utm: v % 10 === 0 ? UTM_SOURCES[v % UTM_SOURCES.length] : undefined,
    ip: `${NETWORKS[v % NETWORKS.length]}.${(v >> 8) & 255}.${v & 255}.${1 + (v % 200)}`,
    userId: v % 20 === 0 ? `user-${v}` : undefined,
  };
}

/** A visit's messages, numbered from `first`: at most `max` of them (see the header). */
function visit(first: number, max: number, startsAt: number, now: number): CollectedMessage[] {
  const v = rand(100_000);
  const who = visitorOf(v);
  const query = who.utm ? `?utm_source=${who.utm}&utm_medium=email` : '';
  const n = Math.min(max, rand(9));
  let at = startsAt;
  let page = '';
  const out: CollectedMessage[] = [];
  for (let k = 0; k < n; k++) {
    if (k > 0) at += 30_000 + Math.floor(Math.random() * 60_000);
    const roll = k === 0 ? 0 : Math.random();
    const m: CollectedMessage = {
      type: 'page',
      messageId: `q-${first + k}`,
      anonymousId: `v${v}`,
      ...(who.userId ? { userId: who.userId } : {}),
      properties: {},
      traits: {},
      context: { userAgent: who.agent, ip: who.ip },
      timestamp: new Date(Math.min(now, at)).toISOString(),
      receivedAt: new Date(now).toISOString(),
    };
    if (roll < 0.6) {
      const next = Math.random();
      page = page === '/pricing' && next < 0.4 ? '/signup' : next < 0.05 ? '/pricing' : `/page/${rand(500)}`;
    } else {
      m.type = 'track';
      m.properties =
        roll < 0.8
          ? { product_id: `p${rand(2000)}`, plan: pick(PLANS), variant: pick(['a', 'b']) }
          : { plan: pick(PLANS), variant: pick(['a', 'b']) };
      m.event = roll < 0.8 ? 'Product Clicked' : page === '/signup' ? 'Signed Up' : `Event ${rand(30)}`;
    }
    m.context = { ...m.context, page: { path: page, url: `https://shop.example${page}${query}`, referrer: who.referrer } };
    out.push(m);
  }
  return out;
}

/**
 * A batch of exactly `n` messages numbered from `first`, of a load (or step) of events `from` to
 * `to`: visits starting in the batch's share of the 30 days, in time order, as a live stream's.
 */
function batchOf(first: number, n: number, from: number, to: number, now: number): CollectedMessage[] {
  const start = now - 30 * DAY;
  const span = 30 * DAY - 15 * 60_000; // a visit lasts 12 minutes at most
  const at = start + Math.floor(((first - from) / (to - from)) * span);
  const width = Math.max(1, Math.floor((n / (to - from)) * span));
  const out: CollectedMessage[] = [];
  while (out.length < n) out.push(...visit(first + out.length, n - out.length, at + Math.floor(Math.random() * width), now));
  return out;
}

interface Cached {
  name: string;
  siteId: string;
  secretKey: string;
  events: number;
  loadedAt: number;
  /** The generator that made the data (GENERATOR); absent before visits. */
  generator?: string;
}

/**
 * The store's bytes on disk: every file, and the live ones (each partition's visible files, its
 * summaries and its manifest). Files a compaction replaced stay a grace period for readers, then the compactor
 * deletes them: right after the load they are still there.
 */
async function sizeOf(dir: string): Promise<{ bytes: number; files: number; liveBytes: number; liveFiles: number }> {
  let bytes = 0;
  let files = 0;
  let liveBytes = 0;
  let liveFiles = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    bytes += (await stat(join(entry.parentPath, entry.name))).size;
    files += 1;
  }
  for (const site of await readdir(dir)) {
    for (const folder of await readdir(join(dir, site))) {
      const day = dayOfFolder(folder);
      if (day === undefined) continue;
      const p = await readPartition(join(dir, site, folder), day);
      if (!p) continue;
      const manifest = manifestName(p.manifest.gen);
      const summaries = Object.values(p.manifest.summaries ?? {});
      for (const name of [...p.visible, ...summaries, ...(p.names.includes(manifest) ? [manifest] : [])]) {
        liveBytes += (await stat(join(p.dir, name))).size;
        liveFiles += 1;
      }
    }
  }
  return { bytes, files, liveBytes, liveFiles };
}

async function dropData(name: string): Promise<void> {
  await unlinkMatching(REDIS_URL, `${name}:*`);
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`);
  await client.end();
}

/** p50 and p99 of the times, and the Node process's CPU (user + system, every thread) per query. */
function timings(label: string, times: number[], loaded: number, cpu: NodeJS.CpuUsage) {
  times.sort((a, b) => a - b);
  return {
    events: int(loaded),
    query: label,
    p50: ms(times[Math.floor(times.length / 2)] ?? 0),
    p99: ms(times[Math.min(times.length - 1, Math.floor(times.length * 0.99))] ?? 0),
    'CPU/query': ms((cpu.user + cpu.system) / 1000 / Math.max(1, times.length)),
  };
}

const loadAverage = () =>
  loadavg()
    .map((n) => n.toFixed(2))
    .join(', ');

async function main(): Promise<void> {
  const cacheDir = join(REPO_ROOT, '.bench', 'query-cache', `${TARGET}-${TIMEZONE.replace(/\//g, '_')}-${LOAD}`);
  const cacheFile = join(cacheDir, 'site.json');
  let cached: Cached | null = null;
  try {
    cached = JSON.parse(await readFile(cacheFile, 'utf8')) as Cached;
  } catch {
    cached = null;
  }
  if (cached && (FRESH || cached.generator !== GENERATOR)) {
    await dropData(cached.name);
    await rm(cacheDir, { recursive: true, force: true });
    cached = null;
  }
  const loadingFile = join(cacheDir, 'loading.json');
  const eventsDir = join(cacheDir, 'events');
  if (!cached) {
    // A load that did not finish left its data behind: drop it, it would count in the store's size.
    const unfinished = await readFile(loadingFile, 'utf8').then(
      (text) => JSON.parse(text) as { name: string },
      () => null,
    );
    if (unfinished) await dropData(unfinished.name);
    await rm(cacheDir, { recursive: true, force: true });
  }
  await mkdir(cacheDir, { recursive: true });
  const name = cached?.name ?? `bench_q_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  if (!cached) await writeFile(loadingFile, JSON.stringify({ name }));
  const config = loadConfig({
    REDIS_URL,
    DATABASE_URL,
    TALLY_REDIS_PREFIX: name,
    TALLY_PG_SCHEMA: name,
    TALLY_EVENTS_DIR: eventsDir,
    LOG_LEVEL: 'warn',
  });
  const ctx = await openContext(config, pino({ level: 'warn' }));
  const app = await buildApp(ctx, { logger: false });
  try {
    const site = cached ? { id: cached.siteId, secretKey: cached.secretKey } : await ctx.sites.create('bench', [], { timezone: TIMEZONE });
    const auth = { authorization: `Bearer ${site.secretKey}` };
    const now = Date.now();
    const counterQueries: [string, string][] = [
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
    const timeCounters = async (loaded: number, rows: Record<string, string>[]) => {
      say(`counter routes: ${QUERIES} times each; load average ${loadAverage()}`);
      for (const [label, url] of counterQueries) {
        // One untimed pass: the first call of a route compiles its serializer.
        await app.inject({ url, headers: auth });
        const times: number[] = [];
        const cpu = process.cpuUsage();
        for (let q = 0; q < QUERIES; q++) {
          const t0 = performance.now();
          const res = await app.inject({ url, headers: auth });
          times.push(performance.now() - t0);
          if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
        }
        const row = timings(label, times, loaded, process.cpuUsage(cpu));
        rows.push(row);
        // Each step's figures as they come: a 10-million run that is stopped early keeps them.
        say(`  ${row.query}: p50 ${row.p50}, p99 ${row.p99}, CPU ${row['CPU/query']} per query`);
      }
    };
    const countersNotTimed = () => say('counter routes not timed: BENCH_LOAD=store loaded the event store only (no counters, no rollups)');

    const rows: Record<string, string>[] = [];
    let loaded = cached?.events ?? 0;
    if (cached) {
      say(
        `site ${site.id}: ${int(loaded)} events loaded (${LOAD}) ${((now - cached.loadedAt) / 3_600_000).toFixed(1)} h ago (${cacheDir}; BENCH_FRESH=1 loads again)`,
      );
      // As the elected compactor does every few seconds: here it deletes the files the load's
      // compaction replaced, once their grace period has passed.
      await ctx.events.maintainSite(site.id);
      if (LOAD === 'full') await timeCounters(loaded, rows);
      else countersNotTimed();
    } else {
      say(`site ${site.id} (${TIMEZONE}); loading ${int(TARGET)} events (BENCH_LOAD=${LOAD}); load average ${loadAverage()}`);
      // The processor's own pieces (src/process/processor.ts, src/worker.ts): its enrichment and,
      // for the event store, its sink over the rows with sessions. This context is in external
      // mode (REDIS_URL), so the sessions are Redis's, as the processor's are there.
      const enrich = createEnricher(
        createSaltSource((k, v, t) => ctx.realtime.coordination.getOrSet(k, v, t), ctx.keys.salt),
        ctx.geo,
      );
      const sink = createEventSink(ctx.events, createEventRows({ sessions: ctx.realtime.sessions }));
      const toSink = (counted: Counted[]) =>
        sink(new Map([[site.id, counted]]), { redelivered: new Set(), claimableAt: Number.POSITIVE_INFINITY });
      const loadStarted = Date.now();
      const loadCpu = process.cpuUsage();
      if (LOAD === 'store') {
        // Enrichment, rows with sessions, appends: the sink's path without the counters.
        let taken = 0;
        let reported = 0;
        const REPORT_EVERY = 1_000_000;
        const lane = async () => {
          while (taken < TARGET) {
            const first = taken;
            const n = Math.min(BATCH, TARGET - first);
            taken += n;
            const messages = batchOf(first, n, 0, TARGET, now);
            const enriched = await enrich(site.id, messages);
            await toSink(messages.map((message, k) => ({ message, enriched: enriched[k]! })));
            loaded += n;
            if (loaded - reported >= REPORT_EVERY || loaded === TARGET) {
              reported = loaded;
              const seconds = (Date.now() - loadStarted) / 1000;
              const cpu = process.cpuUsage(loadCpu);
              say(
                `  ${int(loaded)} events in ${seconds.toFixed(0)} s: ${int(loaded / seconds)} events/s, Node CPU ${((cpu.user + cpu.system) / loaded).toFixed(0)} µs/event; load average ${loadAverage()}`,
              );
            }
          }
        };
        if (LOAD_NICE !== 0) setPriority(LOAD_NICE);
        // Two lanes, as the processor's shard loops run: one builds a batch while the other waits on Redis or the disk.
        await Promise.all([lane(), lane()]);
        if (LOAD_NICE !== 0) setPriority(0);
      } else {
        const build = createAggregator(ctx.keys);
        const flusher = startFlusher(ctx, {
          intervalMs: 1000,
          providers: [analyticsTargets(ctx), rollupTargets(ctx, ctx.unknownNames)],
          autoStart: false,
        });
        const steps = [100_000, 300_000, 1_000_000, 3_000_000, 10_000_000].filter((n) => n < TARGET).concat([TARGET]);
        for (const step of steps) {
          const started = Date.now();
          const stepFrom = loaded;
          // Two lanes, as the processor's shard loops run: one builds a batch while Redis applies the other's.
          let taken = loaded;
          const lane = async () => {
            while (taken < step) {
              const first = taken;
              const n = Math.min(BATCH, step - first);
              taken += n;
              const messages = batchOf(first, n, stepFrom, step, now);
              const enriched = await enrich(site.id, messages);
              const counted = messages.map((message, k) => ({ message, enriched: enriched[k]! }));
              const duplicates = await ctx.realtime.analytics.apply(build(site.id, counted, Date.now()));
              if (duplicates.length > 0) throw new Error('synthetic message ids repeat');
              await toSink(counted);
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
            `loaded ${int(loaded)} events (${int((step - (steps[steps.indexOf(step) - 1] ?? 0)) / loadSeconds)} events/s through the aggregation and the event store)`,
          );
          await timeCounters(loaded, rows);
        }
      }
      const loadSeconds = (Date.now() - loadStarted) / 1000;
      const loadCpuUsage = process.cpuUsage(loadCpu);
      const compactStarted = Date.now();
      const compactCpu = process.cpuUsage();
      const partitions = await ctx.events.maintainSite(site.id);
      const compactCpuUsage = process.cpuUsage(compactCpu);
      say(
        `loaded ${int(loaded)} events (${LOAD}) in ${(loadSeconds / 60).toFixed(1)} min: ${int(loaded / loadSeconds)} events/s, Node CPU ${((loadCpuUsage.user + loadCpuUsage.system) / loaded).toFixed(0)} µs/event${LOAD === 'full' ? ' (counter timings included)' : ''}`,
      );
      say(
        `compacted ${partitions} partitions in ${((Date.now() - compactStarted) / 1000).toFixed(1)} s (Node CPU ${((compactCpuUsage.user + compactCpuUsage.system) / 1e6).toFixed(1)} s)`,
      );
      await writeFile(
        cacheFile,
        JSON.stringify({
          name,
          siteId: site.id,
          secretKey: site.secretKey,
          events: loaded,
          loadedAt: now,
          generator: GENERATOR,
        } satisfies Cached),
      );
      await rm(loadingFile);
      if (LOAD === 'store') countersNotTimed();
    }

    const goal = await app.inject({
      method: 'POST',
      url: '/v1/goals',
      headers: auth,
      payload: { name: `Signed up ${now}`, event: 'Signed Up' },
    });
    if (goal.statusCode !== 201) throw new Error(`goal: ${goal.statusCode} ${goal.body}`);
    const goalName = goal.json().name as string;
    const storeQueries = storeQuestions(goalName).map((q): [string, string, unknown] => [q.label, q.route, q.body]);
    const timeStore = async (label: string, send: () => Promise<{ statusCode: number; body: string }>) => {
      const first = await send();
      if (first.statusCode !== 200) throw new Error(`${label}: ${first.statusCode} ${first.body}`);
      const times: number[] = [];
      const cpu = process.cpuUsage();
      for (let q = 0; q < STORE_QUERIES; q++) {
        const t0 = performance.now();
        const res = await send();
        times.push(performance.now() - t0);
        if (res.statusCode !== 200) throw new Error(`${label}: ${res.statusCode} ${res.body}`);
      }
      const row = timings(label, times, loaded, process.cpuUsage(cpu));
      rows.push(row);
      say(`  ${row.query}: p50 ${row.p50}, p99 ${row.p99}, CPU ${row['CPU/query']} per query`);
    };
    const storeLoad = loadAverage();
    say(`event store: ${STORE_QUERIES} times each; load average ${storeLoad} (${cpus().length} cores)`);
    for (const [label, url, payload] of storeQueries) {
      await timeStore(label, () => app.inject({ method: 'POST', url, headers: auth, payload: payload as object }));
    }
    await timeStore("a user's events, first page of 100", () => app.inject({ url: '/v1/users/user-20/events?limit=100', headers: auth }));
    const size = await sizeOf(eventsDir);
    say('');
    say(table(['events', 'query', 'p50', 'p99', 'CPU/query'], rows));
    say('');
    say(
      `load average ${storeLoad} when the event-store timing started, ${loadAverage()} at its end; CPU/query: the Node process's (DuckDB's threads included)`,
    );
    say(
      `event store on disk: ${(size.liveBytes / 1e6).toFixed(1)} MB live in ${int(size.liveFiles)} files (${(size.liveBytes / Math.max(1, loaded)).toFixed(1)} bytes/event); ${(size.bytes / 1e6).toFixed(1)} MB in ${int(size.files)} files with those compaction replaced, kept a grace period for readers`,
    );
  } finally {
    await app.close();
    await ctx.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:query failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
