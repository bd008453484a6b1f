import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { createMetrics } from '../src/ops/metrics.js';
import { startWorker, type Worker } from '../src/worker.js';
import { eventually, openTestContext, type TestContext } from './helpers.js';

// Health, readiness and the Prometheus figures operators alert on.

function metric(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('operations routes', () => {
  let t: TestContext;
  let worker: Worker;
  let app: Awaited<ReturnType<typeof buildApp>>;
  let basic: string;
  beforeAll(async () => {
    t = await openTestContext('external');
    const metrics = createMetrics();
    worker = startWorker(t.ctx, metrics);
    app = await buildApp(t.ctx, { metrics, flusher: worker.flusher, logger: false });
    const site = await t.ctx.sites.create('ops');
    basic = 'Basic ' + Buffer.from(`${site.writeKey}:`).toString('base64');
  });
  afterAll(async () => {
    await app.close();
    await worker.stop();
    await t.close();
  });

  it('reports liveness and readiness', async () => {
    expect((await app.inject({ url: '/healthz' })).json()).toEqual({ status: 'ok' });
    const ready = await app.inject({ url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ ready: true, redis: 'ok', postgres: 'ok', migrations: 'ok' });
  });

  it('exports ingest, processing, duplicates, backlog, flush lag and request latency', async () => {
    const batch = [1, 2, 3].map((n) => ({ type: 'page', userId: 'u', messageId: `m${n % 2}` }));
    expect((await app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basic }, payload: { batch } })).statusCode).toBe(
      200,
    );
    await eventually(async () => {
      const text = (await app.inject({ url: '/metrics' })).body;
      expect(metric(text, 'tally_ingested_events_total')).toBe(3);
      expect(metric(text, 'tally_processed_events_total')).toBe(3);
      expect(metric(text, 'tally_duplicate_events_total')).toBe(1);
      expect(metric(text, 'tally_stream_backlog')).toBe(0);
    });
    const res = await app.inject({ url: '/metrics' });
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(metric(res.body, 'tally_flush_lag_seconds')).toBeGreaterThanOrEqual(0);
    expect(res.body).toMatch(/tally_http_request_duration_seconds_count\{method="POST",route="\/v1\/batch",status="200"\} 1/);
  });

  it('serves only operations routes in a worker process', async () => {
    const ops = await buildApp(t.ctx, { routes: 'ops', logger: false });
    expect((await ops.inject({ url: '/healthz' })).statusCode).toBe(200);
    expect((await ops.inject({ method: 'POST', url: '/v1/batch', payload: {} })).statusCode).toBe(404);
    await ops.close();
  });
});
