import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { openEventEngine } from '../src/events/engine.js';
import { DERIVED_COLUMNS } from '../src/events/event-row.js';
import { createEventStore } from '../src/events/event-store.js';
import { DAY_MS, dayOf, partitionPath, segmentName } from '../src/events/layout.js';
import { NO_FILTER } from '../src/query/event-source.js';
import { queryFunnel } from '../src/query/funnel.js';
import { parseQuery } from '../src/query/parse-query.js';
import { createQueryEngine } from '../src/query/run-query.js';
import { int, ms, table } from './lib/report.js';
import { FUNNEL_STEPS, storeQuestions } from './lib/store-questions.js';
import { REPO_ROOT } from './lib/tally-server.js';

// npm run bench:query-engine — the query engine alone over a large store: the issue's event-store
// questions timed over BENCH_EVENTS (default 10,000,000) events of one site across 30 days, with
// the Node process's CPU per query (DuckDB runs in it) beside p50 and the slowest, since wall
// times on a shared 2-core machine move with its load.
//
// The store is not loaded through the processor (bench:query does that, at a few thousand events
// a second): DuckDB generates the rows in SQL — 2,000,000 visits of 1–9 events a minute apart
// (5 on average), 100,000 visitors, 500 pages, 2,000 products, 20 referrers, a UTM source on a
// tenth of the visitors, 50 countries, two custom properties on events, a pricing → signup →
// "Signed Up" path — writes them as two segments per day, and the store's own compaction
// rewrites every day as it would a finished one. So the files have the layout, order, row groups
// and derived columns of a real store. The store is kept in .bench/query-engine/<events> and
// reused (BENCH_FRESH=1 generates it again).

const EVENTS = Number(process.env['BENCH_EVENTS'] ?? 10_000_000);
const QUERIES = Number(process.env['BENCH_QUERIES'] ?? 10);
const FRESH = process.env['BENCH_FRESH'] === '1';
const SITE = 'bench';
const DAYS = 30;
const say = (line: string) => process.stdout.write(line + '\n');

const REFERRERS = [
  '',
  'www.google.com',
  't.co',
  'www.bing.com',
  'duckduckgo.com',
  'news.ycombinator.com',
  'www.reddit.com',
  'www.facebook.com',
  'www.linkedin.com',
  'github.com',
  'stackoverflow.com',
  'medium.com',
  'dev.to',
  'www.youtube.com',
  'www.instagram.com',
  'search.yahoo.com',
  'www.ecosia.org',
  'lobste.rs',
  'www.producthunt.com',
  'mail.google.com',
];
const COUNTRIES =
  'US DE FR GB IN BR JP CN CA AU NL SE IT ES PL RU KR MX AR ZA NG EG TR ID VN TH PH MY SG NZ IE BE CH AT DK NO FI PT GR CZ HU RO UA IL SA AE PK BD CL CO'.split(
    ' ',
  );
const list = (values: readonly string[]) => `[${values.map((v) => `'${v}'`).join(', ')}]`;

