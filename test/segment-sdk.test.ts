import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Analytics } from '@segment/analytics-node';
import { afterAll, describe, expect, it } from 'vitest';
import { DATABASE_URL, dropTestData, eventually, REDIS_URL, testConfig, uniqueName } from './helpers.js';
import { type ServerProcess as Server, startServerProcess as startServer, stopServerProcess as stopServer } from './server-process.js';

// Acceptance from outside: a real `tally serve` process, the unmodified Segment SDK pointed at it
// with `host`, a few thousand events, a re-sent batch, exact counts; then SIGTERM, and (embedded)
// a restart that brings the same counts back.

/** A deterministic mix: clicks of 40 users on 25 products, and page views. */
function workload(n: number) {
  const events: { kind: 'click' | 'page'; userId: string; productId: string; messageId: string }[] = [];
  let seed = 7;
  const next = (mod: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % mod;
  };
  for (let i = 0; i < n; i++) {
    events.push({
      kind: next(3) === 0 ? 'page' : 'click',
      userId: `user-${next(40)}`,
      productId: `prod-${next(25)}`,
      messageId: `msg-${i}`,
    });
  }
  return events;
}

function expected(events: ReturnType<typeof workload>) {
  const users = new Map<string, { clicks: number; pageviews: number; products: Set<string> }>();
  const products = new Map<string, { clicks: number; users: Set<string> }>();
  for (const e of events) {
    const u = users.get(e.userId) ?? { clicks: 0, pageviews: 0, products: new Set<string>() };
    users.set(e.userId, u);
    if (e.kind === 'page') {
      u.pageviews += 1;
      continue;
    }
    u.clicks += 1;
    u.products.add(e.productId);
    const p = products.get(e.productId) ?? { clicks: 0, users: new Set<string>() };
    products.set(e.productId, p);
    p.clicks += 1;
    p.users.add(e.userId);
  }
  return { users, products };
}

async function send(server: Server, events: ReturnType<typeof workload>): Promise<void> {
  const analytics = new Analytics({ writeKey: server.writeKey, host: server.url, flushAt: 100, flushInterval: 200 });
  const failures: unknown[] = [];
  analytics.on('error', (err) => failures.push(err));
  for (const e of events) {
    if (e.kind === 'page') analytics.page({ userId: e.userId, name: 'Product list', messageId: e.messageId });
    else analytics.track({ userId: e.userId, event: 'Product Clicked', properties: { product_id: e.productId }, messageId: e.messageId });
  }
  await analytics.closeAndFlush({ timeout: 30_000 });
  expect(failures).toEqual([]);
}

async function checkCounts(server: Server, events: ReturnType<typeof workload>): Promise<void> {
  const want = expected(events);
  const get = async (path: string) => {
    const res = await fetch(server.url + path, { headers: { authorization: `Bearer ${server.secretKey}` } });
    expect(res.status).toBe(200);
    return res.json();
  };
  for (const [userId, u] of want.users) {
    expect(await get(`/v1/stats/users/${userId}`)).toMatchObject({
      userId,
      clicks: u.clicks,
      pageviews: u.pageviews,
      productsClicked: u.products.size,
    });
  }
  for (const [productId, p] of want.products) {
    expect(await get(`/v1/stats/products/${productId}`)).toEqual({ productId, clicks: p.clicks, uniqueUsers: p.users.size });
  }
}

describe.each(['external', 'embedded'] as const)('Segment SDK against a real Tally process (%s)', (mode) => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('counts a few thousand events exactly, a re-sent batch once, and survives SIGTERM', { timeout: 180_000 }, async () => {
    const schema = uniqueName('sdk');
    const prefix = uniqueName('sdk');
    const env: Record<string, string> = { TALLY_PG_SCHEMA: schema, TALLY_REDIS_PREFIX: prefix };
    if (mode === 'external') {
      Object.assign(env, { REDIS_URL, DATABASE_URL });
      cleanups.push(() => dropTestData(testConfig('external', env)));
    } else {
      const dir = await mkdtemp(join(tmpdir(), 'tally-sdk-'));
      env['DATA_DIR'] = dir;
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
    }
    const server = await startServer(env);
    cleanups.push(async () => server.proc.kill('SIGKILL'));
    expect(server.writeKey).toMatch(/^twk_/);

    const events = workload(3000);
    await send(server, events);
    await send(server, events.slice(1000, 1300)); // a batch re-sent with the same messageIds
    await eventually(() => checkCounts(server, events), 30_000, 250);

    expect(await stopServer(server)).toBe(0);
    if (mode === 'embedded') {
      const again = await startServer(env);
      cleanups.push(async () => again.proc.kill('SIGKILL'));
      await checkCounts({ ...again, writeKey: server.writeKey, secretKey: server.secretKey }, events);
      expect(await stopServer(again)).toBe(0);
    }
  });
});
