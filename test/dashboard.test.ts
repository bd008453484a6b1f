import { readFile } from 'node:fs/promises';
import type { Browser, Page, Route } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ASSET_CACHE_CONTROL, DASHBOARD_CSP, PAGE_CACHE_CONTROL } from '../src/present/dashboard-route.js';
import { startWorker, type Worker } from '../src/worker.js';
import { launchChromium, skipWithoutChromium } from './chromium.js';
import { eventually, openTestApp, type TestApp, uniqueName } from './helpers.js';

// The live dashboard (GET /): its files as served, then the page in Debian's Chromium against a
// Tally listening on a real socket — the secret key asked for once, the same figures as the
// stats API, live updates without a reload, a clear message for a wrong key, CSV export, and
// values shown as text, never as markup.

const SCREENSHOT = '/tmp/tally-dashboard.png';
const CHROME_UA = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
const IPHONE_UA =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1';

describe('GET / (dashboard files)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await openTestApp('embedded');
  });
  afterAll(() => t.close());

  it('serves the page with a strict CSP and revalidation, and its script and style sheet by content hash', async () => {
    const page = await t.app.inject({ url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toBe(DASHBOARD_CSP);
    expect(page.headers['cache-control']).toBe(PAGE_CACHE_CONTROL);
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    const etag = page.headers['etag'] as string;
    expect((await t.app.inject({ url: '/', headers: { 'if-none-match': etag } })).statusCode).toBe(304);

    const script = /<script defer src="(\/dashboard\/dashboard\.js\?v=[\w-]+)"><\/script>/.exec(page.body)?.[1];
    const style = /<link rel="stylesheet" href="(\/dashboard\/dashboard\.css\?v=[\w-]+)">/.exec(page.body)?.[1];
    expect(script).toBeDefined();
    expect(style).toBeDefined();
    const js = await t.app.inject({ url: script! });
    expect(js.statusCode).toBe(200);
    expect(js.headers['content-type']).toBe('application/javascript; charset=utf-8');
    expect(js.headers['cache-control']).toBe(ASSET_CACHE_CONTROL);
    expect(js.body).toContain('/v1/stats/stream');
    const css = await t.app.inject({ url: style! });
    expect(css.statusCode).toBe(200);
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
    expect(css.headers['cache-control']).toBe(ASSET_CACHE_CONTROL);
    // The script writes data with textContent only: no HTML parsing of anything it received.
    expect(js.body).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
  });
});

/** Waits for the page: generous, as a full test run shares two cores with many files. */
const poll = <T>(read: () => Promise<T> | T, timeout = 20_000) => expect.poll(read, { timeout, interval: 100 });

type Summary = {
  visitors: number;
  pageviews: number;
  events: number;
  clicks: number;
  bounceRate: number;
  avgEngagedSeconds: number;
  bots: number;
};
// Headless Chromium's own user agent: a bot, counted apart.
const HEADLESS_UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36';

