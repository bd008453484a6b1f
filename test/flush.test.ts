import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { counterSink } from '../src/counters/analytics-counters.js';
import { flushBuffer, flushBuffers, lastAppliedSeq } from '../src/counters/flush.js';
import { startFlusher } from '../src/counters/flusher.js';
import type { Context } from '../src/context.js';
import { createKeys } from '../src/storage/keys.js';
import { createMemoryRealtime } from '../src/storage/memory/realtime-memory.js';
import type { Realtime } from '../src/storage/realtime.js';
import { openTestContext, silentLog, type TestContext, uniqueName } from './helpers.js';

// The write-behind is exact: a batch is applied to PostgreSQL once, whatever crashes between
// take, commit and finish, and whatever flushers run at once.

async function durable(ctx: Context, siteId: string): Promise<Record<string, number>> {
  const result = await ctx.db.query<{ name: string; value: number }>('SELECT name, value FROM counters WHERE site_id = $1', [siteId]);
  return Object.fromEntries(result.rows.map((r) => [r.name, r.value]));
}

/** The same layer, but finishBatch fails: the process died after the commit. */
function crashingOnFinish(realtime: Realtime): Realtime {
  return {
    ...realtime,
    finishBatch: async () => {
      throw new Error('killed after commit');
    },
  };
}

