import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CollectedMessage } from '../src/collect/message.js';
import type { Counted } from '../src/process/aggregate.js';
import { createEnricher, createSaltSource } from '../src/process/enrich.js';
import { createRawEventWriter } from '../src/process/raw-events.js';
import type { Db } from '../src/storage/db.js';
import { startWorker, type Worker } from '../src/worker.js';
import { eventually, openTestApp, silentLog, type TestApp } from './helpers.js';

// Raw events in PostgreSQL: one row per message (retries and redeliveries once), in day
// partitions created on demand; while PostgreSQL refuses them they wait in Redis and are
// written once it answers again.

describe.each(['external', 'embedded'] as const)('raw events (%s)', (mode) => {
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

  it('stores every message once, in the partition of its day', async () => {
    const batch = [
      { type: 'page', anonymousId: 'a', messageId: 'r1', timestamp: '2026-01-05T10:00:00Z' },
      { type: 'track', userId: 'u', event: 'Signed Up', messageId: 'r2', timestamp: '2026-01-06T23:59:59Z', properties: { plan: 'pro' } },
      { type: 'identify', userId: 'u', messageId: 'r3', traits: { email: 'u@example.com' } },
      { type: 'group', userId: 'u', groupId: 'g1', messageId: 'r4' },
      { type: 'alias', userId: 'u', previousUserId: 'a', messageId: 'r5' },
    ];
    for (let i = 0; i < 2; i++) {
      const res = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: t.basic }, payload: { batch } });
      expect(res.statusCode).toBe(200);
    }
    const rows = await eventually(async () => {
      const r = await t.ctx.db.query<{
        message_id: string;
        day: string;
        type: string;
        group_id: string | null;
        previous_user_id: string | null;
        traits: unknown;
      }>(
        `SELECT message_id, to_char(day, 'YYYY-MM-DD') AS day, type, group_id, previous_user_id, traits FROM events WHERE site_id = $1 ORDER BY message_id`,
        [t.site.id],
      );
      expect(r.rows).toHaveLength(5);
      return r.rows;
    });
    expect(rows.map((r) => [r.message_id, r.type])).toEqual([
      ['r1', 'page'],
      ['r2', 'track'],
      ['r3', 'identify'],
      ['r4', 'group'],
      ['r5', 'alias'],
    ]);
    expect(rows[0]!.day).toBe('2026-01-05');
    expect(rows[1]!.day).toBe('2026-01-06');
    expect(rows[3]!.group_id).toBe('g1');
    expect(rows[4]!.previous_user_id).toBe('a');
    expect(rows[2]!.traits).toEqual({ email: 'u@example.com' });
    const partitions = await t.ctx.db.query<{ n: number }>(
      `SELECT count(*)::int8 AS n FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent WHERE c.relname = 'events'`,
    );
    expect(partitions.rows[0]!.n).toBeGreaterThanOrEqual(3);
  });

  it('stores text exactly: quotes, backslashes, line breaks, accents and emoji', async () => {
    const text = 'Ünïcödé "quoted" \\ back\\slash \\u0000 as text\nnew line \t tab 😀 中文';
    const message = {
      type: 'track',
      userId: text,
      event: text,
      messageId: `x-${text}`,
      properties: { [text]: text, nested: [text, 1.5, null, true] },
    };
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { authorization: t.basic },
      payload: { batch: [message] },
    });
    expect(res.statusCode).toBe(200);
    const row = await eventually(async () => {
      const r = await t.ctx.db.query<{ message_id: string; user_id: string; event: string; properties: unknown }>(
        'SELECT message_id, user_id, event, properties FROM events WHERE site_id = $1 AND user_id = $2',
        [t.site.id, text],
      );
      expect(r.rows).toHaveLength(1);
      return r.rows[0]!;
    });
    expect(row).toEqual({ message_id: `x-${text}`, user_id: text, event: text, properties: message.properties });
  });

  it('parks a batch PostgreSQL refuses and writes it once PostgreSQL answers', async () => {
    const down: Db = {
      ...t.ctx.db,
      query: async () => {
        throw new Error('connection refused');
      },
      exec: async () => {
        throw new Error('connection refused');
      },
    };
    const enrich = createEnricher(
      createSaltSource((k, v, ttl) => t.ctx.realtime.coordination.getOrSet(k, v, ttl), t.ctx.keys.salt),
      () => ({ country: undefined, region: undefined }),
    );
    const messages: CollectedMessage[] = [1, 2, 3].map((n) => ({
      type: 'track',
      event: 'Parked',
      userId: 'p',
      messageId: `parked-${n}`,
      properties: {},
      traits: {},
      context: {},
      timestamp: new Date().toISOString(),
      receivedAt: new Date().toISOString(),
    }));
    const enriched = await enrich(t.site.id, messages);
    const counted: Counted[] = messages.map((message, i) => ({ message, enriched: enriched[i]! }));
    const deps = { realtime: t.ctx.realtime, keys: t.ctx.keys, log: silentLog };
    // PostgreSQL down: the sink does not fail (the processor goes on counting).
    await createRawEventWriter({ ...deps, db: down }).sink(new Map([[t.site.id, counted]]));
    const parked = async () =>
      (await t.ctx.db.query<{ n: number }>(`SELECT count(*)::int8 AS n FROM events WHERE site_id = $1 AND event = 'Parked'`, [t.site.id]))
        .rows[0]!.n;
    expect(await parked()).toBe(0);
    // Back up: the worker's catch-up loop writes the backlog.
    await eventually(async () => expect(await parked()).toBe(3), 15_000);
  });
});
