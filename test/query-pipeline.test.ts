import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorker, type Worker } from '../src/worker.js';
import { eventually, openTestApp, type TestApp } from './helpers.js';

// Events sent to the collector, processed into the counters and the event store, answered by
// the query API, goals and the filtered GET routes (both modes). The query API's figures agree
// with the counters' where both answer.

const CHROME = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
const IPHONE =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1';
const GOOGLEBOT = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';

const now = Date.now();
const ago = (minutes: number) => new Date(now - minutes * 60_000).toISOString();
const page = (id: string, visitor: string, path: string, at: string, ua = CHROME) => ({
  type: 'page',
  anonymousId: visitor,
  messageId: id,
  timestamp: at,
  context: { userAgent: ua, page: { path, url: `https://shop.example${path}`, referrer: '' } },
});
const track = (id: string, visitor: string, event: string, at: string, properties: Record<string, unknown> = {}) => ({
  type: 'track',
  anonymousId: visitor,
  event,
  properties,
  messageId: id,
  timestamp: at,
  context: { userAgent: CHROME },
});

describe.each(['external', 'embedded'] as const)('query API over the pipeline (%s)', (mode) => {
  let t: TestApp;
  let worker: Worker;
  const query = async (body: Record<string, unknown>) => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/stats/query',
      headers: { authorization: t.bearer },
      payload: { date_range: '24h', ...body },
    });
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  };
  const get = async (url: string) => {
    const res = await t.app.inject({ url, headers: { authorization: t.bearer } });
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  };

  beforeAll(async () => {
    t = await openTestApp(mode);
    worker = startWorker(t.ctx);
    const batch = [
      page('p1', 'ann', '/', ago(20)),
      page('p2', 'ann', '/pricing', ago(15)),
      page('p3', 'bob', '/', ago(10), IPHONE),
      page('p4', 'crawler', '/', ago(10), GOOGLEBOT),
      track('e1', 'ann', 'Product Clicked', ago(14), { product_id: 'sku-1' }),
      track('e2', 'bob', 'Signed Up', ago(8)),
      track('e3', 'ann', 'Page Engaged', ago(12), { engaged_ms: 30_000 }),
    ];
    for (let i = 0; i < 2; i++) {
      // The second time is an SDK's retry: counted once.
      const res = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: t.basic }, payload: { batch } });
      expect(res.statusCode).toBe(200);
    }
    await eventually(async () => expect((await query({ metrics: ['pageviews', 'events'] })).results[0].metrics).toEqual([3, 2]), 20_000);
    await eventually(async () => expect((await get('/v1/stats/summary?period=24h')).pageviews).toBe(3), 20_000);
  }, 120_000);
  afterAll(async () => {
    await worker?.stop();
    await t?.close();
  });

  it('agrees with the counters where both answer', async () => {
    const counters = await get('/v1/stats/summary?period=24h');
    const [visitors, pageviews, events, clicks, timeOnPage] = (
      await query({ metrics: ['visitors', 'pageviews', 'events', 'clicks', 'time_on_page'] })
    ).results[0].metrics;
    expect({ visitors, pageviews, events, clicks, avgEngagedSeconds: timeOnPage }).toEqual({
      visitors: counters.visitors,
      pageviews: counters.pageviews,
      events: counters.events,
      clicks: counters.clicks,
      avgEngagedSeconds: counters.avgEngagedSeconds,
    });
    const pages = (await query({ metrics: ['pageviews'], dimensions: ['page'] })).results;
    const top = (await get('/v1/stats/top?period=24h&dimension=page')).results;
    expect(pages.map((r: { dimensions: string[]; metrics: number[] }) => ({ value: r.dimensions[0], count: r.metrics[0] }))).toEqual(top);
  });

  it('answers goals defined after the events, and filters', async () => {
    const created = await t.app.inject({
      method: 'POST',
      url: '/v1/goals',
      headers: { authorization: t.bearer },
      payload: { name: 'Signup', event: 'Signed Up' },
    });
    expect(created.statusCode).toBe(201);
    expect((await query({ metrics: ['visitors', 'conversions', 'conversion_rate'], filters: ['is', 'goal', ['Signup']] })).results).toEqual(
      [{ dimensions: [], metrics: [1, 1, 50] }],
    );
    // bob's track came from a desktop browser, his page view from his phone.
    expect((await query({ metrics: ['visitors', 'pageviews'], dimensions: ['device'] })).results).toEqual([
      { dimensions: ['desktop'], metrics: [2, 2] },
      { dimensions: ['mobile'], metrics: [1, 1] },
    ]);
    expect(await get('/v1/stats/summary?period=24h&filters=page%3D%3D%2Fpricing')).toMatchObject({ visitors: 1, pageviews: 1, events: 0 });
    expect(await get('/v1/stats/summary?period=24h&filters=device%3D%3Dmobile')).toMatchObject({ visitors: 1, pageviews: 1, bots: 0 });
  });
});
