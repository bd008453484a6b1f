import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorker, type Worker } from '../src/worker.js';
import { DATABASE_URL, eventually, openTestApp, REDIS_URL, type TestApp } from './helpers.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

// Outages of the real servers, cut at a TCP proxy: PostgreSQL down must not stop collection or
// counting (the write-behind catches up after); Redis down gets a clear 503, then recovers.

const click = (user: string, messageId: string) => ({
  type: 'track',
  userId: user,
  event: 'Product Clicked',
  properties: { product_id: 'p1' },
  messageId,
});

describe('PostgreSQL outage', () => {
  let proxy: TcpProxy;
  let t: TestApp;
  let worker: Worker;
  beforeAll(async () => {
    proxy = await startTcpProxy(Number(new URL(DATABASE_URL).port || 5432));
    const url = new URL(DATABASE_URL);
    url.port = String(proxy.port);
    t = await openTestApp('external', { DATABASE_URL: url.toString() });
    worker = startWorker(t.ctx);
  });
  afterAll(async () => {
    proxy.restore();
    await worker.stop();
    await t.close();
    await proxy.close();
  });

  const post = (batch: unknown[]) =>
    t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: t.basic }, payload: { batch } });
  const userStats = async () => (await t.app.inject({ url: '/v1/stats/users/u1', headers: { authorization: t.bearer } })).json();

  it('keeps collecting and counting, and the durable counters catch up afterwards', async () => {
    expect((await post([click('u1', 'a')])).statusCode).toBe(200);
    await eventually(async () => expect(await userStats()).toMatchObject({ clicks: 1 }));
    await worker.flusher.flushAll();

    proxy.cut();
    for (let i = 0; i < 5; i++) expect((await post([click('u1', `b${i}`)])).statusCode).toBe(200);
    await eventually(async () => expect(await userStats()).toMatchObject({ clicks: 6 }));
    // The site list cannot be read either: the flusher goes on with the sites it knows, and
    // the flush of this one fails.
    await expect(worker.flusher.flushAll()).rejects.toThrow(/analytics:/);
    // The batch stays in flight, whole: taking again names it unchanged.
    const inflight = await t.ctx.realtime.buffers.take(t.ctx.keys.analyticsBuffer(t.site.id), 0);
    expect(inflight?.deltas[inflight.fields.indexOf('u:u1|clicks')]).toBe(5);

    proxy.restore();
    await eventually(
      async () => {
        await worker.flusher.flushAll();
        const rows = await t.ctx.db.query<{ value: number }>("SELECT value FROM counters WHERE site_id = $1 AND name = 'u:u1|clicks'", [
          t.site.id,
        ]);
        expect(rows.rows[0]?.value).toBe(6);
      },
      20_000,
      200,
    );
  });
});

describe('Redis outage', () => {
  let proxy: TcpProxy;
  let t: TestApp;
  beforeAll(async () => {
    proxy = await startTcpProxy(Number(new URL(REDIS_URL).port || 6379));
    t = await openTestApp('external', { REDIS_URL: `redis://127.0.0.1:${proxy.port}` });
  });
  afterAll(async () => {
    proxy.restore();
    await t.close();
    await proxy.close();
  });

  it('answers 503 unavailable with Retry-After while Redis is unreachable, and accepts again after', async () => {
    const post = () =>
      t.app.inject({
        method: 'POST',
        url: '/v1/batch',
        headers: { authorization: t.basic },
        payload: { batch: [click('u2', `m${Math.random()}`)] },
      });
    expect((await post()).statusCode).toBe(200);
    proxy.cut();
    const down = await post();
    expect(down.statusCode).toBe(503);
    expect(down.json().error.code).toBe('unavailable');
    expect(Number(down.headers['retry-after'])).toBeGreaterThan(0);
    const ready = await t.app.inject({ url: '/readyz' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toMatchObject({ ready: false, redis: 'down', postgres: 'ok' });
    proxy.restore();
    await eventually(async () => expect((await post()).statusCode).toBe(200), 20_000, 200);
  });
});
