import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFlusher } from '../src/counters/flusher.js';
import { createMetrics } from '../src/ops/metrics.js';
import { rollupTargets } from '../src/process/rollup-targets.js';
import { startWorker, type Worker } from '../src/worker.js';
import { eventually, openTestApp, propertyParams, type TestApp, uniqueName } from './helpers.js';

// Property: random event streams (several sites, duplicates, bots, late timestamps, random
// request boundaries) through the whole pipeline give the stats a plain in-memory model computes
// from the same stream: counts exactly, uniques within 2 %.
//
// Sessions follow a visitor's page views in the order they are processed (each is compared with
// the visitor's last one), so the stream keeps a visitor's page views in time order (late, but
// in order; as one browser sends them) and runs on one stream shard, whose entries are processed
// in order; clicks and other events come in any order.

const CHROME = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
const BOT = 'Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)';
const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const SESSION_GAP = 30 * MINUTE;

type Kind = 'page' | 'click' | 'event' | 'engaged';
interface Gen {
  site: number;
  visitor: number;
  kind: Kind;
  path: number;
  product: number;
  event: number;
  engaged: number;
  bot: boolean;
  /** Minutes before now. */
  ago: number;
  resend: boolean;
}

const genEvent = fc.record<Gen>({
  site: fc.integer({ min: 0, max: 1 }),
  visitor: fc.integer({ min: 0, max: 5 }),
  kind: fc.constantFrom<Kind>('page', 'page', 'click', 'event', 'engaged'),
  path: fc.integer({ min: 0, max: 3 }),
  product: fc.integer({ min: 0, max: 2 }),
  event: fc.integer({ min: 0, max: 2 }),
  engaged: fc.integer({ min: 1, max: 90_000 }),
  bot: fc.integer({ min: 0, max: 9 }).map((n) => n < 2),
  // Mostly the last hour or hours (sessions form); some late by days (past Redis' minute retention).
  ago: fc.oneof(fc.integer({ min: 0, max: 90 }), fc.integer({ min: 0, max: 600 }), fc.integer({ min: 0, max: 5 * 24 * 60 })),
  resend: fc.boolean(),
});

interface Sent {
  site: number;
  message: Record<string, unknown>;
  g: Gen;
  at: number;
}

/** Messages in send order (duplicates included), page views of a visitor in time order. */
function messages(gens: Gen[], now: number, run: string): Sent[] {
  const floorMin = Math.floor(now / MINUTE) * MINUTE;
  const pageTimes = new Map<string, number[]>();
  for (const g of gens) {
    if (g.kind !== 'page') continue;
    const key = `${g.site}/${g.visitor}`;
    pageTimes.set(key, [...(pageTimes.get(key) ?? []), floorMin - g.ago * MINUTE + (g.path + 1) * 1000]);
  }
  for (const times of pageTimes.values()) times.sort((a, b) => a - b);
  const out: Sent[] = [];
  gens.forEach((g, i) => {
    const at = g.kind === 'page' ? pageTimes.get(`${g.site}/${g.visitor}`)!.shift()! : floorMin - g.ago * MINUTE + 500;
    // The same six ids in every run (each run has sites of its own). They fall in six different
    // HyperLogLog registers (PFADD v0 … v5, then PFCOUNT, gives 6), so uniques of any of them are
    // exact. With random ids, two of them sharing a register now and then made a count one short.
    const visitor = `v${g.visitor}`;
    const context = {
      userAgent: g.bot ? BOT : CHROME,
      page: { path: `/p${g.path}`, url: `https://site.example/p${g.path}` },
    };
    const base = { anonymousId: visitor, messageId: `${run}-m${i}`, timestamp: new Date(at).toISOString(), context };
    let message: Record<string, unknown>;
    if (g.kind === 'page') message = { ...base, type: 'page' };
    else if (g.kind === 'click')
      message = { ...base, type: 'track', event: 'Product Clicked', properties: { product_id: `sku${g.product}` } };
    else if (g.kind === 'engaged') message = { ...base, type: 'track', event: 'Page Engaged', properties: { engaged_ms: g.engaged } };
    else message = { ...base, type: 'track', event: `Event ${g.event}` };
    out.push({ site: g.site, message, g, at });
    // A retry of an earlier message, identical, later in the stream.
    if (g.resend && out.length > 1) out.push(out[Math.floor(out.length / 2)]!);
  });
  return out;
}

