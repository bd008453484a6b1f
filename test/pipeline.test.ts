import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { openContext } from '../src/context.js';
import { startProcessor } from '../src/process/processor.js';
import { startWorker, type Worker } from '../src/worker.js';
import { eventually, openTestApp, silentLog, type TestApp, uniqueName } from './helpers.js';
import { startTestCluster } from './redis-cluster.js';

// Collect → stream → processor → counters → stats, on both real-time layers: exact, deduplicated,
// and durable (the flusher's PostgreSQL rows equal the hot values).

const clicks = (user: string, product: string, messageId: string) => ({
  type: 'track',
  userId: user,
  event: 'Product Clicked',
  properties: { product_id: product },
  messageId,
});

describe.each(['external', 'embedded'] as const)('pipeline (%s)', (mode) => {
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

  const stats = async (url: string) => (await t.app.inject({ url, headers: { authorization: t.bearer } })).json();
  const batch = (messages: unknown[]) =>
    t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: t.basic }, payload: { batch: messages } });

  it('counts clicks, page views and events per user and per product, each messageId once', async () => {
    const messages = [
      clicks('alice', 'p1', 'm1'),
      clicks('alice', 'p1', 'm2'),
      clicks('alice', 'p2', 'm3'),
      clicks('bob', 'p1', 'm4'),
      clicks('bob', 'p1', 'm4'), // retried inside the batch
      { type: 'page', userId: 'alice', name: 'Home', messageId: 'm5' },
      { type: 'track', userId: 'alice', event: 'Signed Up', messageId: 'm6' },
    ];
    expect((await batch(messages)).statusCode).toBe(200);
    expect((await batch(messages.slice(0, 3))).statusCode).toBe(200); // the SDK retried a request
    await eventually(async () =>
      expect(await stats('/v1/stats/users/alice')).toEqual({
        userId: 'alice',
        events: { 'Product Clicked': 3, 'Signed Up': 1 },
        pageviews: 1,
        clicks: 3,
        productsClicked: 2,
      }),
    );
    expect(await stats('/v1/stats/users/bob')).toMatchObject({ clicks: 1, productsClicked: 1 });
    expect(await stats('/v1/stats/products/p1')).toEqual({ productId: 'p1', clicks: 3, uniqueUsers: 2 });
    expect(await stats('/v1/stats/products/p2')).toEqual({ productId: 'p2', clicks: 1, uniqueUsers: 1 });
    expect(await stats('/user/alice/clicks')).toBe(3);
    expect(await stats('/v1/stats/products/never')).toEqual({ productId: 'never', clicks: 0, uniqueUsers: 0 });
  });

  it('keeps ids that look like key syntax apart', async () => {
    const messages = [clicks('a:b', 'x|y', 'k1'), clicks('a', 'b:x', 'k2'), clicks('{a}', '%41', 'k3')];
    expect((await batch(messages)).statusCode).toBe(200);
    await eventually(async () => expect(await stats('/v1/stats/users/%7Ba%7D')).toMatchObject({ clicks: 1 }));
    expect(await stats('/v1/stats/users/a%3Ab')).toMatchObject({ clicks: 1, productsClicked: 1 });
    expect(await stats('/v1/stats/users/a')).toMatchObject({ clicks: 1 });
    expect(await stats('/v1/stats/products/x%7Cy')).toMatchObject({ clicks: 1, uniqueUsers: 1 });
    expect(await stats('/v1/stats/products/%2541')).toMatchObject({ clicks: 1 });
  });

  it('writes every counter behind to PostgreSQL, equal to the hot value', async () => {
    await eventually(async () => expect(await stats('/v1/stats/users/alice')).toMatchObject({ clicks: 3 }));
    await worker.flusher.flushAll();
    const rows = await t.ctx.db.query<{ name: string; value: number }>('SELECT name, value FROM counters WHERE site_id = $1', [t.site.id]);
    const durable = Object.fromEntries(rows.rows.map((r) => [r.name, r.value]));
    expect(durable).toMatchObject({
      'u:alice|clicks': 3,
      'u:alice|products': 2,
      'u:alice|pageviews': 1,
      'ue:alice|Signed Up': 1,
      'p:p1|clicks': 3,
      'p:p1|users': 2,
      'pu:p1|alice': 2,
      'pu:p1|bob': 1,
    });
  });
});