/** The events table, in the store's column order; `end` is the first ms after the 30 days. */
function eventsSql(events: number, end: number): string[] {
  // 5 events a visit on average: a few more visits than that, and the events cut at the count.
  const visits = Math.ceil(events / 4.5);
  const start = end - DAYS * DAY_MS;
  const derived = Object.entries(DERIVED_COLUMNS)
    .map(([name, sql]) => `${sql} AS ${name}`)
    .join(', ');
  return [
    `CREATE OR REPLACE TABLE visits AS SELECT i AS sid, (hash(i * 7 + 1) % 100000)::BIGINT AS v,
       ${start} + (hash(i * 7 + 2) % ${DAYS * DAY_MS - 3_600_000})::BIGINT AS t0, 1 + (hash(i * 7 + 3) % 9)::INTEGER AS n
     FROM range(${visits}) r(i)`,
    `CREATE OR REPLACE TABLE raw AS SELECT * FROM (
       SELECT sid, v, k, t0 + (k - 1) * 60000 + (hash(sid, k) % 50000)::BIGINT AS t, (hash(sid, k, 1) % 100)::INTEGER AS roll
       FROM visits, range(1, 10) r(k) WHERE k <= n) LIMIT ${events}`,
    `CREATE OR REPLACE TABLE events AS SELECT site_id, message_id, ts, type, kind, name, visitor, session, user_id, hostname, page,
       entry_page, source, referrer, referrer_host, utm_source, utm_medium, utm_campaign, utm_term, utm_content, browser, os, device,
       country, region, product, revenue, engaged_ms, props, bot, ${derived}
     FROM (SELECT '${SITE}' AS site_id, 'm-' || sid || '-' || k AS message_id, make_timestamp_ms(t)::TIMESTAMP_MS AS ts,
       CASE WHEN roll < 60 THEN 'page' ELSE 'track' END AS type,
       CASE WHEN roll < 60 THEN 'pageview' WHEN roll < 97 THEN 'event' ELSE 'engagement' END AS kind,
       CASE WHEN roll < 60 THEN NULL WHEN roll < 94 THEN 'Product Clicked' WHEN roll < 97 THEN 'Signed Up' END AS name,
       'v' || v AS visitor, 's-' || sid AS session, CASE WHEN v % 20 = 0 THEN 'user-' || v END AS user_id, 'shop.example' AS hostname,
       CASE WHEN roll < 3 THEN '/pricing' WHEN roll < 5 THEN '/signup' ELSE '/page/' || (1 + hash(sid, k, 2) % 500) END AS page,
       '/page/' || (1 + hash(sid, 2) % 500) AS entry_page,
       CASE WHEN v % 10 = 0 THEN ['newsletter', 'twitter', 'partner'][1 + v % 3]
            ELSE coalesce(nullif(${list(REFERRERS)}[1 + v % 20], ''), 'Direct') END AS source,
       nullif('https://' || ${list(REFERRERS)}[1 + v % 20] || '/', 'https:///') AS referrer,
       nullif(${list(REFERRERS)}[1 + v % 20], '') AS referrer_host,
       CASE WHEN v % 10 = 0 THEN ['newsletter', 'twitter', 'partner'][1 + v % 3] END AS utm_source,
       CASE WHEN v % 10 = 0 THEN 'email' END AS utm_medium,
       NULL::VARCHAR AS utm_campaign, NULL::VARCHAR AS utm_term, NULL::VARCHAR AS utm_content,
       ['Chrome', 'Safari', 'Firefox', 'Mobile Safari'][1 + v % 4] AS browser, ['Windows', 'macOS', 'Linux', 'iOS'][1 + v % 4] AS os,
       CASE WHEN v % 4 = 3 THEN 'mobile' ELSE 'desktop' END AS device, ${list(COUNTRIES)}[1 + v % 50] AS country,
       NULL::VARCHAR AS region,
       CASE WHEN roll >= 60 AND roll < 94 THEN 'prod-' || (1 + hash(sid, k, 3) % 2000) END AS product,
       NULL::DOUBLE AS revenue,
       CASE WHEN roll >= 97 THEN (1000 + hash(sid, k, 4) % 60000)::BIGINT ELSE 0 END AS engaged_ms,
       CASE WHEN roll >= 60 AND roll < 97 THEN json_object('plan', ['free', 'starter', 'pro', 'team', 'enterprise'][1 + v % 5],
         'color', ['red', 'green', 'blue'][(1 + hash(sid, k, 5) % 3)::BIGINT])::VARCHAR END AS props,
       false AS bot
     FROM raw)`,
  ];
}

async function sizeOf(dir: string): Promise<number> {
  let bytes = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) bytes += (await stat(join(entry.parentPath, entry.name))).size;
  }
  return bytes;
}