describe.skipIf(skipWithoutChromium('dashboard.test.ts'))('dashboard in Chromium', () => {
  let t: TestApp;
  let worker: Worker;
  let browser: Browser;
  let baseUrl: string;
  let sent = 0;

  const message = (type: 'page' | 'track', visitor: string, fields: Record<string, unknown>, ua = CHROME_UA) => ({
    type,
    anonymousId: visitor,
    messageId: uniqueName('m'),
    timestamp: new Date().toISOString(),
    context: { userAgent: ua },
    ...fields,
  });
  const pageview = (visitor: string, path: string, extra: { referrer?: string; ua?: string } = {}) =>
    message('page', visitor, {
      context: { userAgent: extra.ua ?? CHROME_UA, page: { path, url: `https://shop.example${path}`, referrer: extra.referrer ?? '' } },
    });

  /** Sends a batch through the real socket and waits until the pipeline has processed it. */
  const send = async (batch: Record<string, unknown>[]) => {
    const res = await fetch(`${baseUrl}/v1/batch`, {
      method: 'POST',
      headers: { authorization: t.basic, 'content-type': 'application/json' },
      body: JSON.stringify({ batch }),
    });
    expect(res.status).toBe(200);
    sent += batch.filter((m) => m['type'] === 'page').length;
    await eventually(async () => expect((await api<Summary>('/v1/stats/summary?period=24h')).pageviews).toBe(sent), 15_000, 100);
  };

  async function api<T>(path: string): Promise<T> {
    const res = await fetch(`${baseUrl}${path}`, { headers: { authorization: t.bearer } });
    expect(res.status).toBe(200);
    return (await res.json()) as T;
  }

  const figures = (page: Page) =>
    page.evaluate(() => {
      const out: Record<string, number> = {};
      for (const name of ['visitors', 'pageviews', 'events', 'clicks', 'bounceRate', 'avgEngagedSeconds']) {
        out[name] = Number(document.getElementById(`fig-${name}`)!.dataset['value']);
      }
      out['bots'] = Number(document.getElementById('bots')!.dataset['value']);
      return out;
    });
  const topRows = (page: Page, dimension: string) =>
    page.$$eval(`#top-${dimension} tbody tr:not(.empty)`, (rows) =>
      rows.map((row) => ({
        value: row.querySelector('.label')!.textContent,
        count: Number((row.querySelector('.num') as HTMLElement).dataset['value']),
      })),
    );

  async function signIn(page: Page, key: string) {
    await page.fill('#key', key);
    await page.press('#key', 'Enter');
  }

  beforeAll(async () => {
    t = await openTestApp('external', { TALLY_COLLECT_RATE_LIMIT: '0' });
    worker = startWorker(t.ctx);
    baseUrl = await t.app.listen({ port: 0, host: '127.0.0.1' });
    browser = await launchChromium();
    await send([
      pageview('ann', '/', { referrer: 'https://www.google.com/search?q=shoes' }),
      pageview('ann', '/shoes'),
      pageview('bob', '/', { ua: IPHONE_UA }),
      pageview('cat', '/', { referrer: 'https://news.ycombinator.com/' }),
      message('track', 'ann', { event: 'Product Clicked', properties: { product_id: 'sku-1' } }),
      message('track', 'bob', { event: 'Product Clicked', properties: { product_id: 'sku-1' } }),
      message('track', 'ann', { event: 'Page Engaged', properties: { engaged_ms: 42_000 } }),
      message('track', 'cat', { event: 'Signed Up' }),
    ]);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await worker?.stop();
    await t?.close();
  });

  it('says clearly when the key is wrong, and does not keep it', { timeout: 30_000 }, async () => {
    const page = await browser.newPage();
    await page.goto(`${baseUrl}/`);
    await signIn(page, 'tsk_not_a_real_key');
    await poll(() => page.textContent('#login-error')).toBe('The secret key was not accepted: That key or token is not valid.');
    expect(await page.isVisible('#dashboard')).toBe(false);
    expect(await page.getAttribute('#key', 'aria-invalid')).toBe('true');

    await signIn(page, t.site.writeKey);
    await poll(() => page.textContent('#login-error')).toBe(
      'The secret key was not accepted: A write key can only collect events; use the secret key.',
    );
    await signIn(page, 'tsk_two words');
    await poll(() => page.textContent('#login-error')).toBe('A secret key has no spaces or special characters: paste it as printed.');
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    await page.close();
  });

  it('shows the figures of the stats API and updates them live, without a reload', { timeout: 60_000 }, async () => {
    const requested: string[] = [];
    const page = await browser.newPage({ viewport: { width: 1280, height: 1500 } });
    page.on('request', (request) => requested.push(request.url()));
    // Script errors, and console errors such as a Content-Security-Policy refusal.
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => msg.type() === 'error' && pageErrors.push(msg.text()));
    await page.goto(`${baseUrl}/#24h`);
    await signIn(page, t.site.secretKey);
    await page.waitForSelector('#dashboard:not([hidden])');

    const summary = await api<Summary>('/v1/stats/summary?period=24h');
    expect(summary).toMatchObject({
      visitors: 3,
      pageviews: 4,
      events: 3,
      clicks: 2,
      bounceRate: expect.any(Number),
      avgEngagedSeconds: 42,
    });
    await poll(() => figures(page)).toEqual(summary);
    expect(await page.textContent('#fig-pageviews')).toBe('4');
    expect(await page.textContent('#fig-avgEngagedSeconds')).toBe('42s');
    expect(await page.textContent('#fig-bounceRate')).toBe(`${Math.round(summary.bounceRate * 100)}%`);
    expect(Number(await page.getAttribute('#live-count', 'data-value'))).toBe(
      (await api<{ visitors: number }>('/v1/stats/realtime')).visitors,
    );

    const topPages = (await api<{ results: { value: string; count: number }[] }>('/v1/stats/top?period=24h&dimension=page')).results;
    expect(topPages[0]).toEqual({ value: '/', count: 3 });
    await poll(() => topRows(page, 'page')).toEqual(topPages);
    await poll(() => topRows(page, 'referrer')).toEqual([
      { value: 'google.com', count: 1 },
      { value: 'news.ycombinator.com', count: 1 },
    ]);
    expect(await topRows(page, 'product')).toEqual([{ value: 'sku-1', count: 2 }]);
    const series = (await api<{ results: { count: number }[] }>('/v1/stats/timeseries?period=24h&interval=hour&metric=pageviews')).results;
    expect(await page.$$eval('#chart-table tbody tr', (rows) => rows.length)).toBe(series.length);
    expect(await page.$$eval('#chart svg path.line-pageviews', (paths) => paths.length)).toBe(1);
    await poll(() => page.textContent('#connection')).toBe('Live');

    // The key stays in this tab's session storage; it never appears in a URL.
    expect(await page.evaluate(() => sessionStorage.getItem('tally.secretKey'))).toBe(t.site.secretKey);
    expect(page.url()).toBe(`${baseUrl}/#24h`);
    expect(requested.some((url) => url.includes(t.site.secretKey))).toBe(false);

    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    // More traffic: the page follows without a reload (a marker set on the window survives).
    await page.evaluate(() => Object.assign(window, { notReloaded: true }));
    const markup = '/<img src=x onerror="document.title=1">';
    await send([pageview('dan', '/pricing'), pageview('dan', '/pricing'), pageview('eve', '/pricing'), pageview('eve', markup)]);
    const after = await api<Summary>('/v1/stats/summary?period=24h');
    expect(after.pageviews).toBe(8);
    await poll(() => figures(page)).toEqual(after);
    const topAfter = (await api<{ results: { value: string; count: number }[] }>('/v1/stats/top?period=24h&dimension=page')).results;
    expect(topAfter).toHaveLength(4);
    expect(topAfter).toContainEqual({ value: '/pricing', count: 3 });
    expect(topAfter).toContainEqual({ value: markup, count: 1 });
    await poll(() => topRows(page, 'page')).toEqual(topAfter);
    expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);

    // Bots: in no figure, and a line under the figures once there are any.
    expect(after.bots).toBe(0);
    expect(await page.isHidden('#bots')).toBe(true);
    const bots = await fetch(`${baseUrl}/v1/batch`, {
      method: 'POST',
      headers: { authorization: t.basic, 'content-type': 'application/json' },
      body: JSON.stringify({
        batch: [
          pageview('headless-1', '/', { ua: HEADLESS_UA }),
          pageview('headless-2', '/pricing', { ua: HEADLESS_UA }),
          message('track', 'headless-1', { event: 'Signed Up', context: { userAgent: HEADLESS_UA, page: { path: '/pricing' } } }),
        ],
      }),
    });
    expect(bots.status).toBe(200);
    await eventually(async () => expect(await api<Summary>('/v1/stats/summary?period=24h')).toEqual({ ...after, bots: 3 }), 15_000, 100);
    await poll(() => page.textContent('#bots')).toBe('3 bot page views and events filtered');
    expect(await page.isVisible('#bots')).toBe(true);
    expect(await figures(page)).toEqual({ ...after, bots: 3 });
    // A value is text: the markup in a path made no element.
    expect(await page.$$eval('#tops img', (images) => images.length)).toBe(0);
    expect(await page.title()).toBe('Tally dashboard');

    // The chart reads out one interval at a time from the keyboard.
    await page.focus('#chart svg');
    await page.keyboard.press('End');
    const last = (
      await api<{ results: { t: string; count: number }[] }>('/v1/stats/timeseries?period=24h&interval=hour&metric=pageviews')
    ).results.at(-1)!;
    expect(await page.textContent('#chart-readout')).toMatch(
      new RegExp(`^\\w+ \\d+, \\d\\d:00 UTC: ${last.count} pageviews, \\d+ visitors$`),
    );

    // Another period, chosen with the keyboard (the picker is a radio group): its own figures,
    // and the period in the address.
    await page.focus('input[name="period"][value="24h"]');
    await page.keyboard.press('ArrowRight');
    const week = await api<Summary>('/v1/stats/summary?period=7d');
    await poll(() => figures(page)).toEqual(week);
    expect(page.url()).toBe(`${baseUrl}/#7d`);
    expect(await page.inputValue('#interval')).toBe('day');

    // CSV export sends the key as a header too.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#top-page button')]);
    expect(download.suggestedFilename()).toBe('tally-page-7d.csv');
    const csv = await readFile(await download.path(), 'utf8');
    expect(csv.split(/\r?\n/)[0]).toBe('value,count');
    expect(csv).toContain('/pricing,3');
    const [visitorsCsv] = await Promise.all([page.waitForEvent('download'), page.click('#export-visitors')]);
    expect(visitorsCsv.suggestedFilename()).toBe('tally-visitors-7d.csv');
    const rows = (await readFile(await visitorsCsv.path(), 'utf8')).trim().split(/\r?\n/);
    expect(rows[0]).toBe('t,count');
    // One row a day over 7 days, the visitors of today last.
    expect(rows).toHaveLength(8);
    expect(rows.at(-1)).toBe(`${new Date().toISOString().slice(0, 10)}T00:00:00.000Z,${week.visitors}`);

    // A reload keeps the key for this tab; "Forget key" drops it.
    await page.reload();
    await page.waitForSelector('#dashboard:not([hidden])');
    await page.click('#forget');
    await page.waitForSelector('#login:not([hidden])');
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it('reads any valid event-stream framing (CRLF, comments, other events, data over several lines) and formats big figures', {
    timeout: 60_000,
  }, async () => {
    const page = await browser.newPage();
    // Only the stream answers (after the key check): what the page shows came from the push.
    const held: Route[] = [];
    let keyChecked = false;
    const pushed = { visitors: 150_000, pageviews: 12_345, events: 7, clicks: 3, bounceRate: 0.4321, avgEngagedSeconds: 3700, bots: 1234 };
    const data = JSON.stringify({ realtime: { visitors: 7 }, summary: pushed }, null, 1).split('\n');
    await page.route('**/v1/stats/**', async (route) => {
      const url = route.request().url();
      if (url.includes('/v1/stats/stream')) {
        await route.fulfill({
          status: 200,
          headers: { 'content-type': 'text/event-stream' },
          body: `: hello\r\n\r\nevent: ping\r\ndata: {}\r\n\r\nevent: stats\r\n${data.map((line) => `data: ${line}\r\n`).join('')}\r\n`,
        });
      } else if (url.includes('/v1/stats/realtime') && !keyChecked) {
        keyChecked = true;
        await route.continue();
      } else {
        held.push(route);
      }
    });
    await page.goto(`${baseUrl}/#today`);
    await signIn(page, t.site.secretKey);
    await poll(() => page.textContent('#fig-visitors')).toBe('150K');
    expect(await page.getAttribute('#fig-visitors', 'title')).toBe('150,000');
    expect(await page.textContent('#fig-pageviews')).toBe('12,345');
    expect(await page.getAttribute('#fig-pageviews', 'title')).toBeNull();
    expect(await page.textContent('#fig-bounceRate')).toBe('43%');
    expect(await page.textContent('#fig-avgEngagedSeconds')).toBe('1h 01m');
    expect(await page.textContent('#live-count')).toBe('7');
    expect(await page.textContent('#bots')).toBe('1,234 bot page views and events filtered');
    expect(await figures(page)).toEqual(pushed);
    await page.close();
    for (const route of held) await route.abort().catch(() => undefined);
  });

  it('polls while the stream is cut, says so, and goes live again when it comes back', { timeout: 120_000 }, async () => {
    const page = await browser.newPage();
    let streamUp = false;
    let attempts = 0;
    await page.route('**/v1/stats/stream?*', async (route) => {
      attempts += 1;
      if (streamUp) await route.continue();
      else await route.abort('connectionreset');
    });
    await page.goto(`${baseUrl}/#24h`);
    await signIn(page, t.site.secretKey);
    await poll(() => page.textContent('#connection')).toMatch(/^Live updates interrupted; reconnecting in \d+ s$/);
    expect(await page.getAttribute('#live', 'class')).not.toContain('is-live');

    await send([pageview('fay', '/contact')]);
    const summary = await api<Summary>('/v1/stats/summary?period=24h');
    await poll(() => figures(page)).toEqual(summary);
    expect(attempts).toBeGreaterThanOrEqual(2);

    // The next attempt comes after the backoff reached so far: at most 30 s (plus a quarter of jitter).
    streamUp = true;
    await poll(() => page.textContent('#connection'), 45_000).toBe('Live');
    expect(await page.getAttribute('#live', 'class')).toContain('is-live');
    await page.close();
  });
});
