import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createMetrics } from '../src/ops/metrics.js';
import { listDeadLetters, replayDeadLetters } from '../src/process/dead-letters.js';
import { type BatchSink, type Processor, startProcessor } from '../src/process/processor.js';
import { eventually, type Mode, openTestApp, silentLog, type TestApp } from './helpers.js';

// A batch that fails the same way every time (here: a sink that throws for one message) must not
// block its shard: after its attempts it moves to the shard's dead letters, the shard goes on,
// and a replay after the fix brings its messages back, counted once and handed to the sinks.

const click = (userId: string, messageId: string) => ({
  type: 'track',
  userId,
  event: 'Product Clicked',
  properties: { product_id: 'p1' },
  messageId,
});

describe.each(['external', 'embedded'] as Mode[])('dead letters (%s)', (mode) => {
  let t: TestApp | undefined;
  const processors: Processor[] = [];
  afterEach(async () => {
    for (const p of processors.splice(0)) await p.stop();
    await t?.close();
    t = undefined;
  });

  it('moves a batch that fails every attempt aside, lets the shard go on, and replays it once fixed', async () => {
    t = await openTestApp(mode, { TALLY_STREAM_SHARDS: '1' });
    const { ctx } = t;
    const app = t.app;
    const headers = { authorization: t.basic };
    const post = async (message: unknown) =>
      expect((await app.inject({ method: 'POST', url: '/v1/batch', headers, payload: { batch: [message] } })).statusCode).toBe(200);
    const clicks = async (userId: string) =>
      (await app.inject({ url: `/v1/stats/users/${userId}`, headers: { authorization: t!.bearer } })).json().clicks as number | undefined;

    let poisonAttempts = 0;
    const poisoned: BatchSink = async (bySite) => {
      for (const counted of bySite.values()) {
        if (counted.some((c) => c.message.messageId === 'poison')) {
          poisonAttempts += 1;
          throw new Error('this sink cannot take the poison message');
        }
      }
    };
    const metrics = createMetrics();
    processors.push(
      startProcessor(
        { ...ctx, log: silentLog },
        { shards: 1, blockMs: 50, sinks: [poisoned], deadLetterAttempts: 2, onDeadLettered: (n) => metrics.deadLettered.inc(n) },
      ),
    );

    await post(click('ann', 'poison'));
    await eventually(async () => expect(await ctx.realtime.queue.length(ctx.keys.deadLetters(0))).toBe(1));
    expect(poisonAttempts).toBe(2);
    expect(await ctx.realtime.queue.length(ctx.keys.stream(0))).toBe(0);
    expect(await metrics.registry.getSingleMetricAsString('tally_dead_lettered_entries_total')).toMatch(/ 1$/m);
    // The shard goes on.
    await post(click('ben', 'fine'));
    await eventually(async () => expect(await clicks('ben')).toBe(1));

    expect(await listDeadLetters(ctx, 1)).toEqual([{ shard: 0, id: expect.any(String), siteId: t.site.id, messageIds: ['poison'] }]);
    // Listing twice shows the same: a listing deletes nothing.
    expect(await listDeadLetters(ctx, 1)).toHaveLength(1);

    // The fix is deployed: a processor whose sink takes every message.
    await processors.splice(0)[0]!.stop();
    const sunk: string[] = [];
    const redelivered: string[] = [];
    const fixed: BatchSink = async (bySite, batch) => {
      for (const counted of bySite.values()) sunk.push(...counted.map((c) => c.message.messageId));
      redelivered.push(...batch.redelivered);
    };
    processors.push(startProcessor({ ...ctx, log: silentLog }, { shards: 1, blockMs: 50, sinks: [fixed] }));
    expect(await replayDeadLetters(ctx, 1, 1000)).toBe(1);
    expect(await ctx.realtime.queue.length(ctx.keys.deadLetters(0))).toBe(0);
    expect(await listDeadLetters(ctx, 1)).toEqual([]);
    // The first attempt had counted the message already: the sink gets it, the counter does not again.
    await eventually(async () => expect(sunk).toEqual(['poison']));
    // …marked as delivered again, so a sink that stores events looks up what it holds first.
    expect(redelivered).toEqual([t.site.id]);
    await eventually(async () => expect(await ctx.realtime.queue.length(ctx.keys.stream(0))).toBe(0));
    expect(await clicks('ann')).toBe(1);
  });

  it('lets a drain end with a poison entry queued: the entry moves to the dead letters', async () => {
    t = await openTestApp(mode, { TALLY_STREAM_SHARDS: '1' });
    const { ctx } = t;
    const poisoned: BatchSink = async () => {
      throw new Error('this sink takes nothing');
    };
    const logged: string[] = [];
    const log = pino({ level: 'error' }, { write: (line: string) => logged.push(line) });
    const processor = startProcessor({ ...ctx, log }, { shards: 1, blockMs: 50, sinks: [poisoned], deadLetterAttempts: 2 });
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { authorization: t.basic },
      payload: { batch: [click('ann', 'poison')] },
    });
    expect(response.statusCode).toBe(200);
    await processor.stop({ drain: true });
    expect(await ctx.realtime.queue.length(ctx.keys.stream(0))).toBe(0);
    expect(await listDeadLetters(ctx, 1)).toEqual([{ shard: 0, id: expect.any(String), siteId: t.site.id, messageIds: ['poison'] }]);
    // The log names the entries (the embedded mode shows their messages) but never a client's IP.
    expect(logged.join('')).toContain('dead letters');
    if (mode === 'embedded') expect(logged.join('')).toContain('poison');
    expect(logged.join('')).not.toContain('127.0.0.1');
  });
});
