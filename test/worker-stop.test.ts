import { afterEach, describe, expect, it } from 'vitest';
import { startWorker } from '../src/worker.js';
import { eventually, type Mode, openTestApp, type TestApp } from './helpers.js';

// Stopping a worker ends its loops' waits (a blocking stream read, an interval) instead of
// sleeping them out: a deploy or a test waits for work in progress only.

describe.each(['external', 'embedded'] as Mode[])('worker.stop (%s)', (mode) => {
  let t: TestApp | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('resolves within a second, drain and final flush included', async () => {
    t = await openTestApp(mode);
    const worker = startWorker(t.ctx);
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { authorization: t.basic },
      payload: { batch: [{ type: 'track', userId: 'u1', event: 'Product Clicked', properties: { product_id: 'p1' }, messageId: 'm1' }] },
    });
    expect(response.statusCode).toBe(200);
    // Redis keeps its queue across a stop: there the click is counted before; the embedded
    // queue is drained by the stop itself.
    if (mode === 'external') {
      await eventually(async () => {
        const stats = await t!.app.inject({ url: '/v1/stats/users/u1', headers: { authorization: t!.bearer } });
        expect(stats.json()).toMatchObject({ clicks: 1 });
      });
    }
    const started = performance.now();
    await worker.stop();
    expect(performance.now() - started).toBeLessThan(1000);
    // The final flush ran: the click is in PostgreSQL.
    const rows = await t.ctx.db.query<{ value: number }>("SELECT value FROM counters WHERE site_id = $1 AND name = 'u:u1|clicks'", [
      t.site.id,
    ]);
    expect(rows.rows[0]?.value).toBe(1);
  });
});