describe.each(['external', 'embedded'] as const)('exactly-once flush (%s)', (mode) => {
  let t: TestContext;
  let siteId: string;
  beforeAll(async () => {
    t = await openTestContext(mode);
    siteId = (await t.ctx.sites.create(uniqueName('site'))).id;
  });
  afterAll(() => t.close());

  const buffer = () => t.ctx.keys.analyticsBuffer(siteId);

  it('applies pending deltas once and records the batch', async () => {
    await t.ctx.realtime.addDeltas(buffer(), ['a|x', 'b|y'], [3, 4]);
    const result = await flushBuffer(t.ctx, buffer(), counterSink(siteId));
    expect(result).toMatchObject({ applied: true, fields: 2 });
    expect(await durable(t.ctx, siteId)).toEqual({ 'a|x': 3, 'b|y': 4 });
    expect(await lastAppliedSeq(t.ctx.db, buffer())).toBe(result!.seq);
    expect(await flushBuffer(t.ctx, buffer(), counterSink(siteId))).toBeNull();
  });

  it('replays a batch taken but never committed (crash before commit)', async () => {
    await t.ctx.realtime.addDeltas(buffer(), ['a|x'], [10]);
    const taken = await t.ctx.realtime.takeBatch(buffer(), await lastAppliedSeq(t.ctx.db, buffer()));
    expect(taken).not.toBeNull();
    // The flusher died here. More increments arrive; then a flusher starts again.
    await t.ctx.realtime.addDeltas(buffer(), ['a|x'], [1]);
    const replay = await flushBuffer(t.ctx, buffer(), counterSink(siteId));
    expect(replay).toMatchObject({ seq: taken!.seq, applied: true });
    await flushBuffer(t.ctx, buffer(), counterSink(siteId));
    expect((await durable(t.ctx, siteId))['a|x']).toBe(3 + 10 + 1);
  });

  it('does not apply a committed batch twice (crash after commit, before finish)', async () => {
    await t.ctx.realtime.addDeltas(buffer(), ['b|y'], [5]);
    await expect(flushBuffer({ ...t.ctx, realtime: crashingOnFinish(t.ctx.realtime) }, buffer(), counterSink(siteId))).rejects.toThrow(
      'killed after commit',
    );
    expect((await durable(t.ctx, siteId))['b|y']).toBe(4 + 5);
    const replay = await flushBuffer(t.ctx, buffer(), counterSink(siteId));
    expect(replay).toMatchObject({ applied: false });
    expect((await durable(t.ctx, siteId))['b|y']).toBe(4 + 5);
    expect(await t.ctx.realtime.readBuffered(buffer(), 'b|y')).toMatchObject({ pending: 0, inflight: 0, inflightSeq: 0 });
  });

  it('keeps numbering past PostgreSQL after the real-time layer lost its data', async () => {
    const before = await lastAppliedSeq(t.ctx.db, buffer());
    const fresh = createMemoryRealtime();
    await fresh.addDeltas(buffer(), ['c|z'], [2]);
    const result = await flushBuffer({ db: t.ctx.db, realtime: fresh }, buffer(), counterSink(siteId));
    expect(result).toMatchObject({ seq: before + 1, applied: true });
    expect((await durable(t.ctx, siteId))['c|z']).toBe(2);
    await fresh.close();
  });

  it('flushes buffers of one sink together, each batch once, across a crash after commit', async () => {
    const [b0, b1] = [t.ctx.keys.inboxBuffer(siteId, 0), t.ctx.keys.inboxBuffer(siteId, 1)];
    await t.ctx.realtime.addDeltas(b0, ['g|a', 'g|b'], [1, 2]);
    await t.ctx.realtime.addDeltas(b1, ['g|a'], [5]);
    await expect(flushBuffers({ ...t.ctx, realtime: crashingOnFinish(t.ctx.realtime) }, [b0, b1], counterSink(siteId))).rejects.toThrow(
      'killed after commit',
    );
    expect(await durable(t.ctx, siteId)).toMatchObject({ 'g|a': 6, 'g|b': 2 });
    await t.ctx.realtime.addDeltas(b1, ['g|b'], [1]);
    // Both batches are replayed (applied before: nothing again), then b1's new one is applied.
    const replay = await flushBuffers(t.ctx, [b0, b1], counterSink(siteId));
    expect(replay).toMatchObject([{ applied: false }, { applied: false }]);
    const next = await flushBuffers(t.ctx, [b0, b1], counterSink(siteId));
    expect(next).toMatchObject([null, { applied: true, fields: 1 }]);
    expect(await durable(t.ctx, siteId)).toMatchObject({ 'g|a': 6, 'g|b': 3 });
    expect(await flushBuffers(t.ctx, [b0, b1], counterSink(siteId))).toEqual([null, null]);
  });

  it('drains a backlog larger than the batch size bound in bounded batches, each once', async () => {
    const rollups = t.ctx.keys.rollupBuffer(siteId);
    for (let i = 0; i < 12; i++) {
      const packed = [{ buffer: rollups, names: [`k|${i}`, 'k|all'], deltas: [i + 1, 1] }];
      await t.ctx.realtime.applyAggregate({ dedupeTtlSeconds: 60, dedupeKeys: [t.ctx.keys.dedupe(siteId, `bound-${i}`)], ops: [], packed });
    }
    const sizes: number[] = [];
    const sink = counterSink(siteId);
    const flusher = startFlusher(
      { ...t.ctx, keys: createKeys(t.ctx.config.redisPrefix), log: silentLog },
      {
        intervalMs: 60_000,
        autoStart: false,
        // Any item passes this bound: one item per batch.
        maxPackedBytes: 1,
        providers: [async () => [{ buffer: rollups, sink: (tx, fields, deltas) => (sizes.push(fields.length), sink(tx, fields, deltas)) }]],
      },
    );
    // More batches than one pass's rounds: flushAll goes on until nothing is left behind.
    expect(await flusher.flushAll()).toBe(12);
    expect(sizes).toEqual(Array.from({ length: 12 }, () => 2));
    const stored = await durable(t.ctx, siteId);
    expect(stored['k|all']).toBe(12);
    for (let i = 0; i < 12; i++) expect(stored[`k|${i}`]).toBe(i + 1);
    expect(flusher.lagSeconds()).toBeLessThan(5);
    await flusher.stop();
  });

  it('stays exact with concurrent writers and several flushers', async () => {
    const keys = createKeys(t.ctx.config.redisPrefix);
    const flushers = [0, 1, 2].map(() =>
      startFlusher(
        { ...t.ctx, keys, log: silentLog },
        { intervalMs: 5, providers: [async () => [{ buffer: buffer(), sink: counterSink(siteId) }]] },
      ),
    );
    let expected = 0;
    const writers = Array.from({ length: 4 }, async () => {
      for (let i = 0; i < 50; i++) {
        await t.ctx.realtime.addDeltas(buffer(), ['w|n'], [1]);
        expected += 1;
        // The pause is part of what is tested: it lets the racing flushers take batches between
        // writes, so writes land before, during and after takes.
        if (i % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 2));
      }
    });
    await Promise.all(writers);
    for (const f of flushers) await f.stop();
    expect((await durable(t.ctx, siteId))['w|n']).toBe(expected);
    expect(expected).toBe(200);
  });
});
