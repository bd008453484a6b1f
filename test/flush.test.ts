import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Context } from '../src/context.js';
import { analyticsTargets, counterSink } from '../src/counters/analytics-counters.js';
import { flushBuffer, flushBuffers, lastAppliedSeq } from '../src/counters/flush.js';
import { startFlusher } from '../src/counters/flusher.js';
import { openEmbeddedRealtime } from '../src/storage/embedded/index.js';
import { type BufferKeys, createKeys } from '../src/storage/keys.js';
import type { Realtime } from '../src/storage/realtime.js';
import { bufferDeltas, openTestContext, silentLog, type TestContext, uniqueName } from './helpers.js';

// The write-behind is exact: a batch is applied to PostgreSQL once, whatever crashes between
// take, commit and finish, and whatever flushers run at once.

async function durable(ctx: Context, siteId: string): Promise<Record<string, number>> {
  const result = await ctx.db.query<{ name: string; value: number }>('SELECT name, value FROM counters WHERE site_id = $1', [siteId]);
  return Object.fromEntries(result.rows.map((r) => [r.name, r.value]));
}

/** The same buffers, but finishing a batch fails: the process died after the commit. */
function crashingOnFinish(realtime: Realtime): Pick<Realtime, 'buffers'> {
  return {
    buffers: {
      take: (buffer, minSeq, maxPackedBytes) => realtime.buffers.take(buffer, minSeq, maxPackedBytes),
      finish: async () => {
        throw new Error('killed after commit');
      },
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
  const add = (b: BufferKeys, names: string[], deltas: number[]) => bufferDeltas(t.ctx.realtime, b, names, deltas);

  it('applies pending deltas once and records the batch', async () => {
    await add(buffer(), ['a|x', 'b|y'], [3, 4]);
    const result = await flushBuffer(t.ctx, buffer(), counterSink(siteId));
    expect(result).toMatchObject({ applied: true, fields: 2 });
    expect(await durable(t.ctx, siteId)).toEqual({ 'a|x': 3, 'b|y': 4 });
    expect(await lastAppliedSeq(t.ctx.db, buffer())).toBe(result!.seq);
    expect(await flushBuffer(t.ctx, buffer(), counterSink(siteId))).toBeNull();
  });

  it('replays a batch taken but never committed (crash before commit)', async () => {
    await add(buffer(), ['a|x'], [10]);
    const taken = await t.ctx.realtime.buffers.take(buffer(), await lastAppliedSeq(t.ctx.db, buffer()));
    expect(taken).not.toBeNull();
    // The flusher died here. More increments arrive; then a flusher starts again.
    await add(buffer(), ['a|x'], [1]);
    const replay = await flushBuffer(t.ctx, buffer(), counterSink(siteId));
    expect(replay).toMatchObject({ seq: taken!.seq, applied: true });
    await flushBuffer(t.ctx, buffer(), counterSink(siteId));
    expect((await durable(t.ctx, siteId))['a|x']).toBe(3 + 10 + 1);
  });

  it('does not apply a committed batch twice (crash after commit, before finish)', async () => {
    await add(buffer(), ['b|y'], [5]);
    await expect(flushBuffer({ db: t.ctx.db, realtime: crashingOnFinish(t.ctx.realtime) }, buffer(), counterSink(siteId))).rejects.toThrow(
      'killed after commit',
    );
    expect((await durable(t.ctx, siteId))['b|y']).toBe(4 + 5);
    const replay = await flushBuffer(t.ctx, buffer(), counterSink(siteId));
    expect(replay).toMatchObject({ applied: false });
    expect((await durable(t.ctx, siteId))['b|y']).toBe(4 + 5);
    // Nothing is left pending or in flight.
    expect(await t.ctx.realtime.buffers.take(buffer(), await lastAppliedSeq(t.ctx.db, buffer()))).toBeNull();
  });

  it('keeps numbering past PostgreSQL after the real-time layer lost its data', async () => {
    const before = await lastAppliedSeq(t.ctx.db, buffer());
    const fresh = await openEmbeddedRealtime(t.ctx.keys, t.ctx.db);
    await bufferDeltas(fresh, buffer(), ['c|z'], [2]);
    const result = await flushBuffer({ db: t.ctx.db, realtime: fresh }, buffer(), counterSink(siteId));
    expect(result).toMatchObject({ seq: before + 1, applied: true });
    expect((await durable(t.ctx, siteId))['c|z']).toBe(2);
    await fresh.close();
  });

  it('flushes buffers of one sink together, each batch once, across a crash after commit', async () => {
    const [b0, b1] = [t.ctx.keys.inboxBuffer(siteId, 0), t.ctx.keys.inboxBuffer(siteId, 1)];
    await add(b0, ['g|a', 'g|b'], [1, 2]);
    await add(b1, ['g|a'], [5]);
    await expect(flushBuffers({ db: t.ctx.db, realtime: crashingOnFinish(t.ctx.realtime) }, [b0, b1], counterSink(siteId))).rejects.toThrow(
      'killed after commit',
    );
    expect(await durable(t.ctx, siteId)).toMatchObject({ 'g|a': 6, 'g|b': 2 });
    await add(b1, ['g|b'], [1]);
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
      await t.ctx.realtime.analytics.apply({
        dedupeTtlSeconds: 60,
        dedupeKeys: [t.ctx.keys.dedupe(siteId, `bound-${i}`)],
        ops: [],
        packed,
      });
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
        providers: [
          async () => [
            {
              buffer: rollups,
              sink: (tx, fields, deltas) => {
                sizes.push(fields.length);
                return sink(tx, fields, deltas);
              },
            },
          ],
        ],
      },
    );
    // More batches than one pass's rounds: flushAll goes on until nothing is left behind. Redis
    // bounds each batch (the backlog waits there); the embedded buffers hold it in this
    // process's memory already, so they take it as one batch.
    const batches = await flusher.flushAll();
    if (t.ctx.realtime.kind === 'redis') {
      expect(batches).toBe(12);
      expect(sizes).toEqual(Array.from({ length: 12 }, () => 2));
    } else {
      expect(batches).toBe(1);
      expect(sizes).toEqual([13]);
    }
    const stored = await durable(t.ctx, siteId);
    expect(stored['k|all']).toBe(12);
    for (let i = 0; i < 12; i++) expect(stored[`k|${i}`]).toBe(i + 1);
    expect(flusher.lagSeconds()).toBeLessThan(5);
    await flusher.stop();
  });

  it('flushes a site this process created at the next pass, and the sites it knows while the site list cannot be read', async () => {
    let listDown = false;
    const sites = {
      list: () => (listDown ? Promise.reject(new Error('PostgreSQL is down')) : t.ctx.sites.list()),
      get generation() {
        return t.ctx.sites.generation;
      },
    };
    const flusher = startFlusher(t.ctx, {
      intervalMs: 60_000,
      autoStart: false,
      providers: [analyticsTargets({ keys: t.ctx.keys, sites })],
    });
    await flusher.flushAll();
    const late = (await t.ctx.sites.create(uniqueName('late'))).id;
    await add(t.ctx.keys.analyticsBuffer(late), ['n|late'], [3]);
    await flusher.flushAll();
    expect(await durable(t.ctx, late)).toEqual({ 'n|late': 3 });

    listDown = true;
    await t.ctx.sites.create(uniqueName('unseen')); // the list must be read again, and fails
    await add(t.ctx.keys.analyticsBuffer(late), ['n|late'], [2]);
    await flusher.flushAll();
    expect(await durable(t.ctx, late)).toEqual({ 'n|late': 5 });
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
        await add(buffer(), ['w|n'], [1]);
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