interface Row {
  at: number;
  visitor: string;
  kind: Kind;
  path: string;
  product: string;
  event: string;
  engaged: number;
}

/** The model: counted rows (first of each messageId, no bots) and session records. */
function model(sent: Sent[], site: number) {
  const seen = new Set<string>();
  const rows: Row[] = [];
  const bots: number[] = [];
  const sessions: { at: number; se: number; bo: number }[] = [];
  const state = new Map<string, { last: number; views: number }>();
  for (const s of sent) {
    if (s.site !== site || seen.has(s.message['messageId'] as string)) continue;
    seen.add(s.message['messageId'] as string);
    if (s.g.bot) {
      // Counted apart: a bot's page views and events (not its engagement pings).
      if (s.g.kind !== 'engaged') bots.push(s.at);
      continue;
    }
    const visitor = s.message['anonymousId'] as string;
    rows.push({
      at: s.at,
      visitor,
      kind: s.g.kind,
      path: `/p${s.g.path}`,
      product: `sku${s.g.product}`,
      event: `Event ${s.g.event}`,
      engaged: s.g.engaged,
    });
    if (s.g.kind !== 'page') continue;
    const st = state.get(visitor);
    if (!st || Math.abs(s.at - st.last) > SESSION_GAP) {
      state.set(visitor, { last: Math.max(s.at, st?.last ?? s.at), views: 1 });
      sessions.push({ at: s.at, se: 1, bo: 1 });
    } else {
      if (st.views === 1) sessions.push({ at: s.at, se: 0, bo: -1 });
      st.views = 2;
      st.last = Math.max(st.last, s.at);
    }
  }
  return { rows, sessions, bots };
}

function expectedSummary(m: ReturnType<typeof model>, from: number, to: number) {
  const rows = m.rows.filter((r) => r.at >= from && r.at < to);
  const se = m.sessions.filter((s) => s.at >= from && s.at < to);
  const sessions = se.reduce((n, s) => n + s.se, 0);
  const bounces = Math.max(
    0,
    Math.min(
      sessions,
      se.reduce((n, s) => n + s.bo, 0),
    ),
  );
  const engaged = rows.filter((r) => r.kind === 'engaged');
  const round = (v: number, d: number) => Math.round(v * 10 ** d) / 10 ** d;
  return {
    visitors: new Set(rows.map((r) => r.visitor)).size,
    pageviews: rows.filter((r) => r.kind === 'page').length,
    events: rows.filter((r) => r.kind === 'click' || r.kind === 'event').length,
    clicks: rows.filter((r) => r.kind === 'click').length,
    bounceRate: sessions > 0 ? round(bounces / sessions, 4) : 0,
    avgEngagedSeconds: engaged.length > 0 ? round(engaged.reduce((n, r) => n + r.engaged, 0) / engaged.length / 1000, 1) : 0,
    bots: m.bots.filter((at) => at >= from && at < to).length,
  };
}

function expectedTop(rows: Row[], pick: (r: Row) => string | undefined, distinct: boolean) {
  const counts = new Map<string, Set<string> | number>();
  for (const r of rows) {
    const v = pick(r);
    if (v === undefined) continue;
    if (distinct) {
      const set = (counts.get(v) as Set<string> | undefined) ?? new Set<string>();
      set.add(r.visitor);
      counts.set(v, set);
    } else counts.set(v, ((counts.get(v) as number | undefined) ?? 0) + 1);
  }
  return [...counts]
    .map(([value, c]) => ({ value, count: typeof c === 'number' ? c : c.size }))
    .sort((a, b) => b.count - a.count || (a.value < b.value ? -1 : 1));
}

const within = (actual: number, expected: number) => Math.abs(actual - expected) <= Math.max(0.02 * expected, 0);

