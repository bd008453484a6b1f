import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CollectedMessage } from '../src/collect/message.js';
import type { Counted } from '../src/process/aggregate.js';
import { createEnricher, createSaltSource } from '../src/process/enrich.js';
import { createEventRows } from '../src/process/event-rows.js';
import { createEventSink } from '../src/process/event-sink.js';
import { startWorker, type Worker } from '../src/worker.js';
import { eventually, openTestApp, type TestApp } from './helpers.js';
import { storedEvents } from './stored-events.js';

// From the collector to the columnar store, in both modes: every accepted message is stored
// once (client retries and entries delivered again included), with its enriched columns.

describe.each(['external', 'embedded'] as const)('event store behind the pipeline (%s)', (mode) => {
  let t: TestApp;
  let worker: Worker;
  beforeAll(async () => {
    t = await openTestApp(mode);
    worker = startWorker(t.ctx);
  });
  afterAll(async () => {
    await worker.stop();
    await t.close();
  });

  const page = (path: string) => ({ page: { path, url: `https://shop.example${path}`, referrer: 'https://www.google.com/search' } });

  it('stores every message once, with its columns, however often it is sent', async () => {
    const batch = [
      { type: 'page', anonymousId: 'anon-1', messageId: 'e1', timestamp: '2026-01-05T10:00:00Z', context: page('/pricing') },
      {
        type: 'track',
        userId: 'user-1',
        event: 'Product Clicked',
        properties: { product_id: 'sku-9' },
        messageId: 'e2',
        timestamp: '2026-01-06T23:59:59Z',
      },
      { type: 'identify', userId: 'user-1', messageId: 'e3', traits: { plan: 'pro' } },
      {
        type: 'track',
        userId: 'user-1',
        event: 'Page Engaged',
        properties: { engaged_ms: 4200 },
        messageId: 'e4',
        context: page('/pricing'),
      },
    ];
    for (let i = 0; i < 3; i++) {
      const res = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: t.basic }, payload: { batch } });
      expect(res.statusCode).toBe(200);
    }
    const rows = await eventually(async () => {
      const r = await storedEvents(
        t.ctx.events,
        t.site.id,
        'SELECT message_id, type, kind, name, visitor, user_id, page, referrer_host, product, engaged_ms, ts FROM events ORDER BY message_id',
      );
      expect(r).toHaveLength(4);
      return r;
    });
    expect(rows.map((r) => ({ ...r, engaged_ms: Number(r['engaged_ms']), ts: undefined }))).toEqual([
      {
        message_id: 'e1',
        type: 'page',
        kind: 'pageview',
        name: null,
        visitor: 'anon-1',
        user_id: null,
        page: '/pricing',
        referrer_host: 'google.com',
        product: null,
        engaged_ms: 0,
        ts: undefined,
      },
      {
        message_id: 'e2',
        type: 'track',
        kind: 'event',
        name: 'Product Clicked',
        visitor: 'user-1',
        user_id: 'user-1',
        page: null,
        referrer_host: null,
        product: 'sku-9',
        engaged_ms: 0,
        ts: undefined,
      },
      {
        message_id: 'e3',
        type: 'identify',
        kind: 'other',
        name: null,
        visitor: 'user-1',
        user_id: 'user-1',
        page: null,
        referrer_host: null,
        product: null,
        engaged_ms: 0,
        ts: undefined,
      },
      {
        message_id: 'e4',
        type: 'track',
        kind: 'engagement',
        name: null,
        visitor: 'user-1',
        user_id: 'user-1',
        page: '/pricing',
        // Session-level: e3 (identify, sent just before it) started user-1's session, without a referrer.
        referrer_host: null,
        product: null,
        engaged_ms: 4200,
        ts: undefined,
      },
    ]);
    expect((rows[0]!['ts'] as Date).toISOString()).toBe('2026-01-05T10:00:00.000Z');
  });

  it('writes nothing again for entries delivered again', async () => {
    const enrich = createEnricher(
      createSaltSource((k, v, ttl) => t.ctx.realtime.coordination.getOrSet(k, v, ttl), t.ctx.keys.salt),
      t.ctx.geo,
    );
    const at = new Date().toISOString();
    const messages: CollectedMessage[] = [1, 2, 3].map((n) => ({
      type: 'track',
      event: 'Redelivered',
      userId: 'r',
      messageId: `again-${n}`,
      properties: {},
      traits: {},
      context: {},
      timestamp: at,
      receivedAt: at,
    }));
    const enriched = await enrich(t.site.id, messages);
    const counted: Counted[] = messages.map((message, i) => ({ message, enriched: enriched[i]! }));
    const sink = createEventSink(t.ctx.events, createEventRows({ sessions: t.ctx.realtime.sessions }));
    const batch = { redelivered: new Set([t.site.id]), claimableAt: performance.now() + 60_000 };
    // The first delivery wrote two of them before the crash; the redelivery brings all three, twice.
    await sink(new Map([[t.site.id, counted.slice(0, 2)]]), { ...batch, redelivered: new Set() });
    await sink(new Map([[t.site.id, counted]]), batch);
    await sink(new Map([[t.site.id, counted]]), batch);
    const rows = await storedEvents(t.ctx.events, t.site.id, "SELECT message_id FROM events WHERE name = 'Redelivered' ORDER BY 1");
    expect(rows.map((r) => r['message_id'])).toEqual(['again-1', 'again-2', 'again-3']);
  });
});
