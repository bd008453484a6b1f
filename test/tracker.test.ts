import { readFileSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { createServer, get, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TallyError } from '../src/errors.js';
import { chooseEncoding, SCRIPT_CACHE_CONTROL as TRACKER_CACHE_CONTROL } from '../src/http/compressed-script.js';
import { buildTracker } from '../src/tracker/tracker-route.js';
import { startWorker, type Worker } from '../src/worker.js';
import { launchChromium, skipWithoutChromium } from './chromium.js';
import { eventually, openTestApp, type TestApp, uniqueName } from './helpers.js';

// The browser tracker: GET /t.js as served, then the script itself in Debian's Chromium against
// a Tally listening on a real socket — page views, SPA navigation, custom events, engagement on
// leaving, identify, client-side messageIds, and no storage unless the page allows it.

// Headless Chromium says "HeadlessChrome", which Tally rightly counts as a bot, apart from people.
const USER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36';

describe('GET /t.js', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await openTestApp('embedded');
  });
  afterAll(() => t.close());

  it('serves the script with a cache header and an ETag, and answers 304 to a matching If-None-Match', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/t.js' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/javascript; charset=utf-8');
    expect(res.headers['cache-control']).toBe(TRACKER_CACHE_CONTROL);
    expect(res.body).toContain('data-write-key');
    const etag = res.headers['etag'] as string;
    expect(etag).toMatch(/^"[\w-]+"$/);
    const again = await t.app.inject({ method: 'GET', url: '/t.js', headers: { 'if-none-match': `"other", ${etag}` } });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    const stale = await t.app.inject({ method: 'GET', url: '/t.js', headers: { 'if-none-match': '"other"' } });
    expect(stale.statusCode).toBe(200);
  });

  it('chooses br, then gzip, as Accept-Encoding allows', () => {
    expect(chooseEncoding('gzip, deflate, br, zstd')).toBe('br');
    expect(chooseEncoding('gzip, br;q=0')).toBe('gzip');
    expect(chooseEncoding('GZIP;q=0.5')).toBe('gzip');
    expect(chooseEncoding('*')).toBe('br');
    expect(chooseEncoding('*;q=0, gzip')).toBe('gzip');
    expect(chooseEncoding('deflate')).toBe('identity');
    expect(chooseEncoding(undefined)).toBe('identity');
    expect(chooseEncoding('br;q=0, gzip;q=0')).toBe('identity');
  });

  it('sends the minified script over the wire as br or gzip as asked, under 2 KB gzipped, each decoding to the same script', async () => {
    const source = readFileSync(new URL('../src/tracker/t.js', import.meta.url), 'utf8');
    const { minified } = buildTracker(source);
    // The minified script still parses.
    expect(() => new Function(minified)).not.toThrow();
    const origin = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const fetchRaw = (headers: Record<string, string>) =>
      new Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
        get(`${origin}/t.js`, { headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        }).on('error', reject);
      });
    const br = await fetchRaw({ 'accept-encoding': 'gzip, deflate, br' });
    const gz = await fetchRaw({ 'accept-encoding': 'gzip' });
    const plain = await fetchRaw({});
    for (const res of [br, gz, plain]) {
      expect(res.status).toBe(200);
      expect(res.headers['vary']).toBe('Accept-Encoding');
      expect(res.headers['cache-control']).toBe(TRACKER_CACHE_CONTROL);
      expect(Number(res.headers['content-length'])).toBe(res.body.length);
    }
    expect(br.headers['content-encoding']).toBe('br');
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(brotliDecompressSync(br.body).toString('utf8')).toBe(minified);
    expect(gunzipSync(gz.body).toString('utf8')).toBe(minified);
    expect(plain.body.toString('utf8')).toBe(minified);
    expect(gz.body.length).toBeLessThan(2048);
    expect(br.body.length).toBeLessThan(gz.body.length);
    expect(minified.length).toBeLessThan(source.length / 2);
    // Each encoding has its own ETag, and a browser revalidating it gets a 304.
    const etags = new Set([br, gz, plain].map((r) => r.headers['etag']));
    expect(etags.size).toBe(3);
    const revalidated = await fetchRaw({ 'accept-encoding': 'gzip', 'if-none-match': `W/${gz.headers['etag'] as string}` });
    expect(revalidated.status).toBe(304);
    expect(revalidated.body.length).toBe(0);
    console.log(
      `t.js bytes: raw ${Buffer.byteLength(source)}, minified ${plain.body.length}, gzip ${gz.body.length}, br ${br.body.length}`,
    );
  });

  it("accepts the tracker's beacon (text/plain, key in the body) without ids, but not a Segment message without ids", async () => {
    const beacon = (library: string) =>
      t.app.inject({
        method: 'POST',
        url: '/v1/batch',
        headers: { 'content-type': 'text/plain;charset=UTF-8' },
        payload: JSON.stringify({ writeKey: t.site.writeKey, batch: [{ type: 'page', context: { library: { name: library } } }] }),
      });
    expect((await beacon('tally.js')).statusCode).toBe(200);
    const segment = await beacon('analytics-node');
    expect(segment.statusCode).toBe(400);
    expect(segment.json().error).toMatchObject({ code: 'invalid_event', path: '/batch/0/userId' });
  });
});