describe.each(['external', 'embedded'] as const)('stats against an in-memory model (%s)', (mode) => {
  let t: TestApp;
  let worker: Worker;
  const metrics = createMetrics();
  /** Messages the processor handled so far (duplicates included). */
  const processed = async () => (await metrics.processed.get()).values[0]?.value ?? 0;
  beforeAll(async () => {
    t = await openTestApp(mode, { TALLY_STREAM_SHARDS: '1' });
    worker = startWorker(t.ctx, metrics);
  });
  afterAll(async () => {
    await worker.stop();
    await t.close();
  });

  it('answers what the model computes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(genEvent, { minLength: 20, maxLength: 150 }),
        fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 10 }),
        async (gens, cuts) => {
          const run = uniqueName('r');
          const sites = [await t.ctx.sites.create(`${run}-a`), await t.ctx.sites.create(`${run}-b`)];
          // A flusher of this run's sites puts their rollups in PostgreSQL when the run asks, not
          // at the worker's next pass.
          const flusher = startFlusher(t.ctx, {
            intervalMs: 60_000,
            providers: [rollupTargets({ ...t.ctx, sites: { list: async () => sites } }, t.ctx.unknownNames)],
            autoStart: false,
          });
          const before = await processed();
          const now = Date.now();
          const sent = messages(gens, now, run);
          // Random request boundaries, per site in send order.
          for (const [index, site] of sites.entries()) {
            const mine = sent.filter((s) => s.site === index).map((s) => s.message);
            let at = 0;
            for (let c = 0; at < mine.length; c++) {
              const size = cuts[c % cuts.length]!;
              const res = await t.app.inject({
                method: 'POST',
                url: '/v1/batch',
                headers: { authorization: 'Basic ' + Buffer.from(`${site.writeKey}:`).toString('base64') },
                payload: { batch: mine.slice(at, at + size) },
              });
              expect(res.statusCode, res.body).toBe(200);
              at += size;
            }
          }
          // Wait for the processor to have handled every message sent, then check once: a wrong
          // count fails at once (so shrinking gets many tries), not after a wait for it to change.
          await eventually(async () => expect(await processed()).toBe(before + sent.length), 30_000);
          const dayStart = Math.floor(now / DAY) * DAY;
          const minute = Math.floor(now / MINUTE) * MINUTE;
          for (const [index, site] of sites.entries()) {
            const m = model(sent, index);
            const get = async (url: string) => {
              const res = await t.app.inject({ url, headers: { authorization: `Bearer ${site.secretKey}` } });
              expect(res.statusCode, res.body).toBe(200);
              return res.json();
            };
            const everything = expectedSummary(m, dayStart - 29 * DAY, dayStart + DAY);
            const month = await get('/v1/stats/summary?period=30d');
            expect([month.pageviews, month.events]).toEqual([everything.pageviews, everything.events]);
            // Buckets past Redis' retention are read from PostgreSQL: wait until the write-behind
            // has every page view and event there (the processor may still be applying them).
            const all = expectedSummary(m, 0, Number.MAX_SAFE_INTEGER);
            await eventually(async () => {
              await flusher.flushAll();
              const durable = await t.ctx.db.query<{ metric: string; n: number }>(
                "SELECT metric, sum(count)::int8 AS n FROM rollups WHERE site_id = $1 AND res = 'd' AND dim = '' GROUP BY metric",
                [site.id],
              );
              const sums = Object.fromEntries(durable.rows.map((r) => [r.metric, r.n]));
              expect([sums['pv'] ?? 0, sums['ev'] ?? 0]).toEqual([all.pageviews, all.events]);
            }, 10_000);

            // Ranges as of a given time: the rolling ones move with the clock, so they are taken
            // again if a minute passed while the answer was read.
            const ranges = (at: number): [string, number, number, boolean][] => {
              const min = Math.floor(at / MINUTE) * MINUTE;
              const hour = Math.floor(at / HOUR) * HOUR;
              return [
                ['period=today', dayStart, dayStart + DAY, true],
                ['period=7d', dayStart - 6 * DAY, dayStart + DAY, true],
                ['period=30d', dayStart - 29 * DAY, dayStart + DAY, true],
                ['period=24h', hour - 23 * HOUR, hour + HOUR, true],
                ['period=realtime', min - 29 * MINUTE, min + MINUTE, true],
                // Partial days and hours, inside Redis' minute retention.
                [
                  `from=${new Date(minute - 7 * HOUR - 13 * MINUTE).toISOString()}&to=${new Date(minute - 17 * MINUTE).toISOString()}`,
                  minute - 7 * HOUR - 13 * MINUTE,
                  minute - 17 * MINUTE,
                  true,
                ],
                // Reaching past it: counts come from the PostgreSQL rollups.
                [
                  `from=${new Date(minute - 4 * DAY - 7 * MINUTE).toISOString()}&to=${new Date(minute - 2 * DAY - 3 * HOUR).toISOString()}`,
                  minute - 4 * DAY - 7 * MINUTE,
                  minute - 2 * DAY - 3 * HOUR,
                  false,
                ],
              ];
            };
            const stable = async <T>(read: (at: number) => Promise<T>): Promise<T> => {
              for (;;) {
                const at = Date.now();
                const value = await read(at);
                if (Math.floor(Date.now() / MINUTE) === Math.floor(at / MINUTE)) return value;
              }
            };
            for (let i = 0; i < ranges(now).length; i++) {
              const { query, from, to, uniquesHeld, got, pages, products, events, pageVisitors } = await stable(async (at) => {
                const [query, from, to, uniquesHeld] = ranges(at)[i]!;
                return {
                  query,
                  from,
                  to,
                  uniquesHeld,
                  got: await get(`/v1/stats/summary?${query}`),
                  pages: (await get(`/v1/stats/top?${query}&dimension=page&limit=100`)).results,
                  products: (await get(`/v1/stats/top?${query}&dimension=product&metric=clicks&limit=100`)).results,
                  events: (await get(`/v1/stats/top?${query}&dimension=event&limit=100`)).results,
                  pageVisitors: (await get(`/v1/stats/top?${query}&dimension=page&metric=visitors&limit=100`)).results as {
                    value: string;
                    count: number;
                  }[],
                };
              });
              const want = expectedSummary(m, from, to);
              const { visitors, ...counts } = got;
              const { visitors: wantVisitors, ...wantCounts } = want;
              expect(counts, query).toEqual(wantCounts);
              if (uniquesHeld) expect(within(visitors, wantVisitors), `${query} visitors ${visitors} vs ${wantVisitors}`).toBe(true);

              const rows = m.rows.filter((r) => r.at >= from && r.at < to);
              expect(pages, query).toEqual(expectedTop(rows, (r) => (r.kind === 'page' ? r.path : undefined), false));
              expect(products, query).toEqual(expectedTop(rows, (r) => (r.kind === 'click' ? r.product : undefined), false));
              expect(events, query).toEqual(
                expectedTop(rows, (r) => (r.kind === 'click' ? 'Product Clicked' : r.kind === 'event' ? r.event : undefined), false),
              );
              if (uniquesHeld) {
                const want = expectedTop(rows, (r) => (r.kind === 'page' ? r.path : undefined), true);
                expect(pageVisitors.map((r) => r.value).sort(), query).toEqual(want.map((r) => r.value).sort());
                for (const r of pageVisitors) expect(within(r.count, want.find((w) => w.value === r.value)!.count)).toBe(true);
              }
            }

            const days = (await get('/v1/stats/timeseries?period=7d&metric=pageviews&interval=day')).results as {
              t: string;
              count: number;
            }[];
            expect(days.map((d) => d.count)).toEqual(
              days.map((d) => m.rows.filter((r) => r.kind === 'page' && r.at >= Date.parse(d.t) && r.at < Date.parse(d.t) + DAY).length),
            );
            const hours = (await stable(() => get('/v1/stats/timeseries?period=24h&metric=clicks'))).results as {
              t: string;
              count: number;
            }[];
            expect(hours.map((d) => d.count)).toEqual(
              hours.map((d) => m.rows.filter((r) => r.kind === 'click' && r.at >= Date.parse(d.t) && r.at < Date.parse(d.t) + HOUR).length),
            );
          }
        },
      ),
      propertyParams(30, 150_000),
    );
  }, 200_000);
});