async function main(): Promise<void> {
  const dir = join(REPO_ROOT, '.bench', 'query-engine', String(EVENTS));
  const ready = join(dir, 'ready.json');
  const end = Math.floor(Date.now() / DAY_MS) * DAY_MS;
  const engine = await openEventEngine({ threads: 2 });
  const store = createEventStore({ root: join(dir, 'store'), engine, graceMs: 0, dirtyWindowMs: 30_000 });
  try {
    let builtFor = end;
    const existing = await readFile(ready, 'utf8').then(
      (text) => (JSON.parse(text) as { end: number }).end,
      () => undefined,
    );
    if (existing === undefined || FRESH) {
      await rm(dir, { recursive: true, force: true });
      const started = performance.now();
      say(`generating ${int(EVENTS)} events over ${DAYS} days…`);
      await engine.withConnection(async (c) => {
        for (const sql of eventsSql(EVENTS, end)) await c.run(sql);
        for (let d = 0; d < DAYS; d++) {
          const from = end - (DAYS - d) * DAY_MS;
          const folder = partitionPath(join(dir, 'store'), SITE, dayOf(from));
          await mkdir(folder, { recursive: true });
          // Two segments a day: the compaction below rewrites the day into one file.
          for (const [half, name] of [segmentName(from + 1, false), segmentName(from + 2, false)].entries()) {
            await c.run(`COPY (SELECT * FROM events WHERE ts >= make_timestamp_ms(${from}) AND ts < make_timestamp_ms(${from + DAY_MS})
                AND hash(message_id) % 2 = ${half}) TO '${join(folder, name)}' (FORMAT parquet, COMPRESSION zstd)`);
          }
        }
        for (const table of ['events', 'raw', 'visits']) await c.run(`DROP TABLE ${table}`);
      });
      say(`  written in ${((performance.now() - started) / 1000).toFixed(0)} s; compacting…`);
      const compacted = await store.maintainSite(SITE);
      say(`  ${compacted} days rewritten in ${((performance.now() - started) / 1000).toFixed(0)} s`);
      await writeFile(ready, JSON.stringify({ end }));
    } else builtFor = existing;

    const nowMs = builtFor;
    const goal = { id: 'goal', name: 'Signed up', event: 'Signed Up' };
    const context = { siteId: SITE, zone: 'UTC', nowMs, goals: [goal] };
    const run = createQueryEngine(store);
    // Retention is bench:query's (its cost is reading every event before the range too).
    const questions = storeQuestions(goal.name)
      .filter((q) => q.route !== '/v1/stats/retention')
      .map((q): [string, () => Promise<unknown>] => [
        q.label,
        q.route === '/v1/stats/funnel'
          ? () =>
              queryFunnel(store, {
                siteId: SITE,
                fromMs: nowMs - DAYS * DAY_MS,
                toMs: nowMs,
                steps: FUNNEL_STEPS,
                windowMs: null,
                where: NO_FILTER,
              })
          : () => run(parseQuery(q.body, context)),
      ]);
    const [one, five] = loadavg();
    say(`timing ${QUERIES} of each (load average ${one?.toFixed(1)} / ${five?.toFixed(1)})`);
    const cpu = () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    };
    const rows = [];
    for (const [label, ask] of questions) {
      await ask();
      const times: number[] = [];
      const cpu0 = cpu();
      for (let i = 0; i < QUERIES; i++) {
        const t0 = performance.now();
        await ask();
        times.push(performance.now() - t0);
      }
      const cpuPer = (cpu() - cpu0) / QUERIES;
      times.sort((a, b) => a - b);
      rows.push({
        query: label,
        p50: ms(times[Math.floor(times.length / 2)] ?? 0),
        slowest: ms(times[times.length - 1] ?? 0),
        'CPU/query': ms(cpuPer),
      });
    }
    say('');
    say(table(['query', 'p50', 'slowest', 'CPU/query'], rows));
    const bytes = await sizeOf(join(dir, 'store'));
    say(`\nstore on disk: ${(bytes / 1e6).toFixed(1)} MB (${(bytes / EVENTS).toFixed(1)} bytes/event)`);
  } finally {
    engine.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:query-engine failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