/** The site under test: one HTML page for every path (an SPA), its options in the query. */
function pageHtml(tallyUrl: string, writeKey: string, query: URLSearchParams): string {
  const user = query.get('user');
  const storage = query.get('storage') === '1' ? ' data-storage="localStorage"' : '';
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Tally test shop</title>
<script>window.tally=window.tally||function(){(tally.q=tally.q||[]).push(arguments)};${user ? `tally('identify', ${JSON.stringify(user)});` : ''}</script>
<script defer src="${tallyUrl}/t.js" data-write-key="${writeKey}"${storage}></script>
<style>body{font:16px sans-serif;margin:2em}button{font-size:1.2em}</style>
</head><body>
<h1 id="title">Tally test shop</h1>
<button id="buy" onclick="tally.track('Product Clicked', {product_id: '42'})">Buy product 42</button>
<a id="next" href="/products/42" onclick="event.preventDefault(); history.pushState({}, '', '/products/42'); document.getElementById('title').textContent = 'Product 42'">See product 42</a>
</body></html>`;
}

describe.skipIf(skipWithoutChromium('tracker.test.ts'))('browser tracker in Chromium', () => {
  let t: TestApp;
  let worker: Worker;
  let browser: Browser;
  let site: Server;
  let siteUrl: string;
  let tallyUrl: string;
  /** /v1/batch bodies as the server received them. */
  const received: { writeKey?: string; batch: Record<string, unknown>[] }[] = [];
  const agents: (string | undefined)[] = [];
  /** How many of the next /v1/batch requests answer 503. */
  let failNext = 0;

  beforeAll(async () => {
    t = await openTestApp('external', { TALLY_COLLECT_RATE_LIMIT: '0' });
    t.app.addHook('preHandler', async (request) => {
      if (request.url === '/v1/batch') {
        received.push(request.body as (typeof received)[number]);
        agents.push(request.headers['user-agent']);
        if (failNext > 0) {
          failNext -= 1;
          throw new TallyError('unavailable', 'Failing on purpose for the retry test.');
        }
      }
    });
    worker = startWorker(t.ctx);
    tallyUrl = await t.app.listen({ port: 0, host: '127.0.0.1' });
    site = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname === '/favicon.ico') return res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(pageHtml(tallyUrl, t.site.writeKey, url.searchParams));
    });
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
    siteUrl = `http://localhost:${(site.address() as AddressInfo).port}`;
    // Browser-wide, so beacons sent while a page unloads carry it too.
    browser = await launchChromium([`--user-agent=${USER_AGENT}`]);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => site?.close(resolve));
    await worker?.stop();
    await t?.close();
  });

  const stats = async (userId: string) => {
    const res = await t.app.inject({ method: 'GET', url: `/v1/stats/users/${userId}`, headers: { authorization: t.bearer } });
    expect(res.statusCode).toBe(200);
    return res.json() as { pageviews: number; clicks: number; events: Record<string, number> };
  };

  it('counts page views, SPA navigation, clicks and engaged time of an identified visitor, each once', { timeout: 60_000 }, async () => {
    const userId = uniqueName('visitor');
    const page = await browser.newPage();
    await page.goto(`${siteUrl}/?user=${userId}&storage=1`);
    await page.waitForFunction(() => (window as unknown as { tally?: { loaded?: boolean } }).tally?.loaded === true);

    await mkdir('test-results', { recursive: true });
    await page.screenshot({ path: 'test-results/tracker-page.png' });
    expect((await stat('test-results/tracker-page.png')).size).toBeGreaterThan(1000);
    expect(await page.textContent('#title')).toBe('Tally test shop');

    await page.waitForTimeout(200);
    await page.click('#buy');
    await page.click('#next');
    expect(await page.textContent('#title')).toBe('Product 42');
    await page.waitForTimeout(200);
    const anonymousId = await page.evaluate(() => localStorage.getItem('tally_aid'));
    expect(anonymousId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // Leaving: the page is hidden, then unloaded; the last engagement goes out as a beacon.
    await page.goto('about:blank');
    await page.close();

    const want = { pageviews: 2, clicks: 1, events: { 'Product Clicked': 1, 'Page Engaged': 2 } };
    await eventually(async () => expect(await stats(userId)).toMatchObject(want), 15_000, 100);

    const mine = received.flatMap((body) => body.batch).filter((m) => m['userId'] === userId);
    expect(received.every((body) => body.writeKey === t.site.writeKey)).toBe(true);
    expect(new Set(agents)).toEqual(new Set([USER_AGENT]));
    expect(mine.map((m) => m['type']).sort()).toEqual(['identify', 'page', 'page', 'track', 'track', 'track']);
    expect(mine.every((m) => m['anonymousId'] === anonymousId)).toBe(true);
    const paths = mine.filter((m) => m['type'] === 'page').map((m) => (m['properties'] as { path: string }).path);
    expect(paths).toEqual(['/', '/products/42']);
    const engaged = mine.filter((m) => m['event'] === 'Page Engaged').map((m) => m['properties'] as { engaged_ms: number; path: string });
    expect(engaged.map((e) => e.path)).toEqual(['/', '/products/42']);
    for (const e of engaged) expect(e.engaged_ms).toBeGreaterThanOrEqual(150);
    const ids = mine.map((m) => m['messageId'] as string);
    expect(new Set(ids).size).toBe(ids.length);

    // A retry of everything (same messageIds), as after a lost answer: nothing counts twice.
    const retry = await t.app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { 'content-type': 'text/plain' },
      payload: JSON.stringify({ writeKey: t.site.writeKey, batch: mine }),
    });
    expect(retry.statusCode).toBe(200);
    await eventually(async () => {
      for (let shard = 0; shard < t.ctx.config.streamShards; shard++)
        expect(await t.ctx.realtime.queue.length(t.ctx.keys.stream(shard))).toBe(0);
    });
    expect(await stats(userId)).toMatchObject(want);
  });

  it('stores nothing and sends no id unless the page allows storage; tally.track works after load', { timeout: 60_000 }, async () => {
    const before = received.length;
    const page = await browser.newPage();
    await page.goto(`${siteUrl}/?storage=0`);
    await page.waitForFunction(() => (window as unknown as { tally?: { loaded?: boolean } }).tally?.loaded === true);
    await page.evaluate(() =>
      (window as unknown as { tally: { track(e: string, p: object): void } }).tally.track('Newsletter Joined', { plan: 'free' }),
    );
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    await page.goto('about:blank');
    await page.close();

    const sent = await eventually(async () => {
      const messages = received.slice(before).flatMap((body) => body.batch);
      expect(messages.map((m) => m['event'] ?? m['type']).sort()).toEqual(['Newsletter Joined', 'Page Engaged', 'page']);
      return messages;
    });
    for (const m of sent) {
      expect(m['anonymousId']).toBeUndefined();
      expect(m['userId']).toBeUndefined();
      expect(m['context']).toMatchObject({ library: { name: 'tally.js' } });
    }
  });

  it('falls back to fetch when the beacon is refused, and retries a failed batch with the same messageIds', {
    timeout: 60_000,
  }, async () => {
    const userId = uniqueName('retry');
    const before = received.length;
    const page = await browser.newPage();
    await page.addInitScript(() => {
      navigator.sendBeacon = () => false;
    });
    failNext = 1;
    await page.goto(`${siteUrl}/?user=${userId}`);
    await page.waitForFunction(() => (window as unknown as { tally?: { loaded?: boolean } }).tally?.loaded === true);
    await page.click('#buy');
    await page.evaluate(() => (window as unknown as { tally: { flush(): void } }).tally.flush());
    // The first batch gets 503; its retry follows two seconds later, same messages, same ids.
    const ids = (body: (typeof received)[number]) => body.batch.map((m) => m['messageId']);
    await eventually(
      async () => {
        const [failed, ...later] = received.slice(before);
        expect(failed).toBeDefined();
        expect(later.map(ids)).toContainEqual(ids(failed!));
      },
      15_000,
      100,
    );
    await eventually(
      async () => expect(await stats(userId)).toMatchObject({ pageviews: 1, clicks: 1, events: { 'Product Clicked': 1 } }),
      15_000,
      100,
    );
    await page.close();
  });
});