describe('on a Redis Cluster', () => {
  it('collects, processes and flushes with every script inside one hash slot', async () => {
    const cluster = await startTestCluster();
    const nodes = cluster.nodes.map((n) => `${n.host}:${n.port}`).join(',');
    const t = await openTestApp('external', { REDIS_CLUSTER_NODES: nodes });
    const worker = startWorker(t.ctx);
    try {
      const messages = [clicks('ann', 'p1', 'c1'), clicks('ann', 'p1', 'c2'), clicks('ben', 'p1', 'c3'), clicks('ben', 'p1', 'c3')];
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/batch',
        headers: { authorization: t.basic },
        payload: { batch: messages },
      });
      expect(res.statusCode).toBe(200);
      const stats = async (url: string) => (await t.app.inject({ url, headers: { authorization: t.bearer } })).json();
      await eventually(async () => expect(await stats('/v1/stats/products/p1')).toEqual({ productId: 'p1', clicks: 3, uniqueUsers: 2 }));
      await worker.flusher.flushAll();
      const rows = await t.ctx.db.query<{ value: number }>("SELECT value FROM counters WHERE site_id = $1 AND name = 'p:p1|clicks'", [
        t.site.id,
      ]);
      expect(rows.rows[0]?.value).toBe(3);
    } finally {
      await worker.stop();
      await t.close();
      await cluster.stop();
    }
  });
});

describe('redelivery', () => {
  it('counts an entry once when a dead consumer left it unacknowledged and another claims it', async () => {
    const t = await openTestApp('external', { TALLY_STREAM_SHARDS: '1' });
    try {
      const stream = t.ctx.keys.stream(0);
      const dead = await t.ctx.realtime.queue.openConsumer(stream, t.ctx.keys.streamGroup, 'dead');
      await t.app.inject({
        method: 'POST',
        url: '/v1/batch',
        headers: { authorization: t.basic },
        payload: { batch: [clicks('c', 'p', 'r1')] },
      });
      // A consumer reads the entry, counts it, and dies before the ack.
      expect(await dead.read(10, 100)).toHaveLength(1);
      await dead.close();
      const counted = startProcessor({ ...t.ctx, log: silentLog }, { shards: 1, claimIdleMs: 100, blockMs: 50 });
      const stats = async () => (await t.app.inject({ url: '/v1/stats/users/c', headers: { authorization: t.bearer } })).json();
      await eventually(async () => expect(await stats()).toMatchObject({ clicks: 1 }));
      await eventually(async () => expect(await t.ctx.realtime.queue.length(stream)).toBe(0));
      await counted.stop();
      expect(await stats()).toMatchObject({ clicks: 1 });
    } finally {
      await t.close();
    }
  });
});

describe('embedded restart', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tally-restart-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('brings the same counts back after a graceful stop and start', async () => {
    const config = loadConfig({ DATA_DIR: dir, TALLY_PG_SCHEMA: uniqueName('r'), LOG_LEVEL: 'silent' });
    const first = await openContext(config, silentLog);
    const site = await first.sites.create('restart');
    const app = await buildApp(first, { logger: false });
    const worker = startWorker(first);
    const basic = 'Basic ' + Buffer.from(`${site.writeKey}:`).toString('base64');
    for (const [i, product] of ['p1', 'p1', 'p2'].entries()) {
      await app.inject({
        method: 'POST',
        url: '/v1/batch',
        headers: { authorization: basic },
        payload: { batch: [clicks('u', product, `m${i}`)] },
      });
    }
    // Stop as SIGTERM does: no more requests, drain the in-process queue, final flush, close.
    await app.close();
    await worker.stop();
    await first.close();

    const second = await openContext(config, silentLog);
    const app2 = await buildApp(second, { logger: false });
    const read = async (url: string) => (await app2.inject({ url, headers: { authorization: `Bearer ${site.secretKey}` } })).json();
    expect(await read('/v1/stats/users/u')).toMatchObject({ clicks: 3, productsClicked: 2 });
    expect(await read('/v1/stats/products/p1')).toMatchObject({ clicks: 2, uniqueUsers: 1 });
    // The same user clicking p1 again is not a new unique user: the pairs came back too.
    const worker2 = startWorker(second);
    await app2.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { authorization: basic },
      payload: { batch: [clicks('u', 'p1', 'm9')] },
    });
    await eventually(async () => expect(await read('/v1/stats/products/p1')).toMatchObject({ clicks: 3, uniqueUsers: 1 }));
    await app2.close();
    await worker2.stop();
    await second.close();
  });
});
