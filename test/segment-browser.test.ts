import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorker, type Worker } from '../src/worker.js';
import { launchChromium, skipWithoutChromium } from './chromium.js';
import { eventually, openTestApp, type TestApp, uniqueName } from './helpers.js';
import { storedEvents } from './stored-events.js';

// Segment's browser library, @segment/analytics-next (what most websites run), unmodified in
// Debian's Chromium: bundled from npm, served by a site on another origin, loaded with the
// settings it would fetch from Segment's CDN passed in (no internet here) and Tally as its API
// host. It posts text/plain bodies to the short paths (/v1/p, /v1/t, …; /v1/b when batching).

const ANALYTICS_NEXT_VERSION = (createRequire(import.meta.url)('@segment/analytics-next/package.json') as { version: string }).version;
// Headless Chromium says "HeadlessChrome", which Tally counts as a bot, apart from people.
const USER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36';

/** analytics-next as a page would load it from its own bundle. */
async function bundleAnalyticsNext(): Promise<string> {
  const result = await build({
    stdin: {
      contents: "import { AnalyticsBrowser } from '@segment/analytics-next'; window.AnalyticsBrowser = AnalyticsBrowser;",
      resolveDir: fileURLToPath(new URL('..', import.meta.url)),
    },
    bundle: true,
    format: 'iife',
    platform: 'browser',
    write: false,
    logLevel: 'silent',
  });
  return result.outputFiles[0]!.text;
}

