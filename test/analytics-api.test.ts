import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorker, type Worker } from '../src/worker.js';
import { eventually, openTestApp, type TestApp } from './helpers.js';
import { storedEvents } from './stored-events.js';

// The stats API (API.md "Stats") over the whole pipeline, on both modes: what a page view, an
// event, a click, an engagement and a bot count, every route's shape, and its errors.

const CHROME = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
const IPHONE =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1';
const GOOGLEBOT = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
const HEADLESS_CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36';

const now = Date.now();
const ago = (minutes: number) => new Date(now - minutes * 60_000).toISOString();

function page(id: string, visitor: string, path: string, at: string, extra: { ua?: string; referrer?: string; search?: string } = {}) {
  return {
    type: 'page',
    anonymousId: visitor,
    messageId: id,
    timestamp: at,
    context: {
      userAgent: extra.ua ?? CHROME,
      page: { path, url: `https://shop.example${path}${extra.search ?? ''}`, referrer: extra.referrer ?? '' },
    },
  };
}

const track = (id: string, visitor: string, event: string, at: string, properties: Record<string, unknown> = {}) => ({
  type: 'track',
  userId: visitor,
  event,
  properties,
  messageId: id,
  timestamp: at,
  context: { userAgent: CHROME },
});

describe.each(['external', 'embedded'] as const)('stats API (%s)', (mode) => {
  let t: TestApp;
  let worker: Worker;
  const get = (url: string, auth?: string) => t.app.inject({ url, headers: { authorization: auth ?? t.bearer } });
  const json = async (url: string) => {
    const res = await get(url);
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  };

  beforeAll(async () => {
    t = await openTestApp(mode);
    worker = startWorker(t.ctx);
    const batch = [
      // ann: two page views 5 minutes apart (one session, not a bounce), from google with a campaign
      page('p1', 'ann', '/', ago(20), { referrer: 'https://www.google.com/search?q=x', search: '?utm_source=newsletter' }),
      page('p2', 'ann', '/shoes', ago(15)),
      // bob: one page view (a bounce), on an iPhone
      page('p3', 'bob', '/', ago(10), { ua: IPHONE }),
      // a crawler: counted apart, nowhere else
      page('p4', 'crawler', '/', ago(10), { ua: GOOGLEBOT }),
      track('e1', 'ann', 'Product Clicked', ago(14), { product_id: 'sku-1' }),
      track('e2', 'ann', 'Product Clicked', ago(13), { product_id: 'sku-2' }),
      track('e3', 'bob', 'Product Clicked', ago(9), { product_id: 'sku-1' }),
      track('e4', 'bob', 'Signed Up', ago(8)),
      track('e5', 'ann', 'Page Engaged', ago(12), { engaged_ms: 30_000 }),
      track('e6', 'bob', 'Page Engaged', ago(8), { engaged_ms: 10_000 }),
    ];
    const res = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: t.basic }, payload: { batch } });
    expect(res.statusCode).toBe(200);
    // The same request again (an SDK retry) counts nothing more.
    await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: t.basic }, payload: { batch } });
    await eventually(async () => expect((await json('/v1/stats/summary?period=today')).events).toBe(4));
  });
  afterAll(async () => {
    await worker.stop();
    await t.close();
  });

  it('summarises a period: visitors, page views, events, clicks, bounce rate, engaged time', async () => {
    for (const period of ['today', '24h', '7d', '30d', 'realtime']) {
      expect(await json(`/v1/stats/summary?period=${period}`)).toEqual({
        visitors: 2,
        pageviews: 3,
        events: 4,
        clicks: 3,
        bounceRate: 0.5,
        avgEngagedSeconds: 20,
        bots: 1,
      });
    }
    const empty = { visitors: 0, pageviews: 0, events: 0, clicks: 0, bounceRate: 0, avgEngagedSeconds: 0, bots: 0 };
    expect(await json('/v1/stats/summary?period=custom&from=2020-01-01&to=2020-01-31')).toEqual(empty);
    const from = ago(30);
    const to = ago(-1);
    expect((await json(`/v1/stats/summary?period=custom&from=${from}&to=${to}`)).pageviews).toBe(3);
    // A custom range that holds only bob's page view.
    const bobOnly = await json(`/v1/stats/summary?from=${ago(11)}&to=${ago(9.5)}`);
    expect(bobOnly).toMatchObject({ pageviews: 1, visitors: 1 });
  });

  it("counts a headless browser's page views and events as bots only, in the summary's bots", async () => {
    const site = await t.ctx.sites.create(`${t.site.name}-bots`);
    const context = (path: string) => ({ userAgent: HEADLESS_CHROME, page: { path, url: `https://shop.example${path}` } });
    const batch = [
      ...['/', '/a', '/b'].map((path, i) => ({ type: 'page', anonymousId: `headless-${i}`, messageId: `hp${i}`, context: context(path) })),
      { type: 'track', anonymousId: 'headless-0', event: 'Signed Up', messageId: 'ht1', context: context('/a') },
      {
        type: 'track',
        anonymousId: 'headless-0',
        event: 'Product Clicked',
        properties: { product_id: 'sku-1' },
        messageId: 'ht2',
        context: context('/a'),
      },
      // An engagement ping and an identify are neither a page view nor an event: not in bots.
      {
        type: 'track',
        anonymousId: 'headless-0',
        event: 'Page Engaged',
        properties: { engaged_ms: 5000 },
        messageId: 'ht3',
        context: context('/a'),
      },
      { type: 'identify', userId: 'headless-user', messageId: 'hi1', context: context('/a') },
    ];
    const auth = 'Basic ' + Buffer.from(`${site.writeKey}:`).toString('base64');
    const res = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: auth }, payload: { batch } });
    expect(res.statusCode).toBe(200);
    const summary = async () => (await get('/v1/stats/summary?period=today', `Bearer ${site.secretKey}`)).json();
    await eventually(async () =>
      expect(await summary()).toEqual({ visitors: 0, pageviews: 0, events: 0, clicks: 0, bounceRate: 0, avgEngagedSeconds: 0, bots: 5 }),
    );
    // All seven were processed (the event store holds them), so 5 is the final figure.
    await eventually(async () => {
      const rows = await storedEvents(t.ctx.events, site.id, 'SELECT count(*) AS n FROM events');
      expect(Number(rows[0]?.['n'])).toBe(7);
    });
    expect(await summary()).toMatchObject({ bots: 5, visitors: 0 });
  });

  it('ranks every dimension', async () => {
    const top = async (query: string) => (await json(`/v1/stats/top?period=today&${query}`)).results;
    expect(await top('dimension=page')).toEqual([
      { value: '/', count: 2 },
      { value: '/shoes', count: 1 },
    ]);
    expect(await top('dimension=product&metric=clicks')).toEqual([
      { value: 'sku-1', count: 2 },
      { value: 'sku-2', count: 1 },
    ]);
    expect(await top('dimension=product')).toEqual(await top('dimension=product&metric=clicks'));
    expect(await top('dimension=product&metric=visitors')).toEqual([
      { value: 'sku-1', count: 2 },
      { value: 'sku-2', count: 1 },
    ]);
    expect(await top('dimension=event&metric=events')).toEqual([
      { value: 'Product Clicked', count: 3 },
      { value: 'Signed Up', count: 1 },
    ]);
    expect(await top('dimension=referrer')).toEqual([{ value: 'google.com', count: 1 }]);
    expect(await top('dimension=utm_source')).toEqual([{ value: 'newsletter', count: 1 }]);
    expect(await top('dimension=browser')).toEqual([
      { value: 'Chrome', count: 2 },
      { value: 'Mobile Safari', count: 1 },
    ]);
    expect(await top('dimension=device')).toEqual([
      { value: 'desktop', count: 2 },
      { value: 'mobile', count: 1 },
    ]);
    expect(await top('dimension=os&metric=visitors')).toEqual([
      { value: 'Windows', count: 1 },
      { value: 'iOS', count: 1 },
    ]);
    expect(await top('dimension=page&metric=visitors')).toEqual([
      { value: '/', count: 2 },
      { value: '/shoes', count: 1 },
    ]);
    expect(await top('dimension=user&metric=clicks')).toEqual([
      { value: 'ann', count: 2 },
      { value: 'bob', count: 1 },
    ]);
    expect(await top('dimension=page&limit=1')).toEqual([{ value: '/', count: 2 }]);
  });

  it('counts signed-in users only as users: an anonymousId is a visitor', async () => {
    // ann and bob viewed pages with an anonymousId, and clicked signed in (userId).
    expect((await json('/v1/stats/summary?period=today')).visitors).toBe(2);
    expect((await json('/v1/stats/top?period=today&dimension=user&metric=pageviews')).results).toEqual([]);
    expect(await json('/v1/stats/users/ann')).toEqual({
      userId: 'ann',
      events: { 'Product Clicked': 2, 'Page Engaged': 1 },
      pageviews: 0,
      clicks: 2,
      productsClicked: 2,
    });
  });

  it('answers a timeseries with every bucket, empty ones as 0', async () => {
    const minutes = (await json('/v1/stats/timeseries?period=realtime&metric=pageviews')).results as { t: string; count: number }[];
    expect(minutes).toHaveLength(30);
    expect(minutes.reduce((n, p) => n + p.count, 0)).toBe(3);
    expect(minutes.filter((p) => p.count === 0).length).toBeGreaterThanOrEqual(27);
    for (let i = 1; i < minutes.length; i++) expect(Date.parse(minutes[i]!.t) - Date.parse(minutes[i - 1]!.t)).toBe(60_000);
    const days = (await json('/v1/stats/timeseries?period=7d&metric=visitors&interval=day')).results;
    expect(days).toHaveLength(7);
    expect(days.at(-1)).toEqual({ t: new Date(Math.floor(now / 86_400_000) * 86_400_000).toISOString(), count: 2 });
    const hours = (await json('/v1/stats/timeseries?period=24h&metric=clicks')).results as { count: number }[];
    expect(hours).toHaveLength(24);
    expect(hours.reduce((n, p) => n + p.count, 0)).toBe(3);
  });

  it('counts live visitors of the last five minutes', async () => {
    expect(await json('/v1/stats/realtime')).toEqual({ visitors: 0 });
    await t.app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { authorization: t.basic },
      payload: { batch: [page('live-1', 'cat', '/live', ago(1)), page('live-2', 'dan', '/live', ago(0))] },
    });
    await eventually(async () => expect(await json('/v1/stats/realtime')).toEqual({ visitors: 2 }));
  });

  it('exports top and timeseries as CSV', async () => {
    const top = await get('/v1/stats/export?format=csv&period=today&dimension=event');
    expect(top.statusCode).toBe(200);
    expect(top.headers['content-type']).toContain('text/csv');
    expect(top.body).toBe('value,count\r\nProduct Clicked,3\r\nSigned Up,1\r\n');
    const series = await get('/v1/stats/export?format=csv&period=7d&metric=events');
    const lines = series.body.trim().split('\r\n');
    expect(lines[0]).toBe('t,count');
    expect(lines).toHaveLength(8);
  });

  it('refuses bad parameters with invalid_request and the path, and wrong keys', async () => {
    const cases: [string, string][] = [
      ['/v1/stats/summary?period=year', '/period'],
      ['/v1/stats/summary?period=custom&to=2024-01-01', '/from'],
      ['/v1/stats/summary?period=custom&from=2024-01-02&to=2024-01-01', '/to'],
      ['/v1/stats/summary?period=custom&from=yesterday&to=2024-01-01', '/from'],
      ['/v1/stats/summary?period=7d&from=2024-01-01', '/from'],
      ['/v1/stats/summary?period=custom&from=2000-01-01&to=2024-01-01', '/to'],
      ['/v1/stats/top?dimension=colour', '/dimension'],
      ['/v1/stats/top?dimension=page&limit=0', '/limit'],
      ['/v1/stats/top?dimension=page&limit=1001', '/limit'],
      ['/v1/stats/top?dimension=page&metric=money', '/metric'],
      ['/v1/stats/timeseries?interval=week', '/interval'],
      ['/v1/stats/timeseries?period=30d&interval=minute', '/interval'],
      ['/v1/stats/export?format=xml&dimension=page', '/format'],
    ];
    for (const [url, path] of cases) {
      const res = await get(url);
      expect(res.statusCode, url).toBe(400);
      expect(res.json().error, url).toMatchObject({ code: 'invalid_request', path });
    }
    expect((await get('/v1/stats/summary', '')).statusCode).toBe(401);
    expect((await get('/v1/stats/summary', t.basic)).statusCode).toBe(403);
  });

  it('streams the figures as server-sent events', async () => {
    const address = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const controller = new AbortController();
    try {
      const res = await fetch(`${address}/v1/stats/stream?period=today`, {
        headers: { authorization: t.bearer },
        signal: controller.signal,
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain('text/event-stream');
      const reader = res.body!.getReader();
      let text = '';
      while (!text.includes('\n\n')) text += new TextDecoder().decode((await reader.read()).value);
      const data = JSON.parse(/data: (.*)\n/.exec(text)![1]!);
      expect(data.summary).toMatchObject({ pageviews: expect.any(Number), events: 4, clicks: 3 });
      expect(data.realtime).toEqual({ visitors: expect.any(Number) });
      // A new page view shows in the next event, within a couple of seconds.
      await t.app.inject({
        method: 'POST',
        url: '/v1/batch',
        headers: { authorization: t.basic },
        payload: { batch: [page('stream-1', 'eve', '/stream', ago(0))] },
      });
      const before = data.summary.pageviews as number;
      let next = data;
      while (next.summary.pageviews === before) {
        text = '';
        while (!text.includes('\n\n')) text += new TextDecoder().decode((await reader.read()).value);
        const line = /data: (.*)\n/.exec(text);
        if (line) next = JSON.parse(line[1]!);
      }
      expect(next.summary.pageviews).toBe(before + 1);
    } finally {
      controller.abort();
    }
  });
});
