import { once } from 'node:events';
import { type IncomingMessage, request } from 'node:http';
import { createRequire } from 'node:module';
import { createGzip, gzipSync } from 'node:zlib';
import Analytics from '@rudderstack/rudder-sdk-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorker, type Worker } from '../src/worker.js';
import { eventually, openTestApp, type TestApp, uniqueName } from './helpers.js';
import { storedEvents } from './stored-events.js';

// RudderStack's Node SDK with its defaults (it gzips every batch) against a Tally listening on a
// real socket: every track, page, identify and alias counted exactly; and a gzip bomb over the
// same socket refused with 413 as soon as it inflates past the limit.

const RUDDER_VERSION = (createRequire(import.meta.url)('@rudderstack/rudder-sdk-node/package.json') as { version: string }).version;

describe.each(['external', 'embedded'] as const)('RudderStack Node SDK against Tally (%s)', (mode) => {
  let t: TestApp;
  let worker: Worker;
  let url: string;
  /** Content-Encoding of each collect request, as received. */
  const encodings: (string | undefined)[] = [];

  beforeAll(async () => {
    t = await openTestApp(mode, { TALLY_COLLECT_RATE_LIMIT: '0' });
    t.app.addHook('onRequest', async (request) => {
      if (request.url === '/v1/batch') encodings.push(request.headers['content-encoding']);
    });
    worker = startWorker(t.ctx);
    url = await t.app.listen({ port: 0, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await worker?.stop();
    await t?.close();
  });

  const get = async (path: string) => {
    const res = await fetch(url + path, { headers: { authorization: t.bearer } });
    expect(res.status).toBe(200);
    return res.json();
  };

  it(`counts every message the SDK sends (version ${RUDDER_VERSION}), gzipped`, { timeout: 60_000 }, async () => {
    const run = uniqueName('r');
    // Defaults, except flushAt: small batches, so several gzipped requests go out.
    const client = new Analytics(t.site.writeKey, { dataPlaneUrl: url, flushAt: 15, logLevel: 'error' });
    const delivered: Promise<void>[] = [];
    const callback = () => {
      let settle!: (err?: unknown) => void;
      delivered.push(new Promise<void>((resolve, reject) => (settle = (err) => (err ? reject(err) : resolve()))));
      return settle as () => void;
    };
    const users = Array.from({ length: 4 }, (_, i) => `${run}-user-${i}`);
    for (const [i, userId] of users.entries()) {
      client.identify({ userId, traits: { plan: 'pro' } }, callback());
      // User i: i + 1 page views, 2i Signed Up events, and one product click each.
      for (let p = 0; p <= i; p++) client.page({ userId, name: 'Pricing', properties: { path: `/pricing/${p}` } }, callback());
      for (let e = 0; e < 2 * i; e++) client.track({ userId, event: 'Signed Up' }, callback());
      client.track({ userId, event: 'Product Clicked', properties: { product_id: `${run}-sku` } }, callback());
    }
    client.alias({ userId: users[0]!, previousId: `${run}-anon` }, callback());
    await client.flush();
    // Each callback settles when its batch was answered; a refused batch rejects.
    await Promise.all(delivered);
    expect(delivered.length).toBe(4 + 10 + 12 + 4 + 1);
    expect(encodings.length).toBeGreaterThanOrEqual(2);
    expect(new Set(encodings)).toEqual(new Set(['gzip']));

    await eventually(
      async () => {
        for (const [i, userId] of users.entries()) {
          const events: Record<string, number> = { 'Product Clicked': 1 };
          if (i > 0) events['Signed Up'] = 2 * i;
          expect(await get(`/v1/stats/users/${userId}`)).toEqual({ userId, events, pageviews: i + 1, clicks: 1, productsClicked: 1 });
        }
        expect(await get(`/v1/stats/products/${run}-sku`)).toEqual({ productId: `${run}-sku`, clicks: 4, uniqueUsers: 4 });
        expect(await get('/v1/stats/summary?period=today')).toMatchObject({ visitors: 4, pageviews: 10, events: 16, clicks: 4, bots: 0 });
      },
      20_000,
      100,
    );
    // identify and alias count in no figure: the event store holds them (written after the count).
    await eventually(async () => {
      const raw = await storedEvents(t.ctx.events, t.site.id, 'SELECT type, count(*) AS n FROM events GROUP BY type ORDER BY type');
      expect(raw.map((r) => [r['type'], Number(r['n'])])).toEqual([
        ['alias', 1],
        ['identify', 4],
        ['page', 10],
        ['track', 16],
      ]);
    });
  });

  it('refuses a gzip bomb (50 MB from about 50 KB) with 413, and keeps serving', { timeout: 30_000 }, async () => {
    const bomb = gzipSync(Buffer.alloc(50 * 1024 * 1024, ' '));
    expect(bomb.length).toBeLessThan(100 * 1024);
    const res = await fetch(`${url}/v1/batch`, {
      method: 'POST',
      headers: { authorization: t.basic, 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: bomb,
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('payload_too_large');
    const after = await fetch(`${url}/v1/batch`, {
      method: 'POST',
      headers: { authorization: t.basic, 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: gzipSync(JSON.stringify({ batch: [{ type: 'page', userId: 'after-bomb' }] })),
    });
    expect(after.status).toBe(200);
  });

  it('answers 413 to an endless gzip stream while it is still being sent: it is inflated only up to the limit', {
    timeout: 30_000,
  }, async () => {
    const GIGABYTE = 1024 ** 3;
    const zip = createGzip();
    const req = request(`${url}/v1/batch`, {
      method: 'POST',
      headers: { authorization: t.basic, 'content-type': 'application/json', 'content-encoding': 'gzip' },
    });
    req.on('error', () => {}); // the socket is cut below, mid-upload
    zip.pipe(req);
    const answer = once(req, 'response') as Promise<[IncomingMessage]>;
    let answered = false;
    let fed = 0;
    void answer.then(() => (answered = true));
    const chunk = Buffer.alloc(1024 * 1024, ' ');
    while (!answered && fed < GIGABYTE) {
      if (!zip.write(chunk)) await Promise.race([once(zip, 'drain'), answer]);
      fed += chunk.length;
    }
    const [res] = await answer;
    expect(res.statusCode).toBe(413);
    // Had Tally inflated the whole body before answering, the whole gigabyte would have gone out.
    expect(fed).toBeLessThan(GIGABYTE / 4);
    req.destroy();
    zip.destroy();
  });
});