/** The site's page: loads analytics-next pointed at Tally, in the delivery mode of the query. */
function pageHtml(writeKey: string, apiHost: string, batching: boolean): string {
  const segmentIo = {
    apiHost,
    protocol: 'http',
    ...(batching ? { deliveryStrategy: { strategy: 'batching', config: { size: 4, timeout: 200 } } } : {}),
  };
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Segment shop</title>
<script src="/analytics.js"></script>
<script>
  window.loaded = AnalyticsBrowser.load(
    { writeKey: ${JSON.stringify(writeKey)}, cdnSettings: { integrations: { 'Segment.io': { apiKey: ${JSON.stringify(writeKey)} } } } },
    { integrations: { 'Segment.io': ${JSON.stringify(segmentIo)} } },
  ).then(([analytics]) => (window.analytics = analytics));
</script>
</head><body><h1>Segment shop</h1></body></html>`;
}

describe.skipIf(skipWithoutChromium('segment-browser.test.ts')).each(['external', 'embedded'] as const)(
  `@segment/analytics-next ${ANALYTICS_NEXT_VERSION} in Chromium (%s)`,
  (mode) => {
    let t: TestApp;
    let worker: Worker;
    let browser: Browser;
    let site: Server;
    let siteUrl: string;
    /** Collect requests as Tally received them: path, content type, origin. */
    const received: { url: string; contentType: string | undefined; origin: string | undefined }[] = [];

    beforeAll(async () => {
      t = await openTestApp(mode, { TALLY_COLLECT_RATE_LIMIT: '0' });
      t.app.addHook('onRequest', async (request) => {
        if (request.method === 'POST' && request.url.startsWith('/v1/')) {
          received.push({ url: request.url, contentType: request.headers['content-type'], origin: request.headers.origin });
        }
      });
      worker = startWorker(t.ctx);
      const tallyUrl = await t.app.listen({ port: 0, host: '127.0.0.1' });
      const apiHost = `${new URL(tallyUrl).host}/v1`;
      const script = await bundleAnalyticsNext();
      site = createServer((req, res) => {
        const url = new URL(req.url ?? '/', 'http://localhost');
        if (url.pathname === '/analytics.js') return res.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
        if (url.pathname !== '/') return res.writeHead(404).end();
        res
          .writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
          .end(pageHtml(t.site.writeKey, apiHost, url.searchParams.has('batching')));
      });
      await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
      // Another origin than Tally's (localhost, not 127.0.0.1): every post is a CORS request.
      siteUrl = `http://localhost:${(site.address() as AddressInfo).port}`;
      browser = await launchChromium([`--user-agent=${USER_AGENT}`]);
    }, 60_000);

    afterAll(async () => {
      await browser?.close();
      await new Promise((resolve) => site?.close(resolve));
      await worker?.stop();
      await t?.close();
    });

    const stats = async (path: string) => {
      const res = await t.app.inject({ method: 'GET', url: path, headers: { authorization: t.bearer } });
      expect(res.statusCode).toBe(200);
      return res.json();
    };
    const rawTypes = async (userId: string) => {
      const rows = await storedEvents(
        t.ctx.events,
        t.site.id,
        'SELECT type, count(*) AS n FROM events WHERE user_id = $2 GROUP BY type ORDER BY type',
        [userId],
      );
      return Object.fromEntries(rows.map((r) => [r['type'], Number(r['n'])]));
    };

    /** Loads the page and makes the calls a shop would: every call type, identified first. */
    async function visit(userId: string, query: string): Promise<void> {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (err) => errors.push(err.message));
      await page.goto(`${siteUrl}/${query}`);
      const delivered = await page.evaluate(async (user) => {
        type Ctx = { failedDelivery(): unknown };
        const w = window as unknown as { loaded: Promise<unknown>; analytics: Record<string, (...args: unknown[]) => Promise<Ctx>> };
        await w.loaded;
        const a = w.analytics;
        const calls = [
          await a['identify']!(user, { plan: 'pro' }),
          await a['page']!('Pricing'),
          await a['page']!('Checkout'),
          await a['track']!('Product Clicked', { product_id: 'sku-42' }),
          await a['track']!('Signed Up', { plan: 'pro' }),
          await a['track']!('Signed Up', { plan: 'team' }),
          await a['screen']!('Home'),
          await a['group']!('acme', { seats: 3 }),
          await a['alias']!(user, `${user}-previous`),
        ];
        return calls.map((ctx) => ctx.failedDelivery() === undefined);
      }, userId);
      expect(errors).toEqual([]);
      expect(delivered).toEqual(Array.from({ length: 9 }, () => true));
      await page.close();
    }

    async function expectCounted(userId: string): Promise<void> {
      // page() and screen() are page views; Product Clicked with a product_id is a click.
      await eventually(
        async () =>
          expect(await stats(`/v1/stats/users/${userId}`)).toEqual({
            userId,
            events: { 'Product Clicked': 1, 'Signed Up': 2 },
            pageviews: 3,
            clicks: 1,
            productsClicked: 1,
          }),
        15_000,
        100,
      );
      await eventually(async () =>
        expect(await rawTypes(userId)).toEqual({ alias: 1, group: 1, identify: 1, page: 2, screen: 1, track: 3 }),
      );
    }

    it('delivers every call type one by one to the short paths, text/plain across origins', { timeout: 60_000 }, async () => {
      const userId = uniqueName('next');
      await visit(userId, '');
      await expectCounted(userId);
      const mine = received.filter((r) => r.url !== '/v1/b');
      expect(mine.map((r) => r.url).sort()).toEqual(['/v1/a', '/v1/g', '/v1/i', '/v1/p', '/v1/p', '/v1/s', '/v1/t', '/v1/t', '/v1/t']);
      expect(new Set(mine.map((r) => r.contentType))).toEqual(new Set(['text/plain']));
      expect(new Set(mine.map((r) => r.origin))).toEqual(new Set([siteUrl]));
    });

    it('delivers batches to /v1/b with the batching strategy', { timeout: 60_000 }, async () => {
      received.length = 0;
      const userId = uniqueName('next-batch');
      await visit(userId, '?batching');
      await expectCounted(userId);
      expect(received.length).toBeGreaterThanOrEqual(3);
      expect(new Set(received.map((r) => r.url))).toEqual(new Set(['/v1/b']));
      expect(await stats('/v1/stats/summary?period=today')).toMatchObject({ pageviews: 6, events: 6, clicks: 2, bots: 0 });
    });
  },
);
